"""Read and validate a scenario: a procedure (plus overrides), demand, staffing, run settings.

A scenario holds what *happens* (volumes, branching, durations, staff); the procedure holds
what is *required*. Loading is normalise -> validate -> construct: the YAML is read safely
with the line of every key, pydantic checks the shape (unknown keys rejected), then the
scenario is checked against the compiled procedure (every state, trigger and deadline it
names must exist there). Every problem is reported at once with file, line, field and value.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from model.errors import InputError, Problem, did_you_mean
from model.graph import build_graph
from model.guards import FACTS
from model.loader import (
    load_procedure,
    load_procedure_with_overrides,
    merge,
    resolve_procedure_path,
)
from model.spec import MANAGER_LEVELS, Procedure, Transition
from model.types import StateId
from model.yamlsrc import LList, LMap, load_yaml_text
from simulations.distributions import Dist, TimeUnit

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"
"""Where the shipped scenarios live (``scenarios/`` at the top of the repository)."""

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
    returns_from: str = "closed"
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
    plan_state: str = "cp_plan"
    """The state whose stays count as child protection plans (plan KPIs)."""
    plan_includes: list[str] = Field(default_factory=list)
    """States beside ``plan_state`` that continue the same plan (a flat procedure's reviews)."""
    validation: ValidationSpec | None = None


@dataclass(frozen=True)
class Scenario:
    """A validated scenario with its procedure loaded.

    Attributes:
        spec: The scenario as written (frozen pydantic model).
        procedure: The procedure it runs (with any overrides applied).
        path: The scenario file.
        sha256: Content hash of the scenario file (with every file it extends).
        files: Each file that went into the scenario with its SHA-256 (and the
            command-line overrides' hash).
        overrides: Dotted fields set from the command line (a sweep's grid point).
    """

    spec: ScenarioSpec
    procedure: Procedure
    path: Path
    sha256: str
    files: tuple[tuple[str, str], ...] = ()
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The scenario's name (its file stem)."""
        return self.spec.scenario


def available_scenarios() -> tuple[str, ...]:
    """Names of the shipped scenarios, sorted."""
    return tuple(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))


def resolve_scenario_path(name_or_path: str | Path) -> Path:
    """A shipped scenario's name or a path to a scenario file.

    Raises:
        InputError: no such scenario, with the closest shipped name.
    """
    text = str(name_or_path)
    candidate = Path(text)
    if candidate.is_file():
        return candidate
    shipped = SCENARIO_DIR / f"{text}.yaml"
    if "/" not in text and shipped.is_file():
        return shipped
    raise InputError([Problem(text, None, "", "no such scenario (a shipped name or a path "
                              "to a .yaml file)", text, did_you_mean(
                                  Path(text).stem, available_scenarios()))])


def _locate(raw: Any, loc: tuple[int | str, ...], file: str
            ) -> tuple[str, int | None, Any]:
    """Where the deepest part of ``loc`` found in the raw YAML was written, and its value.

    Returns the file (a scenario may inherit a key from the one it extends), the line (None
    for a value set on the command line) and the value found there.
    """
    node = raw
    line: int | None = raw.line if isinstance(raw, LMap | LList) else None
    for part in loc:
        if isinstance(node, LMap) and isinstance(part, str) and part in node:
            file, line = node.at(part)
            node = node[part]
            continue
        if isinstance(node, LList) and isinstance(part, int) and 0 <= part < len(node):
            file, line = node.at(part)
            node = node[part]
            continue
        break
    return file, None if file == OVERRIDE_SOURCE else line, node


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field names allowed at ``loc`` (for "did you mean" on an unknown key)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        else:
            current = _inner(current)
        current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    """Strip Optional / Annotated from a type, keeping a model class if there is one."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        members = [_unwrap(arg) for arg in typing.get_args(tp) if arg is not type(None)]
        for member in members:
            if isinstance(member, type) and issubclass(member, BaseModel):
                return member
        if members:
            return members[0]
    return tp


def _inner(tp: Any) -> Any:
    """The element type of a list or the value type of a dict."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is dict and len(args) == 2:
        return args[1]
    if typing.get_origin(tp) is list and args:
        return args[0]
    return tp


_TYPE_TAG = re.compile(r"(?:float|int|str|bool|bytes|none|date|datetime|list|dict|tuple|set"
                       r"|frozenset)\Z|[a-z]+(?:-[a-z]+)*\[.*\]\Z", re.DOTALL)
"""How pydantic names a member of a union in an error's ``loc``: ``float``, ``list[str]``,
``function-after[_one_kind(), DistSpec]``, ``tagged-union[...]`` (and model class names)."""


def _model_names(model: type[BaseModel] = _Model) -> set[str]:
    """The class names of ``model`` and every model built on it."""
    names = {model.__name__}
    for sub in model.__subclasses__():
        names |= _model_names(sub)
    return names


def _field_loc(raw: Any, loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """``loc`` without pydantic's union tags, keeping every key written in the YAML.

    A part is a tag only when it is exactly a type's name (``float``, ``ChoiceSpec``,
    ``list[...]``) and the YAML has no key of that name there, so keys such as
    ``interpreter_needed`` or even ``float`` are kept.
    """
    models = _model_names()
    kept: list[int | str] = []
    node = raw
    for part in loc:
        written = isinstance(node, Mapping) and part in node
        if isinstance(part, str) and not written and (part in models
                                                      or _TYPE_TAG.match(part)):
            continue
        kept.append(part)
        if written or (isinstance(node, list) and isinstance(part, int)
                       and 0 <= part < len(node)):
            node = node[part]
        else:
            node = None
    return tuple(kept)


def _pydantic_problems(exc: ValidationError, raw: LMap, file: str) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = _field_loc(raw, tuple(error["loc"]))
        where, line, value = _locate(raw, loc, file)
        field = ".".join(str(p) for p in loc)
        message = error["msg"].removeprefix("Value error, ")
        hint = None
        if error["type"] == "finite_number":
            message = "must be a finite number, not .inf or .nan"
        elif error["type"] == "extra_forbidden":
            message = "unknown key"
            value = loc[-1]
            hint = did_you_mean(loc[-1], _allowed_keys(ScenarioSpec, loc[:-1]))
        elif error["type"] == "missing":
            message = "is required"
            value = None
        elif isinstance(value, LMap | LList):
            value = None
        problems.append(Problem(where, line, field, message, value, hint))
    unique: list[Problem] = []
    for p in problems:
        if p not in unique:
            unique.append(p)
    return unique


def _offers(procedure: Procedure, state: StateId, t: Transition) -> bool:
    """True when ``t`` may start in ``state``: from it, an ancestor, or a state inside it."""
    chain = set(procedure.ancestors(state))
    if chain & set(t.sources):
        return True
    return any(state in procedure.ancestors(s) for s in t.sources)


class _Checker:
    """Cross-checks a scenario against its procedure, collecting every problem."""

    def __init__(self, procedure: Procedure, raw: LMap, file: str) -> None:
        self.proc = procedure
        self.raw = raw
        self.file = file
        self.problems: list[Problem] = []
        self.deadlines = [d.id for d in procedure.deadlines]

    def err(self, loc: tuple[str | int, ...], message: str, value: object = None,
            hint: str | None = None) -> None:
        file, line, _ = _locate(self.raw, loc, self.file)
        self.problems.append(Problem(file, line, ".".join(map(str, loc)), message,
                                     value, hint))

    def state(self, loc: tuple[str | int, ...], sid: str) -> bool:
        if sid in self.proc.states and not (
            self.proc.states[sid].parent is None and self.proc.states[sid].region
        ):
            return True
        self.err(loc, "no such state in the procedure", sid,
                 did_you_mean(sid, list(self.proc.states)))
        return False

    def trigger_from(self, loc: tuple[str | int, ...], trigger: str, state: StateId) -> None:
        ts = [t for t in self.proc.transitions if t.trigger == trigger]
        if not ts:
            self.err(loc, "no such trigger in the procedure", trigger,
                     did_you_mean(trigger, self.proc.triggers))
        elif not any(_offers(self.proc, state, t) for t in ts):
            offered = sorted({t.trigger for t in self.proc.transitions
                              if _offers(self.proc, state, t)})
            self.err(loc, f"the procedure does not offer this trigger in {state}", trigger,
                     did_you_mean(trigger, offered))

    def deadline_ids(self, loc: tuple[str | int, ...], ids: list[str]) -> None:
        for i, d in enumerate(ids):
            if d not in self.deadlines:
                self.err((*loc, i), "no such deadline in the procedure", d,
                         did_you_mean(d, self.deadlines))

    def run(self) -> list[Problem]:
        """Check every name the scenario uses against the procedure.

        Works on the raw data, so it also runs when the shape check failed, and its
        problems are reported together with those.
        """
        d = _plain(self.raw)
        demand = _dict(d.get("demand"))
        for fact in _dict(demand.get("facts")):
            if fact not in FACTS:
                self.err(("demand", "facts", fact), "no guard reads this fact", fact,
                         did_you_mean(fact, FACTS))
        returns = _dict(demand.get("history")).get("returns_from", "closed" if isinstance(
            demand.get("history"), dict) else None)
        if isinstance(returns, str):
            rb = _dict(_dict(d.get("behaviour")).get(returns))
            if not rb or rb.get("after") is None:
                self.err(("demand", "history", "returns_from"), "needs the behaviour of this "
                         "state, with a chance and an after (the gap before a child returns)",
                         returns, did_you_mean(returns, _dict(d.get("behaviour"))))
        for sid, b in _dict(d.get("behaviour")).items():
            loc: tuple[str | int, ...] = ("behaviour", sid)
            if not self.state(loc, sid):
                continue
            b = _dict(b)
            branches: list[tuple[tuple[str | int, ...], str]] = [
                ((*loc, "choose", t), t) for t in _dict(b.get("choose"))]
            visits = b.get("choose_by_visit")
            for k, table in enumerate(visits if isinstance(visits, list) else []):
                branches += [((*loc, "choose_by_visit", k, t), t) for t in _dict(table)]
            branches += [((*loc, "choose_if_previous_plan", t), t)
                         for t in _dict(b.get("choose_if_previous_plan"))]
            for where, trig in branches:
                self.trigger_from(where, trig, sid)
            if isinstance(b.get("postpone"), str):
                self.trigger_from((*loc, "postpone"), b["postpone"], sid)
            deadlines = _dict(b.get("aim")).get("deadlines")
            if isinstance(deadlines, list):
                self.deadline_ids((*loc, "aim", "deadlines"), deadlines)
            meeting = _dict(b.get("before_meeting")).get("trigger")
            if isinstance(meeting, str) and meeting not in self.proc.triggers:
                self.err((*loc, "before_meeting", "trigger"), "no such trigger in the procedure",
                         meeting, did_you_mean(meeting, self.proc.triggers))
        ends = {dl.end.name for dl in self.proc.deadlines if dl.end.kind == "trigger"}
        for trig in _dict(d.get("tasks")):
            if trig not in self.proc.triggers:
                self.err(("tasks", trig), "no such trigger in the procedure", trig,
                         did_you_mean(trig, self.proc.triggers))
            elif trig not in ends:
                self.err(("tasks", trig), "no deadline ends with this trigger, so nothing "
                         "would ever plan it", trig)
        plan_state = d.get("plan_state", "cp_plan")
        if isinstance(plan_state, str) and plan_state not in self.proc.states:
            self.err(("plan_state",), "no such state in the procedure", plan_state,
                     did_you_mean(plan_state, list(self.proc.states)))
        includes = d.get("plan_includes")
        for k, sid in enumerate(includes if isinstance(includes, list) else []):
            if sid not in self.proc.states:
                self.err(("plan_includes", k), "no such state in the procedure", sid,
                         did_you_mean(str(sid), list(self.proc.states)))
        for trig, c in _dict(d.get("before_meetings")).items():
            if trig not in self.proc.triggers:
                self.err(("before_meetings", trig), "no such trigger in the procedure", trig,
                         did_you_mean(trig, self.proc.triggers))
            meetings = _dict(c).get("meetings")
            for k, meeting in enumerate(meetings if isinstance(meetings, list) else []):
                if meeting not in self.proc.triggers:
                    self.err(("before_meetings", trig, "meetings", k),
                             "no such trigger in the procedure", meeting,
                             did_you_mean(str(meeting), self.proc.triggers))
        staffing = _dict(d.get("staffing"))
        holds = _dict(staffing.get("social_workers")).get("holds_cases_in")
        for i, sid in enumerate(holds if isinstance(holds, list) else []):
            self.state(("staffing", "social_workers", "holds_cases_in", i), str(sid))
        for trig in _dict(staffing.get("by_meeting")):
            if trig not in self.proc.triggers:
                self.err(("staffing", "by_meeting", trig),
                         "no such trigger in the procedure", trig,
                         did_you_mean(str(trig), self.proc.triggers))
        for level in _dict(staffing.get("managers")):
            if level not in MANAGER_LEVELS:
                self.err(("staffing", "managers", level), "unknown manager level", level,
                         did_you_mean(level, MANAGER_LEVELS))
        self.every_state_has_behaviour(set(_dict(d.get("behaviour"))))
        return self.problems

    def every_state_has_behaviour(self, covered: set[str]) -> None:
        """A state a case can reach, with moves out, needs a behaviour to leave it."""
        proc = self.proc
        graph = build_graph(proc)
        reached = {leaf for config in graph.graph.nodes for leaf in config}
        for leaf in proc.leaves():
            if leaf not in reached:
                continue
            moves = [t for t in proc.transitions if not t.internal and _offers(proc, leaf, t)
                     and any(s in proc.ancestors(leaf) for s in t.sources)]
            if not moves:
                continue
            if covered & set(proc.ancestors(leaf)):
                continue
            if proc.states[leaf].terminal:
                continue  # a case may simply rest here
            self.err(("behaviour",), f"no behaviour covers state {leaf}: cases would wait "
                     "there for ever", leaf)


def _dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a mapping, else an empty one (shape errors are reported apart)."""
    return value if isinstance(value, dict) else {}


SCENARIO_ATOMIC = frozenset({"after", "lead", "work", "at", "choose", "choose_by_visit",
                             "choose_if_previous_plan",
                             "within", "at_least", "from", "to", "of", "requires", "then"})
"""Scenario fields replaced whole (not merged) by a scenario that ``extends`` another."""


def _read_raw(path: Path, stack: tuple[Path, ...]) -> tuple[LMap, list[tuple[str, str]]]:
    """Read a scenario file and everything it extends, merged; with each file's hash."""
    display = str(path)
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([Problem(display, None, "", f"cannot read scenario: {exc}")]) from None
    raw = load_yaml_text(text, display)
    if not isinstance(raw, LMap):
        raise InputError([Problem(display, 1, "", "a scenario file must be a YAML mapping")])
    files = [(display, hashlib.sha256(data).hexdigest())]
    base = raw.get("extends")
    if base is None:
        return raw, files
    where = raw.at("extends")
    if not isinstance(base, str):
        raise InputError([Problem(display, where[1], "extends", "must name one scenario",
                                  base)])
    beside = path.parent / (base if base.endswith((".yaml", ".yml")) else f"{base}.yaml")
    try:
        base_path = beside if beside.is_file() else resolve_scenario_path(base)
    except InputError as exc:
        p = exc.problems[0]
        raise InputError([Problem(display, where[1], "extends", p.message, base,
                                  p.hint)]) from None
    if base_path.resolve() in (*stack, path.resolve()):
        raise InputError([Problem(display, where[1], "extends",
                                  "scenarios extend each other in a cycle", base)])
    base_raw, base_files = _read_raw(base_path, (*stack, path.resolve()))
    over = LMap(raw.file, raw.line)
    for key, value in raw.items():
        if key != "extends":
            over[key] = value
            over.where[key] = raw.at(key)
    return merge(base_raw, over, SCENARIO_ATOMIC), base_files + files


OVERRIDE_SOURCE = "command line"
"""The "file" named by problems in values set from the command line (``--vary``)."""


_PATH_PART = re.compile(r"\[([^\[\]]+)\]|([^.\[\]]+)")


def split_path(dotted: str) -> list[str | int] | None:
    """The parts of a field path; ``[...]`` holds a key with dots or a list index.

    >>> split_path("staffing.social_workers.establishment_fte")
    ['staffing', 'social_workers', 'establishment_fte']
    >>> split_path("behaviour[cp_plan.active].choose_by_visit[0].review_due")
    ['behaviour', 'cp_plan.active', 'choose_by_visit', 0, 'review_due']
    >>> split_path("a..b") is None
    True
    """
    parts: list[str | int] = []
    pos = 0
    while pos < len(dotted):
        if parts and dotted[pos] == "." and dotted[pos + 1:pos + 2] not in ("", ".", "["):
            pos += 1
        match = _PATH_PART.match(dotted, pos)
        if match is None or (parts and match.group(2) and dotted[pos - 1] != "."):
            return None
        bracket, plain = match.groups()
        parts.append(int(bracket) if bracket is not None and bracket.isdigit()
                     else (bracket if bracket is not None else plain))
        pos = match.end()
    return parts or None


def _apply_override(raw: LMap, dotted: str, value: Any) -> Problem | None:
    """Set the field ``dotted`` in ``raw``.

    For example ``staffing.social_workers.establishment_fte``, or with brackets
    ``behaviour[cp_plan.active].choose_by_visit[0].review_due``.
    """
    parts = split_path(dotted)
    if parts is None:
        return Problem(OVERRIDE_SOURCE, None, dotted, "not a field path (names joined by "
                       "dots; [KEY] for a key with dots, [N] for a list item)", dotted)
    node: LMap | LList = raw
    for depth, part in enumerate(parts[:-1]):
        if isinstance(node, LList):
            if not isinstance(part, int) or not 0 <= part < len(node):
                return Problem(OVERRIDE_SOURCE, None, dotted, f"no item {part!r} in the list "
                               f"(it has {len(node)})", dotted)
            child = node[part]
        else:
            key = str(part)
            child = node.get(key)
            if child is None:
                child = LMap(OVERRIDE_SOURCE, 0)
                node[key] = child
                node.where[key] = (OVERRIDE_SOURCE, 0)
        if not isinstance(child, LMap | LList):
            return Problem(OVERRIDE_SOURCE, None, ".".join(str(p) for p in parts[:depth + 1]),
                           "is not a mapping, so nothing inside it can be set", dotted)
        node = child
    last = parts[-1]
    if isinstance(node, LList):
        if not isinstance(last, int) or not 0 <= last < len(node):
            return Problem(OVERRIDE_SOURCE, None, dotted, "no such item in the list", dotted)
        node[last] = value
        return None
    node[str(last)] = value
    node.where[str(last)] = (OVERRIDE_SOURCE, 0)
    return None


def overrides_digest(overrides: Mapping[str, Any]) -> str:
    """A stable text form of command-line overrides, for hashing and metadata."""
    return json.dumps(dict(sorted(overrides.items())), sort_keys=True, default=str)


def load_scenario(name_or_path: str | Path,
                  overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Load, validate and freeze a scenario by shipped name or path.

    A scenario may ``extends: OTHER`` and override only what differs (mappings merge key
    by key; durations and branch tables are replaced whole). ``overrides`` set dotted
    fields (``demand.referrals_per_year``) after the files are merged, as a sweep does;
    the result is validated like any scenario.

    Raises:
        InputError: every problem found, each with file, line, field and value.
    """
    path = resolve_scenario_path(name_or_path)
    display = str(path)
    raw, files = _read_raw(path, ())
    for dotted, value in (overrides or {}).items():
        trouble = _apply_override(raw, dotted, value)
        if trouble is not None:
            raise InputError([trouble])
    if overrides:
        files = [*files, (OVERRIDE_SOURCE, hashlib.sha256(
            overrides_digest(overrides).encode()).hexdigest())]
    problems: list[Problem] = []
    spec: ScenarioSpec | None = None
    try:
        spec = ScenarioSpec.model_validate(_plain(raw))
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, raw, display))
    declared = raw.get("scenario")
    if declared != path.stem:
        problems.append(Problem(display, raw.at("scenario")[1], "scenario",
                                f"must match the file name '{path.stem}'", declared))
    sha = files[-1][1] if len(files) == 1 else hashlib.sha256(
        "".join(f"{Path(f).name}:{h}\n" for f, h in files).encode()).hexdigest()
    procedure = None
    base = raw.get("procedure")
    procedure_overrides = raw.get("procedure_overrides")
    if isinstance(base, str):
        try:
            if isinstance(procedure_overrides, LMap) and procedure_overrides:
                procedure = load_procedure_with_overrides(
                    base, procedure_overrides, f"{base}+{declared}", path, (display, sha))
            else:
                procedure = load_procedure(resolve_procedure_path(base, path))
        except InputError as exc:
            problems.extend(exc.problems)
    if procedure is not None:
        problems.extend(_Checker(procedure, raw, display).run())
    if problems or spec is None or procedure is None:
        problems.sort(key=lambda p: (p.file != display, p.line or 0))
        raise InputError(problems)
    return Scenario(spec, procedure, path, sha, tuple(files), dict(overrides or {}))


def _plain(value: Any) -> Any:
    """LMap/LList to plain dicts and lists (pydantic validates plain data)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value

