"""How ``cpsim walk`` shows a session: screens, results, explanations and replays as text.

Colour comes from :func:`click.style` and is asked for with ``colour=True``; the caller
prints with :func:`click.echo`, which drops the styling when the output is not a terminal.
Apart from the styling, the text is the same with and without colour.
"""

from __future__ import annotations

import click

from model.counterexample import WalkReplay
from model.graph import describe
from model.session_view import (
    Explanation,
    Result,
    RuleView,
    Screen,
    format_due,
    format_facts,
    format_time,
)


def _red(text: str, colour: bool) -> str:
    return click.style(text, fg="red", bold=True) if colour else text


def _green(text: str, colour: bool) -> str:
    return click.style(text, fg="green") if colour else text


def _bold(text: str, colour: bool) -> str:
    return click.style(text, bold=True) if colour else text


def _rule_line(rule: RuleView) -> str:
    clause = f", {rule.clause}" if rule.clause else ""
    summary = f" {rule.summary}" if rule.summary else ""
    return f"{rule.id}:{summary} ({rule.document}{clause})"


def render_screen(screen: Screen, colour: bool = False) -> str:
    """The screen as text; overdue clocks say MISSED (and are red when ``colour``)."""
    lines = [_bold(f"== {screen.procedure} | step {screen.steps} | "
                   f"{format_time(screen.now)} ({screen.day_kind}) ==", colour)]
    lines.append("Where the case is:")
    for leaf, summary, rules in screen.where:
        lines.append(f"  {leaf}: {summary} [{', '.join(rules)}]")
    true_facts = {k: v for k, v in screen.facts.items() if v}
    lines.append(f"Case facts: {format_facts(true_facts, only_true=True)}")
    if screen.clocks:
        lines.append("Deadlines running:")
        for c in screen.clocks:
            cited = f"[{', '.join(c.rules)}]"
            parts = []
            if c.due is not None:
                if c.overdue:
                    parts.append(_red(f"MISSED: overdue, was due {format_due(c.due)}", colour))
                else:
                    left = c.working_days_left
                    extra = "" if left is None else (
                        " (today)" if left == 0 else
                        f" ({left} working day{'s' if left != 1 else ''} left)")
                    parts.append(f"due {format_due(c.due)}{extra}")
            if c.earliest is not None:
                note = " (too early to end it now)" if c.too_early else ""
                parts.append(f"not before {format_time(c.earliest)}{note}")
            lines.append(f"  {c.deadline_id}: {'; '.join(parts)} {cited}")
            lines.append(f"      {c.summary}")
    else:
        lines.append("Deadlines running: none")
    if screen.actions:
        lines.append("Actions allowed now:")
        for a in screen.actions:
            lines.append(f"  {a.number}. {a.trigger}: {a.summary}")
            for r in a.rules:
                lines.append(f"       {_rule_line(r)}")
    if screen.blocked:
        lines.append("Offered here but not for this case now (type 'why NAME'):")
        for b in screen.blocked:
            lines.append(f"  - {b.trigger}: {b.reason}")
    if screen.stuck:
        lines.append(_red(f"stuck: nothing leads on from {describe(screen.configuration)}, "
                          "and the case may not end there", colour))
    elif screen.terminal:
        lines.append("The case may end here (it rests in a final state).")
    return "\n".join(lines)


def render_explanation(e: Explanation, colour: bool = False) -> str:
    """An explanation as text: where the case is, what blocks the action, which rules."""
    title = {"allowed": f"{e.trigger} is allowed now.",
             "blocked": f"Why not {e.trigger}? A condition blocks it.",
             "not_here": f"Why not {e.trigger}? It is not offered from here.",
             "unknown": f"Why not {e.trigger}? There is no such action."}[e.kind]
    lines = [_red(title, colour) if e.kind != "allowed" else _bold(title, colour)]
    lines.append("  The case is in " + "; ".join(f"{s} ({summary})" for s, summary in e.where))
    lines.extend(f"  {r}" for r in e.reasons)
    if e.hint:
        lines.append(f"  Did you mean {e.hint!r}?")
    if e.rules:
        lines.append("  The rules behind it:")
        lines.extend(f"    {_rule_line(r)}" for r in e.rules)
    if e.kind != "allowed":
        lines.append("  Allowed now: " + (", ".join(e.allowed_now) if e.allowed_now
                                           else "nothing"))
    return "\n".join(lines)


def render_result(result: Result, colour: bool = False, screen: bool = True) -> str:
    """What a command did, as text; the screen follows when the case or clock changed."""
    parts: list[str] = []
    for note in result.notes:
        paint = {"alert": _red, "good": _green}.get(note.level)
        parts.append(paint(note.text, colour) if paint else note.text)
    if result.explanation is not None:
        parts.append(render_explanation(result.explanation, colour))
    if result.text:
        parts.append(result.text)
    if screen and result.changed:
        parts.append(render_screen(result.screen, colour))
    return "\n".join(parts)


def render_replay(replay: WalkReplay, colour: bool = False) -> str:
    """A replay as text: the opening screen, then each command and what it did."""
    parts = [_bold(f"### {replay.title}", colour)]
    parts.extend(n.text for n in replay.intro)
    parts.append(render_screen(replay.start, colour))
    for step in replay.steps:
        where = f"  (line {step.line})" if step.line is not None else ""
        parts.append(f"\nwalk> {step.command}{where}")
        body = render_result(step.result, colour, screen=False)
        if step.result.save is not None:
            body = (body + "\n" if body else "") + "(save skipped during a replay)"
        if body:
            parts.append(body)
        parts.extend(_red(n.text, colour) if n.level == "alert" else n.text
                     for n in step.notes)
        if step.result.changed:
            parts.append(render_screen(step.result.screen, colour))
    parts.extend(_red(n.text, colour) if n.level == "alert" else n.text
                 for n in replay.outro)
    if replay.ok:
        parts.append(f"replay finished: {len(replay.steps)} command"
                     f"{'s' if len(replay.steps) != 1 else ''}, all legal")
    else:
        parts.append(_red(f"replay stopped: {replay.failure}", colour))
    return "\n".join(parts)

