"""Pulled agent work in one process: a run waits on the store while a worker thread claims
and answers (or lets a lease run out), and the completions the store must refuse."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from wfkit.commands import run_workflow, run_workflow_async
from wfkit.commands.agent_work import PulledAgent, complete_task, next_task, release_task
from wfkit.errors import InputError
from wfkit.store import open_store
from wfkit.store.base import TaskRow

FLOW = """
name: pulled
steps:
  - id: ask
    type: agent_task
    prompt: "Count."
    response_schema: {type: object, required: [n], properties: {n: {type: integer}}}
    on_error: retry
    retry_count: 3
    retry_delay: 0
    state_update: {path: raw.n, value: "{{ result.n }}"}
"""


def test_a_lease_that_runs_out_a_refusal_and_a_failure_then_an_answer(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    store = str(tmp_path / "runs.db")
    said: list[object] = []

    def worker() -> None:
        run_id = None
        while run_id is None:
            with open_store(store) as run_store:
                runs = run_store.list_runs(limit=1)
            run_id = runs[0].run_id if runs else None
            time.sleep(0.02)
        claimed = next_task(run_id, "sleepy", wait_s=60, lease_s=1, store=store)
        assert claimed.task is not None  # never answered: its lease runs out
        for answer in ({"result": {"n": "two"}}, {"error": "cannot count"}, {"result": {"n": 2}}):
            out = next_task(run_id, "w", wait_s=60, store=store)
            assert out.task is not None
            said.append((out.task.attempt, out.task.previous_error))
            said.append(complete_task(out.task.task_id, worker="w", store=store, **answer))

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    agent = PulledAgent(store)
    report = asyncio.run(run_workflow_async(flow, store=store, agent=agent))
    agent.close()
    thread.join(60)
    assert report.status == "succeeded", report.error
    assert report.state.raw["n"] == 2
    assert [e.error_type for e in report.errors] == [
        "AgentTimeoutError",
        "AgentResponseError",
        "AgentError",
    ]
    (a2, prev2), refused, (a3, prev3), failed, (a4, prev4), accepted = said
    assert (a2, prev2["type"]) == (2, "AgentTimeoutError")  # type: ignore[index]
    assert (refused.accepted, refused.retry_scheduled) == (False, True)  # type: ignore[attr-defined]
    assert (a3, prev3["type"], prev3["path"]) == (3, "AgentResponseError", "$.n")  # type: ignore[index]
    assert (failed.accepted, failed.retry_scheduled) == (False, True)  # type: ignore[attr-defined]
    assert (a4, prev4["type"]) == (4, "AgentError")  # type: ignore[index]
    assert accepted.accepted is True  # type: ignore[attr-defined]


def task(task_id: str, run_id: str) -> TaskRow:
    return TaskRow(
        task_id, run_id, "ask", None, 1, {"prompt": "p"}, "pending", None, None, time.time(), None
    )


def test_completions_the_store_refuses(tmp_path: Path) -> None:
    flow = tmp_path / "done.yaml"
    flow.write_text("name: done\nsteps:\n  - {type: state_update, path: raw.x, value: 1}\n")
    store = str(tmp_path / "runs.db")
    run_id = run_workflow(flow, store=store).run_id  # a run that ended: nothing waits
    with open_store(store) as run_store:
        for name in ("pending", "held", "late", "gone", "answered", "ended"):
            run_store.add_agent_task(task(name, run_id))
        run_store.db.execute(  # type: ignore[attr-defined]
            "UPDATE agent_tasks SET status = 'leased', worker = 'w', lease_until = ?"
            " WHERE task_id IN ('held', 'answered', 'ended')",
            (time.time() + 600,),
        )
        run_store.db.execute(  # type: ignore[attr-defined]
            "UPDATE agent_tasks SET status = 'leased', worker = 'w', lease_until = 1"
            " WHERE task_id = 'late'"
        )
        assert run_store.end_agent_task("gone", "withdrawn", ("pending",))
        assert run_store.complete_agent_task("answered", "answered", {"result": 1})
    refusals = {
        "nope": "no agent task",
        "pending": "is not claimed",
        "answered": "already completed",
        "gone": "was withdrawn",
        "late": "lease",
        "ended": "is succeeded, not running",
    }
    for task_id, says in refusals.items():
        with pytest.raises(InputError, match=says):
            complete_task(task_id, result=1, store=store)
    with pytest.raises(InputError, match="held by 'w', not 'x'"):
        complete_task("held", result=1, worker="x", store=store)
    with pytest.raises(InputError, match="not both"):
        complete_task("held", store=store)
    assert next_task(run_id, "w", store=store).task is None  # a finished run hands out nothing
    assert release_task("held", "w", store=store)
    assert not release_task("held", "w", store=store)  # pending again: nothing to put back
