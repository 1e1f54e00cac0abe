"""Case data outside the simulator: the CIN-census-like flat table and how it maps to events.

Real case records (CIN census returns, Annex A lists) hold a few dated milestones per child,
not every step the procedure knows. The CIN-flat table is one row per child event: the
child, the date, the event type, and the child's key dates as recorded. Each event type is
defined by the procedure events it stands for, so exported simulated logs and real data
use the same vocabulary, and conformance replays a real event as "some path of unrecorded
steps, then this event".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from model.spec import EventRef

CIN_COLUMNS: tuple[str, ...] = (
    "child_id",
    "event_date",
    "event_type",
    "referral_date",
    "s47_start_date",
    "icpc_date",
    "plan_start_date",
    "plan_end_date",
    "category_of_abuse",
    "previous_plans",
)
"""Columns of the CIN-flat table, in order."""

CIN_EVENTS: Mapping[str, tuple[EventRef, ...]] = {
    "referral": (EventRef("enter", "referral"),),
    "early_help": (EventRef("enter", "early_help"),),
    "assessment_start": (EventRef("enter", "assessment"),),
    "assessment_end": (EventRef("exit", "assessment"),),
    "strategy_discussion": (EventRef("trigger", "strategy_discussion_held"),),
    "s47_start": (EventRef("enter", "section_47"),),
    "s47_no_conference": (EventRef("trigger", "enquiry_no_conference"),),
    "icpc": (EventRef("enter", "icpc.session"),),
    "cp_plan_start": (EventRef("enter", "cp_plan"),),
    "review": (EventRef("enter", "cp_plan.review_conference.session"),),
    "cp_plan_end": (EventRef("exit", "cp_plan"),),
    "cin_plan_start": (EventRef("enter", "child_in_need"),),
    "closure": (EventRef("enter", "closed"),),
}
"""Each CIN event type and the procedure events that make it (any one of them)."""

KEY_DATES: Mapping[str, str] = {
    "referral": "referral_date",
    "s47_start": "s47_start_date",
    "icpc": "icpc_date",
    "cp_plan_start": "plan_start_date",
    "cp_plan_end": "plan_end_date",
}
"""Event types whose date is also carried on the child's later rows as a key date."""


def event_types_of(events: tuple[EventRef, ...]) -> list[str]:
    """The CIN event types a step's events make, in the table's declared order."""
    found = set(events)
    return [name for name, refs in CIN_EVENTS.items() if any(r in found for r in refs)]


@dataclass(frozen=True)
class Pseudonymiser:
    """Keyed hashing of identifiers (HMAC-SHA256): stable for one key, not reversible.

    Every output of ``export`` and ``conform`` names children only by pseudonym.
    """

    key: bytes

    def __call__(self, identifier: str) -> str:
        """The pseudonym of ``identifier`` (``P`` and 16 hex digits)."""
        digest = hmac.new(self.key, identifier.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"P{digest[:16]}"
