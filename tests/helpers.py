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


LONG_RUN_TO_SESSION = """\
  FAIL can_end: dead end: in icpc.session nothing can happen (the long way in)
    counterexample:
      1. referral --decide_strategy_discussion [WT-17a]--> strategy_discussion.convening
      2. strategy_discussion.convening --strategy_discussion_held [WM-1a]--> \
strategy_discussion.held
      3. strategy_discussion.held --start_section_47 []--> section_47.enquiry
      4. section_47.enquiry --book_icpc [WM-2a]--> section_47.icpc_booked
      5. section_47.icpc_booked --proceed_to_icpc [WM-3]--> icpc.preparation.inviting
      6. icpc.preparation.inviting --invitations_sent [WM-3]--> icpc.preparation.awaiting_reports
      7. icpc.preparation.awaiting_reports --reports_received [WM-10]--> icpc.preparation.ready
      8. icpc.preparation.ready --icpc_opens [WM-8]--> icpc.session
      stuck: nothing leads on from icpc.session
"""
"""A saved `cpsim check` counterexample (one FAIL with its run) for `walk --replay`."""
