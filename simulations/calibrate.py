"""Estimate a scenario from conformed case data: volume, branching, durations, plan endings.

Only children whose every event conforms are used. Each estimate is written with the counts
behind it and a 95% interval, as a scenario that extends a base scenario (staffing and
anything the data cannot show stay as the base has them), so the result runs at once.

What the data can show: the referral rate and re-referral share; at each decision the base
scenario models, how often each move was taken (a move the data cannot see is inferred as
the shortest unrecorded path, which is exact where the next recorded event tells the moves
apart, as for referral decisions, enquiry and conference outcomes); how long a stage lasts
where both its start and its end are recorded (assessments); and at which review a plan
ends.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from model.calendar import WorkingCalendar
from model.compiler import Step
from model.spec import EventRef, Procedure
from simulations.casedata import cin_mapping
from simulations.conform import ConformResult
from simulations.scenario import ChoiceSpec, Scenario
from simulations.stats import exact_binomial_ci

MIN_COUNT = 30
"""Fewer observations than this and the base scenario's value is kept (and the note says so)."""


@dataclass
class Estimate:
    """One estimated number with its evidence."""

    value: float
    count: int
    total: int
    low: float
    high: float


@dataclass
class Calibration:
    """Everything estimated from one data set."""

    data: Path
    sha256: str
    children: int
    events: int
    days: int
    referrals_per_year: Estimate | None = None
    new_cases_per_year: Estimate | None = None
    re_referral_share: Estimate | None = None
    choices: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    by_visit: dict[str, list[dict[str, Estimate]]] = field(default_factory=dict)
    durations: dict[str, tuple[list[tuple[float, float, float]], int, float]] = field(
        default_factory=dict)
    kept: list[str] = field(default_factory=list)
    closed_states: tuple[str, ...] = ()
    """Where a closed case rests (the states the procedure's ``closure`` event enters)."""


def _share(count: int, total: int) -> Estimate:
    low, high = exact_binomial_ci(count, total)
    return Estimate(count / total if total else math.nan, count, total, low, high)


def calibrate(result: ConformResult, data: Path, base: Scenario) -> Calibration:
    """Estimate what the data shows; ``result`` must come from ``conform(keep_steps=True)``."""
    proc = base.procedure
    mapping = cin_mapping(proc)
    assert result.first_day is not None and result.last_day is not None
    days = max(1, (result.last_day - result.first_day).days + 1)
    cal = Calibration(data, hashlib.sha256(data.read_bytes()).hexdigest(),
                      len(result.conformant), sum(len(s) for s in result.steps.values()), days,
                      closed_states=mapping.entered("closure"))
    cases = [result.steps[c] for c in sorted(result.conformant)]
    # New cases arrive as a Poisson stream: the rate is the number of children over the
    # window. Re-referrals are the chance a closed case comes back within a year, seen on
    # closures at least a year before the data ends; the scenario's total referral rate
    # is then new / (1 - share), as the engine reads it.
    years = days / 365.25
    new = len(cases)
    closures = returned = 0
    end = (result.last_day - result.first_day).days * 24.0 + 24.0
    initial = proc.initial
    for steps in cases:
        for i, step in enumerate(steps):
            if not mapping.makes(step.events, "closure"):
                continue
            if step.time + 365 * 24.0 > end:
                continue
            closures += 1
            returned += any(EventRef("enter", initial) in later.events
                            and later.time - step.time <= 365 * 24.0
                            for later in steps[i + 1:])
    if new:
        half = 1.96 * math.sqrt(new)
        cal.new_cases_per_year = Estimate(new / years, new, new, (new - half) / years,
                                          (new + half) / years)
    if closures:
        cal.re_referral_share = _share(returned, closures)
    share = cal.re_referral_share.value if cal.re_referral_share else 0.0
    if cal.new_cases_per_year is not None:
        e = cal.new_cases_per_year
        cal.referrals_per_year = Estimate(e.value / (1 - share), e.count, e.total,
                                          e.low / (1 - share), e.high / (1 - share))
    _choices(cal, cases, proc, base)
    _durations(cal, cases, proc, base, result)
    return cal


def _choices(cal: Calibration, cases: Sequence[list[Step]], proc: Procedure,
             base: Scenario) -> None:
    plain: dict[str, Counter[str]] = defaultdict(Counter)
    visits: dict[str, dict[int, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    behaviour = base.spec.behaviour
    for steps in cases:
        seen: Counter[str] = Counter()
        for step in steps:
            leaves = step.before
            active = {a for leaf in leaves for a in proc.ancestors(leaf)}
            for sid in active & set(behaviour):
                b = behaviour[sid]
                if b.choose is not None and step.trigger in b.choose:
                    plain[sid][step.trigger] += 1
                elif b.choose_by_visit is not None and any(
                        step.trigger in t for t in b.choose_by_visit):
                    visits[sid][max(seen[sid], 1)][step.trigger] += 1
            for e in step.events:
                if e.kind != "enter":
                    continue
                if proc.states[e.name].parent is None:
                    for inner in [s for s in seen if e.name in proc.ancestors(s) and s != e.name]:
                        del seen[inner]
                seen[e.name] += 1
    for sid, counts in plain.items():
        table = behaviour[sid].choose or {}
        total = sum(counts.values())
        if len(table) < 2:
            continue
        if total < MIN_COUNT:
            cal.kept.append(f"behaviour.{sid}.choose (only {total} observed)")
            continue
        cal.choices[sid] = {t: _share(counts[t], total) for t in table}
    for sid, per_visit in visits.items():
        tables = behaviour[sid].choose_by_visit or []
        rows: list[dict[str, Estimate]] = []
        for k, visit_table in enumerate(tables, start=1):
            counts = per_visit.get(k, Counter())
            if k == len(tables):  # the last table serves every later visit too
                for later, c in per_visit.items():
                    if later > k:
                        counts = counts + c
            total = sum(counts.values())
            if total < MIN_COUNT:
                cal.kept.append(f"behaviour.{sid}.choose_by_visit[{k - 1}] (only {total} "
                                "observed)")
                rows = []
                break
            rows.append({t: _share(counts[t], total) for t in visit_table})
        if rows:
            cal.by_visit[sid] = rows


def _durations(cal: Calibration, cases: Sequence[list[Step]], proc: Procedure,
               base: Scenario, result: ConformResult) -> None:
    calendar = WorkingCalendar(result.first_day or date(2000, 1, 1))
    for sid, b in base.spec.behaviour.items():
        if b.after is None or b.after.unit not in ("working_days", "days"):
            continue
        if EventRef("enter", sid) not in result.observable or \
                EventRef("exit", sid) not in result.observable:
            continue
        spans: list[float] = []
        for steps in cases:
            entered: float | None = None
            for step in steps:
                if EventRef("exit", sid) in step.events and entered is not None:
                    a, z = calendar.date_of(entered), calendar.date_of(step.time)
                    spans.append(float(calendar.working_days_between(a, z))
                                 if b.after.unit == "working_days" else float((z - a).days))
                    entered = None
                if EventRef("enter", sid) in step.events:
                    entered = step.time
        if len(spans) < MIN_COUNT:
            cal.kept.append(f"behaviour.{sid}.after (only {len(spans)} observed)")
            continue
        width = 5.0 if b.after.unit == "working_days" else 7.0
        top = max(spans)
        bins = []
        low = 0.0
        while low <= top:
            n = sum(1 for x in spans if low <= x < low + width)
            if n:
                bins.append((low, low + width - 1.0, n / len(spans)))
            low += width
        cal.durations[sid] = (bins, len(spans), sum(spans) / len(spans))


def _weight_text(value: float, spec: float | ChoiceSpec | None) -> str:
    """A fitted weight, keeping the choice's own timing when the scenario gave one."""
    if isinstance(spec, ChoiceSpec) and spec.after is not None:
        after = json.dumps(spec.after.model_dump(exclude_none=True))
        return f"{{weight: {value:.4f}, after: {after}}}"
    return f"{value:.4f}"


def _ci(e: Estimate, digits: int = 3) -> str:
    return f"95% CI {e.low:.{digits}f}-{e.high:.{digits}f}"


def scenario_yaml(cal: Calibration, base: Scenario, name: str) -> str:
    """The calibrated scenario as YAML text, every estimate commented with its counts."""
    proc_ref = base.spec.procedure
    extends = base.name if base.path.parent.name == "scenarios" else str(base.path.resolve())
    lines = [
        f"# Covers: {base.procedure.id} with demand, branching and durations estimated from",
        f"#   case data {cal.data.name} (sha256 {cal.sha256[:16]}...): {cal.children} "
        f"conformant children, {cal.events} steps, {cal.days} days.",
        f"# Scenario: {base.name} as the base (staffing and what the data cannot show), "
        "with every",
        "#   estimate below written beside the counts it rests on (made by cpsim calibrate).",
    ]
    for note in cal.kept:
        lines.append(f"#   kept from {base.name}: {note}")
    lines += [
        f"scenario: {name}",
        f"extends: {extends}",
        f"title: {base.spec.title} (calibrated from {cal.data.name})",
        f"procedure: {proc_ref}",
        "",
        "demand:",
    ]
    if cal.referrals_per_year is not None and cal.new_cases_per_year is not None:
        e = cal.referrals_per_year
        lines.append(f"  referrals_per_year: {e.value:.1f}   # {e.count} children first "
                     f"referred in {cal.days} days ({cal.new_cases_per_year.value:.1f} a "
                     "year), with re-referrals")
    if cal.re_referral_share is not None:
        e = cal.re_referral_share
        lines.append(f"  re_referral_share: {e.value:.4f}   # {e.count} of {e.total} "
                     f"closures came back within a year; {_ci(e)}")
    lines += ["", "behaviour:"]
    states = sorted(set(cal.choices) | set(cal.by_visit) | set(cal.durations)
                    | (set(cal.closed_states) if cal.re_referral_share else set()))
    for sid in states:
        lines.append(f"  {sid}:")
        if sid in cal.durations:
            bins, n, mean = cal.durations[sid]
            unit = base.spec.behaviour[sid].after.unit  # type: ignore[union-attr]
            lines.append(f"    after:   # {n} observed, mean {mean:.1f} {unit.replace('_', ' ')}")
            lines.append(f"      unit: {unit}")
            lines.append("      empirical:")
            for lo, hi, share in bins:
                lines.append(f"        - [{lo:g}, {hi:g}, {share:.4f}]")
        if sid in cal.choices:
            table = cal.choices[sid]
            total = next(iter(table.values())).total
            lines.append(f"    choose:   # {total} decisions observed")
            original = base.spec.behaviour[sid].choose or {}
            for trig, e in table.items():
                value = _weight_text(e.value, original.get(trig))
                lines.append(f"      {trig}: {value}   # {e.count}; {_ci(e)}")
        if sid in cal.closed_states and cal.re_referral_share is not None and \
                sid in base.spec.behaviour and base.spec.behaviour[sid].chance < 1:
            e = cal.re_referral_share
            lines.append(f"    chance: {e.value:.4f}   # closures coming back within a year "
                         f"({e.count} of {e.total})")
        if sid in cal.by_visit:
            lines.append("    choose_by_visit:")
            specs = base.spec.behaviour[sid].choose_by_visit or []
            for k, table in enumerate(cal.by_visit[sid], start=1):
                total = next(iter(table.values())).total
                given = specs[k - 1] if k - 1 < len(specs) else {}
                body = ", ".join(f"{t}: {_weight_text(e.value, given.get(t))}"
                                 for t, e in table.items())
                counts = ", ".join(f"{t} {e.count}" for t, e in table.items())
                lines.append(f"      - {{{body}}}   # visit {k}: {total} observed ({counts})")
    return "\n".join(lines) + "\n"
