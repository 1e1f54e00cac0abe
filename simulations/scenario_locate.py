"""Where in a scenario's YAML a problem was written: file, line, field and value.

The YAML is read with the line of every key (:mod:`model.yamlsrc`), and a scenario may
inherit keys from the one it extends or have them set on the command line, so a problem
names the file and line the offending key really came from. Pydantic's errors are turned
into such problems here, with "did you mean" for an unknown key.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Collection, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError

from model.errors import Problem, did_you_mean
from model.yamlsrc import LList, LMap
from simulations.scenario_spec import ScenarioSpec, model_names

OVERRIDE_SOURCE = "command line"
"""The "file" named by problems in values set from the command line (``--vary``)."""


def locate(raw: Any, loc: tuple[int | str, ...], file: str
            ) -> tuple[str, int | None, Any]:
    """Where the deepest part of ``loc`` found in the raw YAML was written, and its value.

    Returns the file (a scenario may inherit a key from the one it extends), the line (None
    for a value set on the command line) and the value found there.
    """
    node = raw
    line: int | None = raw.line if isinstance(raw, LMap | LList) else None
    for part in loc:
        if isinstance(node, LMap) and isinstance(part, str) and part in node:
            file, line = node.at(part)
            node = node[part]
            continue
        if isinstance(node, LList) and isinstance(part, int) and 0 <= part < len(node):
            file, line = node.at(part)
            node = node[part]
            continue
        break
    return file, None if file == OVERRIDE_SOURCE else line, node


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field names allowed at ``loc`` (for "did you mean" on an unknown key)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        else:
            current = _inner(current)
        current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    """Strip Optional / Annotated from a type, keeping a model class if there is one."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        members = [_unwrap(arg) for arg in typing.get_args(tp) if arg is not type(None)]
        for member in members:
            if isinstance(member, type) and issubclass(member, BaseModel):
                return member
        if members:
            return members[0]
    return tp


def _inner(tp: Any) -> Any:
    """The element type of a list or the value type of a dict."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is dict and len(args) == 2:
        return args[1]
    if typing.get_origin(tp) is list and args:
        return args[0]
    return tp


_TYPE_TAG = re.compile(r"(?:float|int|str|bool|bytes|none|date|datetime|list|dict|tuple|set"
                       r"|frozenset)\Z|[a-z]+(?:-[a-z]+)*\[.*\]\Z", re.DOTALL)
"""How pydantic names a member of a union in an error's ``loc``: ``float``, ``list[str]``,
``function-after[_one_kind(), DistSpec]``, ``tagged-union[...]`` (and model class names)."""


def _field_loc(raw: Any, loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """``loc`` without pydantic's union tags, keeping every key written in the YAML.

    A part is a tag only when it is exactly a type's name (``float``, ``ChoiceSpec``,
    ``list[...]``) and the YAML has no key of that name there, so keys such as
    ``interpreter_needed`` or even ``float`` are kept.
    """
    models = model_names()
    kept: list[int | str] = []
    node = raw
    for part in loc:
        written = isinstance(node, Mapping) and part in node
        if isinstance(part, str) and not written and (part in models
                                                      or _TYPE_TAG.match(part)):
            continue
        kept.append(part)
        if written or (isinstance(node, list) and isinstance(part, int)
                       and 0 <= part < len(node)):
            node = node[part]
        else:
            node = None
    return tuple(kept)


def pydantic_problems(exc: ValidationError, raw: LMap, file: str,
                      derived: Collection[tuple[int | str, ...]] = ()) -> list[Problem]:
    """The shape check's errors as problems, each with file, line, field and value.

    A field missing at one of the ``derived`` places is not reported: it is filled in from
    the procedure, and when it cannot be, that says why (or the procedure did not load).
    """
    problems = []
    for error in exc.errors():
        loc = _field_loc(raw, tuple(error["loc"]))
        if error["type"] == "missing" and loc in derived:
            continue
        where, line, value = locate(raw, loc, file)
        field = ".".join(str(p) for p in loc)
        message = error["msg"].removeprefix("Value error, ")
        hint = None
        if error["type"] == "finite_number":
            message = "must be a finite number, not .inf or .nan"
        elif error["type"] == "extra_forbidden":
            message = "unknown key"
            value = loc[-1]
            hint = did_you_mean(loc[-1], _allowed_keys(ScenarioSpec, loc[:-1]))
        elif error["type"] == "missing":
            message = "is required"
            value = None
        elif isinstance(value, LMap | LList):
            value = None
        problems.append(Problem(where, line, field, message, value, hint))
    unique: list[Problem] = []
    for p in problems:
        if p not in unique:
            unique.append(p)
    return unique
