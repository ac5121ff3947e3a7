"""Jinja2 expressions in a bounded sandbox, compiled once and evaluated many times.

Three forms of a string (SPEC section 2):

- exactly one ``{{ expr }}``  -> the native value of ``expr`` (number, list, dict, bool);
- text around ``{{ }}``       -> the rendered string;
- no ``{{ }}``                -> a literal, unless the field takes a bare expression
                                 (``condition``, ``items``, ``transform``).

The sandbox (:mod:`wfkit.language.sandbox`) refuses attribute escapes, I/O and mutation, allows
only the filters (:mod:`wfkit.language.filters`) and globals listed there, and bounds every
evaluation by a budget (:mod:`wfkit.language.budget`): steps of work, time, and the size of what
it builds. A native result must be JSON data.
"""

from __future__ import annotations

import contextlib
import functools
import marshal
import re
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, cast

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError

from wfkit.errors import ExpressionError, UndefinedVariableError, WfkitError
from wfkit.language import shellquote
from wfkit.language.budget import LIMITS, budgeted
from wfkit.language.native import json_result
from wfkit.language.sandbox import Sandbox, bounded_concat, make_env

__all__ = ["LIMITS", "Expr", "Scope", "Value", "compile_expr", "make_scope", "truthy"]


ENV = make_env()
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


SHELL_ENV = make_env()
SHELL_ENV.finalize = shellquote.keep  # every {{ }} output kept aside as data, a marker in the text

_LONE = re.compile(r"^\s*\{\{(?P<body>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)
_TEMPLATE_MARK = re.compile(r"\{\{|\{%")


@dataclass(frozen=True)
class Expr:
    """One compiled expression or template string."""

    source: str
    kind: str  # "native" | "text" | "literal"
    references: frozenset[str] = frozenset()
    _code: Any = field(default=None, repr=False, compare=False)
    #: the Python code jinja2 generated (what a compile cache entry keeps)
    _raw: CodeType | None = field(default=None, repr=False, compare=False)

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
        try:
            with budgeted():
                if type(scope) is not Scope:
                    scope = make_scope(scope)
                context = self._code.new_context(scope, shared=True)
                if self.kind == "native":
                    for _ in self._code.root_render_func(context):
                        pass
                    return json_result(context.vars["result"], self.source)
                return bounded_concat(self._code.root_render_func(context))
        except UndefinedError as exc:
            raise self._undefined(exc, scope) from None
        except SecurityError as exc:
            raise ExpressionError(
                f"expression {self.source!r} refused by the sandbox: {exc}", expression=self.source
            ) from None
        except WfkitError:
            raise
        except RecursionError:
            raise ExpressionError(
                f"expression {self.source!r} failed: it nests or recurses too deeply",
                expression=self.source,
            ) from None
        except MemoryError:
            raise ExpressionError(
                f"expression {self.source!r} failed: out of memory", expression=self.source
            ) from None
        except Exception as exc:
            raise ExpressionError(
                f"expression {self.source!r} failed: {type(exc).__name__}: {exc}",
                expression=self.source,
            ) from exc

    render = evaluate  # the same call as :meth:`Value.render`

    def _undefined(self, exc: UndefinedError, scope: Mapping[str, Any]) -> UndefinedVariableError:
        text = str(exc)
        match = re.search(r"'([^']+)' is undefined", text) or re.search(
            r"has no attribute '([^']+)'", text
        )
        name = match.group(1) if match else text
        full = next((r for r in sorted(self.references) if r.endswith("." + name)), name)
        return UndefinedVariableError(
            f"undefined name {full!r} in {self.source!r}{_hint(full, scope)}",
            name=full,
            expression=self.source,
        )


def _hint(full: str, scope: Mapping[str, Any]) -> str:
    """A did-you-mean for an undefined name, from what the scope holds: the names, or the
    keys of the mapping a dotted name stopped in (listed when few)."""
    from wfkit.language.diagnostics import suggest  # only when a name is undefined

    parts = full.split(".")
    if parts[0] not in scope:
        names = sorted(k for k in scope if isinstance(k, str) and not k.startswith("_"))
        return suggest(parts[0], names)
    value: Any = scope[parts[0]]
    for part in parts[1:-1]:
        if not isinstance(value, Mapping) or part not in value:
            return ""
        value = value[part]
    if not isinstance(value, Mapping):
        return ""
    keys = sorted(str(k) for k in value)
    listed = (
        f" ({'.'.join(parts[:-1])} has: {', '.join(keys[:12])}{', ...' if len(keys) > 12 else ''})"
    )
    return suggest(parts[-1], keys) + (listed if keys else f" ({'.'.join(parts[:-1])} is empty)")


def compile_expr(source: Any, *, bare: bool = False, shell: bool = False) -> Expr:
    """Compile one string per the three forms; ``bare`` for fields that take expressions.

    Non-string values (numbers, booleans...) become literals. Compiled expressions are
    immutable, so equal sources share one compilation.
    """
    if not isinstance(source, str):
        return Expr(source=source, kind="literal")
    expr = _compile_cached(source, bare, shell)
    recorded = _RECORDED.get()
    if recorded is not None and expr._raw is not None:
        recorded[(source, bare, shell)] = expr
    return expr


#: what :func:`compile_expr` compiles from ``(source, bare, shell)``, as a compile cache
#: keeps it: the kind, the references and the code (``marshal``)
Compiled = tuple[str, tuple[str, ...], bytes]
_RECORDED: ContextVar[dict[tuple[str, bool, bool], Expr] | None] = ContextVar(
    "recorded", default=None
)
_PRECOMPILED: ContextVar[Mapping[tuple[str, bool, bool], Compiled] | None] = ContextVar(
    "precompiled", default=None
)


@contextlib.contextmanager
def recording() -> Iterator[dict[tuple[str, bool, bool], Compiled]]:
    """Collect what is compiled inside the block (for a compile cache entry); the table is
    filled when the block ends."""
    recorded: dict[tuple[str, bool, bool], Expr] = {}
    table: dict[tuple[str, bool, bool], Compiled] = {}
    token = _RECORDED.set(recorded)
    try:
        yield table
    finally:
        _RECORDED.reset(token)
    for key, expr in recorded.items():
        assert expr._raw is not None
        table[key] = (expr.kind, tuple(sorted(expr.references)), marshal.dumps(expr._raw))


@contextlib.contextmanager
def precompiled(table: Mapping[tuple[str, bool, bool], Compiled]) -> Iterator[None]:
    """Inside the block, an expression in ``table`` (from a compile cache entry, written by
    this same build) is rebuilt from its code instead of being parsed and compiled again."""
    token = _PRECOMPILED.set(table)
    try:
        yield
    finally:
        _PRECOMPILED.reset(token)


@functools.lru_cache(maxsize=8192)
def _compile_cached(source: str, bare: bool, shell: bool) -> Expr:
    env = SHELL_ENV if shell else ENV
    known = (_PRECOMPILED.get() or {}).get((source, bare, shell))
    if known is not None:
        with contextlib.suppress(Exception):  # an entry that does not load: compile it
            kind, references, blob = known
            code = marshal.loads(blob)
            return Expr(source, kind, frozenset(references), _template(env, code), code)
    with budgeted():  # constant folding runs filters at compile time: bound it too
        return _compile(env, source, bare, shell)


def _template(env: Sandbox, code: CodeType) -> Any:
    """The jinja2 template of generated ``code`` (what ``env.from_string`` ends with)."""
    return env.template_class.from_code(env, code, env.make_globals(None))


def _compile(env: Sandbox, source: str, bare: bool, shell: bool) -> Expr:
    try:
        lone = _LONE.match(source)
        if lone and not shell:
            return _compile_native(env, lone.group("body"), source)
        if _TEMPLATE_MARK.search(source):
            tree = env.parse(source)
            refs = _references(tree, binds="{%" in source)  # before code generation
            if shell:  # refuses what could put a value into the text, or where it stands
                shellquote.place_values(source, env.parse)
            code = env.compile(tree)
            return Expr(source, "text", refs, _template(env, code), code)
        if bare:
            return _compile_native(env, source, source)
    except TemplateSyntaxError as exc:
        raise ExpressionError(
            f"invalid expression {source!r}: {exc.message}", expression=source
        ) from None
    except RecursionError:
        raise ExpressionError(
            f"invalid expression {source!r}: it nests too deeply to compile", expression=source
        ) from None
    return Expr(source=source, kind="literal")


def _compile_native(env: Sandbox, body: str, source: str) -> Expr:
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
    references = _references(tree, binds=False)  # before code generation rewrites the tree
    code = env.compile(tree)
    return Expr(source, "native", references, _template(env, code), code)


def _references(tree: nodes.Node, binds: bool) -> frozenset[str]:
    """Dotted paths read by an expression: ``raw.items[0].x`` gives ``raw.items``.

    ``binds``: the tree may bind names (only statements do: ``{% for %}``, ``{% set %}``,
    ``{% with %}``, macros); those are found through jinja2's analysis, which costs about
    a code generation, so a lone expression or a template without ``{%`` skips it.
    """
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
    if binds:  # names bound inside the template ({% for x in ... %}, {% set %}) are not read
        try:
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

    __slots__ = ("_render", "literal", "references", "shell", "source")

    def __init__(self, source: Any, *, shell: bool = False) -> None:
        self.source = source
        self.shell = shell  # a command string: render it with shellquote.render_command
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
