"""The rule registry: every citable rule id with its source, clause, kind and a summary."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

import yaml

from model.types import RuleId

SOURCE_TITLES: Mapping[str, str] = MappingProxyType(
    {
        "WIG": "Wigan: Procedure for Change for Children and Young People Meetings (May 2008)",
        "WM": "West Midlands: Principles, Protocols and Practice Standards (2014)",
        "WT": "Adapting to Change: Working Together (2012-13 revision)",
        "NCL": "Newcastle: Core Standards for Child Protection Case Conferences (Dec 2010)",
        "WAL": "Walsall: Resolution Policy for Children on CP plans (2018)",
        "CAL": "National timescales not stated in the five procedure documents",
    }
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One citable rule.

    Attributes:
        id: Stable id, e.g. ``WM-2b``.
        source: Short code of the source document (``WM``, ``NCL``, ...).
        clause: Where in the source document the rule is.
        kind: Digest kinds (S structural, D deadline, I invariant, R resource, Q quality).
        summary: One sentence in the project's own words.
    """

    id: RuleId
    source: str
    clause: str
    kind: tuple[str, ...]
    summary: str

    @property
    def document(self) -> str:
        """The title of the source document."""
        return SOURCE_TITLES.get(self.source, self.source)


@functools.cache
def load_rules() -> Mapping[RuleId, Rule]:
    """Return the shipped rule registry (``model/rules.yaml``), keyed by rule id."""
    text = resources.files("model").joinpath("rules.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    rules = {
        str(rid): Rule(
            id=str(rid),
            source=str(entry["source"]),
            clause=str(entry["clause"]),
            kind=tuple(str(k) for k in entry["kind"]),
            summary=str(entry["summary"]).strip(),
        )
        for rid, entry in raw.items()
    }
    return MappingProxyType(rules)
