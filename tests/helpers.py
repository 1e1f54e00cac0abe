"""Small builders shared by several test files (pytest puts tests/ on the import path)."""

from __future__ import annotations

from pathlib import Path

import yaml

from model.loader import BUILTIN_DIR


def without_plan_agreed(folder: Path) -> Path:
    """West Midlands without `plan_agreed`: a conference that opens can never end."""
    data = yaml.safe_load((BUILTIN_DIR / "west-midlands-2014.yaml").read_text())
    data["procedure"] = "wm-without-plan-agreed"
    del data["transitions"]["plan_agreed"]
    path = folder / "wm-without-plan-agreed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
