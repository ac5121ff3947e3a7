"""Values templated into a shell command string reach the command as data, never as text.

At load, :func:`place_values` rewrites each ``{{ }}`` of a ``command`` template to pass its
value through one filter, which keeps the value aside and leaves a marker in the text. When
the step runs, :func:`render_command` renders the template and :func:`bind` replaces each
marker with a reference to an environment variable holding the value: ``echo {{ x }}``
runs as ``echo "${WFKIT_V1}"`` with ``WFKIT_V1`` set to the value. The text handed to
``/bin/sh`` is the author's text and those references, and nothing else: no byte of any
value is ever parsed by the shell, whatever the value and whatever the author's quoting.

Only ``{{ }}`` outputs put values into the text, so the template may use ``{% if %}``,
``{% for %}`` and ``{% set x = ... %}`` freely; blocks that rewrite rendered text
(``{% filter %}``, ``{% call %}``, ``{% macro %}``, ``{% set %}...{% endset %}``) are refused
at load.

How a reference is written depends on where the value stands, read as ``/bin/sh`` reads it:
unquoted ``"${WFKIT_V1}"``; inside double quotes or an unquoted here-document
``${WFKIT_V1}``; inside single quotes ``'"${WFKIT_V1}"'`` (the quote is closed and reopened
around it, which the shell reads as one word). Where no reference means the value as written
(after a backslash or a ``$``, inside backticks, ``${...}``, ``$((...))``, ``$'...'`` or a
here-document with a quoted delimiter), the command is refused with the fix: at load when the
template has no ``{% %}`` blocks, else when the step runs.
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

from wfkit.errors import ExpressionError, InputError
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

_TAG = re.compile(r"\{\{(?P<open>[-+]?)(?P<body>.*?)(?P<close>[-+]?)\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
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


def _keep(value: Any) -> str:
    """The filter every ``{{ }}`` of a command goes through: the value is kept, a marker
    stands in the text."""
    values = _VALUES.get()
    if values is None:
        raise ExpressionError("a shell command template is rendered only as a command")
    values.append(text_of(value))
    return f"{MARK}{len(values) - 1}{MARK}"


FILTERS: dict[str, Callable[[Any], str]] = {"_wfkit_sh_value": _keep}


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

    def __str__(self) -> str:
        return self.shown or self.text


def place_values(source: str) -> tuple[str, list[Placement]]:
    """The command template with each ``{{ }}`` kept aside as data, and where each stands
    (known when the template has no ``{% %}`` block; a refused place is an ExpressionError)."""
    if MARK in source:
        raise ExpressionError("a shell command cannot hold a NUL byte", expression=source)
    _refuse_rewriting_blocks(source)
    out: list[str] = []
    bodies: list[str] = []
    position = 0
    for match in _TAG.finditer(source):
        out.append(source[position : match.start()])
        position = match.end()
        body = match.group("body")
        if body is None:  # {% %} and {# #} put no text in the command themselves
            out.append(match.group(0))
            continue
        bodies.append(body.strip())
        opener, closer = match.group("open"), match.group("close")
        out.append(f"{{{{{opener} ({body}) | _wfkit_sh_value {closer}}}}}")
    out.append(source[position:])
    if "{%" in source:
        return "".join(out), []
    numbers = iter(range(len(bodies)))
    sample = _TAG.sub(
        lambda m: "" if m.group("body") is None else f"{MARK}{next(numbers)}{MARK}", source
    )
    found = _scan(sample, lambda i: f"{{{{ {bodies[i]} }}}}")
    return "".join(out), [Placement(bodies[i], context) for i, context, _ in found]


def _refuse_rewriting_blocks(source: str) -> None:
    for tag in re.finditer(r"\{%-?\s*(\w+)(?P<rest>[^%]*)%\}", source):
        word, rest = tag.group(1), tag.group("rest")
        if word in ("filter", "call", "macro") or (word == "set" and "=" not in rest):
            raise ExpressionError(
                f"{{% {word} %}} rewrites the text of a shell command, so a value could become "
                f"part of it: use {{% if %}}, {{% for %}} and {{% set x = ... %}} with "
                f"{{{{ }}}} outputs, or {_FIX}",
                expression=source,
            )


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


def shell_text(source: str) -> str | None:
    """What ``/bin/sh`` reads for the command template ``source``: its text with each value
    as its reference (``explain``); None when ``{% %}`` blocks decide it at run time."""
    if "{%" in source:
        return None
    _, placements = place_values(source)
    if not placements:
        return source
    numbers = iter(range(len(placements)))
    sample = _TAG.sub(
        lambda m: "" if m.group("body") is None else f"{MARK}{next(numbers)}{MARK}", source
    )
    return bind(sample, [""] * len(placements)).text


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
