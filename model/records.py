"""The case a machine moves, and the records of what a move does (step, clocks, verdicts).

:class:`Case` is mutable: the machine that owns it moves it (see the class). The machines
(``model.compiler.CompiledProcedure`` and the simulator's ``simulations.table.TableMachine``)
build one :class:`Step` and one :class:`FireResult` per move, and a
:class:`RunningDeadline` or :class:`DeadlineVerdict` for each clock a move starts or stops:
a national run builds tens of millions. So they are plain classes with their own
``__init__``, not dataclasses: compiled with mypyc (:mod:`model.native`), building one is a
C call, where a frozen dataclass's generated ``__init__`` is a Python frame that sets each
field through ``object.__setattr__`` (about 0.9 µs for a :class:`Step`, against about
0.05 µs). Each keeps what the dataclass gave its users: comparison field by field within
the class, a hash where the dataclass had one, the same ``repr`` and pickling.

The records are immutable by contract: their fields are ``Final``, so ``mypy --strict``
rejects any assignment outside ``__init__``. :class:`RunningDeadline` is the exception, as
it was: a running clock (its fields are not reassigned today, but it is not a value).
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from mypy_extensions import mypyc_attr

from model.graph import Config
from model.guards import GuardContext
from model.spec import Deadline, EventRef
from model.types import RuleId, SimHours, TriggerId

Outcome = Literal["met", "missed", "cancelled"]


@mypyc_attr(allow_interpreted_subclasses=True)
class Case:
    """One child's case: the model object the machine moves.

    ``state`` is set and changed only by the machine the case belongs to (the
    ``transitions`` machine, or the simulator's transition table). A plain class, compiled
    with the records: the table machine and the engine read and set its fields on every
    step, and a run makes one per child. The ``transitions`` machine decorates the cases
    it moves with methods of its own, so it moves a subclass with an instance dict
    (``model.compiler``); hence ``allow_interpreted_subclasses``.

    Attributes:
        case_id: The case.
        facts: The facts recorded about the child, which guards read.
        counts: How often each trigger has fired in the case's whole history (a trigger
            never fired is absent).
        episode: The same since the case last entered a top-level stage.
        clocks: The deadline clocks running, by deadline id, in the order they started.
        state: Where the machine has the case.
    """

    def __init__(self, case_id: str, facts: dict[str, object] | None = None,
                 counts: dict[str, int] | None = None, episode: dict[str, int] | None = None,
                 clocks: dict[str, RunningDeadline] | None = None, state: Any = None) -> None:
        """A case with what it has so far (each mapping empty when not given)."""
        self.case_id = case_id
        self.facts: dict[str, object] = {} if facts is None else facts
        self.counts: dict[str, int] = {} if counts is None else counts
        self.episode: dict[str, int] = {} if episode is None else episode
        self.clocks: dict[str, RunningDeadline] = {} if clocks is None else clocks
        self.state: Any = state

    def guard_context(self) -> GuardContext:
        """The view of this case that guards may read."""
        return GuardContext(facts=self.facts, counts=self.counts, episode=self.episode)

    def __repr__(self) -> str:
        """As the dataclass it was wrote it."""
        return (f"{type(self).__name__}(case_id={self.case_id!r}, facts={self.facts!r}, "
                f"counts={self.counts!r}, episode={self.episode!r}, "
                f"clocks={self.clocks!r}, state={self.state!r})")


class _Record:
    """What the dataclasses gave each record: equality, ``repr`` and pickling.

    All three read the record's fields through :meth:`_fields`, in the order of ``_names``
    (the order the dataclass declared them): equal only to a record of the same class with
    equal fields, written as ``Name(field=value, ...)``, pickled as a call to the class
    with its fields. A value (:class:`_Value`) is hashed as the tuple of its fields too.
    """

    __slots__ = ()
    _names: ClassVar[tuple[str, ...]] = ()

    def _fields(self) -> tuple[object, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        """Equal to a record of the same class with equal fields."""
        if not isinstance(other, _Record) or type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __repr__(self) -> str:
        """As the dataclass it was wrote it."""
        shown = ", ".join(f"{name}={value!r}"
                          for name, value in zip(self._names, self._fields(), strict=True))
        return f"{type(self).__name__}({shown})"

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        """Pickle by its fields (a compiled class has no instance dict to copy)."""
        return (type(self), self._fields())


class _Value(_Record):
    """A record that never changes, hashed as the tuple of its fields (a frozen dataclass)."""

    __slots__ = ()

    def __hash__(self) -> int:
        """The hash of its fields."""
        return hash(self._fields())


class RunningDeadline(_Record):
    """A deadline clock that is running for one case (not a value: it has no hash).

    Attributes:
        deadline: The procedure's deadline.
        started: When the clock started (sim hours).
        due: The latest time the end event may happen, or None when only a minimum applies.
        earliest: The earliest time the end event may happen, or None.
    """

    __slots__ = ("deadline", "due", "earliest", "started")
    _names = ("deadline", "started", "due", "earliest")

    def __init__(self, deadline: Deadline, started: SimHours, due: SimHours | None,
                 earliest: SimHours | None) -> None:
        """A clock for ``deadline`` started at ``started``."""
        self.deadline = deadline
        self.started = started
        self.due = due
        self.earliest = earliest

    def _fields(self) -> tuple[object, ...]:
        return (self.deadline, self.started, self.due, self.earliest)

    __hash__ = None  # type: ignore[assignment]  # a running clock is not a value


class DeadlineVerdict(_Value):
    """The result of one deadline clock: met, missed, or cancelled (no longer applies).

    Attributes:
        case_id: The case.
        deadline_id: The procedure's deadline.
        rules: The rule ids the deadline cites.
        started: When the clock started (sim hours).
        ended: When it stopped.
        due: Its latest time, or None.
        earliest: Its earliest time, or None.
        outcome: Met, missed, or cancelled.
        elapsed: Time from start to end in the deadline's own unit (hours, days,
            working days or months), or None when cancelled.
    """

    __slots__ = ("case_id", "deadline_id", "due", "earliest", "elapsed", "ended", "outcome",
                 "rules", "started")
    _names = ("case_id", "deadline_id", "rules", "started", "ended", "due", "earliest",
              "outcome", "elapsed")

    def __init__(self, case_id: str, deadline_id: str, rules: tuple[RuleId, ...],
                 started: SimHours, ended: SimHours, due: SimHours | None,
                 earliest: SimHours | None, outcome: Outcome, elapsed: float | None) -> None:
        """The verdict on one clock."""
        self.case_id: Final = case_id
        self.deadline_id: Final = deadline_id
        self.rules: Final = rules
        self.started: Final = started
        self.ended: Final = ended
        self.due: Final = due
        self.earliest: Final = earliest
        self.outcome: Final = outcome
        self.elapsed: Final = elapsed

    def _fields(self) -> tuple[object, ...]:
        return (self.case_id, self.deadline_id, self.rules, self.started, self.ended,
                self.due, self.earliest, self.outcome, self.elapsed)


class Step(_Value):
    """One move a case made: an immutable record, holding no live objects.

    Attributes:
        case_id: The case.
        time: When (sim hours).
        trigger: The trigger fired.
        transition_id: The procedure's transition that was taken.
        before: The configuration left.
        after: The configuration reached.
        rules: The rule ids the transition cites.
        records: What the transition records.
        events: Exits, the trigger, then entries.
    """

    __slots__ = ("after", "before", "case_id", "events", "records", "rules", "time",
                 "transition_id", "trigger")
    _names = ("case_id", "time", "trigger", "transition_id", "before", "after", "rules",
              "records", "events")

    def __init__(self, case_id: str, time: SimHours, trigger: TriggerId, transition_id: str,
                 before: Config, after: Config, rules: tuple[RuleId, ...],
                 records: tuple[str, ...], events: tuple[EventRef, ...]) -> None:
        """The record of one move."""
        self.case_id: Final = case_id
        self.time: Final = time
        self.trigger: Final = trigger
        self.transition_id: Final = transition_id
        self.before: Final = before
        self.after: Final = after
        self.rules: Final = rules
        self.records: Final = records
        self.events: Final = events

    def _fields(self) -> tuple[object, ...]:
        return (self.case_id, self.time, self.trigger, self.transition_id, self.before,
                self.after, self.rules, self.records, self.events)


class FireResult(_Value):
    """What firing a trigger did: the step, deadline verdicts, and clocks started."""

    __slots__ = ("started", "step", "verdicts")
    _names = ("step", "verdicts", "started")

    def __init__(self, step: Step, verdicts: tuple[DeadlineVerdict, ...],
                 started: tuple[str, ...]) -> None:
        """The step, its verdicts, and the ids of the clocks it started."""
        self.step: Final = step
        self.verdicts: Final = verdicts
        self.started: Final = started

    def _fields(self) -> tuple[object, ...]:
        return (self.step, self.verdicts, self.started)
