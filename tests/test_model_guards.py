"""Each guard's declared inputs (model.guards) are confirmed by probing it once, here.

Everything else (the checker, paths, timescales, the explorer, walk and story) trusts the
declaration; this is the one place a guard is probed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping

import pytest

from model.guards import FACTS, GUARDS, GuardContext, fact_classes, facts_read, reads_counts


class Recording(Mapping[str, object]):
    """A mapping that remembers every key looked up, and refuses to be iterated."""

    def __init__(self, values: Mapping[str, object]) -> None:
        self.values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> object:
        self.read.add(key)
        return self.values[key]

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return key in self.values

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("a guard may not iterate over its inputs: it must name them")

    def __len__(self) -> int:
        raise AssertionError("a guard may not count its inputs: it must name them")


def _contexts(name: str, top: int) -> Iterator[tuple[GuardContext, Recording, Recording,
                                                     Recording]]:
    guard = GUARDS[name]
    triggers = sorted(guard.counts | guard.episode)
    for combo in itertools.product((False, True), repeat=len(FACTS)):
        for values in itertools.product(range(top + 1), repeat=len(triggers)):
            counts = dict(zip(triggers, values, strict=True))
            facts = Recording(dict(zip(FACTS, combo, strict=True)))
            whole, episode = Recording(counts), Recording(counts)
            yield GuardContext(facts, whole, episode), facts, whole, episode


@pytest.mark.parametrize("name", sorted(GUARDS))
def test_a_guard_reads_only_what_it_declares(name):
    guard = GUARDS[name]
    for ctx, facts, whole, episode in _contexts(name, guard.saturates_at + 2):
        guard.fn(ctx)
        assert facts.read <= guard.facts, f"{name} reads facts {facts.read - guard.facts}"
        assert whole.read <= guard.counts, f"{name} reads counts {whole.read - guard.counts}"
        assert episode.read <= guard.episode, (
            f"{name} reads episode counts {episode.read - guard.episode}")


@pytest.mark.parametrize("name", sorted(g for g in GUARDS if reads_counts(g)))
def test_a_guard_is_constant_above_its_saturation_count(name):
    guard = GUARDS[name]
    top = guard.saturates_at
    for ctx, *_ in _contexts(name, top + 3):
        clipped = GuardContext(ctx.facts, {k: min(v, top) for k, v in
                                           dict(ctx.counts.values).items()},
                               {k: min(v, top) for k, v in
                                dict(ctx.episode.values).items()})
        assert guard.fn(ctx) == guard.fn(clipped), f"{name} changes above {top}"


@pytest.mark.parametrize("name", sorted(g for g in GUARDS if reads_counts(g)))
def test_a_declared_saturation_is_needed(name):
    """The declared count is the smallest that works: one lower, some answer changes."""
    guard = GUARDS[name]
    top = guard.saturates_at - 1
    differs = False
    for ctx, *_ in _contexts(name, top + 1):
        clipped = GuardContext(ctx.facts, {k: min(v, top) for k, v in
                                           dict(ctx.counts.values).items()},
                               {k: min(v, top) for k, v in
                                dict(ctx.episode.values).items()})
        differs = differs or guard.fn(ctx) != guard.fn(clipped)
    assert differs, f"{name}: saturates_at could be {top}"


def test_every_declared_fact_is_registered_and_read_by_some_guard():
    declared = set().union(*(g.facts for g in GUARDS.values()))
    assert declared == set(FACTS)


def test_fact_classes_split_by_every_fact_a_guard_reads():
    classes = fact_classes(GUARDS)
    members = [m for c in classes for m in c.members]
    assert len(members) == 2 ** len(facts_read(GUARDS))
    assert len({tuple(sorted(m.items())) for m in members}) == len(members)
    for c in classes:
        for m in c.members:
            ctx = GuardContext(facts=m)
            assert {g for g in GUARDS if GUARDS[g].fn(ctx)} == c.holds
    assert classes[0].facts == {}


@pytest.mark.parametrize("name", sorted(GUARDS))
def test_a_guard_reads_an_absent_fact_as_no_and_an_absent_count_as_0(name):
    """Analyses pass only some keys (paths: the true facts; the explorer's tables: none)."""
    guard = GUARDS[name]
    facts = sorted(guard.facts)
    keys = [("counts", t) for t in sorted(guard.counts)] + [
        ("episode", t) for t in sorted(guard.episode)]
    for fact_values in itertools.product((None, False, True), repeat=len(facts)):
        for counts in itertools.product((None, *range(guard.saturates_at + 1)),
                                        repeat=len(keys)):
            given = {part: {t: v for (p, t), v in zip(keys, counts, strict=True)
                            if p == part and v is not None} for part in ("counts", "episode")}
            whole = {part: {t: v or 0 for (p, t), v in zip(keys, counts, strict=True)
                            if p == part} for part in ("counts", "episode")}
            partial = GuardContext({f: v for f, v in zip(facts, fact_values, strict=True)
                                    if v is not None}, given["counts"], given["episode"])
            full = GuardContext({f: bool(v) for f, v in zip(facts, fact_values, strict=True)},
                                whole["counts"], whole["episode"])
            assert guard.fn(partial) == guard.fn(full), (name, partial)
