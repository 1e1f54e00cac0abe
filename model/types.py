"""Domain aliases and small value types shared by every part of the formal model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

StateId: TypeAlias = str
"""A dotted state path, e.g. ``icpc.session``; region states start with the region name."""

TriggerId: TypeAlias = str
"""The name of a trigger (an action a case may take), e.g. ``strategy_discussion_held``."""

RuleId: TypeAlias = str
"""A stable rule id from the procedure digest, e.g. ``WM-2b``."""

GuardId: TypeAlias = str
"""The name of a guard function registered in :mod:`model.guards`."""

SimHours: TypeAlias = float
"""Simulation time in hours since midnight at the start of the calendar start date."""

DurationUnit = Literal["hours", "days", "working_days", "months"]
DURATION_UNITS: tuple[DurationUnit, ...] = ("hours", "days", "working_days", "months")


@dataclass(frozen=True, slots=True)
class Duration:
    """A timescale with its unit, e.g. 15 working days.

    Attributes:
        unit: One of ``hours``, ``days`` (calendar days), ``working_days`` (England and
            Wales working days) or ``months`` (calendar months).
        value: A positive whole number of units.
    """

    unit: DurationUnit
    value: int

    def __str__(self) -> str:
        """Return a plain-English form such as ``15 working days``."""
        label = self.unit.replace("_", " ")
        if self.value == 1:
            label = label[:-1]
        return f"{self.value} {label}"
