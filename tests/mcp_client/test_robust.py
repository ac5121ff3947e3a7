"""``mcp_call`` when servers misbehave: start-up cut off, refused arguments, servers that do
not start, concurrency bounds, and their stderr (real servers over stdio)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from tests.mcp_client.test_client import SERVER, flow
from wfkit.commands import RunReport, run_workflow
from wfkit.commands.debug import debug_run

# a server that never answers: its start-up can only end by a timeout
SLEEPER = "sleep 987.321"


def processes(pattern: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line contains ``pattern``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if pattern in cmdline and state != "Z" and int(entry) != os.getpid():
            found.append(int(entry))
    return found


def none_left(pattern: str, within: float = 15.0) -> list[int]:
    """Wait (bounded) until no process matches; return those still there."""
    deadline = time.monotonic() + within
    while (left := processes(pattern)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


SLEEPY_FLOW = f"""
name: sleepy
mcp_servers:
  slow: {{command: sleep, args: ["{SLEEPER.split()[1]}"]}}
steps:
  - type: foreach
    items: [1, 2, 3, 4, 5]
    body:
      - {{type: mcp_call, tool: anything, server: slow, timeout: 0.5, on_error: continue}}
"""


def test_a_timeout_during_start_up_stops_the_server(write: Callable[..., Path]) -> None:
    report = run_workflow(write(SLEEPY_FLOW))
    assert report.status == "succeeded"
    assert [e.error_type for e in report.errors] == ["StepTimeoutError"] * 5
    assert none_left(SLEEPER) == [], "a server cut off while starting outlived the run"


def test_under_wfkit_run_no_server_outlives_the_run(tmp_path: Path) -> None:
    (tmp_path / "sleepy.yaml").write_text(SLEEPY_FLOW)
    done = subprocess.run(
        [sys.executable, "-m", "wfkit", "run", "sleepy.yaml", "--json"],
        check=False,
        cwd=tmp_path,
        env={**os.environ, "WFKIT_STORE": str(tmp_path / "store")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert none_left(SLEEPER) == []


def test_under_wfkit_mcp_no_server_outlives_the_session(tmp_path: Path) -> None:
    (tmp_path / "sleepy.yaml").write_text(SLEEPY_FLOW)
    env = {"WFKIT_STORE": str(tmp_path / "store")}
    if "COVERAGE_PROCESS_START" in os.environ:
        env["COVERAGE_PROCESS_START"] = os.environ["COVERAGE_PROCESS_START"]
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "wfkit", "mcp", "--root", str(tmp_path)],
        env=env,
        cwd=str(tmp_path),
    )

    async def scenario() -> dict[str, Any]:
        async with Client(params) as client:
            result = await client.call_tool("workflow_run", {"workflow": "sleepy.yaml"})
            assert not result.is_error, result.content
            return dict(result.structured_content or {})

    report = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert report["status"] == "succeeded"
    assert none_left(SLEEPER) == []


@pytest.fixture
def run_mcp(write: Callable[..., Path], tmp_path: Path) -> Callable[..., RunReport]:
    def runner(steps: str, servers: str = "", **kw: Any) -> RunReport:
        return run_workflow(write(flow(steps, servers).replace("{dir}", str(tmp_path))), **kw)

    return runner


def test_arguments_against_the_input_schema_are_refused_once(
    run_mcp: Callable[..., RunReport],
) -> None:
    report = run_mcp(
        "  - {id: bad, type: mcp_call, tool: add_note, parameters: {title: 5},\n"
        "     on_error: retry, retry_delay: 1, fallback_value: null}\n"
        "  - {id: typed, type: mcp_call, tool: add_note, parameters: {title: 5, body: b},\n"
        "     on_error: continue}\n"
    )
    assert report.steps[0].attempts == 1, "invalid arguments were retried"
    first, second = report.errors
    assert first.error_type == "ToolInputError"
    assert "'body' is a required property" in first.message
    assert second.error_type == "ToolInputError"
    assert second.message.startswith("parameters.title does not match the input schema")


def test_invalid_params_from_the_server_is_permanent(run_mcp: Callable[..., RunReport]) -> None:
    report = run_mcp(
        "  - {id: bad, type: mcp_call, tool: invalid, parameters: {count: -1},\n"
        "     on_error: retry, retry_delay: 1, retry_on: [ToolError], fallback_value: null}\n"
        "  - {id: named, type: mcp_call, tool: invalid, parameters: {count: -2},\n"
        "     on_error: retry, retry_count: 1, retry_delay: 1, retry_on: [ToolInputError],\n"
        "     fallback_value: null}\n"
        "  - {id: alive, type: mcp_call, tool: pid}\n"
    )
    assert report.status == "succeeded", report.errors
    attempts = {s.id: s.attempts for s in report.steps}
    assert attempts["bad"] == 1, "retry_on: [ToolError] retried refused arguments"
    assert attempts["named"] == 2, "retry_on naming ToolInputError retries it"
    assert report.errors[0].error_type == "ToolInputError"
    assert "count -1 is out of range" in report.errors[0].message


def test_a_tool_resolves_among_the_servers_that_started(
    run_mcp: Callable[..., RunReport],
) -> None:
    broken = "  broken: {command: wfkit-no-such-server-xyz}\n"
    report = run_mcp(
        "  - {id: ok, type: mcp_call, tool: add_note, parameters: {title: a, body: b}}\n"
        "  - {id: missing, type: mcp_call, tool: nowhere, on_error: continue}\n",
        servers=broken,
    )
    assert report.status == "succeeded", report.errors
    (error,) = report.errors
    assert error.error_type == "ToolConnectionError"
    assert "no started MCP server offers tool 'nowhere'" in error.message
    assert "command not found: wfkit-no-such-server-xyz" in error.message


def test_start_up_failures_say_what_happened(write: Callable[..., Path], tmp_path: Path) -> None:
    code = "import sys; print('bad config: no token', file=sys.stderr); sys.exit(3)"
    report = run_workflow(
        write(
            "name: x\nmcp_servers:\n"
            f'  dies: {{command: python, args: ["-c", "{code}"]}}\n'
            "  missing: {command: wfkit-no-such-server-xyz}\n"
            "  sneaky: {command: 'true; touch PWNED'}\n"
            "steps:\n"
            "  - {type: mcp_call, server: dies, tool: t, on_error: continue}\n"
            "  - {type: mcp_call, server: missing, tool: t, on_error: continue}\n"
            "  - {type: mcp_call, server: sneaky, tool: t, on_error: continue}\n"
        )
    )
    dies, missing, sneaky = (e.message for e in report.errors)
    assert sneaky.endswith("command not found: true; touch PWNED")
    assert not (tmp_path / "PWNED").exists()
    assert "MCP server 'dies' (python -c " in dies
    assert "exited with code 3 during start-up" in dies
    assert "bad config: no token" in dies
    assert "ExceptionGroup" not in dies
    assert missing.endswith("could not start: command not found: wfkit-no-such-server-xyz")


def test_without_the_mcp_extra_the_run_fails_at_once(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(
        f"name: x\nmcp_servers:\n  notes: {{command: python, args: ['{SERVER}']}}\n"
        "steps:\n  - {type: mcp_call, tool: pid}\n"
    )
    # an interpreter where `import mcp` fails, as without the extra
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['mcp'] = None\n")
    env = {**os.environ, "PYTHONPATH": str(blocker), "WFKIT_STORE": str(tmp_path / "s")}
    done = subprocess.run(
        [sys.executable, "-m", "wfkit", "run", "flow.yaml"],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'wfkit[mcp]'" in done.stderr
    assert "Traceback" not in done.stderr


def concurrency_flow(limit: str) -> str:
    return f"""
name: fan
mcp_servers:
  notes: {{command: python, args: ['{SERVER}']{limit}}}
state_schema: {{raw: {{seen: array}}}}
steps:
  - id: many
    type: parallel_foreach
    items: "{{{{ range(8) | list }}}}"
    max_parallel: 8
    sub_agent_task: call
    state_update: {{path: raw.seen, value: "{{{{ result | map(attribute='state') | list }}}}"}}
sub_agent_tasks:
  call:
    state_schema: {{raw: {{most: integer}}}}
    steps:
      - type: mcp_call
        tool: concurrent
        parameters: {{seconds: 0.3}}
        state_update: {{path: raw.most, value: "{{{{ result }}}}"}}
"""


@pytest.mark.parametrize(("limit", "bound"), [("", None), (", max_concurrency: 2", 2)])
def test_max_concurrency_bounds_calls_in_flight(
    write: Callable[..., Path], limit: str, bound: int | None
) -> None:
    report = run_workflow(write(concurrency_flow(limit)))
    assert report.status == "succeeded", report.errors
    most = max(item["raw"]["most"] for item in report.state.raw["seen"])
    if bound is None:
        assert most > 2, "without a bound the server sees concurrent calls"
    else:
        assert most == bound


def test_server_stderr_is_kept_and_shown_only_when_verbose(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(
        flow(
            "  - {type: mcp_call, tool: log, parameters: {text: server-line-42}}\n"
            "  - {id: nope, type: mcp_call, tool: refuse, parameters: {reason: nope},\n"
            "     on_error: continue}\n"
        ).replace("{dir}", str(tmp_path))
    )
    env = {**os.environ, "WFKIT_STORE": str(tmp_path / "s")}

    def wfkit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "wfkit", *args],
            check=False,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    quiet = wfkit("run", "flow.yaml", "--json")
    assert quiet.returncode == 0, quiet.stderr
    assert "server-line-42" not in quiet.stderr
    import json

    run_id = json.loads(quiet.stdout)["run_id"]
    assert "server-line-42" in debug_run(run_id, store=tmp_path / "s").server_logs["notes"]
    shown = wfkit("debug", run_id)
    assert "stderr of MCP server notes:" in shown.stdout
    assert "server-line-42" in shown.stdout
    loud = wfkit("--verbose", "run", "flow.yaml")
    assert loud.returncode == 0, loud.stderr
    assert "server-line-42" in loud.stderr


def test_a_failed_call_quotes_the_server_stderr(run_mcp: Callable[..., RunReport]) -> None:
    report = run_mcp("  - {id: boom, type: mcp_call, tool: crash, on_error: continue}\n")
    (error,) = report.errors
    assert error.error_type == "ToolConnectionError"
    assert "MCP server 'notes' failed during 'crash' (it exited with code 3)" in error.message
