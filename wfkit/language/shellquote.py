"""Values templated into a shell command string reach the command as data, never as text.

Commands compile in an environment whose ``finalize`` (:func:`keep`) Jinja applies to every
``{{ }}`` output: it keeps the value aside and leaves a marker in the text. So the rendered
text is the author's text (template data, ``{% raw %}`` included) and markers, and nothing
else: no value can reach it another way. When the step runs, :func:`render_command` renders
the template and :func:`bind` replaces each marker with a reference to an environment
variable holding the value: ``echo {{ x }}`` runs as ``echo "${WFKIT_V1}"`` with
``WFKIT_V1`` set to the value. No byte of any value is ever parsed by the shell.

Blocks whose output bypasses ``finalize`` or rewrites rendered text (``{% filter %}``,
``{% call %}``, ``{% macro %}``, ``{% set %}...{% endset %}``) are refused at load, found in
Jinja's own parse tree. ``{% if %}``, ``{% for %}`` and ``{% set x = ... %}`` are free to use.

How a reference is written depends on where the value stands, read as ``/bin/sh`` reads it
(:mod:`wfkit.language.shellscan`): unquoted ``"${WFKIT_V1}"``; inside double quotes or an
unquoted here-document ``${WFKIT_V1}``; inside single quotes ``'"${WFKIT_V1}"'`` (the quote
is closed and reopened around it, which the shell reads as one word). Where no reference
means the value as written (after a backslash or a ``$``, inside backticks, ``${...}``,
arithmetic, ``$'...'``, a here-document with a quoted delimiter or one that opens an
expansion, next to a line continuation that splits an operator) the command is refused with
the fix: at load when the template has no ``{% %}`` blocks, else when the step runs.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from jinja2 import nodes, pass_context

from wfkit.errors import ExpressionError, InputError
from wfkit.language.sandbox import charge_output
from wfkit.language.shellscan import (
    BARE,
    COMMENT,
    DOUBLE,
    HEREDOC,
    MARK,
    SINGLE,
    Refused,
    Scanner,
)

VARIABLE = "WFKIT_V"
"""Values are ``WFKIT_V1``, ``WFKIT_V2``, ... in the command's environment."""

_FIX = 'pass the value in `env:` and write "$NAME" there, or give `command` as an argv list'
_VALUES: ContextVar[list[str] | None] = ContextVar("wfkit_shell_values", default=None)


def text_of(value: Any) -> str:
    """The text a value contributes to a command: lists and objects as JSON, None as ""."""
    if isinstance(value, (dict, list)):
        text = json.dumps(value)
    else:
        text = "" if value is None else str(value)
    return os_text(text, "a value templated into a shell command")


def os_text(text: str, what: str) -> str:
    """``text`` if a command line or an environment can carry it, else an InputError naming
    ``what``: no NUL byte, and no lone surrogate but those standing for undecodable bytes."""
    if MARK in text:
        raise InputError(
            f"{what} contains a NUL byte: {text[:40]!r}; a command line cannot carry it"
        )
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise InputError(
            f"{what} is not valid text: {text[:40]!r} (it holds a lone surrogate)"
        ) from None
    return text


@pass_context
def keep(context: Any, value: Any) -> str:
    """The ``finalize`` of command templates: every ``{{ }}`` output's value is kept aside and
    a marker stands in the text. (Taking the context keeps Jinja from applying it to constant
    outputs at compile time.)"""
    values = _VALUES.get()
    if values is None:
        raise ExpressionError("a shell command template is rendered only as a command")
    values.append(text_of(charge_output(value)))  # charged as any template's output is
    return f"{MARK}{len(values) - 1}{MARK}"


@dataclass(frozen=True)
class Placement:
    """Where one ``{{ }}`` stands in a command: its expression and quoting context."""

    expression: str
    context: str


@dataclass(frozen=True)
class ShellCommand:
    """A rendered command: what ``/bin/sh -c`` runs, the values it references, and the command
    as shown to people and test mocks (each value quoted for where it stands; never run)."""

    text: str
    env: dict[str, str] = field(default_factory=dict)
    shown: str = ""


def place_values(source: str, parse: Callable[[str], Any]) -> list[Placement]:
    """Check a command template at load: no NUL, no block that could put a value into the
    text (found in ``parse(source)``, Jinja's tree), and, when the template has no ``{% %}``
    block, every ``{{ }}`` in a place a reference means its value (else ExpressionError).
    Returns where each ``{{ }}`` stands (empty when blocks decide it at run time)."""
    if MARK in source:
        raise ExpressionError("a shell command cannot hold a NUL byte", expression=source)
    tree = parse(source)
    for node in tree.find_all((nodes.FilterBlock, nodes.CallBlock, nodes.Macro, nodes.AssignBlock)):
        word = {"FilterBlock": "filter", "CallBlock": "call", "Macro": "macro"}.get(
            type(node).__name__, "set"
        )
        raise ExpressionError(
            f"{{% {word} %}} rewrites the text of a shell command, so a value could become "
            f"part of it: use {{% if %}}, {{% for %}} and {{% set x = ... %}} with "
            f"{{{{ }}}} outputs, or {_FIX}",
            expression=source,
        )
    if _has_blocks(tree):
        return []
    sample, bodies = _sample(tree)
    found = _scan(sample, lambda i: f"{{{{ {bodies[i]} }}}}")
    return [Placement(bodies[i], context) for i, context, _ in found]


def _has_blocks(tree: Any) -> bool:
    """Whether anything but plain text and ``{{ }}`` outputs makes up the template."""
    return any(not isinstance(node, nodes.Output) for node in tree.body)


def _sample(tree: Any) -> tuple[str, list[str]]:
    """The text a block-free template renders with a marker for each output, and the outputs'
    expressions (as written, for messages)."""
    parts: list[str] = []
    bodies: list[str] = []
    for output in tree.body:
        for child in output.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append(child.data)
            else:
                parts.append(f"{MARK}{len(bodies)}{MARK}")
                bodies.append(_source_of(child))
    return "".join(parts), bodies


def _source_of(node: Any) -> str:
    """An output expression as the author wrote it, near enough for a message."""
    if isinstance(node, nodes.Name):
        return str(node.name)
    if isinstance(node, nodes.Getattr):
        return f"{_source_of(node.node)}.{node.attr}"
    if isinstance(node, nodes.Filter) and node.node is not None:
        return f"{_source_of(node.node)} | {node.name}"
    return "..." if not isinstance(node, nodes.Const) else repr(node.value)


@contextlib.contextmanager
def _collecting() -> Iterator[list[str]]:
    values: list[str] = []
    token = _VALUES.set(values)
    try:
        yield values
    finally:
        _VALUES.reset(token)


def render_command(render: Callable[[], Any]) -> Any:
    """``render()`` of a command field, bound: a :class:`ShellCommand` for a string (values as
    environment variables), an argv list as it is."""
    with _collecting() as values:
        rendered = render()
    if not isinstance(rendered, str):
        return rendered
    return bind(rendered, values)


def bind(rendered: str, values: list[str]) -> ShellCommand:
    """The command to run for ``rendered`` (a template's text with markers) and its values."""
    if not values:
        return ShellCommand(rendered, {}, rendered)
    found = _scan(rendered, lambda i: f"the value {values[i][:40]!r}")
    text: list[str] = []
    shown: list[str] = []
    env: dict[str, str] = {}
    position = 0
    for index, context, (start, end) in found:
        text.append(rendered[position:start])
        shown.append(rendered[position:start])
        name = f"{VARIABLE}{len(env) + 1}"
        env[name] = values[index]
        text.append(_REFERENCE[context].format(name=name))
        shown.append(_SHOWN[context](values[index]))
        position = end
    text.append(rendered[position:])
    shown.append(rendered[position:])
    return ShellCommand("".join(text), env, "".join(shown))


_REFERENCE = {
    BARE: '"${{{name}}}"',
    DOUBLE: "${{{name}}}",
    SINGLE: "'\"${{{name}}}\"'",
    HEREDOC: "${{{name}}}",
    COMMENT: "${{{name}}}",
}
_SHOWN: dict[str, Callable[[str], str]] = {
    BARE: shlex.quote,
    DOUBLE: lambda v: re.sub(r'([\\$`"])', r"\\\1", v),
    SINGLE: lambda v: v.replace("'", "'\\''"),
    HEREDOC: lambda v: v,
    COMMENT: lambda v: re.sub(r"[\r\n]", " ", v),
}


def shell_text(source: str, parse: Callable[[str], Any]) -> str | None:
    """What ``/bin/sh`` reads for the command template ``source``: its text with each value
    as its reference (``explain``); None when ``{% %}`` blocks decide it at run time."""
    tree = parse(source)
    if _has_blocks(tree):
        return None
    sample, bodies = _sample(tree)
    return bind(sample, [""] * len(bodies)).text if bodies else source


def unneeded_quotes(placements: list[Placement]) -> list[str]:
    """Notes for ``explain``: quotes written around a value are not needed."""
    return [
        f"the {p.context} quotes around {{{{ {p.expression} }}}} are unnecessary: each value "
        "reaches the command as data, whatever the quotes"
        for p in placements
        if p.context in (SINGLE, DOUBLE)
    ]


# --- reading the command as /bin/sh does ------------------------------------------------------


def _scan(text: str, name: Callable[[int], str]) -> list[tuple[int, str, tuple[int, int]]]:
    """Where each marker of ``text`` stands; a marker in a refused place is ExpressionError."""
    try:
        return Scanner(text).run()
    except Refused as refused:
        raise ExpressionError(
            f"{name(refused.index)} stands {refused.where} in the shell command, where a value "
            f"cannot be passed as data: {_FIX}",
            expression=text.replace(MARK, ""),
        ) from None
