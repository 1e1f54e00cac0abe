"""Reading one field of a procedure file at a time, collecting problems instead of stopping.

:class:`FieldReader` holds what every block of a procedure file shares: the list of problems
(each with file, line, field, value and a "did you mean"), and readers for the kinds of value
a field can hold (text, names, flags, durations, events, rule citations, a basis). The blocks
themselves are read by :mod:`model.load_states` and :mod:`model.load_build`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any, TypeGuard, TypeVar, cast, get_args

from model.errors import Problem, did_you_mean
from model.guards import GUARDS
from model.rules import load_rules
from model.spec import BASIS_KINDS, Basis, EventKind, EventRef, Origin
from model.types import DURATION_UNITS, Duration, RuleId
from model.yamlsrc import LList, LMap, Where

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
BASIS_KEYS = ("kind", "note")
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)

_Name = TypeVar("_Name", bound=str)

NameCheck = Callable[[str, Where, str], bool]
"""Checks an entry's name (its name, where written, its field), reporting any problem;
says whether to read the entry."""


class FieldReader:
    """Problems found so far, and readers for the values a field may hold."""

    def __init__(self) -> None:
        """Start with no problems and no citations."""
        self.rules = load_rules()
        self.problems: list[Problem] = []
        self.citations: list[tuple[Where, str, RuleId]] = []
        self.cite_at: dict[str, dict[RuleId, tuple[Where, int]]] = {}

    # -- problems and shapes --------------------------------------------------------------
    def err(
        self,
        where: Where,
        field: str,
        message: str,
        value: object = None,
        hint: str | None = None,
    ) -> None:
        """Record one problem."""
        self.problems.append(Problem(where[0], where[1], field, message, value, hint))

    def known(self, value: object, allowed: Collection[_Name], where: Where, field: str,
              message: str) -> TypeGuard[_Name]:
        """True when ``value`` is one of ``allowed``; otherwise report it with the closest."""
        if isinstance(value, str) and value in allowed:
            return True
        self.err(where, field, message, value, did_you_mean(value, allowed))
        return False

    def guard(self, value: object, where: Where, field: str) -> bool:
        """True when ``value`` names a registered guard; otherwise report it."""
        return self.known(value, GUARDS, where, field, "no guard of that name is registered")

    def origin(self, m: LMap | LList, key: str | int) -> Origin:
        """Where an entry of a mapping or list was written."""
        file, line = m.at(str(key)) if isinstance(m, LMap) else m.at(int(key))
        return Origin(file, line)

    def mapping(self, parent: LMap, key: str, field: str) -> LMap | None:
        """The mapping under ``key``; None (reported unless absent) when it is not one."""
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, LMap):
            self.err(parent.at(key), field, "must be a mapping of names to entries", value)
            return None
        return value

    def check_keys(self, m: LMap, allowed: Iterable[str], field: str) -> None:
        """Report every key of ``m`` that is not ``allowed``."""
        allowed = tuple(allowed)
        for key in m:
            if key not in allowed:
                self.err(
                    m.at(key),
                    f"{field}.{key}" if field else key,
                    "unknown key",
                    key,
                    did_you_mean(key, allowed),
                )

    def entries(self, m: LMap, prefix: str, keys: Iterable[str], shape: str = "must be a mapping",
                name_ok: NameCheck | None = None) -> Iterator[tuple[str, LMap, str]]:
        """Each entry of a block: its name, its mapping and its field (``prefix.name``).

        ``name_ok`` checks the name first; an entry that is not a mapping is reported (as
        ``shape``) and skipped; the keys of the rest are checked against ``keys``.
        """
        keys = tuple(keys)
        for name, spec in m.items():
            field = f"{prefix}.{name}"
            if name_ok is not None and not name_ok(name, m.at(name), field):
                continue
            if not isinstance(spec, LMap):
                self.err(m.at(name), field, shape, spec)
                continue
            self.check_keys(spec, keys, field)
            yield name, spec, field

    # -- plain values -------------------------------------------------------------------------
    def text(self, m: LMap, key: str, field: str, required: bool = False) -> str:
        """Non-empty text, its white space folded; empty when absent (reported if required)."""
        value = m.get(key)
        if value is None:
            if required:
                self.err(m.at(key), f"{field}.{key}", "is required")
            return ""
        if not isinstance(value, str) or not value.strip():
            self.err(m.at(key), f"{field}.{key}", "must be non-empty text", value)
            return ""
        return " ".join(value.split())

    def flag(self, m: LMap, key: str, field: str) -> bool:
        """A true-or-false field; false when absent or (reported) not a boolean."""
        value = m.get(key, False)
        if not isinstance(value, bool):
            self.err(m.at(key), f"{field}.{key}", "must be true or false", value)
            return False
        return value

    def names(self, m: LMap, key: str, field: str) -> tuple[str, ...]:
        """A field that may be one name or a list of names."""
        value = m.get(key)
        if value is None:
            return ()
        items = list(value) if isinstance(value, LList) else [value]
        out: list[str] = []
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                where = value.at(i) if isinstance(value, LList) else m.at(key)
                self.err(where, f"{field}.{key}", "must be a name or a list of names", item)
                continue
            out.append(item)
        return tuple(out)

    def duration(self, m: LMap, key: str, field: str) -> Duration | None:
        """A duration written ``{unit: whole number}``, e.g. ``{working_days: 15}``."""
        value = m.get(key)
        if value is None:
            return None
        fld = f"{field}.{key}"
        if not isinstance(value, LMap) or len(value) != 1:
            self.err(m.at(key), fld,
                     "must be one unit and a number, e.g. {working_days: 15}", value)
            return None
        unit, amount = next(iter(value.items()))
        if not self.known(unit, DURATION_UNITS, value.at(unit), f"{fld}.{unit}", "unknown unit"):
            return None
        if isinstance(amount, bool) or not isinstance(amount, int):
            self.err(value.at(unit), f"{fld}.{unit}", "must be a whole number", amount)
            return None
        if amount <= 0:
            self.err(value.at(unit), f"{fld}.{unit}", "must be positive", amount)
            return None
        return Duration(unit, amount)

    def event(self, m: LMap, key: str, field: str) -> EventRef | None:
        """The event under ``key``, if any (see :meth:`event_value`)."""
        value = m.get(key)
        if value is None:
            return None
        return self.event_value(value, m.at(key), f"{field}.{key}")

    def event_value(self, value: Any, where: Where, field: str) -> EventRef | None:
        """An event written ``{trigger: NAME}``, ``{enter: STATE}`` or ``{exit: STATE}``.

        Only its shape is checked here; whether the name exists is the caller's to check.
        """
        if not isinstance(value, LMap) or len(value) != 1 or next(iter(value)) not in EVENT_KINDS:
            self.err(where, field, "must be {trigger: NAME}, {enter: STATE} or {exit: STATE}",
                     value)
            return None
        kind, name = next(iter(value.items()))
        if not isinstance(name, str):
            self.err(value.at(kind), f"{field}.{kind}", "must be a name", name)
            return None
        return EventRef(cast(EventKind, kind), name)

    # -- why an element is there ---------------------------------------------------------------
    def element(self, m: LMap, field: str) -> tuple[tuple[RuleId, ...], Basis | None, str]:
        """What every element carries: its ``rules``, its ``basis`` and its ``summary``."""
        return self.rule_ids(m, field), self.basis(m, field), self.text(m, "summary", field)

    def rule_ids(self, m: LMap, field: str) -> tuple[RuleId, ...]:
        """The element's ``rules``; remembers where each was written for later checks.

        An element needs ``rules`` (a non-empty list), a ``basis``, or both.
        """
        value = m.get("rules")
        if value is None:
            if m.get("basis") is None:
                self.err(m.at("rules") if "rules" in m else (m.file, m.line), f"{field}.rules",
                         "every element cites the rule ids it encodes (`rules: [...]`) or says "
                         "why it is there without one (`basis: {kind: assumption | "
                         "local-standard, note: ...}`), or both")
            return ()
        if not isinstance(value, LList) or not value:
            self.err(m.at("rules"), f"{field}.rules", "must be a non-empty list of rule ids",
                     value)
            return ()
        out: list[RuleId] = []
        for i, rid in enumerate(value):
            if not self.known(rid, self.rules, value.at(i), f"{field}.rules[{i}]",
                              "unknown rule id (see model/rules.yaml)"):
                continue
            out.append(rid)
            self.citations.append((value.at(i), f"{field}.rules[{i}]", rid))
            self.cite_at.setdefault(field, {}).setdefault(rid, (value.at(i), i))
        return tuple(out)

    def basis(self, m: LMap, field: str) -> Basis | None:
        """The element's ``basis: {kind: assumption | local-standard, note: ...}``, if any."""
        value = m.get("basis")
        if value is None:
            return None
        fld = f"{field}.basis"
        if not isinstance(value, LMap):
            self.err(m.at("basis"), fld,
                     'must be {kind: assumption | local-standard, note: "one sentence"}', value)
            return None
        self.check_keys(value, BASIS_KEYS, fld)
        kind = value.get("kind")
        if kind is None:
            self.err(value.at("kind"), f"{fld}.kind", "is required (assumption or local-standard)")
        elif not self.known(kind, BASIS_KINDS, value.at("kind"), f"{fld}.kind",
                            "must be assumption or local-standard"):
            kind = None
        note = self.text(value, "note", fld, required=True)
        if kind is None or not note:
            return None
        return Basis(kind, note)
