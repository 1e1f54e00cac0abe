"""Structural differences between two procedures, element by element.

States, regions, transitions, deadlines and properties are matched by id. An element only
in the second procedure is ``added``, one only in the first is ``removed``, and one in both
whose fields differ is ``changed``, with one plain-words detail per differing field (old →
new). Where an element was written (its ``origin``) is never compared, nor are the
procedures' titles and descriptions: only what the procedure permits, requires and cites.

Representation choices:

* A region is reported as ``element="region"`` (its root state); the states inside it are
  ``element="state"``.
* Fields whose order carries no meaning (rules, guards, sources, records, children,
  ``cancelled_by`` and the like) are compared as sets and described item by item
  (``guards: ordinary_review_due added``); ``order`` of a ``monotone`` property is a
  sequence and is shown whole (old → new). A summary is reported only as ``summary
  changed``.
* Guards and resources of a transition present in both procedures are reported twice: as
  details of the transition's own ``changed`` entry, and as their own ``guard`` and
  ``resource`` entries so a table can filter on them. Those entries are identified
  ``TRANSITION/GUARD`` and ``TRANSITION/ROLE`` (``TRANSITION/manager:LEVEL`` for a manager)
  and carry the transition's rules. A transition that is itself added or removed brings
  its guards and resources with it and gets no separate entries.
* Resources are matched by role and level; when each side has exactly one need with that
  role and level, a difference in agencies or ``when`` is a ``changed`` resource rather
  than one removed and one added.
* A different main-flow initial state is not an element; it is kept in
  :attr:`ProcedureDiff.initial` and shown first by :func:`format_diff` and :func:`diff_rows`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from model.spec import Deadline, EventRef, Procedure, Property, ResourceNeed, State, Transition
from model.types import Duration, RuleId, StateId

ChangeKind = Literal["added", "removed", "changed"]
Element = Literal["state", "transition", "deadline", "guard", "resource", "property", "region"]

ELEMENT_ORDER: tuple[Element, ...] = (
    "state",
    "region",
    "transition",
    "guard",
    "resource",
    "deadline",
    "property",
)
"""The order changes are listed in, by element kind (then by id)."""

KIND_ORDER: tuple[ChangeKind, ...] = ("removed", "changed", "added")
"""For one element id, the order its changes are listed in."""


@dataclass(frozen=True, slots=True)
class Change:
    """One element added, removed or changed between two procedures.

    Attributes:
        kind: ``added`` (only in the second procedure), ``removed`` (only in the first) or
            ``changed`` (in both, with different fields).
        element: What kind of element it is.
        id: The element's id; ``TRANSITION/NAME`` for a guard or resource.
        rules: The rule ids the element cites (for a changed element, old ones first, then
            any the new version adds); a guard or resource carries its transition's.
        details: One plain-words line per differing field, e.g. ``within: 15 working days →
            10 working days``; empty for an added or removed element, except a resource,
            whose agencies and ``when`` (which its id does not name) are listed.
    """

    kind: ChangeKind
    element: Element
    id: str
    rules: tuple[RuleId, ...]
    details: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProcedureDiff:
    """Every structural difference between procedure ``a`` and procedure ``b``.

    Attributes:
        a: The first (old) procedure's id.
        b: The second (new) procedure's id.
        changes: The changes, ordered by element kind (see :data:`ELEMENT_ORDER`), then id.
        initial: ``(old, new)`` when the main flow starts in a different state, else None.
    """

    a: str
    b: str
    changes: tuple[Change, ...]
    initial: tuple[StateId, StateId] | None = None

    @property
    def is_empty(self) -> bool:
        """True when the two procedures are structurally the same."""
        return not self.changes and self.initial is None


# -- rendering values ----------------------------------------------------------------------


def _show(value: object) -> str:
    """A field value in plain words."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Duration | EventRef):
        return str(value)
    if isinstance(value, tuple):
        return ", ".join(_show(v) for v in value) if value else "none"
    return str(value)


def _group(value: object) -> str:
    """A group of records (one alternative of ``records_any``) as ``[f, g]``, sorted."""
    assert isinstance(value, tuple)
    return "[" + ", ".join(sorted(str(v) for v in value)) + "]"


def _need_key(need: ResourceNeed) -> str:
    """The role (and manager level) a resource need is matched on, e.g. ``manager:director``."""
    return need.role if need.level is None else f"{need.role}:{need.level}"


def _need_label(need: ResourceNeed) -> str:
    """A resource need in full, e.g. ``interpreter when interpreter_needed``."""
    label = _need_key(need)
    if need.agencies:
        label += " [" + ", ".join(need.agencies) + "]"
    if need.when is not None:
        label += f" when {need.when}"
    return label


def _need_fields(need: ResourceNeed) -> tuple[str, ...]:
    """What a need's id does not say: its agencies and its ``when`` guard, if any."""
    out: list[str] = []
    if need.agencies:
        out.append(f"agencies: {', '.join(need.agencies)}")
    if need.when is not None:
        out.append(f"when: {need.when}")
    return tuple(out)


# -- comparing fields ----------------------------------------------------------------------


FieldKind = Literal["scalar", "set", "sequence", "summary", "groups", "resources"]
"""How a field is compared: one value, an unordered collection, an ordered one, a summary
(reported only as changed), unordered groups of records, or a transition's resources."""


def _set_details(
    name: str, old: Iterable[object], new: Iterable[object], show: Callable[[object], str] = _show
) -> list[str]:
    """Items removed from and added to an unordered field, one detail per direction."""
    old_items = list(dict.fromkeys(show(v) for v in old))
    new_items = list(dict.fromkeys(show(v) for v in new))
    removed = [v for v in old_items if v not in new_items]
    added = [v for v in new_items if v not in old_items]
    out: list[str] = []
    if removed:
        out.append(f"{name}: {', '.join(removed)} removed")
    if added:
        out.append(f"{name}: {', '.join(added)} added")
    return out


def _scalar_details(name: str, old: object, new: object) -> list[str]:
    """A single value that differs: set, cleared or replaced."""
    if old == new:
        return []
    if old is None:
        return [f"{name}: {_show(new)} added"]
    if new is None:
        return [f"{name}: {_show(old)} removed"]
    return [f"{name}: {_show(old)} → {_show(new)}"]


def _field_details(name: str, kind: FieldKind, old: object, new: object) -> list[str]:
    """Plain-words details for one field of an element in both procedures."""
    if kind == "summary":
        return [] if old == new else [f"{name} changed"]
    if kind == "scalar":
        return _scalar_details(name, old, new)
    assert isinstance(old, tuple) and isinstance(new, tuple)
    if kind == "sequence":
        return [] if old == new else [f"{name}: {_show(old)} → {_show(new)}"]
    if kind == "groups":
        return _set_details(name, old, new, _group)
    if kind == "resources":
        return [detail for detail, _ in _resource_changes(old, new)]
    return _set_details(name, old, new)


STATE_FIELDS: tuple[tuple[str, FieldKind], ...] = (
    ("parent", "scalar"),
    ("children", "set"),
    ("initial", "scalar"),
    ("terminal", "scalar"),
    ("region", "scalar"),
    ("exhaustive", "set"),
    ("included_from", "scalar"),
    ("rules", "set"),
    ("summary", "summary"),
)
TRANSITION_FIELDS: tuple[tuple[str, FieldKind], ...] = (
    ("trigger", "scalar"),
    ("sources", "set"),
    ("dest", "scalar"),
    ("internal", "scalar"),
    ("guards", "set"),
    ("when_in", "set"),
    ("resources", "resources"),
    ("records", "set"),
    ("rules", "set"),
    ("summary", "summary"),
)
DEADLINE_FIELDS: tuple[tuple[str, FieldKind], ...] = (
    ("start", "scalar"),
    ("end", "scalar"),
    ("within", "scalar"),
    ("at_least", "scalar"),
    ("when", "scalar"),
    ("repeats", "scalar"),
    ("cancelled_by", "set"),
    ("rules", "set"),
    ("summary", "summary"),
)
PROPERTY_FIELDS: tuple[tuple[str, FieldKind], ...] = (
    ("pattern", "scalar"),
    ("of", "scalar"),
    ("requires", "scalar"),
    ("then", "scalar"),
    ("scope", "scalar"),
    ("records_any", "groups"),
    ("if_records", "scalar"),
    ("also", "set"),
    ("order", "sequence"),
    ("exits", "set"),
    ("state", "scalar"),
    ("rules", "set"),
    ("summary", "summary"),
)


def _details(
    old: object, new: object, fields: Sequence[tuple[str, FieldKind]]
) -> list[str]:
    """Details for every listed field that differs between two versions of an element."""
    out: list[str] = []
    for name, kind in fields:
        out.extend(_field_details(name, kind, getattr(old, name), getattr(new, name)))
    return out


def _union(old: Sequence[RuleId], new: Sequence[RuleId]) -> tuple[RuleId, ...]:
    """Old rule ids in order, then any new ones."""
    return tuple(dict.fromkeys((*old, *new)))


# -- resources -----------------------------------------------------------------------------


NeedPair = tuple[ResourceNeed | None, ResourceNeed | None]


def _pair_needs(old: Sequence[ResourceNeed], new: Sequence[ResourceNeed]) -> list[NeedPair]:
    """Unequal resource needs paired up: ``(old, None)`` removed, ``(None, new)`` added.

    Identical needs cancel out. Of the rest, a role and level with exactly one need on each
    side is a pair (a changed need); anything else is removed or added as it stands.
    """
    old_left = list(old)
    new_left: list[ResourceNeed] = []
    for need in new:
        if need in old_left:
            old_left.remove(need)
        else:
            new_left.append(need)
    keys = list(dict.fromkeys(_need_key(n) for n in (*old_left, *new_left)))
    pairs: list[NeedPair] = []
    for key in keys:
        olds = [n for n in old_left if _need_key(n) == key]
        news = [n for n in new_left if _need_key(n) == key]
        if len(olds) == 1 and len(news) == 1:
            pairs.append((olds[0], news[0]))
        else:
            pairs.extend((n, None) for n in olds)
            pairs.extend((None, n) for n in news)
    return pairs


NeedChange = tuple[ChangeKind, str, tuple[str, ...]]
"""A resource need's change: its kind, its role key and its own details."""


def _resource_changes(
    old: Sequence[ResourceNeed], new: Sequence[ResourceNeed]
) -> list[tuple[str, NeedChange]]:
    """Resource differences: a detail for the transition, and the need's own change."""
    out: list[tuple[str, NeedChange]] = []
    for before, after in _pair_needs(old, new):
        if before is not None and after is not None:
            own = _set_details("agencies", before.agencies, after.agencies)
            own += _scalar_details("when", before.when, after.when)
            out.append((f"resources: {_need_label(before)} → {_need_label(after)}",
                        ("changed", _need_key(after), tuple(own))))
        elif before is not None:
            out.append((f"resources: {_need_label(before)} removed",
                        ("removed", _need_key(before), _need_fields(before))))
        elif after is not None:
            out.append((f"resources: {_need_label(after)} added",
                        ("added", _need_key(after), _need_fields(after))))
    return out


# -- matching elements ---------------------------------------------------------------------


Item = TypeVar("Item", State, Transition, Deadline, Property)


def _compare(
    element: Element,
    old: Mapping[str, Item],
    new: Mapping[str, Item],
    fields: Sequence[tuple[str, FieldKind]],
) -> list[Change]:
    """Added, removed and changed elements of one kind, matched by id."""
    out: list[Change] = []
    for key, before in old.items():
        if key not in new:
            out.append(Change("removed", element, key, tuple(before.rules)))
    for key, after in new.items():
        if key not in old:
            out.append(Change("added", element, key, tuple(after.rules)))
            continue
        before = old[key]
        details = _details(before, after, fields)
        if details:
            out.append(Change("changed", element, key, _union(before.rules, after.rules),
                              tuple(details)))
    return out


def _compare_transitions(
    old: Mapping[str, Transition], new: Mapping[str, Transition]
) -> list[Change]:
    """Transitions matched by id, plus guard and resource entries for those in both."""
    out = _compare("transition", old, new, TRANSITION_FIELDS)
    for key, after in new.items():
        before = old.get(key)
        if before is None:
            continue
        rules = _union(before.rules, after.rules)
        out.extend(Change("removed", "guard", f"{key}/{g}", rules)
                   for g in dict.fromkeys(before.guards) if g not in after.guards)
        out.extend(Change("added", "guard", f"{key}/{g}", rules)
                   for g in dict.fromkeys(after.guards) if g not in before.guards)
        out.extend(Change(kind, "resource", f"{key}/{role}", rules, details)
                   for _, (kind, role, details) in _resource_changes(before.resources,
                                                                    after.resources))
    return out


def _is_region(procedure: Procedure, state: State) -> bool:
    """True for a region's root state (named after the region)."""
    return state.parent is None and state.region is not None and state.id in procedure.regions


def _sort_key(change: Change) -> tuple[int, str, int, tuple[str, ...]]:
    return (
        ELEMENT_ORDER.index(change.element),
        change.id,
        KIND_ORDER.index(change.kind),
        change.details,
    )


def diff_procedures(a: Procedure, b: Procedure) -> ProcedureDiff:
    """Every structural difference between procedure ``a`` (old) and procedure ``b`` (new).

    Args:
        a: The procedure compared from; its elements missing from ``b`` are ``removed``.
        b: The procedure compared to; its elements missing from ``a`` are ``added``.

    Returns:
        The changes in a fixed order: by element kind (state, region, transition, guard,
        resource, deadline, property), then id; empty when the two are the same in
        everything but where they were written, their titles and their descriptions.
    """
    changes = _compare(
        "state",
        {k: s for k, s in a.states.items() if not _is_region(a, s)},
        {k: s for k, s in b.states.items() if not _is_region(b, s)},
        STATE_FIELDS,
    )
    changes += _compare(
        "region",
        {k: s for k, s in a.states.items() if _is_region(a, s)},
        {k: s for k, s in b.states.items() if _is_region(b, s)},
        STATE_FIELDS,
    )
    changes += _compare_transitions(
        {t.id: t for t in a.transitions}, {t.id: t for t in b.transitions}
    )
    changes += _compare(
        "deadline", {d.id: d for d in a.deadlines}, {d.id: d for d in b.deadlines},
        DEADLINE_FIELDS,
    )
    changes += _compare(
        "property", {p.id: p for p in a.properties}, {p.id: p for p in b.properties},
        PROPERTY_FIELDS,
    )
    initial = None if a.initial == b.initial else (a.initial, b.initial)
    return ProcedureDiff(a.id, b.id, tuple(sorted(changes, key=_sort_key)), initial)


# -- presenting ----------------------------------------------------------------------------


def _initial_detail(diff: ProcedureDiff) -> str | None:
    if diff.initial is None:
        return None
    return f"initial: {diff.initial[0]} → {diff.initial[1]}"


def format_diff(diff: ProcedureDiff) -> str:
    """The differences as plain text: one line per change, its details indented below.

    Args:
        diff: The result of :func:`diff_procedures`.

    Returns:
        Lines such as ``changed deadline icpc_held [WM-2b, NCL-7.2.1]`` followed by
        ``    within: 15 working days → 10 working days``, or ``no structural differences``.
    """
    if diff.is_empty:
        return "no structural differences"
    lines: list[str] = []
    initial = _initial_detail(diff)
    if initial is not None:
        lines += ["changed procedure initial state", f"    {initial}"]
    for change in diff.changes:
        head = f"{change.kind} {change.element} {change.id}"
        if change.rules:
            head += f" [{', '.join(change.rules)}]"
        lines.append(head)
        lines.extend(f"    {detail}" for detail in change.details)
    return "\n".join(lines)


def diff_rows(diff: ProcedureDiff) -> list[dict[str, str]]:
    """The differences as table rows (for HTML or Markdown).

    Args:
        diff: The result of :func:`diff_procedures`.

    Returns:
        One row per change with the keys ``kind``, ``element``, ``id``, ``rules`` (joined with
        ``", "``) and ``details`` (joined with ``"; "``). A different main-flow initial state
        comes first, as a row with element ``procedure`` and id ``initial``.
    """
    rows: list[dict[str, str]] = []
    initial = _initial_detail(diff)
    if initial is not None:
        rows.append({"kind": "changed", "element": "procedure", "id": "initial", "rules": "",
                     "details": initial})
    for change in diff.changes:
        rows.append({
            "kind": change.kind,
            "element": change.element,
            "id": change.id,
            "rules": ", ".join(change.rules),
            "details": "; ".join(change.details),
        })
    return rows
