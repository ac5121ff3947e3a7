"""``wfkit why``: each answer comes from what an untraced run recorded."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from mcp.client import Client
from typer.testing import CliRunner

from wfkit.cli.app import app
from wfkit.commands import run_workflow
from wfkit.commands.trace import trace_run
from wfkit.commands.why import why_step
from wfkit.engine.tracing import OPERAND_CHARS
from wfkit.mcp_server.server import build_server
from wfkit.store.sqlite import RunStore

FLOW = """
name: whyflow
config:
  circuit_breakers: {api: {failure_threshold: 1, reset_timeout: 600}}
inputs:
  mode: {type: string, default: "[red]quick[/]"}
  big: {type: string, default: ""}
steps:
  - id: full_only
    type: shell_command
    if: "{{ mode == 'full' and big | length > 0 }}"
    command: echo full
  - id: typed
    type: shell_command
    command: "exit 3"
    on_error: fallback
    retry_count: 2
    retry_delay: 1
    retry_on: [StepTimeoutError]
    fallback_value: none
  - id: api
    type: mcp_call
    tool: api
    circuit_breaker: api
    on_error: continue
  - id: transient
    type: shell_command
    command: "exit 3"
    on_error: retry
    retry_count: 2
    retry_delay: 1
  - id: never
    type: shell_command
    command: echo never
"""


@pytest.fixture
def run_id(write: Callable[..., Path]) -> str:
    report = run_workflow(write(FLOW), {"big": "x" * (OPERAND_CHARS * 4)})
    assert report.status == "failed"
    return report.run_id


def test_skipped_step_names_its_condition_and_operands(run_id: str) -> None:
    result = why_step(run_id, "full_only")
    assert result.status == "skipped"
    assert result.answer.startswith("skipped: its condition")
    condition = result.reasons[0]
    assert condition.kind == "condition"
    assert condition.details["outcome"] is False
    assert condition.details["operands"]["mode"] == "[red]quick[/]"
    # a large operand is kept shortened: decisions stay small
    big = condition.details["operands"]["big"]
    assert big["chars"] == OPERAND_CHARS * 4 + 2
    assert len(big["truncated"]) == OPERAND_CHARS


def test_not_retried_names_the_error_type_and_retry_on_and_the_fallback(run_id: str) -> None:
    result = why_step(run_id, "typed")
    assert result.answer == "took its fallback after ShellCommandError"
    kinds = [r.kind for r in result.reasons]
    assert kinds == ["order", "retry", "recovered", "error"]
    retry = result.reasons[1].details
    assert retry["retried"] is False
    assert retry["retry_on"] == "StepTimeoutError"
    assert "ShellCommandError is not in retry_on (StepTimeoutError)" in retry["reason"]
    assert result.reasons[2].details == {
        "strategy": "fallback",
        "error_type": "ShellCommandError",
        "fallback": True,
    }


def test_retries_until_the_budget_is_spent(run_id: str) -> None:
    result = why_step(run_id, "transient")
    assert result.status == "failed"
    assert result.attempts == 3
    assert result.answer == "not retried: all 3 attempts used"
    retries = [r.details for r in result.reasons if r.kind == "retry"]
    assert [(r["attempt"], r["retried"]) for r in retries] == [(1, True), (2, True), (3, False)]
    assert all(r["delay_ms"] is not None for r in retries[:2])


def test_breaker_state_and_continue(run_id: str) -> None:
    result = why_step(run_id, "api")
    assert result.answer == "failed with ToolNotFoundError and the run continued"
    assert result.breaker == {
        "name": "api",
        "state_at_step": "open",
        "failures_at_step": 1,
        "state_now": "open",
    }


def test_a_step_the_run_never_reached(run_id: str) -> None:
    result = why_step(run_id, "never")
    assert result.status == "not reached"
    assert result.answer == "the step never ran: the run ended (failed) before reaching it"


def test_decisions_are_not_traces(run_id: str, write: Callable[..., Path]) -> None:
    """An untraced run stays untraced; a traced one keeps its trace records as before."""
    with RunStore() as store:
        assert not store.has_traces(run_id)
        assert store.decisions(run_id)
    traced = run_workflow(write(FLOW), trace=True)
    kinds = {r["kind"] for r in trace_run(traced.run_id).traces}
    assert "decision" not in kinds
    assert why_step(traced.run_id, "full_only").status == "skipped"


def test_fail_fast_cancellation_names_its_trigger(write: Callable[..., Path]) -> None:
    flow = write(
        """
        name: fan
        steps:
          - id: fan
            type: parallel_foreach
            items: [1, 2]
            sub_agent_task: work
            on_item_error: fail_fast
            with: {n: "{{ loop.item }}"}
        sub_agent_tasks:
          work:
            inputs: {n: {type: integer}}
            steps:
              - id: job
                type: shell_command
                command: "if [ {{ n }} = 1 ]; then exit 5; else sleep 30; fi"
        """
    )
    report = run_workflow(flow)
    assert report.status == "failed"
    result = why_step(report.run_id, "fan/job")
    assert result.status == "cancelled"
    assert result.answer == "cancelled: fail_fast after item 0 of 'fan' failed"
    trigger = next(r for r in result.reasons if r.kind == "fail_fast")
    assert trigger.details["item"] == 0
    assert trigger.details["error_type"] == "SubAgentError"


def test_cli_text_json_and_bad_step(run_id: str) -> None:
    runner = CliRunner()
    text = runner.invoke(app, ["why", run_id, "full_only"])
    assert text.exit_code == 0, text.output
    assert "[red]quick[/]" in text.output  # a user's value is shown, never read as markup
    assert "skipped: its condition" in text.output
    as_json = runner.invoke(app, ["why", run_id, "typed", "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["answer"] == "took its fallback after ShellCommandError"
    bad = runner.invoke(app, ["why", run_id, "nope"])
    assert bad.exit_code == 2
    assert "has no step 'nope'" in bad.output
    assert "Traceback" not in bad.output
    missing = runner.invoke(app, ["why", "no-such-run", "typed"])
    assert missing.exit_code == 2


def test_why_through_the_entry_point(run_id: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wfkit", "why", run_id, "transient", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["attempts"] == 3


def test_mcp_workflow_why_is_read_only(run_id: str, isolated_store: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        server = build_server(tmp_path, read_only=True, store=isolated_store)
        async with Client(server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert tools["workflow_why"].annotations.read_only_hint is True  # type: ignore[union-attr]
            result = await client.call_tool(
                "workflow_why", {"run_id": run_id, "step_id": "full_only"}
            )
            assert not result.is_error
            assert result.structured_content["status"] == "skipped"
            bad = await client.call_tool("workflow_why", {"run_id": run_id, "step_id": "nope"})
            assert bad.is_error
            assert "has no step 'nope'" in bad.content[0].text  # type: ignore[union-attr]

    asyncio.run(scenario())


def test_plain_steps_without_decisions(write: Callable[..., Path]) -> None:
    report = run_workflow(
        write(
            """
            name: plain
            steps:
              - {id: ok, type: shell_command, command: "true"}
              - {id: boom, type: shell_command, command: "exit 4"}
            """
        )
    )
    assert why_step(report.run_id, "ok").answer == "succeeded: it ran when its turn came"
    boom = why_step(report.run_id, "boom")
    assert boom.answer == "failed with ShellCommandError; its policy makes no retries"
    assert boom.breaker is None
