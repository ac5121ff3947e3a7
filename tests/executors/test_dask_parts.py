"""Parts of the Dask executor run directly: the worker's side of an item in this process,
its caches, and an item the cluster cannot run."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

import wfkit
from tests.conftest import EXAMPLES
from tests.executors.conftest import Cluster
from wfkit.engine.context import RunOptions
from wfkit.engine.detached import context_of
from wfkit.engine.items import ItemJob
from wfkit.engine.runtime import Run
from wfkit.executors import dask as dask_executor
from wfkit.executors.dask import DaskExecutor, Definition, run_remote
from wfkit.language.loader import load_text

pytestmark = pytest.mark.slow

FLOW = """
name: parts
steps:
  - {id: fan, type: parallel_foreach, items: [0], sub_agent_task: t}
sub_agent_tasks:
  t:
    inputs: {item: {type: integer}}
    steps:
      - {id: sh, type: shell_command, command: "sleep {{ item }}"}
    finally:
      - {type: user_message, message: "ended {{ workflow.status }}"}
"""


def job(index: int) -> ItemJob:
    return ItemJob(
        step_id="fan",
        task="t",
        prefix="fan/",
        active=("fan", f"item {index}"),
        key=f"main/fan[{index}]",
        index=index,
        item=index,
        retries=0,
        inputs={"item": index},
    )


def definition(text: str = FLOW, file: str = "parts.yaml") -> Definition:
    loaded = load_text(text, file)
    return Definition(text, file, loaded.digest, str(Path.cwd()), wfkit.__version__)


def test_a_worker_cancels_its_item_when_the_run_says_so(dask_cluster: Cluster) -> None:
    from distributed import Client, Event

    run = Run(load_text(FLOW, "parts.yaml"), "r1", {}, RunOptions())
    with Client(dask_cluster.address, timeout=30):  # the worker's Event reaches the scheduler
        Event("wfkit-cancel-test").set()
        report = run_remote(definition(), context_of(run), job(20), "wfkit-cancel-test")
        Event("wfkit-cancel-test").clear()
    assert report.entry is None  # cancelled, and still reported
    assert [e.text for e in report.events if hasattr(e, "text")] == ["ended cancelled"]
    quick = run_remote(definition(), context_of(run), job(0), "wfkit-cancel-unused")
    assert quick.entry is not None
    assert quick.entry["status"] == "succeeded"


def test_a_worker_keeps_a_few_workflows_and_one_tool_provider_per_run() -> None:
    first = dask_executor._workflow(definition())
    assert dask_executor._workflow(definition()) is first
    for n in range(dask_executor.LOADED_KEPT):
        dask_executor._workflow(definition(FLOW.replace("parts", f"parts{n}"), f"f{n}.yaml"))
    assert dask_executor._workflow(definition()) is not first  # the oldest went
    text = FLOW.replace(
        "steps:\n  - {id: fan",
        f"mcp_servers:\n  notes: {{command: python, args: ['{EXAMPLES}/servers/notes.py']}}\n"
        "steps:\n  - {id: fan",
        1,
    )
    with_servers = dask_executor._workflow(definition(text, "mcp.yaml"))
    tools = dask_executor._tools_for("run-a", with_servers, str(Path.cwd()))
    assert dask_executor._tools_for("run-a", with_servers, str(Path.cwd())) is tools
    assert type(tools).__name__ == "McpTools"
    dask_executor._item_loop()
    assert asyncio.run(dask_executor._close_run("run-a")) == {}
    assert asyncio.run(dask_executor._close_run("run-a")) == {}  # closed once


def test_an_item_the_cluster_cannot_run_fails_naming_the_cause(dask_cluster: Cluster) -> None:
    loaded = load_text(FLOW, "parts.yaml")
    broken = dataclasses.replace(loaded, text="steps: [", digest="broken")

    async def attempt() -> tuple[dict[str, object], object]:
        executor = await DaskExecutor.start(dask_cluster.address)
        try:
            return await executor.run_item(Run(broken, "r2", {}, RunOptions()), job(0))
        finally:
            await executor.aclose()

    entry, error = asyncio.run(attempt())
    assert entry["status"] == "failed"
    assert "could not run on the Dask cluster: LoadError" in str(error)
