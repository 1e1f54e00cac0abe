"""Published measures computed from CIN-flat records, and the comparison with a published table.

Each measure is counted the way the Department for Education counts it from the children in
need census (``../shared/domain/published-measures.md``): a year runs to a year-end day
(31 March); stocks are taken on that day; flows are dated events inside the year; plan
lengths are of plans *ended* in the year, in calendar-month bands; ICPC timeliness is in
working days (England and Wales calendar) from the strategy discussion that started the
section 47 enquiry; reviews in time are judged for plans open at the year end that had
lasted at least 3 months.

The same functions measure simulated records (``cin_rows`` of a results folder) and a real
authority's CIN-flat file, so a simulated figure and a published one mean the same thing.
National counts are a typical authority's counts times ``scale``; shares are compared as
they are.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from model.calendar import WorkingCalendar, add_months
from model.errors import InputError, Problem
from simulations.results import RunResults
from simulations.stats import mean_ci

Unit = Literal["count", "percent", "months"]
ToleranceKind = Literal["points", "percent"]


@dataclass(frozen=True, slots=True)
class Measure:
    """One published measure: what it is called, its unit, and whether it scales with size."""

    id: str
    label: str
    unit: Unit
    scaled: bool = False


MEASURES: dict[str, Measure] = {m.id: m for m in (
    Measure("referrals", "referrals in the year", "count", True),
    Measure("re_referrals_within_12_months", "re-referrals within 12 months", "percent"),
    Measure("s47_started", "section 47 enquiries started", "count", True),
    Measure("s47_per_referral", "section 47 enquiries per referral", "percent"),
    Measure("icpcs", "initial conferences held", "count", True),
    Measure("icpc_per_s47", "initial conferences per section 47 enquiry", "percent"),
    Measure("plans_started", "plans started (episodes)", "count", True),
    Measure("plans_per_icpc", "plans started per initial conference", "percent"),
    Measure("plans_at_year_end", "children on a plan at the year end", "count", True),
    Measure("plans_ended", "plans ended in the year", "count", True),
    Measure("plans_ended_3m_or_less", "ended plans: 3 months or less", "percent"),
    Measure("plans_ended_3m_to_6m", "ended plans: over 3, up to 6 months", "percent"),
    Measure("plans_ended_6m_to_1y", "ended plans: over 6 months, under 1 year", "percent"),
    Measure("plans_ended_1y_to_2y", "ended plans: 1 year, under 2 years", "percent"),
    Measure("plans_ended_2y_or_more", "ended plans: 2 years or more", "percent"),
    Measure("icpc_0_to_10_working_days", "ICPCs 0-10 working days from S47 start", "percent"),
    Measure("icpc_11_to_15_working_days", "ICPCs 11-15 working days", "percent"),
    Measure("icpc_16_to_20_working_days", "ICPCs 16-20 working days", "percent"),
    Measure("icpc_21_or_more_working_days", "ICPCs 21 or more working days", "percent"),
    Measure("icpc_within_15_working_days", "ICPCs within 15 working days", "percent"),
    Measure("second_or_later_plans", "plans starting that are a second or later plan",
            "percent"),
    Measure("reviews_in_time", "plans (3 months+) with every review in time", "percent"),
    Measure("mean_plan_length_months", "mean plan length, Little's law (months)", "months"),
)}
"""Every measure ``cpsim validate`` can compute, in report order."""

BANDS = ("plans_ended_3m_or_less", "plans_ended_3m_to_6m", "plans_ended_6m_to_1y",
         "plans_ended_1y_to_2y", "plans_ended_2y_or_more")
ICPC_BINS = ("icpc_0_to_10_working_days", "icpc_11_to_15_working_days",
             "icpc_16_to_20_working_days", "icpc_21_or_more_working_days")

_COLUMNS = ("measure", "year_end", "value", "unit", "source", "role", "tolerance",
            "tolerance_kind", "note")


# -- the published table --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PublishedRow:
    """One published figure: a measure in one year, with its source and tolerance."""

    measure: str
    year_end: date
    value: float
    unit: Unit
    source: str
    role: Literal["calibration", "validation"]
    tolerance: float
    tolerance_kind: ToleranceKind
    note: str
    line: int


def read_published(path: Path) -> list[PublishedRow]:
    """Read a published table (``data/published/*.csv``); every problem reported at once.

    Raises:
        InputError: the file is unreadable, a column is missing, or a row has an unknown
            measure, a bad date, number, unit, role or tolerance kind.
    """
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([Problem(name, None, "", f"cannot read the published table: "
                                  f"{exc.__class__.__name__}")]) from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError([Problem(name, 1, "header", f"missing column(s) {', '.join(missing)}; "
                                  f"the columns are {', '.join(_COLUMNS)}")])
    problems: list[Problem] = []
    rows: list[PublishedRow] = []
    for line, raw in enumerate(reader, start=2):
        bad = len(problems)

        def problem(fieldname: str, message: str, value: object,
                    hint: str | None = None, _line: int = line) -> None:
            problems.append(Problem(name, _line, fieldname, message, value, hint))

        measure = (raw.get("measure") or "").strip()
        if measure not in MEASURES:
            from model.errors import did_you_mean

            problem("measure", "unknown measure", measure, did_you_mean(measure, MEASURES))
        try:
            year_end = date.fromisoformat((raw.get("year_end") or "").strip())
        except ValueError:
            problem("year_end", "not a date (YYYY-MM-DD)", raw.get("year_end"))
            year_end = date.min
        numbers: dict[str, float] = {}
        for key in ("value", "tolerance"):
            try:
                numbers[key] = float((raw.get(key) or "").strip())
                if not math.isfinite(numbers[key]) or numbers[key] < 0:
                    raise ValueError
            except ValueError:
                problem(key, "not a finite number of zero or more", raw.get(key))
        unit = (raw.get("unit") or "").strip()
        if unit not in ("count", "percent", "months"):
            problem("unit", "must be count, percent or months", unit)
        elif measure in MEASURES and MEASURES[measure].unit != unit:
            problem("unit", f"{measure} is measured in {MEASURES[measure].unit}", unit)
        elif unit == "percent" and numbers.get("value", 0.0) > 100:
            problem("value", "a percentage above 100", raw.get("value"))
        role = (raw.get("role") or "").strip()
        if role not in ("calibration", "validation"):
            problem("role", "must be calibration (an input the scenario was set from) or "
                    "validation (an outcome the model should reproduce)", role)
        kind = (raw.get("tolerance_kind") or "").strip()
        if kind not in ("points", "percent"):
            problem("tolerance_kind", "must be points (percentage points) or percent "
                    "(relative)", kind)
        if not (raw.get("source") or "").strip():
            problem("source", "every published figure names its source", raw.get("source"))
        if len(problems) == bad:
            rows.append(PublishedRow(measure, year_end, numbers["value"], unit,  # type: ignore[arg-type]
                                     (raw.get("source") or "").strip(), role,  # type: ignore[arg-type]
                                     numbers["tolerance"], kind,  # type: ignore[arg-type]
                                     (raw.get("note") or "").strip(), line))
    if problems:
        raise InputError(problems)
    if not rows:
        raise InputError([Problem(name, None, "", "the published table has no rows")])
    return rows


# -- CIN-flat records to measures ----------------------------------------------------------------
@dataclass(slots=True)
class _Plan:
    start: date
    end: date | None = None
    previous: int = 0
    reviews: list[date] = field(default_factory=list)


@dataclass(slots=True)
class Child:
    """What one child's CIN-flat rows say, in date order."""

    referrals: list[date] = field(default_factory=list)
    s47_starts: list[date] = field(default_factory=list)
    icpcs: list[tuple[date, date | None]] = field(default_factory=list)
    plans: list[_Plan] = field(default_factory=list)


def children_from_rows(rows: Iterable[Sequence[object]]) -> dict[str, Child]:
    """Group CIN-flat rows (``child_id, event_date, event_type, ..., previous_plans``).

    The section 47 start of a conference is the strategy discussion that started the
    enquiry (the enquiry's own start when no discussion is recorded since the referral).
    """
    children: dict[str, Child] = defaultdict(Child)
    origin: dict[str, date | None] = {}
    discussion: dict[str, date | None] = {}
    for row in rows:
        child_id, day_text, kind = str(row[0]), str(row[1]), str(row[2])
        day = date.fromisoformat(day_text)
        child = children[child_id]
        if kind == "referral":
            child.referrals.append(day)
            origin[child_id] = discussion[child_id] = None
        elif kind == "strategy_discussion":
            discussion[child_id] = day
        elif kind == "s47_start":
            child.s47_starts.append(day)
            held = discussion.get(child_id)
            origin[child_id] = held if held is not None and held <= day else day
        elif kind == "icpc":
            child.icpcs.append((day, origin.get(child_id)))
            origin[child_id] = discussion[child_id] = None
        elif kind == "cp_plan_start":
            child.plans.append(_Plan(day, previous=int(str(row[9] or 0))))
        elif kind == "review" and child.plans and child.plans[-1].end is None:
            child.plans[-1].reviews.append(day)
        elif kind == "cp_plan_end" and child.plans and child.plans[-1].end is None:
            child.plans[-1].end = day
    return dict(children)


def _band(plan: _Plan) -> str:
    assert plan.end is not None
    if plan.end <= add_months(plan.start, 3):
        return BANDS[0]
    if plan.end <= add_months(plan.start, 6):
        return BANDS[1]
    if plan.end < add_months(plan.start, 12):
        return BANDS[2]
    if plan.end < add_months(plan.start, 24):
        return BANDS[3]
    return BANDS[4]


def _icpc_bin(working_days: int) -> str:
    if working_days <= 10:
        return ICPC_BINS[0]
    if working_days <= 15:
        return ICPC_BINS[1]
    if working_days <= 20:
        return ICPC_BINS[2]
    return ICPC_BINS[3]


def _reviews_in_time(plan: _Plan, year_end: date) -> bool:
    """Whether every review of the plan so far was in time.

    The first within 3 months of the plan's start, then at most 6 months apart, and none
    overdue at the year end (a late review, postponed or not, is out of time).
    """
    previous, months = plan.start, 3
    for review in plan.reviews:
        if review > year_end:
            break
        if review > add_months(previous, months):
            return False
        previous, months = review, 6
    return year_end <= add_months(previous, months)


Counts = dict[str, tuple[float, float]]
"""A measure's numerator and denominator (a count has denominator 1)."""


def measure_year(children: Mapping[str, Child], year_end: date,
                 calendar: WorkingCalendar | None = None) -> Counts:
    """Every measure for the year ending on ``year_end`` (inclusive), from one population."""
    first = year_start(year_end)
    cal = calendar or WorkingCalendar(first)

    def inside(d: date | None) -> bool:
        return d is not None and first <= d <= year_end

    n: dict[str, float] = defaultdict(float)
    for child in children.values():
        previous_referral: date | None = None
        for referral in child.referrals:
            if inside(referral):
                n["referrals"] += 1
                if previous_referral is not None and referral <= add_months(previous_referral, 12):
                    n["re_referrals"] += 1
            previous_referral = referral
        n["s47_started"] += sum(1 for d in child.s47_starts if inside(d))
        for held, origin in child.icpcs:
            if not inside(held):
                continue
            n["icpcs"] += 1
            if origin is not None:
                n["icpcs_timed"] += 1
                n[_icpc_bin(cal.working_days_between(origin, held))] += 1
        for plan in child.plans:
            if inside(plan.start):
                n["plans_started"] += 1
                n["second_or_later"] += plan.previous > 0
            if plan.start <= year_end and (plan.end is None or plan.end > year_end):
                n["plans_at_year_end"] += 1
                if add_months(plan.start, 3) <= year_end:
                    n["plans_due_review"] += 1
                    n["reviews_in_time"] += _reviews_in_time(plan, year_end)
            if inside(plan.end):
                n["plans_ended"] += 1
                n[_band(plan)] += 1
    out: Counts = {
        "referrals": (n["referrals"], 1.0),
        "re_referrals_within_12_months": (n["re_referrals"], n["referrals"]),
        "s47_started": (n["s47_started"], 1.0),
        "s47_per_referral": (n["s47_started"], n["referrals"]),
        "icpcs": (n["icpcs"], 1.0),
        "icpc_per_s47": (n["icpcs"], n["s47_started"]),
        "plans_started": (n["plans_started"], 1.0),
        "plans_per_icpc": (n["plans_started"], n["icpcs"]),
        "plans_at_year_end": (n["plans_at_year_end"], 1.0),
        "plans_ended": (n["plans_ended"], 1.0),
        "second_or_later_plans": (n["second_or_later"], n["plans_started"]),
        "reviews_in_time": (n["reviews_in_time"], n["plans_due_review"]),
        "icpc_within_15_working_days": (n[ICPC_BINS[0]] + n[ICPC_BINS[1]], n["icpcs_timed"]),
        "mean_plan_length_months": (12.0 * n["plans_at_year_end"], n["plans_started"]),
    }
    for band in BANDS:
        out[band] = (n[band], n["plans_ended"])
    for b in ICPC_BINS:
        out[b] = (n[b], n["icpcs_timed"])
    return out


def value_of(measure: str, counts: Counts) -> float:
    """The measure's value in its published unit (NaN when its denominator is zero)."""
    num, den = counts[measure]
    if den == 0:
        return math.nan
    value = num / den
    return 100.0 * value if MEASURES[measure].unit == "percent" else value


def year_start(year_end: date) -> date:
    """The first day of the year that ends on ``year_end`` (1 April for 31 March)."""
    return add_months(year_end, -12) + timedelta(days=1)


def year_ends(first_day: date, last_day: date, month: int, day: int) -> list[date]:
    """Year-end days whose whole year lies in ``[first_day, last_day]``."""
    out = []
    for year in range(first_day.year, last_day.year + 1):
        try:
            end = date(year, month, day)
        except ValueError:  # 29 February in a common year
            end = date(year, month, day - 1)
        if first_day <= year_start(end) and end <= last_day:
            out.append(end)
    return out


# -- the comparison -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ValidationRow:
    """A published row beside the simulated value (mean over replications, 95% interval)."""

    published: PublishedRow
    label: str
    simulated: float
    low: float
    high: float
    values: tuple[float, ...]

    @property
    def difference(self) -> float:
        """Simulated minus published (points for percentages, relative % for counts)."""
        if self.published.tolerance_kind == "percent":
            if self.published.value == 0:
                return math.nan
            return 100.0 * (self.simulated - self.published.value) / self.published.value
        return self.simulated - self.published.value

    @property
    def within(self) -> bool | None:
        """Whether the difference is within tolerance (None when nothing was measured)."""
        if math.isnan(self.simulated):
            return None
        return abs(self.difference) <= self.published.tolerance

    @property
    def verdict(self) -> str:
        """``within``, ``OUTSIDE`` or ``not measured``."""
        return {True: "within", False: "OUTSIDE", None: "not measured"}[self.within]


@dataclass(frozen=True)
class Validation:
    """The whole comparison for one run and one published table."""

    scenario: str
    table: str
    scale: float
    year_ends: tuple[date, ...]
    replications: int
    rows: tuple[ValidationRow, ...]
    per_replication: tuple[Mapping[str, float], ...]
    notes: tuple[str, ...] = ()

    @property
    def outside(self) -> list[ValidationRow]:
        """The rows outside their tolerance."""
        return [r for r in self.rows if r.within is False]


def measure_replications(by_replication: Mapping[int, Mapping[str, Child]],
                         ends: Sequence[date], scale: float,
                         calendar: WorkingCalendar | None = None) -> list[dict[str, float]]:
    """Each replication's measures, pooled over the years ``ends`` (counts per year), scaled."""
    out = []
    for rep in sorted(by_replication):
        totals: dict[str, list[float]] = {m: [0.0, 0.0] for m in MEASURES}
        for end in ends:
            for m, (num, den) in measure_year(by_replication[rep], end, calendar).items():
                totals[m][0] += num
                totals[m][1] += den
        values: dict[str, float] = {}
        for m, (num, den) in totals.items():
            if MEASURES[m].unit == "count":
                den = float(len(ends))
            value = value_of(m, {m: (num, den)})
            values[m] = value * scale if MEASURES[m].scaled else value
        out.append(values)
    return out


def compare(per_replication: Sequence[Mapping[str, float]], published: Sequence[PublishedRow],
            scenario: str, table: str, scale: float, ends: Sequence[date],
            notes: Sequence[str] = ()) -> Validation:
    """Put each published row beside the simulated measure (t-interval over replications)."""
    rows = []
    for p in published:
        values = tuple(r[p.measure] for r in per_replication)
        mean, low, high = mean_ci(values)
        rows.append(ValidationRow(p, MEASURES[p.measure].label, mean, low, high, values))
    return Validation(scenario, table, scale, tuple(ends), len(per_replication), tuple(rows),
                      tuple(per_replication), tuple(notes))


# -- text and CSV -------------------------------------------------------------------------------
def _num(x: float, unit: str) -> str:
    if math.isnan(x):
        return "-"
    if unit == "count":
        return f"{x:,.0f}"
    return f"{x:.1f}"


def _diff(row: ValidationRow) -> str:
    d = row.difference
    if math.isnan(d):
        return "-"
    return f"{d:+.1f} pts" if row.published.tolerance_kind == "points" else f"{d:+.1f}%"


def _tol(row: ValidationRow) -> str:
    p = row.published
    return f"±{p.tolerance:g} pts" if p.tolerance_kind == "points" else f"±{p.tolerance:g}%"


def validation_table(v: Validation) -> list[list[str]]:
    """Header and rows of the side-by-side table, as text cells."""
    head = ["measure", "source", "year", "role", "published", "simulated", "95% interval",
            "difference", "tolerance", "verdict"]
    out = [head]
    for r in v.rows:
        p = r.published
        interval = ("-" if math.isnan(r.low) else
                    f"{_num(r.low, p.unit)} to {_num(r.high, p.unit)}")
        out.append([p.measure, p.source, str(p.year_end.year), p.role, _num(p.value, p.unit),
                    _num(r.simulated, p.unit), interval, _diff(r), _tol(r), r.verdict])
    return out


def format_validation(v: Validation) -> str:
    """The plain-text report printed by ``cpsim validate``."""
    years = ", ".join(f"{d.year - 1}-{d:%y}" for d in v.year_ends)
    lines = [f"{v.scenario} against {v.table}: {v.replications} replications, years to "
             f"{v.year_ends[0]:%d %B} ({years}); counts x {v.scale:g}"]
    table = validation_table(v)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for i, row in enumerate(table):
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    judged = [r for r in v.rows if r.within is not None]
    lines.append(f"{sum(1 for r in judged if r.within)} of {len(judged)} published rows within "
                 f"tolerance; outside: "
                 + (", ".join(f"{r.published.measure} ({r.published.year_end.year})"
                              for r in v.outside) or "none"))
    lines.extend(v.notes)
    return "\n".join(lines)


def validation_csv(v: Validation) -> str:
    """The side-by-side table as CSV (numbers unrounded)."""
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["measure", "label", "source", "year_end", "role", "unit", "published",
                "simulated", "low_95", "high_95", "difference", "tolerance", "tolerance_kind",
                "verdict", "scale", "replications"])
    for r in v.rows:
        p = r.published
        w.writerow([p.measure, r.label, p.source, p.year_end.isoformat(), p.role, p.unit,
                    p.value, r.simulated, r.low, r.high, r.difference, p.tolerance,
                    p.tolerance_kind, r.verdict, v.scale if MEASURES[p.measure].scaled else 1,
                    v.replications])
    return buf.getvalue()


# -- a results folder -----------------------------------------------------------------------------
def measure_results(results: RunResults, scale: float = 1.0, year_end: tuple[int, int] = (3, 31)
                    ) -> tuple[list[date], list[dict[str, float]]]:
    """Every measure of every replication of a results folder, over its whole years.

    Every whole year (to ``year_end``, month and day) inside the measured period (after the
    warm-up) is measured; counts are per year. The event logs are read, never re-run.

    Raises:
        InputError: the folder has no event logs, or no whole year after its warm-up.
    """
    from simulations.export import cin_rows

    meta = results.metadata
    start = date.fromisoformat(str(meta["start_date"])[:10])
    warm_up, horizon = int(meta["warm_up_days"]), int(meta["horizon_days"])
    first, last = start + timedelta(days=warm_up), start + timedelta(days=horizon - 1)
    ends = year_ends(first, last, *year_end)
    where = str(results.out)
    if not results.event_logs():
        raise InputError([Problem(where, None, "events", "this results folder has no event "
                                  "logs (it was run with --no-event-log); run it again "
                                  "without that option")])
    if not ends:
        raise InputError([Problem(where, None, "run", f"no whole year to {year_end[1]:02d}/"
                                  f"{year_end[0]:02d} lies between the end of the warm-up "
                                  f"({first}) and the horizon ({last}); lengthen the horizon",
                                  horizon)])
    by_rep: dict[int, list[list[str | int]]] = defaultdict(list)
    for rep, row in cin_rows(results):
        by_rep[rep].append(row)
    populations = {rep: children_from_rows(rows) for rep, rows in by_rep.items()}
    return ends, measure_replications(populations, ends, scale, WorkingCalendar(start))


def validate_results(results: RunResults, published: Sequence[PublishedRow], table: str,
                     scale: float, year_end: tuple[int, int] = (3, 31)) -> Validation:
    """Measure every replication of a results folder and compare with ``published``.

    Raises:
        InputError: the folder has no event logs, or no whole year after its warm-up.
    """
    ends, per_rep = measure_results(results, scale, year_end)
    warm_up = int(results.metadata["warm_up_days"])
    notes = [f"Counts are one simulated authority's times {scale:g}; shares and lengths are "
             "compared as they are. Each replication is measured over "
             f"{len(ends)} whole year(s) after a {warm_up}-day warm-up; the interval is the "
             "95% t-interval over replications."]
    return compare(per_rep, published, results.scenario.name, table, scale, ends, notes)
