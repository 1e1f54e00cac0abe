"""Load procedure files: find them, read them, resolve ``extends`` and ``include``, build.

This module finds a procedure (a shipped name or a path), reads it and every file it
``extends``, merges them, and hands the result to :class:`model.load_build.ProcedureBuilder`,
which reads and validates each block (:mod:`model.load_fields`, :mod:`model.load_states`) and
constructs the frozen :class:`~model.spec.Procedure`.

Every problem in a file is collected and reported together, each naming the file, line,
field and offending value, with "did you mean" for near-miss names. Nothing in a file is
evaluated as code: guards are names looked up in :mod:`model.guards`.

Every element cites ``rules``, gives a ``basis``, or both; a cited rule must come from one of
the file's ``sources`` (when it declares them) and, once the whole procedure is built, must be
enforced by its element (:func:`model.trace.unenforced`, the table of ``docs/citations.md``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from model.errors import InputError, Problem, did_you_mean
from model.load_build import ProcedureBuilder
from model.spec import Procedure
from model.yamlsrc import LMap, read_yaml_mapping

BUILTIN_DIR = Path(__file__).resolve().parent / "procedures"
"""Where the shipped procedures live."""


def available_procedures() -> tuple[str, ...]:
    """Names of the shipped procedures, sorted."""
    return tuple(sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def resolve_procedure_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """Find a procedure file from a shipped name or a path.

    A bare name (no slash, no ``.yaml``) is looked up among the shipped procedures, then
    beside ``relative_to`` (the file that mentions it, for ``extends`` and ``include``).

    Raises:
        InputError: when no such procedure exists, with the closest shipped name.
    """
    text = str(name_or_path)
    candidate = Path(text)
    looks_like_path = "/" in text or text.endswith((".yaml", ".yml"))
    if looks_like_path:
        if relative_to is not None and not candidate.is_absolute():
            beside = relative_to.parent / candidate
            if beside.is_file():
                return beside
        if candidate.is_file():
            return candidate
    else:
        builtin = BUILTIN_DIR / f"{text}.yaml"
        if builtin.is_file():
            return builtin
        if relative_to is not None:
            beside = relative_to.parent / f"{text}.yaml"
            if beside.is_file():
                return beside
    raise InputError(
        [
            Problem(
                str(name_or_path),
                None,
                "",
                "no such procedure (a shipped name or a path to a .yaml file)",
                text,
                did_you_mean(text, available_procedures()),
            )
        ]
    )


ATOMIC_KEYS = frozenset({"within", "at_least", "from", "to", "of", "requires", "then"})
"""Mapping-valued fields that are single values (a duration, an event): replaced whole."""


def merge(base: LMap, over: LMap, atomic: frozenset[str] = ATOMIC_KEYS) -> LMap:
    """Deep-merge ``over`` onto ``base``: mappings merge key by key, anything else replaces.

    A mapping ``{remove: true}`` in ``over`` deletes that key from ``base``. Durations and
    events (``within``, ``from``, ...) are values and replace rather than merge. Each key
    keeps the file and line it came from. ``atomic`` names the keys whose mapping values
    replace rather than merge.
    """
    out = LMap(over.file, over.line)
    for key, value in base.items():
        out[key] = value
        out.where[key] = base.at(key)
    for key, value in over.items():
        if isinstance(value, LMap) and value.get("remove") is True and len(value) == 1:
            out.pop(key, None)
            out.where.pop(key, None)
            continue
        if isinstance(value, LMap) and isinstance(out.get(key), LMap) and key not in atomic:
            out[key] = merge(out[key], value, atomic)
        else:
            out[key] = value
        out.where[key] = over.at(key)
    return out


def _read_chain(path: Path, stack: tuple[Path, ...]) -> tuple[LMap, tuple[str, ...],
                                                            list[tuple[str, str]]]:
    """Read a file and everything it extends, merged; return (raw, chain, files)."""
    display = _display(path)
    raw, sha = read_yaml_mapping(path, display, "procedure")
    files = [(display, sha)]
    base_name = raw.get("extends")
    if base_name is None:
        return raw, (), files
    if not isinstance(base_name, str):
        raise InputError([Problem(display, raw.at("extends")[1], "extends",
                                  "must name one procedure", base_name)])
    try:
        base_path = resolve_procedure_path(base_name, path)
    except InputError as exc:
        p = exc.problems[0]
        raise InputError([Problem(display, raw.at("extends")[1], "extends", p.message,
                                  base_name, p.hint)]) from None
    if base_path.resolve() in stack or base_path.resolve() == path.resolve():
        raise InputError([Problem(display, raw.at("extends")[1], "extends",
                                  "procedures extend each other in a cycle", base_name)])
    base_raw, base_chain, base_files = _read_chain(base_path, (*stack, path.resolve()))
    merged = merge(base_raw, raw.without("extends"))
    return merged, (base_path.stem, *base_chain), base_files + files


def _load(path: Path, stack: tuple[Path, ...]) -> Procedure:
    raw, chain, files = _read_chain(path, stack)
    return ProcedureBuilder(path.stem, raw, chain, (*stack, path.resolve()), files,
                            _load_included).build()


def _load_included(target: str, beside: Path, stack: tuple[Path, ...]) -> Procedure:
    """The procedure a state includes, looked for beside the file that includes it."""
    path = resolve_procedure_path(target, beside)
    if path.resolve() in stack:
        raise InputError([Problem(target, None, "", "procedures include each other in a cycle",
                                  target)])
    return _load(path, stack)


def load_procedure(name_or_path: str | Path) -> Procedure:
    """Load, validate and freeze a procedure by shipped name or file path.

    Raises:
        InputError: listing every problem found, each with file, line, field and value.
    """
    return _load(resolve_procedure_path(name_or_path), ())


def load_procedure_with_overrides(
    base: str | Path, overrides: LMap, name: str, relative_to: Path, provenance: tuple[str, str]
) -> Procedure:
    """Load ``base`` with ``overrides`` merged over it, exactly as a variant file would be.

    Used by scenarios ("this procedure, but the ICPC within 10 working days"): the overrides
    are a mapping in the variant-file format, validated as a whole with the base.

    Args:
        base: The procedure the overrides apply to (shipped name or path).
        overrides: The override mapping, with the file and lines it was written at.
        name: The derived procedure's name.
        relative_to: The file that names ``base`` (paths are resolved beside it).
        provenance: ``(file, sha256)`` of the file holding the overrides.

    Raises:
        InputError: listing every problem in the merged procedure.
    """
    base_path = resolve_procedure_path(base, relative_to)
    base_raw, chain, files = _read_chain(base_path, ())
    over = overrides.without()
    over["procedure"] = name
    over.where["procedure"] = (overrides.file, overrides.line)
    merged = merge(base_raw, over)
    return ProcedureBuilder(name, merged, (base_path.stem, *chain), (base_path.resolve(),),
                            [*files, provenance], _load_included).build()


def content_hash(procedure: Procedure) -> str:
    """A SHA-256 over every file that went into the procedure, in order."""
    digest = hashlib.sha256()
    for name, sha in procedure.files:
        digest.update(f"{Path(name).name}:{sha}\n".encode())
    return digest.hexdigest()
