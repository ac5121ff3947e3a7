"""The stderr of an MCP server process: a bounded tail kept for errors and the run's record,
passed through when verbose, and the marks of the shell that reports its process group and exit
status."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from contextlib import suppress
from pathlib import Path

from wfkit.controls import visible

#: how much of each server's stderr is kept (its end)
STDERR_TAIL_BYTES = 16 * 1024
#: lines of stderr quoted in an error
ERROR_LINES = 10
EXIT_MARK = "wfkit-mcp-server-exited:"
PID_MARK = "wfkit-mcp-server-group:"
# reports the process group (the shell leads it) and the server's exit status on stderr,
# which the SDK keeps to itself
WRAPPER = (
    f'printf "{PID_MARK}%d\\n" "$$" >&2; '
    f'"$@"; code=$?; printf "\\n{EXIT_MARK}%d\\n" "$code" >&2; exit "$code"'
)


class StderrTail:
    """The end of a server's stderr, read from a pipe by the event loop as it arrives."""

    def __init__(self, echo: bool) -> None:
        self._read_fd, write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        #: given to the SDK as the server's stderr; closed here once the server is spawned
        self.writer = os.fdopen(write_fd, "w")
        self._echo = echo
        self._buffer = bytearray()
        self._pending_line = b""
        self.total = 0
        self.exit_code: int | None = None
        #: the server's process group (its shell's pid), once the shell has said it
        self.group: int | None = None
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._read_fd, self._read)

    def close_writer(self) -> None:
        """Drop our copy of the pipe's write end, so it ends when the server exits."""
        if not self.writer.closed:
            self.writer.close()

    def _read(self) -> bool:
        """Read once (the loop calls it when the pipe is readable); False when nothing more
        is there now, or ever."""
        try:
            chunk = os.read(self._read_fd, 65536)
        except BlockingIOError:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            self._close_reader()
            return False
        self._take(chunk)
        return True

    def _take(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self._buffer += chunk
        if len(self._buffer) > STDERR_TAIL_BYTES:
            del self._buffer[: len(self._buffer) - STDERR_TAIL_BYTES]
        lines = (self._pending_line + chunk).split(b"\n")
        self._pending_line = lines.pop()[-STDERR_TAIL_BYTES:]
        for line in lines:
            text = line.decode(errors="replace")
            if text.startswith(EXIT_MARK):
                with suppress(ValueError):
                    self.exit_code = int(text[len(EXIT_MARK) :])
            elif text.startswith(PID_MARK) and self.group is None:  # the shell's, first
                with suppress(ValueError):
                    self.group = int(text[len(PID_MARK) :])
            elif self._echo:  # for a person to read: control characters shown, not obeyed
                sys.stderr.write(visible(text) + "\n")

    def drain(self) -> None:
        """Read what is already in the pipe (the server has stopped)."""
        while self._read_fd >= 0 and self._read():
            pass

    async def settle(self, seconds: float) -> None:
        """Wait (bounded) until nothing holds the pipe any more, ending the server's group as
        soon as its shell has said which it is: a start-up cut off before the SDK held the
        process (or before the shell wrote its group) leaves nothing running either."""
        self.close_writer()
        deadline = self._loop.time() + seconds
        while self._read_fd >= 0 and self._loop.time() < deadline:
            self.kill_group()  # drains first; kills once the group is known
            if self._read_fd >= 0:
                await asyncio.sleep(0.02)

    async def wait_exit(self, seconds: float) -> None:
        """Give a server that lost its connection a moment to report its exit status."""
        deadline = self._loop.time() + seconds
        while self.exit_code is None and self._read_fd >= 0 and self._loop.time() < deadline:
            await asyncio.sleep(0.01)
        self.drain()

    def _close_reader(self) -> None:
        if self._read_fd >= 0:
            self._loop.remove_reader(self._read_fd)
            os.close(self._read_fd)
            self._read_fd = -1

    def close(self) -> None:
        """Release both ends of the pipe."""
        self.close_writer()
        self.drain()
        self._close_reader()

    def kill_group(self) -> None:
        """End whatever is left of the server's process group (the SDK's stop is the rule;
        this is the backstop for a start-up cut off before the SDK could stop it)."""
        self.drain()
        if self.group is not None and group_is_ours(self.group):
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.group, signal.SIGKILL)

    def text(self, since: int = 0) -> str:
        """The kept tail (only what arrived after ``since`` bytes), without wfkit's marker."""
        data = bytes(self._buffer)
        fresh = self.total - since
        if fresh < len(data):
            data = data[len(data) - max(fresh, 0) :]
        lines = data.decode(errors="replace").splitlines()
        marks = (EXIT_MARK, PID_MARK)
        return "\n".join(line for line in lines if not line.startswith(marks)).strip()

    def last_lines(self, since: int = 0, count: int = ERROR_LINES) -> str:
        """The last ``count`` lines of :meth:`text`, indented for an error message."""
        lines = self.text(since).splitlines()[-count:]
        return "\n".join(f"  {line}" for line in lines)


def group_is_ours(group: int) -> bool:
    """Whether process group ``group`` is still a server's: its leader, if alive, is our
    wrapper shell (a group id is not reused while any member lives)."""
    try:
        cmdline = Path(f"/proc/{group}/cmdline").read_bytes()
    except OSError:
        return True  # the shell is gone; live members keep the id from being reused
    return PID_MARK.encode() in cmdline
