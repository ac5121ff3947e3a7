"""``wfkit test-step``: one step in isolation, each stage, the policy branch at attempt N."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wfkit.cli.app import app
from wfkit.commands.step_trial import run_one_step
from wfkit.errors import InputError

FLOW = """
name: steps
inputs:
  target: {type: string, default: prod}
state_schema:
  raw: {tries: integer, out: string, last: string}
steps:
  - id: deploy
    type: shell_command
    if: "{{ target != 'none' }}"
    command: "echo deploying {{ target }} '#{{ tries }}'"
    on_error: retry
    retry_count: 2
    retry_delay: 500
    retry_backoff: 2
    retry_jitter: 0
    retry_on: [ShellCommandError]
    state_update: {path: raw.out, value: "{{ result.stdout | trim }}"}
    error_state_update: {path: raw.last, value: "{{ error.type }} at {{ error.attempt }}"}
    cleanup:
      - {id: rollback, type: shell_command, command: "echo rollback"}
  - id: api
    type: mcp_call
    tool: notes.add
    parameters: {text: "{{ target }}"}
    on_error: fallback
    fallback_value: {id: none, why: "{{ error.type }}"}
"""


@pytest.fixture
def flow(write: Callable[..., Path]) -> Path:
    return write(FLOW)


def test_a_real_shell_step_shows_each_stage(flow: Path) -> None:
    r = run_one_step(flow, "deploy", state={"raw": {"tries": 2}})
    assert r.condition == {
        "expression": "{{ target != 'none' }}",
        "operands": {"target": "prod"},
        "outcome": True,
    }
    assert r.rendered["command"] == "echo deploying prod '#2'"
    assert r.result["stdout"] == "deploying prod #2"  # it really ran
    assert [(w.path, w.before, w.after) for w in r.writes] == [("raw.out", "", "deploying prod #2")]
    assert (r.branch, r.mocked) == ("succeed", None)


def test_policy_branch_at_each_attempt(flow: Path) -> None:
    first = run_one_step(flow, "deploy", mock_error="ShellCommandError")
    assert (first.branch, first.delay_ms) == ("retry", 500.0)
    second = run_one_step(flow, "deploy", mock_error="ShellCommandError", attempt=2)
    assert (second.branch, second.delay_ms) == ("retry", 1000.0)  # the backoff applies
    last = run_one_step(flow, "deploy", mock_error="ShellCommandError", attempt=3)
    assert (last.branch, last.reason) == ("fail", "all 3 attempts used")
    assert last.cleanup == ["rollback (shell_command)"]
    # the error_state_update the engine performs after a failed attempt
    assert [(w.path, w.after) for w in last.writes] == [("raw.last", "ShellCommandError at 3")]
    other = run_one_step(flow, "deploy", mock_error="StepTimeoutError")
    assert other.branch == "fail"
    assert other.reason == "StepTimeoutError is not in retry_on (ShellCommandError)"


def test_fallback_mocked_result_and_skip(flow: Path) -> None:
    fell = run_one_step(flow, "api", mock_error="ToolError")
    assert (fell.branch, fell.fallback) == ("fallback", {"id": "none", "why": "ToolError"})
    assert fell.rendered == {"parameters": {"text": "prod"}}
    mocked = run_one_step(flow, "api", mock_result={"id": 7})
    assert (mocked.branch, mocked.result, mocked.mocked) == ("succeed", {"id": 7}, "result")
    skipped = run_one_step(flow, "deploy", state={"inputs": {"target": "none"}})
    assert (skipped.ran, skipped.branch, skipped.rendered) == (False, "skip", {})


def test_bad_arguments(flow: Path) -> None:
    with pytest.raises(InputError, match="no step 'nope'"):
        run_one_step(flow, "nope")
    with pytest.raises(InputError, match="not 'Bogus'"):
        run_one_step(flow, "deploy", mock_error="Bogus")
    with pytest.raises(InputError, match="not both"):
        run_one_step(flow, "deploy", mock_error="ToolError", mock_result=1)
    with pytest.raises(InputError, match="--attempt must be 1 or more"):
        run_one_step(flow, "deploy", attempt=0)
    with pytest.raises(InputError, match="--state takes"):
        run_one_step(flow, "deploy", state={"computed": {}})


def test_cli(flow: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["test-step", str(flow), "deploy", "--state", '{"raw": {"tries": 1}}'])
    assert ok.exit_code == 0, ok.output
    assert "echo deploying prod '#1'" in ok.output
    failed = runner.invoke(
        app,
        ["test-step", str(flow), "deploy", "--mock-error", "ShellCommandError", "--attempt", "3"],
    )
    assert failed.exit_code == 1
    assert "fail: all 3 attempts used; cleanup runs: rollback" in failed.output
    marked = runner.invoke(
        app, ["test-step", str(flow), "api", "--mock-result", '{"id": "[red]x[/]"}']
    )
    assert '{"id": "[red]x[/]"}' in marked.output  # a value is never read as markup
    bad = runner.invoke(app, ["test-step", str(flow), "deploy", "--mock-error", "Bogus"])
    assert bad.exit_code == 2
    assert "Traceback" not in bad.output
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wfkit",
            "test-step",
            str(flow),
            "api",
            "--mock-error",
            "ToolError",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["branch"] == "fallback"


def test_a_container_step_runs_its_branch() -> None:
    from tests.conftest import EXAMPLES

    r = run_one_step(EXAMPLES / "debug-demo.yaml", "report", state={"raw": {"done": [0, 1, 2]}})
    assert (r.rendered, r.result, r.branch) == ({"condition": True}, {"branch": "then"}, "succeed")
    other = run_one_step(EXAMPLES / "debug-demo.yaml", "report")
    assert other.result == {"branch": "else"}  # progress is 0
