"""Small builders shared by several test files (pytest puts tests/ on the import path)."""

from __future__ import annotations

from pathlib import Path

import yaml

from model.loader import BUILTIN_DIR


def without_plan_agreed(folder: Path) -> Path:
    """West Midlands without `plan_agreed`: a conference that opens can never end.

    West Midlands extends the national core, so `plan_agreed` is removed (`{remove: true}`)
    rather than just dropped from the file, and the conference session stops citing the
    rules only `plan_agreed` enforced there (the loader refuses a state citing a rule that
    no move in it enforces).
    """
    data = yaml.safe_load((BUILTIN_DIR / "west-midlands-2014.yaml").read_text())
    data["procedure"] = "wm-without-plan-agreed"
    removed = set(data["transitions"]["plan_agreed"].get("rules", []))
    data["transitions"]["plan_agreed"] = {"remove": True}
    session = data["states"]["icpc"]["states"]["session"]
    session["rules"] = [r for r in session.get("rules", []) if r not in removed]
    path = folder / "wm-without-plan-agreed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
