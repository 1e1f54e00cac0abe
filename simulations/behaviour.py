"""A scenario's behaviour compiled for the engine: per state, weighted choices and timings.

The scenario says, for a state, which moves a case makes there, with what weights, how
soon, and how those change on later visits or for a child who had a plan before. The engine
asks the same questions millions of times, so each state's answer is built once here:
cumulative weights to draw from, the timing distributions built, the aims resolved.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from model.types import StateId, TriggerId
from simulations.distributions import Dist
from simulations.scenario import BehaviourSpec, ChoiceSpec, DistSpec


@dataclass(frozen=True)
class ChoiceTable:
    """The moves a state chooses among, their cumulative weights and their own timings."""

    triggers: tuple[TriggerId, ...]
    cumulative: tuple[float, ...]
    afters: tuple[Dist | None, ...]
    early: tuple[tuple[float, Dist] | None, ...] = ()
    """Per branch: (share, timing) of the times it comes earlier than the state's timing."""

    def choose(self, usable: frozenset[TriggerId],
               rng: np.random.Generator) -> tuple[TriggerId, Dist | None]:
        """Draw one of the ``usable`` moves by weight, with its own timing if it has one.

        When every move is usable this is one draw against the cumulative weights; else the
        weights of the unusable moves are dropped (and with no weight left, a usable move is
        drawn uniformly).
        """
        if len(usable) == len(self.triggers):
            cumulative = self.cumulative
            x = rng.random() * cumulative[-1]
            # bisect_right, as a loop: a handful of branches, and compiled no Python call
            i = 0
            last = len(cumulative) - 1
            while i < last and cumulative[i] <= x:
                i += 1
            return self.triggers[i], self.afters[i]
        weights = []
        previous = 0.0
        for trig, cum in zip(self.triggers, self.cumulative, strict=True):
            weights.append((cum - previous) if trig in usable else 0.0)
            previous = cum
        total = sum(weights)
        if total <= 0:
            choices = [i for i, t in enumerate(self.triggers) if t in usable]
            i = choices[int(rng.integers(len(choices)))]
        else:
            x = rng.random() * total
            i = 0
            acc = weights[0]
            while acc <= x and i < len(weights) - 1:
                i += 1
                acc += weights[i]
        return self.triggers[i], self.afters[i]


@dataclass(frozen=True)
class Behaviour:
    """One state's compiled behaviour (see ``BehaviourSpec`` for what each part means)."""

    state: StateId
    tables: tuple[ChoiceTable, ...]
    by_visit: bool
    history_table: ChoiceTable | None
    chance: float
    history_chance: float
    after: Dist | None
    aim_deadlines: tuple[str, ...]
    aim_at: float | Dist | None
    meeting_for_lead: TriggerId | None
    lead: Dist | None
    postpone: TriggerId | None


def choice_table(choices: dict[str, float] | dict[str, float | ChoiceSpec]) -> ChoiceTable:
    """Weights normalised into cumulative shares, each choice's timings built."""
    triggers: list[str] = []
    weights: list[float] = []
    afters: list[Dist | None] = []
    early: list[tuple[float, Dist] | None] = []
    for trig, value in choices.items():
        triggers.append(trig)
        if isinstance(value, ChoiceSpec):
            weights.append(value.weight)
            afters.append(value.after.build() if value.after else None)
            early.append((value.early.share, value.early.after.build())
                         if value.early is not None else None)
        else:
            weights.append(float(value))
            afters.append(None)
            early.append(None)
    total = sum(weights) or 1.0
    cumulative = tuple(itertools.accumulate(w / total for w in weights))
    return ChoiceTable(tuple(triggers), cumulative, tuple(afters),
                       tuple(early) if any(e is not None for e in early) else ())


def compile_behaviour(sid: StateId, b: BehaviourSpec) -> Behaviour:
    """The behaviour of state ``sid`` ready for the engine."""
    tables = ((choice_table(b.choose),) if b.choose is not None
              else tuple(choice_table(t) for t in b.choose_by_visit or []))
    aim_at: float | Dist | None = None
    if b.aim is not None:
        aim_at = b.aim.at.build() if isinstance(b.aim.at, DistSpec) else b.aim.at
    return Behaviour(
        state=sid,
        tables=tables,
        by_visit=b.choose_by_visit is not None,
        history_table=(choice_table(b.choose_if_previous_plan)
                       if b.choose_if_previous_plan is not None else None),
        chance=b.chance,
        history_chance=b.chance_for(had_plan=True),
        after=b.after.build() if b.after else None,
        aim_deadlines=tuple(b.aim.deadlines) if b.aim else (),
        aim_at=aim_at,
        meeting_for_lead=b.before_meeting.trigger if b.before_meeting else None,
        lead=b.before_meeting.lead.build() if b.before_meeting else None,
        postpone=b.postpone,
    )
