"""Named guards: the only conditions a procedure file may place on a transition or deadline.

A procedure names a guard; it never contains an expression. Each guard reads the case's
recorded facts and the counts of triggers it has fired. Guards listed as a complementary
group together cover every case, which the checker uses to prove a decision point cannot
leave a case stuck.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from model.types import GuardId, TriggerId


@dataclass(frozen=True, slots=True)
class GuardContext:
    """What a guard may look at: the case's facts and how often each trigger has fired.

    Attributes:
        facts: What is recorded about the child and family.
        counts: How often each trigger has fired in the case's whole history.
        episode: How often each trigger has fired since the case last entered a top-level
            stage of the main flow (e.g. reviews within the current plan).
    """

    facts: Mapping[str, object] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    episode: Mapping[str, int] = field(default_factory=dict)


GuardFn = Callable[[GuardContext], bool]


@dataclass(frozen=True, slots=True)
class Guard:
    """A registered guard, its plain-English summary and the inputs it declares it reads.

    The declaration is what every analysis uses (which facts split cases, which trigger
    counts matter, how far counts need to be explored); ``tests/test_model_guards.py`` probes
    each guard once to confirm it reads nothing else and is constant above ``saturates_at``.

    Attributes:
        name: The name a procedure file uses.
        fn: The test itself.
        summary: What it tests, in plain English.
        facts: The case facts it reads (names from :data:`FACTS`).
        counts: The triggers whose whole-case counts it reads.
        episode: The triggers whose counts in the current episode it reads.
        saturates_at: Every count above this gives the same answer as this count.
    """

    name: GuardId
    fn: GuardFn
    summary: str
    facts: frozenset[str] = frozenset()
    counts: frozenset[TriggerId] = frozenset()
    episode: frozenset[TriggerId] = frozenset()
    saturates_at: int = 0


def _fact(name: str) -> GuardFn:
    """The test that the case fact ``name`` is recorded as true."""

    def test(ctx: GuardContext) -> bool:
        return bool(ctx.facts.get(name))

    return test


def _reads_fact(name: GuardId, fact: str, summary: str) -> Guard:
    """A guard that holds exactly when one case fact is true."""
    return Guard(name, _fact(fact), summary, facts=frozenset({fact}))


def _either_or(yes: Guard, no: GuardId, no_summary: str) -> tuple[Guard, Guard]:
    """``yes`` and its complement ``no``: the same inputs, the opposite answer.

    Between them the two hold for every case, so each pair is an exhaustive group.
    """
    return yes, replace(yes, name=no, fn=lambda ctx: not yes.fn(ctx), summary=no_summary)


def _extended_notice(ctx: GuardContext) -> bool:
    return bool(ctx.facts.get("parent_learning_disability")) or bool(
        ctx.facts.get("interpreter_needed")
    )


def _designated_review_due(ctx: GuardContext) -> bool:
    # The 4th review conference of the current plan is the designated one (NCL-7.1.5):
    # three reviews already held since the plan started.
    held = ctx.episode.get("review_opens", 0) + ctx.episode.get("designated_review_opens", 0)
    return held == 3


def _designated_review_just_held(ctx: GuardContext) -> bool:
    # The review now deciding is the designated (4th) one (NCL-7.1.6, NCL-7.3.8): it has
    # sat, and no ordinary review has sat after it.
    return (ctx.episode.get("designated_review_opens", 0) >= 1
            and ctx.episode.get("review_opens", 0) == 3)


def _conference_cancellation_unraised(ctx: GuardContext) -> bool:
    # Walsall (WAL-canc): a conference date that did not go ahead gives grounds once in the
    # case's current stage (the initial conference, or the plan's reviews). Read from the
    # episode's counts, with thresholds only, so the answer is the same for every count
    # above 1 and the guard stays a finite truth table (cpsim check, cpsim explore).
    cancelled = ctx.episode.get("postpone_icpc", 0) + ctx.episode.get("postpone_review", 0)
    return cancelled >= 1 and ctx.episode.get("conference_cancelled", 0) == 0


_REVIEWS = frozenset({"review_opens", "designated_review_opens"})

_NOTICE = _either_or(
    Guard("extended_notice_needed", _extended_notice,
          "A parent has a learning disability or the family needs interpretation.",
          facts=frozenset({"parent_learning_disability", "interpreter_needed"})),
    "standard_notice",
    "Neither a parental learning disability nor a need for interpretation is recorded.",
)
_REVIEW_DUE = _either_or(
    Guard("designated_review_due", _designated_review_due,
          "Three review conferences of this plan have been held, so the next is the 4th "
          "(designated).",
          episode=_REVIEWS, saturates_at=4),
    "ordinary_review_due",
    "The next review conference is not the 4th.",
)
_PRACTICE = _either_or(
    _reads_fact("practice_is_good", "practice_is_good",
                "The coordinator judges the practice on the case to be good."),
    "practice_concern",
    "The coordinator has a concern about the practice on the case.",
)
_CAF = _either_or(
    _reads_fact("caf_completed", "caf_completed",
                "A common assessment (CAF) has already been completed for the child."),
    "caf_not_completed",
    "No common assessment (CAF) has been completed yet.",
)
_REVIEW_JUST_HELD = _either_or(
    Guard("designated_review_just_held", _designated_review_just_held,
          "The review now deciding is the designated (4th) review conference of this plan.",
          episode=_REVIEWS, saturates_at=4),
    "designated_review_not_just_held",
    "The review now deciding is not the designated (4th) review conference.",
)

_REGISTRY: tuple[Guard, ...] = (
    *_NOTICE,
    _reads_fact("interpreter_needed", "interpreter_needed",
                "The family needs an interpreter at meetings."),
    *_REVIEW_DUE,
    *_PRACTICE,
    *_CAF,
    Guard(
        "conference_cancellation_unraised",
        _conference_cancellation_unraised,
        ("In the current stage a conference date has not gone ahead and no cancellation "
         "has yet been raised."),
        episode=frozenset({"postpone_icpc", "postpone_review", "conference_cancelled"}),
        saturates_at=1,
    ),
    _reads_fact("pre_birth", "pre_birth",
                "The conference is about an unborn child (a pre-birth conference)."),
    _reads_fact("domestic_abuse", "domestic_abuse", "There is domestic abuse in the family."),
    _reads_fact("child_needs_translator", "child_first_language_not_english",
                "The child's first language is not English."),
    *_REVIEW_JUST_HELD,
)

GUARDS: Mapping[GuardId, Guard] = MappingProxyType({g.name: g for g in _REGISTRY})
"""Every registered guard by name."""

EXHAUSTIVE_GROUPS: tuple[frozenset[GuardId], ...] = tuple(
    frozenset(g.name for g in pair)
    for pair in (_NOTICE, _REVIEW_DUE, _PRACTICE, _CAF, _REVIEW_JUST_HELD))
"""Groups of guards that, between them, hold for every possible case."""


FACTS: tuple[str, ...] = (
    "parent_learning_disability",
    "interpreter_needed",
    "practice_is_good",
    "caf_completed",
    "pre_birth",
    "domestic_abuse",
    "child_first_language_not_english",
)
"""The case facts the guards read; a scenario may set the share of cases with each."""


def evaluate(name: GuardId, ctx: GuardContext) -> bool:
    """Evaluate a registered guard by name.

    Raises:
        KeyError: if no guard of that name is registered.
    """
    return GUARDS[name].fn(ctx)


def covers_every_case(guards: frozenset[GuardId]) -> bool:
    """True when ``guards`` contains a whole exhaustive group."""
    return any(group <= guards for group in EXHAUSTIVE_GROUPS)


@dataclass(frozen=True, slots=True)
class FactClass:
    """Fact combinations that a set of guards all treat alike (no triggers counted).

    Attributes:
        facts: The simplest member: the fewest facts true, earlier facts of :data:`FACTS`
            first; only the true facts are listed.
        members: Every combination of the facts read that falls in the class, each with
            every fact read as a key.
        holds: The guards of the set that hold for the class.
    """

    facts: Mapping[str, bool]
    members: tuple[Mapping[str, bool], ...]
    holds: frozenset[GuardId]


def facts_read(guards: Iterable[GuardId]) -> tuple[str, ...]:
    """The facts any of ``guards`` reads, in :data:`FACTS` order."""
    read = set().union(*(GUARDS[g].facts for g in guards))
    return tuple(f for f in FACTS if f in read)


def counts_read(guards: Iterable[GuardId]) -> tuple[frozenset[TriggerId], frozenset[TriggerId]]:
    """The triggers whose counts any of ``guards`` reads: whole case, then current episode."""
    chosen = [GUARDS[g] for g in guards]
    return (frozenset().union(*(g.counts for g in chosen)),
            frozenset().union(*(g.episode for g in chosen)))


def reads_counts(guard: GuardId) -> bool:
    """True when the guard reads any trigger count (so it is decided as the case moves)."""
    return bool(GUARDS[guard].counts or GUARDS[guard].episode)


def fact_classes(guards: Iterable[GuardId]) -> tuple[FactClass, ...]:
    """The classes of case facts that ``guards`` tell apart, the simplest class first.

    Only the facts the guards declare are combined (2**k combinations for k facts read),
    each guard is evaluated with no triggers counted, and combinations giving the same
    answers from every guard form one class.

    >>> [sorted(c.facts) for c in fact_classes(["pre_birth", "practice_is_good"])]
    [[], ['practice_is_good'], ['pre_birth'], ['practice_is_good', 'pre_birth']]
    """
    names = sorted(set(guards))
    read = facts_read(names)
    combos = sorted(itertools.product((False, True), repeat=len(read)),
                    key=lambda c: (sum(c), [not x for x in c]))
    classes: dict[tuple[bool, ...], list[dict[str, bool]]] = {}
    for combo in combos:
        facts = dict(zip(read, combo, strict=True))
        ctx = GuardContext(facts=facts)
        classes.setdefault(tuple(GUARDS[g].fn(ctx) for g in names), []).append(facts)
    return tuple(
        FactClass({k: True for k, v in members[0].items() if v}, tuple(members),
                  frozenset(g for g, v in zip(names, signature, strict=True) if v))
        for signature, members in classes.items())
