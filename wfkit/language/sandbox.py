"""The Jinja2 environment expressions run in: immutable, allow-listed, and bounded everywhere.

On top of Jinja2's immutable sandbox (no attribute escapes, no mutation of instances):

- every ``{% for %}`` iterates through a :class:`~wfkit.language.budget.BudgetIterator`, and ``~``
  goes through a size-checked join: the template is rewritten before code generation, so no
  loop can run outside the budget (a deadline checked only in calls and operators never fires
  in ``{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}``);
- comparisons (``==``, ``<``, ``in``...), tests, calls, operators and slices charge the budget
  by the size of their operands (:func:`~wfkit.language.budget.charge`) and check the size of
  what they would build first; ``str.format`` checks each field's width and precision after
  its nested fields are filled in;
- unbound methods of ``dict``/``list``/``set`` that mutate (``dict.update(raw, ...)``) are
  refused, so state, inputs, results and loop values are read-only inside expressions;
- every ``{{ }}`` output and every block (``{% set %}...{% endset %}``, macros) is size-checked.
"""

from __future__ import annotations

import functools
import math
import re
import types
from collections import deque
from collections.abc import Callable, Mapping, MutableMapping, MutableSequence, MutableSet, Set
from typing import Any, cast

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.visitor import NodeTransformer

from wfkit.language.budget import (
    LIMITS,
    BudgetIterator,
    allocate,
    charge,
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
    """Refuse ``%`` formatting whose output could pass the cap: every width and precision,
    written (``'%999999s' * 300``) or passed in (``'%*s' % (10**8, x)``), counts in full."""
    widths = 0
    for number in _WIDTH.findall(fmt):
        if len(number) > 7 or int(number) > LIMITS.max_chars:
            raise SecurityError(f"format width {number} is over the limit")
        widths += int(number)
    values = [*args, *kwargs.values()]
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            if value > LIMITS.max_chars:
                raise SecurityError(f"format argument {value} is over the limit")
            widths += max(value, 0)
    check_chars(len(fmt) + widths + text_weight(values), "formatted string")


class _BoundedFormatter(SandboxedFormatter):
    """``str.format``/``format_map`` with each field checked once its spec is complete: a
    width or precision given through a nested field (``'{0:{1}}'.format(x, '2000000000')``)
    is a number in the final spec like any other, and the text built so far is counted."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self._size = 0

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None and not isinstance(value, str):
            check_text_weight(value, "formatted field")
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_widths(format_spec)
        if not isinstance(value, (str, int, float)):
            check_text_weight(value, "formatted field")
        charge(value)
        text = super().format_field(value, format_spec)
        self._size += len(text)
        check_chars(self._size, "formatted string")
        return text


def _check_widths(spec: str) -> None:
    """Refuse a format spec with any number (width, precision) over the character cap."""
    for number in _WIDTH.findall(spec):
        if len(number) > 7 or int(number) > LIMITS.max_chars:
            raise SecurityError(f"format width {number} is over the limit")


def _check_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    width = args[0] if args else kwargs.get("width", kwargs.get("tabsize"))
    if name in {"ljust", "rjust", "center", "zfill"} and isinstance(width, int):
        check_chars(width, f"str.{name}")
    elif name == "expandtabs":
        check_chars(len(text) * (width if isinstance(width, int) else 8), name)
    elif name == "replace" and len(args) >= 2:
        check_chars(replace_size(text, str(args[0]), str(args[1])), "str.replace")
    elif name == "join" and args:
        check_chars(join_size(args[0], text), "str.join")
    elif name == "translate" and args:
        table = args[0]
        parts = table.values() if isinstance(table, Mapping) else table
        longest = max((sized(v) for v in parts), default=1) if sized(table) else 1
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


@pass_context
def _operand(_context: Any, value: Any) -> Any:
    """A comparison's operand, charged by its size: ``==``, ``<`` and ``in`` touch all of it."""
    charge(value)
    return value


@pass_context
def _container(_context: Any, value: Any) -> Any:
    """The right side of ``in``: a mapping or set is a hash lookup (the key is charged as the
    left operand); a list, tuple or string is searched through."""
    if isinstance(value, (Mapping, Set)):
        spend()
    else:
        charge(value)
    return value


class _Bounder(NodeTransformer):
    """Rewrites a template so loops, comparisons and ``~`` go through the budget."""

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        node.expr = _charged(node.expr, "_wfkit_operand")
        for operand in node.ops:
            name = "_wfkit_container" if operand.op in {"in", "notin"} else "_wfkit_operand"
            operand.expr = _charged(operand.expr, name)
        return node

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


def _charged(node: nodes.Expr, name: str) -> nodes.Expr:
    """``node`` charged through filter ``name``; a literal needs no charge (its size is the
    template's own)."""
    if _literal(node):
        return node
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


def _literal(node: nodes.Node) -> bool:
    if isinstance(node, nodes.Const):
        return True
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return all(_literal(item) for item in node.items)
    return False


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
        if isinstance(obj, str) and attr == "encode":  # no bytes: they are not JSON, and
            return False  # their methods would need every str check again
        return super().is_safe_attribute(obj, attr, value)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``x.name`` on a mapping is its key first: ``result.items`` is the "items" entry,
        not the dict method (Jinja's default order surprises workflow authors)."""
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """``x[a:b]`` copies the slice: charged by its size, checked before it is built."""
        if isinstance(argument, slice) and sized(obj):
            count = len(range(*argument.indices(len(obj))))
            spend(1 + count // 16)
            allocate(count if isinstance(obj, (str, bytes)) else 8 * count, "slice")
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` through :class:`_BoundedFormatter`."""
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or (
            value.__name__ not in ("format", "format_map")
        ):
            return None
        text = value.__self__
        if not isinstance(text, str):
            return None
        is_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                mapping: Mapping[str, Any] = args[0]
                return str(_BoundedFormatter(self).vformat(text, (), mapping))
            return str(_BoundedFormatter(self).vformat(text, args, kwargs))

        return functools.update_wrapper(wrapper, value)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        charge(left, right)
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
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        name = getattr(method, "__name__", "")
        owner = getattr(method, "__objclass__", None)  # an unbound method: dict.update
        if isinstance(owner, type) and _mutates(owner, name):
            raise SecurityError(f"{owner.__name__}.{method.__name__} would change a value")
        bound_to = getattr(method, "__self__", None)
        if isinstance(bound_to, (Mapping, Set)) and name not in _WALKING_METHODS:
            charge(*args, *kwargs.values())  # a lookup: only the key is touched
        elif isinstance(bound_to, types.ModuleType):
            charge(*args, *kwargs.values())
        else:
            charge(bound_to, *args, *kwargs.values())
        if isinstance(bound_to, str):
            _check_str_method(bound_to, name, args, kwargs)
        if name == "fromkeys" or __obj is dict:
            return checked_result(_built_dict(method, args, kwargs), "call")
        return checked_result(super().call(__context, __obj, *args, **kwargs), "call")


def _built_dict(build: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[Any, Any]:
    """``dict(...)`` and ``dict.fromkeys(...)``, one insertion at a time, each charged: keys
    whose hashes collide make each insertion slower than the last, and the clock is looked
    at between insertions (one C call would insert them all, quadratic, unstoppable)."""
    if build is dict:
        source: Any = args[0] if args else ()
        pairs = source.items() if isinstance(source, Mapping) else source
        built: dict[Any, Any] = {}
        for key, value in BudgetIterator(pairs):
            built[key] = value
        built.update(kwargs)
        return built
    keys = args[0] if args else ()
    fill = args[1] if len(args) > 1 else kwargs.get("value")
    made: dict[Any, Any] = {}
    for key in BudgetIterator(keys):
        made[key] = fill
    return made


_WALKING_METHODS = frozenset(
    {
        "copy",
        "union",
        "intersection",
        "difference",
        "symmetric_difference",
        "issubset",
        "issuperset",
        "isdisjoint",
        "fromkeys",
    }
)
"""Methods of a mapping or set that touch every item (the others look one key up)."""


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


def _charged_test(test: Callable[..., Any]) -> Callable[..., Any]:
    """A test (``is eq``, ``is in``, ``select('equalto', x)``) charged by its operands."""

    @functools.wraps(test)
    def charged(value: Any, *args: Any) -> Any:
        if test.__name__ == "test_in" and args and isinstance(args[0], (Mapping, Set)):
            charge(value)
        else:
            charge(value, *args)
        return test(value, *args)

    return charged


def make_env(*, finalize: Callable[[Any], Any] | None = None) -> Sandbox:
    """A sandbox with the allowed filters and globals; ``finalize`` post-processes outputs."""

    def output(value: Any) -> Any:
        value = charge_output(value)
        return finalize(value) if finalize is not None else value

    env = Sandbox(undefined=StrictUndefined, finalize=output, autoescape=False)
    env.filters = filters_for(env.filters)
    env.filters["_wfkit_each"] = _each
    env.filters["_wfkit_concat"] = _concat
    env.filters["_wfkit_operand"] = _operand
    env.filters["_wfkit_container"] = _container
    env.tests = {name: _charged_test(cast(Any, test)) for name, test in env.tests.items()}
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
