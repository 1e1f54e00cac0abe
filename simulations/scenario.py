"""Read and validate a scenario: a procedure (plus overrides), demand, staffing, run settings.

A scenario holds what *happens* (volumes, branching, durations, staff); the procedure holds
what is *required*. Loading is normalise -> validate -> construct: the YAML is read safely
with the line of every key, pydantic checks the shape (unknown keys rejected;
:mod:`simulations.scenario_spec`), then the scenario is checked against the compiled
procedure (every state, trigger and deadline it names must exist there;
:mod:`simulations.scenario_check`). Every problem is reported at once with file, line, field
and value (:mod:`simulations.scenario_locate`). The schema's names are importable from here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from model.errors import InputError, Problem, did_you_mean
from model.loader import (
    load_procedure,
    load_procedure_with_overrides,
    merge,
    resolve_procedure_path,
)
from model.spec import Procedure
from model.yamlsrc import LList, LMap, load_yaml_text
from simulations.scenario_check import DERIVED, check_against_procedure, fill_from_procedure
from simulations.scenario_locate import OVERRIDE_SOURCE, pydantic_problems
from simulations.scenario_spec import (
    MAX_ESTABLISHMENT_FTE,
    MAX_HORIZON_DAYS,
    MAX_REFERRALS_PER_YEAR,
    MAX_REPLICATIONS,
    AgencySpec,
    AimSpec,
    BeforeMeetingSpec,
    BehaviourSpec,
    Branch,
    ChoiceSpec,
    ContributionSpec,
    DemandSpec,
    DemandSpreadSpec,
    DiarySpec,
    DistSpec,
    EarlySpec,
    HistorySpec,
    LognormalSpec,
    ManagerSpec,
    MeetingSpec,
    NewlyQualifiedSpec,
    NonNegFloat,
    PartTimeSpec,
    PositiveFloat,
    Probability,
    RunSpec,
    ScenarioSpec,
    SocialWorkerSpec,
    StaffingSpec,
    TaskSpec,
    TeamsSpec,
    TurnoverSpec,
    ValidationSpec,
    Weight,
    YearlyVolume,
)

__all__ = [
    "MAX_ESTABLISHMENT_FTE",
    "MAX_HORIZON_DAYS",
    "MAX_REFERRALS_PER_YEAR",
    "MAX_REPLICATIONS",
    "OVERRIDE_SOURCE",
    "SCENARIO_ATOMIC",
    "SCENARIO_DIR",
    "AgencySpec",
    "AimSpec",
    "BeforeMeetingSpec",
    "BehaviourSpec",
    "Branch",
    "ChoiceSpec",
    "ContributionSpec",
    "DemandSpec",
    "DemandSpreadSpec",
    "DiarySpec",
    "DistSpec",
    "EarlySpec",
    "HistorySpec",
    "LognormalSpec",
    "ManagerSpec",
    "MeetingSpec",
    "NewlyQualifiedSpec",
    "NonNegFloat",
    "PartTimeSpec",
    "PositiveFloat",
    "Probability",
    "RunSpec",
    "Scenario",
    "ScenarioSpec",
    "SocialWorkerSpec",
    "StaffingSpec",
    "TaskSpec",
    "TeamsSpec",
    "TurnoverSpec",
    "ValidationSpec",
    "Weight",
    "YearlyVolume",
    "available_scenarios",
    "field_value",
    "load_scenario",
    "overrides_digest",
    "resolve_scenario_path",
    "split_path",
]

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"
"""Where the shipped scenarios live (``scenarios/`` at the top of the repository)."""



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


def field_value(obj: Any, path: str) -> Any:
    """The value at field path ``path`` (as :func:`split_path` reads it) inside ``obj``.

    ``obj`` is a scenario's spec or its plain data; None when the path is not well formed
    or leads nowhere (a missing key, attribute or list item).

    >>> field_value({"run": {"seeds": [7, 8]}}, "run.seeds[1]")
    8
    >>> field_value({"run": {}}, "run.seed") is None
    True
    """
    parts = split_path(path)
    if parts is None:
        return None
    for part in parts:
        if isinstance(part, int):
            obj = obj[part] if isinstance(obj, list) and 0 <= part < len(obj) else None
        else:
            obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
        if obj is None:
            return None
    return obj


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
    the result is validated like any scenario. ``plan_state`` and
    ``demand.history.returns_from``, when left out, are the states the procedure's CIN-flat
    mapping names (:data:`simulations.scenario_check.DERIVED`).

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
    declared = raw.get("scenario")
    sha = files[-1][1] if len(files) == 1 else hashlib.sha256(
        "".join(f"{Path(f).name}:{h}\n" for f, h in files).encode()).hexdigest()
    procedure, procedure_problems = _procedure_of(raw, path, declared, (display, sha))
    data = _plain(raw)
    filled = [] if procedure is None else fill_from_procedure(data, procedure, raw, display)
    problems: list[Problem] = []
    spec: ScenarioSpec | None = None
    try:
        spec = ScenarioSpec.model_validate(data)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, raw, display, [d.loc for d in DERIVED]))
    if declared != path.stem:
        problems.append(Problem(display, raw.at("scenario")[1], "scenario",
                                f"must match the file name '{path.stem}'", declared))
    problems.extend(procedure_problems)
    if procedure is not None:
        problems.extend(filled)
        problems.extend(check_against_procedure(procedure, raw, data, display))
    if problems or spec is None or procedure is None:
        problems.sort(key=lambda p: (p.file != display, p.line or 0))
        raise InputError(problems)
    return Scenario(spec, procedure, path, sha, tuple(files), dict(overrides or {}))


def _procedure_of(raw: LMap, path: Path, declared: Any, source: tuple[str, str]
                  ) -> tuple[Procedure | None, list[Problem]]:
    """The scenario's procedure, with its ``procedure_overrides`` applied, or its problems.

    None without problems when the scenario names no procedure (the shape check says so).
    """
    base = raw.get("procedure")
    procedure_overrides = raw.get("procedure_overrides")
    if not isinstance(base, str):
        return None, []
    try:
        if isinstance(procedure_overrides, LMap) and procedure_overrides:
            return load_procedure_with_overrides(
                base, procedure_overrides, f"{base}+{declared}", path, source), []
        return load_procedure(resolve_procedure_path(base, path)), []
    except InputError as exc:
        return None, list(exc.problems)


def _plain(value: Any) -> Any:
    """LMap/LList to plain dicts and lists (pydantic validates plain data)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
