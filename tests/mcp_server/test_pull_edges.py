"""Pull mode's edges, in process: secrets on Dask workers, a waiting run resumed, and
completions that must be refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client

from tests.mcp_server.test_guarantees import ok, refused
from tests.mcp_server.test_pull import server
from wfkit.mcp_server.server import build_server

SECRET_FAN = """
name: secret-fan
inputs:
  token: {type: string, secret: true}
config:
  executor: {kind: dask}
steps:
  - id: first
    type: agent_task
    prompt: "first with {{ token }}"
  - id: each
    type: parallel_foreach
    items: [1, 2, 3]
    sub_agent_task: t
    with: {n: "{{ loop.item }}", tok: "{{ token }}"}
sub_agent_tasks:
  t:
    inputs: {n: {type: integer}, tok: {type: string}}
    steps:
      - {id: ask, type: agent_task, prompt: "item {{ n }}", context: {t: "{{ tok }}"}}
"""

WAITING = """
name: waits
steps:
  - {id: confirm, type: user_input, prompt: "Go?"}
  - {id: ask, type: agent_task, prompt: "after {{ steps.confirm.output }}"}
"""


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("WFKIT_AGENT_COMMAND", raising=False)
    (tmp_path / "secret.yaml").write_text(SECRET_FAN)
    (tmp_path / "waits.yaml").write_text(WAITING)
    return tmp_path


async def answer_all(client: Client, run_id: str, seen: list[dict[str, Any]]) -> None:
    while True:
        out = await ok(client, "workflow_next_task", run_id=run_id, worker="w", wait_s=2)
        task = out["task"]
        if task is None:
            if out["run_status"] not in ("running", "interrupted"):
                return
            continue
        seen.append(task)
        await ok(client, "workflow_complete_task", task_id=task["task_id"], result="done")


def test_pulled_items_on_dask_see_no_secret(root: Path) -> None:
    """Over stdio: the Dask cluster starts in the server's process, not in the test's."""
    seen: list[dict[str, Any]] = []

    async def scenario() -> None:
        async with server(root) as client:
            started = await ok(
                client, "workflow_start", workflow="secret.yaml", inputs={"token": "HUSH-9911"}
            )
            await answer_all(client, started["run_id"], seen)
            info = await ok(client, "workflow_debug_info", run_id=started["run_id"])
            assert info["status"] == "succeeded", info["error"]

    asyncio.run(asyncio.wait_for(scenario(), 300))
    assert sorted(t["prompt"] for t in seen) == ["first with ***", "item 1", "item 2", "item 3"]
    assert [t["context"] for t in seen if t["step_id"] == "ask"] == [{"t": "***"}] * 3
    stored = b"".join(p.read_bytes() for p in (root / "store").glob("runs.db*"))
    assert b"HUSH-9911" not in stored


def test_a_waiting_pulled_run_resumed_with_an_answer_is_pulled_again(root: Path) -> None:
    seen: list[dict[str, Any]] = []

    async def scenario() -> dict[str, Any]:
        async with Client(build_server(root, store=root / "store")) as client:
            started = await ok(client, "workflow_start", workflow="waits.yaml")
            run_id = started["run_id"]
            for _ in range(600):
                info = await ok(client, "workflow_debug_info", run_id=run_id)
                if info["status"] == "waiting":
                    break
                await asyncio.sleep(0.05)
            resumed = asyncio.ensure_future(
                ok(client, "workflow_resume", run_id=run_id[:15], answers={"confirm": "yes"})
            )
            # the resume runs once its call is served: until then the run is still waiting
            while (await ok(client, "workflow_debug_info", run_id=run_id))["status"] == "waiting":
                assert not resumed.done(), resumed.result()
                await asyncio.sleep(0.05)
            await answer_all(client, run_id, seen)
            return await resumed

    report = asyncio.run(asyncio.wait_for(scenario(), 300))
    assert report["status"] == "succeeded", report["error"]
    assert [t["prompt"] for t in seen] == ["after yes"]


def test_completions_that_are_refused(root: Path) -> None:
    async def scenario() -> None:
        async with Client(build_server(root, store=root / "store")) as client:
            started = await ok(client, "workflow_start", workflow="waits.yaml")
            run_id = started["run_id"]
            for _ in range(600):
                if (await ok(client, "workflow_debug_info", run_id=run_id))["status"] == "waiting":
                    break
                await asyncio.sleep(0.05)
            resumed = asyncio.ensure_future(
                ok(client, "workflow_resume", run_id=run_id, answers={"confirm": "yes"})
            )
            out = await ok(client, "workflow_next_task", run_id=run_id, worker="me", wait_s=30)
            task_id = out["task"]["task_id"]
            neither = await refused(client, "workflow_complete_task", task_id=task_id)
            assert "result" in neither
            both = await refused(
                client, "workflow_complete_task", task_id=task_id, result=1, error="no"
            )
            assert "not both" in both
            other = await refused(
                client, "workflow_complete_task", task_id=task_id, result=1, worker="you"
            )
            assert "held by 'me'" in other
            done = await ok(
                client, "workflow_complete_task", task_id=task_id, result="fine", worker="me"
            )
            assert done["accepted"] is True
            assert (await resumed)["status"] == "succeeded"

    asyncio.run(asyncio.wait_for(scenario(), 300))
