"""Compile the engine's hot modules with mypyc into ``build/native/`` (``make native``).

The list of modules is :data:`model.native.MODULES`; the packages pick the build up on
import while it matches the source (:mod:`model.native`). ``--clean`` removes it, so the
project runs pure Python again (``make pure``). Needs a C compiler and the Python headers;
mypyc comes with mypy (the dev extra).

Usage: python tools/build_native.py [--clean]
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model import native  # noqa: E402 (after the path is set)


def clean() -> None:
    """Remove the compiled build and mypyc's generated C."""
    shutil.rmtree(native.BUILD, ignore_errors=True)
    shutil.rmtree(ROOT / "build" / "native-c", ignore_errors=True)
    shutil.rmtree(ROOT / "build" / "native-tmp", ignore_errors=True)


def build() -> None:
    """Compile :data:`model.native.MODULES` and write the stamp last (it marks success)."""
    from mypyc.build import mypycify
    from setuptools import Distribution

    clean()
    os.chdir(ROOT)
    before = native.stamp()
    extensions = mypycify(list(native.MODULES), opt_level="3", group_name=native.GROUP,
                          target_dir=str(ROOT / "build" / "native-c"))
    dist = Distribution({"name": "cpsim-native", "ext_modules": extensions})
    command = dist.get_command_obj("build_ext")
    command.build_lib = str(native.BUILD)  # type: ignore[attr-defined]
    command.build_temp = str(ROOT / "build" / "native-tmp")  # type: ignore[attr-defined]
    dist.run_command("build_ext")
    if native.stamp() != before:
        raise SystemExit("error: a compiled source changed during the build; run it again")
    tmp = native.STAMP.with_suffix(".tmp")
    tmp.write_text(json.dumps(before, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(native.STAMP)
    print(f"compiled {len(native.MODULES)} modules into {native.BUILD.relative_to(ROOT)}")


def main(argv: list[str]) -> int:
    """Build, or with ``--clean`` remove, the compiled modules."""
    if argv == ["--clean"]:
        clean()
        print(f"removed {native.BUILD.relative_to(ROOT)}: pure Python from now on")
        return 0
    if argv:
        print("usage: build_native.py [--clean]", file=sys.stderr)
        return 2
    build()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
