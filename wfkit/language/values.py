"""JSON values in state: types, zero values, copies, sizes, paths and in-place operations.

Every write primitive appends its inverse to an undo list, so :class:`~wfkit.engine.state.State`
can make a write all or nothing.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from jinja2.runtime import Undefined

from wfkit.errors import StateError, UndefinedVariableError
from wfkit.language.models import FieldType

_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)
dumps = _ENCODER.encode  # one encoder: json.dumps with options builds one per call


class _Missing:
    """The type of :data:`MISSING`: one instance, which pickles as itself (checkpoint
    changes travel between processes when items run elsewhere)."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "_MISSING"

    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()
MISSING: Any = _MISSING
"""Marks a name that no longer exists (in changes handed to checkpoints)."""

Undo = list[Callable[[], None]]

ZERO_VALUES: dict[str, Any] = {
    "string": "",
    "number": 0,
    "integer": 0,
    "boolean": False,
    "object": {},
    "array": [],
    "any": None,
}


def zero_value(kind: FieldType) -> Any:
    """A fresh zero value of ``kind``."""
    value = ZERO_VALUES[kind]
    return type(value)() if isinstance(value, (dict, list)) else value


def matches_type(value: Any, kind: str) -> bool:
    """Whether ``value`` is of schema type ``kind`` (booleans are not numbers)."""
    if kind == "any":
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    return False


def json_type(value: Any) -> str:
    """The schema type name of a value, for error messages."""
    for kind in ("boolean", "integer", "number", "string", "object", "array"):
        if matches_type(value, kind):
            return kind
    return "null" if value is None else type(value).__name__


def a_type(value: Any) -> str:
    """``an integer``, ``a string``: the type of a value with its article."""
    kind = json_type(value)
    return ("an " if kind[0] in "aeiou" else "a ") + kind


MAX_DEPTH = 100
"""Levels of nesting a value may have (lists and objects): deeper values are refused where
they enter the state, so every output (JSON, the console, the store) can show what was kept."""


def to_state_value(value: Any, where: str = "value", depth: int = 0) -> Any:
    """A fresh JSON-compatible copy of ``value``; tuples become lists.

    Copying keeps state independent of the objects expressions return (two fields never
    alias one list). Anything that JSON cannot hold, or nested deeper than
    :data:`MAX_DEPTH`, is a :class:`StateError`.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise StateError(f"{where}: {value} cannot be stored (not valid JSON)")
        return value
    if depth >= MAX_DEPTH and isinstance(value, (Mapping, list, tuple)):
        raise StateError(f"{where}: the value is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            name = key if isinstance(key, str) else _key_text(key, where)
            out[name] = to_state_value(item, where, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [to_state_value(item, where, depth + 1) for item in value]
    if isinstance(value, Undefined):  # an undefined name inside a list or mapping
        raise UndefinedVariableError(
            f"{where}: the value holds an undefined name {value._undefined_name!r}",
            name=str(value._undefined_name),
        )
    raise StateError(f"{where}: a {type(value).__name__} cannot be stored in state")


def _key_text(key: Any, where: str) -> str:
    if isinstance(key, (int, float, bool)):
        return str(key)
    raise StateError(f"{where}: a {type(key).__name__} key cannot be stored in state")


# a mapping key (digits allowed: "raw.by_id.42" is key "42"), then any [n] list indexes
_SEGMENT = re.compile(r"([A-Za-z0-9_-]+)((?:\[-?\d+\])*)")
_INDEX = re.compile(r"\[(-?\d+)\]")


@functools.lru_cache(maxsize=4096)
def parse_path(path: str) -> tuple[str | int, ...]:
    """``raw.items[0].name`` -> ``("raw", "items", 0, "name")`` (cached: paths repeat)."""
    out: list[str | int] = []
    for part in path.split("."):
        match = _SEGMENT.fullmatch(part.strip())
        if not match:
            raise StateError(f"invalid state path {path!r}: bad segment {part!r}")
        out.append(match.group(1))
        out.extend(int(i) for i in _INDEX.findall(match.group(2)))
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def writable_path(path: str) -> tuple[str | int, ...]:
    """Parse a write path; only ``raw.<field>...`` is writable."""
    parts = parse_path(path)
    if parts[0] != "raw" or len(parts) < 2 or not isinstance(parts[1], str):
        tier = parts[0]
        why = (
            f"the {tier!r} tier is read-only"
            if tier in {"inputs", "computed"}
            else "writes must start with 'raw.<field>'"
        )
        raise StateError(f"cannot write {path!r}: {why}")
    return parts


SIZE_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)
TIER_OVERHEAD = len('{"inputs":{},"raw":{},"computed":{}}')


def json_len(value: Any) -> int:
    """Length of ``value`` as JSON; numbers, booleans and null without the encoder."""
    kind = type(value)
    if kind is int or kind is float:  # state holds no NaN or infinity: repr is the JSON
        return len(repr(value))
    if kind is bool:
        return 4 if value else 5
    if value is None:
        return 4
    return len(SIZE_ENCODER.encode(value))


def entry_size(name: str, value: Any) -> int:
    """Bytes of ``"name":value,`` in the state's JSON."""
    return len(name) + 4 + json_len(value)


def child(current: Any, part: str | int) -> Any:
    if isinstance(part, int):
        if isinstance(current, list) and -len(current) <= part < len(current):
            return current[part]
        return None
    if isinstance(current, dict):
        return current.get(part)
    return None


def apply_write(
    root: dict[str, Any],
    parts: tuple[str | int, ...],
    operation: str,
    value: Any,
    by: Any,
    path: str,
    undo: Undo,
) -> int | None:
    """Apply the operation; for an in-place append, the exact growth of the JSON in bytes."""
    container: Any = root
    for i, part in enumerate(parts[:-1]):
        nxt = _container_child(container, part, path)
        if nxt is _MISSING:
            if operation == "delete":
                return None
            nxt = [] if isinstance(parts[i + 1], int) else {}
            _set(container, part, nxt, path, undo)
        container = nxt
    key = parts[-1]
    current = _container_child(container, key, path)
    if operation == "delete":
        if current is not _MISSING:
            _delete(container, key, undo)
        return None
    if operation in ("append", "extend") and isinstance(current, list):
        size = len(current)
        items = _new_items(operation, value, path)
        current.extend(items)  # in place: lists may be large
        undo.append(lambda: current.__delitem__(slice(size, None)))
        commas = len(items) - (1 if size == 0 and items else 0)
        return sum(json_len(item) for item in items) + commas
    _set(container, key, _operate(operation, current, value, by, path), path, undo)
    return None


def _container_child(container: Any, part: str | int, path: str) -> Any:
    if isinstance(part, int):
        if not isinstance(container, list):
            raise StateError(f"cannot write {path!r}: [{part}] indexes {a_type(container)}")
        if -len(container) <= part < len(container):
            return container[part]
        return _MISSING
    if not isinstance(container, dict):
        raise StateError(f"cannot write {path!r}: .{part} is inside {a_type(container)}")
    return container.get(part, _MISSING)


def _set(container: Any, key: str | int, new: Any, path: str, undo: Undo) -> None:
    if isinstance(key, int):
        if not -len(container) <= key < len(container):
            if key != len(container):
                raise StateError(
                    f"cannot write {path!r}: index {key} is out of range (length {len(container)})"
                )
            container.append(new)
            undo.append(container.pop)
            return
        old = container[key]
        container[key] = new
        undo.append(lambda: container.__setitem__(key, old))
        return
    old = container.get(key, _MISSING)
    container[key] = new
    if old is _MISSING:
        undo.append(lambda: container.pop(key, None))
    else:
        undo.append(lambda: container.__setitem__(key, old))


def _delete(container: Any, key: str | int, undo: Undo) -> None:
    if isinstance(key, int):
        index = key % len(container)
        old = container.pop(index)
        undo.append(lambda: container.insert(index, old))
    else:
        old = container.pop(key)
        undo.append(lambda: container.__setitem__(key, old))


def _number(value: Any, what: str, path: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StateError(f"cannot write {path!r}: {what} must be a number, got {value!r}")
    return value


def _new_items(operation: str, value: Any, path: str) -> list[Any]:
    if operation == "append":
        return [to_state_value(value, path)]
    if not isinstance(value, list):
        raise StateError(f"cannot extend {path!r}: the value is {a_type(value)}")
    return list(to_state_value(value, path))


def _operate(operation: str, current: Any, value: Any, by: Any, path: str) -> Any:
    if operation == "set":
        return to_state_value(value, path)
    if operation in ("increment", "decrement", "multiply"):
        default_amount = 1 if operation != "multiply" else _MISSING
        amount = by if by is not None else (value if value is not None else default_amount)
        if amount is _MISSING:
            raise StateError(f"cannot write {path!r}: multiply needs `by` or `value`")
        base = _number(0 if current is _MISSING else current, "the current value", path)
        amount = _number(amount, "the amount", path)
        if operation == "increment":
            return base + amount
        if operation == "decrement":
            return base - amount
        return base * amount
    if operation in ("append", "extend"):
        if current is not _MISSING:
            raise StateError(f"cannot {operation} to {path!r}: it holds {a_type(current)}")
        return _new_items(operation, value, path)
    # merge (the models allow no other operation)
    existing = {} if current is _MISSING else current
    if not isinstance(existing, dict) or not isinstance(value, dict):
        raise StateError(f"cannot merge into {path!r}: both sides must be objects")
    return {**existing, **to_state_value(value, path)}
