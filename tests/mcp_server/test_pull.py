"""Pull mode with real parts: ``wfkit mcp`` servers over stdio on one store, driven by the
SDK's client: a coordinator starts a fan-out whose agent steps sub-agents claim and answer."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from tests.mcp_server.test_guarantees import ok, refused
from wfkit.store import open_store
from wfkit.store.base import TaskRow

FAN = """
name: pulled
state_schema:
  raw: {doubles: array}
steps:
  - id: each
    type: parallel_foreach
    items: "{{ range(10) | list }}"
    sub_agent_task: double
    max_parallel: 10
    on_item_error: continue
    min_success: 9
    state_update:
      path: raw.doubles
      value: >-
        {{ result | selectattr('status', 'eq', 'succeeded')
           | map(attribute='state.raw.double') | list }}
sub_agent_tasks:
  double:
    inputs: {item: {type: integer}}
    steps:
      - id: ask
        type: agent_task
        prompt: "Double the number."
        context: {n: "{{ item }}"}
        response_schema:
          type: object
          required: [double]
          properties: {double: {type: integer}}
        timeout: 120
        on_error: retry
        retry_count: 2
        retry_delay: 0
        state_update: {path: raw.double, value: "{{ result.double }}"}
"""


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("WFKIT_AGENT_COMMAND", raising=False)
    (tmp_path / "fan.yaml").write_text(FAN)
    return tmp_path


@asynccontextmanager
async def server(
    root: Path, pid_file: Path | None = None, store: str | None = None, **client: Any
) -> AsyncIterator[Client]:
    """``wfkit mcp`` over stdio on the test's store (its pid written to ``pid_file``)."""
    env = {
        "WFKIT_STORE": store or str(root / "store"),
        "PATH": os.environ["PATH"],
        "WFKIT_LEASE": "2",  # a killed server's run is interrupted 2 s after its last renewal
    }
    if "COVERAGE_PROCESS_START" in os.environ:
        env["COVERAGE_PROCESS_START"] = os.environ["COVERAGE_PROCESS_START"]
    argv = [sys.executable, "-m", "wfkit", "mcp", "--root", str(root)]
    if pid_file is not None:
        argv = ["/bin/sh", "-c", f'echo $$ > "{pid_file}"; exec "$0" "$@"', *argv]
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=str(root))
    async with Client(params, **client) as connected:
        yield connected


Answer = Callable[[dict[str, Any]], dict[str, Any]]


def honest(task: dict[str, Any]) -> dict[str, Any]:
    return {"result": {"double": task["context"]["n"] * 2}}


async def work(client: Client, run_id: str, name: str, answer: Answer, seen: list[Any]) -> None:
    """Claim and answer the run's tasks until it ends."""
    while True:
        out = await ok(client, "workflow_next_task", run_id=run_id, worker=name, wait_s=1)
        task = out["task"]
        if task is None:
            if out["run_status"] not in ("running", "interrupted"):  # it ended
                return
            continue
        done = await client.call_tool(
            "workflow_complete_task", {"task_id": task["task_id"], **answer(task)}
        )
        if done.is_error:  # a task taken back meanwhile (its run's old process died)
            assert "withdrawn" in done.content[0].text  # type: ignore[union-attr]
            continue
        seen.append((name, task, dict(done.structured_content or {})))


async def finished(client: Client, run_id: str) -> dict[str, Any]:
    for _ in range(1200):
        info = await ok(client, "workflow_debug_info", run_id=run_id)
        if info["status"] not in ("running", "interrupted"):
            return info
        await asyncio.sleep(0.1)
    raise AssertionError("the run never ended")


def tasks_of(root: Path, run_id: str, store: str | None = None) -> list[TaskRow]:
    with open_store(store or root / "store", create=False) as run_store:
        return run_store.agent_tasks_of(run_id)


def test_three_sub_agents_pull_a_fan_out(root: Path) -> None:
    """One sub-agent vanishes holding a lease, answers outside the schema are retried with
    the error, an item whose agent reports failure fails, min_success decides."""
    seen: list[Any] = []
    spoiled: set[int] = set()

    def careful(task: dict[str, Any]) -> dict[str, Any]:
        n = task["context"]["n"]
        if n == 7:
            return {"error": "no idea how to double seven"}
        if n == 3 and 3 not in spoiled:  # the first answer for 3 breaks the schema
            spoiled.add(3)
            return {"result": {"double": "six"}}
        return honest(task)

    async def scenario() -> tuple[str, dict[str, Any]]:
        async with server(root) as coordinator:
            started = await ok(coordinator, "workflow_start", workflow="fan.yaml")
            run_id = started["run_id"]
            assert started["status"] == "running"
            assert started["next"][0]["tool"] == "workflow_next_task"
            async with server(root) as vanishing:  # claims one task, then is gone
                out = await ok(
                    vanishing, "workflow_next_task", run_id=run_id, worker="b", wait_s=30, lease_s=2
                )
                lost = out["task"]
                assert lost is not None
            async with server(root) as c, server(root) as d:
                await asyncio.gather(
                    work(c, run_id, "c", careful, seen), work(d, run_id, "d", careful, seen)
                )
                late = await refused(
                    c, "workflow_complete_task", task_id=lost["task_id"], result={"double": 0}
                )
                assert "lease" in late
                again = await refused(
                    c, "workflow_complete_task", task_id=seen[0][1]["task_id"], result={"double": 0}
                )
                assert "already completed" in again
                unknown = await refused(
                    c, "workflow_complete_task", task_id="task-nope", result={"double": 0}
                )
                assert "no agent task" in unknown
            return run_id, await finished(coordinator, run_id)

    run_id, info = asyncio.run(asyncio.wait_for(scenario(), 300))
    assert info["status"] == "succeeded", info["error"]
    assert info["state"]["raw"]["values"]["doubles"] == [0, 2, 4, 6, 8, 10, 12, 16, 18]
    check_pulled(tasks_of(root, run_id), seen, info)


def check_pulled(rows: list[TaskRow], seen: list[Any], info: dict[str, Any]) -> None:
    """What each item's tasks went through, and what each completion answered."""
    by_item: dict[int, list[TaskRow]] = {}
    for row in rows:
        by_item.setdefault(row.item or 0, []).append(row)
    assert all(
        len(r) == 1 and r[0].status == "answered"
        for i, r in by_item.items()
        if i not in (3, 7) and r[0].worker != "b"
    )
    expired = [row for row in rows if row.status == "expired"]
    assert [row.worker for row in expired] == ["b"]
    taken_over = by_item[expired[0].item or 0]
    if expired[0].item != 7:
        assert taken_over[-1].status == "answered"
        assert taken_over[-1].request["previous_error"]["type"] == "AgentTimeoutError"
    assert [row.status for row in by_item[7]][-1] == "failed"
    assert len(by_item[7]) == 3  # every attempt of item 7 reported failure
    refusal = next(row for row in by_item[3] if row.status == "refused")
    after = by_item[3][by_item[3].index(refusal) + 1]
    assert after.request["previous_error"]["type"] == "AgentResponseError"
    assert after.request["previous_error"]["path"] == "$.double"
    assert after.status == "answered"
    completions = {(t["context"]["n"], t["attempt"]): done for _, t, done in seen}
    sevens = sorted((a, c["retry_scheduled"]) for (n, a), c in completions.items() if n == 7)
    # retry_count 2: the third attempt is the last (the first may have been the vanished one's)
    assert sevens[-1] == (3, False)
    assert all(retried for _, retried in sevens[:-1])
    threes = [c for (n, _), c in completions.items() if n == 3 and not c["accepted"]]
    assert [(c["retry_scheduled"], "$.double" in c["error"]) for c in threes] == [(True, True)]
    types = {e["error_type"] for e in info["errors"]}
    assert {"AgentTimeoutError", "AgentResponseError", "AgentError"} <= types


def test_a_killed_coordinator_resumes_and_hands_out_what_was_pending(root: Path) -> None:
    kill_and_resume(root, None)


def kill_and_resume(root: Path, store: str | None) -> None:
    """The coordinating server is killed (-9) after four answers; a new one resumes the run,
    and only the unanswered items are asked (also run on PostgreSQL: tests/store)."""
    pid_file = root / "coordinator.pid"
    answered: list[Any] = []

    async def first_half() -> str:
        async with (
            server(root, pid_file, store) as coordinator,
            server(root, store=store) as worker,
        ):
            run_id = (await ok(coordinator, "workflow_start", workflow="fan.yaml"))["run_id"]
            while len(answered) < 4:  # four items answered, then the coordinator dies
                out = await ok(worker, "workflow_next_task", run_id=run_id, worker="w", wait_s=30)
                task = out["task"]
                assert task is not None
                reply = honest_but_seven(task)
                await ok(worker, "workflow_complete_task", task_id=task["task_id"], **reply)
                if "result" in reply:
                    answered.append(task["context"]["n"])
            for _ in range(600):  # the four agent steps are recorded done (checkpointed)
                if done_asks(root, run_id, store) == 4:
                    break
                await asyncio.sleep(0.1)
            assert done_asks(root, run_id, store) == 4
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
            return run_id

    run_id = asyncio.run(asyncio.wait_for(first_half(), 300))

    async def second_half() -> dict[str, Any]:
        async with server(root, store=store) as coordinator, server(root, store=store) as worker:
            seen: list[Any] = []
            for _ in range(600):  # the dead server's lease runs out
                if (await ok(worker, "workflow_debug_info", run_id=run_id))[
                    "status"
                ] == "interrupted":
                    break
                await asyncio.sleep(0.1)
            resumed = asyncio.ensure_future(ok(coordinator, "workflow_resume", run_id=run_id))
            await work(worker, run_id, "w", honest_but_seven, seen)
            report = await resumed
            asked = [t["context"]["n"] for _, t, _ in seen if t["context"]["n"] != 7]
            assert sorted(asked) == sorted(set(range(10)) - set(answered) - {7})
            return report

    report = asyncio.run(asyncio.wait_for(second_half(), 300))
    assert report["status"] == "succeeded", report["error"]
    assert report["state"]["raw"]["doubles"] == [0, 2, 4, 6, 8, 10, 12, 16, 18]
    statuses = [row.status for row in tasks_of(root, run_id, store)]
    assert statuses.count("answered") == 9
    assert "pending" not in statuses
    assert "leased" not in statuses


def done_asks(root: Path, run_id: str, store: str | None = None) -> int:
    with open_store(store or root / "store", create=False) as run_store:
        history = run_store.step_history(run_id)
    return sum(1 for h in history if h["step_id"] == "each/ask" and h["status"] == "succeeded")


def honest_but_seven(task: dict[str, Any]) -> dict[str, Any]:
    if task["context"]["n"] == 7:
        return {"error": "seven is beyond me"}
    return honest(task)
