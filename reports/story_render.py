"""A told case rendered: Markdown, the timeline figure and the HTML page.

The HTML page is rendered by jinja2 with autoescaping on; no text from the procedure, the
scenario or the log is marked safe. The figure is drawn with matplotlib's object API (no
pyplot) and embedded as a base64 PNG, so the page opens offline on its own.
"""

from __future__ import annotations

import base64
import math
import re

from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.dates import date2num
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from model.types import SimHours
from reports import figures as fg
from reports.story_tell import Band, Story
from reports.story_words import amount, day_text, humanise, lower_first
from reports.templating import environment

# -- Markdown --------------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def md(text: str) -> str:
    r"""Free text made safe for Markdown (its special characters escaped).

    >>> md("a_b <i>")
    'a\\_b \\<i\\>'
    """
    return _MD_SPECIAL.sub(r"\\\1", text)


def overview(story: Story) -> str:
    """The one-paragraph summary: span, breaches, postponements, where the case ended."""
    first, last = story.steps[0], story.steps[-1]
    days = (last.day - first.day).days
    missed = len(story.breaches)
    post = len(story.postponements)
    where = ("it came to rest in" if story.final_terminal
             else "at the end of the run it was still open, in")
    return (f"{len(story.steps)} events from {first.day_text} to {last.day_text} "
            f"({days} day{'s' if days != 1 else ''}); {missed} deadline"
            f"{'s' if missed != 1 else ''} missed, {post} postponement"
            f"{'s' if post != 1 else ''}; {where} {story.final_state}.")


def run_text(story: Story) -> str:
    """Which run and replication the case comes from."""
    end = story.calendar.date_of(story.horizon_hours)
    warm = story.calendar.date_of(story.warm_up_hours)
    return (f"Replication {story.replication} ({story.replications} stored) of a run of "
            f"scenario {story.scenario_name} ({story.scenario_title}) on procedure "
            f"{story.procedure_id} ({story.procedure_title}), simulated from "
            f"{day_text(story.start_date)} to {day_text(end)}. Events before "
            f"{day_text(warm)} fall in the warm-up, which the run's KPIs leave out.")


def method_notes(story: Story) -> list[str]:
    """How the story was worked out, for its last section."""
    return [
        f"The events are the case's rows of events/rep-{story.replication:04d}.parquet, in "
        f"the order the run wrote them. Each was replayed through the compiled procedure "
        f"machine on the England and Wales working calendar from "
        f"{story.start_date.isoformat()}, so every deadline clock started, stopped and was "
        "judged exactly as in the run. Times are in the deadline's own unit: working days "
        "and days count whole days from the day the clock started, hours are exact, months "
        "are whole calendar months plus days / 30.44.",
        *story.facts_notes,
        "Clocks still open when the log ends are judged at the end of the run: overdue when "
        "their due time had passed, otherwise still running.",
    ]


def story_markdown(story: Story) -> str:
    """The story as Markdown: summary, highlights, the dated steps, the clocks, the method."""
    lines = [f"# The story of case {md(story.case_id)}", "", md(run_text(story)), ""]
    if story.choice_note:
        lines += [f"**Why this case:** {md(story.choice_note)}", ""]
    lines += [f"**In short:** {md(overview(story))}", ""]
    if story.breaches or story.postponements:
        lines += ["## Highlights", ""]
        for step, v in story.breaches:
            lines.append(f"- **Missed, {step.day_text}:** {md(step.title)} {md(v.text)} "
                         f"({md(v.rules_text)}).")
        for step in story.postponements:
            lines.append(f"- **Postponed, {step.day_text}:** {md(step.title)}"
                         + (f" — {md(step.reason)}" if step.reason else "") + ".")
        lines.append("")
    lines += ["## What happened", ""]
    for step in story.steps:
        head = f"- **{step.day_text}** {step.clock} — **{md(step.title)}.** {md(step.summary)}"
        if step.kind == "postponement":
            head += (" **Postponed**" + (f": {md(step.reason)}." if step.reason else "."))
        extras = []
        if step.who:
            extras.append(f"by {md(step.who)}")
        if step.absent:
            extras.append(f"not attending: {md(step.absent)}")
        if extras:
            head += f" _({'; '.join(extras)})_"
        if step.rules:
            head += f" Rules: {md(', '.join(step.rules))}."
        lines.append(head)
        for v in step.verdicts:
            if v.outcome == "missed":
                lines.append(f"  - **Missed** ({md(lower_first(v.label))}): {md(v.text)} "
                             f"({md(v.rules_text)}).")
            elif v.outcome == "met":
                lines.append(f"  - Met ({md(lower_first(v.label))}): {md(v.text)} "
                             f"({md(v.rules_text)}).")
            else:
                lines.append(f"  - {md(v.text)} ({md(v.rules_text)}).")
        if step.started:
            lines.append("  - Clock starts: " + "; ".join(
                f"{md(c.text)} ({md(c.rules_text)})" for c in step.started) + ".")
        if step.moved and step.kind != "arrival":
            lines.append(f"  - Now: {md(step.now)}.")
    lines.append("")
    if story.open_clocks:
        lines += ["## Clocks open at the end of the run", ""]
        lines += [f"- {md(c.text)} ({md(c.rules_text)})." for c in story.open_clocks]
        lines.append("")
    judged = [v for s in story.steps for v in s.verdicts]
    if judged:
        lines += ["## Deadlines", "",
                  "| deadline | started | ended | time taken | limit | outcome | rules |",
                  "|---|---|---|---|---|---|---|"]
        for v in judged:
            took = "–" if v.elapsed is None else amount(v.elapsed, v.unit)
            ended = "–" if v.ended is None else day_text(story.date_of(v.ended))
            lines.append(f"| {md(v.label)} | {day_text(story.date_of(v.started))} | {ended} "
                         f"| {took} | {md(v.limit)} | {v.outcome} | {md(v.rules_text)} |")
        lines.append("")
    lines += ["## How this story was worked out", ""]
    lines += [f"- {md(n)}" for n in method_notes(story)]
    lines += ["", "The timeline figure is in the HTML page written beside this file "
              f"(stories/{story.slug}.html in the results folder).", ""]
    return "\n".join(lines)


# -- the figure ----------------------------------------------------------------------------------
def _num(story: Story, t: SimHours) -> float:
    return float(date2num(story.calendar.to_datetime(t)))  # type: ignore[no-untyped-call]


STAGE_COLOURS = ("#2b6cb0", "#dd6b20", "#2f855a", "#805ad5", "#b7791f", "#319795", "#d53f8c",
                 "#718096", "#63b3ed", "#68d391", "#f6ad55", "#b794f4")
"""Main-flow stage colours, by the stage's declared position (no red: red marks breaches)."""


def band_colour(b: Band) -> str:
    """A band's colour: the main flow by stage, a region's ladder from light to dark purple.

    >>> band_colour(Band("stage", "referral", "referral", 0, 1, 0, 11))
    '#2b6cb0'
    """
    if b.lane == "stage":
        return STAGE_COLOURS[b.index % len(STAGE_COLOURS)]
    shade = 0.3 + 0.65 * (b.index / max(b.of - 1, 1))
    return str(to_hex(colormaps["Purples"](min(shade, 1.0))))


def timeline_figure(story: Story) -> Figure:
    """The case over time: stages as coloured bands, milestones marked, breaches in red.

    One lane per part of the procedure the case used (the main flow, then each region), a
    lane of events below them: every step is a small grey tick, steps that met a deadline
    are dark dots, postponements orange triangles, and each missed deadline a red cross with
    a red line across the lanes.
    """
    lanes = list(story.lanes)
    states = list(dict.fromkeys(b.state for b in story.bands))
    colours = {b.state: band_colour(b) for b in story.bands}
    height = 1.6 + 0.55 * (len(lanes) + 1) + 0.25 * math.ceil(len(states) / 4)
    fig = fg.new_figure(10.0, height)
    ax = fig.add_subplot()
    rows = {lane: len(lanes) - i for i, lane in enumerate(lanes)}
    for b in story.bands:
        left, right = _num(story, b.start), _num(story, b.end)
        ax.barh(rows[b.lane], right - left, left=left, height=0.7, color=colours[b.state],
                alpha=0.85, edgecolor="white", linewidth=0.6)
    first = _num(story, story.steps[0].time)
    last = max([_num(story, b.end) for b in story.bands] + [_num(story, story.steps[-1].time)])
    span = max(last - first, 1.0)
    for step in story.steps:
        x = _num(story, step.time)
        if step.breaches:
            ax.axvline(x, color=fg.RED, linewidth=1.0, alpha=0.6, zorder=1)
            ax.plot([x], [0], marker="X", color=fg.RED, markersize=9, zorder=4)
        elif step.kind == "postponement":
            ax.plot([x], [0], marker="v", color=fg.ORANGE, markersize=8, zorder=3)
        elif any(v.outcome == "met" for v in step.verdicts) or step.kind == "arrival":
            ax.plot([x], [0], marker="o", color=fg.INK, markersize=5, zorder=3)
        else:
            ax.plot([x], [0], marker="|", color=fg.GREY, markersize=9, zorder=2)
    if not story.final_terminal:
        end = _num(story, story.horizon_hours)
        ax.axvline(end, color=fg.MUTED, linestyle="--", linewidth=1.0)
        ax.annotate("end of run", (end, len(lanes) + 0.45), ha="right", va="bottom",
                    fontsize=8, color=fg.MUTED)
    ax.set_yticks([*rows.values(), 0], [*(humanise(lane) for lane in lanes), "Events"])
    ax.set_ylim(-0.7, len(lanes) + 0.8)
    ax.set_xlim(first - 0.02 * span, last + 0.02 * span)
    fg.date_axis(ax)
    fg.style_axes(ax, "x")
    ax.set_title(f"Case {story.case_id}: stages over time", fontsize=11, loc="left",
                 color=fg.INK)
    labels = {b.state: b.label for b in story.bands}
    handles: list[Patch | Line2D] = [Patch(color=colours[s], label=labels[s]) for s in states]
    handles += [Line2D([], [], marker="o", color=fg.INK, linestyle="", label="deadline met"),
                Line2D([], [], marker="X", color=fg.RED, linestyle="", label="deadline missed"),
                Line2D([], [], marker="v", color=fg.ORANGE, linestyle="", label="postponed"),
                Line2D([], [], marker="|", color=fg.GREY, linestyle="", label="other step")]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    return fig


# -- HTML --------------------------------------------------------------------------------
def render_story_html(story: Story, png: bytes) -> str:
    """The story page as HTML (autoescaped jinja2 template ``story.html``)."""
    context = {
        "story": story,
        "run_text": run_text(story),
        "overview": overview(story),
        "method_notes": method_notes(story),
        "figure": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        "amount": amount,
        "day_of": lambda t: day_text(story.date_of(t)),
    }
    return environment().get_template("story.html").render(**context)
