"""YAML with line numbers: parse a file into plain data, and word validation errors at lines.

PyYAML's ``safe_load`` forgets where a value came from and silently keeps the last of two
equal keys. Here the text is composed into a node tree (``yaml.compose``, SafeLoader) and
walked by hand: scalars are built by PyYAML's SafeConstructor, mappings and sequences by the
walker, which records for every field path (``("hardware", "connectors", 0, "id")``) the line of
its value and the line of the key naming it, and reports duplicate keys, merge keys, custom
tags and recursive aliases as problems instead of guessing.

``describe_errors`` then turns pydantic's errors for that data into ``LocatedProblem``s worded
from their type, location and context only - never pydantic's own text, which quotes inputs,
and never the input of a secret field.

Nothing in here knows the station schema.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

import yaml
from pydantic import BaseModel
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

FieldPath = tuple[str | int, ...]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_FIELD_NAME = re.compile(r"[A-Za-z0-9_\-]{1,64}")


@dataclass(frozen=True)
class Position:
    value_line: int  # 1-based line of a scalar value; of the key for a mapping or a list
    key_line: int  # 1-based line of the key that names the value (a list item: its own line)


@dataclass(frozen=True)
class LocatedProblem:
    line: int | None  # 1-based
    path: FieldPath
    message: str


class FieldError(ValueError):
    """Raised by a validator: ``message`` is the final wording (it must not quote a secret),
    ``at`` a path below the validated object (a model validator blaming one of its fields)."""

    def __init__(self, message: str, at: FieldPath = ()) -> None:
        super().__init__(message)
        self.message = message
        self.at = at


class YamlSyntaxError(Exception):
    """The text is not YAML at all; ``line`` is 1-based (None when unknown)."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class LocatedDocument:
    data: Any
    positions: dict[FieldPath, Position] = field(default_factory=dict)
    problems: list[LocatedProblem] = field(default_factory=list)

    def line_of(self, path: FieldPath, *, key: bool = False) -> int | None:
        """Line of the value at ``path`` (of its key with ``key=True``); a path that is not in
        the document falls back to its nearest ancestor's value."""
        if key and path in self.positions:
            return self.positions[path].key_line
        for end in range(len(path), -1, -1):
            position = self.positions.get(path[:end])
            if position is not None:
                return position.value_line
        return None


def format_path(path: FieldPath) -> str:
    """``("hardware", "connectors", 0, "id")`` -> ``hardware.connectors[0].id``.

    A key that does not look like a field name is shown as ``<invalid name>``: it may be a
    mistyped ``key=value`` holding a secret."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = part if _FIELD_NAME.fullmatch(part) else "<invalid name>"
            text += f".{name}" if text else name
    return text


def compose_located(text: str) -> LocatedDocument | None:
    """Parse ``text``; None for a stream without a document (empty, only comments).

    Raises YamlSyntaxError for text that is not YAML. Problems that leave the structure
    readable (duplicate keys and the like) are collected in ``LocatedDocument.problems``.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise YamlSyntaxError(*_describe_marked(exc)) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise YamlSyntaxError(line, f"unacceptable character #x{ord(char):04x}: {exc.reason}") from None
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML error is one of the above
        raise YamlSyntaxError(None, type(exc).__name__) from None
    except RecursionError:
        raise YamlSyntaxError(None, "nested too deeply") from None
    if root is None:
        return None
    walker = _Walker()
    try:
        data = walker.value(root, (), root.start_mark.line + 1)
    except RecursionError:
        raise YamlSyntaxError(None, "nested too deeply") from None
    return LocatedDocument(data, walker.positions, walker.problems)


def _describe_marked(exc: yaml.MarkedYAMLError) -> tuple[int | None, str]:
    # Only PyYAML's problem/context words are used: str(exc) would quote the offending line,
    # and that line may hold a secret.
    mark = exc.problem_mark or exc.context_mark
    message = exc.problem or exc.context or "syntax error"
    if exc.problem and exc.context:
        message += f" ({exc.context}"
        if exc.context_mark is not None and exc.context_mark.line != getattr(mark, "line", None):
            message += f" on line {exc.context_mark.line + 1}"
        message += ")"
    return (mark.line + 1 if mark is not None else None), message


class _Walker:
    def __init__(self) -> None:
        self.positions: dict[FieldPath, Position] = {}
        self.problems: list[LocatedProblem] = []
        self._open: set[int] = set()  # nodes being walked (a recursive alias points back here)
        self._scalars = SafeConstructor()

    def _problem(self, node: Node, path: FieldPath, message: str) -> None:
        self.problems.append(LocatedProblem(node.start_mark.line + 1, path, message))

    def value(self, node: Node, path: FieldPath, key_line: int) -> Any:
        if isinstance(node, ScalarNode):
            self.positions[path] = Position(node.start_mark.line + 1, key_line)
            try:
                return self._scalars.construct_object(node, deep=True)
            except ConstructorError as exc:
                self._problem(node, path, f"invalid value: {exc.problem}")
                return None
        # A block mapping or list starts on the line after its key; point at the key.
        self.positions[path] = Position(key_line, key_line)
        if id(node) in self._open:
            self.problems.append(LocatedProblem(key_line, path, "recursive alias"))
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return self._sequence(node, path)
            return self._mapping(node, path)
        finally:
            self._open.discard(id(node))

    def _sequence(self, node: SequenceNode, path: FieldPath) -> list[Any] | None:
        if node.tag != _SEQ_TAG:
            self._problem(node, path, f"unsupported tag {node.tag}")
            return None
        return [
            self.value(item, path + (index,), item.start_mark.line + 1)
            for index, item in enumerate(node.value)
        ]

    def _mapping(self, node: MappingNode, path: FieldPath) -> dict[str, Any] | None:
        if node.tag != _MAP_TAG:
            self._problem(node, path, f"unsupported tag {node.tag}")
            return None
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                self._problem(key_node, path, "a key must be a plain name, not a list or mapping")
                continue
            if key_node.tag == _MERGE_TAG:
                self._problem(key_node, path, "merge keys (<<) are not supported")
                continue
            # The key's source text, so `on:` or `1:` stay the names they look like.
            key = key_node.value
            if key in first_line:
                self._problem(key_node, path + (key,), f"duplicate key (first on line {first_line[key]})")
            else:
                first_line[key] = line
            result[key] = self.value(value_node, path + (key,), line)
        return result


# ----------------------------------------------------------------------------- validation errors
def show_value(value: Any) -> str:
    """A value as an installer would recognise it in their YAML (never used for secrets)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 24 else text[:21] + "..."
    return {dict: "a mapping", list: "a list"}.get(type(value), f"a {type(value).__name__}")


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return show_value(value)  # null, true/false, a mapping, a list, a date


_TYPE_WORDS = {
    "int_type": "must be a whole number", "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number", "string_type": "must be a string",
    "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "model_type": "must be a mapping", "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping", "list_type": "must be a list",
}
_CONTAINER_TYPES = frozenset({"model_type", "model_attributes_type", "dict_type", "list_type"})


def describe_errors(
    errors: Iterable[Mapping[str, Any]],
    document: LocatedDocument,
    root_model: type[BaseModel],
    secret_fields: frozenset[str] = frozenset(),
) -> list[LocatedProblem]:
    """Pydantic ``errors()`` of ``root_model.model_validate(document.data)``, in line order."""
    problems = [_describe(error, document, root_model, secret_fields) for error in errors]
    return sorted(problems, key=lambda problem: problem.line or 0)


def _describe(
    error: Mapping[str, Any],
    document: LocatedDocument,
    root_model: type[BaseModel],
    secret_fields: frozenset[str],
) -> LocatedProblem:
    loc: FieldPath = tuple(error["loc"])
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    secret = any(part in secret_fields for part in loc if isinstance(part, str))
    got = "" if secret else f" (got {show_value(value)})"
    if kind in _CONTAINER_TYPES:  # a string where a section belongs may hold anything
        got = f" (got {_kind(value)})"
    cause = ctx.get("error")
    if isinstance(cause, FieldError):
        loc += cause.at
        return LocatedProblem(document.line_of(loc), loc, cause.message)
    if kind == "missing":  # at the mapping that lacks it
        return LocatedProblem(document.line_of(loc[:-1]), loc, "required field missing")
    if kind == "extra_forbidden":  # at the misspelt key itself
        return LocatedProblem(document.line_of(loc, key=True), loc, _unknown_field(root_model, loc))
    if kind in _TYPE_WORDS:
        message = _TYPE_WORDS[kind] + got
        if kind == "string_type" and isinstance(value, (int, float)):
            message += "; put it in quotes"
    elif kind in ("literal_error", "enum"):
        message = f"must be one of {ctx.get('expected')}{got}"
    elif kind == "value_error":
        message = str(cause)
    else:
        message = f"{error['msg']}{got}"
    return LocatedProblem(document.line_of(loc), loc, message)


def _unknown_field(root_model: type[BaseModel], loc: FieldPath) -> str:
    model: type[BaseModel] | None = root_model
    for part in loc[:-1]:
        if model is None:
            return "unknown field"
        if isinstance(part, str):
            field = model.model_fields.get(part)
            model = _model_in(field.annotation) if field is not None else None
    if model is None:
        return "unknown field"
    names = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    if close:
        return f"unknown field (did you mean {close[0]!r}?)"
    return f"unknown field (known: {', '.join(names)})"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``X``, ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((model for arg in get_args(annotation) if (model := _model_in(arg)) is not None), None)
