"""`cpsim explore`: the procedure in a browser, tested in a real headless Chromium.

The browser is Debian's Chromium driven by Playwright (`make browser` installs it; `make test`
does so first). When it is missing the browser tests FAIL with a message saying how to get
it: they are never skipped.
"""

from __future__ import annotations

import io
import random
import re
from datetime import date, time, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cpsim.cli import main
from model.calendar import WorkingCalendar
from model.compiler import CompiledProcedure
from model.graph import build_graph
from model.guards import FACTS, GUARDS, GuardContext, evaluate
from model.loader import available_procedures, load_procedure
from model.rules import load_rules
from model.types import Duration
from reports import explore
from reports.explore import (
    GuardNotTabulable,
    build_explorer,
    clean_svg,
    diagram_markup,
    embed_json,
    export_graph,
    guard_tables,
    read_tags,
    tabulate_guard,
)

START = date(2025, 4, 17)  # the Thursday before Good Friday: bank holidays matter at once
XSS = "<script>alert(1)</script>"


# -- set-up ------------------------------------------------------------------------------------


class Opened:
    """A page opened from a file, recording dialogs, script errors and every request."""

    def __init__(self, browser, path: Path, width: int = 1600, height: int = 1000):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console",
                     lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        self.page.on("request", lambda req: self.requests.append(req.url))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url)

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def close(self):
        self.context.close()


@pytest.fixture
def opened(browser):
    pages: list[Opened] = []

    def open_page(path: Path, **kwargs) -> Opened:
        pages.append(Opened(browser, path, **kwargs))
        return pages[-1]

    yield open_page
    for p in pages:
        assert not p.errors, f"script errors on the page: {p.errors}"
        p.close()


@pytest.fixture(scope="module")
def wm_page(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("explore") / "explore-wm.html"
    return build_explorer(load_procedure("west-midlands-2014"), path, START)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Explorer pages of several procedures, built once."""
    folder = tmp_path_factory.mktemp("explore-all")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = build_explorer(load_procedure(name), folder / f"{name}.html", START)
        return built[name]

    return get


# -- helpers -----------------------------------------------------------------------------------


def leaves_shown(page) -> list[str]:
    return page.eval_on_selector_all("#current .leaf", "els => els.map(e => e.textContent)")


def highlighted(page) -> set[str]:
    return set(page.eval_on_selector_all(
        "#diagram .cpsim-state.current", "els => els.map(e => e.getAttribute('data-state'))"))


def deadline_rows(page) -> dict[str, dict[str, str]]:
    return {row["id"]: row for row in page.eval_on_selector_all(
        "#deadlines tbody tr",
        """rows => rows.map(r => ({id: r.getAttribute('data-deadline'),
                                   due: r.getAttribute('data-due'),
                                   dueText: r.querySelector('.due').textContent,
                                   rules: r.children[1].textContent,
                                   status: r.querySelector('.status').textContent}))""")}


def due_day(calendar: WorkingCalendar, due: float) -> date:
    """The last day a deadline allows: the day before when it is due at midnight."""
    when = calendar.to_datetime(due)
    return when.date() - timedelta(days=1) if when.time() == time(0) else when.date()


def click(page, trigger: str) -> None:
    button = page.locator(f'#actions button[data-trigger="{trigger}"]')
    assert button.count() == 1, f"no button for {trigger}; current {leaves_shown(page)}"
    assert button.is_enabled(), f"{trigger} is not allowed now"
    button.click()


def wait_button(page, kind: str) -> None:
    page.click(f'button[data-wait="{kind}"]')


# -- Python side: guards, graph, JSON, SVG -----------------------------------------------------


def sample_contexts(n: int, seed: int = 7) -> list[GuardContext]:
    rng = random.Random(seed)
    keys = sorted({k for t in guard_tables().values() for k in (*t.counts, *t.episode)}
                  | {"review_due", "icpc_opens"})
    contexts = []
    for _ in range(n):
        facts = {f: rng.random() < 0.5 for f in FACTS if rng.random() < 0.8}
        counts = {k: rng.choice([0, 1, 2, 3, 4, 5, 8, 13, 40])
                  for k in keys if rng.random() < 0.7}
        episode = {k: rng.choice([0, 1, 2, 3, 3, 4, 7, 9, 25])
                   for k in keys if rng.random() < 0.7}
        contexts.append(GuardContext(facts, counts, episode))
    return contexts


def test_guard_tables_agree_with_python_guards():
    tables = guard_tables()
    assert set(tables) == set(GUARDS)
    for ctx in sample_contexts(3000):
        for name, table in tables.items():
            assert table.holds(ctx) == evaluate(name, ctx), (name, ctx)


def test_guard_tables_follow_each_guards_declaration():
    designated = tabulate_guard("designated_review_due")
    assert designated.facts == ()
    assert designated.episode == ("designated_review_opens", "review_opens")
    assert designated.cap == 4 and len(designated.table) == 5 * 5
    notice = tabulate_guard("standard_notice")
    assert notice.facts == ("parent_learning_disability", "interpreter_needed")
    assert (notice.cap, notice.table) == (0, "1000")


def test_guard_tables_reach_a_far_declared_threshold_and_refuse_a_huge_one(monkeypatch):
    import model.guards
    from model.guards import Guard

    registry = dict(GUARDS)
    registry["far_threshold"] = Guard(
        "far_threshold", lambda ctx: ctx.counts.get("review_due", 0) >= 20, "x",
        counts=frozenset({"review_due"}), saturates_at=20)
    registry["exactly_twenty"] = Guard(
        "exactly_twenty", lambda ctx: ctx.episode.get("review_due", 0) == 20, "x",
        facts=frozenset({"caf_completed"}), episode=frozenset({"review_due"}), saturates_at=21)
    registry["huge"] = Guard(
        "huge", lambda ctx: False, "x", facts=frozenset(model.guards.FACTS),
        counts=frozenset({"a", "b", "c"}), episode=frozenset({"a", "b"}), saturates_at=20)
    monkeypatch.setattr(explore, "GUARDS", registry)
    monkeypatch.setattr(model.guards, "GUARDS", registry)
    for name in ("far_threshold", "exactly_twenty"):
        table = tabulate_guard(name)
        assert table.cap == registry[name].saturates_at
        for n in (0, 19, 20, 21, 63, 64, 500):
            for caf in (False, True):
                ctx = GuardContext({"caf_completed": caf}, {"review_due": n}, {"review_due": n})
                assert table.holds(ctx) == registry[name].fn(ctx), (name, n)
    with pytest.raises(GuardNotTabulable, match="too many facts and counts"):
        tabulate_guard("huge")


@pytest.mark.parametrize("name", ["west-midlands-2014", "walsall-2018-resolution"])
def test_exported_moves_are_the_compiled_machines(name):
    """Walking the compiled machine, every node's exported moves are its options, in order."""
    proc = load_procedure(name)
    graph = export_graph(proc)
    index = {tuple(n["config"]): i for i, n in enumerate(graph["nodes"])}
    assert len(index) == build_graph(proc).graph.number_of_nodes()
    compiled = CompiledProcedure(proc, WorkingCalendar(START))
    rng = random.Random(3)
    for walk in range(15):
        facts = {f: rng.random() < 0.5 for f in FACTS}
        case, _ = compiled.new_case(f"c{walk}", facts)
        at = 0.0
        for _ in range(40):
            node = graph["nodes"][index[compiled.configuration(case)]]
            exported = [graph["edges"][i]["transition"] for i in node["options"]]
            exported += [w["transition"] for w in node["waiting"]]
            assert exported == [o.transition.id for o in compiled.options(case)]
            allowed = compiled.allowed_triggers(case)
            if not allowed:
                break
            at += 24.0
            compiled.fire(case, rng.choice(allowed), at)


def test_embedded_json_cannot_close_its_script_element():
    text = embed_json({"a": "</script><script>alert(1)</script>", "b": "<!-- & -->",
                       "c": "\u2028"})
    assert "<" not in text and ">" not in text and "&" not in text
    import json
    assert json.loads(text)["a"] == "</script><script>alert(1)</script>"


def test_clean_svg_keeps_drawing_and_drops_everything_else():
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
           'width="10pt"><metadata>http://example.org</metadata><style>*{}</style>'
           '<script>alert(1)</script><foreignObject><div>x</div></foreignObject>'
           '<g id="keep" onclick="alert(1)"><path d="M 0 0" style="fill: url(http://x/y)"/>'
           '<use xlink:href="#glyph"/><use xlink:href="http://x/#a"/></g>'
           '<g id="tag"><path d="M 1 1" clip-path="url(#p1)"/></g><!-- c --></svg>')
    out = clean_svg(svg, {"tag": ("move", "t1", 'a"b')})
    assert out == ('<svg width="10pt"><g id="keep"><path d="M 0 0"></path>'
                   '<use xlink:href="#glyph"></use><use></use></g>'
                   '<g class="cpsim-move" data-transition="t1" data-trigger="a&quot;b">'
                   '<path d="M 1 1" clip-path="url(#p1)"></path></g></svg>')


@pytest.mark.parametrize("name", available_procedures())
def test_every_state_and_move_is_tagged_on_the_diagram(name):
    """The tags come from the ids the drawing gives: nothing is left out as ambiguous."""
    proc = load_procedure(name)
    drawn = diagram_markup(proc)
    assert drawn.states == set(proc.states)
    assert drawn.transitions == {t.id for t in proc.transitions}
    triggers = {t.id: t.trigger for t in proc.transitions}
    for transition, trigger in re.findall(r'data-transition="([^"]*)" data-trigger="([^"]*)"',
                                          drawn.svg):
        assert triggers[transition] == trigger
    assert "http" not in drawn.svg and "<script" not in drawn.svg


def test_tags_are_read_from_the_drawings_ids():
    """A state's box and name and a move's label parts are marked; nothing else is."""
    proc = load_procedure("west-midlands-2014")
    plan = next(t for t in proc.transitions if t.id == "plan_agreed")
    svg = ('<svg xmlns="http://www.w3.org/2000/svg">'
           '<g id="state:icpc.session:box"/><g id="state:icpc.session:name"/>'
           '<g id="state:closed:ring"/><g id="state:closed:7:box"/><g id="state:cp_plan:list"/>'
           '<g id="transition:plan_agreed:3:label"/><g id="transition:plan_agreed:3:listed"/>'
           '<g id="transition:plan_agreed:3:edge"/><g id="start:referral:dot"/>'
           '<g id="patch_1"/></svg>')
    assert read_tags(svg, proc) == {
        "state:icpc.session:box": ("state", "icpc.session", ""),
        "state:icpc.session:name": ("state", "icpc.session", ""),
        "state:closed:7:box": ("state", "closed", ""),
        "transition:plan_agreed:3:label": ("move", "plan_agreed", plan.trigger),
        "transition:plan_agreed:3:listed": ("move", "plan_agreed", plan.trigger),
    }


def test_cli_writes_the_page(tmp_path):
    out = tmp_path / "x" / "explore.html"
    result = CliRunner().invoke(main, ["explore", "west-midlands-2014", "--start", "2025-04-17",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    text = out.read_text(encoding="utf-8")
    assert '"start":"2025-04-17"' in text
    bad = CliRunner().invoke(main, ["explore", "west-midlands-2041", "--out", str(out)])
    assert bad.exit_code == 2 and "error:" in bad.output


def test_page_names_no_external_resource(wm_page):
    text = wm_page.read_text(encoding="utf-8")
    assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE)
    assert not re.search(r"\s(src|href)\s*=", text, re.IGNORECASE)
    assert "<link" not in text and "@import" not in text and "@font-face" not in text
    assert not re.search(r"url\((?!#)", text)
    assert len(re.findall(r"<script\b", text)) == 2


# -- in the browser ----------------------------------------------------------------------------

CLICK_THROUGH = [
    ("decide_strategy_discussion", "strategy_discussion.convening"),
    ("strategy_discussion_held", "strategy_discussion.held"),
    ("start_section_47", "section_47.enquiry"),
    ("book_icpc", "section_47.icpc_booked"),
    ("proceed_to_icpc", "icpc.preparation.inviting"),
    ("invitations_sent", "icpc.preparation.awaiting_reports"),
    ("reports_received", "icpc.preparation.ready"),
    ("wait:day", "icpc.preparation.ready"),
    ("wait:day", "icpc.preparation.ready"),
    ("wait:working_day", "icpc.preparation.ready"),
    ("icpc_opens", "icpc.session"),
    ("plan_agreed", "icpc.outcome"),
    ("start_cp_plan", "cp_plan.active"),
    ("wait:week", "cp_plan.active"),
    ("core_group_held", "cp_plan.active"),
    ("statutory_visit", "cp_plan.active"),
    ("review_due", "cp_plan.review_conference.preparation.awaiting_reports"),
    ("review_reports_received", "cp_plan.review_conference.preparation.ready"),
    ("review_opens", "cp_plan.review_conference.session"),
    ("review_plan_agreed", "cp_plan.review_conference.outcome"),
    ("end_plan_family_support", "family_support"),
    ("family_support_ends", "closed"),
]


def test_click_a_case_from_referral_to_closure(wm_page, opened, tmp_path):
    """Every step: the highlighted state, the side panel and the deadlines match Python's."""
    page = opened(wm_page).page
    proc = load_procedure("west-midlands-2014")
    calendar = WorkingCalendar(START)
    compiled = CompiledProcedure(proc, calendar)
    case, _ = compiled.new_case("trainer", at=9.0)
    rules = load_rules()
    now = 9.0

    def check(expected: str, moves: int) -> None:
        assert leaves_shown(page) == [expected]
        assert highlighted(page) == {expected}
        assert compiled.configuration(case) == (expected,)
        assert page.locator("#history li").count() == moves
        rows = deadline_rows(page)
        assert set(rows) == set(case.clocks)
        for deadline_id, clock in case.clocks.items():
            if clock.due is not None:
                assert rows[deadline_id]["due"] == due_day(calendar, clock.due).isoformat()
            assert rows[deadline_id]["rules"] == ", ".join(clock.deadline.rules)
        for rid in proc.states[expected].rules:
            entry = page.locator(f'#rules dt[data-rule="{rid}"]')
            assert entry.count() == 1 and rules[rid].clause in entry.text_content()

    check("referral", 0)
    rows = deadline_rows(page)
    assert rows["referral_decision"]["due"] == "2025-04-22"  # Good Friday, Easter Monday
    assert rows["referral_decision"]["dueText"] == "end of Tue 22 Apr 2025"
    assert "CAL-T1" in rows["referral_decision"]["rules"]
    assert page.text_content("#case-time") == "Thu 17 Apr 2025 09:00"
    assert "The response to a referral is decided" in page.text_content("#deadlines")
    for moves, (step, expected) in enumerate(CLICK_THROUGH, start=1):
        if step.startswith("wait:"):
            kind = step.split(":")[1]
            wait_button(page, kind)
            if kind == "working_day":
                day = calendar.date_of(now)
                now += 24.0 * (calendar.add_working_days(day, 1) - day).days
            else:
                now += {"day": 24.0, "week": 168.0}[kind]
        else:
            # the move is offered on the diagram as well as in the side panel
            if step in {"decide_strategy_discussion", "icpc_opens", "review_due"}:
                label = page.locator(f'#diagram .cpsim-move.allowed[data-trigger="{step}"]')
                assert label.count() >= 1
            click(page, step)
            compiled.fire(case, step, now)
        check(expected, moves)
        if step == "strategy_discussion_held":
            rows = deadline_rows(page)
            assert rows["icpc_held"]["dueText"] == "end of Tue 13 May 2025"
            assert rows["icpc_booked"]["due"] == "2025-04-19"
        if step == "icpc_opens":
            assert "icpc_reports met" in page.locator("#history li").last.text_content()
    assert page.text_content("#current .terminal") == "The case may end here."
    last = page.locator("#history li").last
    assert last.get_attribute("data-trigger") == "family_support_ends"
    assert "family_support → closed" in last.text_content()
    assert page.locator('#actions button[data-trigger="re_referral"]').is_enabled()

    # the diagram's labels work as buttons too: re_referral is clicked on the drawing
    # (forced: the label's text, drawn over its background, takes the click, as for a user)
    page.locator('#diagram .cpsim-move.allowed[data-trigger="re_referral"]').first.click(
        force=True)
    assert leaves_shown(page) == ["referral"]

    shot = tmp_path / "explore.png"
    page.screenshot(path=str(shot))
    pixels = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB"), dtype=float)
    assert pixels.shape[0] >= 900 and pixels.shape[1] >= 1500
    assert pixels.std() > 20
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100


def test_back_and_reset(wm_page, opened):
    page = opened(wm_page).page
    click(page, "decide_strategy_discussion")
    click(page, "strategy_discussion_held")
    assert set(deadline_rows(page)) == {"icpc_booked", "icpc_held"}
    wait_button(page, "day")
    assert page.text_content("#case-time") == "Fri 18 Apr 2025 09:00"
    page.click("#btn-back")  # undoes the wait
    assert page.text_content("#case-time") == "Thu 17 Apr 2025 09:00"
    assert leaves_shown(page) == ["strategy_discussion.held"]
    page.click("#btn-back")  # undoes the discussion: its clock runs again
    assert leaves_shown(page) == ["strategy_discussion.convening"]
    assert highlighted(page) == {"strategy_discussion.convening"}
    assert set(deadline_rows(page)) == {"strategy_discussion_24h"}
    assert page.locator("#history li").count() == 1
    page.click("#btn-back")
    assert leaves_shown(page) == ["referral"]
    assert page.is_disabled("#btn-back")
    click(page, "decide_assessment")
    page.check('input[data-fact="interpreter_needed"]')
    wait_button(page, "week")
    page.click("#btn-reset")
    assert leaves_shown(page) == ["referral"]
    assert highlighted(page) == {"referral"}
    assert page.locator("#history li").count() == 0
    assert page.text_content("#case-time") == "Thu 17 Apr 2025 09:00"
    assert not page.is_checked('input[data-fact="interpreter_needed"]')
    assert set(deadline_rows(page)) == {"referral_decision", "assessment_complete"}


def test_a_late_move_misses_its_deadline(wm_page, opened):
    page = opened(wm_page).page
    click(page, "decide_strategy_discussion")
    wait_button(page, "day")
    wait_button(page, "hour")
    row = deadline_rows(page)["strategy_discussion_24h"]
    assert row["status"] == "OVERDUE"
    click(page, "strategy_discussion_held")
    assert "strategy_discussion_24h missed" in page.locator("#history li").last.text_content()


def test_ticking_a_fact_opens_guarded_moves(pages, opened):
    page = opened(pages("walsall-2018-resolution")).page
    waiting = page.locator('#actions button[data-trigger="note_good_practice"]')
    assert waiting.is_disabled() and "waiting for the case to be in" in waiting.text_content()
    for trigger in ("decide_strategy_discussion", "strategy_discussion_held",
                    "start_section_47", "book_icpc", "proceed_to_icpc"):
        click(page, trigger)
    assert leaves_shown(page) == ["icpc.preparation.inviting", "resolution.idle"]
    assert highlighted(page) == {"icpc.preparation.inviting", "resolution.idle"}
    good = page.locator('#actions button[data-trigger="note_good_practice"]')
    informal = page.locator('#actions button[data-trigger="practice_concern_found"]')
    assert good.is_disabled() and "practice_is_good does not hold" in good.text_content()
    assert informal.is_enabled()
    page.check('input[data-fact="practice_is_good"]')
    assert good.is_enabled() and informal.is_disabled()
    assert "fact practice_is_good recorded" in page.locator("#history li").last.text_content()
    click(page, "note_good_practice")
    assert leaves_shown(page) == ["icpc.preparation.inviting", "resolution.good_practice_noted"]
    assert highlighted(page) == {"icpc.preparation.inviting", "resolution.good_practice_noted"}


def test_the_fourth_review_is_designated(pages, opened):
    """Guards on counts: three reviews in this plan, then only the designated one opens
    (Newcastle's designated review, NCL-7.1.5)."""
    page = opened(pages("newcastle-2010")).page
    for trigger in ("decide_strategy_discussion", "strategy_discussion_held", "start_section_47",
                    "book_icpc", "proceed_to_icpc", "invitations_sent", "reports_received",
                    "icpc_opens", "plan_agreed", "start_cp_plan"):
        click(page, trigger)
    for _ in range(3):
        for trigger in ("review_due", "review_reports_received", "review_opens",
                        "review_plan_agreed", "continue_plan"):
            click(page, trigger)
    click(page, "review_due")
    click(page, "review_reports_received")
    assert page.is_disabled('#actions button[data-trigger="review_opens"]')
    click(page, "designated_review_opens")
    assert leaves_shown(page) == ["cp_plan.review_conference.session", "iro_resolution.idle"]


def test_page_guards_agree_with_python(wm_page, opened):
    page = opened(wm_page).page
    contexts = sample_contexts(1500, seed=11)
    payload = [{"facts": dict(c.facts), "counts": dict(c.counts), "episode": dict(c.episode)}
               for c in contexts]
    names = sorted(GUARDS)
    got = page.evaluate(
        """([names, contexts]) => contexts.map(ctx =>
             names.map(n => window.cpsimExplorer.engine.guardHolds(n, ctx)))""",
        [names, payload])
    for ctx, row in zip(contexts, got, strict=True):
        assert row == [evaluate(n, ctx) for n in names], ctx


JS_WALK = """([start, facts, steps]) => {
  const E = window.cpsimExplorer.engine;
  const made = E.newCase(start, 0, facts), c = made.case;
  const snap = (extra) => Object.assign({
      config: E.nodes[c.node].config, counts: Object.assign({}, c.counts),
      episode: Object.assign({}, c.episode),
      clocks: c.clocks.map(k => [k.id, k.started, k.due, k.earliest])}, extra);
  const out = [snap({started: made.started, verdicts: [], allowed: []})];
  for (const [trigger, at] of steps) {
    const allowed = [...new Set(E.options(c).filter(o => o.enabled).map(o => o.trigger))].sort();
    const r = E.fire(c, trigger, at);
    out.push(snap({started: r.started, allowed: allowed,
                   verdicts: r.verdicts.map(v => [v.id, v.outcome, v.elapsed])}));
  }
  return out;
}"""


@pytest.mark.parametrize("name", ["west-midlands-2014", "newcastle-2010",
                                  "walsall-2018-resolution",
                                  "west-midlands-2014-wigan-early-help"])
def test_page_engine_agrees_with_the_compiled_machine(name, pages, opened):
    """Random cases, random gaps: the page's moves, counts, clocks and verdicts are Python's."""
    page = opened(pages(name)).page
    proc = load_procedure(name)
    rng = random.Random(name)
    for walk in range(12):
        start = START + timedelta(days=rng.randrange(0, 700))
        compiled = CompiledProcedure(proc, WorkingCalendar(start))
        facts = {f: rng.random() < 0.5 for f in FACTS}
        case, started = compiled.new_case("c", facts, at=0.0)

        def snap(extra, case=case, compiled=compiled):
            return {"config": list(compiled.configuration(case)),
                    "counts": {k: v for k, v in case.counts.items() if v},
                    "episode": {k: v for k, v in case.episode.items() if v},
                    "clocks": sorted([k, c.started, c.due, c.earliest]
                                     for k, c in case.clocks.items()), **extra}

        expected = [snap({"started": list(started), "verdicts": [], "allowed": []})]
        steps, at = [], 0.0
        for _ in range(45):
            allowed = sorted(compiled.allowed_triggers(case))
            if not allowed:
                break
            trigger = rng.choice(allowed)
            at += rng.choice([0, 1, 3, 7, 24, 30, 72, 24 * 7, 24 * 20, 24 * 40])
            result = compiled.fire(case, trigger, at)
            steps.append([trigger, at])
            expected.append(snap({
                "started": list(result.started), "allowed": allowed,
                "verdicts": [[v.deadline_id, v.outcome, v.elapsed] for v in result.verdicts]}))
        got = page.evaluate(JS_WALK, [start.isoformat(), facts, steps])
        assert len(got) == len(expected)
        for i, (js, py) in enumerate(zip(got, expected, strict=True)):
            js["clocks"] = sorted(js["clocks"])
            for v_js, v_py in zip(js["verdicts"], py["verdicts"], strict=True):
                assert v_js[:2] == v_py[:2], (name, walk, i)
                assert (v_js[2] is None) == (v_py[2] is None)
                if v_py[2] is not None:
                    assert v_js[2] == pytest.approx(v_py[2]), (name, walk, i, v_py)
            js["verdicts"] = py["verdicts"] = len(py["verdicts"])
            assert js == py, (name, walk, i, steps[:i])


def test_page_loads_nothing_from_outside(wm_page, opened):
    p = opened(wm_page)
    p.page.click('#actions button[data-trigger="decide_assessment"]')
    assert p.requests == [p.url]


def test_procedure_text_is_shown_not_run(tmp_path, opened):
    """A procedure whose texts hold markup and script: all shown literally, none executed."""
    source = tmp_path / "xss.yaml"
    source.write_text(
        "procedure: xss\n"
        "extends: west-midlands-2014\n"
        f"title: 'Evil {XSS}'\n"
        "description: '</script><script>alert(2)</script><!-- <img src=x onerror=alert(3)>'\n"
        "states:\n"
        "  referral:\n"
        "    summary: '<img src=x onerror=alert(4)> & <b>bold</b>'\n"
        "transitions:\n"
        "  decide_assessment:\n"
        "    summary: '<svg onload=alert(5)>decide</svg>'\n"
        "deadlines:\n"
        "  referral_decision:\n"
        "    summary: '</td></tr><script>alert(6)</script>'\n",
        encoding="utf-8")
    proc = load_procedure(source)
    path = build_explorer(proc, tmp_path / "xss.html", START)
    text = path.read_text(encoding="utf-8")
    assert "<script>alert" not in text and "<img src" not in text and "<svg onload" not in text
    p = opened(path)
    page = p.page
    page.wait_for_timeout(200)
    assert page.text_content("#title") == f"Evil {XSS}"
    assert page.title().startswith(f"Evil {XSS}")
    assert "</script><script>alert(2)</script>" in page.text_content("#description")
    assert page.text_content("#current p") == "<img src=x onerror=alert(4)> & <b>bold</b>"
    assert "<svg onload=alert(5)>decide</svg>" in page.text_content(
        '#actions button[data-trigger="decide_assessment"]')
    assert "</td></tr><script>alert(6)</script>" in page.text_content("#deadlines")
    click(page, "decide_assessment")
    page.click("#btn-back")
    assert page.locator("#panel img, #panel script, #panel b, #panel svg").count() == 0
    assert p.dialogs == []


def test_datetime_formats_match_python(wm_page, opened):
    """The page's due and earliest times are WorkingCalendar's, for every unit, over years."""
    page = opened(wm_page).page
    rng = random.Random(5)
    cases = []
    for _ in range(400):
        start = date(2025, 1, 1) + timedelta(days=rng.randrange(0, 365 * 3))
        at = float(rng.randrange(0, 24 * 60))
        unit = rng.choice(["hours", "days", "working_days", "months"])
        value = rng.randrange(1, 50)
        cases.append((start, at, unit, value))
    got = page.evaluate(
        """(cases) => cases.map(([s, at, unit, value]) => {
             const cal = window.cpsimExplorer.engine.calendar(s);
             const lim = {unit: unit, value: value};
             return [cal.due(at, lim), cal.earliest(at, lim)];
           })""",
        [[s.isoformat(), at, u, v] for s, at, u, v in cases])
    for (start, at, unit, value), (due, earliest) in zip(cases, got, strict=True):
        cal = WorkingCalendar(start)
        assert due == cal.due(at, Duration(unit, value)), (start, at, unit, value)
        assert earliest == pytest.approx(cal.earliest(at, Duration(unit, value)))


def test_page_working_days_are_the_model_calendars(wm_page, opened):
    """Every day the page holds is a working day exactly when the Python calendar says so;
    past those years the page skips weekends only and says it went beyond them."""
    page = opened(wm_page).page
    first, last = date(START.year, 1, 1), date(START.year + explore.CALENDAR_YEARS - 1, 12, 31)
    span = (last - first).days
    got = page.evaluate(
        """([start, span]) => {
             const cal = window.cpsimExplorer.engine.calendar(start);
             const days = [];
             for (let k = 0; k <= span; k += 1) days.push(cal.isWorking(k));
             const inside = cal.beyond;
             const after = [cal.isWorking(span + 1), cal.isWorking(span + 2)];
             return [days, inside, after, cal.beyond];
           }""",
        [first.isoformat(), span])
    days, inside, after, beyond = got
    cal = WorkingCalendar(first)
    assert days == [cal.is_working_day(first + timedelta(days=k)) for k in range(span + 1)]
    assert not inside and beyond
    assert after == [(last + timedelta(days=k)).weekday() < 5 for k in (1, 2)]
