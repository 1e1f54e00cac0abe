"""Telling one case: choosing it, replaying its log and putting each step into words.

:func:`build_story` gathers everything the Markdown and the HTML page show into a
:class:`Story`; the reading and replaying are in :mod:`reports.story_read`, the sentences in
:mod:`reports.story_words` and the rendering in :mod:`reports.story_render`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from model.calendar import WorkingCalendar
from model.compiler import CompiledProcedure
from model.errors import InputError, Problem
from model.graph import is_terminal
from model.spec import Procedure
from model.types import SimHours
from reports.story_read import (
    FactClass,
    LogRow,
    Replay,
    closest_ids,
    event_log,
    fact_classes,
    first_replay,
    read_all_cases,
    read_case,
    replay,
)
from reports.story_words import (
    ClockLine,
    actor_words,
    day_text,
    facts_notes,
    humanise,
    open_line,
    started_line,
    state_label,
    verdict_line,
    where,
)
from simulations.eventlog import read_events
from simulations.results import RunResults

Pick = Literal["longest", "breached", "escalated"]
PICKS: tuple[Pick, ...] = ("longest", "breached", "escalated")


# -- choosing a case ---------------------------------------------------------------------------
def ladder_states(procedure: Procedure) -> list[str]:
    """The rungs of every escalation ladder, lowest first.

    A ladder is declared by a ``monotone`` property (Walsall's resolution stages, Wigan's
    arbitration); failing that, region states named ``stage_N`` count.
    """
    rungs: list[str] = []
    for prop in procedure.properties:
        if prop.pattern == "monotone":
            rungs.extend(s for s in prop.order if s not in rungs)
    if not rungs:
        rungs = [sid for sid, st in procedure.states.items()
                 if st.region is not None and re.fullmatch(r"stage_\d+", st.name)]
    return rungs


@dataclass(frozen=True)
class Choice:
    """The case picked and why."""

    case_id: str
    note: str


def pick_case(pick: Pick, cases: Mapping[str, Sequence[LogRow]], results: RunResults,
              machine: CompiledProcedure, classes: Sequence[FactClass],
              replication: int) -> Choice:
    """Pick the longest, most breached or highest-escalated case of a replication.

    Raises:
        InputError: no case fits (or the procedure has no ladder to climb).
    """
    where = f"replication {replication}"
    if pick == "longest":
        def length(cid: str) -> tuple[int, float, str]:
            rows = cases[cid]
            return (len(rows) - 1, rows[-1].time - rows[0].time, cid)

        best = max(cases, key=lambda cid: (length(cid)[0], length(cid)[1], _neg(cid)))
        steps, hours, _ = length(best)
        return Choice(best, f"Picked as the longest case: the one with the most steps "
                            f"({steps}, over {hours / 24:.0f} days) in {where}; ties go to "
                            f"the longer case, then the lower case id.")
    if pick == "breached":
        counts: dict[str, int] = {}
        for cid, rows in cases.items():
            result = first_replay(machine, cid, rows, classes)
            if isinstance(result, Replay) and result.missed:
                counts[cid] = result.missed
        if not counts:
            raise InputError([Problem(str(results.out), None, "--pick breached",
                                      f"no case in {where} missed a deadline")])
        best = min(counts, key=lambda cid: (-counts[cid], cid))
        tied = sum(1 for c in counts.values() if c == counts[best])
        among = (f"the only case in {where} that missed any" if len(counts) == 1 else
                 f"the most of the {len(counts)} cases in {where} that missed any")
        return Choice(best, f"Picked as the most breached case: {counts[best]} missed "
                            f"deadline{'s' if counts[best] != 1 else ''}, {among}"
                            + (f" ({tied} cases tie; the lowest case id is told)"
                               if tied > 1 else "") + ".")
    procedure = results.scenario.procedure
    rungs = ladder_states(procedure)
    if not rungs:
        raise InputError([Problem(
            str(results.out), None, "--pick escalated",
            f"the procedure of this run ({procedure.id}, scenario "
            f"{results.scenario.name}) has no resolution ladder, so no case can climb one; "
            f"run a scenario with a ladder and tell its story, e.g. `cpsim run walsall "
            f"--out out/walsall` then `cpsim story out/walsall --pick escalated`")])
    rank = {s: i for i, s in enumerate(rungs)}
    scores: dict[str, tuple[int, int]] = {}
    for cid, rows in cases.items():
        top = -1
        moves = 0
        for row in rows:
            reached = [rank[s] for s in row.config if s in rank]
            before = [rank[s] for s in row.from_state.split(" + ") if s in rank]
            if reached:
                top = max(top, *reached)
                if before and max(reached) > max(before):
                    moves += 1
        if top >= 0:
            scores[cid] = (top, moves)
    if not scores:
        raise InputError([Problem(str(results.out), None, "--pick escalated",
                                  f"no case in {where} reached the ladder "
                                  f"({', '.join(rungs)}); try a longer horizon or more "
                                  f"replications")])
    best = min(scores, key=lambda cid: (-scores[cid][1], -scores[cid][0], cid))
    top, moves = scores[best]
    climbed = sum(1 for _, m in scores.values() if m)
    if moves:
        among = (f"the only case in {where} that moved up the ladder" if climbed == 1 else
                 f"the most climbing of the {climbed} cases in {where} that moved up the "
                 f"ladder")
        why = (f"it climbed {moves} rung{'s' if moves != 1 else ''} of the ladder, up to "
               f"{state_label(procedure, rungs[top])}: {among} (of {len(scores)} that "
               f"reached it); ties go to the higher rung, then the lower case id")
    else:
        why = (f"no case in {where} moved up the ladder, so this is the case that started "
               f"highest on it, at {state_label(procedure, rungs[top])} (of {len(scores)} "
               f"that reached it); ties go to the lower case id")
    return Choice(best, f"Picked as the most escalated case: {why}.")


def _neg(case_id: str) -> tuple[int, ...]:
    """A key that sorts case ids in reverse, so ``max`` prefers the lower id on a tie."""
    return tuple(-ord(ch) for ch in case_id)



# -- the story ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoryStep:
    """One line of the story: a logged event with its deadlines.

    Attributes:
        kind: ``arrival``, ``step`` or ``postponement``.
        moved: The step changed where the case is (``now`` says where).
    """

    number: int
    time: SimHours
    day: date
    day_text: str
    clock: str
    kind: Literal["arrival", "step", "postponement"]
    trigger: str
    title: str
    summary: str
    who: str
    absent: str
    reason: str
    rules: tuple[str, ...]
    now: str
    moved: bool
    verdicts: tuple[ClockLine, ...]
    started: tuple[ClockLine, ...]

    @property
    def breaches(self) -> tuple[ClockLine, ...]:
        """The deadlines this step missed."""
        return tuple(v for v in self.verdicts if v.outcome == "missed")


@dataclass(frozen=True)
class Band:
    """A stretch of time the case spent in one stage of one lane (main flow or a region)."""

    lane: str
    state: str
    label: str
    start: SimHours
    end: SimHours
    index: int = 0
    of: int = 1


@dataclass(frozen=True)
class Story:
    """Everything told about one case."""

    case_id: str
    replication: int
    replications: int
    scenario_name: str
    scenario_title: str
    procedure_id: str
    procedure_title: str
    start_date: date
    horizon_hours: SimHours
    warm_up_hours: SimHours
    choice_note: str
    steps: tuple[StoryStep, ...]
    open_clocks: tuple[ClockLine, ...]
    final_state: str
    final_terminal: bool
    facts_notes: tuple[str, ...]
    bands: tuple[Band, ...]
    lanes: tuple[str, ...]
    calendar: WorkingCalendar = field(repr=False)

    @property
    def breaches(self) -> list[tuple[StoryStep, ClockLine]]:
        """Every missed deadline with the step that missed it."""
        return [(s, v) for s in self.steps for v in s.breaches]

    @property
    def postponements(self) -> list[StoryStep]:
        """Every postponement."""
        return [s for s in self.steps if s.kind == "postponement"]

    @property
    def clocks(self) -> list[ClockLine]:
        """Every judged clock (met, missed, cancelled) then those open at the end."""
        return [v for s in self.steps for v in s.verdicts] + list(self.open_clocks)

    @property
    def slug(self) -> str:
        """The file stem: ``story-<case>``, with the replication when it is not the first."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.case_id)
        return f"story-{safe}" + (f"-rep-{self.replication}" if self.replication else "")

    def date_of(self, t: SimHours) -> date:
        """The calendar date of sim time ``t``."""
        return self.calendar.date_of(t)



def _bands(procedure: Procedure, rows: Sequence[LogRow], end: SimHours
           ) -> tuple[list[Band], list[str]]:
    """Stretches of time in each main-flow stage and each region state (not the resting one)."""
    lanes = ["stage", *procedure.regions]
    rest = {r: procedure.entry_leaf(procedure.states[r].initial or r)
            for r in procedure.regions}
    order = {"stage": [sid for sid, st in procedure.states.items()
                       if st.parent is None and st.region is None]}
    for r in procedure.regions:
        order[r] = [sid for sid in procedure.states[r].children if sid != rest[r]]

    def band(lane: str, state: str, start: SimHours, end: SimHours) -> Band:
        states = order[lane]
        index = states.index(state) if state in states else len(states)
        return Band(lane, state, state_label(procedure, state), start, end, index,
                    max(len(states), index + 1))

    bands: list[Band] = []
    current: dict[str, tuple[str, SimHours]] = {}
    for row in rows:
        seen: dict[str, str] = {}
        for leaf in row.config:
            region = procedure.states[leaf].region
            if region is None:
                seen["stage"] = procedure.ancestors(leaf)[-1]
            elif leaf != rest[region]:
                seen[region] = leaf
        for lane in lanes:
            state = seen.get(lane)
            open_ = current.get(lane)
            if open_ is not None and open_[0] != state:
                bands.append(band(lane, open_[0], open_[1], row.time))
                del current[lane]
            if state is not None and lane not in current:
                current[lane] = (state, row.time)
    for lane, (state, since) in current.items():
        bands.append(band(lane, state, since, max(end, since)))
    used = [lane for lane in lanes if any(b.lane == lane for b in bands)]
    return bands, used


def build_story(results: RunResults, case_id: str | None = None, pick: Pick | None = None,
                replication: int | None = None) -> Story:
    """Tell one case of a stored run.

    Args:
        results: The stored run (from :func:`simulations.results.read_results`).
        case_id: The case to tell; or None with ``pick``.
        pick: ``longest`` (most steps), ``breached`` (most missed deadlines) or
            ``escalated`` (highest rung of a resolution ladder).
        replication: The replication (default: the first with an event log).

    Raises:
        InputError: no event log, unknown case (the closest ids are suggested), nothing to
            pick, or a log that does not replay on the run's procedure.
    """
    if (case_id is None) == (pick is None):
        raise ValueError("give exactly one of case_id and pick")
    procedure = results.scenario.procedure
    meta = results.metadata
    start = date.fromisoformat(str(meta["start_date"]))
    cal = WorkingCalendar(start)
    machine = CompiledProcedure(procedure, cal)
    classes = fact_classes(procedure, results.scenario.spec.demand.facts)
    replication, path = event_log(results, replication)
    if pick is not None:
        cases = read_all_cases(path)
        if not cases:
            raise InputError([Problem(str(path), None, "", "the event log holds no case")])
        choice = pick_case(pick, cases, results, machine, classes, replication)
        case_id, note = choice.case_id, choice.note
        rows = list(cases[case_id])
    else:
        assert case_id is not None
        rows = read_case(path, case_id)
        note = ""
        if not rows:
            ids = read_events(path, columns=["case_id"]).column("case_id").unique()
            hint = closest_ids(case_id, (str(i) for i in ids.to_pylist()))
            raise InputError([Problem(
                str(path), None, "--case",
                f"no case {case_id!r} in replication {replication}"
                + (f"; the closest ids are {', '.join(hint)}" if hint else ""))])
    replays: list[Replay] = []
    first_error = ""
    for fact_class in classes:
        attempt = replay(machine, case_id, rows, fact_class)
        if isinstance(attempt, Replay):
            replays.append(attempt)
        else:
            first_error = first_error or attempt
    if not replays:
        raise InputError([Problem(
            str(path), None, case_id,
            f"the case's log does not replay on procedure {procedure.id} ({first_error}); "
            f"has the procedure changed since the run?")])
    chosen = replays[0]
    horizon = float(meta["horizon_days"]) * 24.0
    deadlines = {d.id: d for d in procedure.deadlines}
    steps: list[StoryStep] = []
    for i, row in enumerate(rows):
        when = cal.to_datetime(row.time)
        who, absent, reason = actor_words(row.actor)
        if i == 0:
            top = procedure.ancestors(row.config[0])[-1]
            kind: Literal["arrival", "step", "postponement"] = "arrival"
            title = f"Case arrives: {state_label(procedure, top)}"
            summary = procedure.states[top].summary
            started = chosen.started
            verdicts: tuple[ClockLine, ...] = ()
            moved = True
        else:
            fired = chosen.results[i - 1]
            transition = procedure.transition(fired.step.transition_id)
            kind = "postponement" if row.trigger.startswith("postpone") else "step"
            title = humanise(row.trigger)
            summary = transition.summary
            started = fired.started
            verdicts = tuple(
                verdict_line(procedure, cal, deadlines[v.deadline_id], v.started, v.ended,
                             v.due, v.earliest, v.outcome, v.elapsed)
                for v in fired.verdicts)
            moved = fired.step.before != fired.step.after
        steps.append(StoryStep(
            number=i, time=row.time, day=row.day, day_text=day_text(row.day),
            clock=f"{when:%H:%M}", kind=kind, trigger=row.trigger, title=title,
            summary=summary, who=who, absent=absent, reason=reason, rules=row.rules,
            now=where(procedure, row.config), moved=moved,
            verdicts=verdicts,
            started=tuple(started_line(procedure, cal, deadlines[d], row.time)
                          for d in started)))
    open_clocks = tuple(open_line(procedure, cal, c, horizon) for c in chosen.open_clocks)
    final = rows[-1].config
    terminal = is_terminal(procedure, final)
    span_end = horizon
    if terminal:
        span = max(rows[-1].time - rows[0].time, 24.0)
        span_end = min(horizon, rows[-1].time + 0.08 * span)
    bands, lanes = _bands(procedure, rows, span_end)
    return Story(
        case_id=case_id, replication=replication, replications=len(results.records),
        scenario_name=results.scenario.name, scenario_title=results.scenario.spec.title,
        procedure_id=procedure.id, procedure_title=procedure.title, start_date=start,
        horizon_hours=horizon, warm_up_hours=float(meta["warm_up_days"]) * 24.0,
        choice_note=note, steps=tuple(steps), open_clocks=open_clocks,
        final_state=where(procedure, final),
        final_terminal=terminal,
        facts_notes=tuple(facts_notes(procedure, classes, replays)),
        bands=tuple(bands), lanes=tuple(lanes), calendar=cal)
