"""Run management: ``cancel`` a run from another process, ``prune`` old runs, retention.

Cancellation goes through the store, so it works from any process (and, with a shared store,
any machine): ``cancel`` writes a row to ``cancel_requests``; the process running the run polls
for it (:func:`execute_watched`) and cancels the run as Ctrl-C would: the step's process group
is ended, ``finally`` runs, the run ends ``cancelled`` and stays resumable. When the run does
not stop in time and its process is on this machine, ``cancel`` sends it SIGTERM, which the
engine treats the same way. See docs/errors.md.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from wfkit.commands._base import StrictModel
from wfkit.commands._runs import (
    WATCH_SECONDS,
    iso,
)
from wfkit.commands.results import RunSummary, check_statuses
from wfkit.errors import CancelError
from wfkit.language.durations import parse_duration
from wfkit.store import open_store
from wfkit.store.base import RunRow, Store
from wfkit.store.retention import PrunePolicy, delete_runs, select_runs


class CancelResult(StrictModel):
    """``wfkit cancel --json``."""

    run_id: str
    status: str
    signalled: bool  # the run did not react to the request in time: SIGTERM was sent


class PruneResult(StrictModel):
    """``wfkit prune --json``."""

    dry_run: bool
    runs: list[RunSummary]
    bytes_before: int
    bytes_after: int


def cancel_run(
    run_id: str,
    store: str | Path | None = None,
    *,
    wait: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    signal_fallback: bool = True,
) -> CancelResult:
    """Ask a running run to stop and wait (up to ``wait`` s) until it has; SIGTERM its
    process as a fallback (with ``signal_fallback``, and only a process that runs this run
    alone: never this one, nor a server running others). An interrupted run (its process is
    gone) is marked cancelled."""
    from wfkit.commands._runs import effective_status, run_process_alive

    with open_store(store, create=False) as run_store:
        row = run_store.get_run(run_id)
        status = effective_status(row)
        if status == "interrupted":
            if not run_store.set_status(row.run_id, "cancelled", seen=row):
                raise CancelError(f"run {row.run_id} was resumed by another process just now")
            return CancelResult(run_id=row.run_id, status="cancelled", signalled=False)
        if status != "running":
            raise CancelError(f"run {row.run_id} is not running (it is {status})")
        run_store.request_cancel(row.run_id, f"{socket.gethostname()}:{os.getpid()}")
        status = _wait_for_end(run_store, row.run_id, wait, sleep, clock)
        signalled = False
        # the fallback signal only reaches the run's own process: never a pid reused since,
        # nor one on another machine
        if (
            status == "running"
            and signal_fallback
            and _signallable(row, run_store)
            and run_process_alive(row) is True
        ):
            os.kill(row.pid, signal.SIGTERM)  # type: ignore[arg-type]  # _signallable
            signalled = True
            status = _wait_for_end(run_store, row.run_id, wait, sleep, clock)
        return CancelResult(run_id=row.run_id, status=status, signalled=signalled)


def cancel_own_runs(
    store: str | Path | None, wait: float, now: threading.Event | None = None
) -> list[str]:
    """Cancel every run this process is running (a server asked to stop), as
    :func:`cancel_run` does, and wait up to ``wait`` s for them to end (less once ``now`` is
    set); the ids of those it asked. A run that starts meanwhile is asked too."""
    from wfkit.commands._runs import this_process

    now = now or threading.Event()
    asked: list[str] = []
    by = f"{socket.gethostname()}:{os.getpid()}"
    deadline = time.monotonic() + wait
    with open_store(store, create=False) as run_store:
        while not now.is_set():
            running = [
                row.run_id
                for row in run_store.list_runs(10_000, statuses=["running"])
                if this_process(row)
            ]
            for run_id in running:
                if run_id not in asked:
                    run_store.request_cancel(run_id, by)
                    asked.append(run_id)
            if not running or time.monotonic() >= deadline:
                break
            now.wait(WATCH_SECONDS)
    return asked


def _signallable(row: RunRow, run_store: Store) -> bool:
    """Whether the fallback SIGTERM may go to the run's process: never to this one, nor to one
    that runs other runs too (a ``wfkit mcp`` server would end with all of them)."""
    from wfkit.commands._runs import this_process

    if row.pid is None or this_process(row):
        return False
    others = run_store.list_runs(10_000, statuses=["running"])
    return not any(
        other.run_id != row.run_id and other.pid == row.pid and other.process == row.process
        for other in others
    )


def _wait_for_end(
    run_store: Store,
    run_id: str,
    wait: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> str:
    from wfkit.commands._runs import effective_status

    deadline = clock() + wait
    while True:
        status = effective_status(run_store.get_run(run_id))
        if status != "running" or clock() >= deadline:
            return status
        sleep(WATCH_SECONDS)


def prune_runs(
    store: str | Path | None = None,
    *,
    older_than: str | None = None,
    keep: int | None = None,
    statuses: list[str] | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Delete finished runs (all their rows) that match, then reclaim the file's space."""
    from wfkit.commands._runs import effective_status

    check_statuses(statuses)
    policy = PrunePolicy(
        parse_duration(older_than) if older_than else None, keep, tuple(statuses or ())
    )
    with open_store(store, create=False) as run_store:
        before = run_store.size_bytes()
        chosen = select_runs(run_store, policy, effective_status)
        if not dry_run:
            delete_runs(run_store, [r.run_id for r in chosen])
        after = run_store.size_bytes()
        return PruneResult(
            dry_run=dry_run,
            runs=[_summary(r, effective_status(r)) for r in chosen],
            bytes_before=before,
            bytes_after=after,
        )


def _summary(row: RunRow, status: str) -> RunSummary:
    return RunSummary(
        run_id=row.run_id,
        workflow=row.workflow,
        status=status,
        started_at=iso(row.started_at),
        duration_ms=row.duration_ms,
        parent_run_id=row.parent,
    )
