"""Loader: normalise, validate, construct; every problem at once with file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from model.errors import InputError
from model.loader import available_procedures, load_procedure

FIXTURES = Path(__file__).parent / "fixtures"


def problems_of(path: Path | str) -> list[str]:
    with pytest.raises(InputError) as info:
        load_procedure(path)
    return [str(p) for p in info.value.problems]


def test_every_shipped_procedure_loads():
    """Each shipped procedure validates and is frozen."""
    names = available_procedures()
    assert "west-midlands-2014" in names and len(names) >= 4
    for name in names:
        proc = load_procedure(name)
        assert proc.id == name
        assert proc.transitions and proc.states


def test_bad_file_reports_every_problem_at_once_with_lines():
    """Unknown state, unknown rule, negative deadline and key typo: all four, each with a line."""
    found = problems_of(FIXTURES / "bad-procedure.yaml")
    text = "\n".join(found)
    assert "bad-procedure.yaml:15: transitions.decide.dest: unknown state" in text
    assert "did you mean 'closed'?" in text
    assert "bad-procedure.yaml:16: transitions.decide.rules[0]: unknown rule id" in text
    assert "'WM-99'" in text
    assert "bad-procedure.yaml:21: transitions.reopen.sumary: unknown key" in text
    assert "did you mean 'summary'?" in text
    assert "bad-procedure.yaml:26: deadlines.decision.within.working_days: must be positive" in text
    assert len(found) == 4


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def test_variant_overrides_one_deadline_in_a_few_lines(tmp_path):
    """A policy variant of a few lines changes just the ICPC timescale."""
    path = write(tmp_path, "icpc-ten", """\
        procedure: icpc-ten
        extends: west-midlands-2014
        title: ICPC in ten working days
        deadlines:
          icpc_held:
            within: {working_days: 10}
        """)
    variant = load_procedure(path)
    base = load_procedure("west-midlands-2014")
    held = {d.id: d for d in variant.deadlines}["icpc_held"]
    assert str(held.within) == "10 working days"
    assert held.rules == {d.id: d for d in base.deadlines}["icpc_held"].rules
    assert len(variant.transitions) == len(base.transitions)
    assert variant.extends == ("west-midlands-2014", "national-core-2013")


def test_variant_can_remove_an_element_and_is_then_validated(tmp_path):
    """Removing a state that transitions still use is reported, not silently accepted."""
    path = write(tmp_path, "no-family-support", """\
        procedure: no-family-support
        extends: west-midlands-2014
        title: Without family support plans
        states:
          family_support: {remove: true}
        """)
    found = problems_of(path)
    assert any("unknown state" in p and "family_support" in p for p in found)


def test_unknown_extends_gets_did_you_mean(tmp_path):
    """A misspelt base procedure is named with the closest shipped one."""
    path = write(tmp_path, "typo", """\
        procedure: typo
        extends: west-midlands-2041
        title: x
        """)
    found = problems_of(path)
    assert len(found) == 1 and "did you mean 'west-midlands-2014'?" in found[0]


def test_yaml_syntax_error_names_the_line(tmp_path):
    """Broken YAML is one clear problem with its line, no traceback."""
    path = tmp_path / "broken.yaml"
    path.write_text("procedure: broken\nstates: [a, b\n")
    found = problems_of(path)
    assert len(found) == 1 and "not valid YAML" in found[0]


def test_yaml_is_loaded_safely(tmp_path):
    """A Python object tag is refused, never constructed."""
    path = tmp_path / "evil.yaml"
    path.write_text("procedure: !!python/object/apply:os.system ['echo hi']\n")
    found = problems_of(path)
    assert "not valid YAML" in found[0]


def test_duplicate_keys_are_errors(tmp_path):
    """A key written twice is reported rather than one copy silently winning."""
    path = tmp_path / "dup.yaml"
    path.write_text("procedure: dup\nprocedure: dup\n")
    found = problems_of(path)
    assert "dup.yaml:2: procedure: duplicate key" in found[0]


def test_unknown_guard_is_an_error(tmp_path):
    """A guard that is not registered is named with the closest registered guard."""
    path = write(tmp_path, "guarded", """\
        procedure: guarded
        extends: west-midlands-2014
        title: x
        transitions:
          decide_early_help:
            guard: caf_complted
        """)
    found = problems_of(path)
    assert any("no guard of that name" in p and "caf_completed" in p for p in found)


def test_included_sub_machine_is_prefixed():
    """The Wigan flow included as the early-help branch keeps its own states, prefixed."""
    proc = load_procedure("west-midlands-2014-wigan-early-help")
    assert "wigan-2008-change-meetings" in proc.includes
    assert "early_help.closed" in proc.states
    assert proc.states["early_help"].is_compound
    assert "arbitration" in proc.regions
    assert any(t.id.startswith("early_help.") for t in proc.transitions)


def test_procedure_ids_cite_only_known_rules():
    """Every rule cited by a shipped procedure exists in the registry."""
    from model.rules import load_rules

    rules = load_rules()
    for name in available_procedures():
        for rid in load_procedure(name).rule_ids():
            assert rid in rules, (name, rid)


def test_cin_flat_mapping_is_inherited_and_overridden():
    """The core declares the CIN-flat mapping; a protocol extending it inherits it and changes
    one entry's activities; a procedure that declares none has none."""
    from model.spec import CIN_EVENT_TYPES, EventRef

    core = load_procedure("national-core-2013")
    wm = load_procedure("west-midlands-2014")
    assert core.cin_flat is not None and wm.cin_flat is not None
    assert [c.type for c in wm.cin_flat] == [c.type for c in core.cin_flat] == list(
        CIN_EVENT_TYPES)
    icpc = {c.type: c for c in wm.cin_flat}["icpc"]
    assert icpc.events == (EventRef("enter", "icpc.session"),)  # the core's
    assert icpc.activities == ("icpc_opens", "sit_without_reports")  # West Midlands' own
    assert icpc.origin.file.endswith("west-midlands-2014.yaml")
    assert {c.type: c for c in core.cin_flat}["icpc"].activities == ("icpc_opens",)
    assert load_procedure("wigan-2008-change-meetings").cin_flat is None


def test_cin_flat_mapping_errors_name_file_line_and_field(tmp_path):
    """Every mistake in a cin_flat block is reported at once, with its line and a suggestion."""
    path = write(tmp_path, "bad-map", """\
        procedure: bad-map
        extends: west-midlands-2014
        title: x
        cin_flat:
          icpcc: {events: [{enter: icpc.session}]}
          closure: {events: [{enter: clsoed}]}
          review: {activities: [review_open, icpc_opens]}
          cp_plan_end: {events: [{exit: cp_plan}], activity: [x]}
          s47_start: {events: []}
        """)
    found = problems_of(path)
    text = "\n".join(found)
    assert "bad-map.yaml:5: cin_flat.icpcc: unknown CIN-flat event type" in text
    assert "did you mean 'icpc'?" in text
    assert "bad-map.yaml:6: cin_flat.closure.events[0]: unknown state (value: 'clsoed'); " \
           "did you mean 'closed'?" in text
    assert "bad-map.yaml:7: cin_flat.review.activities[0]: unknown trigger (value: " \
           "'review_open'); did you mean 'review_opens'?" in text
    assert "bad-map.yaml:7: cin_flat.review.activities[1]: already stands for icpc" in text
    assert "bad-map.yaml:8: cin_flat.cp_plan_end.activity: unknown key" in text
    assert "bad-map.yaml:9: cin_flat.s47_start.events: must be a non-empty list" in text
    assert len(found) == 6


def test_a_guard_written_as_a_list_or_mapping_is_reported_not_a_crash(tmp_path):
    """`when:` takes one guard name: a list or a mapping there is a problem with its line
    (the loader once failed with "unhashable type" on it)."""
    path = write(tmp_path, "listed-when", """\
        procedure: listed-when
        extends: newcastle-2010
        title: x
        transitions:
          sit_without_reports:
            resources:
              - {role: interpreter, when: [interpreter_needed]}
        deadlines:
          icpc_reports:
            when: {a: 1}
        """)
    found = problems_of(path)
    assert any("listed-when.yaml:7: transitions.sit_without_reports.resources[0].when: no guard "
               "of that name is registered (value: ['interpreter_needed'])" in p for p in found)
    assert any("listed-when.yaml:10: deadlines.icpc_reports.when: no guard of that name "
               "is registered (value: {'a': 1})" in p for p in found)


def test_procedures_that_include_each_other_are_reported_at_the_include(tmp_path):
    """An include cycle is one problem, at the `include:` line of the file that closes it."""
    for name, other in (("loop-a", "loop-b"), ("loop-b", "loop-a")):
        write(tmp_path, name, f"""\
            procedure: {name}
            title: x
            initial: start
            states:
              start:
                include: ./{other}.yaml
                basis: {{kind: assumption, note: The other procedure runs here.}}
            transitions:
              again:
                source: start
                dest: start
                basis: {{kind: assumption, note: It runs again.}}
            """)
    found = problems_of(tmp_path / "loop-a.yaml")
    assert len(found) == 1
    assert found[0].endswith("loop-b.yaml:6: states.start.include: procedures include each other "
                             "in a cycle (value: './loop-a.yaml')")
