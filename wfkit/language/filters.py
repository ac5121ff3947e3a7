"""The filters an expression may use: Jinja2's harmless ones, bounded, plus wfkit's own.

Each allowed filter runs through :func:`bounded`: it charges the evaluation's budget by the
size of its input and arguments (sorting filters by size times depth of the comparison tree;
case-insensitive ones also charge the memory of the folded keys they build), refuses inputs
whose text would pass the character cap before stringifying them, checks the size of what it
returns, and makes lazy results (``map``, ``select``...) charge per item. Filters that can
build large values from small arguments (``batch``, ``slice``, ``sum``, ``join``,
``replace``) are checked before they allocate. Regular expressions use RE2, which runs in
time linear in the input (no backtracking).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from jinja2 import pass_environment
from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter

from wfkit.language.budget import (
    ITEM_BYTES,
    LIMITS,
    BudgetIterator,
    allocate,
    charge,
    charge_sort,
    check_chars,
    check_items,
    check_text_weight,
    folded_bytes,
    limit_chars,
    limit_items,
    sized,
    spend,
    text_weight,
)

if TYPE_CHECKING:
    from jinja2 import Environment

ALLOWED = frozenset(
    {
        "abs",
        "attr",
        "batch",
        "capitalize",
        "count",
        "d",
        "default",
        "dictsort",
        "e",
        "escape",
        "filesizeformat",
        "first",
        "float",
        "groupby",
        "int",
        "items",
        "last",
        "length",
        "list",
        "lower",
        "map",
        "max",
        "min",
        "reject",
        "rejectattr",
        "reverse",
        "round",
        "select",
        "selectattr",
        "slice",
        "sort",
        "string",
        "sum",
        "title",
        "trim",
        "truncate",
        "unique",
        "upper",
        "urlencode",
        "wordcount",
    }
)
"""Jinja2 built-ins that cannot do I/O; ``center``, ``indent``, ``format``, ``wordwrap``,
``tojson``, ``pprint`` and friends are left out (they build text from a width argument)."""

_CONSTANT_COST = frozenset(
    {"length", "count", "first", "last", "default", "d", "attr", "abs", "int", "float", "round"}
    | {"regex_search", "regex_replace"}  # RE2 is linear in C; replace charges per match
)
"""Filters that look at their input without walking it: no charge per item."""

_STRUCTURAL = frozenset(
    {"list", "map", "select", "reject", "selectattr", "rejectattr", "batch", "slice", "items"}
    | {"sum"}
)
"""Filters that move references to their items without touching the items' contents: one
step per item (the tests and filters they apply to items are charged on their own)."""

_SORTING = frozenset({"sort", "unique", "min", "max", "groupby", "dictsort"})
"""Filters that compare their items with each other: charged by size times the depth of the
comparison tree; a lazy input is gathered first (charged per item), so it can be weighed.
Case-insensitive by default, they build a folded copy of every string as its key."""

_STRINGIFYING = frozenset(
    {
        "string",
        "e",
        "escape",
        "urlencode",
        "upper",
        "lower",
        "title",
        "capitalize",
        "trim",
        "truncate",
        "wordcount",
        "reverse",
        "replace",
        "regex_search",
        "regex_replace",
        "from_json",
    }
)
"""Filters that turn a non-string input into its text first."""


def _check_sorting(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    charge_sort(value)
    sensitive = kwargs.get("case_sensitive", False)
    if name in {"sort", "dictsort"} and len(args) > 1:
        sensitive = args[1] if name == "sort" else args[0]
    elif name in {"unique", "min", "max"} and args:
        sensitive = args[0]
    if not sensitive:
        allocate(folded_bytes(value), f"{name} filter's case-insensitive keys")


def _check_int(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse ``'v'*1000000 | int(base=32)`` before parsing: its digits give its size."""
    if not isinstance(value, (str, bytes)):
        return
    base = kwargs.get("base", args[1] if len(args) > 1 else 10)
    base = base if isinstance(base, int) and 2 <= base <= 36 else 16
    digits = len(value.strip())
    if digits * math.log2(base) > LIMITS.max_int_bits + 64:
        raise SecurityError(
            f"int of a {digits}-character text would pass {LIMITS.max_int_bits} bits"
        )


def _check_batch(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    count = kwargs.get("linecount", args[0] if args else 1)
    if isinstance(count, int):
        check_items(count, "batch")


def _check_slice(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    count = kwargs.get("slices", args[0] if args else 1)
    if isinstance(count, int) and count > LIMITS.max_range:
        raise SecurityError(f"slice into {count} parts is over the limit {LIMITS.max_range}")


def _check_round(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    precision = kwargs.get("precision", args[0] if args else 0)
    if isinstance(precision, int) and abs(precision) > MAX_ROUND_DIGITS:
        raise SecurityError(f"round to {precision} digits is over the limit {MAX_ROUND_DIGITS}")


MAX_ROUND_DIGITS = 400
"""Most digits ``round`` may keep or drop (a float has about 17; ``round`` computes
``10 ** precision``)."""

_ARGUMENT_CHECKS: dict[str, Callable[[tuple[Any, ...], dict[str, Any]], None]] = {
    "batch": _check_batch,
    "slice": _check_slice,
    "round": _check_round,
}


def bounded(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with the budget charged and its input and output sizes bounded."""
    offset = 1 if hasattr(func, "jinja_pass_arg") else 0  # context/environment comes first
    check_arguments = _ARGUMENT_CHECKS.get(name)

    @functools.wraps(func)  # keeps ``jinja_pass_arg``
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if len(args) > offset:
            value = args[offset]
            if name in _SORTING:
                if isinstance(value, Iterator):
                    items = value if isinstance(value, BudgetIterator) else BudgetIterator(value)
                    value = list(items)
                    check_items(len(value), f"{name} filter")
                    args = (*args[:offset], value, *args[offset + 1 :])
                _check_sorting(name, value, args[offset + 1 :], kwargs)
            elif name in _CONSTANT_COST:
                spend()
                if name == "int":
                    _check_int(value, args[offset + 1 :], kwargs)
            elif name in _STRUCTURAL:
                spend(1 + sized(value))
            else:
                charge(value, *args[offset + 1 :], *kwargs.values())
            if name in _STRINGIFYING and not isinstance(value, str):
                check_text_weight(value, f"{name} filter")
            if isinstance(value, Iterator) and not isinstance(value, BudgetIterator):
                args = (*args[:offset], BudgetIterator(value), *args[offset + 1 :])
        if check_arguments is not None:
            check_arguments(args[offset + 1 :], kwargs)
        return checked_result(func(*args, **kwargs), f"{name} filter")

    return wrapper


def checked_result(value: Any, what: str) -> Any:
    """Refuse an over-size string or list and charge its memory; make a lazy result charge
    per item."""
    if isinstance(value, str):
        check_chars(len(value), what)
    elif isinstance(value, (list, tuple)):
        check_items(len(value), what)
        allocate(ITEM_BYTES * len(value), what)
    elif isinstance(value, dict):
        check_items(len(value), what)
        allocate(2 * ITEM_BYTES * len(value), what)
    elif isinstance(value, Iterator) and not isinstance(value, BudgetIterator):
        return BudgetIterator(value)
    return value


# wfkit's own filters and bounded replacements ------------------------------------------


def join_size(items: Any, sep: str) -> int:
    """Characters of ``sep.join(str(i) for i in items)``, estimated without building it."""
    if not isinstance(items, (list, tuple, str, dict)):
        return 0
    n = len(items)
    weight = sum(len(i) if isinstance(i, str) else text_weight(i) for i in items)
    return weight + max(n - 1, 0) * len(sep)


def replace_size(text: str, old: str, new: str) -> int:
    """Length of ``text.replace(old, new)``, computed without building it."""
    count = text.count(old) if old else len(text) + 1
    return len(text) + count * (len(new) - len(old))


@pass_environment
def _join(env: Environment, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = list(BudgetIterator(value))
    if attribute is not None:
        getter = make_attrgetter(env, attribute)
        items = [getter(i) for i in items]
    check_chars(join_size(items, str(d)), "join")
    return str(d).join(str(i) for i in items)


def _replace(value: str, old: str, new: str, count: int | None = None) -> str:
    value = str(value)
    check_chars(replace_size(value, str(old), str(new)), "replace")
    return value.replace(str(old), str(new), -1 if count is None else count)


@pass_environment
def _sum(env: Environment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    items: Iterable[Any] = BudgetIterator(iterable)
    if attribute is not None:
        getter = make_attrgetter(env, attribute)
        items = (getter(i) for i in items)
    if isinstance(start, (str, bytes)):
        raise TypeError("sum() can't sum strings (use join)")
    if isinstance(start, (list, tuple)):
        # linear, where ``start + a + b ...`` would copy the growing list at every item
        parts: list[Any] = [start]
        size = len(start)
        for item in items:
            if not isinstance(item, type(start)):
                raise TypeError(f"sum(): cannot add {type(item).__name__} to a list")
            size += len(item)
            limit_items(size, "sum")
            parts.append(item)
        return type(start)(itertools.chain.from_iterable(parts))
    total = start
    for item in items:
        total = total + item
    return total


def _from_json(value: str) -> Any:
    text = str(value)
    limit_chars(len(text), "from_json input")
    try:
        return json.loads(text, parse_int=_bounded_int)
    except RecursionError as exc:
        raise ValueError("from_json: the document is nested too deeply") from exc
    except (TypeError, ValueError) as exc:
        raise ValueError(f"from_json: {exc}") from exc


def _bounded_int(digits: str) -> int:
    """A JSON integer, refused past the integer bound before it is parsed."""
    if (len(digits) - 1) * math.log2(10) > LIMITS.max_int_bits:
        raise SecurityError(f"from_json: a {len(digits)}-digit integer is over the limit")
    return int(digits)


def _not_json(value: Any) -> Any:
    raise TypeError(f"a {type(value).__name__} is not JSON data")


def _to_json(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    if indent is not None and not 0 <= int(indent) <= LIMITS.max_json_indent:
        raise SecurityError(f"to_json indent is limited to {LIMITS.max_json_indent}")
    check_text_weight(value, "to_json")
    return json.dumps(value, indent=indent, sort_keys=sort_keys, default=_not_json)


# regular expressions: RE2, linear in the size of the input ----------------------------


@functools.lru_cache(maxsize=512)
def _pattern(pattern: str, ignorecase: bool) -> Any:
    import re2  # type: ignore[import-untyped]  # ~6 ms: only when a regex filter runs

    options = re2.Options()
    options.log_errors = False  # RE2 would print parse errors on stderr
    options.case_sensitive = not ignorecase
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(
            f"regular expression {pattern!r} is not supported ({reason}): wfkit uses RE2, "
            "which runs in linear time and has no backreferences or lookaround"
        ) from None


def linear_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (searching is linear in the text); ValueError when RE2
    cannot compile it."""
    return _pattern(pattern, False)


def _regex_search(value: str, pattern: str, ignorecase: bool = False) -> str | None:
    text = str(value)
    limit_chars(len(text), "regex_search input")
    match = _pattern(str(pattern), bool(ignorecase)).search(text)
    if match is None:
        return None
    found: str | None = match.group(1) if match.re.groups else match.group(0)
    return found


#: a group reference in a replacement: ``\g<name>``, ``\g<0>`` or ``\1`` to ``\99``
_GROUP_REFERENCE = re.compile(r"\\g<([^>]*)>|\\(\d{1,2})")


def _group_size(match: Any, ref: int | str) -> int:
    """The length of group ``ref`` of ``match`` (0 for one it does not have: ``expand``
    reports that)."""
    try:
        return len(match.group(ref) or "")
    except (IndexError, KeyError, TypeError, ValueError):
        return 0


def _regex_replace(
    value: str, pattern: str, replacement: str = "", ignorecase: bool = False, count: int = 0
) -> str:
    text = str(value)
    limit_chars(len(text), "regex_replace input")
    size = len(text)

    template = str(replacement)
    references = [
        int(ref) if ref.isdigit() else ref
        for ref in (a or b for a, b in _GROUP_REFERENCE.findall(template))
    ]

    def expand(match: Any) -> str:
        # each expansion (``\g<0>`` repeated included) is charged at its largest size before
        # it is built: the template's own length plus every group it names
        nonlocal size
        spend()
        largest = len(template) + sum(_group_size(match, ref) for ref in references)
        check_chars(size + largest - (match.end() - match.start()), "regex_replace result")
        piece: str = match.expand(template)
        size += len(piece) - (match.end() - match.start())
        return piece

    result: str = _pattern(str(pattern), bool(ignorecase)).sub(expand, text, count=int(count))
    return result


OWN: dict[str, Callable[..., Any]] = {
    "join": _join,
    "replace": _replace,
    "sum": _sum,
    "from_json": _from_json,
    "to_json": _to_json,
    "regex_search": _regex_search,
    "regex_replace": _regex_replace,
}


def filters_for(builtin: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The filter table of a sandboxed environment: allowed built-ins and wfkit's, bounded."""
    table = {k: v for k, v in builtin.items() if k in ALLOWED}
    table.update(OWN)
    return {name: bounded(name, func) for name, func in table.items()}
