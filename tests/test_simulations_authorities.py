"""A scenario split into authorities: scaling, own streams, merged national records, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import write_scenario

from model.errors import InputError
from simulations.authorities import (
    SPREAD_COLUMNS,
    authority_list,
    authority_scenario,
    merge_summaries,
    shard_record_path,
)
from simulations.engine import Engine, replication_streams
from simulations.observers import InvariantMonitor
from simulations.runner import make_machine, run_scenario, settings_for
from simulations.scenario import load_scenario

SEED = 11


def _split(folder: Path, block: str = "authorities: 3\n", name: str = "split") -> Path:
    return write_scenario(folder, block, name)


def test_a_count_gives_equal_authorities_scaled_with_every_role(tmp_path: Path) -> None:
    sc = load_scenario(_split(tmp_path))
    found = authority_list(sc.spec)
    assert [a.name for a in found] == ["a001", "a002", "a003"]
    one = authority_scenario(sc, 1).spec
    assert one.authorities is None
    assert one.demand.referrals_per_year == pytest.approx(4136 / 3)
    assert one.staffing.social_workers.establishment_fte == pytest.approx(100 / 3)
    assert one.staffing.conference_chairs.count == 1  # 4 / 3 rounds to 1
    assert one.staffing.minute_takers.count == 1
    assert one.staffing.managers["team_manager"].count == 3
    assert load_scenario("baseline").spec.authorities is None


def test_a_list_of_shares_and_a_tiny_authority_keeps_one_of_each_role(tmp_path: Path) -> None:
    sc = load_scenario(_split(tmp_path, "authorities:\n  - {name: big, share: 0.99}\n"
                                        "  - {name: tiny, share: 0.0100004}\n"))
    tiny = authority_scenario(sc, 1).spec.staffing
    assert tiny.conference_chairs.count == 1 and tiny.minute_takers.count == 1
    assert tiny.managers["team_manager"].count == 1
    assert sum(a.share for a in authority_list(sc.spec)) == pytest.approx(1.0, abs=1e-12)


def test_a_size_distribution_gives_its_quantiles_smallest_first(tmp_path: Path) -> None:
    sc = load_scenario(_split(tmp_path, "authorities:\n  count: 5\n  basis: test\n"
                                        "  sizes: {lognormal: {median: 10, p90: 30}}\n"))
    shares = [a.share for a in authority_list(sc.spec)]
    assert shares == sorted(shares) and shares[0] < shares[-1] / 3
    assert sum(shares) == pytest.approx(1.0)
    middle = authority_scenario(sc, 2).spec
    assert middle.demand.referrals_per_year == pytest.approx(4136 * shares[2])
    assert shares[4] / shares[2] == pytest.approx(sc.spec.authorities.sizes.quantile(0.9) / 10)


@pytest.mark.parametrize(("dist", "p", "value"), [
    ("{uniform: [2, 4]}", 0.25, 2.5), ("{fixed: 3}", 0.9, 3.0),
    ("{triangular: [0, 0, 2]}", 0.75, 1.0), ("{exponential: 2}", 0.5, 2 * 0.6931471805599453),
    ("{lognormal: {median: 5, p90: 9}}", 0.9, 9.0),
    ("{empirical: [[0, 10, 1], [10, 20, 3]]}", 0.625, 15.0),
])
def test_quantiles_of_each_kind(dist: str, p: float, value: float) -> None:
    import yaml

    from simulations.scenario import DistSpec

    assert DistSpec.model_validate(yaml.safe_load(dist)).quantile(p) == pytest.approx(value)


@pytest.mark.parametrize(("block", "field", "says"), [
    ("authorities:\n  count: 3\n  basis: b\n  sizes: {uniform: [0, 0]}\n",
     "authorities", "no size"),
    ("authorities:\n  count: 3\n  sizes: {fixed: 1}\n", "authorities.basis", "required"),
    ("authorities: 0\n", "authorities", "greater than 0"),
    ("authorities: 5000\n", "authorities", "at most 1,000"),
    ("authorities:\n  - {name: x, share: 0.5}\n  - {name: y, share: 0.3}\n", "authorities",
     "add up to 0.8"),
    ("authorities:\n  - {name: x, share: 0.5}\n  - {name: x, share: 0.5}\n", "authorities",
     "x given twice"),
    ("authorities:\n  - {name: x, share: 1}\n  - {name: y, share: 0}\n", "authorities.1.share",
     "greater than 0"),
    ("authorities:\n  - {name: x, portion: 1}\n", "authorities.0.portion", "unknown key"),
    ("authorities: []\n", "authorities", "at least one authority"),
])
def test_bad_authorities_blocks_are_named_with_file_and_line(
        tmp_path: Path, block: str, field: str, says: str) -> None:
    path = _split(tmp_path, block, "bad")
    with pytest.raises(InputError) as caught:
        load_scenario(path)
    problems = [p for p in caught.value.problems if p.field == field]
    assert problems, caught.value.problems
    assert problems[0].file == str(path) and problems[0].line is not None
    assert says in str(problems[0])


def test_an_unsplit_scenario_keeps_its_streams() -> None:
    plain = replication_streams(5, 2)
    again = replication_streams(5, 2, None)
    shard = replication_streams(5, 2, 0)
    for name, rng in plain.items():
        first = rng.random(4).tolist()
        assert again[name].random(4).tolist() == first
        assert shard[name].random(4).tolist() != first


@pytest.mark.slow
def test_national_totals_are_the_sum_of_each_authority_run_alone(tmp_path: Path) -> None:
    sc = load_scenario(_split(tmp_path))
    settings = settings_for(sc, replications=1, seed=SEED, horizon_days=90, warm_up_days=20)
    out = tmp_path / "out"
    result = run_scenario(sc, settings, out)
    national = result.records[0]
    alone = []
    for a in range(3):
        own = authority_scenario(settings.for_scenario(sc), a)
        machine, calendar = make_machine(own, settings.machine)
        engine = Engine(own, machine, calendar, 0, SEED, [InvariantMonitor(own.procedure)],
                        authority=a)
        record = engine.run().to_json()
        stored = json.loads(shard_record_path(out, 0, a).read_text())["record"]
        assert stored == json.loads(json.dumps(record))  # the shard is that run, exactly
        alone.append(record)
    for name in ("cases_created", "cases_finished", "transitions", "plans_started",
                 "meetings_held", "chair_capacity", "leavers"):
        assert national[name] == sum(r[name] for r in alone), name
    assert national["transitions"] > 0
    for trigger, count in national["triggers"].items():
        assert count == sum(r["triggers"].get(trigger, 0) for r in alone)
    for did, row in national["deadlines"].items():
        for key in ("met", "missed", "n"):
            assert row[key] == sum(r["deadlines"][did][key] for r in alone)
    for name, values in national["series"].items():
        if name.startswith("stage:") or name in ("open_cases", "unallocated_queue"):
            assert values == [sum(v) for v in zip(*(r["series"][name] for r in alone),
                                                  strict=True)]
    rows = (out / "authorities.csv").read_text().splitlines()
    assert rows[0].startswith("authority,share,deadline:") and len(rows) == 4
    assert rows[2].startswith("a002,0.333333,")
    spread = list(csv.DictReader((out / "authorities-spread.csv").open()))
    assert tuple(spread[0]) == SPREAD_COLUMNS
    caseload = next(r for r in spread if r["id"] == "capacity:caseload_mean")
    low, p10, p90, high = (float(caseload[c]) for c in ("min", "p10", "p90", "max"))
    assert low <= p10 <= p90 <= high and low < high
    assert not (out / "events" / "authorities").exists()
    log = pq.read_table(out / "events" / "rep-0000.parquet")
    assert log.num_rows >= national["transitions"]
    assert {c.split("/")[0] for c in log.column("case_id").to_pylist()} == {
        "a001", "a002", "a003"}


@pytest.mark.slow
def test_one_and_two_workers_and_dask_give_the_same_national_tables(tmp_path: Path) -> None:
    sc = load_scenario(_split(tmp_path))
    settings = settings_for(sc, replications=2, seed=SEED, horizon_days=60, warm_up_days=10)
    run_scenario(sc, settings, tmp_path / "one")
    run_scenario(sc, settings, tmp_path / "two", workers=2)
    for name in ("kpis.csv", "replications/rep-0001.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    # a second run reuses every replication
    again = run_scenario(sc, settings, tmp_path / "one")
    assert again.reused == (0, 1)
    pytest.importorskip("dask.distributed")
    run_scenario(sc, settings, tmp_path / "dask", dask="local")
    assert (tmp_path / "one" / "kpis.csv").read_bytes() == \
        (tmp_path / "dask" / "kpis.csv").read_bytes()


def test_summaries_merge_counts_and_means_exactly() -> None:
    a = {"n": 2, "mean": 1.0, "median": 1.0, "p90": 1.5, "hist_width": 1.0, "hist": [1, 1]}
    b = {"n": 2, "mean": 3.0, "median": 3.0, "p90": 3.0, "hist_width": 1.0,
         "hist": [0, 0, 0, 2]}
    empty = {"n": 0, "mean": None, "median": None, "p90": None, "hist_width": 1.0, "hist": []}
    merged = merge_summaries([a, b, empty])
    assert merged["n"] == 4 and merged["hist"] == [1, 1, 0, 2]
    assert merged["mean"] == pytest.approx(2.0)
    assert 1.0 <= merged["median"] <= 3.0
    whole = {"n": 3, "mean": 1.0, "median": 1.0, "p90": 1.0, "hist_width": 1.0,
             "hist": [0, 3]}
    agreed = merge_summaries([whole, whole])  # whole-day times: the parts' median exactly
    assert agreed["median"] == 1.0 and agreed["p90"] == 1.0
    assert merge_summaries([empty])["mean"] is None
