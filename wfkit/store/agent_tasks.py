"""Agent work handed out through the store: the pull protocol of ``agent_task`` steps.

A run whose agent steps are pulled (``workflow_start`` under ``wfkit mcp``) writes one row
per attempt; any process on the same store (another ``wfkit mcp`` serving a sub-agent) claims
the oldest pending row of a run for a worker with a lease, and answers it; the run's process
polls its rows and goes on. Rows move one way::

    pending -> leased -> answered | refused | failed      (the worker's answer)
    pending | leased -> withdrawn   (the attempt ended first: timeout, cancel, run gone)
    leased -> expired                (the lease ran out before an answer; the attempt fails)

Every change is one conditional UPDATE, so two processes never both claim or both answer a
row. Leases are by the wall clock of the machines involved.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from wfkit.store.base import Db, TaskRow

T = TypeVar("T")

#: what a completion may find: a row answered, refused or failed has been completed
FINISHED = ("answered", "refused", "failed")


_COLUMNS = (
    "task_id, run_id, step_id, item, attempt, request, status, worker, lease_until,"
    " created_at, reply"
)


def _row(values: tuple[Any, ...]) -> TaskRow:
    (task_id, run_id, step_id, item, attempt, request, status, worker, until, at, reply) = values
    return TaskRow(
        task_id,
        run_id,
        step_id,
        item,
        attempt,
        json.loads(request),
        status,
        worker,
        until,
        at,
        json.loads(reply) if reply else None,
    )


class AgentTasks:
    """The calls of a SQL store about pulled agent work (mixed into ``SqlStore``)."""

    _sql: Db

    def _write(  # pragma: no cover - SqlStore's
        self, work: Callable[[Db], T], applied: Callable[[Db], T] | None = None
    ) -> T:
        raise NotImplementedError

    def add_agent_task(self, task: TaskRow) -> None:
        """A new pending attempt."""
        self._write(
            lambda db: db.run(
                f"INSERT INTO agent_tasks ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (task_id) DO NOTHING",  # a write replayed after a reconnect
                (
                    task.task_id,
                    task.run_id,
                    task.step_id,
                    task.item,
                    task.attempt,
                    json.dumps(task.request),
                    "pending",
                    None,
                    None,
                    task.created_at,
                    None,
                ),
            )
        )

    def agent_task(self, task_id: str) -> TaskRow | None:
        """The row of ``task_id``, as it is now."""
        found = self._sql.one(f"SELECT {_COLUMNS} FROM agent_tasks WHERE task_id = ?", (task_id,))
        return _row(found) if found is not None else None

    def claim_agent_task(self, run_id: str, worker: str, lease: float) -> TaskRow | None:
        """The oldest pending attempt of ``run_id``, leased to ``worker`` for ``lease``
        seconds; None when there is none (or another process took each one first)."""
        for _ in range(8):  # another claimer may win a row: try the next one
            oldest = self._sql.one(
                "SELECT task_id FROM agent_tasks WHERE run_id = ? AND status = 'pending'"
                " ORDER BY created_at, task_id LIMIT 1",
                (run_id,),
            )
            if oldest is None:
                return None
            task_id: str = oldest[0]

            def take(db: Db, task_id: str = task_id) -> int:
                return db.changed(
                    "UPDATE agent_tasks SET status = 'leased', worker = ?, lease_until = ?"
                    " WHERE task_id = ? AND status = 'pending'",
                    (worker, time.time() + lease, task_id),
                )

            taken = self._write(take)
            if taken:
                return self.agent_task(task_id)
        return None

    def complete_agent_task(self, task_id: str, status: str, reply: dict[str, Any]) -> bool:
        """Record a worker's answer (``answered``, ``refused`` or ``failed``) for a task it
        holds whose lease has not run out: whether it was recorded."""
        return bool(
            self._write(
                lambda db: db.changed(
                    "UPDATE agent_tasks SET status = ?, reply = ? WHERE task_id = ?"
                    " AND status = 'leased' AND lease_until >= ?",
                    (status, json.dumps(reply), task_id, time.time()),
                )
            )
        )

    def end_agent_task(self, task_id: str, status: str, was: tuple[str, ...]) -> bool:
        """Move a task from one of ``was`` to ``status`` (``withdrawn``, ``expired``)."""
        marks = ", ".join("?" for _ in was)
        return bool(
            self._write(
                lambda db: db.changed(
                    f"UPDATE agent_tasks SET status = ? WHERE task_id = ? AND status IN ({marks})",
                    (status, task_id, *was),
                )
            )
        )

    def withdraw_agent_tasks(self, run_id: str, before: float) -> int:
        """Take back what an earlier segment of ``run_id`` handed out and can no longer wait
        for (its process ended): how many tasks."""
        return int(
            self._write(
                lambda db: db.changed(
                    "UPDATE agent_tasks SET status = 'withdrawn' WHERE run_id = ?"
                    " AND status IN ('pending', 'leased') AND created_at < ?",
                    (run_id, before),
                )
            )
        )

    def mark_pulled(self, run_id: str) -> None:
        """Record that ``run_id``'s agent steps are pulled by workers (its resumes are too)."""
        self._write(
            lambda db: db.run(
                "INSERT INTO pulled_runs VALUES (?, ?) ON CONFLICT (run_id) DO NOTHING",
                (run_id, time.time()),
            )
        )

    def pulled(self, run_id: str) -> bool:
        """Whether ``run_id`` was started for workers to pull its agent steps."""
        return self._sql.one("SELECT 1 FROM pulled_runs WHERE run_id = ?", (run_id,)) is not None

    def release_agent_task(self, task_id: str, worker: str) -> bool:
        """Put a claimed task back (its claimer never received it): whether it was."""
        return bool(
            self._write(
                lambda db: db.changed(
                    "UPDATE agent_tasks SET status = 'pending', worker = NULL, lease_until = NULL"
                    " WHERE task_id = ? AND status = 'leased' AND worker = ?",
                    (task_id, worker),
                )
            )
        )

    def agent_tasks_of(self, run_id: str) -> list[TaskRow]:
        """Every attempt handed out for ``run_id``, oldest first."""
        return [
            _row(r)
            for r in self._sql.all(
                f"SELECT {_COLUMNS} FROM agent_tasks WHERE run_id = ? ORDER BY created_at, task_id",
                (run_id,),
            )
        ]
