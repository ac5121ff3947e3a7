"""Bounded, streaming capture of a step's output: the head and the tail of each stream.

A step may write gigabytes; the engine keeps the first ``limit`` bytes (the head) and the last
``limit`` bytes (the tail) of each stream and counts what it dropped in between. Output goes
out as :class:`~wfkit.engine.events.OutputChunk` events while it arrives (the run store keeps
them, the terminal shows them live); when the tail grows past its bound the oldest tail chunks
are withdrawn with an :class:`~wfkit.engine.events.OutputTrimmed` event, so neither the engine
nor the store ever holds more than about twice ``limit`` per stream.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wfkit.engine.events import OutputChunk, OutputFinished, OutputStarted, OutputTrimmed
from wfkit.engine.processes import TAIL_CHARS, TAIL_LINES

if TYPE_CHECKING:
    from wfkit.engine.frame import Frame

#: a line longer than this goes out in pieces (a partial line is never held without bound)
MAX_PENDING_LINE = 65_536

Emit = Callable[[Any], None]


class StreamCapture:
    """One stream (stdout or stderr): head, tail and dropped-byte count, emitted as chunks."""

    def __init__(
        self,
        name: str,
        limit: int,
        emit: Callable[[str, int, bytes, bool], None],
        trim: Callable[[str, int], None],
    ) -> None:
        self.name = name
        self.limit = limit
        self._emit = emit
        self._trim = trim
        self.head = bytearray()
        self.tail: deque[tuple[int, bytes]] = deque()
        self.tail_bytes = 0
        self.total = 0
        self.dropped = 0
        self._seq = 0
        self._partial = bytearray()

    def feed(self, data: bytes) -> None:
        """Take bytes as they arrive; whole lines go out, a partial line waits (bounded)."""
        self.total += len(data)
        self._partial += data
        cut = self._partial.rfind(b"\n") + 1
        if cut == 0 and len(self._partial) < MAX_PENDING_LINE:
            return
        if cut == 0:
            cut = len(self._partial)
        chunk = bytes(self._partial[:cut])
        del self._partial[:cut]
        self._keep(chunk)

    def close(self) -> None:
        """The stream ended: what is left of a last line without a newline goes out."""
        if self._partial:
            chunk = bytes(self._partial)
            self._partial.clear()
            self._keep(chunk)

    def _keep(self, chunk: bytes) -> None:
        room = self.limit - len(self.head)
        if room > 0:
            part = chunk[:room]
            self.head += part
            self._send(part, head=True)
            chunk = chunk[room:]
        if not chunk:
            return
        if len(chunk) > self.limit:  # only its end can be part of the tail
            self.dropped += len(chunk) - self.limit
            chunk = chunk[-self.limit :]
        # tail pieces of a quarter of the bound: trimming whole pieces keeps at least three
        # quarters of it
        piece = max(1, self.limit // 4)
        start = 0
        while start < len(chunk):
            end = _piece_end(chunk, start, piece)
            part = chunk[start:end]
            self.tail.append((self._send(part, head=False), part))
            self.tail_bytes += len(part)
            start = end
        trimmed = None
        while self.tail_bytes > self.limit:
            trimmed, old = self.tail.popleft()
            self.tail_bytes -= len(old)
            self.dropped += len(old)
        if trimmed is not None:
            self._trim(self.name, trimmed)

    def _send(self, data: bytes, *, head: bool) -> int:
        seq = self._seq
        self._seq += 1
        self._emit(self.name, seq, data, head)
        return seq

    def text(self) -> str:
        """Head, a marker of the dropped bytes, tail; one trailing newline removed."""
        tail = b"".join(chunk for _, chunk in self.tail)
        text = self.head.decode("utf-8", errors="replace")
        if self.dropped:
            text += f"\n[wfkit: {self.dropped} more bytes not kept]\n"
        text += tail.decode("utf-8", errors="replace")
        return text[:-1] if text.endswith("\n") else text

    def last_lines(self) -> str:
        """The end of the stream, as ``ShellCommandError`` carries it (bounded)."""
        end = b"".join(chunk for _, chunk in self.tail) if self.tail else bytes(self.head)
        lines = end.decode("utf-8", errors="replace").rstrip().splitlines()[-TAIL_LINES:]
        return "\n".join(lines)[-TAIL_CHARS:]


class OutputCapture:
    """The output of one attempt of one step execution, recorded through the run's events."""

    def __init__(self, frame: Frame, step_id: str, kind: str, limit: int) -> None:
        run = frame.run
        self._emit: Emit = run.emit
        self.run_id = run.run_id
        self.key = os.urandom(8).hex()
        self.step_id = frame.prefix + step_id
        record = run.records.get(self.step_id)
        execution = record.executions if record is not None else 1
        self._emit(
            OutputStarted(
                self.run_id,
                self.key,
                self.step_id,
                frame.item,
                execution,
                frame.attempt,
                kind,
                time.time(),
            )
        )
        self.streams = {
            name: StreamCapture(name, limit, self._chunk, self._trimmed)
            for name in ("stdout", "stderr")
        }

    def _chunk(self, stream: str, seq: int, data: bytes, head: bool) -> None:
        self._emit(
            OutputChunk(self.run_id, self.key, self.step_id, stream, seq, data, head, time.time())
        )

    def _trimmed(self, stream: str, upto: int) -> None:
        self._emit(OutputTrimmed(self.run_id, self.key, stream, upto))

    def finish(self, status: str, exit_code: int | None = None) -> None:
        """The attempt ended: record its outcome and how much of its output was kept."""
        for stream in self.streams.values():
            stream.close()
        out, err = self.streams["stdout"], self.streams["stderr"]
        self._emit(
            OutputFinished(
                self.run_id,
                self.key,
                status,
                exit_code,
                time.time(),
                out.total,
                out.dropped,
                err.total,
                err.dropped,
            )
        )


def _piece_end(chunk: bytes, start: int, piece: int) -> int:
    """Where a tail piece of at most ``piece`` bytes from ``start`` ends: after its last
    newline when it has one, else not inside a UTF-8 character, so reading pieces back never
    splits a line or a character that fitted in one."""
    end = start + piece
    if end >= len(chunk):
        return len(chunk)
    cut = chunk.rfind(b"\n", start, end)
    if cut >= start:
        return cut + 1
    while end > start + 1 and chunk[end] & 0xC0 == 0x80:  # a continuation byte
        end -= 1
    return end
