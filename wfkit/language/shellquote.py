"""Values templated into a shell command string, escaped for the quoting context they sit in.

At load, :func:`place_values` reads the command template as ``/bin/sh`` would and finds, for
each ``{{ }}``, whether it stands unquoted, inside ``'...'``, inside ``"..."`` or in a
comment, and rewrites it to pass through the escaping filter of that context. So
``grep -c '{{ x }}' f`` with ``x = "a'$(touch PWNED)'"`` gives grep exactly that text, as
``grep -c {{ x }} f`` does: the command always receives the exact value.

Contexts where no escaping is exact (inside backticks, inside a here-document) are refused
at load with a clear error. A NUL byte cannot be carried by a command line: it is an
:class:`~wfkit.errors.InputError`.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wfkit.errors import ExpressionError, InputError

BARE, SINGLE, DOUBLE, COMMENT = "unquoted", "single-quoted", "double-quoted", "comment"

_TAG = re.compile(r"\{\{(?P<open>[-+]?)(?P<body>.*?)(?P<close>[-+]?)\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_HEREDOC = re.compile(r"<<-?\s*(?P<q>['\"]?)(?P<word>[A-Za-z0-9_]+)(?P=q)")


@dataclass(frozen=True)
class Placement:
    """Where one ``{{ }}`` stands in a command: its expression and quoting context."""

    expression: str
    context: str


def text_of(value: Any) -> str:
    """The text a value contributes to a command: lists and objects as JSON, None as ""."""
    if isinstance(value, (dict, list)):
        text = json.dumps(value)
    else:
        text = "" if value is None else str(value)
    if "\0" in text:
        raise InputError(
            f"a value templated into a shell command contains a NUL byte: {text[:40]!r}; "
            "a command line cannot carry it"
        )
    return text


def _bare(value: Any) -> str:
    return shlex.quote(text_of(value))


def _single(value: Any) -> str:
    return text_of(value).replace("'", "'\\''")  # close, an escaped quote, reopen


def _double(value: Any) -> str:
    return re.sub(r'([\\$`"])', r"\\\1", text_of(value))


def _comment(value: Any) -> str:
    return re.sub(r"[\r\n]", " ", text_of(value))  # a newline would end the comment


FILTERS: dict[str, Callable[[Any], str]] = {
    "_wfkit_sh_bare": _bare,
    "_wfkit_sh_single": _single,
    "_wfkit_sh_double": _double,
    "_wfkit_sh_comment": _comment,
}
_FILTER_OF = {
    BARE: "_wfkit_sh_bare",
    SINGLE: "_wfkit_sh_single",
    DOUBLE: "_wfkit_sh_double",
    COMMENT: "_wfkit_sh_comment",
}


class _Reader:
    """A small reader of POSIX shell quoting: enough to know the context at each point."""

    def __init__(self) -> None:
        self.stack: list[str] = [BARE]  # BARE frames pushed by "$(" or "`" too
        self.closers: list[str] = [""]
        self.depth: list[int] = [0]
        self.word_start = True
        self.escaped = False
        self.heredocs: list[str] = []
        self.in_heredoc: str | None = None
        self.line = ""

    @property
    def context(self) -> str:
        return self.stack[-1]

    def feed(self, text: str) -> None:
        for ch in text:
            self._char(ch)

    def _push(self, context: str, closer: str) -> None:
        self.stack.append(context)
        self.closers.append(closer)
        self.depth.append(0)

    def _pop(self) -> None:
        if len(self.stack) > 1:
            self.stack.pop()
            self.closers.pop()
            self.depth.pop()

    def _heredoc_char(self, ch: str) -> None:
        if ch == "\n":
            if self.line.strip() == self.in_heredoc:
                self.in_heredoc = self.heredocs.pop(0) if self.heredocs else None
            self.line = ""
        else:
            self.line += ch

    def _char(self, ch: str) -> None:
        if self.in_heredoc is not None:
            self._heredoc_char(ch)
            return
        context = self.context
        if self.escaped:
            self.escaped = False
            self.word_start = False
            return
        if context == COMMENT:
            if ch == "\n":
                self._pop()
                self._newline()
            return
        if context == SINGLE:
            if ch == "'":
                self._pop()
            return
        if ch == "\\":
            self.escaped = True
            return
        if context == DOUBLE:
            if ch == '"':
                self._pop()
            elif ch == "`":
                self._push(BARE, "`")
            elif ch == "(" and self.line.endswith("$"):
                self._push(BARE, ")")
            self.line += ch
            return
        self._unquoted_char(ch)

    def _unquoted_char(self, ch: str) -> None:
        """Unquoted text, also inside ``$( )`` and backticks."""
        self.line += ch
        if ch == "'":
            self._push(SINGLE, "'")
        elif ch == '"':
            self._push(DOUBLE, '"')
        elif ch == "#" and self.word_start:
            self._push(COMMENT, "\n")
        elif ch == "`":
            if self.closers[-1] == "`":
                self._pop()
            else:
                self._push(BARE, "`")
        elif ch == "(":
            if self.line.endswith("$("):
                self._push(BARE, ")")
            else:
                self.depth[-1] += 1
        elif ch == ")":
            if self.depth[-1]:
                self.depth[-1] -= 1
            elif self.closers[-1] == ")":
                self._pop()
        elif ch == "\n":
            self._newline()
        self.word_start = ch in " \t\n;&|()<>"

    def _newline(self) -> None:
        for match in _HEREDOC.finditer(self.line):
            self.heredocs.append(match.group("word"))
        self.line = ""
        if self.heredocs:
            self.in_heredoc = self.heredocs.pop(0)

    @property
    def in_backticks(self) -> bool:
        return "`" in self.closers


def place_values(source: str) -> tuple[str, list[Placement]]:
    """The command template with each ``{{ }}`` escaped for its context, and the contexts."""
    reader = _Reader()
    out: list[str] = []
    placements: list[Placement] = []
    position = 0
    for match in _TAG.finditer(source):
        between = source[position : match.start()]
        reader.feed(between)
        out.append(between)
        position = match.end()
        body = match.group("body")
        if body is None:  # {% %} and {# #} put no text in the command themselves
            out.append(match.group(0))
            continue
        if reader.in_heredoc is not None:
            raise ExpressionError(
                f"{{{{{body}}}}} is inside a here-document, where no quoting is exact: pass "
                "the value in `env` and use $NAME, or give `command` as an argv list",
                expression=source,
            )
        if reader.in_backticks:
            raise ExpressionError(
                f"{{{{{body}}}}} is inside backticks, where no quoting is exact: use $( ) instead",
                expression=source,
            )
        context = reader.context
        placements.append(Placement(body.strip(), context))
        opener, closer = match.group("open"), match.group("close")
        out.append(f"{{{{{opener} ({body}) | {_FILTER_OF[context]} {closer}}}}}")
        reader.word_start = False
    out.append(source[position:])
    return "".join(out), placements


def unneeded_quotes(placements: list[Placement]) -> list[str]:
    """Notes for ``explain``: quotes written around a value are not needed."""
    return [
        f"the {p.context} quotes around {{{{ {p.expression} }}}} are unnecessary: wfkit "
        "quotes each value for where it stands"
        for p in placements
        if p.context in (SINGLE, DOUBLE)
    ]
