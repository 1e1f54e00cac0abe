"""Pausing the cyclic garbage collector for the length of a simulation job.

A run allocates tens of thousands of long-lived objects (cases, steps, events) and makes
almost no reference cycles (``tests/test_engine_caches.py`` checks), so the collector's
passes over them find next to nothing. Pausing it only for :meth:`Engine.run` is not
enough: it comes back while the engine is still alive, and its next passes over the young
generation then visit every object the run made, two or three times as they are promoted,
while the event log is closed and the record written (0.03 to 0.3 s after a `baseline`
year that ran in 0.4 s, measured). So a job keeps the collector paused from building the
engine until it has let go of it, and turns it back on only then. By then reference
counting has freed the run: :meth:`simulations.drive.Drive.stop_all` ends what still waited
at the horizon, which would otherwise hold the engine in a cycle.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Turn the cyclic collector off for the block; back as it was afterwards (nests)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
