"""Step output on the terminal: live lines during ``wfkit run``, and ``wfkit logs``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from wfkit.commands.logs import LogAttempt, LogChunk, LogsResult
    from wfkit.engine.events import OutputChunk

#: a partial line longer than this is shown as it is (an output without newlines)
MAX_LINE = 65_536


class LiveOutput:
    """Prints shell output as it arrives, one whole line at a time, prefixed with the step
    id (and the parallel item), so lines of concurrent items never mix mid-line."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._partial: dict[tuple[str, str], bytes] = {}
        self._names: dict[str, str] = {}

    def started(self, key: str, step_id: str, item: int | None) -> None:
        self._names[key] = step_id if item is None else f"{step_id}[{item}]"

    def chunk(self, event: OutputChunk) -> None:
        slot = (event.key, event.stream)
        data = self._partial.pop(slot, b"") + event.data
        lines = data.split(b"\n")
        rest = lines.pop()
        if len(rest) > MAX_LINE:
            lines.append(rest)
            rest = b""
        if rest:
            self._partial[slot] = rest
        for line in lines:
            self._print(event.key, event.stream, line)

    def finished(self, key: str) -> None:
        for stream in ("stdout", "stderr"):
            rest = self._partial.pop((key, stream), None)
            if rest:
                self._print(key, stream, rest)
        self._names.pop(key, None)

    def _print(self, key: str, stream: str, line: bytes) -> None:
        name = self._names.get(key, "?")
        text = Text(f"{name} | ", style="dim" if stream == "stdout" else "red")
        text.append(line.decode("utf-8", errors="replace").rstrip("\r"))
        self.console.print(text, soft_wrap=True, emoji=False, markup=False, highlight=False)


def attempt_title(attempt: LogAttempt) -> Text:
    """``── check[2] execution 1 attempt 2 · failed (exit 1) · 2026-...``"""
    name = attempt.step_id if attempt.item is None else f"{attempt.step_id}[{attempt.item}]"
    outcome = attempt.status + (f" (exit {attempt.exit_code})" if attempt.exit_code else "")
    title = Text("── ", style="dim")
    title.append(name, style="bold")
    title.append(f" execution {attempt.execution} attempt {attempt.attempt} · ")
    title.append(outcome, style="green" if attempt.status == "succeeded" else "red")
    title.append(f" · {attempt.started_at}", style="dim")
    return title


def chunk_lines(chunk: LogChunk) -> list[Text]:
    """A stored chunk as timestamped lines (``HH:MM:SS.mmm stderr| text``)."""
    out = []
    if chunk.dropped_before:
        lost = "some" if chunk.dropped_before < 0 else str(chunk.dropped_before)
        out.append(Text(f"[wfkit: {lost} more bytes of {chunk.stream} not kept]", style="yellow"))
    clock = chunk.timestamp[11:23]
    for line in chunk.text.rstrip("\n").split("\n"):
        text = Text(f"{clock} {chunk.stream}| ", style="dim" if chunk.stream == "stdout" else "red")
        text.append(line)
        out.append(text)
    return out


def print_chunk(console: Console, chunk: LogChunk) -> None:
    """One chunk of ``wfkit logs`` (also as ``--follow`` reads it)."""
    for line in chunk_lines(chunk):
        console.print(line, soft_wrap=True, emoji=False, markup=False, highlight=False)


def print_logs(console: Console, result: LogsResult) -> None:
    """``wfkit logs``: every attempt's output with timestamps."""
    if not result.attempts:
        console.print(Text(f"run {result.run_id} ({result.status}) has no step output"))
    for attempt in result.attempts:
        console.print(attempt_title(attempt), soft_wrap=True)
        for chunk in joined_lines(attempt.chunks):
            print_chunk(console, chunk)


def joined_lines(chunks: list[LogChunk]) -> list[LogChunk]:
    """The chunks of an attempt with a line cut between two of them (the head and the tail
    of a stream meet anywhere) put back together, unless bytes were dropped in between."""
    out: list[LogChunk] = []
    open_line: dict[str, int] = {}  # stream -> index in out of a chunk ending mid-line
    for chunk in chunks:
        piece = chunk
        at = open_line.pop(chunk.stream, None)
        if at is not None and not chunk.dropped_before:
            head, sep, rest = chunk.text.partition("\n")
            out[at] = out[at].model_copy(update={"text": out[at].text + head + sep})
            if not rest:
                if not sep:
                    open_line[chunk.stream] = at
                continue
            piece = chunk.model_copy(update={"text": rest})
        out.append(piece)
        if not piece.text.endswith("\n"):
            open_line[piece.stream] = len(out) - 1
    return out
