"""Citations are promises: the classifier, sources, not_encoded, the trace matrix and its checks.

The fixtures are small procedures of our own (``tests/fixtures/trace/``), never the shipped ones.
"""

from __future__ import annotations

import csv
import io
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.errors import InputError
from model.loader import available_procedures, load_procedure
from model.rules import load_rules
from model.spec import Basis, Deadline, EventRef, Origin, Procedure, Property
from model.trace import (
    CSV_COLUMNS,
    NO_REASON,
    SOURCE_NOT_USED,
    check_encoding,
    citations,
    classify,
    element_kind,
    elements,
    faithfulness_markdown,
    trace,
    trace_csv,
    trace_markdown,
    unenforced,
    used_sources,
)
from model.types import Duration

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "trace"
RULES = load_rules()


def load(name: str) -> Procedure:
    return load_procedure(FIXTURES / f"{name}.yaml")


def problems_of(path: Path) -> list[str]:
    with pytest.raises(InputError) as info:
        load_procedure(path)
    return [str(p) for p in info.value.problems]


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of the first line of ``path`` containing ``needle``."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture(scope="module")
def ok() -> Procedure:
    return load("trace-ok")


def how(procedure: Procedure, element, rule: str) -> tuple[str, ...]:
    return classify(procedure, element, RULES[rule])


HERE = Origin("test", 1)


def deadline(rule: str, start: EventRef, end: EventRef,
             cancelled: tuple[EventRef, ...] = ()) -> Deadline:
    return Deadline("d", start, end, (rule,), "", HERE, within=Duration("days", 5),
                    cancelled_by=cancelled)


def prop(rule: str, **fields) -> Property:
    return Property("p", fields.pop("pattern", "absence"), (rule,), "", HERE, **fields)


def test_fixtures_cite_rules_of_the_kinds_they_assume():
    """The fixtures rely on these registry kinds; if the registry changes, say so plainly."""
    assumed = {"WT-16": "S", "WT-17a": "SQ", "WT-17b": "R", "WT-18": "S", "WT-19": "D",
               "WT-20": "D", "WT-22": "S", "WT-24": "Q", "WIG-6.2": "I", "WIG-7.5": "I",
               "WIG-8.5.1": "D", "WIG-8.7.4": "SI", "CAL-T1": "D"}
    actual = {rid: "".join(RULES[rid].kind) for rid in assumed if rid in RULES}
    assert actual == assumed, "model/rules.yaml changed: update tests/fixtures/trace/"
    assert {r.id for r in RULES.values() if r.source == "WT"} == {
        "WT-16", "WT-17a", "WT-17b", "WT-18", "WT-19", "WT-20", "WT-22", "WT-24"}


# -- the classifier, row by row ---------------------------------------------------------------
def test_deadline_enforces_only_deadline_rules(ok):
    """Row 1: a deadline enforces a D rule as `deadline`, and nothing else."""
    held = ok.deadlines[0]
    assert how(ok, held, "WT-20") == ("deadline",)
    assert how(ok, held, "WT-16") == ()
    assert how(ok, held, "WIG-6.2") == ()


def test_property_always_enforces(ok):
    """Row 2: a property enforces whatever it cites, as `property`."""
    heard = ok.properties[0]
    assert how(ok, heard, "WIG-6.2") == ("property",)
    assert how(ok, heard, "WT-16") == ("property",)
    assert how(ok, heard, "WT-20") == ("property",)


def test_transition_structure_only_for_s_rules(ok):
    """Row 3: a transition enforces an S rule as `structure`; a D rule nothing refers to, not."""
    convene = ok.transition("convene")
    assert how(ok, convene, "WT-22") == ("structure",)
    assert how(ok, convene, "WIG-8.5.1") == ()


def test_transition_resource_needs_resources(ok):
    """Row 4: an R rule is enforced by a transition with `resources`, not by one without."""
    convene = ok.transition("convene")
    assert how(ok, convene, "WT-17b") == ("resource",)
    assert how(ok, replace(convene, resources=()), "WT-17b") == ()


def test_transition_record_needs_records(ok):
    """Row 5: a Q rule is enforced by a transition with `records`, not by one without."""
    decide = ok.transition("decide")
    assert how(ok, decide, "WT-24") == ("record",)
    assert how(ok, replace(decide, records=()), "WT-24") == ()
    assert how(ok, ok.transition("close"), "WT-17a") == ("structure", "record")


@pytest.mark.parametrize("dl", [
    deadline("WT-20", EventRef("trigger", "convene"), EventRef("exit", "meeting")),
    deadline("WT-20", EventRef("enter", "referral"), EventRef("trigger", "convene")),
    deadline("WT-20", EventRef("enter", "referral"), EventRef("enter", "closed"),
             (EventRef("trigger", "convene"),)),
], ids=["starts", "ends", "cancelled"])
def test_transition_deadline_when_a_deadline_citing_it_uses_its_trigger(ok, dl):
    """Row 6: a deadline citing the rule starts, ends or is cancelled by the trigger."""
    proc = replace(ok, deadlines=(dl,))
    assert how(proc, proc.transition("convene"), "WT-20") == ("deadline",)


def test_transition_deadline_negative(ok):
    """Row 6, no: the deadline does not use the trigger, or does not cite the rule."""
    other = deadline("WT-20", EventRef("enter", "referral"), EventRef("exit", "meeting"))
    proc = replace(ok, deadlines=(other,))
    assert how(proc, proc.transition("convene"), "WT-20") == ()
    uncited = replace(ok.deadlines[0], rules=("WT-19",))
    proc = replace(ok, deadlines=(uncited,))
    assert how(proc, proc.transition("convene"), "WT-20") == ()


@pytest.mark.parametrize(("transition", "p"), [
    ("close", prop("WIG-7.5", pattern="precedence", of=EventRef("trigger", "close"),
                   requires=EventRef("trigger", "decide"))),
    ("decide", prop("WIG-7.5", pattern="precedence", of=EventRef("trigger", "close"),
                    requires=EventRef("trigger", "decide"))),
    ("close", prop("WIG-7.5", pattern="final", state="closed")),
    ("convene", prop("WIG-7.5", pattern="never_ends_without", scope="meeting",
                     records_any=(("family_view",),))),
    ("decide", prop("WIG-7.5", pattern="co_recorded", if_records="decision",
                    also=("review_date",))),
    ("close", prop("WIG-7.5", pattern="existence", of=EventRef("exit", "meeting"))),
], ids=["trigger-of", "trigger-requires", "dest-state", "dest-in-scope", "record",
        "source-in-exit-event"])
def test_transition_property_when_a_property_citing_it_refers_to_it(ok, transition, p):
    """Row 7: a property citing the rule refers to the transition (trigger, states, record)."""
    proc = replace(ok, properties=(p,))
    assert how(proc, proc.transition(transition), "WIG-7.5") == ("property",)


def test_transition_property_negative(ok):
    """Row 7, no: the property refers to other moves, or cites another rule."""
    p = prop("WIG-7.5", pattern="co_recorded", if_records="decision", also=("review_date",))
    proc = replace(ok, properties=(p,))
    assert how(proc, proc.transition("convene"), "WIG-7.5") == ()
    assert how(proc, proc.transition("close"), "WIG-7.5") == ()
    proc = replace(ok, properties=(replace(p, rules=("WIG-6.2",)),))
    assert how(proc, proc.transition("decide"), "WIG-7.5") == ()


def test_state_structure_only_for_s_rules(ok):
    """Row 8: a state enforces an S rule as `structure`; a D rule with no deadline, not."""
    referral = ok.states["referral"]
    assert how(ok, referral, "WT-16") == ("structure",)
    assert how(replace(ok, deadlines=()), referral, "WT-19") == ()


@pytest.mark.parametrize("dl", [
    deadline("WT-19", EventRef("trigger", "convene"), EventRef("exit", "meeting")),
    deadline("WT-19", EventRef("enter", "referral"), EventRef("enter", "meeting.decided")),
    deadline("WT-19", EventRef("trigger", "convene"), EventRef("trigger", "decide")),
    deadline("WT-19", EventRef("enter", "referral"), EventRef("enter", "closed"),
             (EventRef("trigger", "close"),)),
], ids=["on-leaving", "entering-a-state-inside", "move-inside", "cancelled-by-move-out"])
def test_state_deadline_on_entering_leaving_or_a_move(ok, dl):
    """Row 9: a deadline citing the rule uses an event of the state or a move touching it."""
    proc = replace(ok, deadlines=(dl,))
    assert how(proc, proc.states["meeting"], "WT-19") == ("deadline",)


def test_state_deadline_negative(ok):
    """Row 9, no: the deadline's events are all elsewhere."""
    dl = deadline("WT-19", EventRef("enter", "referral"), EventRef("enter", "closed"))
    proc = replace(ok, deadlines=(dl,))
    assert how(proc, proc.states["meeting"], "WT-19") == ()
    assert how(proc, proc.states["meeting.sitting"], "WT-19") == ()


@pytest.mark.parametrize("p", [
    prop("WIG-6.2", pattern="never_ends_without", scope="meeting",
         records_any=(("family_view",),)),
    prop("WIG-6.2", pattern="final", state="meeting.decided"),
    prop("WIG-6.2", pattern="monotone", order=("referral", "meeting.sitting")),
    prop("WIG-6.2", pattern="monotone", order=("referral",), exits=("meeting",)),
    prop("WIG-6.2", pattern="response", of=EventRef("trigger", "convene"),
         then=EventRef("exit", "meeting.sitting")),
], ids=["scope", "state-inside", "order", "exits", "exit-event"])
def test_state_property_when_it_refers_to_the_state_or_inside(ok, p):
    """Row 10: a property citing the rule refers to the state or a state inside it."""
    proc = replace(ok, properties=(p,))
    assert how(proc, proc.states["meeting"], "WIG-6.2") == ("property",)


def test_state_property_negative(ok):
    """Row 10, no: a property about an enclosing state does not refer to a state inside it."""
    assert how(ok, ok.states["meeting"], "WIG-6.2") == ("property",)
    assert how(ok, ok.states["meeting.sitting"], "WIG-6.2") == ()
    assert how(ok, ok.states["referral"], "WIG-6.2") == ()


def test_state_resource_and_record_through_its_moves(ok):
    """Row 11: a move into, out of or inside the state cites the rule and has resources/records."""
    meeting = ok.states["meeting"]
    assert how(ok, meeting, "WT-17b") == ("resource",)
    assert how(ok, meeting, "WT-24") == ("record",)
    assert how(ok, ok.states["closed"], "WT-17a") == ("structure", "record")


def test_state_resource_and_record_negative(ok):
    """Row 11, no: the move has no resources (records), or does not touch the state."""
    no_resources = replace(ok, transitions=tuple(
        replace(t, resources=()) for t in ok.transitions))
    assert how(no_resources, no_resources.states["meeting"], "WT-17b") == ()
    no_records = replace(ok, transitions=tuple(replace(t, records=()) for t in ok.transitions))
    assert how(no_records, no_records.states["meeting"], "WT-24") == ()
    assert how(ok, ok.states["referral"], "WT-24") == ()


def test_region_is_classified_as_a_state(ok):
    """A region's root enforces an S rule as structure, and is named a region."""
    region = ok.states["oversight"]
    assert element_kind(region) == "region"
    assert how(ok, region, "WT-18") == ("structure",)
    assert how(ok, region, "WT-19") == ()


LETTER = {"structure": "S", "deadline": "D", "property": "I", "record": "Q", "resource": "R"}


@given(element_index=st.integers(min_value=0, max_value=100),
       rule=st.sampled_from(sorted(RULES)))
def test_classify_only_uses_the_rules_own_kinds(element_index, rule):
    """Property: an enforcement kind needs its letter among the rule's kinds (a property's own
    citations apart, which always enforce)."""
    proc = load("trace-ok")
    items = list(elements(proc))
    element = items[element_index % len(items)]
    kinds = classify(proc, element, RULES[rule])
    for kind in kinds:
        assert LETTER[kind] in RULES[rule].kind or (
            kind == "property" and element_kind(element) == "property")


# -- unenforced citations and the loader -----------------------------------------------------------
def test_every_citation_of_the_ok_fixture_is_enforced(ok):
    """The ok fixture loads, and the classifier finds no unenforced citation in it."""
    assert unenforced(ok) == []
    assert all(c.how for c in citations(ok))


def test_unenforced_explains_what_would_make_it_valid(ok):
    """Taking away the property makes the transition's I citation unenforced, with the fix."""
    proc = replace(ok, properties=ok.properties[:1] + ok.properties[2:])
    found = unenforced(proc)
    assert [(u.element_kind, u.element_id, u.rule) for u in found] == [
        ("transition", "decide", "WIG-7.5")]
    assert found[0].message.startswith(
        "cites WIG-7.5 (kind I) but does not enforce it here: no property citing WIG-7.5 "
        "refers to this transition")
    assert "declare a property citing WIG-7.5" in found[0].message
    assert "stop citing WIG-7.5 on this transition" in found[0].message


def test_unclassifiable_citations_fail_to_load_with_file_and_line():
    """Both unenforced citations are reported together, each at its rule's line."""
    path = FIXTURES / "trace-unenforced.yaml"
    found = problems_of(path)
    assert len(found) == 2
    transition_line = line_of(path, "rules: [WT-22, WIG-6.2]")
    deadline_line = line_of(path, "closed_soon:") + 4
    assert path.read_text().splitlines()[deadline_line - 1].strip() == "rules: [WT-16]"
    assert (f"trace-unenforced.yaml:{transition_line}: transitions.close.rules[1]: cites "
            "WIG-6.2 (kind I) but does not enforce it here: no property citing WIG-6.2 refers "
            "to this transition") in found[0]
    assert (f"trace-unenforced.yaml:{deadline_line}: deadlines.closed_soon.rules[0]: cites "
            "WT-16 (kind S) but does not enforce it here: a deadline enforces only deadline "
            "(D) rules") in found[1]


def test_basis_only_elements_load(ok):
    """A state, region state or transition may rest on a basis alone, or carry both."""
    decided = ok.states["meeting.decided"]
    assert decided.rules == () and decided.basis == Basis(
        "assumption", "A decided meeting waits for closure so the record can be finished.")
    assert ok.states["oversight.watching"].basis is not None
    convene = ok.transition("convene")
    assert convene.rules and convene.basis is not None
    assert convene.basis.kind == "local-standard"


def test_element_with_neither_rules_nor_basis_fails_and_basis_is_validated():
    """No rules and no basis is an error; a basis needs a known kind and a note."""
    path = FIXTURES / "trace-bad-basis.yaml"
    found = problems_of(path)
    text = "\n".join(found)
    # The line of the state's mapping (its first key), as for every missing `rules`.
    assert (f"trace-bad-basis.yaml:{line_of(path, 'open:') + 1}: states.open.rules: every "
            "element cites the rule ids it encodes") in text
    basis_line = line_of(path, "basis: {kind: asumption}")
    assert (f"trace-bad-basis.yaml:{basis_line}: transitions.close.basis.kind: must be "
            "assumption or local-standard (value: 'asumption'); did you mean 'assumption'?") in text
    assert f"trace-bad-basis.yaml:{basis_line}: transitions.close.basis.note: is required" in text
    assert len(found) == 3


def test_rule_of_an_undeclared_source_fails():
    """Citing a CAL rule with `sources: [WT]` names the rule, the source and the element."""
    path = FIXTURES / "trace-undeclared-source.yaml"
    found = problems_of(path)
    assert found == [
        f"{found[0].split(':')[0]}:{line_of(path, 'rules: [CAL-T1]')}: "
        "deadlines.closed_soon.rules[0]: cites CAL-T1 of source CAL, which is not in "
        "`sources` (WT): add CAL to `sources` (if this procedure draws on it) or stop citing "
        "CAL-T1 (value: 'CAL-T1')"]


def test_bad_sources_and_not_encoded_fail_together():
    """Unknown source code, unknown rule id in not_encoded, and a missing reason."""
    path = FIXTURES / "trace-bad-top.yaml"
    text = "\n".join(problems_of(path))
    assert (f"trace-bad-top.yaml:{line_of(path, 'sources:')}: sources[1]: unknown source code"
            in text)
    assert "did you mean 'WIG'?" in text
    assert (f"trace-bad-top.yaml:{line_of(path, 'WT-99')}: not_encoded.WT-99: unknown rule id"
            in text)
    assert (f"trace-bad-top.yaml:{line_of(path, 'WT-24:')}: not_encoded.WT-24: needs the "
            "reason" in text)


def test_sources_are_inherited_replaced_and_unioned(tmp_path):
    """extends inherits sources unless it gives its own (which replace them); include adds."""
    assert load("trace-ok").sources == ("WT", "WIG")
    assert load("trace-inherits").sources == ("WT", "WIG")
    includer = load("trace-includer")
    assert includer.sources == ("WT", "CAL")
    assert includer.states["work"].rules == ("CAL-T1",)
    assert dict(includer.not_encoded) == {"CAL-T2": "No assessment in this sub-procedure.",
                                          "CAL-T3": "No visits in this sub-procedure."}
    citing = write(tmp_path, "citing", f"""\
        procedure: citing
        extends: {FIXTURES / 'trace-includer.yaml'}
        title: Includer that encodes CAL-T2 itself
        deadlines:
          assessed:
            from: {{enter: start}}
            to: {{exit: work}}
            within: {{working_days: 45}}
            rules: [CAL-T2]
        """)
    assert set(load_procedure(citing).not_encoded) == {"CAL-T3"}
    narrower = write(tmp_path, "narrower", f"""\
        procedure: narrower
        extends: {FIXTURES / 'trace-ok.yaml'}
        title: Only Working Together
        sources: [WT]
        """)
    text = "\n".join(problems_of(narrower))
    assert "cites WIG-6.2 of source WIG, which is not in `sources` (WT)" in text


def test_no_sources_loads_as_every_cited_source():
    """Back-compat: without `sources`, every source it cites is used."""
    proc = load("trace-no-sources")
    assert proc.sources == ()
    assert used_sources(proc) == ("WIG", "WT")


# -- the matrix and the checks -------------------------------------------------------------------
def test_trace_has_one_row_per_registry_rule_with_status_and_reason(ok):
    """Encoded rows name the elements and how; others give their reason."""
    matrix = trace(ok)
    rows = {r.rule: r for r in matrix.rows}
    assert set(rows) == set(RULES) and len(matrix.rows) == len(RULES)
    wt16 = rows["WT-16"]
    assert wt16.status == "encoded"
    assert [(e.element_kind, e.element_id, e.how) for e in wt16.encodings] == [
        ("state", "referral", ("structure",))]
    assert wt16.encodings[0].origin.file.endswith("trace-ok.yaml")
    assert rows["WIG-8.5.1"].status == "not encoded"
    assert rows["WIG-8.5.1"].reason == "Review notes are not modelled here."
    assert rows["WM-1a"].reason == SOURCE_NOT_USED
    assert matrix.failures == ()
    counts = {c.source: c for c in matrix.counts}
    assert (counts["WT"].encoded, counts["WT"].not_encoded) == (8, 0)
    assert (counts["WIG"].encoded, counts["WIG"].not_encoded) == (3, 6)
    assert dict(counts["WT"].by_how)["resource"] == 1
    assert not counts["WM"].used
    assert [(b.element_kind, b.element_id) for b in matrix.bases] == [
        ("state", "meeting.decided"), ("region", "oversight"),
        ("state", "oversight.watching"), ("transition", "convene")]


def test_check_findings_for_an_unlisted_rule_and_a_cited_listed_rule():
    """A used source's rule neither enforced nor listed; a rule both cited and listed."""
    gaps = load("trace-gaps")
    rows = {r.rule: r for r in trace(gaps).rows}
    assert rows["WIG-8.7.2"].failure and rows["WIG-8.7.2"].reason == NO_REASON
    assert rows["WT-16"].conflict
    findings = check_encoding(gaps)
    assert [(f.check, f.severity, f.rules) for f in findings] == [
        ("encoding", "error", ("WIG-8.7.2",)), ("encoding", "error", ("WT-16",))]
    assert "neither enforced by any element nor listed in `not_encoded`" in findings[0].message
    assert "listed in `not_encoded` but enforced by state referral" in findings[1].message
    assert check_encoding(load("trace-ok")) == []


def test_check_asks_for_sources_when_none_are_declared():
    """No `sources:` is a finding that says to declare them."""
    findings = check_encoding(load("trace-no-sources"))
    assert len(findings) == 1
    assert findings[0].message.startswith("declare sources:")
    assert "sources: [WIG, WT]" in findings[0].message


@given(st.sets(st.sampled_from(["WIG-6.1.1", "WIG-6.1.2", "WIG-8.5.1", "WIG-8.6",
                                "WIG-8.7.2", "WIG-8.7.3"])))
def test_unlisting_rules_makes_exactly_them_failures(dropped):
    """Property: dropping reasons from not_encoded fails exactly those rules, nothing else."""
    proc = load("trace-ok")
    kept = {k: v for k, v in proc.not_encoded.items() if k not in dropped}
    proc = replace(proc, not_encoded=kept)
    assert {r.rule for r in trace(proc).failures} == dropped
    assert {f.rules[0] for f in check_encoding(proc)} == dropped


# -- renderers -----------------------------------------------------------------------------------
def test_markdown_lists_every_rule_and_escapes_file_text(ok):
    """One table row per rule; text from the file cannot open HTML in the Markdown."""
    text = trace_markdown(trace(ok))
    assert text.count("\n| `") == len(RULES)
    assert "| `WT-16` | WT | S | encoded | state `referral` (structure) at trace-ok.yaml:" in text
    assert "| `WM-1a` | WM | D | not encoded | source not used by this procedure |" in text
    assert "<script>" not in text and "&lt;script&gt;" in text


def test_csv_has_a_line_per_encoding_and_per_rule_not_encoded(ok):
    """CSV: header, then one line per (rule, element) or per rule not encoded."""
    rows = list(csv.DictReader(io.StringIO(trace_csv(trace(ok)))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert {r["rule"] for r in rows} == set(RULES)
    wt17b = [r for r in rows if r["rule"] == "WT-17b"]
    assert [(r["element_kind"], r["element_id"], r["how"]) for r in wt17b] == [
        ("state", "meeting", "resource"), ("transition", "convene", "resource")]
    assert next(r for r in rows if r["rule"] == "WM-1a")["reason"] == SOURCE_NOT_USED


def test_docs_trace_is_current():
    """docs/trace/PROCEDURE.md is what `cpsim trace --all --out-dir docs/trace` writes now."""
    folder = ROOT / "docs" / "trace"
    stale = []
    for name in available_procedures():
        expected = trace_markdown(trace(load_procedure(name)))
        path = folder / f"{name}.md"
        if not path.is_file() or path.read_text(encoding="utf-8") != expected:
            stale.append(name)
    matrices = [trace(load_procedure(name)) for name in available_procedures()]
    index = folder / "README.md"
    if not index.is_file() or faithfulness_markdown(matrices) not in index.read_text("utf-8"):
        stale.append("README (the index)")
    extra = sorted(p.stem for p in folder.glob("*.md")) if folder.is_dir() else []
    extra = [n for n in extra if n not in available_procedures() and n != "README"]
    assert not stale and not extra, (
        f"docs/trace is stale for {stale} (and has {extra} for no shipped procedure): run "
        "`cpsim trace --all --out-dir docs/trace`")


def test_readme_faithfulness_table_is_current():
    """The README's "How faithful is it" table is what `cpsim trace --all` computes now."""
    matrices = [trace(load_procedure(name)) for name in available_procedures()]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert faithfulness_markdown(matrices) in readme, (
        "README's faithfulness table is stale: copy docs/trace/README.md's table into it")
