"""Safe YAML reading that remembers the file and line of every key and list item."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, Event
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from model.errors import InputError, Problem

Where = tuple[str, int]
"""A (file, 1-based line) pair."""


class LMap(dict[str, Any]):
    """A YAML mapping that knows where each of its keys was written."""

    def __init__(self, file: str, line: int) -> None:
        """Create an empty mapping written at ``file:line``."""
        super().__init__()
        self.file = file
        self.line = line
        self.where: dict[str, Where] = {}

    def at(self, key: str) -> Where:
        """Return where ``key`` was written, or where the mapping itself starts."""
        return self.where.get(key, (self.file, self.line))

    def without(self, *keys: str) -> LMap:
        """A shallow copy leaving out ``keys``; every key kept remembers where it was written."""
        out = LMap(self.file, self.line)
        for key, value in self.items():
            if key not in keys:
                out[key] = value
                out.where[key] = self.at(key)
        return out


class LList(list[Any]):
    """A YAML sequence that knows where each item was written."""

    def __init__(self, file: str, line: int) -> None:
        """Create an empty sequence written at ``file:line``."""
        super().__init__()
        self.file = file
        self.line = line
        self.where: list[Where] = []

    def at(self, index: int) -> Where:
        """Return where item ``index`` was written."""
        if 0 <= index < len(self.where):
            return self.where[index]
        return (self.file, self.line)


MAX_CHARS = 1_000_000
"""The longest YAML text read, in characters (the largest shipped file has about 27,000)."""

MAX_DEPTH = 50
"""The deepest nesting of mappings and lists allowed (shipped files nest 11 deep at most)."""

MAX_ALIASES = 100
"""The most aliases (``*name``) one file may use (shipped files use 2 at most)."""

MAX_ENTRIES = 10_000
"""The most keys and list items one file may hold, counting each key and item that an alias
repeats as often as it is repeated (shipped files have about 1,000)."""

_WHY = "so that a small hostile file cannot exhaust memory or time"


def _limit(file: str, line: int | None, message: str) -> InputError:
    return InputError([Problem(file, line, "", message)])


def _too_deep(file: str, line: int | None, through_aliases: bool) -> InputError:
    how = " once its aliases are expanded" if through_aliases else ""
    return _limit(file, line, f"nested more than {MAX_DEPTH} levels deep{how}; at most "
                  f"{MAX_DEPTH} are allowed (shipped files nest 11 deep), so that a hostile "
                  "file cannot exhaust the stack")


def _too_many_entries(file: str, line: int | None, through_aliases: bool) -> InputError:
    what = ("once its aliases are expanded, this value holds" if through_aliases
            else "the file holds")
    return _limit(file, line, f"{what} more than {MAX_ENTRIES:,} keys and list items; at most "
                  f"{MAX_ENTRIES:,} are allowed (shipped files have about 1,000), {_WHY}")


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stopping at the first node over a limit.

    It composes at most MAX_DEPTH levels, MAX_ALIASES aliases and MAX_ENTRIES keys and list
    items (what aliases repeat is counted afterwards, by ``_measure``).
    """

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self.file = file
        self.depth = 0
        self.aliases = 0
        self.entries = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        """Compose one node, counting it against the limits first."""
        event: Event = self.peek_event()  # type: ignore[no-untyped-call]
        line = None if event.start_mark is None else event.start_mark.line + 1
        # A key (a mapping's child with no index yet) or a list item; not a mapping's value.
        if isinstance(parent, SequenceNode) or (isinstance(parent, MappingNode)
                                                and index is None):
            self.entries += 1
            if self.entries > MAX_ENTRIES:
                raise _too_many_entries(self.file, line, False)
        if isinstance(event, AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _limit(self.file, line, f"more than {MAX_ALIASES} aliases (*name); at "
                             f"most {MAX_ALIASES} are allowed (shipped files use 2), {_WHY}")
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _too_deep(self.file, line, False)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _measure(root: Node, file: str) -> None:
    """Refuse a node graph whose aliases expand it past MAX_DEPTH or MAX_ENTRIES, or loop.

    Each node is measured once (aliases share nodes), so this takes time in proportion to
    the text, not to what the aliases would expand to.
    """
    measured: dict[int, tuple[int, int]] = {}
    """Each collection node's (keys and list items, levels) once its aliases are expanded."""
    open_nodes: set[int] = set()

    def walk(node: Node, level: int) -> tuple[int, int]:
        line = node.start_mark.line + 1
        if id(node) in open_nodes:
            raise _limit(file, line, "an alias inside the node it names would repeat it for "
                         "ever; use an alias only after the node it names has ended")
        if level > MAX_DEPTH:
            raise _too_deep(file, line, True)
        if isinstance(node, ScalarNode):
            found = (0, 1)
        else:
            known = measured.get(id(node))
            if known is None:
                open_nodes.add(id(node))
                children = ([c for pair in node.value for c in pair]
                            if isinstance(node, MappingNode) else list(node.value))
                entries, levels = len(node.value), 0
                for child in children:
                    below, child_levels = walk(child, level + 1)
                    entries, levels = entries + below, max(levels, child_levels)
                open_nodes.discard(id(node))
                known = measured[id(node)] = (entries, levels + 1)
            found = known
        if level + found[1] - 1 > MAX_DEPTH:
            raise _too_deep(file, line, True)
        if found[0] > MAX_ENTRIES:
            raise _too_many_entries(file, line, True)
        return found

    walk(root, 1)


_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp", "merge")
)


def _convert(node: Node, loader: yaml.SafeLoader, file: str, problems: list[Problem]) -> Any:
    line = node.start_mark.line + 1
    if node.tag not in _PLAIN_TAGS:
        # A tag asks for an object to be built; we build none, and say so.
        raise InputError([Problem(file, line, "", "not valid YAML here: tags are not allowed",
                                  node.tag)])
    if isinstance(node, MappingNode):
        loader.flatten_mapping(node)
        mapping = LMap(file, line)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key_line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                problems.append(
                    Problem(file, key_line, "", "keys must be text; quote this key", key)
                )
                key = str(key)
            if key in mapping:
                problems.append(Problem(file, key_line, key, "duplicate key", key))
            mapping[key] = _convert(value_node, loader, file, problems)
            mapping.where[key] = (file, key_line)
        return mapping
    if isinstance(node, SequenceNode):
        seq = LList(file, line)
        for item in node.value:
            seq.append(_convert(item, loader, file, problems))
            seq.where.append((file, item.start_mark.line + 1))
        return seq
    assert isinstance(node, ScalarNode)
    return loader.construct_object(node, deep=True)


def load_yaml_text(text: str, file: str) -> Any:
    """Parse YAML safely (no tags that build objects) into LMap / LList / scalars.

    Bounded: at most MAX_CHARS characters, MAX_DEPTH levels of nesting, MAX_ALIASES aliases
    and MAX_ENTRIES keys and list items (counting what aliases repeat), so a small hostile
    file (an alias bomb, say) is refused at once rather than exhausting memory or the stack.

    Raises:
        InputError: on a syntax error, a duplicate or non-text key, or a limit exceeded,
            naming the line.
    """
    if len(text) > MAX_CHARS:
        raise _limit(file, None, f"the file has {len(text):,} characters; at most "
                     f"{MAX_CHARS:,} are read (the largest shipped file has about 27,000), "
                     f"{_WHY}")
    try:  # the reader refuses characters YAML does not allow (NUL, most controls) at once
        loader = _BoundedLoader(text, file)
    except yaml.reader.ReaderError as exc:
        at = text.count("\n", 0, exc.position) + 1
        raise InputError([Problem(file, at, "", f"not valid YAML: character "
                                  f"#x{exc.character:04x} is not allowed")]) from None
    problems: list[Problem] = []
    try:
        node = loader.get_single_node()
        if node is not None:
            _measure(node, file)
        data = None if node is None else _convert(node, loader, file, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise InputError(
            [Problem(file, line, "", f"not valid YAML: {exc.problem or exc}")]
        ) from None
    except yaml.YAMLError as exc:
        raise InputError([Problem(file, None, "", f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if problems:
        raise InputError(problems)
    return data


def read_yaml_mapping(path: Path, file: str, what: str) -> tuple[LMap, str]:
    """Read a YAML file that must hold a mapping: the mapping, and the SHA-256 of the file.

    Args:
        path: The file to read.
        file: Its name as problems show it.
        what: What the file is, for the problem when it holds no mapping ("procedure").

    Raises:
        InputError: the file cannot be read, is not UTF-8 text or not YAML, or holds no
            mapping.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError([Problem(file, None, "", f"cannot read file: {exc.strerror}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError([Problem(file, None, "", "file is not UTF-8 text")]) from None
    raw = load_yaml_text(text, file)
    if not isinstance(raw, LMap):
        raise InputError([Problem(file, 1, "", f"a {what} file must be a YAML mapping")])
    return raw, hashlib.sha256(data).hexdigest()
