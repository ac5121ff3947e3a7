"""``wfkit mcp --http``: a real uvicorn server on 127.0.0.1, the SDK's streamable HTTP client:
the bearer token, the Origin check, the refusal to listen beyond loopback without a token,
read-only, and SIGTERM ending the runs in flight as ``wfkit cancel`` would."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from tests.mcp_server.test_guarantees import ok
from tests.mcp_server.transports import HANG, TOKEN, free_port, http_client, http_server, server_env
from wfkit import __version__

FLOW = """
name: hello
steps:
  - {id: hello, type: shell_command, command: "echo hello"}
"""

LONG = """
name: long
steps:
  - {id: sleep, type: shell_command, command: "echo $$ >> pids; exec sleep 300"}
finally:
  - {id: note, type: shell_command, command: "touch FINISHED; sleep 2"}
"""

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
        "secret-marker": "BODY-MARKER-5521",
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "hello.yaml").write_text(FLOW)
    (project / "long.yaml").write_text(LONG)
    return project


def test_only_requests_with_the_token_are_served(root: Path) -> None:
    with http_server(root) as (url, proc):
        missing = httpx2.post(url, json=INITIALIZE, headers=ACCEPT)
        wrong = httpx2.post(url, json=INITIALIZE, headers={**ACCEPT, "Authorization": "Bearer no"})
        right = httpx2.post(
            url, json=INITIALIZE, headers={**ACCEPT, "Authorization": f"Bearer {TOKEN}"}
        )
        assert (missing.status_code, wrong.status_code) == (401, 401)
        assert right.status_code == 200

        async def scenario() -> None:
            async with http_client(url) as client:
                assert client.server_info.version == __version__
                run = await ok(client, "workflow_run", workflow="hello.yaml")
                assert run["status"] == "succeeded"

        asyncio.run(asyncio.wait_for(scenario(), HANG))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 0, err
    assert "BODY-MARKER-5521" not in err  # nothing of a refused request is logged
    assert TOKEN not in err


def test_a_page_of_another_origin_is_refused(root: Path) -> None:
    with http_server(root) as (url, _):
        headers = {**ACCEPT, "Authorization": f"Bearer {TOKEN}"}
        other = httpx2.post(url, json=INITIALIZE, headers={**headers, "Origin": "http://evil.test"})
        same = httpx2.post(
            url, json=INITIALIZE, headers={**headers, "Origin": url.removesuffix("/mcp")}
        )
    assert other.status_code == 403
    assert same.status_code == 200


def test_the_token_may_come_from_the_environment(root: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfkit", "mcp", "--root", str(root), "--http", f"127.0.0.1:{port}"],
        env=server_env(root, WFKIT_MCP_TOKEN="from-env"),
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                refused = httpx2.post(url, json=INITIALIZE, headers=ACCEPT, timeout=5)
                break
            except httpx2.TransportError:
                pass
        served = httpx2.post(
            url, json=INITIALIZE, headers={**ACCEPT, "Authorization": "Bearer from-env"}
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=HANG)
    assert (refused.status_code, served.status_code) == (401, 200)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--http", "0.0.0.0:8765"], "listens beyond this machine without a token"),
        (["--http", "192.0.2.1:8765"], "listens beyond this machine without a token"),
        (["--http", "8765"], "give HOST:PORT"),
        (["--http", "127.0.0.1:http"], "the port must be a number"),
        (["--http", "127.0.0.1:0"], "the port must be a number"),
        (["--token-file", "t"], "--token-file is for --http"),
        (["--allow-host", "x"], "--allow-host is for --http"),
        (["--http", "127.0.0.1:8765", "--token-file", "/nonexistent/t"], "cannot read it"),
    ],
)
def test_a_server_that_would_be_unsafe_is_refused_at_start(
    root: Path, argv: list[str], says: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wfkit", "mcp", "--root", str(root), *argv],
        capture_output=True,
        text=True,
        timeout=HANG,
        env={**os.environ, "WFKIT_MCP_TOKEN": ""},
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert says in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_a_server_for_a_team_answers_to_its_names_only(root: Path) -> None:
    headers = {**ACCEPT, "Authorization": f"Bearer {TOKEN}"}
    with http_server(root, "--allow-host", "build-box", bind="0.0.0.0") as (url, _):
        port = url.rsplit(":", 1)[1].split("/")[0]
        by_loopback = httpx2.post(url, json=INITIALIZE, headers=headers)
        by_name = httpx2.post(
            url, json=INITIALIZE, headers={**headers, "Host": f"build-box:{port}"}
        )
        rebound = httpx2.post(
            url, json=INITIALIZE, headers={**headers, "Host": f"evil.test:{port}"}
        )
    assert (by_loopback.status_code, by_name.status_code) == (200, 200)
    assert rebound.status_code == 421


def test_the_token_never_reaches_a_step(root: Path) -> None:
    (root / "env.yaml").write_text(
        "name: env\nsteps:\n  - {id: show, type: shell_command, command: env}\n"
    )
    port = free_port()
    argv = [sys.executable, "-m", "wfkit", "mcp", "--root", str(root)]
    proc = subprocess.Popen(
        [*argv, "--http", f"127.0.0.1:{port}"],
        env=server_env(root, WFKIT_MCP_TOKEN=TOKEN),
        cwd=root,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/mcp"

    async def scenario() -> str:
        async with http_client(url) as client:
            run = await ok(client, "workflow_run", workflow="env.yaml")
            logs = await ok(client, "workflow_logs", run_id=run["run_id"])
            return str(logs["attempts"][0]["stdout"])

    try:
        _wait_until_served(url, proc)
        shown = asyncio.run(asyncio.wait_for(scenario(), HANG))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=HANG)
    assert "PATH=" in shown
    assert TOKEN not in shown
    assert "WFKIT_MCP_TOKEN" not in shown
    stored = [f for f in (root / "store").rglob("*") if f.is_file()]
    assert stored
    assert not [f for f in stored if TOKEN.encode() in f.read_bytes()]


def _wait_until_served(url: str, proc: subprocess.Popen[str]) -> None:
    while True:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            httpx2.get(url, timeout=5)
            return
        except httpx2.TransportError:
            pass


def test_read_only_over_http_serves_only_what_runs_nothing(root: Path) -> None:
    from wfkit.mcp_server.catalog import READ_ONLY

    async def scenario(url: str) -> set[str]:
        async with http_client(url) as client:
            return {t.name for t in (await client.list_tools()).tools}

    with http_server(root, "--read-only") as (url, _):
        names = asyncio.run(asyncio.wait_for(scenario(url), HANG))
    assert names == set(READ_ONLY)
    assert {"workflow_logs", "workflow_report"} <= names
    assert "workflow_cancel" not in names


def test_sigterm_cancels_the_runs_in_flight_and_answers_their_calls(root: Path) -> None:
    with http_server(root) as (url, proc):

        async def scenario() -> dict[str, object]:
            async with http_client(url) as client:
                started = await ok(client, "workflow_start", workflow="long.yaml")
                call = asyncio.ensure_future(
                    client.call_tool("workflow_run", {"workflow": "long.yaml"})
                )
                while len(await _running(client)) < 2:
                    await asyncio.sleep(0.05)
                proc.send_signal(signal.SIGTERM)
                while not (root / "FINISHED").exists():  # the signal was taken: runs end
                    await asyncio.sleep(0.05)
                late = await client.call_tool("workflow_run", {"workflow": "hello.yaml"})
                assert late.is_error
                assert "the server is stopping" in late.content[0].text  # type: ignore[union-attr]
                answered = await call
                assert not answered.is_error
                return {
                    "started": started["run_id"],
                    "run": dict(answered.structured_content or {}),
                }

        outcome = asyncio.run(asyncio.wait_for(scenario(), HANG))
        _, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 0, err
    run = outcome["run"]
    assert isinstance(run, dict)
    assert run["status"] == "cancelled"
    listed = subprocess.run(
        [sys.executable, "-m", "wfkit", "runs", "--json"],
        capture_output=True,
        text=True,
        env=server_env(root),
        check=True,
    )
    assert {r["status"] for r in json.loads(listed.stdout)} == {"cancelled"}
    assert (root / "FINISHED").exists()
    pids = [int(pid) for pid in (root / "pids").read_text().split()]
    assert len(pids) == 2
    for pid in pids:  # no process left
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_cancel_never_signals_a_server_that_runs_other_runs(root: Path) -> None:
    from wfkit.commands.manage import cancel_run

    (root / "slow-finally.yaml").write_text(
        "name: slow\nsteps:\n  - {id: s, type: shell_command, command: 'exec sleep 300'}\n"
        "finally:\n  - {id: f, type: shell_command, command: 'sleep 5'}\n"
    )
    with http_server(root) as (url, proc):

        async def scenario() -> tuple[str, str]:
            async with http_client(url) as client:
                target = await ok(client, "workflow_start", workflow="slow-finally.yaml")
                other = await ok(client, "workflow_start", workflow="long.yaml")
                while len(await _running(client)) < 2:
                    await asyncio.sleep(0.05)
                return target["run_id"], other["run_id"]

        target, _ = asyncio.run(asyncio.wait_for(scenario(), HANG))
        # the run does not end within the wait (its finally takes 5 s): no signal follows,
        # as its process, the server, runs another run too
        result = cancel_run(target, root / "store", wait=0.5)
        assert result.signalled is False
        assert proc.poll() is None  # the server lives on
    assert proc.returncode == 0


async def _running(client: object) -> list[str]:
    runs = (await ok(client, "workflow_list_runs"))["runs"]  # type: ignore[arg-type]
    return [r["run_id"] for r in runs if r["status"] == "running"]
