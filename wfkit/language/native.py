"""The native value of an expression must be JSON data: state, results and reports hold it."""

from __future__ import annotations

from collections.abc import ItemsView, KeysView, Mapping, ValuesView
from typing import Any

from jinja2.runtime import Undefined

from wfkit.errors import ExpressionError

_SCALARS = (str, int, float, bool, type(None))


MAX_RESULT_CHARS = 10_000_000
"""Most characters the JSON of a native result may take (the default ``max_state_bytes``)."""
MAX_DEPTH = 100
"""Deepest nesting of a native result (the bound of state values)."""


def json_result(value: Any, source: str) -> Any:
    """``value`` when it is JSON data (ranges, tuples and dict views become lists).

    Anything else (a template reference, a method, a generator, a set...) is an
    :class:`ExpressionError` naming the type, never a serialization traceback later.
    """
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, (range, tuple, KeysView, ValuesView, ItemsView)):
        value = [list(v) if isinstance(v, tuple) else v for v in value]
    stack = [(value, 0)]
    size = 0
    while stack:  # iterative: a 3000-deep value cannot exhaust the stack
        item, depth = stack.pop()
        if isinstance(item, str):
            size += len(item) + 2
        elif isinstance(item, _SCALARS):
            size += 8
        if size > MAX_RESULT_CHARS:
            raise ExpressionError(
                f"expression {source!r} gave a value of over {MAX_RESULT_CHARS} characters"
                " (the bound of a native result)",
                expression=source,
            )
        if isinstance(item, _SCALARS):
            continue
        if isinstance(item, Undefined):
            item._fail_with_undefined_error()
        if depth >= MAX_DEPTH:
            raise ExpressionError(
                f"expression {source!r} gave a value nested deeper than {MAX_DEPTH} levels",
                expression=source,
            )
        if isinstance(item, Mapping):
            for key in item:
                if not isinstance(key, _SCALARS):
                    raise _not_json(key, source, "a key")
            size += 4 * len(item)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, (list, tuple)):
            size += 2 * len(item)
            stack.extend((child, depth + 1) for child in item)
        else:
            raise _not_json(item, source, "a part" if item is not value else "")
    return value


def _not_json(item: Any, source: str, where: str) -> ExpressionError:
    kind = type(item).__name__
    hint = ""
    if hasattr(item, "__next__") or kind == "generator":
        kind, hint = "generator (a lazy sequence)", "; add `| list`"
    elif kind in {"set", "frozenset"}:
        hint = "; add `| list`"
    prefix = f"{where} of its value" if where else "its value"
    return ExpressionError(
        f"expression {source!r} is not JSON data: {prefix} is a {kind}{hint}",
        expression=source,
    )
