"""The native value of an expression must be JSON data: state, results and reports hold it."""

from __future__ import annotations

from collections.abc import ItemsView, KeysView, Mapping, ValuesView
from typing import Any

from jinja2.runtime import Undefined

from wfkit.errors import ExpressionError

_SCALARS = (str, int, float, bool, type(None))


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
    stack = [value]
    while stack:  # iterative: a 3000-deep value cannot exhaust the stack
        item = stack.pop()
        if isinstance(item, _SCALARS):
            continue
        if isinstance(item, Undefined):
            item._fail_with_undefined_error()
        if isinstance(item, Mapping):
            for key in item:
                if not isinstance(key, _SCALARS):
                    raise _not_json(key, source, "a key")
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
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
