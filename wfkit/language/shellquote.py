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

BARE, SINGLE, DOUBLE, COMMENT, HEREDOC = (
    "unquoted",
    "single-quoted",
    "double-quoted",
    "comment",
    "here-document",
)
VARIABLE = "WFKIT_V"
"""Values are ``WFKIT_V1``, ``WFKIT_V2``, ... in the command's environment."""

_TAG = re.compile(r"\{\{(?P<open>[-+]?)(?P<body>.*?)(?P<close>[-+]?)\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_MARK = "\0"  # a marker is "\0<index>\0": neither a command line nor a value can hold a NUL
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
    if _MARK in text:
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
    return f"{_MARK}{len(values) - 1}{_MARK}"


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
    if _MARK in source:
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
        lambda m: "" if m.group("body") is None else f"{_MARK}{next(numbers)}{_MARK}", source
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
        lambda m: "" if m.group("body") is None else f"{_MARK}{next(numbers)}{_MARK}", source
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

_COMMAND_START = frozenset(";&|(\n")
_OPENING_WORDS = frozenset({"then", "do", "else", "elif", "if", "while", "until", "!", "{", "time"})


@dataclass
class _Frame:
    kind: str  # top, cmdsub, double, single, backtick, param, arith, ansi, comment
    parens: int = 0
    cases: int = 0
    braces: int = 0


class _Refused(Exception):
    def __init__(self, index: int, where: str) -> None:
        super().__init__(where)
        self.index = index
        self.where = where


class _Scanner:
    """Reads a rendered command as POSIX sh does, far enough to know where each marker
    stands: quotes, escapes, ``$( )`` (with ``case`` patterns), backticks, ``${ }``,
    ``$(( ))``, comments and here-documents."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.stack = [_Frame("top")]
        self.found: list[tuple[int, str, tuple[int, int]]] = []
        self.heredocs: list[tuple[str, bool, bool]] = []  # delimiter, quoted, strip tabs
        self.word = ""
        self.command_start = True

    def run(self) -> list[tuple[int, str, tuple[int, int]]]:
        text = self.text
        while self.i < len(text):
            self.step(text[self.i])
        return self.found

    # markers ---------------------------------------------------------------------------

    def marker(self, context: str | None, refused: str | None = None) -> None:
        start = self.i
        end = self.text.index(_MARK, start + 1) + 1
        index = int(self.text[start + 1 : end - 1])
        before = self.text[start - 1] if start else ""
        if refused is None and context in (BARE, DOUBLE, HEREDOC):
            if before == "$":
                refused = "right after a `$`"
            elif before == "\\" and not _escaped_backslash(self.text, start - 1):
                refused = "right after a backslash, which would escape its reference"
        if refused is not None:
            raise _Refused(index, refused)
        assert context is not None
        self.found.append((index, context, (start, end)))
        self.i = end
        self.word += "x"
        self.command_start = False

    # the machine -----------------------------------------------------------------------

    def step(self, ch: str) -> None:
        kind = self.stack[-1].kind
        if kind in ("top", "cmdsub"):
            self.unquoted(ch)
        elif kind == "double":
            self.double(ch)
        elif kind == "single":
            if ch == _MARK:
                self.marker(SINGLE)
                return
            if ch == "'":
                self.stack.pop()
            self.i += 1
        elif kind == "comment":
            if ch == _MARK:
                self.marker(COMMENT)
                return
            if ch == "\n":
                self.stack.pop()  # the newline itself is read as unquoted text
                return
            self.i += 1
        else:
            self.closed(kind, ch)

    def closed(self, kind: str, ch: str) -> None:
        """Backticks, ``${ }``, ``$(( ))`` and ``$' '``: a value has no exact place there."""
        frame = self.stack[-1]
        where = {
            "backtick": "inside backticks (use $( ) instead)",
            "param": "inside a ${...} parameter expansion",
            "arith": "inside $((...)) arithmetic",
            "ansi": "inside $'...' quotes",
        }[kind]
        if ch == _MARK:
            self.marker(None, where)
            return
        self.i += 1
        if ch == "\\":
            self.i += 1
        elif (kind == "backtick" and ch == "`") or (kind == "ansi" and ch == "'"):
            self.stack.pop()
        elif kind == "param":
            if ch == "{":
                frame.braces += 1
            elif ch == "}":
                if frame.braces:
                    frame.braces -= 1
                else:
                    self.stack.pop()
        elif kind == "arith":
            if ch == "(":
                frame.parens += 1
            elif ch == ")":
                if frame.parens:
                    frame.parens -= 1
                elif self.text.startswith(")", self.i):
                    self.i += 1
                    self.stack.pop()

    def dollar(self) -> bool:
        """``$(``, ``$((``, ``${`` or ``$'`` at ``self.i``: push its frame."""
        rest = self.text[self.i : self.i + 3]
        if rest.startswith("$(("):
            self.stack.append(_Frame("arith"))
            self.i += 3
        elif rest.startswith("$("):
            self.stack.append(_Frame("cmdsub"))
            self.i += 2
            self.command_start = True
            self.word = ""
        elif rest.startswith("${"):
            self.stack.append(_Frame("param"))
            self.i += 2
        elif rest.startswith("$'"):
            self.stack.append(_Frame("ansi"))
            self.i += 2
        else:
            return False
        return True

    def double(self, ch: str) -> None:
        if ch == _MARK:
            self.marker(DOUBLE)
            return
        if ch == "$" and self.dollar():
            return
        self.i += 1
        if ch == "\\":
            if self.text.startswith(_MARK, self.i):
                return  # the marker sees the backslash and refuses
            self.i += 1
        elif ch == '"':
            self.stack.pop()
        elif ch == "`":
            self.stack.append(_Frame("backtick"))

    def unquoted(self, ch: str) -> None:
        frame = self.stack[-1]
        if ch == _MARK:
            self.marker(BARE)
            return
        if ch == "$" and self.dollar():
            self.word += "$"
            return
        if ch == "\\":
            self.i += 1
            if not self.text.startswith(_MARK, self.i):
                self.i += 1  # the escaped character (a newline: a line continuation)
            self.word += "x"
            return
        if ch in " \t\n;&|()<>":
            self.end_word()
        self.i += 1
        if ch == "'":
            self.stack.append(_Frame("single"))
        elif ch == '"':
            self.stack.append(_Frame("double"))
        elif ch == "`":
            self.stack.append(_Frame("backtick"))
        elif ch == "#" and not self.word:
            self.stack.append(_Frame("comment"))
        elif ch == "<" and self.text.startswith("<", self.i):
            self.heredoc()
        elif ch == "(":
            frame.parens += 1
        elif ch == ")":
            if frame.parens:
                frame.parens -= 1
            elif frame.cases:
                pass  # the end of a case pattern
            elif frame.kind == "cmdsub":
                self.stack.pop()
        elif ch == "\n":
            self.newline()
            return
        if ch in _COMMAND_START:
            self.command_start = True
        elif ch not in " \t)<>":
            self.word += ch

    def end_word(self) -> None:
        word, self.word = self.word, ""
        if not word:
            return
        frame = self.stack[-1]
        if self.command_start and word == "case":
            frame.cases += 1
        elif self.command_start and word == "esac" and frame.cases:
            frame.cases -= 1
        self.command_start = word in _OPENING_WORDS or (frame.cases > 0 and word == "in")

    def heredoc(self) -> None:
        """``<<WORD`` or ``<<-WORD`` (not bash's ``<<<``): note it for the next line."""
        self.i += 1  # the second "<"
        if self.text.startswith("<", self.i):
            self.i += 1
            return
        strip = self.text.startswith("-", self.i)
        self.i += strip
        while self.text.startswith((" ", "\t"), self.i):
            self.i += 1
        word, quoted = [], False
        while self.i < len(self.text) and self.text[self.i] not in " \t\n;&|()<>":
            ch = self.text[self.i]
            if ch == _MARK:
                self.marker(None, "in a here-document's delimiter")
            if ch in "'\"":
                quoted = True
                close = self.text.find(ch, self.i + 1)
                close = len(self.text) if close < 0 else close
                word.append(self.text[self.i + 1 : close])
                self.i = close + 1
                continue
            if ch == "\\":
                quoted = True
                word.append(self.text[self.i + 1 : self.i + 2])
                self.i += 2
                continue
            word.append(ch)
            self.i += 1
        self.heredocs.append(("".join(word), quoted, strip))

    def newline(self) -> None:
        """After an unquoted newline: the bodies of the here-documents begun on that line."""
        self.command_start = True
        self.word = ""
        while self.heredocs:
            delimiter, quoted, strip = self.heredocs.pop(0)
            self.heredoc_body(delimiter, quoted, strip)

    def heredoc_body(self, delimiter: str, quoted: bool, strip: bool) -> None:
        text = self.text
        while self.i < len(text):
            end = text.find("\n", self.i)
            end = len(text) if end < 0 else end
            line = text[self.i : end]
            if (line.lstrip("\t") if strip else line) == delimiter:
                self.i = min(end + 1, len(text))
                return
            self.heredoc_line(end, quoted)
            self.i = min(end + 1, len(text))

    def heredoc_line(self, end: int, quoted: bool) -> None:
        """One line of a here-document's body: a marker is exact only where the line, up to
        it, opens no expansion (the body is otherwise read like double-quoted text)."""
        start = self.i
        while self.i < end:
            ch = self.text[self.i]
            if ch == _MARK:
                if quoted:
                    self.marker(None, "in a here-document whose delimiter is quoted")
                    continue
                before = self.text[start : self.i]
                if "$(" in before or "`" in before or "${" in before:
                    self.marker(None, "inside an expansion within a here-document")
                    continue
                self.marker(HEREDOC)
                continue
            self.i += 1


def _escaped_backslash(text: str, at: int) -> bool:
    """Whether the backslash at ``at`` is itself escaped (an odd run of backslashes before)."""
    run = 0
    while at - run - 1 >= 0 and text[at - run - 1] == "\\":
        run += 1
    return run % 2 == 1


def _scan(text: str, name: Callable[[int], str]) -> list[tuple[int, str, tuple[int, int]]]:
    """Where each marker of ``text`` stands; a marker in a refused place is ExpressionError."""
    try:
        return _Scanner(text).run()
    except _Refused as refused:
        raise ExpressionError(
            f"{name(refused.index)} stands {refused.where} in the shell command, where a value "
            f"cannot be passed as data: {_FIX}",
            expression=text.replace(_MARK, ""),
        ) from None
