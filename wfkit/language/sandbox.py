"""The Jinja2 environment expressions run in: immutable, allow-listed, and bounded everywhere.

On top of Jinja2's immutable sandbox (no attribute escapes, no mutation of instances):

- every ``{% for %}`` iterates through a :class:`~wfkit.language.budget.BudgetIterator`, and ``~``
  goes through a size-checked join: the template is rewritten before code generation, so no
  loop can run outside the budget (a deadline checked only in calls and operators never fires
  in ``{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}``);
- calls and operators charge the budget and check the size of what they would build first;
- unbound methods of ``dict``/``list``/``set`` that mutate (``dict.update(raw, ...)``) are
  refused, so state, inputs, results and loop values are read-only inside expressions;
- every ``{{ }}`` output and every block (``{% set %}...{% endset %}``, macros) is size-checked.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable, Mapping, MutableMapping, MutableSequence, MutableSet
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from wfkit.language.budget import (
    LIMITS,
    BudgetIterator,
    check_chars,
    check_items,
    check_text_weight,
    emit,
    sized,
    spend,
    text_weight,
)
from wfkit.language.filters import checked_result, filters_for, join_size, replace_size

_MUTATORS: tuple[tuple[type, frozenset[str]], ...] = (
    (
        MutableSet,
        frozenset(
            {
                "add",
                "clear",
                "difference_update",
                "discard",
                "intersection_update",
                "pop",
                "remove",
                "symmetric_difference_update",
                "update",
            }
        ),
    ),
    (MutableMapping, frozenset({"clear", "pop", "popitem", "setdefault", "update"})),
    (
        MutableSequence,
        frozenset({"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"}),
    ),
    (
        deque,
        frozenset({"append", "appendleft", "clear", "extend", "extendleft", "pop", "popleft"}),
    ),
    (dict, frozenset({"clear", "pop", "popitem", "setdefault", "update"})),
    (list, frozenset({"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"})),
    (set, frozenset({"add", "clear", "discard", "pop", "remove", "update"})),
)


def _mutates(owner: type, name: str) -> bool:
    """Whether ``owner.name`` is a method that changes a container in place."""
    return any(issubclass(owner, kind) and name in names for kind, names in _MUTATORS)


_WIDTH = re.compile(r"\d+")


def _check_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse ``%``/``str.format`` whose widths (written or passed in) or values are too big."""
    for number in _WIDTH.findall(fmt):
        if len(number) > 7 or int(number) > LIMITS.max_chars:
            raise SecurityError(f"format width {number} is over the limit")
    values = [*args, *kwargs.values()]
    for value in values:  # ``'%*s' % (10**8, x)`` and ``'{:{}}'.format(x, 10**8)``
        if isinstance(value, int) and not isinstance(value, bool) and value > LIMITS.max_chars:
            raise SecurityError(f"format argument {value} is over the limit")
    check_chars(len(fmt) + text_weight(values), "formatted string")


def _check_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if name in {"ljust", "rjust", "center", "zfill"} and args and isinstance(args[0], int):
        check_chars(args[0], f"str.{name}")
    elif name == "expandtabs":
        check_chars(len(text) * (args[0] if args and isinstance(args[0], int) else 8), name)
    elif name == "replace" and len(args) >= 2:
        check_chars(replace_size(text, str(args[0]), str(args[1])), "str.replace")
    elif name == "join" and args:
        check_chars(join_size(args[0], text), "str.join")
    elif name in {"format", "format_map"}:
        mapping = args[0] if name == "format_map" and args else kwargs
        _check_format(text, args if name == "format" else (), mapping)
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((sized(v) for v in args[0].values()), default=1)
        check_chars(len(text) * max(longest, 1), "str.translate")


@pass_context
def _each(_context: Any, iterable: Any) -> BudgetIterator:
    """What ``{% for %}`` iterates: the same items, one budget step each."""
    return BudgetIterator(iterable)


def _concat(parts: list[Any]) -> str:
    """``a ~ b``: the text of each part, refused before it is built when too large."""
    size = 0
    for part in parts:
        size += len(part) if isinstance(part, str) else text_weight(part)
    check_chars(size, "~ concatenation")
    return "".join(str(part) for part in parts)


def bounded_concat(parts: Any) -> str:
    """Join rendered pieces, refusing once the text passes the character cap."""
    pieces: list[str] = []
    size = 0
    for piece in parts:
        size += len(piece)
        check_chars(size, "rendered text")
        pieces.append(piece)
    return "".join(pieces)


class _Bounder(NodeTransformer):
    """Rewrites a template so loops and ``~`` go through the budget."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_wfkit_each", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Const(self, node: nodes.Const) -> nodes.Node:
        if isinstance(node.value, float) and not math.isfinite(node.value):
            raise TemplateSyntaxError("number out of range (inf or nan)", node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        items = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(items, "_wfkit_concat", [], [], None, None, lineno=node.lineno)


def charge_output(value: Any) -> Any:
    """Every ``{{ }}`` of a text template: its text is refused before it is built when large."""
    if isinstance(value, str):
        emit(len(value))
    else:
        check_text_weight(value, "output")
        emit(text_weight(value))
    return value


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, bounded in work, time and size."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//", "-", "/"})
    concat = staticmethod(bounded_concat)

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        tree = _Bounder().visit(source)
        tree.set_environment(self)
        return super()._generate(tree, name, filename, defer_init)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        """Also refuse mutating methods reached through the type: ``dict.update``."""
        if isinstance(obj, type) and _mutates(obj, attr):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``x.name`` on a mapping is its key first: ``result.items`` is the "items" entry,
        not the dict method (Jinja's default order surprises workflow authors)."""
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        spend()
        if operator == "*":
            _check_product(left, right)
            return left * right
        if operator == "**":
            return _power(left, right)
        if operator == "+":
            if sized(left) and sized(right):
                size = sized(left) + sized(right)
                (check_chars if isinstance(left, str) else check_items)(size, "concatenation")
            return left + right
        if operator == "%":
            if isinstance(left, str):
                args = right if isinstance(right, tuple) else (right,)
                _check_format(left, args, right if isinstance(right, Mapping) else {})
            return left % right
        if operator == "-":
            return left - right
        if operator == "/":
            return left / right
        return left // right

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        spend()
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(method, "__objclass__", None)  # an unbound method: dict.update
        if isinstance(owner, type) and _mutates(owner, getattr(method, "__name__", "")):
            raise SecurityError(f"{owner.__name__}.{method.__name__} would change a value")
        bound_to = getattr(method, "__self__", None)
        if isinstance(bound_to, str):
            _check_str_method(bound_to, getattr(method, "__name__", ""), args, kwargs)
        return checked_result(super().call(__context, __obj, *args, **kwargs), "call")


def _check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > LIMITS.max_int_bits:
            raise SecurityError("integer product is too large")
    elif isinstance(right, int) and sized(left):
        _check_repeat(left, right)
    elif isinstance(left, int) and sized(right):
        _check_repeat(right, left)


def _check_repeat(seq: Any, times: int) -> None:
    size = sized(seq) * times
    (check_chars if isinstance(seq, (str, bytes)) else check_items)(size, "repetition")


def _power(left: Any, right: Any) -> Any:
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and abs(left) > 1
        and right > 0
        and right * math.log2(abs(left)) > LIMITS.max_int_bits
    ):
        raise SecurityError("power is too large")
    if isinstance(left, float) or isinstance(right, float):
        try:
            return float(left) ** float(right)
        except OverflowError as exc:
            raise SecurityError("power is too large") from exc
    return left**right


def _safe_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > LIMITS.max_range:
        raise SecurityError(f"range of {len(rng)} items is over the limit {LIMITS.max_range}")
    return rng


GLOBALS: dict[str, Any] = {
    "range": _safe_range,
    "dict": dict,
    "true": True,
    "false": False,
    "none": None,
}


def make_env(*, finalize: Callable[[Any], Any] | None = None) -> Sandbox:
    """A sandbox with the allowed filters and globals; ``finalize`` post-processes outputs."""

    def output(value: Any) -> Any:
        value = charge_output(value)
        return finalize(value) if finalize is not None else value

    env = Sandbox(undefined=StrictUndefined, finalize=output, autoescape=False)
    env.filters = filters_for(env.filters)
    env.filters["_wfkit_each"] = _each
    env.filters["_wfkit_concat"] = _concat
    env.globals = dict(GLOBALS)
    return env


__all__ = [
    "GLOBALS",
    "LIMITS",
    "Sandbox",
    "bounded_concat",
    "charge_output",
    "check_chars",
    "make_env",
]
