"""Driving the simulation's generators on a SimPy environment, as ``simpy.Process`` would.

The engine's cases and sources and the staff's absences, turnover and handovers are
generators that SimPy resumes with the events they wait on. :class:`Drive` runs them with
the same events in the same order as ``simpy.Process``, and cheaper, and keeps the ones
still running so that :meth:`Drive.stop_all` can end them at the horizon: a generator left
waiting holds its owner (the engine, the staff) in a reference cycle through the event it
waits on, which only the cycle collector could break, by visiting every object of the run
(:mod:`simulations.collector`).
"""

from __future__ import annotations

from collections.abc import Generator
from heapq import heappop
from typing import Any

import simpy
from simpy.events import URGENT


def _nothing() -> Generator[simpy.Event, Any, None]:
    """A generator with nothing to do: what a stopped runner is left holding."""
    return
    yield


class _Runner:
    """Runs one generator, as ``simpy.Process`` would.

    The same events in the same order: the first resume is an urgent event scheduled at
    once (``Process``'s ``Initialize``), and each event the generator yields resumes it
    with its value. Left out are what none of ours needs: the process as an event itself
    (nobody waits for one to end; its end event fired nothing) and the active process
    (only preemption reads it). Compiled, a resume is a C call, not a Python frame.
    """

    __slots__ = ("generator", "running")

    def __init__(self, env: simpy.Environment, generator: Generator[simpy.Event, Any, None],
                 running: dict[_Runner, None]) -> None:
        """Schedule the generator's start, urgent, at the current time."""
        self.generator = generator
        self.running = running
        running[self] = None
        start = simpy.Event(env)
        start._ok = True
        start._value = None
        callbacks = start.callbacks
        assert callbacks is not None
        callbacks.append(self.resume)
        env.schedule(start, URGENT)

    def stop(self) -> None:
        """Close the generator and let go of it, and so of everything its frame holds."""
        self.generator.close()
        self.generator = _nothing()
        del self.running[self]

    def resume(self, event: simpy.Event) -> None:
        """Send the event's value in; wait on what the generator yields next."""
        generator = self.generator
        while True:
            try:
                if event._ok:
                    event = generator.send(event._value)
                else:
                    event.defused = True  # as Process: the generator handles it or fails
                    event = generator.throw(event._value)
            except StopIteration:
                del self.running[self]
                return
            callbacks = event.callbacks
            if callbacks is not None:
                callbacks.append(self.resume)
                return


class Drive:
    """The generators running on one environment."""

    def __init__(self, env: simpy.Environment) -> None:
        """Drive generators on ``env``."""
        self.env = env
        self._running: dict[_Runner, None] = {}

    def start(self, generator: Generator[simpy.Event, Any, None]) -> None:
        """Start ``generator`` now (after what is already due now)."""
        _Runner(self.env, generator, self._running)

    def run(self, until: float) -> None:
        """Process the environment's events up to ``until``, as ``env.run(until)`` does.

        The same events in the same order, and the same arithmetic for the stop event's
        time; only the loop is ours, so that compiled it costs no Python frame an event
        (SimPy's ``step`` is one). A failed event nobody defused ends the run as in SimPy.
        """
        env = self.env
        if until <= env._now:
            raise ValueError(f"until ({until}) must be later than the current time")
        stop = simpy.Event(env)  # as SimPy: urgent, so it comes before all else at `until`
        stop._ok = True
        stop._value = None
        env.schedule(stop, URGENT, until - env._now)
        queue = env._queue
        while queue:
            now, _, _, event = heappop(queue)
            env._now = now
            callbacks = event.callbacks
            event.callbacks = None  # type: ignore[assignment]  # SimPy: processed
            if event is stop:
                return
            assert callbacks is not None
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                failure: BaseException = event._value
                crash = type(failure)(*failure.args)
                crash.__cause__ = failure
                raise crash
        raise RuntimeError(f"no events left before {until}, not even the stop")  # unreachable

    def stop_all(self) -> None:
        """End the run: close what still runs, in the order it started; empty the queue.

        Nothing the run made is then left in a reference cycle.
        """
        for runner in list(self._running):
            runner.stop()
        self.env._queue.clear()

    def __len__(self) -> int:
        """How many generators are running."""
        return len(self._running)
