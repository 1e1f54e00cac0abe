"""Replaying a ``cpsim check`` counterexample on a walk, step by step.

The counterexamples are read back by :func:`model.findings.read_counterexamples` (from
``cpsim check --json`` or its text). The checker treats guards as open and its runs carry
no times, so a replay picks the simplest case facts under which every step's guards hold,
takes each step at the same moment, and checks that the case is where the counterexample
says after each one. The replay record (:class:`WalkReplay`) is shared with transcript
replays (``cpsim/transcript.py``), which the command line renders the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from model.compiler import IllegalMove
from model.findings import Counterexample
from model.graph import describe
from model.guards import fact_classes
from model.session import DEFAULT_START, Move, WalkSession
from model.session_view import Note, Result, Screen, format_facts
from model.spec import Procedure
from model.types import TriggerId


@dataclass(frozen=True)
class WalkReplayStep:
    """One command of a replay, with its result and any checks made along the way."""

    command: str
    line: int | None
    result: Result
    notes: tuple[Note, ...] = ()


@dataclass
class WalkReplay:
    """A replayed walk: the opening screen, each step, and whether it all went as written.

    Attributes:
        ok: Every command was legal (and, for a counterexample, every configuration
            matched the printed one).
        failure: Why the replay stopped, when it did.
    """

    title: str
    session: WalkSession
    start: Screen
    intro: tuple[Note, ...] = ()
    steps: list[WalkReplayStep] = field(default_factory=list)
    ok: bool = True
    failure: str | None = None
    outro: tuple[Note, ...] = ()


def choose_facts(procedure: Procedure, triggers: Sequence[TriggerId]) -> dict[str, bool]:
    """The simplest case facts under which ``triggers`` can all fire in order.

    Only the facts read by the guards on those triggers' transitions matter, so one
    representative of each of their fact classes is tried, simplest class first (no guard
    reads both facts and trigger counts, so every member of a class fires alike). Falls back
    to no facts when none works (the replay then shows where the run is blocked).
    """
    wanted = set(triggers)
    guards = {g for t in procedure.transitions if t.trigger in wanted for g in t.guards}
    for fact_class in fact_classes(guards):
        facts = dict(fact_class.facts)
        walk = WalkSession(procedure, DEFAULT_START, facts)
        try:
            for trigger in triggers:
                walk.machine.fire(walk.case, trigger, walk.now)
        except IllegalMove:
            continue
        return facts
    return {}


def replay_counterexample(procedure: Procedure, cx: Counterexample,
                          start_date: date | None = None,
                          facts: Mapping[str, bool] | None = None) -> WalkReplay:
    """Step through a ``cpsim check`` counterexample, checking each configuration.

    Without ``facts``, picks the simplest facts under which every step's guards hold (the
    checker treats guards as open). The replay fails (``ok`` false) when a step is illegal
    here, when the case is not where the counterexample says, or when the counterexample
    says the case is stuck but something still leads on.
    """
    chosen = dict(facts) if facts is not None else choose_facts(
        procedure, [s.trigger for s in cx.steps])
    session = WalkSession(procedure, start_date or DEFAULT_START, chosen)
    source = (f" (line {cx.line})" if cx.line is not None
              else f" (check of {cx.procedure})" if cx.procedure else "")
    intro = [Note(f"counterexample{source}: {cx.title}")]
    intro.extend(Note(f"  the same run is the counterexample of: {t}") for t in cx.also)
    if facts is None and chosen:
        intro.append(Note(f"facts chosen so the run's guards hold: "
                          f"{format_facts(chosen, only_true=True)}"))
    intro.append(Note("every step is taken at the same moment on the clock; the checker's "
                      "runs have no times"))
    replay = WalkReplay(f"counterexample: {cx.title}", session, session.screen(), tuple(intro))

    def fail(message: str, where: str) -> WalkReplay:
        replay.ok = False
        replay.failure = f"{where}: {message}"
        return replay

    for number, step in enumerate(cx.steps, 1):
        # Text output has line numbers to point at; JSON output has only step numbers.
        at = f"line {step.line}" if step.line is not None else f"step {number}"
        here = session.configuration
        if here != step.before:
            return fail(f"the counterexample has the case in {describe(step.before)}, but "
                        f"here it is in {describe(here)}", at)
        result = session.apply(Move.act(step.trigger))
        checks: list[Note] = []
        if result.status == "ok" and session.configuration != step.after:
            checks.append(Note(f"expected {describe(step.after)} as the counterexample "
                               f"says, but the case is in {describe(session.configuration)}",
                               "alert"))
        elif result.status == "ok":
            checks.append(Note(f"as the counterexample says: now in {describe(step.after)}"))
        replay.steps.append(WalkReplayStep(step.trigger, step.line, result, tuple(checks)))
        if result.status != "ok":
            return fail(f"{step.trigger} is not allowed at this point", at)
        if checks and checks[0].level == "alert":
            return fail(checks[0].text, at)
    if cx.stuck is not None:
        screen = session.screen()
        # In text output the stuck line follows the last step (or the heading, alone).
        if cx.steps:
            last = cx.steps[-1].line
            line = None if last is None else last + 1
        else:
            line = cx.line
        at = f"line {line}" if line is not None else "after the last step"
        if session.configuration != cx.stuck:
            return fail(f"the counterexample says the case is stuck in {describe(cx.stuck)},"
                        f" but it is in {describe(session.configuration)}", at)
        if screen.actions:
            return fail(f"the counterexample says nothing leads on from {describe(cx.stuck)},"
                        " but here the case can still: "
                        + ", ".join(a.trigger for a in screen.actions), at)
        replay.outro = (Note(f"stuck: nothing leads on from {describe(cx.stuck)}, as the "
                             "counterexample says; this is how the procedure goes wrong",
                             "alert"),)
    else:
        replay.outro = (Note(f"the counterexample ends here: {cx.title}"),)
    return replay


