"""Case data outside the simulator: the CIN-census-like flat table and how it maps to events.

Real case records (CIN census returns, Annex A lists) hold a few dated milestones per child,
not every step the procedure knows. The CIN-flat table is one row per child event: the
child, the date, the event type, and the child's key dates as recorded. The table's columns
and event types are the data format's (here and in :mod:`model.spec`); which procedure events
make each type is the procedure's own (its ``cin_flat`` block), so exported simulated logs
and real data use the same vocabulary on any procedure, and conformance replays a real event
as "some path of unrecorded steps, then this event".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from model.errors import InputError, Problem
from model.graph import initial_events
from model.spec import EventRef, Procedure
from model.types import StateId

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

KEY_DATES: Mapping[str, str] = {
    "referral": "referral_date",
    "s47_start": "s47_start_date",
    "icpc": "icpc_date",
    "cp_plan_start": "plan_start_date",
    "cp_plan_end": "plan_end_date",
}
"""Event types whose date is also carried on the child's later rows as a key date."""

ARRIVAL_ACTIVITY = "referral_received"
"""The activity CSV and XES logs give a case's arrival (the one step with no trigger)."""


@dataclass(frozen=True)
class CinMapping:
    """A procedure's CIN-flat mapping, ready to classify steps.

    Attributes:
        procedure: The procedure's id.
        events: Each mapped event type and the procedure events that make it (any one of
            them), in the table's order.
        activities: CSV/XES activity names (triggers, and :data:`ARRIVAL_ACTIVITY` for the
            types a case's arrival makes) and the event type each stands for.
    """

    procedure: str
    events: Mapping[str, tuple[EventRef, ...]]
    activities: Mapping[str, str]

    def types_of(self, events: Iterable[EventRef]) -> list[str]:
        """The event types a step's events make, in the table's order."""
        found = set(events)
        return [name for name, refs in self.events.items() if any(r in found for r in refs)]

    def makes(self, events: Iterable[EventRef], event_type: str) -> bool:
        """Whether a step's events make ``event_type``."""
        refs = self.events.get(event_type, ())
        return any(e in refs for e in events)

    def entered(self, event_type: str) -> tuple[StateId, ...]:
        """The states whose entry makes ``event_type`` (e.g. where a closed case rests)."""
        return tuple(r.name for r in self.events.get(event_type, ()) if r.kind == "enter")

    def activity_type(self, activity: str) -> str:
        """A CSV/XES activity as a CIN event type, where one corresponds (else unchanged)."""
        return self.activities.get(activity, activity)


def cin_mapping(procedure: Procedure) -> CinMapping:
    """The procedure's CIN-flat mapping (its ``cin_flat`` block, inherited via ``extends``).

    Raises:
        InputError: the procedure declares no mapping, naming it and its file.
    """
    if procedure.cin_flat is None:
        file = procedure.files[-1][0] if procedure.files else procedure.id
        raise InputError([Problem(
            file, None, "cin_flat",
            f"procedure {procedure.id} declares no CIN-flat mapping, so case data cannot be "
            "held against it: add a `cin_flat:` block (see the README's procedure file "
            "format) or extend a procedure that has one")])
    events: dict[str, tuple[EventRef, ...]] = {c.type: c.events for c in procedure.cin_flat}
    mapping = CinMapping(procedure.id, events, {})
    arrival = mapping.types_of(initial_events(procedure))
    activities = {ARRIVAL_ACTIVITY: arrival[0]} if arrival else {}
    activities.update({a: c.type for c in procedure.cin_flat for a in c.activities})
    return CinMapping(procedure.id, events, activities)


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
