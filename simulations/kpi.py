"""KPIs across replications: each a mean with its 95% interval; shares also exact binomial.

Every deadline of the procedure becomes KPIs automatically (share met, median and 90th
percentile of elapsed time against the limit); capacity, flow and plan KPIs come from the
replication records. Tables are written as CSV and Markdown with fixed number formats, so
the same records always give byte-identical tables.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from model.spec import Procedure
from simulations.stats import exact_binomial_ci, mean_ci

Record = dict[str, Any]
"""One replication's record, as written by ``RunRecord.to_json``."""


@dataclass(frozen=True, slots=True)
class Kpi:
    """One KPI across replications.

    Attributes:
        id: Stable identifier, e.g. ``deadline:icpc_held:share_met``.
        group: ``deadline``, ``capacity``, ``flow``, ``plans``, ``postponements`` or
            ``resolution``.
        label: Plain-English name.
        unit: Unit of the values (``share``, ``working_days``, ``cases``, ``per_year``, ...).
        values: One value per replication, in replication order.
        mean, low, high: Mean and 95% t-interval across replications.
        successes, trials: For shares, the pooled counts over all cases.
        exact_low, exact_high: Clopper-Pearson 95% interval of the pooled share.
        limit: For deadline KPIs, the procedure's limit in ``unit``.
        rules: Rule ids behind the KPI (deadline KPIs).
        headline: True for the KPIs whose precision decides how many replications to run.
    """

    id: str
    group: str
    label: str
    unit: str
    values: tuple[float, ...]
    mean: float
    low: float
    high: float
    successes: int | None = None
    trials: int | None = None
    exact_low: float | None = None
    exact_high: float | None = None
    limit: float | None = None
    rules: tuple[str, ...] = ()
    headline: bool = False


def _years(rec: Record) -> float:
    return float(rec["horizon_hours"] - rec["warm_up_hours"]) / (24.0 * 365.25)


def _kpi(kid: str, group: str, label: str, unit: str, values: Sequence[float], **kw: Any) -> Kpi:
    mean, low, high = mean_ci(values)
    if not math.isnan(low) and all(v >= 0 for v in values if not math.isnan(v)):
        low = max(0.0, low)  # counts, rates and durations are never negative
    return Kpi(kid, group, label, unit, tuple(values), mean, low, high, **kw)


def _share(kid: str, group: str, label: str, num: Sequence[int], den: Sequence[int],
           **kw: Any) -> Kpi:
    values = [n / d if d else math.nan for n, d in zip(num, den, strict=True)]
    s, t = sum(num), sum(den)
    lo, hi = exact_binomial_ci(s, t)
    mean, low, high = mean_ci(values)
    # a share lives in [0, 1]: the t-interval is clipped there
    low = low if math.isnan(low) else max(0.0, low)
    high = high if math.isnan(high) else min(1.0, high)
    return Kpi(kid, group, label, "share", tuple(values), mean, low, high, successes=s,
               trials=t, exact_low=lo, exact_high=hi, **kw)


def _mean_series(rec: Record, name: str) -> float:
    values = rec["series"].get(name, [])
    return sum(values) / len(values) if values else math.nan


def compute_kpis(records: Sequence[Record], procedure: Procedure) -> list[Kpi]:
    """Every KPI over the replications, in a fixed order."""
    recs = sorted(records, key=lambda r: r["replication"])
    out: list[Kpi] = []
    for d in procedure.deadlines:
        rows = [r["deadlines"][d.id] for r in recs]
        limit = d.within or d.at_least
        assert limit is not None
        unit = limit.unit
        met = [row["met"] for row in rows]
        judged = [row["met"] + row["missed"] + row["open_overdue"] for row in rows]
        what = (f"within {limit}" if d.within else f"at least {limit}")
        out.append(_share(f"deadline:{d.id}:share_met", "deadline",
                          f"{d.id}: share met ({what})", met, judged,
                          limit=float(limit.value), rules=d.rules,
                          headline=d.within is not None))
        for stat in ("median", "p90"):
            vals = [math.nan if row[stat] is None else float(row[stat]) for row in rows]
            out.append(_kpi(f"deadline:{d.id}:{stat}", "deadline",
                            f"{d.id}: {'median' if stat == 'median' else '90th percentile'}"
                            f" elapsed", unit, vals, limit=float(limit.value), rules=d.rules))
    # capacity
    for name, label in (("caseload_mean", "caseload per social worker, mean"),
                        ("caseload_median", "caseload per social worker, median"),
                        ("caseload_p90", "caseload per social worker, 90th percentile"),
                        ("caseload_max", "caseload per social worker, maximum"),
                        ("unallocated_queue", "cases waiting for allocation"),
                        ("workers_absent", "social workers absent")):
        out.append(_kpi(f"capacity:{name}", "capacity", label, "cases" if "absent" not in name
                        else "workers", [_mean_series(r, name) for r in recs],
                        headline=name == "caseload_mean"))
    out.append(_kpi("capacity:allocation_wait_days", "capacity",
                    "wait for allocation (of cases that waited), mean", "days",
                    [math.nan if r["allocation_waits_days"]["mean"] is None
                     else r["allocation_waits_days"]["mean"] for r in recs]))
    # turnover (records written before it existed have neither count)
    out.append(_kpi("capacity:leavers_per_year", "capacity", "social workers leaving per year",
                    "per_year", [r.get("leavers", 0) / _years(r) for r in recs]))
    out.append(_kpi("capacity:reallocations_per_year", "capacity",
                    "cases re-allocated after their worker left, per year", "per_year",
                    [r.get("reallocations", 0) / _years(r) for r in recs]))
    out.append(_share("capacity:chair_utilisation", "capacity",
                      "conference chair slots used", [r["meetings_held"] for r in recs],
                      [r["chair_capacity"] for r in recs]))
    out.append(_share("capacity:minute_taker_utilisation", "capacity",
                      "minute-taker slots used", [r["meetings_held"] for r in recs],
                      [r["minute_capacity"] for r in recs]))
    # flow: entries into every top-level state per year
    for sid, st in procedure.states.items():
        if st.parent is None and st.region is None:
            out.append(_kpi(f"flow:{sid}:per_year", "flow", f"cases entering {sid} per year",
                            "per_year", [r["entries"].get(sid, 0) / _years(r) for r in recs]))
    for sid, st in procedure.states.items():
        if st.parent is None and st.region is None:
            out.append(_kpi(f"flow:{sid}:open", "flow", f"cases in {sid}, mean", "cases",
                            [_mean_series(r, f"stage:{sid}") for r in recs]))
    # plans
    out.append(_kpi("plans:started_per_year", "plans", "plans started per year", "per_year",
                    [r["plans_started"] / _years(r) for r in recs]))
    out.append(_kpi("plans:ended_per_year", "plans", "plans ended per year", "per_year",
                    [r["plans_ended"] / _years(r) for r in recs]))
    out.append(_kpi("plans:length_mean_days", "plans", "plan length, mean", "days",
                    [math.nan if r["plan_lengths_days"]["mean"] is None
                     else r["plan_lengths_days"]["mean"] for r in recs]))
    out.append(_kpi("plans:length_median_days", "plans", "plan length, median", "days",
                    [math.nan if r["plan_lengths_days"]["median"] is None
                     else r["plan_lengths_days"]["median"] for r in recs]))
    out.append(_share("plans:repeat_share", "plans", "plans that are a second or later plan",
                      [r["repeat_plans"] for r in recs], [r["plans_started"] for r in recs]))
    # postponements and resolutions
    reasons = sorted({k for r in recs for k in r["postponements"]})
    for key in reasons:
        out.append(_kpi(f"postponements:{key}", "postponements",
                        f"postponements ({key.replace(':', ', ').replace('_', ' ')}) per year",
                        "per_year", [r["postponements"].get(key, 0) / _years(r) for r in recs]))
    for region in procedure.regions:
        for sid in procedure.states[region].children:
            if procedure.states[sid].terminal and sid.endswith(".idle"):
                continue
            out.append(_kpi(f"resolution:{sid}:per_year", "resolution",
                            f"cases reaching {sid} per year", "per_year",
                            [r["entries"].get(sid, 0) / _years(r) for r in recs]))
    return out


def kpi_ids(procedure: Procedure) -> list[str]:
    """The ids of the KPIs a run of ``procedure`` reports.

    Postponement KPIs aside: they exist only for the reasons that occurred.
    """
    empty: Record = {
        "replication": 0, "warm_up_hours": 0.0, "horizon_hours": 24.0,
        "deadlines": {d.id: {"met": 0, "missed": 0, "cancelled": 0, "open_overdue": 0,
                             "open_not_due": 0, "median": None, "p90": None}
                      for d in procedure.deadlines},
        "series": {}, "allocation_waits_days": {"mean": None}, "meetings_held": 0,
        "chair_capacity": 0, "minute_capacity": 0, "entries": {}, "plans_started": 0,
        "plans_ended": 0, "repeat_plans": 0, "postponements": {},
        "plan_lengths_days": {"mean": None, "median": None},
    }
    return [k.id for k in compute_kpis([empty], procedure)]


def _fmt(value: float | int | None, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return ""
    return f"{value:.{digits}f}"


CSV_COLUMNS = ("id", "group", "label", "unit", "mean", "ci_low", "ci_high", "successes",
               "trials", "exact_low", "exact_high", "limit", "rules", "replications")


def kpis_csv(kpis: Sequence[Kpi]) -> str:
    """The KPI table as CSV text (fixed formats: same records, same bytes)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for k in kpis:
        writer.writerow([k.id, k.group, k.label, k.unit, _fmt(k.mean), _fmt(k.low),
                         _fmt(k.high), _fmt(k.successes), _fmt(k.trials), _fmt(k.exact_low),
                         _fmt(k.exact_high), _fmt(k.limit, 1), " ".join(k.rules),
                         len(k.values)])
    return buf.getvalue()


def _pretty(k: Kpi, value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    if k.unit == "share":
        return f"{100 * value:.1f}%"
    return f"{value:.1f}" if abs(value) < 1000 else f"{value:,.0f}"


def kpis_markdown(kpis: Sequence[Kpi], groups: Sequence[str] | None = None) -> str:
    """The KPI table as Markdown, one section per group."""
    order = groups or ("deadline", "capacity", "flow", "plans", "postponements", "resolution")
    lines: list[str] = []
    for group in order:
        rows = [k for k in kpis if k.group == group]
        if not rows:
            continue
        lines += [f"### {group.capitalize()}", "",
                  "| KPI | mean | 95% CI | exact 95% CI (pooled) | unit | rules |",
                  "|---|---:|---|---|---|---|"]
        for k in rows:
            ci = f"{_pretty(k, k.low)} – {_pretty(k, k.high)}"
            exact = (f"{_pretty(k, k.exact_low)} – {_pretty(k, k.exact_high)} "
                     f"({k.successes}/{k.trials})" if k.trials is not None else "")
            unit = k.unit if k.limit is None else f"{k.unit} (limit {k.limit:g})"
            lines.append(f"| {k.label} | {_pretty(k, k.mean)} | {ci} | {exact} | {unit} | "
                         f"{', '.join(k.rules)} |")
        lines.append("")
    return "\n".join(lines)


def headline_summary(kpis: Sequence[Kpi]) -> list[tuple[str, str, str]]:
    """Short rows for the terminal: label, mean, 95% interval."""
    rows = []
    for k in kpis:
        if k.group == "deadline" and not k.id.endswith(":share_met"):
            continue
        if k.group == "flow" and k.id.endswith(":open"):
            continue
        rows.append((k.label, _pretty(k, k.mean), f"{_pretty(k, k.low)} – {_pretty(k, k.high)}"))
    return rows
