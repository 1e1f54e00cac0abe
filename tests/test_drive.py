"""Drive runs generators and events exactly as SimPy's Process and Environment.run do."""

from __future__ import annotations

import gc
import heapq
from collections.abc import Callable, Generator
from typing import Any

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st
from simpy.events import URGENT

from simulations.drive import Awaited, Desk, Drive, _Entry


def _world(env: simpy.Environment, start: Callable[[Generator[simpy.Event, Any, None]], object],
           seen: list[tuple[float, str]]) -> None:
    """Processes that tie at the same times, urgent events, and one at the horizon."""

    def ticker(name: str, gap: float) -> Generator[simpy.Event, Any, None]:
        while True:
            yield env.timeout(gap)
            seen.append((env.now, name))

    def waiter() -> Generator[simpy.Event, Any, None]:
        done = env.event()
        done._ok, done._value = True, None
        env.schedule(done, URGENT, 3.0)  # urgent, at a time a ticker also fires
        yield done
        seen.append((env.now, "urgent"))
        yield env.timeout(7.0)  # lands on the horizon, after the stop: never seen
        seen.append((env.now, "at the horizon"))

    for name, gap in (("a", 1.0), ("b", 1.5), ("c", 0.5)):
        start(ticker(name, gap))
    start(waiter())


def test_drive_runs_the_same_events_in_the_same_order_as_simpy() -> None:
    theirs: list[tuple[float, str]] = []
    env = simpy.Environment()
    _world(env, env.process, theirs)
    env.run(until=10.0)
    mine: list[tuple[float, str]] = []
    env2 = simpy.Environment()
    drive = Drive(env2)
    _world(env2, drive.start, mine)
    drive.run(10.0)
    assert mine == theirs
    assert (10.0, "at the horizon") not in mine and (3.0, "urgent") in mine
    assert env2.now == env.now == 10.0
    assert len(drive) == 4  # all still running at the horizon


def test_a_failed_event_nobody_handles_ends_the_run_as_in_simpy() -> None:
    env = simpy.Environment()
    drive = Drive(env)

    def failing() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(1.0)
        bad = env.event()
        bad.fail(KeyError("lost"))
        yield env.timeout(1.0)

    drive.start(failing())
    with pytest.raises(KeyError) as caught:
        drive.run(5.0)
    assert isinstance(caught.value.__cause__, KeyError)
    with pytest.raises(ValueError, match="later than"):
        drive.run(env.now)


def test_stopping_frees_what_waited_without_the_collector() -> None:
    env = simpy.Environment()
    drive = Drive(env)
    freed: list[str] = []

    class Owner:
        def __del__(self) -> None:
            freed.append("owner")

    def holds(owner: Owner) -> Generator[simpy.Event, Any, None]:
        yield env.event()  # waits for ever

    drive.start(holds(Owner()))
    drive.run(1.0)
    assert len(drive) == 1
    was = gc.isenabled()
    gc.disable()
    try:
        drive.stop_all()
        assert freed == ["owner"] and len(drive) == 0
    finally:
        if was:
            gc.enable()


Job = tuple[int, list[tuple[int, int]]]
"""When a job arrives, then for each time it asks the pool: how long it works before
asking, and how long it holds its place."""


def _queueing(jobs: list[Job], seen: list[tuple[float, int, str]], *, simpy_side: bool,
              capacity: int) -> None:
    """Jobs that arrive (often at the same moment), ask a pool for a place, hold it, leave.

    One side is SimPy's own (``env.process``, ``env.timeout``, ``simpy.Resource``), the
    other the engine's (``Drive.start``, ``Drive.timeout``, ``Desk``). Zero waits put many
    events at the same moment, where only the order SimPy gives them tells the sides apart.
    """
    env = simpy.Environment()
    drive = None if simpy_side else Drive(env)  # a drive keeps its environment's queue
    desk = None if drive is None else Desk(drive, capacity)
    resource = simpy.Resource(env, capacity=capacity)

    def wait(delay: float) -> Awaited:
        return env.timeout(delay) if drive is None else drive.timeout(delay)

    def job(number: int, arrive: int, rounds: list[tuple[int, int]]
            ) -> Generator[Awaited, Any, None]:
        yield wait(arrive)
        seen.append((env.now, number, "arrives"))
        for before, hold in rounds:
            yield wait(before)
            seen.append((env.now, number, "asks"))
            if simpy_side:
                with resource.request() as request:
                    yield request
                    seen.append((env.now, number, "served"))
                    yield wait(hold)
            else:
                assert desk is not None
                mine = desk.request()
                yield mine
                seen.append((env.now, number, "served"))
                yield wait(hold)
                desk.release(mine)
            seen.append((env.now, number, "done"))

    for number, (arrive, rounds) in enumerate(jobs):
        if drive is None:
            env.process(job(number, arrive, rounds))  # type: ignore[arg-type]  # all Events
        else:
            drive.start(job(number, arrive, rounds))
    if drive is None:
        env.run(until=1000)
    else:
        drive.run(1000)


@settings(max_examples=100)
@given(jobs=st.lists(st.tuples(st.integers(0, 3),
                               st.lists(st.tuples(st.integers(0, 1), st.integers(0, 2)),
                                        min_size=1, max_size=3)),
                     max_size=12),
       capacity=st.integers(1, 3))
def test_desk_and_drive_timeouts_keep_simpys_order(jobs: list[Job], capacity: int) -> None:
    """Same moments, same order of service as SimPy's Resource and Timeout."""
    theirs: list[tuple[float, int, str]] = []
    mine: list[tuple[float, int, str]] = []
    _queueing(jobs, theirs, simpy_side=True, capacity=capacity)
    _queueing(jobs, mine, simpy_side=False, capacity=capacity)
    assert mine == theirs


def test_a_desk_without_places_is_refused_as_simpy_refuses_it() -> None:
    env = simpy.Environment()
    with pytest.raises(ValueError, match="capacity"):
        simpy.Resource(env, capacity=0)
    with pytest.raises(ValueError, match="capacity"):
        Desk(Drive(env), 0)


@given(st.lists(st.tuples(st.sampled_from([0.0, 1.0, 2.5, 1e9]), st.sampled_from([0, 1])),
                max_size=40))
def test_queue_entries_order_as_simpys_tuples(keys: list[tuple[float, int]]) -> None:
    """By time, then priority, then event number: many ties, so every rule is used."""
    theirs = [(at, priority, eid, None) for eid, (at, priority) in enumerate(keys)]
    mine = [_Entry(at, priority, eid, simpy.Event(simpy.Environment()))
            for eid, (at, priority) in enumerate(keys)]
    heapq.heapify(mine)
    popped = [heapq.heappop(mine) for _ in range(len(keys))]
    assert [(e.at, e.priority, e.eid) for e in popped] == [t[:3] for t in sorted(theirs)]


def test_a_drive_takes_over_what_was_queued_before_it() -> None:
    env = simpy.Environment()
    seen: list[float] = []
    early = env.timeout(2.0)  # scheduled by SimPy before the drive exists
    early.callbacks.append(lambda _event: seen.append(env.now))
    drive = Drive(env)
    drive.timeout(1.0).callbacks.append(lambda _event: seen.append(env.now))  # type: ignore[union-attr]
    drive.run(5.0)
    assert seen == [1.0, 2.0] and not env._queue


def test_an_environment_has_one_drive() -> None:
    env = simpy.Environment()
    Drive(env)
    with pytest.raises(ValueError, match="has a drive already"):
        Drive(env)
