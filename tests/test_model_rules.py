"""The rule registry mirrors the procedure digest, id for id, in our own words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from model.rules import SOURCE_TITLES, load_rules

ROOT = Path(__file__).resolve().parents[1]
DIGEST = ROOT.parent / "shared" / "domain" / "procedure-digest.md"
ID = re.compile(r"^[A-Z]{2,3}-[A-Za-z0-9.]+$")


def digest_rows() -> dict[str, str]:
    """Map each rule id in the digest's first column to its row text."""
    rows: dict[str, str] = {}
    for line in DIGEST.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3:
            continue
        ids = []
        for part in cells[0].replace("`", "").split(","):
            part = part.strip()
            m = re.match(r"^([A-Z]{2,3}-)(\d+)\.\.(\d+)$", part)
            if m:
                ids += [f"{m[1]}{i}" for i in range(int(m[2]), int(m[3]) + 1)]
            elif ID.match(part):
                ids.append(part)
        for rid in ids:
            rows[rid] = cells[1]
    return rows


def test_every_entry_is_well_formed():
    """Each rule has a known source, a clause, digest kinds and a one-sentence summary."""
    rules = load_rules()
    assert len(rules) > 80
    for rule in rules.values():
        assert rule.source in SOURCE_TITLES
        assert rule.clause
        assert rule.kind and set(rule.kind) <= set("SDIRQ")
        assert 20 < len(rule.summary) < 200
        assert rule.id.startswith(rule.source + "-")


@pytest.mark.skipif(not DIGEST.exists(), reason="shared/ is not beside this checkout")
def test_registry_covers_exactly_the_digest():
    """Every digest id is in the registry; extras are only CAL-T* or ids the digest names."""
    rows = digest_rows()
    rules = load_rules()
    assert set(rows) - set(rules) == set()
    text = DIGEST.read_text()
    for rid in set(rules) - set(rows):
        assert rid.startswith("CAL-T") or rid in text, rid


@pytest.mark.skipif(not DIGEST.exists(), reason="shared/ is not beside this checkout")
def test_summaries_are_in_our_own_words():
    """No summary shares a run of 8 words with the digest's text for that rule."""
    rows = digest_rows()
    for rid, rule in load_rules().items():
        if rid not in rows:
            continue
        theirs = " ".join(re.findall(r"[a-z0-9]+", rows[rid].lower()))
        ours = re.findall(r"[a-z0-9]+", rule.summary.lower())
        for i in range(len(ours) - 7):
            assert " ".join(ours[i:i + 8]) not in theirs, (rid, rule.summary)
