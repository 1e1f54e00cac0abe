"""Drive runs generators and events exactly as SimPy's Process and Environment.run do."""

from __future__ import annotations

import gc
from collections.abc import Callable, Generator
from typing import Any

import pytest
import simpy
from simpy.events import URGENT

from simulations.drive import Drive


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
