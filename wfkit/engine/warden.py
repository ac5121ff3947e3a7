"""A watcher that ends the step processes of an engine that died without ending them.

A step's command runs in its own process group, which the engine ends when the step ends or
is cancelled. An engine killed with SIGKILL ends nothing, so the first shell step starts a
warden: a tiny ``/bin/sh`` loop in its own session that reads, on a pipe only the engine holds,
the groups to watch (``+PGID``) and to forget (``-PGID``). When the pipe closes (the engine
exited, however it exited) the warden kills every group still watched, then exits.

What escapes: a process that leaves its step's group and session (``setsid cmd &``,
``nohup setsid``); see docs/limits.md.
"""

from __future__ import annotations

import atexit
import contextlib
import subprocess
import threading

SCRIPT = r"""
groups=' '
while read -r op pg; do
  case $op in
    +) groups="$groups$pg " ;;
    -) case $groups in *" $pg "*) groups="${groups%% $pg *} ${groups#* $pg }" ;; esac ;;
  esac
done
for pg in $groups; do kill -s KILL -- "-$pg" 2>/dev/null; done
"""


class Warden:
    """The engine's side of the warden: started on first use, told each group's life."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._broken = False

    def ready(self) -> None:
        """Start the warden now, before the step process it will watch: the group is then
        told to it the moment that process exists, not after a process start of its own."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self._proc is None and not self._broken:
            try:
                atexit.register(self.close)
                self._proc = subprocess.Popen(
                    ["/bin/sh", "-c", SCRIPT],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # no terminal signal reaches it
                )
            except OSError:
                self._broken = True

    def _tell(self, line: str) -> None:
        with self._lock:
            self._start()
            if self._broken or self._proc is None:
                return
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write(line.encode("ascii"))
                self._proc.stdin.flush()
            except OSError:  # the warden was killed: the steps run unwatched
                self._broken = True

    def watch(self, pgid: int) -> None:
        """Kill group ``pgid`` if the engine exits before :meth:`forget`."""
        self._tell(f"+ {pgid}\n")

    def forget(self, pgid: int) -> None:
        """Group ``pgid`` has been ended by the engine."""
        self._tell(f"- {pgid}\n")

    def close(self) -> None:
        """End the warden (it kills what is still watched): for tests and tidy exits."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()
            proc.wait()


WARDEN = Warden()
"""The engine process's warden."""
