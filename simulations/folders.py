"""Output folders are claimed before anything is written: nothing in them is ever lost.

Every command that writes a results folder (``run``, ``validate``, ``compare``, ``sweep``,
``fit``) first claims it with :func:`claim_folder`:

* a folder that does not exist, or is empty, is used;
* a folder holding the same experiment (same kind, scenario content, seed, horizon, ...)
  is used again: the run resumes, reusing every finished replication;
* anything else is refused with the reason (the differences named), unless ``force``,
  which moves the old contents aside into ``FOLDER/.replaced-YYYYmmdd-HHMMSS/`` (never
  deleting anything) — except for the filesystem root, the home folder and the current
  folder or any folder holding it, whose contents are never moved.

A folder is recognised as cpsim's by the ``cpsim_results`` entry of its ``metadata.json``
(with ``kind`` and ``experiment``), or, for folders written before that marker, by what
they hold: a run's metadata, ``comparison.json``, ``sweep.json`` or ``fit.json``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from model.atomic import write_text_atomic
from model.errors import InputError, Problem
from simulations.record import (
    EXPERIMENT_LABELS,
    KIND_NAMES,
    RESULTS_FORMAT,
    RESULTS_MARKER,
    experiment_differences,
    recorded_experiment,
)
from simulations.results import RunSettings, read_json_object
from simulations.runner import experiment_of, versions
from simulations.scenario import Scenario

Kind = Literal["run", "compare", "sweep", "fit"]
"""What a results folder holds."""

ASIDE_PREFIX = ".replaced-"
"""Old contents moved aside by ``--force`` go into ``FOLDER/.replaced-YYYYmmdd-HHMMSS``."""

_LABELS = {
    **EXPERIMENT_LABELS,
    "vary": "grid (--vary)",
    "replications": "replications",
    "free": "free parameters (--free)",
    "rows": "fitted rows (--rows)",
    "table": "published table (hash)",
    "scale": "scale (--scale)",
    "year_end": "year end (--year-end)",
    "max_evaluations": "most evaluations (--max-evaluations)",
}
_NESTED = {"a": "A: ", "b": "B: ", "base": ""}
"""Entries of an experiment that are themselves a run's experiment (and how each is named)."""


@dataclass(frozen=True)
class Found:
    """A cpsim folder: what it holds and the experiment it records (None: not recorded)."""

    kind: Kind
    identity: dict[str, Any] | None


def run_identity(scenario: Scenario, settings: RunSettings) -> dict[str, Any]:
    """A run's experiment (:func:`simulations.runner.experiment_of`) and scenario name."""
    return {"name": scenario.name, **experiment_of(scenario, settings)}


def _recorded_run(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    experiment = recorded_experiment(metadata)
    if experiment is None:
        return None
    name = metadata.get("scenario")
    return {"name": name, **experiment} if isinstance(name, str) else experiment


def _run_in(folder: Path) -> dict[str, Any] | None:
    """The experiment of the run folder ``folder``, if it is one of ours."""
    meta = read_json_object(folder / "metadata.json")
    return _recorded_run(meta) if meta is not None else None


def found_in(out: Path) -> Found | None:
    """What cpsim folder ``out`` is; None when it is not one of cpsim's folders."""
    meta = read_json_object(out / "metadata.json")
    if meta is not None and RESULTS_MARKER in meta:
        kind = meta.get("kind", "run")
        if kind not in KIND_NAMES:
            return None
        if kind == "run":
            return Found("run", _recorded_run(meta))
        identity = meta.get("experiment")
        return Found(kind, identity if isinstance(identity, dict) else None)
    if meta is not None:  # a run written before the marker, or not ours at all
        run = _recorded_run(meta)
        return Found("run", run) if run is not None else None
    if (out / "metadata.json").exists():
        return None  # metadata that is not a readable JSON object: not ours to claim
    sides = {side: run for side in ("a", "b") if (run := _run_in(out / side)) is not None}
    if (out / "comparison.json").is_file() or sides:
        return Found("compare", sides)
    points = sorted(p for p in (out / "points").glob("*") if _run_in(p) is not None)
    if (out / "sweep.json").is_file() or points:
        return Found("sweep", _legacy_sweep(out, points))
    if (out / "fit.json").is_file() or (out / "evaluations").is_dir():
        return Found("fit", None)
    return None


def _legacy_sweep(out: Path, points: list[Path]) -> dict[str, Any]:
    """What a sweep written before the marker records: its grid and shared run settings."""
    identity: dict[str, Any] = {}
    meta = read_json_object(out / "sweep.json")
    if meta is not None and isinstance(meta.get("varies"), list):
        identity["vary"] = meta["varies"]
    if points and (run := _run_in(points[0])) is not None:
        identity["base"] = {k: v for k, v in run.items()
                            if k not in ("name", "scenario", "procedure")}
    return identity


def differences(found: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """How the experiment in a folder differs from the one about to be written there.

    Only what both record is compared (a folder written by an older cpsim records less).

    >>> differences({"a": {"seed": 1}, "b": {"seed": 1}}, {"a": {"seed": 2}, "b": {"seed": 1}})
    ['A: seed 1 in the folder, 2 now']
    """
    flat_found = {k: v for k, v in found.items() if k not in _NESTED}
    flat_expected = {k: v for k, v in expected.items() if k not in _NESTED}
    out = experiment_differences(flat_found, _plain(flat_expected), _LABELS)
    for key, prefix in _NESTED.items():
        inner_found, inner_expected = found.get(key), expected.get(key)
        if isinstance(inner_found, Mapping) and isinstance(inner_expected, Mapping):
            out += experiment_differences(inner_found, _plain(inner_expected), _LABELS,
                                          prefix)
    return out


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    """As it reads back from JSON (tuples become lists), to compare with what was stored."""
    plain: dict[str, Any] = json.loads(json.dumps(value, default=str))
    return plain


def _protected(out: Path) -> str | None:
    """Why the contents of ``out`` must never be moved aside, or None."""
    where = out.resolve()
    here = Path.cwd().resolve()
    if where == Path(where.anchor):
        return "the root of the filesystem"
    try:
        home: Path | None = Path.home().resolve()
    except (RuntimeError, KeyError):  # no home folder known
        home = None
    if where == home:
        return "your home folder"
    if where == here:
        return "the current folder"
    if where in here.parents:
        return "a folder that holds the current folder"
    return None


def claim_folder(out: Path, kind: Kind, identity: Mapping[str, Any],
                 force: bool = False) -> Path | None:
    """Make sure writing ``kind`` results of ``identity`` into ``out`` loses nothing.

    Args:
        out: The folder a command is about to write.
        kind: What the command writes there.
        identity: The experiment it writes (:func:`run_identity`, or the command's own).
        force: Move old contents that are in the way aside instead of refusing.

    Returns:
        Where old contents were moved to (only with ``force``), else None.

    Raises:
        InputError: ``out`` is in the way and ``force`` is off, or it is a folder whose
            contents are never moved; nothing is written or moved.
    """
    if not out.exists():
        return None
    if not out.is_dir():
        raise InputError([Problem(str(out), None, "", "is a file, not a folder; choose "
                                  "another --out")])
    entries = sorted(p for p in out.iterdir() if not p.name.startswith(ASIDE_PREFIX))
    if not entries:
        return None
    found = found_in(out)
    if found is None:
        why = "is not empty and is not a results folder of cpsim"
    elif found.kind != kind:
        why = f"holds {KIND_NAMES[found.kind]}, not {KIND_NAMES[kind]}"
    elif found.identity is None:
        why = (f"holds {KIND_NAMES[kind]} written by an older cpsim that did not record its "
               "settings, so it may be a different experiment")
    else:
        changed = differences(found.identity, identity)
        if not changed:
            return None
        why = "holds the results of a different experiment: " + "; ".join(changed)
    if not force:
        raise InputError([Problem(str(out), None, "", f"{why}. Use --force to move its "
                                  f"contents aside (into {ASIDE_PREFIX}DATE inside it; "
                                  "nothing is deleted), or choose another --out")])
    protected = _protected(out)
    if protected is not None:
        raise InputError([Problem(str(out), None, "", f"{why}; it is {protected}, whose "
                                  "contents are never moved aside, even with --force: "
                                  "choose another --out")])
    return move_aside(out, entries)


def move_aside(out: Path, entries: list[Path]) -> Path:
    """Move ``entries`` of ``out`` into a new ``out/.replaced-YYYYmmdd-HHMMSS`` folder.

    Raises:
        InputError: an entry could not be moved; what was moved stays in the new folder
            and nothing is deleted.
    """
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = out / f"{ASIDE_PREFIX}{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = out / f"{ASIDE_PREFIX}{stamp}-{n}"
    target.mkdir()
    for entry in entries:
        try:
            shutil.move(str(entry), str(target / entry.name))
        except OSError as exc:
            raise InputError([Problem(str(entry), None, "", f"could not be moved aside "
                                      f"({exc.strerror or exc}); what was moved is in "
                                      f"{target}, and nothing was deleted")]) from None
    return target


def write_marker(out: Path, kind: Kind, identity: Mapping[str, Any]) -> None:
    """Mark ``out`` as cpsim's folder of ``kind`` recording ``identity``.

    For the folders of comparisons, sweeps and fits, which hold runs in subfolders; a run's
    own ``metadata.json`` carries its marker (:func:`simulations.runner.run_metadata`).
    """
    write_text_atomic(out / "metadata.json", json.dumps({
        RESULTS_MARKER: RESULTS_FORMAT, "kind": kind, "experiment": _plain(identity),
        "versions": versions()}, indent=2, sort_keys=True))
