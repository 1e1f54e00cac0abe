"""The optional mypyc build of the hot modules, used only while it matches the source.

``make native`` (``tools/build_native.py``) compiles the modules in :data:`MODULES` with
mypyc into ``build/native/``, beside the packages, and writes ``build/native/stamp.json``:
the SHA-256 of each compiled source and the interpreter's cache tag. Each package's
``__init__`` calls :func:`attach`, which puts the compiled package first on the package's
``__path__`` (so ``simulations.engine`` loads from the extension module, and every other
module from the source) only when:

- ``CPSIM_NATIVE`` is not ``0`` (``0`` asks for pure Python, whatever is built);
- the stamp exists, was made by this interpreter, and every compiled source still has the
  hash it was compiled from.

All or nothing: the compiled modules call each other directly in C, so one edited source
makes the whole build stale and both packages run pure Python (with one line on stderr
saying so, since a forgotten rebuild would otherwise quietly cost the speed). With
``CPSIM_NATIVE=1`` a missing or stale build is an error instead (exit status 2), for the
bench and the test that compares the two. Results are identical either way
(``tests/test_native.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

MODULES = (
    "model/calendar.py",
    "model/graph.py",
    "model/guards.py",
    "model/monitor.py",
    "model/records.py",
    "simulations/behaviour.py",
    "simulations/distributions.py",
    "simulations/drive.py",
    "simulations/engine.py",
    "simulations/eventlog.py",
    "simulations/observers.py",
    "simulations/staff.py",
    "simulations/table.py",
)
"""The compiled modules, as paths from the project root: the engine's hot path."""

GROUP = "cpsim_native"
"""mypyc's group name: the shared library is ``build/native/cpsim_native__mypyc*.so``."""

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "native"
STAMP = BUILD / "stamp.json"


def source_hashes(root: Path = ROOT) -> dict[str, str]:
    """SHA-256 of each compiled module's source under ``root``."""
    return {m: hashlib.sha256((root / m).read_bytes()).hexdigest() for m in MODULES}


def stamp() -> dict[str, object]:
    """What ``build/native/stamp.json`` records for the current sources and interpreter."""
    return {"cache_tag": sys.implementation.cache_tag, "sources": source_hashes()}


def _why_not() -> str:
    """Empty when the build can be used; otherwise why not, in a few words."""
    if not STAMP.exists():
        return "not built"
    try:
        recorded = json.loads(STAMP.read_text(encoding="utf-8"))
        current = stamp()
    except (OSError, ValueError) as exc:
        return f"unreadable ({exc})"
    if not isinstance(recorded, dict) or recorded.get("cache_tag") != current["cache_tag"]:
        return "built for another Python"
    sources = recorded.get("sources")
    if not isinstance(sources, dict):
        return "stamp has no sources"
    changed = [m for m, h in current["sources"].items()  # type: ignore[attr-defined]
               if sources.get(m) != h]
    if changed:
        return f"stale: {', '.join(changed)} changed since it was built"
    return ""


_verdict: str | None = None


def verdict() -> str:
    """Why the build is not used ('' when it is), worked out once per process."""
    global _verdict
    if _verdict is None:
        wanted = os.environ.get("CPSIM_NATIVE", "")
        if wanted == "0":
            _verdict = "CPSIM_NATIVE=0"
        else:
            _verdict = _why_not()
            if _verdict and wanted == "1":
                # asked for in the environment, so a broken environment: a message and
                # exit status 2, not an import traceback from whatever imported us first
                print(f"cpsim: error: CPSIM_NATIVE=1 but the compiled build in {BUILD} is "
                      f"{_verdict}; run `make native` (or unset CPSIM_NATIVE)",
                      file=sys.stderr)
                raise SystemExit(2)
            if _verdict.startswith("stale"):
                print(f"cpsim: running pure Python: the compiled build is {_verdict} "
                      "(`make native` rebuilds it, `make pure` removes it)", file=sys.stderr)
    return _verdict


def attach(package: str, path: list[str]) -> list[str]:
    """The package's ``__path__``, with its compiled modules first when the build is usable."""
    if verdict():
        return path
    compiled = str(BUILD / package)
    if str(BUILD) not in sys.path:
        sys.path.append(str(BUILD))  # the group's shared library is a top-level module
    return [compiled, *path] if compiled not in path else path


def in_use() -> bool:
    """True when this process runs the compiled modules."""
    mod = sys.modules.get("simulations.engine")
    return mod is not None and not (getattr(mod, "__file__", "") or "").endswith(".py")
