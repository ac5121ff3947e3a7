"""Agent steps performed by whoever pulls them (docs/agents.md, "Pull mode").

The run's side is :class:`PulledAgent`: each agent attempt becomes a row of the run store's
``agent_tasks`` (:mod:`wfkit.store.agent_tasks`), which the run polls until a worker answers
it, its lease runs out, or the attempt ends first. The workers' side is :func:`next_task`
(claim the oldest pending attempt of a run, with a lease) and :func:`complete_task` (answer
it: checked against the step's ``response_schema`` before it is recorded). Both sides only
share the store, so the workers may be served by other processes, on other machines of a
team's PostgreSQL store.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

from wfkit.commands._base import StrictModel
from wfkit.commands._runs import effective_status, iso
from wfkit.engine.agents import AgentReply, AgentRequest, AttemptIO, read_reply
from wfkit.errors import (
    AgentError,
    AgentResponseError,
    AgentTimeoutError,
    InputError,
)
from wfkit.store import open_store
from wfkit.store.agent_tasks import FINISHED
from wfkit.store.base import Store, TaskRow

POLL_SECONDS = 0.2
"""How often a waiting attempt, and a worker waiting for work, look at the store once they
have waited a while; they start at ``FIRST_POLL_SECONDS`` and double up to it, so a quick
answer is seen at once and a long wait costs the store five reads a second."""

FIRST_POLL_SECONDS = 0.005

DEFAULT_LEASE = 300.0
"""Seconds a worker holds a task it claimed unless it asks for another lease."""


class AgentTask(StrictModel):
    """One attempt of an agent step, leased to a worker: what it must do, and until when."""

    task_id: str
    run_id: str
    step_id: str
    item: int | None
    attempt: int
    prompt: str
    context: Any = None
    response_schema: dict[str, Any] | None = None
    previous_error: dict[str, Any] | None = None
    worker: str
    lease_expires_at: str


class NextTask(StrictModel):
    """``workflow_next_task``: a task, or none; and the run's status (stop when it ended)."""

    task: AgentTask | None
    run_status: str


class Completion(StrictModel):
    """``workflow_complete_task``: what became of the answer."""

    task_id: str
    accepted: bool
    error: str | None = None
    #: after a refused or failed answer: whether the step hands out another attempt
    retry_scheduled: bool | None = None


class PulledAgent:
    """Hands each agent attempt out through the run store and waits for its answer."""

    def __init__(self, store: str | Path | None) -> None:
        self._spec = store
        self._store: Store | None = None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __getstate__(self) -> dict[str, Any]:
        """Sent with a fan-out's items to other processes (Dask): the store's location, not
        its connection (each copy opens its own, and closes it when its item ends)."""
        return {"_spec": self._spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._spec = state["_spec"]
        self._store = None

    async def perform(self, request: AgentRequest, io: AttemptIO) -> AgentReply:
        if self._store is None:
            self._store = open_store(self._spec)
        store = self._store
        task_id = "task-" + secrets.token_hex(8)
        data = io.masked(request.as_dict())
        data["retry_on_refusal"] = io.retried(AgentResponseError("refused"))
        data["retry_on_failure"] = io.retried(AgentError("failed"))
        store.add_agent_task(
            TaskRow(
                task_id,
                request.run_id,
                request.step_id,
                request.item,
                request.attempt,
                data,
                "pending",
                None,
                None,
                time.time(),
                None,
            )
        )
        ended = False
        pause = FIRST_POLL_SECONDS
        try:
            while True:
                row = store.agent_task(task_id)
                if row is None or row.status in ("withdrawn", "expired"):
                    ended = True
                    raise AgentError(
                        f"task {task_id} was {row.status if row else 'removed'} before an answer",
                        step_id=request.step_id,
                    )
                if row.status in FINISHED:
                    ended = True
                    return _answer(row)
                late = row.status == "leased" and (row.lease_until or 0.0) < time.time()
                if late and store.end_agent_task(task_id, "expired", ("leased",)):
                    ended = True
                    raise AgentTimeoutError(
                        f"worker {row.worker!r} did not complete task {task_id} before its "
                        "lease ran out",
                        step_id=request.step_id,
                    )
                if not late:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, POLL_SECONDS)
        finally:
            if not ended:  # the attempt ended first (timeout, cancellation): nobody may take it
                store.end_agent_task(task_id, "withdrawn", ("pending", "leased"))


def _answer(row: TaskRow) -> AgentReply:
    """A worker's recorded answer, as the step reads it (or the error it reported)."""
    reply = row.reply or {}
    if row.status == "answered":
        return AgentReply(value=reply.get("result"))
    if row.status == "refused":
        raise AgentResponseError(
            str(reply.get("error", "")),
            path=str(reply.get("path", "$")),
            rule=str(reply.get("rule", "")),
            step_id=row.step_id,
        )
    raise AgentError(
        f"worker {row.worker!r} reported failure: {reply.get('error', '')}", step_id=row.step_id
    )


def next_task(
    run_id: str,
    worker: str,
    *,
    wait_s: float = 0.0,
    lease_s: float = DEFAULT_LEASE,
    store: str | Path | None = None,
) -> NextTask:
    """Claim the oldest pending attempt of ``run_id`` for ``worker``, waiting up to
    ``wait_s`` seconds for one while the run is running."""
    deadline = time.monotonic() + wait_s
    pause = FIRST_POLL_SECONDS
    with open_store(store, create=False) as run_store:
        while True:
            row = run_store.get_run(run_id)
            status = effective_status(row)
            # only a running run waits for answers: an interrupted one's tasks are taken back
            # when it is resumed, and asked again then
            claimed = (
                run_store.claim_agent_task(row.run_id, worker, lease_s)
                if status == "running"
                else None
            )
            if claimed is not None:
                return NextTask(task=_task(claimed), run_status=status)
            if status != "running" or time.monotonic() >= deadline:
                return NextTask(task=None, run_status=status)
            time.sleep(pause)
            pause = min(pause * 2, POLL_SECONDS)


def release_task(task_id: str, worker: str, store: str | Path | None = None) -> bool:
    """Put back a task ``worker`` claimed but never received (its call was cancelled)."""
    with open_store(store, create=False) as run_store:
        return run_store.release_agent_task(task_id, worker)


def _task(row: TaskRow) -> AgentTask:
    request = row.request
    return AgentTask(
        task_id=row.task_id,
        run_id=row.run_id,
        step_id=row.step_id,
        item=row.item,
        attempt=row.attempt,
        prompt=request.get("prompt", ""),
        context=request.get("context"),
        response_schema=request.get("response_schema"),
        previous_error=request.get("previous_error"),
        worker=row.worker or "",
        lease_expires_at=iso(row.lease_until or 0.0),
    )


def complete_task(
    task_id: str,
    *,
    result: Any = None,
    error: str | None = None,
    worker: str | None = None,
    store: str | Path | None = None,
) -> Completion:
    """Answer a claimed task with ``result`` (checked against the step's schema first), or
    report that the agent failed with ``error``. A task that is unknown, not claimed (by
    ``worker``, when given), already completed, withdrawn, past its lease, or whose run is not
    running is refused (InputError) and left as it is.
    """
    if (result is None) == (error is None):
        raise InputError("give the task's result (any JSON but null) or an error, not both")
    with open_store(store, create=False) as run_store:
        row = run_store.agent_task(task_id)
        _check_open(row, task_id)
        assert row is not None
        if worker is not None and worker != row.worker:
            raise InputError(f"task {task_id} is held by {row.worker!r}, not {worker!r}")
        status_now = effective_status(run_store.get_run(row.run_id))
        if status_now != "running":  # its process is gone: the answer would be lost
            raise InputError(
                f"task {task_id}'s run is {status_now}, not running: nothing waits for the "
                "answer (a resume hands the work out again)"
            )
        request = row.request
        retry: bool | None = None
        if error is not None:
            status, reply = "failed", {"error": error}
            retry = bool(request.get("retry_on_failure"))
        else:
            given = AgentReply(text=result) if isinstance(result, str) else AgentReply(value=result)
            try:
                value = read_reply(given, request.get("response_schema"), row.step_id)
            except AgentResponseError as exc:
                status = "refused"
                reply = {"error": exc.message, "path": exc.path, "rule": exc.rule}
                retry = bool(request.get("retry_on_refusal"))
            else:
                status, reply = "answered", {"result": value}
        if not run_store.complete_agent_task(task_id, status, reply):
            _check_open(run_store.agent_task(task_id), task_id)  # what changed meanwhile
            raise InputError(f"task {task_id} could not be completed: it changed just now")
        return Completion(
            task_id=task_id,
            accepted=status == "answered",
            error=None if status == "answered" else str(reply["error"]),
            retry_scheduled=retry,
        )


def _check_open(row: TaskRow | None, task_id: str) -> None:
    """Refuse a completion for a task a worker does not hold (any more)."""
    if row is None:
        raise InputError(f"no agent task {task_id!r} in this store")
    if row.status in FINISHED:
        raise InputError(f"task {task_id} was already completed ({row.status}): nothing changed")
    if row.status == "pending":
        raise InputError(f"task {task_id} is not claimed: take it with workflow_next_task first")
    if row.status == "withdrawn":
        raise InputError(
            f"task {task_id} was withdrawn: its attempt ended first (timeout, cancel, the run "
            "stopped)"
        )
    if row.status == "expired" or (row.lease_until or 0.0) < time.time():
        raise InputError(
            f"task {task_id}'s lease (worker {row.worker!r}) ran out at "
            f"{iso(row.lease_until or 0.0)}: its attempt failed, and the step's policy decides "
            "whether another is handed out"
        )
