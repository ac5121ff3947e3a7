"""``mcp_call`` against the example MCP server over stdio (real processes, real SDK)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES
from wfkit.commands import RunReport, run_workflow

SERVER = str(EXAMPLES / "servers" / "notes.py")


def flow(steps: str, servers: str = "") -> str:
    return (
        "name: mcp\nmcp_servers:\n"
        f"  notes: {{command: python, args: ['{SERVER}'], env: {{NOTES_STATE_DIR: '{{dir}}'}}}}\n"
        f"{servers}state_schema:\n  raw: {{out: any}}\nsteps:\n{steps}"
    )


@pytest.fixture
def run_mcp(write: Callable[..., Path], tmp_path: Path) -> Callable[..., RunReport]:
    def runner(steps: str, servers: str = "", **kw: Any) -> RunReport:
        return run_workflow(write(flow(steps, servers).replace("{dir}", str(tmp_path))), **kw)

    return runner


def gone(pid: int) -> bool:
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().split()[2] == "Z":
                return True
        time.sleep(0.02)
    return False


def test_calls_results_and_no_process_left(run_mcp: Callable[..., RunReport]) -> None:
    report = run_mcp(
        "  - {id: add, type: mcp_call, tool: add_note, parameters: {title: a, body: b}}\n"
        "  - {id: titles, type: mcp_call, method: list_notes}\n"
        "  - {id: pid, type: mcp_call, server: notes, tool: pid,\n"
        "     state_update: {path: raw.out, value: '{{ result }}'}}\n"
        "  - type: user_message\n"
        "    message: '{{ steps.add.output.count }} {{ steps.titles.output }}'\n"
    )
    assert report.status == "succeeded", report.errors
    assert report.messages[0].text == "1 ['a']"
    assert gone(report.state.raw["out"]), "the server outlived its run"


def test_tool_error_is_retried_until_it_succeeds(run_mcp: Callable[..., RunReport]) -> None:
    report = run_mcp(
        "  - {id: f, type: mcp_call, tool: flaky, parameters: {key: k1},\n"
        "     on_error: retry, retry_delay: 1, retry_jitter: 0}\n"
    )
    assert report.status == "succeeded"
    assert report.steps[0].attempts == 3
    assert [e.error_type for e in report.errors] == ["ToolError", "ToolError"]
    assert "transient failure 1 of 2" in report.errors[0].message


def test_unknown_tool_is_not_retried(run_mcp: Callable[..., RunReport]) -> None:
    report = run_mcp(
        "  - {id: u, type: mcp_call, tool: nope, on_error: retry, retry_delay: 1,\n"
        "     fallback_value: none}\n"
        "  - {id: v, type: mcp_call, server: notes, tool: nope}\n"
    )
    assert report.steps[0].attempts == 1
    assert report.errors[0].error_type == "ToolNotFoundError"
    assert "no declared MCP server offers tool 'nope'" in report.errors[0].message
    assert "server 'notes' offers no tool 'nope'" in report.errors[1].message


def test_server_crash_mid_run_then_restart(run_mcp: Callable[..., RunReport]) -> None:
    report = run_mcp(
        "  - {id: before, type: mcp_call, tool: pid}\n"
        "  - {id: boom, type: mcp_call, tool: crash, on_error: continue}\n"
        "  - {id: after, type: mcp_call, tool: pid}\n"
        "  - {type: user_message, message: '{{ steps.before.output }} {{ steps.after.output }}'}\n"
    )
    assert report.status == "succeeded", report.errors
    assert report.errors[0].error_type == "ToolConnectionError"
    before, after = (int(x) for x in report.messages[0].text.split())
    assert before != after, "the next call started the server again"
    assert gone(after)


def test_step_timeout_bounds_a_call(run_mcp: Callable[..., RunReport]) -> None:
    report = run_mcp(
        "  - {id: s, type: mcp_call, tool: slow, parameters: {seconds: 30},\n     timeout: 1}\n"
    )
    assert report.errors[0].error_type == "StepTimeoutError"


def test_server_that_cannot_start(write: Callable[..., Path]) -> None:
    report = run_workflow(
        write(
            "name: x\nmcp_servers:\n  broken: {command: /nonexistent/server}\n"
            "steps:\n  - {type: mcp_call, tool: anything}\n"
        )
    )
    assert report.errors[0].error_type == "ToolConnectionError"
    assert "could not start" in report.errors[0].message


def test_a_tool_two_servers_offer_needs_a_server(write: Callable[..., Path]) -> None:
    report = run_workflow(
        write(
            "name: twins\nmcp_servers:\n"
            f"  a: {{command: python, args: ['{SERVER}']}}\n"
            f"  b: {{command: python, args: ['{SERVER}']}}\n"
            "steps:\n  - {type: mcp_call, tool: pid}\n  - {type: mcp_call, server: b, tool: pid}\n"
        )
    )
    assert report.errors[0].error_type == "ToolNotFoundError"
    assert "offered by a, b: set `server:`" in report.errors[0].message


def test_the_notes_example() -> None:
    report = run_workflow(EXAMPLES / "notes.yaml")
    assert report.status == "succeeded", report.errors
    assert report.state.raw == {"count": 2, "listed": ["groceries", "ideas"]}
    assert report.errors[0].recovered


def test_a_tool_result_holding_a_secret_is_masked_and_servers_get_the_workflow_env(
    write: Callable[..., Path], tmp_path: Path, isolated_store: Path, monkeypatch: Any
) -> None:
    token = "tok_CANARY_tool"
    monkeypatch.setenv("WFKIT_TEST_TOOL_TOKEN", token)
    notes = tmp_path / "notes"
    notes.mkdir()
    text = (
        "name: mcp\nsecrets:\n  k: {env: WFKIT_TEST_TOOL_TOKEN}\n"
        f"env: {{NOTES_STATE_DIR: '{notes}'}}\n"  # the workflow's env reaches the server
        f"mcp_servers:\n  notes: {{command: python, args: ['{SERVER}']}}\n"
        "state_schema:\n  raw: {out: any}\nsteps:\n"
        "  - {id: add, type: mcp_call, tool: add_note,"
        " parameters: {title: '{{ secrets.k }}', body: b},"
        " state_update: {path: raw.out, value: '{{ result }}'}}\n"
        "  - {id: f, type: mcp_call, tool: flaky, parameters: {key: k9, failures: 0}}\n"
    )
    report = run_workflow(write(text))
    assert report.status == "succeeded", report.error
    assert report.state.raw["out"]["title"] == "***"
    assert token not in report.model_dump_json()
    for path in isolated_store.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
    assert (notes / "notes-flaky-k9").exists()  # the server had the workflow's env
