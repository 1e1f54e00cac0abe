"""Steady state measured: MSER-5 warm-ups, the trend test, the transient record and the report."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from helpers import engine_for
from scipy import stats

from reports.report import build_report
from simulations.runner import run_scenario, settings_for
from simulations.scenario import load_scenario
from simulations.steady import (
    mser5,
    steady_lines,
    steady_state,
    t975,
    trend,
    warm_up,
)

N = 200
WEEK = 7.0


def _ramp_then_flat(seed: int, ramp: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    level = np.concatenate([np.linspace(0.0, 100.0, ramp), np.full(N - ramp, 100.0)])
    return level + rng.normal(0.0, 3.0, N)


def _ar1(seed: int, n: int = N, phi: float = 0.8, mean: float = 100.0,
         sd: float = 5.0) -> np.ndarray:
    """Stationary AR(1) noise around ``mean`` with marginal standard deviation ``sd``."""
    rng = np.random.default_rng(seed)
    out = np.empty(n)
    out[0] = rng.normal(0.0, sd)
    shocks = rng.normal(0.0, sd * math.sqrt(1 - phi**2), n)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + shocks[i]
    return mean + out


# -- MSER-5 ----------------------------------------------------------------------------------
def test_mser5_cuts_a_ramp_near_its_end():
    """A ramp over 60 samples then flat noise: the cut lands at or just after sample 60."""
    cuts = [mser5(_ramp_then_flat(seed)) for seed in range(50)]
    assert all(c % 5 == 0 for c in cuts)
    assert 55 <= float(np.median(cuts)) <= 70
    assert sum(55 <= c <= 80 for c in cuts) >= 45
    # a longer ramp moves the cut with it
    assert 95 <= mser5(_ramp_then_flat(0, ramp=100)) <= 110


def test_mser5_cuts_a_flat_series_near_the_start():
    cuts = [mser5(100.0 + np.random.default_rng(seed).normal(0.0, 3.0, N))
            for seed in range(50)]
    assert float(np.median(cuts)) <= 5
    assert sum(c <= 20 for c in cuts) >= 40
    assert mser5([4.0] * 40) == 0  # equal minima: the shortest warm-up


def test_mser5_on_a_pure_ramp_hits_the_half_way_boundary():
    values = np.linspace(0.0, 100.0, N) + np.random.default_rng(3).normal(0.0, 3.0, N)
    days = [WEEK * i for i in range(N)]
    found = warm_up(days, values)
    assert found.at_boundary
    assert found.index == (N // 5 // 2) * 5  # half the batches
    assert found.day == days[found.index]
    settled = warm_up(days, _ramp_then_flat(0))
    assert not settled.at_boundary and settled.day == days[settled.index]


def test_mser5_uses_batches_of_five_and_drops_a_short_last_batch():
    """Two high batches then zeros: cut at 10; 3 trailing values do not form a batch."""
    assert mser5([10.0] * 10 + [0.0] * 30 + [1000.0] * 3) == 10


def test_mser5_refuses_too_short_a_series():
    with pytest.raises(ValueError, match="20 observations"):
        mser5([1.0] * 19)


# -- the trend test --------------------------------------------------------------------------
def test_t_quantiles_match_scipy():
    for df in range(1, 120):
        assert t975(df) == pytest.approx(float(stats.t.ppf(0.975, df)), abs=1e-3)


def test_trend_flags_a_steady_rise():
    days = [WEEK * i for i in range(120)]
    values = 100.0 + np.array(days) / 365.25 * 10.0 + np.random.default_rng(0).normal(0, 3, 120)
    found = trend(days, list(values), name="open_plans")
    assert found.trends
    assert found.low <= 10.0 <= found.high  # the true slope, 10 a year
    assert found.low > 0
    assert found.relative_change == pytest.approx(found.relative_slope * found.years)
    assert found.sentence.startswith("open_plans still rises by")
    assert "not steady-state figures" in found.sentence
    falling = trend(days, list(values[::-1]), name="open_cases")
    assert falling.trends and falling.slope < 0 and "still falls" in falling.sentence


def test_trend_does_not_flag_stationary_ar1_noise():
    days = [WEEK * i for i in range(N)]
    found = trend(days, list(_ar1(11)), name="open_cases")
    assert not found.trends
    assert "no material trend" in found.sentence
    # without the materiality threshold the interval alone rarely excludes zero
    flagged = [trend(days, list(_ar1(seed)), materiality=0.0).trends for seed in range(200)]
    assert sum(flagged) / len(flagged) <= 0.12


def test_a_clear_but_immaterial_slope_is_not_a_trend():
    days = [WEEK * i for i in range(N)]
    values = 100.0 + np.array(days) / 365.25 * 0.5 + np.random.default_rng(1).normal(0, .1, N)
    found = trend(days, list(values))
    assert found.low > 0  # the slope is certain ...
    assert abs(found.relative_change) < 0.05 and not found.trends  # ... but small
    assert trend(days, list(values), materiality=0.01).trends


def test_trend_of_an_empty_stock_is_not_judged():
    found = trend([WEEK * i for i in range(40)], [0.0] * 40, name="open_plans")
    assert not found.trends and "no trend can be judged" in found.sentence


# -- records ---------------------------------------------------------------------------------
def _record(days, cases, plans=None, warm_up_days=100.0, replication=0):
    transient = {"days": list(days), "open_cases": list(cases)}
    if plans is not None:
        transient["open_plans"] = list(plans)
    return {"replication": replication, "warm_up_hours": warm_up_days * 24.0,
            "horizon_hours": days[-1] * 24.0, "transient": transient}


def test_steady_state_takes_the_longest_warm_up_and_pools_the_trend():
    days = [WEEK * i for i in range(N)]
    late = _ramp_then_flat(1, ramp=80)
    early = _ramp_then_flat(2, ramp=20)
    records = [_record(days, early, early, warm_up_days=300.0),
               _record(days, late, late, warm_up_days=300.0, replication=1)]
    cases = steady_state(records)["open_cases"]
    assert cases is not None
    each = [w.day for w in cases.warm_ups]
    assert cases.recommended_days == max(each)
    assert each[0] < each[1] and 75 * WEEK <= cases.recommended_days <= 95 * WEEK
    assert cases.configured_days == 300.0
    assert cases.settled and not cases.long_enough
    longer = steady_state([dict(r, warm_up_hours=1000 * 24.0) for r in records])["open_cases"]
    assert longer is not None and longer.long_enough
    assert longer.trend is not None and not longer.trend.trends


def test_the_trend_is_tested_on_the_mean_of_the_replications_after_the_warm_up():
    """Opposite drifts cancel in the mean; the warm-up's samples are left out of the test."""
    days = [WEEK * i for i in range(N)]
    noise = np.random.default_rng(5).normal(0.0, 1.0, N)
    up = 100.0 + np.array(days) / 365.25 * 20.0 + noise
    down = 200.0 - np.array(days) / 365.25 * 20.0 + noise
    alone = steady_state([_record(days, up)])["open_cases"]
    assert alone is not None and alone.trend is not None and alone.trend.trends
    both = steady_state([_record(days, up), _record(days, down, replication=1)])["open_cases"]
    assert both is not None and both.trend is not None and not both.trend.trends
    # a rise during the warm-up only is not a trend of the measured period
    rise = np.minimum(np.arange(N), 100) + 50.0 + noise
    after = steady_state([_record(days, rise, warm_up_days=100 * WEEK)])["open_cases"]
    assert after is not None and after.trend is not None and not after.trend.trends
    before = steady_state([_record(days, rise, warm_up_days=20 * WEEK)])["open_cases"]
    assert before is not None and before.trend is not None and before.trend.trends


def test_steady_state_treats_a_record_without_transient_as_missing():
    days = [WEEK * i for i in range(N)]
    full = _record(days, _ramp_then_flat(0), _ramp_then_flat(1))
    old = {k: v for k, v in full.items() if k != "transient"}
    assert steady_state([full, old]) == {"open_cases": None, "open_plans": None}
    no_plans = steady_state([_record(days, _ramp_then_flat(0))])
    assert no_plans["open_plans"] is None and no_plans["open_cases"] is not None
    empty = steady_state([dict(full, transient={"days": []})])  # a conformed record
    assert empty["open_cases"] is None
    lines = steady_lines(steady_state([full, old]))
    assert all("not recorded from day 0" in line for line in lines)


def test_a_short_run_is_reported_as_too_short_not_judged():
    days = [WEEK * i for i in range(10)]
    check = steady_state([_record(days, range(10), warm_up_days=21.0)])["open_cases"]
    assert check is not None
    assert check.warm_ups == () and check.recommended_days is None
    assert not check.long_enough and check.trend is not None  # 7 measured samples
    assert "too short for MSER-5" in steady_lines({"open_cases": check})[0]


# -- the engine and the report ---------------------------------------------------------------
def test_engine_records_the_transient_from_day_0():
    engine = engine_for("baseline", 7, 120, 30)
    data = engine.run().to_json()
    transient = data["transient"]
    every = engine.spec.run.sample_every_days
    assert transient["days"][0] == 0
    assert transient["days"] == list(range(0, 120, every))
    assert set(transient) == {"days", "open_cases", "open_plans"}
    assert len(transient["open_cases"]) == len(transient["open_plans"]) == len(transient["days"])
    assert transient["open_cases"][0] == 0.0 and transient["open_cases"][-1] > 0
    # the measured part of the transient is the post-warm-up series, sample for sample
    measured = [i for i, d in enumerate(transient["days"]) if d in data["sample_days"]]
    assert data["sample_days"][0] >= 30 and transient["days"][measured[0]] >= 30
    assert [transient["open_cases"][i] for i in measured] == data["series"]["open_cases"]
    assert [transient["open_plans"][i] for i in measured] == data["series"]["stage:cp_plan"]


def test_report_has_the_steady_state_section(tmp_path: Path):
    """A run with a 30-day warm-up: open plans are still rising, and the report says so."""
    sc = load_scenario("baseline")
    settings = settings_for(sc, 2, 7, 300, 30, "table", False)
    run_scenario(sc, settings, tmp_path)
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert '<a href="#steady-state">Steady state</a>' in html
    start = html.index('<h2 id="steady-state">Steady state</h2>')
    section = html[start:html.index('<h2 id="figures">')]
    assert "<code>open_cases</code>" in section and "<code>open_plans</code>" in section
    assert "30 days" in section  # the configured warm-up
    assert "open_plans still rises by" in section
    assert "the results are not steady-state figures." in section
    assert '<p class="alert"><code>open_plans</code>' in section
    assert "not recorded" not in section
