"""The shape of a scenario file: the pydantic models a scenario is validated against.

Each model rejects unknown keys and non-finite numbers, and checks what can be checked
without the procedure (a distribution's parameters in order, a warm-up inside the horizon,
staff enough for every team). Names of states, triggers and deadlines are checked against
the procedure by :mod:`simulations.scenario_check`; loading is :mod:`simulations.scenario`.
"""

from __future__ import annotations

import math
from datetime import date
from statistics import NormalDist
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from simulations.distributions import Dist, TimeUnit

_NORMAL = NormalDist()

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]

MAX_REFERRALS_PER_YEAR = 10_000_000
"""The most referrals (or closures) a year a scenario may ask for (England: 632,830, CAL-1)."""

MAX_REPLICATIONS = 10_000
"""The most replications a scenario may ask for."""

MAX_HORIZON_DAYS = 18_263
"""The longest simulated horizon: 50 years of days."""

MAX_ESTABLISHMENT_FTE = 100_000
"""The most social workers an authority may have (England has about 33,000 FTE in all)."""


def _at_most(limit: int, why: str) -> AfterValidator:
    """A check that a number is at most ``limit``, saying ``why`` when it is not."""
    def check(value: float) -> float:
        if value > limit:
            raise ValueError(f"at most {limit:,} {why}")
        return value

    return AfterValidator(check)


def _not_negative_weight(value: float) -> float:
    if value < 0:
        raise ValueError("a branch weight must not be negative: weights are relative chances "
                         "(0 turns the branch off)")
    return value


Weight = Annotated[float, AfterValidator(_not_negative_weight)]
"""A branch's relative chance: any number from 0 up."""

YearlyVolume = Annotated[float, Field(gt=0.0), _at_most(
    MAX_REFERRALS_PER_YEAR, "a year: all of England has about 630,000 referrals a year "
    "(CAL-1), so a larger number is a mistake (and would exhaust memory)")]
"""Referrals or closures a year: more than none, at most MAX_REFERRALS_PER_YEAR."""


class _Model(BaseModel):
    # Every number must be finite: .inf and .nan are never meant, and would hang a run.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DistSpec(_Model):
    """A duration distribution as written: exactly one kind, and a unit.

    ``{uniform: [1, 5], unit: working_days}``, ``{fixed: 1.5, unit: hours}``,
    ``{triangular: [low, mode, high], unit: days}``, ``{lognormal: {median: 10, p90: 25},
    unit: days}``, ``{exponential: 30, unit: days}``, ``{empirical: [[low, high, share],
    ...], unit: working_days}``.
    """

    fixed: NonNegFloat | None = None
    uniform: tuple[NonNegFloat, NonNegFloat] | None = None
    triangular: tuple[NonNegFloat, NonNegFloat, NonNegFloat] | None = None
    lognormal: LognormalSpec | None = None
    exponential: PositiveFloat | None = None
    empirical: list[tuple[NonNegFloat, NonNegFloat, NonNegFloat]] | None = None
    unit: Literal["hours", "working_hours", "days", "working_days"] = "hours"

    @model_validator(mode="after")
    def _one_kind(self) -> DistSpec:
        kinds = [k for k in ("fixed", "uniform", "triangular", "lognormal", "exponential",
                             "empirical") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of fixed, uniform, triangular, lognormal, "
                             f"exponential, empirical (found {kinds or 'none'})")
        if self.uniform is not None and self.uniform[0] > self.uniform[1]:
            raise ValueError("uniform: low must not exceed high")
        if self.triangular is not None and not (
            self.triangular[0] <= self.triangular[1] <= self.triangular[2]
        ):
            raise ValueError("triangular: need low <= mode <= high")
        if self.empirical is not None:
            if not self.empirical or sum(b[2] for b in self.empirical) <= 0:
                raise ValueError("empirical: need at least one bin with a positive share")
            if any(b[0] > b[1] for b in self.empirical):
                raise ValueError("empirical: each bin needs low <= high")
        return self

    def quantile(self, p: float) -> float:
        """The value below which a share ``p`` (0 < p < 1) of draws fall (its unit aside)."""
        if self.fixed is not None:
            return self.fixed
        if self.uniform is not None:
            return self.uniform[0] + p * (self.uniform[1] - self.uniform[0])
        if self.triangular is not None:
            low, mode, high = self.triangular
            if high == low:
                return low
            if p < (mode - low) / (high - low):
                return low + math.sqrt(p * (high - low) * (mode - low))
            return high - math.sqrt((1.0 - p) * (high - low) * (high - mode))
        if self.lognormal is not None:
            sigma = math.log(self.lognormal.p90 / self.lognormal.median) / _NORMAL.inv_cdf(0.9)
            return self.lognormal.median * math.exp(sigma * _NORMAL.inv_cdf(p))
        if self.exponential is not None:
            return -self.exponential * math.log1p(-p)
        assert self.empirical is not None
        total = sum(b[2] for b in self.empirical)
        below = 0.0
        for low, high, share in self.empirical:
            if share > 0 and below + share / total >= p:
                return low + (p - below) / (share / total) * (high - low)
            below += share / total
        return self.empirical[-1][1]

    def build(self) -> Dist:
        """The sampling object for this distribution."""
        unit: TimeUnit = self.unit
        if self.fixed is not None:
            return Dist("fixed", unit, (self.fixed,))
        if self.uniform is not None:
            return Dist("uniform", unit, tuple(self.uniform))
        if self.triangular is not None:
            return Dist("triangular", unit, tuple(self.triangular))
        if self.lognormal is not None:
            return Dist("lognormal", unit, (self.lognormal.median, self.lognormal.p90))
        if self.exponential is not None:
            return Dist("exponential", unit, (self.exponential,))
        assert self.empirical is not None
        return Dist("empirical", unit, (), tuple(tuple(b) for b in self.empirical))  # type: ignore[misc]


class LognormalSpec(_Model):
    """A lognormal given by its median and 90th percentile (p90 > median)."""

    median: PositiveFloat
    p90: PositiveFloat

    @model_validator(mode="after")
    def _order(self) -> LognormalSpec:
        if self.p90 <= self.median:
            raise ValueError("p90 must be greater than the median")
        return self


DistSpec.model_rebuild()


class EarlySpec(_Model):
    """A share of a branch's steps that come earlier, on their own timing.

    For a step otherwise timed by its state (an ``aim`` at a deadline): a review conference
    brought forward because the core group asks for it (WM-33b), say.
    """

    share: Probability
    after: DistSpec
    basis: str = ""


class ChoiceSpec(_Model):
    """One branch: its weight and, optionally, its own timing (or an early share)."""

    weight: Weight
    after: DistSpec | None = None
    early: EarlySpec | None = None

    @model_validator(mode="after")
    def _one_timing(self) -> ChoiceSpec:
        if self.after is not None and self.early is not None:
            raise ValueError("give either after (its own timing always) or early "
                             "(its own timing for a share), not both")
        return self


def _branch_form(value: Any) -> str:
    """Which form a branch is written in: a mapping (``{weight: ...}``) or a bare weight."""
    return "ChoiceSpec" if isinstance(value, dict | ChoiceSpec) else "float"


Branch = Annotated[Annotated[Weight, Tag("float")] | Annotated[ChoiceSpec, Tag("ChoiceSpec")],
                   Discriminator(_branch_form)]
"""One branch of a ``choose`` table: ``trigger: weight`` or ``trigger: {weight: ...}``.

Told apart by form, so a mistake is reported against the form written, not both.
"""


class AimSpec(_Model):
    """Aim a step at a fraction of a running deadline's window (start to due).

    ``at: 0.8`` plans the step 80% of the way to the due time; ``at`` may be a
    distribution (its unit is ignored) so some steps are early and some late (> 1).
    """

    deadlines: list[str] = Field(default_factory=list)
    at: float | DistSpec = 0.8


class BeforeMeetingSpec(_Model):
    """Time a step before the case's booked meeting (e.g. reports before a conference).

    ``lead`` is how far ahead an on-time contribution arrives beyond the procedure's
    minimum notice; each agency in the step's resources is on time with its own
    ``report_on_time`` probability, otherwise it arrives inside the notice period.
    """

    trigger: str
    lead: DistSpec


class BehaviourSpec(_Model):
    """What happens in practice while a case is in one state (leaf or compound)."""

    choose: dict[str, Branch] | None = None
    choose_by_visit: list[dict[str, Branch]] | None = None
    choose_if_previous_plan: dict[str, Branch] | None = None
    """Used instead of the other table for a child who has had a plan before."""
    chance: Probability = 1.0
    chance_if_previous_plan: Probability | None = None
    """Used instead of ``chance`` for a child who has had a plan before (default: the same)."""
    after: DistSpec | None = None
    aim: AimSpec | None = None
    before_meeting: BeforeMeetingSpec | None = None
    postpone: str | None = None

    def chance_for(self, had_plan: bool) -> float:
        """The chance for a child who has (or has not) had a plan before."""
        if had_plan and self.chance_if_previous_plan is not None:
            return self.chance_if_previous_plan
        return self.chance

    @model_validator(mode="after")
    def _has_choice(self) -> BehaviourSpec:
        if (self.choose is None) == (self.choose_by_visit is None):
            raise ValueError("give exactly one of choose, choose_by_visit")
        if self.after is None and self.aim is None and self.before_meeting is None:
            branches = {**(self.choose or {}), **(self.choose_if_previous_plan or {})}
            if not all(isinstance(c, ChoiceSpec) and c.after for c in branches.values()):
                raise ValueError("give the timing: after, aim or before_meeting "
                                 "(or an after on every choice)")
        return self


class TaskSpec(_Model):
    """A recurring step driven by the procedure's deadlines (visits, core groups, notes).

    Whenever a deadline clock starts whose end is this trigger, the step is planned at
    ``aim`` of the clock's window; ``after`` is used when the clock has no due time.
    """

    aim: float | DistSpec = 0.8
    after: DistSpec | None = None


class ContributionSpec(_Model):
    """A step timed before a booked meeting, whatever state the case is in.

    For example, reports for a review conference arriving while it is being prepared.
    Whenever one of ``meetings`` is booked for a case, the step is planned ``lead`` before
    it, with each agency in the step's resources on time with its ``report_on_time``.
    """

    meetings: list[str]
    lead: DistSpec


class RunSpec(_Model):
    """Calendar start, horizon, warm-up, replications and the root seed."""

    start_date: date
    horizon_days: Annotated[int, Field(gt=0), _at_most(
        MAX_HORIZON_DAYS, "days (50 years): no procedure stays the same for longer, and a "
        "longer run would take days")]
    warm_up_days: Annotated[int, Field(ge=0)] = 0
    replications: Annotated[int, Field(gt=0), _at_most(
        MAX_REPLICATIONS, "replications: past a few hundred the confidence intervals hardly "
        "narrow, and more would run for days")] = 5
    seed: Annotated[int, Field(ge=0)] = 0
    sample_every_days: Annotated[int, Field(gt=0)] = 7

    @model_validator(mode="after")
    def _warm_up_inside(self) -> RunSpec:
        if self.warm_up_days >= self.horizon_days:
            raise ValueError("warm_up_days must be shorter than horizon_days")
        return self


class HistorySpec(_Model):
    """Children the authority knew before the run: they come back as a steady authority's do.

    The run starts as if cases had closed at ``closures_per_year`` for ever before it: each
    such child is referred again with the chance and after the gap that the behaviour of
    ``returns_from`` gives (``chance`` and ``after``), and had a plan with ``plan_share``
    (such a child returns with ``chance_if_previous_plan`` when the behaviour gives one).
    Without it, no child has a history before the run and returns build up only as the
    simulated cases close (years, for long gaps).
    """

    closures_per_year: YearlyVolume | None = None
    """Default: the scenario's ``referrals_per_year`` (in a steady state as many close)."""
    plan_share: Probability
    returns_from: str
    """Default: the state the procedure's CIN-flat ``closure`` type enters (filled in on
    loading, :func:`simulations.scenario_check.fill_from_procedure`)."""
    basis: str


class DemandSpec(_Model):
    """Referral volume, seasonality, re-referrals and the share of cases with each fact."""

    referrals_per_year: YearlyVolume
    re_referral_share: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    seasonality: list[NonNegFloat] | None = None
    facts: dict[str, Probability] = Field(default_factory=dict)
    history: HistorySpec | None = None

    @model_validator(mode="after")
    def _twelve_months(self) -> DemandSpec:
        if self.seasonality is not None and (
            len(self.seasonality) != 12 or sum(self.seasonality) <= 0
        ):
            raise ValueError("seasonality needs 12 monthly multipliers, not all zero")
        return self


class DemandSpreadSpec(_Model):
    """How unequal the teams' areas are in referrals, staff being split evenly regardless.

    Each replication gives every area a share of the referrals: gamma weights with
    coefficient of variation ``cv``, normalised to sum to one, so some teams run hot and
    others cold (0 gives equal shares).
    """

    cv: NonNegFloat
    basis: str


class TeamsSpec(_Model):
    """Social work teams, each holding the cases of its own area.

    Give either ``count`` (how many teams) or ``fte_per_team`` (establishment FTE per team,
    so the number of teams follows the establishment when a scenario scales it). Posts are
    dealt to teams in turn, so each team has about the same FTE; every case belongs to one
    team, drawn at random, and is only ever allocated to a worker of that team. Without
    ``demand_spread`` every team's area has the same expected share of referrals.
    """

    count: Annotated[int, Field(gt=0)] | None = None
    fte_per_team: PositiveFloat | None = None
    basis: str
    demand_spread: DemandSpreadSpec | None = None

    @model_validator(mode="after")
    def _one_size(self) -> TeamsSpec:
        if (self.count is None) == (self.fte_per_team is None):
            raise ValueError("give exactly one of count, fte_per_team")
        return self

    def number(self, establishment_fte: float) -> int:
        """How many teams an establishment of ``establishment_fte`` is split into."""
        if self.count is not None:
            return self.count
        assert self.fte_per_team is not None
        return max(1, round(establishment_fte / self.fte_per_team))


def _working_days(low: float, high: float) -> DistSpec:
    return DistSpec(uniform=(low, high), unit="working_days")


class TurnoverSpec(_Model):
    """Social workers leaving: their cases are re-allocated and their post stands vacant.

    Each worker in post leaves after an exponential time with ``rate_per_year`` (CAL-16 is
    the national turnover rate). The leaver's cases have no worker until a manager hands them
    on, ``reallocation_delay`` later; then they are allocated in their team like new cases
    (queueing when the team is full). The post is filled by an agency worker after
    ``agency_gap`` with chance ``agency_cover``, otherwise by a recruit after
    ``vacancy_gap``; either starts with no cases and leaves at the same rate.
    """

    rate_per_year: PositiveFloat
    basis: str
    reallocation_delay: DistSpec = Field(default_factory=lambda: _working_days(2, 10))
    """Default: 2 to 10 working days (assumption)."""
    vacancy_gap: DistSpec = Field(default_factory=lambda: _working_days(20, 80))
    """Default: 20 to 80 working days, one to four months to recruit (assumption)."""
    agency_cover: Probability = 0.0
    agency_gap: DistSpec = Field(default_factory=lambda: _working_days(5, 15))
    """Default: 5 to 15 working days to bring in an agency worker (assumption)."""


class PartTimeSpec(_Model):
    """Social workers on part-time contracts: a ``share`` of the heads, each at ``fte``.

    A part-timer's caseload cap is the full cap times ``fte`` (rounded, at least 1).
    """

    share: Annotated[float, Field(ge=0.0, lt=1.0)]
    fte: Annotated[float, Field(gt=0.0, le=1.0)]
    basis: str


class NewlyQualifiedSpec(_Model):
    """Full-time social workers in their first year (ASYE) with a protected caseload.

    A standing ``share`` of the heads, each with a cap of the full cap times ``cap_factor``
    (rounded, at least 1). The share stands for a steady state: nobody's first year ends.
    """

    share: Annotated[float, Field(ge=0.0, lt=1.0)]
    cap_factor: Annotated[float, Field(gt=0.0, le=1.0)]
    basis: str


class SocialWorkerSpec(_Model):
    """Case-holding social workers: establishment, vacancies, caps, absence, teams, turnover.

    ``effective_workers()`` FTE are in post (the standing vacancies of ``vacancy_rate``
    less agency cover are never filled); ``heads()`` are the people simulated, more than
    the FTE when some work ``part_time``. Without ``teams`` every worker serves the whole
    authority; without ``turnover`` nobody leaves; without ``part_time`` and
    ``newly_qualified`` everyone is full-time with the same cap.
    """

    establishment_fte: Annotated[float, Field(gt=0.0), _at_most(
        MAX_ESTABLISHMENT_FTE, "FTE: all of England has about 33,000 child and family social "
        "workers, so a larger number is a mistake (and would exhaust memory)")]
    vacancy_rate: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    agency_fill: Probability = 0.0
    caseload_cap: Annotated[int, Field(gt=0)]
    absence_rate: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    absence_spell_days: PositiveFloat = 5.0
    holds_cases_in: list[str]
    teams: TeamsSpec | None = None
    turnover: TurnoverSpec | None = None
    part_time: PartTimeSpec | None = None
    newly_qualified: NewlyQualifiedSpec | None = None

    @model_validator(mode="after")
    def _teams_staffed(self) -> SocialWorkerSpec:
        if self.part_time is not None and self.newly_qualified is not None and \
                self.part_time.share + self.newly_qualified.share >= 1.0:
            raise ValueError("part_time.share and newly_qualified.share leave nobody "
                             "full-time and fully qualified: their sum must be below 1")
        heads = len(self.heads())
        if self.teams is not None and self.team_count() > heads:
            raise ValueError(f"{self.team_count()} teams but only {heads} "
                             "workers in post: every team needs at least one")
        return self

    def effective_workers(self) -> int:
        """FTE in post: establishment less vacancies, plus agency cover, at least 1.

        Also the number of workers when everyone is full-time.
        """
        vacant = self.establishment_fte * self.vacancy_rate
        return max(1, round(self.establishment_fte - vacant + vacant * self.agency_fill))

    def heads(self) -> list[tuple[float, int]]:
        """Each person in post as (FTE, caseload cap): full-timers, then ASYE, then part-time.

        The heads add up to ``effective_workers()`` FTE (to within half a part-timer's
        FTE): with part-timers there are more heads than FTE. Newly qualified workers are
        full-time, taken from the full-timers.
        """
        fte = self.effective_workers()
        part = 0
        part_fte = 1.0
        if self.part_time is not None:
            part_fte = self.part_time.fte
            share = self.part_time.share
            part = round(share * fte / (1.0 - share * (1.0 - part_fte)))
        full = max(0, round(fte - part * part_fte))
        if full + part == 0:
            full = 1
        newly = 0
        nq_cap = self.caseload_cap
        if self.newly_qualified is not None:
            newly = min(full, round(self.newly_qualified.share * (full + part)))
            nq_cap = max(1, round(self.caseload_cap * self.newly_qualified.cap_factor))
        part_cap = max(1, round(self.caseload_cap * part_fte))
        return ([(1.0, self.caseload_cap)] * (full - newly) + [(1.0, nq_cap)] * newly
                + [(part_fte, part_cap)] * part)

    def team_count(self) -> int:
        """How many teams the workers are split into (1 without ``teams``)."""
        return 1 if self.teams is None else self.teams.number(self.establishment_fte)


class DiarySpec(_Model):
    """People whose time is booked in a diary: conference chairs or minute-takers."""

    count: Annotated[int, Field(gt=0)]
    slots_per_day: Annotated[int, Field(gt=0)]
    meeting_hours: PositiveFloat = 1.5


class ManagerSpec(_Model):
    """Managers at one level: how many, and the work one response takes."""

    count: Annotated[int, Field(gt=0)]
    work: DistSpec


class AgencySpec(_Model):
    """An invited agency: chance it attends a conference and sends its report on time."""

    attends: Probability = 1.0
    report_on_time: Probability = 1.0


class MeetingSpec(_Model):
    """How one kind of meeting differs from the others (``staffing.by_meeting``)."""

    family_unavailable: Probability | None = None
    rebook_after: DistSpec | None = None
    basis: str = ""


class StaffingSpec(_Model):
    """Everyone whose capacity limits what the procedure can achieve."""

    social_workers: SocialWorkerSpec
    conference_chairs: DiarySpec
    minute_takers: DiarySpec
    managers: dict[str, ManagerSpec] = Field(default_factory=dict)
    agencies: dict[str, AgencySpec] = Field(default_factory=dict)
    postpone_when_absent: Probability = 0.0
    family_unavailable: Probability = 0.0
    """Chance the family cannot come on a conference's booked day, so it is rebooked."""
    rebook_after: DistSpec | None = None
    """How much later a postponed conference is rebooked (default: 1 working day)."""
    by_meeting: dict[str, MeetingSpec] = Field(default_factory=dict)
    """The two above for particular meetings, by the trigger that opens them."""


class ValidationSpec(_Model):
    """How this scenario's counts compare with a published table (``cpsim validate``)."""

    scale: PositiveFloat
    """Counts are multiplied by this before comparison (153: one typical English authority)."""
    basis: str
    """Where the scale comes from (a CAL row, or an assumption in one sentence)."""


MAX_AUTHORITIES = 1_000
"""The most authorities a scenario may be split into (England has 153)."""


class AuthoritySpec(_Model):
    """One authority of a scenario split into authorities: its name and share of the whole.

    Its referrals and staff are the scenario's times ``share``
    (:mod:`simulations.authorities`).
    """

    name: Annotated[str, Field(min_length=1)]
    share: Annotated[float, Field(gt=0.0, le=1.0)]


def _shares_add_up(authorities: list[AuthoritySpec]) -> list[AuthoritySpec]:
    if not authorities:
        raise ValueError("name at least one authority (or give a count)")
    names = [a.name for a in authorities]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"each authority needs its own name ({', '.join(twice)} given twice)")
    total = sum(a.share for a in authorities)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise ValueError(f"the shares add up to {total:.6g}, not 1: each is the authority's "
                         "share of the scenario's referrals and staff")
    return authorities


SHARE_TOLERANCE = 0.001
"""How far the authorities' shares may add up from 1 (rounding in a published table)."""

AuthorityCount = Annotated[int, Field(gt=0), _at_most(
    MAX_AUTHORITIES, "authorities: England has 153")]


class AuthoritySizesSpec(_Model):
    """``count`` authorities whose sizes follow a distribution, with where it comes from.

    The authorities are the distribution's quantiles at (k + 0.5) / count for k = 0 ...
    count - 1, smallest first, each a share of their sum: no random draw, so the same
    block always gives the same authorities. The distribution's unit is ignored (sizes
    are relative: referrals a year, say).
    """

    count: AuthorityCount
    sizes: DistSpec
    basis: str

    @model_validator(mode="after")
    def _all_sized(self) -> AuthoritySizesSpec:
        if self.sizes.quantile(0.5 / self.count) <= 0:
            raise ValueError("sizes: the smallest authority would have no size: every "
                             "quantile must be above 0")
        return self

    def shares(self) -> list[float]:
        """Each authority's share of the whole, smallest first."""
        sizes = [self.sizes.quantile((k + 0.5) / self.count) for k in range(self.count)]
        total = math.fsum(sizes)
        return [size / total for size in sizes]


def _authorities_form(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    return "AuthoritySizesSpec" if isinstance(value, dict | AuthoritySizesSpec) else "int"


Authorities = Annotated[
    Annotated[AuthorityCount, Tag("int")]
    | Annotated[Annotated[list[AuthoritySpec], AfterValidator(_shares_add_up)], Tag("list")]
    | Annotated[AuthoritySizesSpec, Tag("AuthoritySizesSpec")],
    Discriminator(_authorities_form)]
"""``authorities:`` a count of equal authorities, a list of ``{name, share}``, or a size
distribution (``{count, sizes, basis}``)."""


class ScenarioSpec(_Model):
    """The whole scenario file as written."""

    scenario: str
    title: str
    description: str = ""
    procedure: str
    procedure_overrides: dict[str, Any] | None = None
    run: RunSpec
    demand: DemandSpec
    behaviour: dict[str, BehaviourSpec]
    tasks: dict[str, TaskSpec] = Field(default_factory=dict)
    before_meetings: dict[str, ContributionSpec] = Field(default_factory=dict)
    staffing: StaffingSpec
    plan_state: str
    """The state whose stays count as child protection plans (plan KPIs). Default: the state
    the procedure's CIN-flat ``cp_plan_start`` type enters (filled in on loading)."""
    plan_includes: list[str] = Field(default_factory=list)
    """States beside ``plan_state`` that continue the same plan (a flat procedure's reviews)."""
    validation: ValidationSpec | None = None
    authorities: Authorities | None = None
    """Run as this many authorities (or these), each its own shard with its own staff and
    random streams; the replication's record is their merge (national totals)."""


def model_names() -> set[str]:
    """The class names of every scenario model (how pydantic tags union members in errors)."""
    def below(model: type[BaseModel]) -> set[str]:
        names = {model.__name__}
        for sub in model.__subclasses__():
            names |= below(sub)
        return names

    return below(_Model)
