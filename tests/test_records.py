"""The step records are plain classes (fast to build compiled): they keep the dataclass manners.

Equality field by field within the class, a hash where the frozen dataclass had one, the
dataclass's ``repr``, and pickling (a worker's error carries steps back to the parent).
"""

from __future__ import annotations

import pickle

import pytest

from model.compiler import (
    Case,
    CompiledProcedure,
    DeadlineVerdict,
    FireResult,
    RunningDeadline,
    Step,
)
from model.loader import load_procedure
from model.spec import EventRef


def _step(case_id: str = "c1") -> Step:
    return Step(case_id, 2.0, "go", "t1", ("a",), ("b",), ("WM-1",), ("note",),
                (EventRef("exit", "a"), EventRef("trigger", "go"), EventRef("enter", "b")))


def _verdict(outcome: str = "met") -> DeadlineVerdict:
    return DeadlineVerdict("c1", "d1", ("WM-2",), 1.0, 5.0, 9.0, None, outcome,  # type: ignore[arg-type]
                           4.0)


def test_records_equal_field_by_field_and_hash_alike() -> None:
    assert _step() == _step() and hash(_step()) == hash(_step())
    assert _step() != _step("c2")
    assert _verdict() == _verdict() and hash(_verdict()) == hash(_verdict())
    assert _verdict() != _verdict("missed")
    result = FireResult(_step(), (_verdict(),), ("d2",))
    assert result == FireResult(_step(), (_verdict(),), ("d2",))
    assert hash(result) == hash(FireResult(_step(), (_verdict(),), ("d2",)))
    assert result != FireResult(_step(), (), ("d2",))


def test_a_record_is_never_equal_to_another_kind_or_a_tuple() -> None:
    step = _step()
    assert step != (step.case_id, step.time, step.trigger, step.transition_id, step.before,
                    step.after, step.rules, step.records, step.events)
    assert _verdict() != step
    assert (step == 1) is False


def test_a_running_clock_compares_but_is_not_a_value() -> None:
    deadline = load_procedure("west-midlands-2014").deadlines[0]
    clock = RunningDeadline(deadline, 1.0, 5.0, None)
    assert clock == RunningDeadline(deadline, 1.0, 5.0, None)
    assert clock != RunningDeadline(deadline, 1.0, 6.0, None)
    with pytest.raises(TypeError):
        hash(clock)


def test_records_read_as_the_dataclasses_they_were() -> None:
    assert repr(_verdict()) == (
        "DeadlineVerdict(case_id='c1', deadline_id='d1', rules=('WM-2',), started=1.0, "
        "ended=5.0, due=9.0, earliest=None, outcome='met', elapsed=4.0)")
    assert repr(FireResult(_step(), (), ())).startswith(
        "FireResult(step=Step(case_id='c1', time=2.0, trigger='go', transition_id='t1', "
        "before=('a',), after=('b',), rules=('WM-1',), records=('note',), events=(")


def test_records_survive_pickling() -> None:
    deadline = load_procedure("west-midlands-2014").deadlines[0]
    for record in (_step(), _verdict(), FireResult(_step(), (_verdict(),), ("d1",)),
                   RunningDeadline(deadline, 1.0, None, 3.0)):
        assert pickle.loads(pickle.dumps(record)) == record


def test_a_case_starts_with_its_own_empty_mappings_and_reads_as_the_dataclass_did() -> None:
    one, two = Case("c1"), Case("c2")
    one.counts["decide"] = 1
    one.facts["disabled"] = True
    assert two.counts == {} and two.facts == {} and two.episode == {} and two.clocks == {}
    assert one != Case("c1")  # identity, as the dataclass with eq=False
    assert repr(Case("c3", {"x": True})) == (
        "Case(case_id='c3', facts={'x': True}, counts={}, episode={}, clocks={}, state=None)")
    ctx = one.guard_context()
    assert ctx.counts is one.counts and ctx.facts is one.facts


def test_the_transitions_machine_moves_a_case_it_can_decorate() -> None:
    from datetime import date

    from model.calendar import WorkingCalendar

    machine = CompiledProcedure(load_procedure("west-midlands-2014"),
                                WorkingCalendar(date(2025, 4, 1)))
    case, _ = machine.new_case("c1")
    assert isinstance(case, Case) and type(case) is not Case
    machine.fire(case, "decide_strategy_discussion", 2.0)
    assert case.counts == {"decide_strategy_discussion": 1}
    assert machine.configuration(case) == ("strategy_discussion.convening",)
