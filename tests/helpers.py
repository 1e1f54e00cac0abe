"""Small builders shared by several test files (pytest puts tests/ on the import path)."""

from __future__ import annotations

import base64
import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml
from click.testing import CliRunner, Result
from markupsafe import escape

from model.calendar import WorkingCalendar
from model.check import check_procedure
from model.loader import BUILTIN_DIR, load_procedure

if TYPE_CHECKING:
    from simulations.engine import Engine
    from simulations.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]
CAL = WorkingCalendar(date(2025, 4, 1))  # a Tuesday
"""The calendar the machine tests put their cases on."""

TO_ICPC = ("decide_strategy_discussion", "strategy_discussion_held", "start_section_47",
           "book_icpc", "proceed_to_icpc")
"""The national core's way from a referral to an initial conference being prepared."""

EVIL = "<script>alert(1)</script>"
"""Text from an input file that a page must show as text, never run."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def engine_for(scenario: Scenario | str, seed: int, horizon: int, warm_up: int,
               monitor: bool = False) -> Engine:
    """An engine for replication 0 of a scenario (a name, or one loaded), not yet run.

    The engine is imported here, not with this module: tests of readers import helpers too.
    """
    from simulations.engine import Engine
    from simulations.observers import InvariantMonitor
    from simulations.runner import make_machine, settings_for
    from simulations.scenario import load_scenario

    sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
    settings = settings_for(sc, 1, seed, horizon, warm_up)
    sc = settings.for_scenario(sc)
    machine, calendar = make_machine(sc, settings.machine)
    return Engine(sc, machine, calendar, 0, settings.seed,
                  [InvariantMonitor(sc.procedure)] if monitor else [])


# -- files written for one test --------------------------------------------------------------
def write_scenario(folder: Path, body: str, name: str = "odd") -> Path:
    """``NAME.yaml``: the baseline scenario with ``body`` (YAML text) from line 4 on."""
    path = folder / f"{name}.yaml"
    path.write_text(f"scenario: {name}\nextends: baseline\ntitle: t\n{body}")
    return path


def write_procedure(folder: Path, name: str, extends: str, body: str) -> Path:
    """``NAME.yaml``: the procedure ``extends`` with ``body`` (YAML text) added."""
    path = folder / f"{name}.yaml"
    path.write_text(f"procedure: {name}\nextends: {extends}\n{body}", encoding="utf-8")
    return path


def checks_with_move(folder: Path, name: str, extends: str, trigger: str, source: str,
                     dest: str, rule: str) -> set[str]:
    """The checks `cpsim check` reports on ``extends`` with one more move, ``trigger``."""
    path = write_procedure(folder, name, extends, f"transitions:\n  {trigger}:\n"
                           f"    source: {source}\n    dest: {dest}\n    rules: [{rule}]\n")
    return {f.check for f in check_procedure(load_procedure(path)).findings}


def evil_baseline(folder: Path) -> Path:
    """A copy of the baseline scenario whose title is :data:`EVIL`."""
    text = (ROOT / "scenarios" / "baseline.yaml").read_text(encoding="utf-8")
    text, count = re.subn(r"(?m)^title: .*$", f"title: {EVIL}", text)
    assert count == 1
    path = folder / "baseline.yaml"  # the file name must match the `scenario:` key
    path.write_text(text, encoding="utf-8")
    return path


# -- commands and pages ----------------------------------------------------------------------
def cpsim_ok(*args: str) -> Result:
    """``cpsim ARGS`` run in this process; it must succeed (its output shows if not)."""
    from cpsim.cli import main  # here, so the model's tests do not load the command line

    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def run_into(out: Path, scenario: str, *args: str) -> Path:
    """``cpsim run SCENARIO ARGS --out OUT`` (it must succeed); the results folder."""
    cpsim_ok("run", scenario, *args, "--out", str(out))
    return out


def with_text(page: Path) -> tuple[Path, str]:
    """A page just written, and its text."""
    return page, page.read_text(encoding="utf-8")


def escaped(text: str) -> str:
    """Text as jinja2's autoescape writes it."""
    return str(escape(text))


def first_heading(page: str) -> str:
    """The inside of a page's first ``<h1>``."""
    match = re.search(r"<h1\b[^>]*>(.*?)</h1>", page, re.S)
    assert match is not None
    return match.group(1)


def assert_figures_embedded(folder: Path, page: str, names: set[str],
                            smallest: tuple[int, int] = (300, 600)) -> None:
    """``folder/figures`` holds exactly ``names`` as PNGs, each embedded in ``page``.

    Each must load as an image at least ``smallest`` (rows, columns) with visible content.
    """
    from matplotlib.image import imread

    pngs = sorted((folder / "figures").glob("*.png"))
    assert {p.stem for p in pngs} == names
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE), png
        assert f"data:image/png;base64,{base64.b64encode(data).decode('ascii')}" in page, png
        pixels = imread(png)
        assert pixels.ndim == 3, png
        assert pixels.shape[0] > smallest[0] and pixels.shape[1] > smallest[1], png
        assert float(np.var(pixels[..., :3])) > 0.0, png


def assert_self_contained(page: str) -> list[str]:
    """Nothing fetched from elsewhere: no links, scripts or remote sources; the images' srcs.

    Every image is a ``data:`` URI; the caller checks how many there are.
    """
    assert 'src="http' not in page and 'href="http' not in page
    assert "<link" not in page and "<script" not in page and "url(" not in page
    sources: list[str] = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", page)
    assert len(sources) == len(re.findall(r"<img\b", page))
    assert all(src.startswith("data:image/") for src in sources)
    return sources


def without_plan_agreed(folder: Path) -> Path:
    """West Midlands without `plan_agreed`: a conference that opens can never end.

    West Midlands extends the national core, so `plan_agreed` is removed (`{remove: true}`)
    rather than just dropped from the file, and the conference session stops citing the
    rules only `plan_agreed` enforced there (the loader refuses a state citing a rule that
    no move in it enforces).
    """
    data = yaml.safe_load((BUILTIN_DIR / "west-midlands-2014.yaml").read_text())
    data["procedure"] = "wm-without-plan-agreed"
    removed = set(data["transitions"]["plan_agreed"].get("rules", []))
    data["transitions"]["plan_agreed"] = {"remove": True}
    session = data["states"]["icpc"]["states"]["session"]
    session["rules"] = [r for r in session.get("rules", []) if r not in removed]
    path = folder / "wm-without-plan-agreed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


LONG_RUN_TO_SESSION = """\
  FAIL can_end: dead end: in icpc.session nothing can happen (the long way in)
    counterexample:
      1. referral --decide_strategy_discussion [WT-17a]--> strategy_discussion.convening
      2. strategy_discussion.convening --strategy_discussion_held [WM-1a]--> \
strategy_discussion.held
      3. strategy_discussion.held --start_section_47 []--> section_47.enquiry
      4. section_47.enquiry --book_icpc [WM-2a]--> section_47.icpc_booked
      5. section_47.icpc_booked --proceed_to_icpc [WM-3]--> icpc.preparation.inviting
      6. icpc.preparation.inviting --invitations_sent [WM-3]--> icpc.preparation.awaiting_reports
      7. icpc.preparation.awaiting_reports --reports_received [WM-10]--> icpc.preparation.ready
      8. icpc.preparation.ready --icpc_opens [WM-8]--> icpc.session
      stuck: nothing leads on from icpc.session
"""
"""A saved `cpsim check` counterexample (one FAIL with its run) for `walk --replay`."""
