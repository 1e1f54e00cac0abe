"""Driving the simulation's generators on a SimPy environment, as ``simpy.Process`` would.

The engine's cases and sources and the staff's absences, turnover and handovers are
generators that SimPy resumes with the events they wait on. :class:`Drive` runs them with
the same events in the same order as ``simpy.Process``, and cheaper, and keeps the ones
still running so that :meth:`Drive.stop_all` can end them at the horizon: a generator left
waiting holds its owner (the engine, the staff) in a reference cycle through the event it
waits on, which only the cycle collector could break, by visiting every object of the run
(:mod:`simulations.collector`).

On the hot path the drive also stands in for two of SimPy's Python-level parts, with the
same events at the same places in SimPy's queue: :meth:`Drive.timeout` for ``env.timeout``
and :class:`Desk` for ``simpy.Resource`` (architecture decision 15). It keeps the
environment's queue too, in SimPy's order, with entries that compare in C
(:class:`_Entry`). SimPy keeps its event counter and every other event (a case's
allocation, a worker's return).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator
from heapq import heapify, heappop, heappush
from typing import Any, Final

import simpy
from simpy import events as _simpy_events

_URGENT: Final = 0
_NORMAL: Final = 1
"""SimPy's two priorities (``simpy.events.URGENT``, ``NORMAL``), as constants: compiled,
a Final int is a C constant where an imported name is a dictionary lookup at each use."""
assert (_URGENT, _NORMAL) == (_simpy_events.URGENT, _simpy_events.NORMAL)


class Wake:
    """An event that is already decided: it fires with no value when its time comes.

    What :meth:`Drive.timeout` schedules (as ``simpy.Timeout``), what starts a generator
    (as ``Process``'s ``Initialize``) and what a :class:`Desk` grants and releases with. It
    has the attributes the event loop and a waiting generator read (``callbacks``, ``_ok``,
    ``_value``), so SimPy's processes can wait on one too. Compiled, building one is a C
    call; a SimPy event's ``__init__`` is a Python frame.

    The first generator to wait on a wake, when nothing else has yet, is kept as its
    ``waiter`` rather than as a bound method among its callbacks: :meth:`Drive.run`
    resumes it directly, then calls the callbacks (so in the order they came, as SimPy).
    Only :meth:`Drive.run` knows about the waiter, so only it may process wakes.
    """

    __slots__ = ("_ok", "_value", "callbacks", "waiter")

    def __init__(self) -> None:
        """Succeeded, with no value, and nobody waiting yet."""
        self.callbacks: list[Callable[[Any], None]] | None = []
        self._ok = True
        self._value: Any = None
        self.waiter: _Runner | None = None


Awaited = simpy.Event | Wake
"""What the driven generators wait on."""


class _Entry:
    """An event's place in the queue, in SimPy's order.

    By time, then priority (urgent first), then the order events were scheduled in
    (SimPy's event counter). SimPy's queue holds ``(time, priority, number, event)``
    tuples; comparing two is two comparisons of floats through Python's generic
    comparison. Compiled, comparing two of these is a C function on C fields (the queue's
    comparisons were about a twentieth of a run). In pure Python, ``__lt__`` is a Python
    call each time, which makes that build slower; the compiled one is the fast one.
    """

    __slots__ = ("at", "eid", "event", "priority")

    def __init__(self, at: float, priority: int, eid: int, event: Awaited) -> None:
        """``event``'s place: at ``at``, with ``priority`` and event number ``eid``."""
        self.at = at
        self.priority = priority
        self.eid = eid
        self.event = event

    def __lt__(self, other: _Entry) -> bool:
        """Whether this event comes first (numbers are unique, so the order is total)."""
        if self.at != other.at:
            return self.at < other.at
        if self.priority != other.priority:
            return self.priority < other.priority
        return self.eid < other.eid


def _push(drive: Drive, at: float, priority: int, event: Awaited) -> None:
    """Queue ``event`` for ``at`` as ``env.schedule`` would, with SimPy's event counter."""
    heappush(drive.queue, _Entry(at, priority, next(drive.eids), event))


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

    def __init__(self, drive: Drive, generator: Generator[Awaited, Any, None],
                 running: dict[_Runner, None]) -> None:
        """Schedule the generator's start, urgent, at the current time."""
        self.generator = generator
        self.running = running
        running[self] = None
        start = Wake()
        start.waiter = self
        _push(drive, drive.now, _URGENT, start)

    def stop(self) -> None:
        """Close the generator and let go of it, and so of everything its frame holds."""
        self.generator.close()
        self.generator = _nothing()
        del self.running[self]

    def resume(self, event: Awaited) -> None:
        """Send the event's value in; wait on what the generator yields next."""
        generator = self.generator
        while True:
            try:
                if event._ok:
                    event = generator.send(event._value)
                else:
                    assert isinstance(event, simpy.Event)  # a Wake never fails
                    event.defused = True  # as Process: the generator handles it or fails
                    event = generator.throw(event._value)
            except StopIteration:
                del self.running[self]
                return
            if isinstance(event, Wake):
                waiting = event.callbacks
                if waiting is not None:  # else processed already: go on at once, as SimPy
                    if not waiting and event.waiter is None:
                        event.waiter = self
                    else:
                        waiting.append(self.resume)
                    return
                continue
            callbacks = event.callbacks
            if callbacks is not None:
                callbacks.append(self.resume)
                return


class Desk:
    """A pool of interchangeable staff (managers of one level), first come first served.

    The same events in the same order as ``simpy.Resource``, which it stands in for on the
    engine's hot path (``tests/test_drive.py`` compares them): a request is granted at once
    when a place is free, else it waits in line; a release frees its place at once, and
    the event it schedules lets the first in line in when that event is processed. As
    ``Resource``, only the first in line is looked at each time. Compiled, a request and a
    release are C calls; ``Resource``'s are about a dozen Python frames between them.

    Attributes:
        capacity: How many can be served at once.
        users: The requests being served.
        queue: The requests waiting, in arrival order.
    """

    def __init__(self, drive: Drive, capacity: int) -> None:
        """An empty pool of ``capacity`` places on ``drive``'s environment."""
        if capacity <= 0:
            raise ValueError('"capacity" must be > 0.')  # as simpy.Resource
        self._drive = drive
        self.capacity = capacity
        self.users: list[Wake] = []
        self.queue: list[Wake] = []

    def request(self) -> Wake:
        """Join the line: the event fires when this request is granted a place."""
        request = Wake()
        self.queue.append(request)
        self._let_in(request)
        return request

    def release(self, request: Wake) -> None:
        """Give back the place ``request`` was granted."""
        self.users.remove(request)
        done = self._drive.timeout(0)
        callbacks = done.callbacks
        assert callbacks is not None
        callbacks.append(self._let_in)

    def _let_in(self, _event: Awaited) -> None:
        """Grant the first in line a place, if one is free (``Resource._trigger_put``)."""
        queue = self.queue
        if queue and len(self.users) < self.capacity:
            first = queue.pop(0)
            self.users.append(first)
            drive = self._drive
            _push(drive, drive.now, _NORMAL, first)


class Drive:
    """The generators running on one environment, and the environment's queue.

    From the moment a drive is made, it keeps the environment's queue of events, in
    SimPy's order (:class:`_Entry`): SimPy's own events are scheduled through it (it takes
    over ``env.schedule``), and only :meth:`run` processes them. ``env.run``, ``env.step``
    and ``env.peek`` must not be used on that environment again.
    """

    def __init__(self, env: simpy.Environment) -> None:
        """Drive generators on ``env``, and keep its queue from now on.

        Raises:
            ValueError: another drive keeps ``env``'s queue already.
        """
        if isinstance(getattr(env.schedule, "__self__", None), Drive):
            raise ValueError("this environment has a drive already: share that one")
        self.env = env
        self.now: float = env._now
        """The simulated time (``env.now``, kept here too: a compiled read is a C field)."""
        self._running: dict[_Runner, None] = {}
        # SimPy's queue and event counter, kept here: compiled, a field of the drive is a C
        # read, an attribute of the environment a Python lookup
        self.queue: list[_Entry] = [_Entry(at, priority, eid, event)
                                    for at, priority, eid, event in env._queue]
        heapify(self.queue)
        env._queue.clear()
        self.eids: itertools.count[int] = env._eid
        setattr(env, "schedule", self._schedule)  # noqa: B010  # SimPy's events come here

    def _schedule(self, event: simpy.Event, priority: int = _NORMAL, delay: float = 0) -> None:
        """``env.schedule``: queue a SimPy event ``delay`` from now, as SimPy would."""
        _push(self, self.now + delay, priority, event)

    def start(self, generator: Generator[Awaited, Any, None]) -> None:
        """Start ``generator`` now (after what is already due now)."""
        _Runner(self, generator, self._running)

    def timeout(self, delay: float) -> Wake:
        """An event ``delay`` from now, scheduled as ``env.timeout(delay)`` schedules one.

        The same place in the queue (time, priority, SimPy's event counter), so the order
        of everything the run does is as with ``env.timeout``.
        """
        if delay < 0:
            raise ValueError(f"Negative delay {delay}")
        wake = Wake()
        _push(self, self.now + delay, _NORMAL, wake)
        return wake

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
        self._schedule(stop, _URGENT, until - env._now)
        queue = self.queue
        pop = heappop  # a local: compiled, the module's name is a dictionary lookup a call
        while queue:
            entry = pop(queue)
            now = entry.at
            event = entry.event
            if now != self.now:  # SimPy's own events read the time from the environment
                env._now = now
                self.now = now
            if isinstance(event, Wake):  # most events: compiled attributes, no bound method
                waiting = event.callbacks
                event.callbacks = None
                waiter = event.waiter
                if waiter is not None:
                    event.waiter = None
                    waiter.resume(event)
                if waiting:
                    for callback in waiting:
                        callback(event)
                continue
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
        self.queue.clear()

    def __len__(self) -> int:
        """How many generators are running."""
        return len(self._running)
