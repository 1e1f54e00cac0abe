"""What ``cpsim check`` found: findings, counterexample runs, the report, as text and as JSON.

The checks (:mod:`model.check`, :mod:`model.timescales`, :mod:`model.trace`) produce these
records; the command line prints them; ``walk --replay`` reads them back. Keeping them here,
below every check, lets each check import them without importing the others.

A report has two printed forms, both produced and read here:

* the human text of :func:`format_report` (a verdict line, then each finding with its
  counterexample run), which :func:`read_counterexamples` still reads back for old files;
* the JSON document of :func:`reports_to_json` (``cpsim check --json``), which
  :func:`reports_from_json` turns back into the same :class:`CheckReport` objects.

The JSON document (format ``cpsim-check``, version 1; keys are stable, new keys may be
added and readers ignore keys they do not know)::

    {"format": "cpsim-check", "version": 1, "ok": false,
     "reports": [{"procedure": "west-midlands-2014", "ok": false,
                  "passed": ["reachability", ...],
                  "stats": {"states": 31, ...},
                  "findings": [{"check": "can_end", "severity": "error",
                                "message": "dead end: ...", "rules": ["WM-25"],
                                "path": [{"before": ["referral"],
                                          "trigger": "decide_strategy_discussion",
                                          "transition_id": "decide_strategy_discussion",
                                          "after": ["strategy_discussion.convening"],
                                          "rules": ["CAL-T1"]}, ...],
                                "stuck_at": ["icpc.session"]}]}]}

A configuration is a list of leaf state ids (one per region); ``stuck_at`` is null unless
the case is stuck; ``ok`` fields are derived (no finding is an error) and not read back.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from model.errors import InputError, Problem
from model.graph import Config, describe
from model.spec import Transition
from model.types import RuleId, TriggerId

Severity = Literal["error", "warning"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning")

JSON_FORMAT = "cpsim-check"
"""The ``format`` key of the JSON document, so a reader knows what it holds."""

JSON_VERSION = 1
"""The JSON document's version: raised only when a key changes meaning or goes."""


# -- the records --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PathStep:
    """One move of a counterexample: where the case was, what fired, where it went."""

    before: Config
    trigger: str
    transition_id: str
    after: Config
    rules: tuple[RuleId, ...]

    def __str__(self) -> str:
        """Return ``before --trigger [rules]--> after``."""
        return (
            f"{describe(self.before)} --{self.trigger} [{', '.join(self.rules)}]--> "
            f"{describe(self.after)}"
        )

    def to_json(self) -> dict[str, Any]:
        """This step as JSON-ready data (see the module docstring for the keys)."""
        return {"before": list(self.before), "trigger": self.trigger,
                "transition_id": self.transition_id, "after": list(self.after),
                "rules": list(self.rules)}

    @classmethod
    def from_json(cls, data: object, where: str = "step") -> PathStep:
        """The step :meth:`to_json` gave.

        Raises:
            JsonShapeError: the data is not shaped like a step.
        """
        obj = _object(data, where)
        return cls(_config(obj, "before", where), _text(obj, "trigger", where),
                   _text(obj, "transition_id", where), _config(obj, "after", where),
                   _texts(obj, "rules", where))


def path_of(moves: Iterable[tuple[Config, Config, Transition]]) -> tuple[PathStep, ...]:
    """The counterexample steps of a run given as moves ``(before, after, transition)``."""
    return tuple(PathStep(u, t.trigger, t.id, v, t.rules) for u, v, t in moves)


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of a check.

    Attributes:
        check: The check's name (e.g. ``reachability`` or ``property:conference_ends_with_plan``).
        severity: ``error`` fails the check; ``warning`` is shown but does not.
        message: What is wrong, in plain words.
        rules: Rule ids concerned.
        path: The counterexample: the moves from a new case to the violation.
        stuck_at: When the violation is that nothing can happen, where the case is stuck.
    """

    check: str
    severity: Severity
    message: str
    rules: tuple[RuleId, ...] = ()
    path: tuple[PathStep, ...] = ()
    stuck_at: Config | None = None

    @property
    def headline(self) -> str:
        """The finding's line in the text form: ``FAIL check: message [rules]``."""
        mark = "FAIL" if self.severity == "error" else "warn"
        rules = f" [{', '.join(self.rules)}]" if self.rules else ""
        return f"{mark} {self.check}: {self.message}{rules}"

    def to_json(self) -> dict[str, Any]:
        """This finding as JSON-ready data (see the module docstring for the keys)."""
        return {"check": self.check, "severity": self.severity, "message": self.message,
                "rules": list(self.rules), "path": [s.to_json() for s in self.path],
                "stuck_at": None if self.stuck_at is None else list(self.stuck_at)}

    @classmethod
    def from_json(cls, data: object, where: str = "finding") -> Finding:
        """The finding :meth:`to_json` gave.

        Raises:
            JsonShapeError: the data is not shaped like a finding.
        """
        obj = _object(data, where)
        severity = _text(obj, "severity", where)
        if severity not in SEVERITIES:
            raise JsonShapeError(f"{where}.severity",
                                 f"is {severity!r}, not one of {', '.join(SEVERITIES)}")
        steps = _list(obj, "path", where)
        stuck = None if obj.get("stuck_at") is None else _config(obj, "stuck_at", where)
        return cls(_text(obj, "check", where), "error" if severity == "error" else "warning",
                   _text(obj, "message", where), _texts(obj, "rules", where),
                   tuple(PathStep.from_json(s, f"{where}.path[{i}]")
                         for i, s in enumerate(steps)),
                   stuck)


@dataclass(frozen=True)
class CheckReport:
    """Everything ``cpsim check`` found for one procedure."""

    procedure: str
    findings: tuple[Finding, ...]
    passed: tuple[str, ...]
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no finding is an error."""
        return not any(f.severity == "error" for f in self.findings)

    def with_check(self, name: str, findings: Iterable[Finding]) -> CheckReport:
        """This report with one more check's findings (``name`` passes when none is an error).

        For checks that live outside :mod:`model.check` (e.g.
        :func:`model.trace.check_encoding`), so that it need not import them.
        """
        extra = tuple(findings)
        passed = self.passed if any(f.severity == "error" for f in extra) else (
            *self.passed, name)
        return CheckReport(self.procedure, (*self.findings, *extra), passed, dict(self.stats))

    def to_json(self) -> dict[str, Any]:
        """This report as JSON-ready data (see the module docstring for the keys)."""
        return {"procedure": self.procedure, "ok": self.ok, "passed": list(self.passed),
                "stats": dict(self.stats), "findings": [f.to_json() for f in self.findings]}

    @classmethod
    def from_json(cls, data: object, where: str = "report") -> CheckReport:
        """The report :meth:`to_json` gave (``ok`` is derived again, not read).

        Raises:
            JsonShapeError: the data is not shaped like a report.
        """
        obj = _object(data, where)
        stats = obj.get("stats", {})
        if not isinstance(stats, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                for k, v in stats.items()):
            raise JsonShapeError(f"{where}.stats", "should map names to whole numbers")
        findings = _list(obj, "findings", where)
        return cls(_text(obj, "procedure", where),
                   tuple(Finding.from_json(f, f"{where}.findings[{i}]")
                         for i, f in enumerate(findings)),
                   _texts(obj, "passed", where), dict(stats))


# -- the text form ------------------------------------------------------------------------------
def format_report(report: CheckReport, verbose: bool = False) -> str:
    """The report as plain text: a verdict line, then each failure with its counterexample."""
    s = report.stats
    lines = [
        f"{report.procedure}: {'PASS' if report.ok else 'FAIL'}  "
        f"({s.get('states', 0)} states, {s.get('transitions', 0)} transitions, "
        f"{s.get('deadlines', 0)} deadlines, {s.get('properties', 0)} properties; "
        f"{s.get('configurations', 0)} configurations, {s.get('moves', 0)} moves explored)"
    ]
    if verbose or report.ok:
        lines.append("  passed: " + ", ".join(report.passed))
    for f in report.findings:
        lines.append(f"  {f.headline}")
        if f.path or f.stuck_at is not None:
            lines.append("    counterexample:")
            for i, step in enumerate(f.path, 1):
                lines.append(f"      {i}. {step}")
            if f.stuck_at is not None:
                lines.append(f"      stuck: nothing leads on from {describe(f.stuck_at)}")
    return "\n".join(lines)


# -- the JSON form ------------------------------------------------------------------------------
class JsonShapeError(ValueError):
    """JSON data that is not shaped like a check report; names the offending field."""

    def __init__(self, where: str, message: str) -> None:
        """Keep the field's path (e.g. ``reports[0].findings[2].severity``) and the message."""
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}")


def reports_to_json(reports: Iterable[CheckReport]) -> dict[str, Any]:
    """The JSON document ``cpsim check --json`` prints: one report per procedure checked.

    ``json.dumps`` of the result is the printed form; :func:`reports_from_json` reads it
    back. The shape is the same for one procedure or many (``--all``).
    """
    items = [r.to_json() for r in reports]
    return {"format": JSON_FORMAT, "version": JSON_VERSION,
            "ok": all(item["ok"] for item in items), "reports": items}


def reports_from_json(data: object) -> tuple[CheckReport, ...]:
    """The reports in a JSON document from :func:`reports_to_json` (already decoded).

    Also accepts one report's object (:meth:`CheckReport.to_json`) or a list of them.

    Raises:
        JsonShapeError: the data is not shaped like check reports, or is a later version.
    """
    if isinstance(data, list):
        return tuple(CheckReport.from_json(r, f"[{i}]") for i, r in enumerate(data))
    obj = _object(data, "document")
    if "reports" not in obj and "procedure" in obj:
        return (CheckReport.from_json(obj),)
    if obj.get("format") != JSON_FORMAT:
        raise JsonShapeError("format", f"should be {JSON_FORMAT!r} (the output of "
                                       "`cpsim check --json`)")
    version = obj.get("version")
    if version != JSON_VERSION:
        raise JsonShapeError("version", f"{version!r} is not a version this cpsim reads "
                                        f"(it reads version {JSON_VERSION})")
    return tuple(CheckReport.from_json(r, f"reports[{i}]")
                 for i, r in enumerate(_list(obj, "reports", "document")))


def _object(data: object, where: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise JsonShapeError(where, "should be an object")
    return data


def _list(obj: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise JsonShapeError(f"{where}.{key}", "should be a list")
    return value


def _text(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise JsonShapeError(f"{where}.{key}", "should be a string" if key in obj
                             else "is missing")
    return value


def _texts(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = _list(obj, key, where)
    if not all(isinstance(v, str) for v in value):
        raise JsonShapeError(f"{where}.{key}", "should be a list of strings")
    return tuple(value)


def _config(obj: Mapping[str, Any], key: str, where: str) -> Config:
    if key not in obj:
        raise JsonShapeError(f"{where}.{key}", "is missing")
    config = _texts(obj, key, where)
    if not config:
        raise JsonShapeError(f"{where}.{key}", "should name at least one state")
    return config


# -- reading counterexamples back ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CounterexampleStep:
    """One step of a counterexample read back from saved ``cpsim check`` output.

    Attributes:
        line: Its line in the text form; None when read from JSON.
        before: Where the case was.
        trigger: What fired.
        rules: The rule ids the move cites.
        after: Where the case went.
    """

    line: int | None
    before: Config
    trigger: TriggerId
    rules: tuple[RuleId, ...]
    after: Config


@dataclass(frozen=True)
class Counterexample:
    """A run ``cpsim check`` printed: the finding, its steps, and where it is stuck.

    Attributes:
        title: The finding's first line (``FAIL check: message``).
        line: The line of its ``counterexample:`` in the text form; None when read from JSON.
        steps: The moves from a new case, in order.
        stuck: Where nothing leads on, when the finding is that the case is stuck.
        also: The titles of other findings whose counterexample is the same run.
        procedure: The procedure checked, when the output names it.
    """

    title: str
    line: int | None
    steps: tuple[CounterexampleStep, ...]
    stuck: Config | None = None
    also: tuple[str, ...] = ()
    procedure: str | None = None


def counterexamples_of(reports: Iterable[CheckReport]) -> tuple[Counterexample, ...]:
    """The counterexample runs of these reports, one per distinct run, in report order.

    A finding with no run (neither steps nor a stuck configuration) has none. When several
    findings of one procedure show the same run, it is listed once, the other findings'
    titles in its ``also``.
    """
    found: list[Counterexample] = []
    for report in reports:
        for f in report.findings:
            if not f.path and f.stuck_at is None:
                continue
            steps = tuple(CounterexampleStep(None, s.before, s.trigger, s.rules, s.after)
                          for s in f.path)
            _add_run(found, Counterexample(f.headline.splitlines()[0], None, steps,
                                           f.stuck_at, (), report.procedure))
    return tuple(found)


def read_counterexamples(text: str, name: str) -> tuple[Counterexample, ...]:
    """The counterexample runs in saved ``cpsim check`` output, JSON or text.

    ``text`` is the whole file: the JSON document of ``cpsim check --json`` (recognised by
    its opening ``{`` or ``[``), or the human text ``cpsim check`` prints (older files, or
    any text holding its numbered ``counterexample:`` steps). Either way the result is the
    same: one :class:`Counterexample` per distinct run, in the order printed, with the
    findings that share a run in its ``also``. Only from the text form do the
    counterexamples and their steps carry line numbers (``line`` is None from JSON).

    Args:
        text: The file's contents.
        name: The file's name, for the problems reported.

    Raises:
        InputError: the file is neither form, holds no counterexample, or a run is broken
            (steps out of number, or a step that does not start where the last one ended);
            every problem names the file and, in the text form, the line.
    """
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return _read_json(text, name)
    lines = text.splitlines()
    if not any(_STEP.match(raw) or _STUCK.match(raw) for raw in lines):
        first = next((i for i, raw in enumerate(lines, 1) if raw.strip()), None)
        raise InputError([Problem(name, first, "", "not `cpsim check` output (JSON or text) "
                                                   "with a counterexample")])
    return _read_text(lines, name)


def _read_json(text: str, name: str) -> tuple[Counterexample, ...]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError([Problem(name, exc.lineno, "", f"not valid JSON: {exc.msg}")]) from exc
    try:
        reports = reports_from_json(data)
    except JsonShapeError as exc:
        raise InputError([Problem(name, None, exc.where, exc.message)]) from exc
    found = counterexamples_of(reports)
    problems = [Problem(name, None, "counterexample", f"{cx.title}: {message}")
                for cx in found for message in _broken_chain(cx.steps)]
    if problems:
        raise InputError(problems)
    if not found:
        raise InputError([Problem(name, None, "", "no counterexample in it (no finding "
                                                  "shows a run)")])
    return found


def _broken_chain(steps: Sequence[CounterexampleStep]) -> list[str]:
    return [f"step {i} starts in {describe(b.before)} but the step before it ended in "
            f"{describe(a.after)}"
            for i, (a, b) in enumerate(itertools.pairwise(steps), 2) if a.after != b.before]


def _add_run(found: list[Counterexample], cx: Counterexample) -> None:
    """Add ``cx``, or name its title in the ``also`` of an earlier one with the same run."""
    for i, existing in enumerate(found):
        if (existing.procedure == cx.procedure and existing.stuck == cx.stuck
                and _same_run(existing.steps, cx.steps)):
            found[i] = Counterexample(existing.title, existing.line, existing.steps,
                                      existing.stuck, (*existing.also, cx.title),
                                      existing.procedure)
            return
    found.append(cx)


def _same_run(a: Sequence[CounterexampleStep], b: Sequence[CounterexampleStep]) -> bool:
    return [(s.before, s.trigger, s.after) for s in a] == [(s.before, s.trigger, s.after)
                                                          for s in b]


# The text form, as format_report prints it (hand-edited files may drop the indentation).
_STEP = re.compile(r"^\s*(\d+)\.\s+(\S.*?)\s+--(\S+)\s+\[([^\]]*)\]-->\s+(\S.*?)\s*$")
_STUCK = re.compile(r"^\s*stuck:\s+nothing leads on from\s+(\S.*?)\s*$")
_VERDICT = re.compile(r"^(\S+): (?:PASS|FAIL)\s")
_HEADLINE = re.compile(r"^(?:FAIL|warn) \S")


def _text_config(text: str) -> Config:
    return tuple(part.strip() for part in text.split(" + "))


@dataclass
class _Group:
    title: str
    line: int
    procedure: str | None
    steps: list[CounterexampleStep] = field(default_factory=list)
    stuck: Config | None = None


def _read_text(lines: list[str], name: str) -> tuple[Counterexample, ...]:
    """Read the text form line by line.

    A run's title is its finding's ``FAIL``/``warn`` line (the first line of a message that
    spans several), or else the last line of text before it; its procedure is the last
    verdict line (``name: PASS`` or ``name: FAIL``) above it.
    """
    problems: list[Problem] = []
    groups: list[_Group] = []
    title = ""
    procedure: str | None = None
    current: _Group | None = None
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if stripped == "counterexample:":
            current = _Group(title, number, procedure)
            groups.append(current)
            continue
        step = _STEP.match(raw)
        stuck = _STUCK.match(raw)
        if (step or stuck) and (current is None or current.stuck is not None):
            current = _Group(title or "counterexample", number, procedure)
            groups.append(current)
        if step and current is not None:
            expected = len(current.steps) + 1
            if int(step.group(1)) != expected:
                problems.append(Problem(name, number, "counterexample",
                                        f"step {step.group(1)} where step {expected} was "
                                        "expected"))
            before, after = _text_config(step.group(2)), _text_config(step.group(5))
            if current.steps and current.steps[-1].after != before:
                problems.append(Problem(
                    name, number, "counterexample",
                    f"this step starts in {describe(before)} but the step before it ended "
                    f"in {describe(current.steps[-1].after)}"))
            rules = tuple(r.strip() for r in step.group(4).split(",") if r.strip())
            current.steps.append(CounterexampleStep(number, before, step.group(3), rules,
                                                    after))
        elif stuck and current is not None:
            current.stuck = _text_config(stuck.group(1))
        elif stripped:
            verdict = _VERDICT.match(raw)
            if verdict:
                procedure, title = verdict.group(1), ""
            elif (_HEADLINE.match(stripped) or not _HEADLINE.match(title)
                  or (current is not None and (current.steps or current.stuck))):
                # a message's continuation lines do not replace its FAIL line as the title
                title = stripped
            if current is not None and (current.steps or current.stuck):
                current = None
    if problems:
        raise InputError(problems)
    found: list[Counterexample] = []
    for g in groups:
        if g.steps or g.stuck is not None:
            _add_run(found, Counterexample(g.title, g.line, tuple(g.steps), g.stuck, (),
                                           g.procedure))
    if not found:
        raise InputError([Problem(name, None, "", "no counterexample steps found")])
    return tuple(found)
