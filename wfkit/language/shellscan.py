"""Reading a rendered command as POSIX ``/bin/sh`` does, far enough to know where each value
marker stands (:mod:`wfkit.language.shellquote` turns the markers into references).

A marker is ``MARK<index>MARK``; :class:`Scanner` reports each with its quoting context, or
raises :class:`Refused` for a place where no reference to a variable means the value as
written. A mistake here can only make a value expand in another quoting context than the
author meant (field splitting, globbing); it can never make the shell parse a value, which
is never in the text.
"""

from __future__ import annotations

from dataclasses import dataclass

BARE = "unquoted"
SINGLE = "single-quoted"
DOUBLE = "double-quoted"
COMMENT = "comment"
HEREDOC = "here-document"
MARK = "\0"  # a marker is "\0<index>\0": neither a command line nor a value can hold a NUL


_COMMAND_START = frozenset(";&|(\n")


_OPENING_WORDS = frozenset({"then", "do", "else", "elif", "if", "while", "until", "!", "{", "time"})


@dataclass
class _Frame:
    kind: str  # top, cmdsub, double, single, backtick, param, arith, ansi, comment
    parens: int = 0
    cases: int = 0
    braces: int = 0


class Refused(Exception):
    def __init__(self, index: int, where: str) -> None:
        super().__init__(where)
        self.index = index
        self.where = where


class Scanner:
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
        end = self.text.index(MARK, start + 1) + 1
        index = int(self.text[start + 1 : end - 1])
        before = self.text[start - 1] if start else ""
        if refused is None and context in (BARE, DOUBLE, HEREDOC):
            if before == "$":
                refused = "right after a `$`"
            elif before == "\\" and not _escaped_backslash(self.text, start - 1):
                refused = "right after a backslash, which would escape its reference"
        if refused is not None:
            raise Refused(index, refused)
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
            if ch == MARK:
                self.marker(SINGLE)
                return
            if ch == "'":
                self.stack.pop()
            self.i += 1
        elif kind == "comment":
            if ch == MARK:
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
        if ch == MARK:
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
        if ch == MARK:
            self.marker(DOUBLE)
            return
        if ch == "$" and self.dollar():
            return
        self.i += 1
        if ch == "\\":
            if self.text.startswith(MARK, self.i):
                return  # the marker sees the backslash and refuses
            self.i += 1
        elif ch == '"':
            self.stack.pop()
        elif ch == "`":
            self.stack.append(_Frame("backtick"))

    def unquoted(self, ch: str) -> None:
        frame = self.stack[-1]
        if ch == MARK:
            self.marker(BARE)
            return
        if ch == "$" and self.dollar():
            self.word += "$"
            return
        if ch == "\\":
            self.i += 1
            if not self.text.startswith(MARK, self.i):
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
            if ch == MARK:
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
            if ch == MARK:
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
