"""Benchmarks for `make bench`: national scale, engine overhead, and parallel speed-up.

1. The `england` scenario for one simulated year (one replication, event log and monitors
   on), and in the same run two references: the reference loop of ``bench/reference.py``
   (SimPy driving a dict transition table of the same procedure over the same number of
   transitions) and a bare SimPy loop firing as many timeouts as the engine scheduled events.
   Prints wall time, peak memory, transitions per second and the ratios of the rates.
2. Eight replications of `baseline` on 1 worker and on 2 workers; prints the speed-up.

Targets (2-core machine, issue 13): at least 55,000 transitions/s on one core and a ratio of
at least 0.12 to the reference loop; the national year within 60 s on 2 workers, at most
1 GiB in any process; speed-up at least 1.8. The national year is still one pooled
process (England as 153 authority shards is not built yet), so its 2-worker time is not
measured. Timings are printed, never asserted in tests: the machine is shared.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import simpy
from reference import reference_loop

from simulations.engine import Engine
from simulations.eventlog import EventLogWriter
from simulations.observers import InvariantMonitor
from simulations.runner import make_machine, run_scenario, settings_for
from simulations.scenario import load_scenario


def _peak_rss_gib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory of this process (or of its largest finished child), GiB."""
    return resource.getrusage(who).ru_maxrss / (1024 ** 2)


def bare_simpy(timeouts: int) -> float:
    """Seconds for one process to fire ``timeouts`` SimPy timeouts."""
    env = simpy.Environment()

    def loop(env: simpy.Environment):  # type: ignore[no-untyped-def]
        for _ in range(timeouts):
            yield env.timeout(1.0)

    env.process(loop(env))
    start = time.perf_counter()
    env.run()
    return time.perf_counter() - start


def national_year(days: int) -> dict[str, float]:
    """Run `england` for ``days`` (one replication, event log and monitors on)."""
    sc = load_scenario("england")
    settings = settings_for(sc, 1, sc.spec.run.seed, days, 0)
    sc = settings.for_scenario(sc)
    machine, calendar = make_machine(sc, "table")
    with tempfile.TemporaryDirectory() as tmp:
        log = EventLogWriter(Path(tmp) / "events.parquet", 0, sc.spec.run.start_date)
        engine = Engine(sc, machine, calendar, 0, settings.seed,
                        [InvariantMonitor(sc.procedure), log])
        start = time.perf_counter()
        record = engine.run()
        log.close()
        wall = time.perf_counter() - start
    events = next(engine.env._eid)  # events the engine scheduled (SimPy's own counter)
    bare = bare_simpy(events)
    ref_wall, ref_fired = reference_loop(sc.procedure, record.transitions)
    return {"wall": wall, "transitions": record.transitions, "events": events,
            "bare_wall": bare, "cases": record.cases_created,
            "ref_wall": ref_wall, "ref_transitions": ref_fired}


def speedup(replications: int) -> tuple[float, float]:
    """Seconds for ``replications`` of `baseline` on 1 and on 2 workers."""
    sc = load_scenario("baseline")
    settings = settings_for(sc, replications, sc.spec.run.seed, None, None, "table", False)
    times = []
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            run_scenario(sc, settings, Path(tmp), workers=workers)
            times.append(time.perf_counter() - start)
    return times[0], times[1]


def main() -> int:
    """Run the benchmarks and print a small report; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--replications", type=int, default=8)
    args = parser.parse_args()
    r = national_year(args.days)
    rate = r["transitions"] / r["wall"]
    bare_rate = r["events"] / r["bare_wall"]
    peak = _peak_rss_gib()
    print(f"england, {args.days} simulated days, 1 replication: {r['cases']:,.0f} cases, "
          f"{r['transitions']:,.0f} transitions, {r['events']:,.0f} SimPy events")
    ref_rate = r["ref_transitions"] / r["ref_wall"]
    print(f"  wall time            {r['wall']:8.1f} s   (one pooled process; target <= 60 s "
          "on 2 workers as 153 authorities, not built yet)")
    print(f"  peak memory          {peak:8.2f} GiB (this process; target <= 1 GiB)")
    print(f"  transitions/s        {rate:10,.0f}   (one core; target >= 55,000)")
    print(f"  reference loop       {ref_rate:10,.0f}   transitions/s ({r['ref_transitions']:,.0f} "
          f"dict-table moves in SimPy in {r['ref_wall']:.1f} s, same run)")
    print(f"  ratio to reference   {rate / ref_rate:8.3f}   (target >= 0.12)")
    print(f"  bare SimPy events/s  {bare_rate:10,.0f}  ({r['events']:,.0f} timeouts in "
          f"{r['bare_wall']:.1f} s, same run)")
    print(f"  ratio to bare SimPy  {rate / bare_rate:8.3f}   (transitions/s over bare "
          "timeouts/s)")
    one, two = speedup(args.replications)
    print(f"baseline, {args.replications} replications: 1 worker {one:.1f} s, 2 workers "
          f"{two:.1f} s, speed-up {one / two:.2f} (target >= 1.8); peak memory of a worker "
          f"{_peak_rss_gib(resource.RUSAGE_CHILDREN):.2f} GiB")
    missed = [name for name, ok in (
        ("national year <= 60 s", r["wall"] <= 60),
        ("transitions/s >= 55,000", rate >= 55_000),
        ("ratio to reference >= 0.12", rate / ref_rate >= 0.12),
        ("memory <= 1 GiB", peak <= 1.0), ("speed-up >= 1.8", one / two >= 1.8)) if not ok]
    if missed:
        print("targets missed: " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
