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
_BLANK = " \t\n"
_WHERE = {
    "backtick": "inside backticks (use $( ) instead)",
    "param": "inside a ${...} parameter expansion",
    "arith": "inside arithmetic ($((...)), ((...)) or $[...]), which bash evaluates",
    "ansi": "inside $'...' quotes",
    "test": "inside [[ ... ]], which bash may evaluate as arithmetic (use [ ] instead)",
}


@dataclass
class _Frame:
    kind: str  # top, cmdsub, double, single, comment; or one of _WHERE's (values refused)
    closer: str = ""  # what ends an arithmetic frame: "))" or "]"
    parens: int = 0
    cases: int = 0
    braces: int = 0
    quote: str = ""  # inside ${...}: the quote open there
    word: str = ""  # the word being read (unquoted frames)
    command_start: bool = True
    let: bool = False  # in a `let` command: its words are arithmetic


class Refused(Exception):
    def __init__(self, index: int, where: str) -> None:
        super().__init__(where)
        self.index = index
        self.where = where


class Scanner:
    """Reads a rendered command as POSIX sh (and bash) does, far enough to know where each
    marker stands: quotes, escapes, ``$( )`` (with ``case`` patterns), backticks, ``${ }``,
    arithmetic, comments and here-documents. Where it cannot be sure, it refuses."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.stack = [_Frame("top")]
        self.found: list[tuple[int, str, tuple[int, int]]] = []
        self.heredocs: list[tuple[str, bool, bool]] = []  # delimiter, quoted, strip tabs

    def run(self) -> list[tuple[int, str, tuple[int, int]]]:
        text = self.text
        self.continuations()
        while self.i < len(text):
            self.step(text[self.i])
        return self.found

    def continuations(self) -> None:
        """A backslash-newline is removed before the shell reads the text, joining what it
        splits: only one after a blank (which splits nothing) is read here as it is."""
        at = self.text.find("\\\n")
        while at >= 0:
            if not _escaped_backslash(self.text, at) and at and self.text[at - 1] not in _BLANK:
                first = self.text.find(MARK)
                if first >= 0:
                    index = int(self.text[first + 1 : self.text.index(MARK, first + 1)])
                    line = self.text.count("\n", 0, at) + 1
                    raise Refused(
                        index,
                        f"in a command whose line {line} ends in a backslash right after "
                        f"{self.text[at - 1]!r} (a line continuation joining what the shell "
                        "reads as one word; put a blank before the backslash)",
                    )
            at = self.text.find("\\\n", at + 2)

    # markers ---------------------------------------------------------------------------

    def marker(self, context: str | None, refused: str | None = None) -> None:
        start = self.i
        end = self.text.index(MARK, start + 1) + 1
        index = int(self.text[start + 1 : end - 1])
        before = self.text[start - 1] if start else ""
        frame = self.stack[-1]
        if refused is None and context in (BARE, DOUBLE, HEREDOC):
            if before == "$":
                refused = "right after a `$`"
            elif before == "\\" and not _escaped_backslash(self.text, start - 1):
                refused = "right after a backslash, which would escape its reference"
            elif frame.let:
                refused = "in a `let` command, which bash evaluates as arithmetic"
        if refused is not None:
            raise Refused(index, refused)
        assert context is not None
        self.found.append((index, context, (start, end)))
        self.i = end
        frame.word += "x"
        frame.command_start = False

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
        """Backticks, ``${ }``, arithmetic, ``[[ ]]`` and ``$' '``: no exact place for a value."""
        frame = self.stack[-1]
        if ch == MARK:
            self.marker(None, _WHERE[kind])
            return
        self.i += 1
        if ch == "\\":
            self.i += 1
        elif kind == "param":
            self.param(frame, ch)
        elif (kind == "backtick" and ch == "`") or (kind == "ansi" and ch == "'"):
            self.stack.pop()
        elif kind in ("arith", "test") and ch in "([":
            frame.parens += 1
        elif kind in ("arith", "test") and ch in ")]":
            if frame.parens:
                frame.parens -= 1
            elif self.text.startswith(frame.closer[1:], self.i):
                self.i += len(frame.closer) - 1
                self.stack.pop()

    def param(self, frame: _Frame, ch: str) -> None:
        if frame.quote:
            if ch == frame.quote:
                frame.quote = ""
        elif ch in "'\"":
            frame.quote = ch
        elif ch == "{":
            frame.braces += 1
        elif ch == "}":
            if frame.braces:
                frame.braces -= 1
            else:
                self.stack.pop()

    def dollar(self) -> bool:
        """``$(``, ``$((``, ``${``, ``$[`` or ``$'`` at ``self.i``: push its frame."""
        rest = self.text[self.i : self.i + 3]
        if rest.startswith("$(("):
            self.stack.append(_Frame("arith", closer="))"))
            self.i += 3
        elif rest.startswith("$("):
            self.stack.append(_Frame("cmdsub"))
            self.i += 2
        elif rest.startswith("${"):
            self.stack.append(_Frame("param"))
            self.i += 2
        elif rest.startswith("$["):
            self.stack.append(_Frame("arith", closer="]"))
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
        if ch == "$":
            frame.word += "$"
            if self.dollar():
                return
        if ch == "\\":
            self.i += 1
            if not self.text.startswith(MARK, self.i):
                self.i += 1  # the escaped character (a newline: a line continuation)
            frame.word += "x"
            return
        if ch in " \t\n;&|()<>":
            self.end_word(frame)
        if frame.command_start and not frame.word and self.text.startswith(("((", "[["), self.i):
            closer = "))" if ch == "(" else "]]"
            self.stack.append(_Frame("arith" if ch == "(" else "test", closer=closer))
            self.i += 2
            return
        self.i += 1
        if ch == "'":
            self.stack.append(_Frame("single"))
        elif ch == '"':
            self.stack.append(_Frame("double"))
        elif ch == "`":
            self.stack.append(_Frame("backtick"))
        elif ch == "#" and not frame.word:
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
                self.stack[-1].word += ")"  # the substitution is part of the outer word
        elif ch == "\n":
            self.newline()
            return
        if ch in _COMMAND_START:
            frame.command_start = True
            frame.let = False
        elif ch not in " \t)<>":
            frame.word += ch

    def end_word(self, frame: _Frame) -> None:
        word, frame.word = frame.word, ""
        if not word:
            return
        if frame.command_start and word == "case":
            frame.cases += 1
        elif frame.command_start and word == "esac" and frame.cases:
            frame.cases -= 1
        elif frame.command_start and word == "let":
            frame.let = True
        frame.command_start = word in _OPENING_WORDS or (frame.cases > 0 and word == "in")

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
        frame = self.stack[-1]
        frame.command_start, frame.word, frame.let = True, "", False
        while self.heredocs:
            delimiter, quoted, strip = self.heredocs.pop(0)
            self.heredoc_body(delimiter, quoted, strip)

    def heredoc_body(self, delimiter: str, quoted: bool, strip: bool) -> None:
        """Lines up to the delimiter's line (for an unquoted delimiter, lines ending in a
        backslash are joined first, as the shell joins them). A value stands in an unquoted
        body only before any expansion opens in it (the rest is read as the shell reads
        double-quoted text, which this reader does not follow there): after one, refused."""
        text = self.text
        expanded = False
        while self.i < len(text):
            end = text.find("\n", self.i)
            end = len(text) if end < 0 else end
            line = text[self.i : end]
            while not quoted and _continued(line):
                nxt = text.find("\n", end + 1)
                nxt = len(text) if nxt < 0 else nxt
                line, end = line[:-1] + text[end + 1 : nxt], nxt
                if end >= len(text):
                    break
            if (line.lstrip("\t") if strip else line) == delimiter:
                self.i = min(end + 1, len(text))
                return
            expanded = self.heredoc_text(end, quoted, expanded)
            self.i = min(end + 1, len(text))

    def heredoc_text(self, end: int, quoted: bool, expanded: bool) -> bool:
        """Read a body's text up to ``end``; whether an expansion has opened in the body."""
        text = self.text
        while self.i < end:
            ch = text[self.i]
            if ch == MARK:
                if quoted:
                    self.marker(None, "in a here-document whose delimiter is quoted")
                elif expanded:
                    self.marker(None, "in a here-document after an expansion opens in it")
                self.marker(HEREDOC)
                continue
            if not quoted and (
                ch == "`" or (ch == "$" and text[self.i + 1 : self.i + 2] in ("(", "{", "["))
            ):
                expanded = True
            self.i += 1
        return expanded


def _continued(line: str) -> bool:
    """Whether ``line`` ends in a backslash that is not itself escaped."""
    return line.endswith("\\") and not _escaped_backslash(line, len(line) - 1)


def _escaped_backslash(text: str, at: int) -> bool:
    """Whether the backslash at ``at`` is itself escaped (an odd run of backslashes before)."""
    run = 0
    while at - run - 1 >= 0 and text[at - run - 1] == "\\":
        run += 1
    return run % 2 == 1
