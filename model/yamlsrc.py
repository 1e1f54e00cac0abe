"""Safe YAML reading that remembers the file and line of every key and list item."""

from __future__ import annotations

from typing import Any

import yaml
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

    Raises:
        InputError: on a syntax error or a duplicate or non-text key, naming the line.
    """
    loader = yaml.SafeLoader(text)
    problems: list[Problem] = []
    try:
        node = loader.get_single_node()
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
