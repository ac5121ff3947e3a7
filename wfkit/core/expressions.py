"""Jinja2 expressions in a bounded sandbox, compiled once and evaluated many times.

Three forms of a string (SPEC section 2):

- exactly one ``{{ expr }}``  -> the native value of ``expr`` (number, list, dict, bool);
- text around ``{{ }}``       -> the rendered string;
- no ``{{ }}``                -> a literal, unless the field takes a bare expression
                                 (``condition``, ``items``, ``transform``).

The sandbox refuses attribute escapes and I/O (Jinja2's immutable sandbox), allows only the
filters and globals listed here, and bounds what one expression can build: sequence and string
sizes, integer sizes, ``range`` lengths and evaluation time.
"""

from __future__ import annotations

import contextvars
import functools
import json
import math
import re
import time
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from wfkit.errors import ExpressionError, UndefinedVariableError


@dataclass(frozen=True)
class Limits:
    """Bounds on what a single expression may build or spend."""

    max_items: int = 1_000_000
    """Longest string (characters) or sequence (items) an operation may produce."""
    max_int_bits: int = 10_000
    max_range: int = 100_000
    max_seconds: float = 2.0


LIMITS = Limits()

_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("wfkit_deadline", default=0.0)


def _check_deadline() -> None:
    deadline = _deadline.get()
    if deadline and time.perf_counter() > deadline:
        raise SecurityError(f"expression took longer than {LIMITS.max_seconds} s")


def _check_size(size: int, what: str) -> None:
    if size > LIMITS.max_items:
        raise SecurityError(f"{what} would hold {size} items (limit {LIMITS.max_items})")


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple, dict, bytes)) else 0


_WIDTH = re.compile(r"\d+")


def _check_format_widths(fmt: str) -> None:
    for number in _WIDTH.findall(fmt):
        if len(number) > 7 or int(number) > LIMITS.max_items:
            raise SecurityError(f"format width {number} is over the limit")


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with operators on sequences and numbers bounded."""

    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_deadline()
        if operator == "*":
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > LIMITS.max_int_bits:
                    raise SecurityError("integer product is too large")
            elif isinstance(right, int) and _sized(left):
                _check_size(_sized(left) * right, "repetition")
            elif isinstance(left, int) and _sized(right):
                _check_size(_sized(right) * left, "repetition")
            return left * right
        if operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
                bits = right * math.log2(abs(left))
                if bits > LIMITS.max_int_bits:
                    raise SecurityError("power is too large")
            if isinstance(left, float) or isinstance(right, float):
                try:
                    return float(left) ** float(right)
                except OverflowError as exc:
                    raise SecurityError("power is too large") from exc
            return left**right
        if operator == "+":
            if _sized(left) and _sized(right):
                _check_size(_sized(left) + _sized(right), "concatenation")
            return left + right
        if operator == "%":
            if isinstance(left, str):
                _check_format_widths(left)
            return left % right
        return left // right

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``x.name`` on a mapping is its key first: ``result.items`` is the "items" entry,
        not the dict method (Jinja's default order surprises workflow authors)."""
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):
            _check_str_method(owner, getattr(method, "__name__", ""), args)
        return super().call(__context, __obj, *args, **kwargs)


def _check_str_method(text: str, name: str, args: tuple[Any, ...]) -> None:
    if name in {"ljust", "rjust", "center", "zfill"} and args and isinstance(args[0], int):
        _check_size(args[0], f"str.{name}")
    elif name == "expandtabs":
        _check_size(len(text) * (args[0] if args and isinstance(args[0], int) else 8), name)
    elif name == "replace" and len(args) >= 2:
        _check_size(_replace_size(text, str(args[0]), str(args[1])), "str.replace")
    elif name == "join" and args:
        _check_size(_join_size(args[0], text), "str.join")
    elif name in {"format", "format_map"}:
        _check_format_widths(text)


def _replace_size(text: str, old: str, new: str) -> int:
    count = text.count(old) if old else len(text) + 1
    return len(text) + count * (len(new) - len(old))


def _join_size(items: Any, sep: str) -> int:
    if not isinstance(items, (list, tuple, str, dict)):
        return 0
    n = len(items)
    return sum(len(str(i)) for i in items) + max(n - 1, 0) * len(sep)


def _safe_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > LIMITS.max_range:
        raise SecurityError(f"range of {len(rng)} items is over the limit {LIMITS.max_range}")
    return rng


def _join(value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = list(value)
    _check_size(_join_size(items, d), "join")
    if attribute is not None:
        items = [i[attribute] if isinstance(i, Mapping) else getattr(i, attribute) for i in items]
    return d.join(str(i) for i in items)


def _replace(value: str, old: str, new: str, count: int | None = None) -> str:
    value = str(value)
    _check_size(_replace_size(value, str(old), str(new)), "replace")
    return value.replace(str(old), str(new), -1 if count is None else count)


def _from_json(value: str) -> Any:
    _check_size(len(value), "from_json input")
    try:
        return json.loads(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"from_json: {exc}") from exc


def _to_json(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    return json.dumps(value, indent=indent, sort_keys=sort_keys, default=str)


def _regex_search(value: str, pattern: str, ignorecase: bool = False) -> str | None:
    _check_size(len(str(value)), "regex_search input")
    match = re.search(pattern, str(value), re.IGNORECASE if ignorecase else 0)
    if match is None:
        return None
    return match.group(1) if match.re.groups else match.group(0)


def _regex_replace(
    value: str, pattern: str, replacement: str = "", ignorecase: bool = False, count: int = 0
) -> str:
    text = str(value)
    _check_size(len(text), "regex_replace input")
    flags = re.IGNORECASE if ignorecase else 0
    matches = len(re.findall(pattern, text, flags))
    _check_size(len(text) + matches * len(replacement), "regex_replace result")
    return re.sub(pattern, replacement, text, count=count, flags=flags)


# Filters that cannot build unbounded output, plus bounded versions of those that could.
_ALLOWED_FILTERS = frozenset(
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
_EXTRA_FILTERS: dict[str, Callable[..., Any]] = {
    "join": _join,
    "replace": _replace,
    "from_json": _from_json,
    "to_json": _to_json,
    "regex_search": _regex_search,
    "regex_replace": _regex_replace,
}


def _make_env(*, finalize: Callable[[Any], Any] | None = None) -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, finalize=finalize, autoescape=False)
    env.filters = {k: v for k, v in env.filters.items() if k in _ALLOWED_FILTERS}
    env.filters.update(_EXTRA_FILTERS)
    env.globals = {"range": _safe_range, "dict": dict, "true": True, "false": False, "none": None}
    return env


def _shell_quote(value: Any) -> str:
    import shlex

    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    return shlex.quote("" if value is None else str(value))


ENV = _make_env()
_GLOBAL_NAMES = frozenset(ENV.globals)


def truthy(value: Any) -> bool:
    """Condition truth: Python's, except that the strings "false", "no", "0" are false."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "0", "none", "null")
    return bool(value)


class Scope(ChainMap[str, Any]):
    """The names an expression sees: layers searched in order, the sandbox's globals last."""


def make_scope(*layers: Mapping[str, Any]) -> Scope:
    """A :class:`Scope` over ``layers`` (searched first to last), then the globals.

    The layers are shared, not copied: later writes to them are visible.
    """
    return Scope(*cast("list[dict[str, Any]]", layers), ENV.globals)


SHELL_ENV = _make_env(finalize=_shell_quote)

_LONE = re.compile(r"^\s*\{\{(?P<body>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)
_TEMPLATE_MARK = re.compile(r"\{\{|\{%")


@dataclass(frozen=True)
class Expr:
    """One compiled expression or template string."""

    source: str
    kind: str  # "native" | "text" | "literal"
    references: frozenset[str] = frozenset()
    _code: Any = field(default=None, repr=False, compare=False)

    @property
    def is_literal(self) -> bool:
        """True when evaluation needs no scope at all."""
        return self.kind == "literal"

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """Evaluate against ``scope``; raise :class:`ExpressionError` subclasses on failure.

        A :class:`Scope` is used as it is; any other mapping gets the globals added.
        """
        if self.kind == "literal":
            return self.source
        token = _deadline.set(time.perf_counter() + LIMITS.max_seconds)
        try:
            if type(scope) is not Scope:
                scope = make_scope(scope)
            context = self._code.new_context(scope, shared=True)
            if self.kind == "native":
                for _ in self._code.root_render_func(context):
                    pass
                value = context.vars["result"]
                if isinstance(value, Undefined):
                    value._fail_with_undefined_error()
                return value
            return "".join(self._code.root_render_func(context))
        except UndefinedError as exc:
            raise self._undefined(exc) from None
        except SecurityError as exc:
            raise ExpressionError(
                f"expression {self.source!r} refused by the sandbox: {exc}", expression=self.source
            ) from None
        except ExpressionError:
            raise
        except Exception as exc:
            raise ExpressionError(
                f"expression {self.source!r} failed: {type(exc).__name__}: {exc}",
                expression=self.source,
            ) from exc
        finally:
            _deadline.reset(token)

    render = evaluate  # the same call as :meth:`Value.render`

    def _undefined(self, exc: UndefinedError) -> UndefinedVariableError:
        text = str(exc)
        match = re.search(r"'([^']+)' is undefined", text) or re.search(
            r"has no attribute '([^']+)'", text
        )
        name = match.group(1) if match else text
        full = next((r for r in sorted(self.references) if r.endswith("." + name)), name)
        return UndefinedVariableError(
            f"undefined name {full!r} in {self.source!r}", name=full, expression=self.source
        )


def compile_expr(source: Any, *, bare: bool = False, shell: bool = False) -> Expr:
    """Compile one string per the three forms; ``bare`` for fields that take expressions.

    Non-string values (numbers, booleans...) become literals. Compiled expressions are
    immutable, so equal sources share one compilation.
    """
    if not isinstance(source, str):
        return Expr(source=source, kind="literal")
    return _compile_cached(source, bare, shell)


@functools.lru_cache(maxsize=8192)
def _compile_cached(source: str, bare: bool, shell: bool) -> Expr:
    env = SHELL_ENV if shell else ENV
    try:
        lone = _LONE.match(source)
        if lone and not shell:
            return _compile_native(env, lone.group("body"), source)
        if _TEMPLATE_MARK.search(source):
            template = env.from_string(source)
            refs = _references(env.parse(source))
            return Expr(source=source, kind="text", references=refs, _code=template)
        if bare:
            return _compile_native(env, source, source)
    except TemplateSyntaxError as exc:
        raise ExpressionError(
            f"invalid expression {source!r}: {exc.message}", expression=source
        ) from None
    return Expr(source=source, kind="literal")


def _compile_native(env: _Sandbox, body: str, source: str) -> Expr:
    from jinja2.parser import Parser

    parser = Parser(env, body, state="variable")
    expr = parser.parse_expression()
    if not parser.stream.eos:
        raise TemplateSyntaxError(
            f"unexpected {parser.stream.current.value!r}", parser.stream.current.lineno
        )
    expr.set_environment(env)
    tree = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)], lineno=1)
    tree.set_environment(env)
    code = env.from_string(tree)
    return Expr(source=source, kind="native", references=_references(tree), _code=code)


def _references(tree: nodes.Node) -> frozenset[str]:
    """Dotted paths read by an expression: ``raw.items[0].x`` gives ``raw.items``."""
    found: set[str] = set()
    for node in tree.find_all((nodes.Name, nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Name):
            if node.ctx == "load":
                found.add(node.name)
            continue
        path = _static_path(node)
        if path:
            found.add(path)
    found -= _GLOBAL_NAMES
    try:  # names bound inside the template ({% for x in ... %}, {% set %}) are not references
        from jinja2 import meta

        free = meta.find_undeclared_variables(tree)  # type: ignore[arg-type]
        found = {p for p in found if p.split(".", 1)[0] in free}
    except Exception:  # pragma: no cover - a tree meta cannot walk: keep every name
        pass
    # keep only the longest paths: "raw" is implied by "raw.x"
    return frozenset(p for p in found if not any(o.startswith(p + ".") for o in found))


def _static_path(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Name):
        return node.name if node.ctx == "load" else None
    if isinstance(node, nodes.Getattr):
        base = _static_path(node.node)
        return f"{base}.{node.attr}" if base else None
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base = _static_path(node.node)
        if base and isinstance(node.arg.value, str):
            return f"{base}.{node.arg.value}"
        return base
    return None


class Value:
    """A YAML value whose strings may be templates, compiled once.

    Literal parts are returned as they are; templated parts are evaluated per call.
    """

    __slots__ = ("_render", "literal", "references", "source")

    def __init__(self, source: Any, *, shell: bool = False) -> None:
        self.source = source
        refs: set[str] = set()
        self._render = _compile_tree(source, refs, shell)
        self.references = frozenset(refs)
        self.literal = self._render is None

    def render(self, scope: Mapping[str, Any]) -> Any:
        """The value with every template in it evaluated against ``scope``."""
        if self._render is None:
            return self.source
        return self._render(scope)


def _compile_tree(
    source: Any, refs: set[str], shell: bool
) -> Callable[[Mapping[str, Any]], Any] | None:
    if isinstance(source, str):
        expr = compile_expr(source, shell=shell)
        if expr.is_literal:
            return None
        refs.update(expr.references)
        return expr.evaluate
    if isinstance(source, dict):
        parts = {k: _compile_tree(v, refs, shell) for k, v in source.items()}
        if all(p is None for p in parts.values()):
            return None
        return lambda scope: {
            k: (p(scope) if p is not None else source[k]) for k, p in parts.items()
        }
    if isinstance(source, list):
        items = [_compile_tree(v, refs, shell) for v in source]
        if all(p is None for p in items):
            return None
        return lambda scope: [p(scope) if p is not None else source[i] for i, p in enumerate(items)]
    return None
