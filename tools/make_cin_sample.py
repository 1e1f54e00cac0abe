"""Make the shipped synthetic CIN-flat sample: simulated cases, some deliberately broken.

    .venv/bin/python tools/make_cin_sample.py

Runs `baseline` (seed 7, one replication, 240 days), exports CIN-flat, keeps the first 250
children, then breaks a few cases on purpose and adds a few bad rows. Writes
`data/samples/cin-flat-sample.csv` and `data/samples/cin-flat-sample.expected.json` (which
children are broken and how, which rows are bad and why), which the tests hold `cpsim
conform` to.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import tempfile
from pathlib import Path

from simulations.export import export_results
from simulations.results import read_results
from simulations.runner import run_scenario, settings_for
from simulations.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "samples"


def main() -> int:
    """Simulate, export, break, write."""
    sc = load_scenario("baseline")
    settings = settings_for(sc, 1, 7, 240, 30, "table", True)
    with tempfile.TemporaryDirectory() as tmp:
        run_scenario(sc, settings, Path(tmp) / "run")
        export_results(read_results(Path(tmp) / "run"), "cin-flat", Path(tmp) / "cin.csv")
        rows = list(csv.DictReader((Path(tmp) / "cin.csv").open(encoding="utf-8")))
    children: list[str] = []
    for r in rows:
        if r["child_id"] not in children:
            children.append(r["child_id"])
    keep = set(children[:250])
    rows = [r for r in rows if r["child_id"] in keep]
    by_child: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_child.setdefault(r["child_id"], []).append(r)

    def first_with(kinds: set[str], exclude: set[str]) -> str:
        for child, events in by_child.items():
            if child not in exclude and kinds <= {e["event_type"] for e in events}:
                return child
        raise SystemExit(f"no child with {kinds}")

    broken: dict[str, str] = {}
    # 1. a plan with no initial conference recorded (no CP plan without an ICPC decision)
    a = first_with({"icpc", "cp_plan_start"}, set())
    rows = [r for r in rows if not (r["child_id"] == a and r["event_type"] == "icpc")]
    broken[a] = "cp_plan_start without an icpc"
    # 2. a conference dated before the strategy discussion that led to it
    b = first_with({"strategy_discussion", "icpc"}, set(broken))
    sd = next(r for r in rows if r["child_id"] == b and r["event_type"] == "strategy_discussion")
    ic = next(r for r in rows if r["child_id"] == b and r["event_type"] == "icpc")
    sd["event_date"], ic["event_date"] = ic["event_date"], sd["event_date"]
    broken[b] = "icpc dated before the strategy discussion"
    # 3. a review conference for a child who was never on a plan
    c = first_with({"cin_plan_start"}, set(broken) | {
        ch for ch, ev in by_child.items() if "cp_plan_start" in {e["event_type"] for e in ev}})
    last = [r for r in rows if r["child_id"] == c][-1]
    rows.append({**last, "event_type": "review"})
    broken[c] = "review without a plan"
    # bad rows: each rejected with its reason; the rest of the file is still processed
    bad = [
        {**rows[5], "event_date": ""},
        {**rows[6], "event_date": "31/02/2025"},
        {**rows[7], "event_date": "2099-01-01"},
        {**rows[8], "event_type": "icpcc"},
        {**rows[9], "child_id": ""},
    ]
    reasons = ["missing event_date", "cannot read", "in the future", "unknown event_type",
               "missing child_id"]
    rows.extend(bad)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cin-flat-sample.csv").write_text(buf.getvalue(), encoding="utf-8")
    first_bad = len(rows) - len(bad) + 2  # data rows start on line 2
    expected = {
        "as_of": "2026-01-01",
        "rows": len(rows),
        "broken_children": broken,
        "rejected_rows": {str(first_bad + i): why for i, why in enumerate(reasons)},
    }
    (OUT / "cin-flat-sample.expected.json").write_text(
        json.dumps(expected, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} rows; {len(broken)} broken children; {len(bad)} bad rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
