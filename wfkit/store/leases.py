"""Who holds a run, and kept workflow texts: what lets a team's runs be resumed on any machine.

A running run's process renews a lease in the store (``lease_until``, by the database's
clock, so machines with different clocks agree) every third of ``WFKIT_LEASE`` seconds. A
run whose lease ran out is ``interrupted`` for every machine: it can be resumed or cancelled
from anywhere. A live run is never taken over: a resume or cancel takes the run's row, and the
process that lost it learns so at its next renewal, stops the run and writes nothing more of
it. The text of every workflow a run started from is kept once per digest (``sources``), so
a resume works where the file is not.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from wfkit.errors import LeaseLostError
from wfkit.store.base import Db, RunRow, env_seconds
from wfkit.store.pending import OWNED, Pending, own_identity

T = TypeVar("T")

#: a running run's lease (seconds) when ``WFKIT_LEASE`` does not say
DEFAULT_LEASE = 30.0
#: the shortest lease taken: renewals every third of it must stay well apart
MIN_LEASE = 1.0


def lease_seconds() -> float:
    """``WFKIT_LEASE`` (seconds, at least ``MIN_LEASE``), else ``DEFAULT_LEASE``."""
    return env_seconds("WFKIT_LEASE", DEFAULT_LEASE, MIN_LEASE)


#: the condition that a run's row is as a command saw it (status, pid, process identity)
SAME_AS_SEEN = " AND status = ? AND COALESCE(pid, -1) = ? AND COALESCE(process, '') = ?"


def _seen_args(row: RunRow) -> tuple[Any, ...]:
    return (row.status, row.pid if row.pid is not None else -1, row.process or "")


def lost_lease(run_id: str, lease: float) -> LeaseLostError:
    """The error of a process whose run was taken over."""
    return LeaseLostError(
        f"run {run_id} was taken over by another process after its lease of {lease:g} s ran"
        " out (this process did not renew it in time): it stopped here and recorded nothing"
        " more",
        run_id=run_id,
    )


class Leases:
    """The calls of a SQL store about who holds a run (leases, takeovers, cancel requests)
    and the kept sources (mixed into :class:`SqlStore`)."""

    _sql: Db
    _pending: Pending
    lease: float
    _fenced: set[str]
    #: run id -> when (monotonic) this process last renewed its lease
    _renewed: dict[str, float]
    _last_commit: float
    #: seconds without a commit after which a run gives its database connection back
    #: (None: the store keeps it, as a file costs no server a connection)
    idle_release: float | None = None

    def _write(  # pragma: no cover - SqlStore's
        self, work: Callable[[Db], T], applied: Callable[[Db], T] | None = None
    ) -> T:
        raise NotImplementedError

    def quiet(self) -> bool:
        """Nothing written for ``idle_release`` seconds and nothing pending: the run only
        waits (a long step, a retry's wait), and its watcher polls at that slower pace."""
        return (
            self.idle_release is not None
            and not self._pending
            and time.monotonic() - self._last_commit >= self.idle_release
        )

    def release(self) -> None:
        """Give the database connection back until the next statement (a quiet run's)."""
        self._sql.release()

    def renew_lease(self, run_id: str) -> bool:
        """Extend this process's lease on a running run; False (and the run's further events
        dropped) when the run is no longer this process's: its lease ran out and another
        process resumed or cancelled it."""
        mine = (run_id, os.getpid(), own_identity() or "")

        def renew(db: Db) -> bool:  # UPDATE, then look (no RETURNING: SQLite before 3.35)
            db.run(
                f"UPDATE runs SET lease_until = {db.now} + ? WHERE run_id = ?"
                " AND status = 'running' AND pid = ? AND COALESCE(process, '') = ?",
                (self.lease, *mine),
            )
            return db.one(OWNED, mine) is not None

        renewed = self._write(renew)
        if not renewed:
            self._fenced.add(run_id)
            return False
        self._renewed[run_id] = time.monotonic()
        return True

    def claim(self, row: RunRow) -> bool:
        """Take a run over for a resume, only if its row is still as ``row`` saw it: of two
        processes resuming one run at once, exactly one gets it (False for the other)."""
        self.commit()
        mine = (os.getpid(), own_identity() or "")

        def take(db: Db) -> bool:
            return bool(
                db.changed(
                    f"UPDATE runs SET pid = ?, process = ?, lease_until = {db.now} + ?"
                    f" WHERE run_id = ?{SAME_AS_SEEN}",
                    (*mine, self.lease, row.run_id, *_seen_args(row)),
                )
            )

        return self._write(take)

    def commit(self) -> None:  # pragma: no cover - SqlStore's
        raise NotImplementedError

    def request_cancel(self, run_id: str, by: str) -> None:
        """Ask the process running ``run_id`` (on any machine) to cancel it."""
        self._write(
            lambda db: db.run(
                "INSERT INTO cancel_requests VALUES (?, ?, ?) ON CONFLICT (run_id) DO UPDATE"
                " SET requested_at = excluded.requested_at, requested_by = excluded.requested_by",
                (run_id, time.time(), by),
            )
        )

    def cancel_requested(self, run_id: str) -> bool:
        """Whether someone asked to cancel the run (polled by the running process)."""
        row = self._sql.one("SELECT 1 FROM cancel_requests WHERE run_id = ?", (run_id,))
        return row is not None

    def set_status(self, run_id: str, status: str, seen: RunRow | None = None) -> bool:
        """Record a status for a run no process runs any more (an interrupted run cancelled);
        with ``seen``, only if the run is still as it was seen (no one resumed it since):
        whether it was recorded."""
        self.commit()
        same = SAME_AS_SEEN if seen is not None else ""
        args = _seen_args(seen) if seen is not None else ()

        def record(db: Db) -> bool:
            return bool(
                db.changed(
                    "UPDATE runs SET status = ?, finished_at = COALESCE(finished_at, ?)"
                    f" WHERE run_id = ?{same}",
                    (status, time.time(), run_id, *args),
                )
            )

        return self._write(record)

    def _still_mine(self, run_id: str) -> None:
        """Before an effectful step: when a renewal is overdue (the process was stopped or
        starved past half its lease), renew now, and stop the run if it was taken over, so a
        process that wakes up never repeats a step its successor already ran."""
        last = self._renewed.get(run_id)
        overdue = last is not None and time.monotonic() - last > self.lease / 2
        if overdue and not self.renew_lease(run_id):
            raise lost_lease(run_id, self.lease)

    def _still_mine_all(self) -> None:
        """Before a commit: renew every lease of this store that is overdue; when a run was
        taken over while this process was stopped, what was pending is dropped, never
        written after its successor's rows (a store writes the runs of one process, normally
        one run), and the run is fenced: its next effectful step raises, and the command
        running it reports :func:`lost_lease`."""
        now = time.monotonic()
        for run_id, last in list(self._renewed.items()):
            if now - last > self.lease / 2 and not self.renew_lease(run_id):
                self._pending = Pending()

    def fenced(self, run_id: str) -> bool:
        """Whether this process lost ``run_id`` to another (its lease ran out)."""
        return run_id in self._fenced

    def keep_source(self, digest: str, text: str) -> None:
        """Keep a workflow's text with the next commit (once per text), so a run can be
        resumed where its file is not."""
        self._pending.ops.append(
            (
                "INSERT INTO sources (digest, text) VALUES (?, ?) ON CONFLICT (digest) DO NOTHING",
                (digest, text),
            )
        )

    def source(self, digest: str) -> str | None:
        """The workflow text kept under ``digest``, if any."""
        row = self._sql.one("SELECT text FROM sources WHERE digest = ?", (digest,))
        return str(row[0]) if row else None
