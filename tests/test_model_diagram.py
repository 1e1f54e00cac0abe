"""Diagram text: Mermaid and DOT structure, stages with their boundary, labels, escaping."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from model.diagram import build_diagram, dot_text, mermaid_text, to_dot, to_mermaid
from model.errors import InputError
from model.loader import available_procedures, load_procedure


@pytest.fixture(scope="module")
def wm():
    return load_procedure("west-midlands-2014")


def declared_ids(mermaid: str) -> set[str]:
    """State ids from the ``%% id: summary`` comments (regions say ``region X runs ...``)."""
    ids = set()
    for line in mermaid.splitlines():
        m = re.match(r"\s+%% (?:region )?([a-z0-9_.]+)(?: runs beside the main flow)?: ", line)
        if m and line.strip() != "%%":
            ids.add(m.group(1))
    return ids - {"west-midlands-2014"}


def dot_nodes(dot: str) -> set[str]:
    """Quoted node ids declared with attributes, and cluster names, in a DOT text."""
    nodes = set(re.findall(r'^\s+"([^"]+)" \[', dot, flags=re.M))
    clusters = set(re.findall(r'subgraph "cluster_([^"]+)"', dot))
    return {n for n in nodes if "__" not in n} | clusters


def test_mermaid_shows_every_state_and_trigger(wm):
    """The whole procedure: every state (declared once) and every trigger appear."""
    text = to_mermaid(wm, None)
    assert text.startswith("---\ntitle: ") and "stateDiagram-v2" in text
    assert declared_ids(text) == set(wm.states)
    for state in wm.states.values():
        # A composite whose name another composite shares (the conference's and the
        # review's `preparation`) is written by its dotted path instead.
        assert (f'"{state.name}"' in text or f"state {state.name} {{" in text
                or f"state {state.id.replace('.', '__')} {{" in text), state.id
    for trigger in wm.triggers:
        assert re.search(rf"--> \S+ : {trigger}\b|: {trigger}\b", text), trigger
    assert "[*] --> referral" in text
    assert "closed --> [*]" in text


def test_mermaid_nests_stages_and_marks_each_initial(wm):
    """Stages are composite states with their own start; edges are written outside them."""
    text = to_mermaid(wm, None)
    # Two stages are called `preparation` (the conference's and the review's), so each is
    # written by its dotted path.
    assert "state icpc {" in text and "state icpc__preparation {" in text
    assert "state cp_plan__review_conference__preparation {" in text
    icpc = text[text.index("state icpc {"):]
    assert icpc.index("state icpc__preparation {") < icpc.index("state \"session\"")
    assert "[*] --> icpc__preparation\n" in icpc  # the composite's own entry
    assert "[*] --> icpc__preparation__inviting" in text
    body = [line for line in text.splitlines() if " --> " in line and "[*]" not in line]
    assert all(line.startswith("    ") and not line.startswith("        ") for line in body)


def test_mermaid_lists_loops_on_composites_and_draws_them_on_leaves(wm):
    """Self-loops on a leaf are self-transitions; on a composite they are listed inside it."""
    text = to_mermaid(wm, None)
    assert re.search(r"cp_plan__active --> cp_plan__active : core_group_held", text)
    assert 'state "↻ stays in preparation" as icpc__preparation__stays' in text
    assert "icpc__preparation__stays : postpone_icpc [WM-11, WM-12]" in text
    assert "icpc__preparation --> icpc__preparation" not in text
    # On one stage drawn alone the name is unique again, and the plain name is kept.
    stage = to_mermaid(wm, "icpc")
    assert 'state "↻ stays in preparation" as preparation__stays' in stage
    assert "preparation__stays : postpone_icpc [WM-11, WM-12]" in stage
    assert "preparation --> preparation" not in stage


def test_dot_shows_every_state_and_trigger(wm):
    """DOT: a digraph with a node or cluster for every state and every trigger on an edge."""
    text = to_dot(wm, None)
    assert text.startswith("digraph ")
    assert dot_nodes(text) == set(wm.states)
    for trigger in wm.triggers:
        assert re.search(rf'(label="|↻ ){trigger}\b', text), trigger
    assert text.count("{") == text.count("}")
    assert '"closed" [label="closed"' in text and "peripheries=2" in text
    assert '"__start" -> "referral";' in text


def test_dot_clips_arrows_at_stage_borders(wm):
    """An arrow into a stage ends at its cluster; one from a stage starts at its border."""
    text = to_dot(wm, None)
    line = next(x for x in text.splitlines() if "proceed_to_icpc" in x)
    assert '-> "icpc.__start"' in line and 'lhead="cluster_icpc"' in line
    line = next(x for x in text.splitlines() if "label=\"enquiry_no_conference" in x)
    assert line.strip().startswith('"section_47.__start" -> "child_in_need"')
    assert 'ltail="cluster_section_47"' in line
    # A move between leaves inside a stage is not clipped.
    line = next(x for x in text.splitlines() if "label=\"icpc_opens" in x)
    assert line.strip().startswith('"icpc.preparation.ready" -> "icpc.session"')
    assert "ltail=" not in line and "lhead=" not in line


def test_edge_labels_carry_trigger_deadlines_and_rules(wm, tmp_path):
    """Labels name the trigger, the timescales it meets or starts, and its rule ids."""
    arrows = {a.transition: a for a in build_diagram(wm, None).arrows}
    assert arrows["icpc_opens"].label.startswith("icpc_opens · ≤15 working days, ≥3 days [")
    assert arrows["icpc_opens"].label.endswith("[WM-8, WM-16, WM-18]")
    assert arrows["strategy_discussion_held"].timing == (
        "≤24 hours", "from here ≤2 days, ≤15 working days")
    # enter/exit events: leaving referral meets the one-day decision
    assert arrows["decide_early_help"].timing[0] == "≤1 working day"
    assert arrows["re_referral"].timing == ("from here ≤1 working day, ≤45 working days",)
    assert arrows["review_opens"].timing == ("≥3 days, ≤3 months, every ≤6 months",)
    assert arrows["core_group_held"].timing == (
        "≤10 working days, every ≤42 days", "from here ≤5 working days")
    assert arrows["book_icpc"].label == "book_icpc · ≤2 days [WM-2a]"
    assert arrows["early_help_ends"].timing == ()
    # A repeating clock with both a minimum and a maximum gap reads as a range.
    path = tmp_path / "wm-core-group-range.yaml"
    path.write_text(textwrap.dedent("""\
        procedure: wm-core-group-range
        extends: west-midlands-2014
        title: Variant
        description: Core groups at least 28 days apart.
        deadlines:
          core_group_interval:
            at_least: {days: 28}
        """))
    ranged = {a.transition: a for a in build_diagram(load_procedure(path), None).arrows}
    assert ranged["core_group_held"].timing == (
        "≤10 working days, every 28–42 days", "from here ≤5 working days")


def test_stage_holds_only_its_states_and_boundary(wm):
    """`icpc`: its own states, plus the states outside that moves come from or go to."""
    diagram = build_diagram(wm, "icpc")
    inside = {s for s in wm.states if s == "icpc" or s.startswith("icpc.")}
    boundary = {"referral", "section_47.icpc_booked", "cp_plan", "child_in_need",
                "family_support"}
    assert set(diagram.boxes) == inside | boundary
    assert {b for b, box in diagram.boxes.items() if box.kind == "boundary"} == boundary
    assert diagram.roots[0] == "icpc" and diagram.initial is None
    for text in (to_mermaid(wm, "icpc"), to_dot(wm, "icpc")):
        assert "strategy_discussion" not in text and "re_referral" not in text
        assert "assessment" not in text and "early_help" not in text
    assert declared_ids(to_mermaid(wm, "icpc")) == inside | boundary
    assert dot_nodes(to_dot(wm, "icpc")) == inside | boundary
    mermaid = to_mermaid(wm, "icpc")
    assert "class b_referral,b_section_47__icpc_booked,b_cp_plan,b_child_in_need," \
        "b_family_support boundary" in mermaid
    assert "b_section_47__icpc_booked --> icpc : proceed_to_icpc [WM-3]" in mermaid
    assert "b_referral --> icpc : transfer_in" in mermaid


def test_stage_can_be_a_leaf_or_a_unique_name(wm):
    """A leaf stage shows itself and its neighbours; a unique short name is accepted."""
    diagram = build_diagram(wm, "referral")
    assert diagram.initial == "referral"
    assert {b for b, box in diagram.boxes.items() if box.kind == "boundary"} == {
        "closed", "early_help", "assessment", "strategy_discussion", "icpc"}
    assert build_diagram(wm, "review_conference").stage == "cp_plan.review_conference"


def test_moves_from_an_enclosing_state_leave_from_the_stage():
    """Newcastle's distribution is internal and allowed from all of `cp_plan`; a stage inside
    it shows the move as its own (internal, listed) loop."""
    proc = load_procedure("newcastle-2010")
    diagram = build_diagram(proc, "cp_plan.active")
    loops = {a.transition for a in diagram.loops_of("cp_plan.active")}
    assert {"decisions_distributed", "minutes_distributed"} <= loops
    internal = next(a for a in diagram.arrows if a.transition == "minutes_distributed")
    assert internal.internal and internal.head.endswith("(internal)")
    assert "cp_plan" not in diagram.boxes


def test_regions_are_their_own_composite_and_cluster():
    """The Walsall resolution ladder is drawn as its own region beside the main flow."""
    proc = load_procedure("walsall-2018-resolution")
    mermaid, dot = to_mermaid(proc, None), to_dot(proc, None)
    assert "state resolution {" in mermaid and "[*] --> resolution__idle" in mermaid
    assert "region resolution runs beside the main flow" in mermaid
    assert 'subgraph "cluster_resolution"' in dot and "resolution (parallel region)" in dot
    assert declared_ids(mermaid) == set(proc.states)
    assert dot_nodes(dot) == set(proc.states)
    assert build_diagram(proc, None).roots[-1] == "resolution"


def test_unknown_stage_is_an_input_error_with_a_suggestion(wm):
    """A misspelt stage names the procedure file and suggests the closest state."""
    for render in (to_mermaid, to_dot):
        with pytest.raises(InputError) as info:
            render(wm, "icpcc")
        (problem,) = info.value.problems
        assert problem.hint == "icpc" and problem.field == "--stage"
        assert problem.file.endswith("west-midlands-2014.yaml")
        assert "did you mean 'icpc'?" in str(problem)
    with pytest.raises(InputError, match="ambiguous"):
        build_diagram(wm, "session")


@pytest.mark.parametrize("name", available_procedures())
def test_every_shipped_procedure_draws_as_text(name):
    """Every shipped procedure (and each of its top-level stages) gives both formats."""
    proc = load_procedure(name)
    for stage in [None, *(s for s, st in proc.states.items() if st.parent is None)]:
        mermaid, dot = to_mermaid(proc, stage), to_dot(proc, stage)
        assert "stateDiagram-v2" in mermaid and dot.startswith("digraph")
        assert dot.count("{") == dot.count("}")


# -- escaping ------------------------------------------------------------------------------

AWKWARD = 'He said "no"; 100% sure: {a} #1 <b> back\\slash'


@pytest.fixture()
def awkward(tmp_path: Path):
    path = tmp_path / "awkward.yaml"
    path.write_text(textwrap.dedent("""\
        procedure: awkward
        extends: west-midlands-2014
        title: 'He said "no"; 100% sure: {a} #1 <b> back\\slash'
        states:
          referral:
            summary: |-
              A "quoted" referral;
              on two lines \\ with a backslash.
        transitions:
          icpc_opens:
            summary: 'The chair says "go": the conference sits.'
        """))
    return load_procedure(path)


def dot_strings_are_well_formed(text: str) -> None:
    """Every line of DOT has its quoted strings closed, with only escaped quotes inside."""
    for line in text.splitlines():
        stripped = re.sub(r'"(?:[^"\\]|\\.)*"', "", line)
        assert '"' not in stripped, line


def test_dot_escapes_quotes_backslashes_and_newlines(awkward):
    """Quotes, backslashes and line breaks from the file cannot break out of a DOT string."""
    text = to_dot(awkward, None)
    dot_strings_are_well_formed(text)
    assert 'label="He said \\"no\\"; 100% sure: {a} #1 <b> back\\\\slash"' in text
    assert 'tooltip="A \\"quoted\\" referral; on two lines \\\\ with a backslash."' in text
    assert 'tooltip="The chair says \\"go\\": the conference sits."' in text
    assert text.count("{") - text.count("{a}") == text.count("}") - text.count("{a}")
    dot_strings_are_well_formed(to_dot(awkward, "referral"))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graphviz_accepts_the_escaped_dot(awkward, tmp_path):
    """Where Graphviz happens to be installed, it parses the output (never required)."""
    for stage in (None, "icpc", "referral"):
        result = subprocess.run(["dot", "-Tsvg"], input=to_dot(awkward, stage), text=True,
                                capture_output=True, check=False)
        assert result.returncode == 0, result.stderr


def test_mermaid_escapes_labels_and_title(awkward):
    """The title is a JSON (YAML) string; summaries stay on one comment line each."""
    text = to_mermaid(awkward, None)
    title_line = text.splitlines()[1]
    assert json.loads(title_line.removeprefix("title: ")) == AWKWARD
    comment = next(line for line in text.splitlines() if line.strip().startswith("%% referral:"))
    assert comment.strip() == ('%% referral: A "quoted" referral; on two lines \\ with a '
                               "backslash.")
    for line in text.splitlines()[3:]:
        if line.strip().startswith("%%"):
            continue
        labels = re.findall(r'state "([^"]*)" as', line)
        assert all('"' not in label for label in labels)
        if " : " in line:
            assert ";" not in line.split(" : ", 1)[1]


def test_mermaid_text_uses_entity_codes():
    """Characters that end or confuse a Mermaid statement become entity codes."""
    assert mermaid_text(AWKWARD) == (
        "He said #quot;no#quot;#59; 100#37; sure#58; #123;a#125; #35;1 #lt;b#gt; back\\slash")
    assert mermaid_text("two\nlines") == "two lines"
    assert dot_text('a "b"\nc \\ d') == 'a \\"b\\"\\nc \\\\ d'
