"""Processes a step starts (a shell command, an agent command): each in its own process
group, watched by the warden from its first moment, ended as a whole."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

from wfkit.engine.warden import WARDEN
from wfkit.errors import ShellCommandError

#: what ``ShellCommandError`` and ``AgentError`` carry and show of a stream's end
TAIL_LINES = 20
TAIL_CHARS = 4_000


async def spawn(
    argv: list[str], cwd: Path | str | None, env: dict[str, str], shown: str, stdin: bool = False
) -> asyncio.subprocess.Process:
    """The step's process, in its own group, watched by the warden from its first moment
    (the warden is started before it, told of it right after)."""
    WARDEN.ready()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,  # its own process group, so we can end all of it
        )
    except OSError as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        raise ShellCommandError(
            f"cannot start {shown!r}: {exc.strerror}",
            exit_code=code,
            stderr=str(exc),
            stderr_tail=str(exc),
        ) from exc
    WARDEN.watch(proc.pid)  # ended with the engine, even one killed with SIGKILL
    return proc


def last_lines(text: str) -> str:
    """The last ``TAIL_LINES`` lines of ``text``, at most ``TAIL_CHARS`` characters."""
    return "\n".join(text.rstrip().splitlines()[-TAIL_LINES:])[-TAIL_CHARS:]


async def terminate_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """End the process's whole group: TERM, then KILL after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
    kill_leftovers(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.shield(proc.wait()), grace)


def kill_leftovers(pgid: int) -> None:
    """Whatever the command left running in its group goes with it (the warden forgets it)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    WARDEN.forget(pgid)


def retrieve(future: asyncio.Future[Any]) -> None:
    """Take a finished future's outcome: asyncio logs "exception was never retrieved" with a
    traceback when a future whose exception nobody read is garbage-collected."""
    if not future.cancelled():
        future.exception()


DRAIN_SECONDS = 0.5
"""How long output may still arrive after the process exited (from children it left behind)."""


async def process_exit(proc: asyncio.subprocess.Process) -> int:
    """The process's exit code, as soon as it exits: ``proc.wait()`` alone also waits for the
    pipes to close, which a background child keeps open."""
    waiter = asyncio.ensure_future(proc.wait())
    try:
        while True:
            done, _ = await asyncio.wait({waiter}, timeout=0.05)
            if done:
                return waiter.result()
            if proc.returncode is not None:
                return proc.returncode
    finally:
        waiter.cancel()


async def drain(pgid: int, readers: asyncio.Future[Any]) -> None:
    """Wait for the pipes to close; kill what holds them after a bound, then stop reading."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(readers), DRAIN_SECONDS)
        return
    kill_leftovers(pgid)
    # a process outside the group (it called setsid) may hold them still: stop reading
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(readers, DRAIN_SECONDS)
