"""``wfkit mcp`` over real stdio: read-only runs nothing, the root holds for run ids, arguments
are checked, tools describe themselves, ``next`` is right, and resources are served."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from wfkit.commands import run_workflow
from wfkit.mcp_server.catalog import READ_ONLY, TOOLS
from wfkit.mcp_server.server import build_server

PWNED_FLOW = """
name: pwn
mcp_servers:
  x: {command: sh, args: ["-c", "id > PWNED"]}
steps:
  - {type: state_update, path: raw.n, value: 1}
"""

FAILING_FLOW = """
name: once
steps:
  - {id: mark, type: shell_command, command: "echo ran >> {marks}"}
  - {id: boom, type: shell_command, command: "exit 3"}
"""


@asynccontextmanager
async def wfkit_mcp(root: Path, *extra: str) -> AsyncIterator[Client]:
    """``wfkit mcp --root ROOT`` as a subprocess, with the SDK's stdio client; in process
    (the same server object) when ``WFKIT_TEST_IN_PROCESS`` is set by the ``mode`` fixture."""
    if os.environ.get("WFKIT_TEST_IN_PROCESS"):
        server = build_server(root, read_only="--read-only" in extra, store=root / "store")
        async with Client(server) as client:
            yield client
        return
    env = {"WFKIT_STORE": str(root / "store"), "PATH": os.environ["PATH"]}
    if "COVERAGE_PROCESS_START" in os.environ:
        env["COVERAGE_PROCESS_START"] = os.environ["COVERAGE_PROCESS_START"]
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "wfkit", "mcp", "--root", str(root), *extra],
        env=env,
        cwd=str(root),
    )
    async with Client(params) as client:
        yield client


def drive(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 120))


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
    return dict(result.structured_content or {})


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return str(result.content[0].text)  # type: ignore[union-attr]


@pytest.fixture(params=["stdio", "in-process"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each scenario through ``wfkit mcp`` over stdio, and in process (for coverage)."""
    if request.param == "in-process":
        monkeypatch.setenv("WFKIT_TEST_IN_PROCESS", "1")
    return str(request.param)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pwn.yaml").write_text(PWNED_FLOW)
    return project


def test_read_only_health_starts_no_server(root: Path, mode: str) -> None:
    async def scenario() -> None:
        async with wfkit_mcp(root, "--read-only") as client:
            health = await ok(client, "workflow_health", workflow="pwn.yaml")
            (server,) = [c for c in health["checks"] if c["name"] == "mcp server x"]
            assert server["detail"] == "not checked in read-only mode"
            runs = await ok(client, "workflow_list_runs")
            assert runs["runs"] == []
            missing = await refused(client, "workflow_debug_info", run_id="nope")
            assert "RunNotFoundError: no run 'nope'" in missing

    drive(scenario)
    assert not (root / "PWNED").exists(), "read-only mode ran a server's command"
    assert not (root / "store").exists(), "read-only mode created a run store"


def test_health_outside_read_only_does_start_servers(root: Path) -> None:
    async def scenario() -> None:
        async with wfkit_mcp(root) as client:
            await ok(client, "workflow_health", workflow="pwn.yaml")

    drive(scenario)
    assert (root / "PWNED").exists(), "the read-only test above could not fail"


def test_resume_of_a_run_whose_file_lies_outside_the_root(
    root: Path, tmp_path: Path, isolated_store: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    marks = tmp_path / "marks.txt"
    flow = outside / "flow.yaml"
    flow.write_text(FAILING_FLOW.replace("{marks}", str(marks)))
    escaped = run_workflow(flow, store=root / "store")
    inside = root / "inside.yaml"
    inside.write_text(FAILING_FLOW.replace("{marks}", str(marks)))
    swapped = run_workflow(inside, store=root / "store")
    assert (escaped.status, swapped.status) == ("failed", "failed")
    inside.unlink()
    inside.symlink_to(flow)  # the recorded file now leads outside
    assert marks.read_text().count("ran") == 2

    async def scenario() -> None:
        async with wfkit_mcp(root) as client:
            for run in (escaped, swapped):
                error = await refused(client, "workflow_resume", run_id=run.run_id, force=True)
                assert error.startswith("RootEscapeError: ")
                assert "outside the server's root" in error

    drive(scenario)
    assert marks.read_text().count("ran") == 2, "a refused resume ran steps"


def test_arguments_are_checked_and_errors_are_one_sentence(root: Path, mode: str) -> None:
    (root / "hello.yaml").write_text("name: hi\nsteps:\n  - {type: user_message, message: hi}\n")

    async def scenario() -> None:
        async with wfkit_mcp(root) as client:
            bogus = await refused(client, "workflow_run", workflow="hello.yaml", bogus=1)
            assert bogus == (
                "workflow_run takes no argument 'bogus'; "
                "its arguments are: workflow, inputs, answers, trace"
            )
            kind = await refused(client, "workflow_run", workflow="hello.yaml", trace="maybe")
            assert kind.startswith("workflow_run: argument 'trace': Input should be a valid")
            assert "pydantic.dev" not in kind
            missing = await refused(client, "workflow_explain_plan")
            assert missing == "workflow_explain_plan: argument 'workflow' is required"
            nul = await refused(client, "workflow_run", workflow="hello\0.yaml")
            assert nul == "workflow_run: argument 'workflow' contains a NUL byte"
            long = await refused(client, "workflow_run", workflow="a/" * 3000)
            assert long.startswith("InputError: argument 'workflow' is 6000 characters long")
            name = await refused(client, "workflow_explain_plan", workflow="x" * 300)
            assert "has a name of 300 characters" in name
            nul_id = await refused(client, "workflow_debug_info", run_id="a\0b")
            assert "NUL byte" in nul_id

    drive(scenario)


def test_tools_describe_themselves(root: Path, mode: str) -> None:
    async def scenario() -> None:
        async with wfkit_mcp(root) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {f.__name__ for f in TOOLS}
            for name, tool in tools.items():
                assert tool.description, name
                assert "\n " not in tool.description, f"{name}: docstring indentation"
                assert tool.input_schema["additionalProperties"] is False
                for argument, schema in tool.input_schema["properties"].items():
                    assert schema.get("description"), f"{name}.{argument} has no description"
                    assert "type" in schema or "anyOf" in schema or argument == "input"
                hints = tool.annotations
                assert hints is not None, name
                # outside --read-only, health starts the servers a workflow declares
                reads_only = name in READ_ONLY and name != "workflow_health"
                assert hints.read_only_hint is reads_only, name
                # claiming and answering agent work changes a run, destroys nothing
                agent_work = name in ("workflow_next_task", "workflow_complete_task")
                assert hints.destructive_hint is (name not in READ_ONLY and not agent_work), name
                assert hints.idempotent_hint is (name in READ_ONLY), name
            limit = tools["workflow_list_runs"].input_schema["properties"]["limit"]
            assert (limit["default"], limit["minimum"]) == (20, 1)

    drive(scenario)


def test_next_suggests_only_what_applies(root: Path, mode: str) -> None:
    (root / "fine.yaml").write_text(
        "name: fine\nstate_schema:\n  raw: {n: integer}\n"
        "  computed:\n    twice: {from: raw.n, transform: input * 2}\n"
        "steps:\n  - {type: state_update, path: raw.n, value: 2}\n"
    )
    (root / "bad.yaml").write_text(
        "name: bad\nsteps:\n  - {type: shell_command, command: 'exit 1'}\n"
    )

    async def scenario() -> None:
        async with wfkit_mcp(root) as client:
            plain = await ok(client, "workflow_run", workflow="fine.yaml")
            assert [c["tool"] for c in plain["next"]] == ["workflow_debug_info"]
            traced = await ok(client, "workflow_run", workflow="fine.yaml", trace=True)
            assert [c["tool"] for c in traced["next"]] == [
                "workflow_trace_transformations",
                "workflow_debug_info",
            ]
            failed = await ok(client, "workflow_run", workflow="bad.yaml")
            assert [c["tool"] for c in failed["next"]] == ["workflow_debug_info", "workflow_resume"]
            debug = await ok(client, "workflow_debug_info", run_id=failed["run_id"])
            assert "workflow_debug_info" not in [c["tool"] for c in debug["next"]]
            assert [c["tool"] for c in debug["next"]] == ["workflow_resume"]

    drive(scenario)


def test_runs_and_workflows_are_resources(root: Path, mode: str) -> None:
    (root / "flows").mkdir()
    (root / "flows" / "fine.yaml").write_text(
        "name: fine\nsteps:\n  - {type: user_message, message: ok}\n"
    )
    (root / ".hidden").mkdir()
    (root / ".hidden" / "secret.yaml").write_text("name: hidden\n")

    async def scenario() -> None:
        async with wfkit_mcp(root) as client:
            run = await ok(client, "workflow_run", workflow="flows/fine.yaml")
            listed = {str(r.uri) for r in (await client.list_resources()).resources}
            assert {
                "wfkit://runs",
                "wfkit://workflows/flows/fine.yaml",
                "wfkit://workflows/pwn.yaml",
            } <= listed
            assert not any("hidden" in uri for uri in listed)
            templates = {
                t.uri_template for t in (await client.list_resource_templates()).resource_templates
            }
            assert templates == {"wfkit://runs/{run_id}", "wfkit://workflows/{+path}"}
            runs = json.loads((await client.read_resource("wfkit://runs")).contents[0].text)  # type: ignore[union-attr]
            assert [r["run_id"] for r in runs] == [run["run_id"]]
            one = await client.read_resource(f"wfkit://runs/{run['run_id']}")
            assert json.loads(one.contents[0].text)["status"] == "succeeded"  # type: ignore[union-attr]
            text = await client.read_resource("wfkit://workflows/flows/fine.yaml")
            assert text.contents[0].text.startswith("name: fine")  # type: ignore[union-attr]
            with pytest.raises(Exception, match=r"outside the server's root|Unknown resource"):
                await client.read_resource("wfkit://workflows/../../etc/passwd")

    drive(scenario)


def test_resources_serve_only_workflow_files(root: Path, mode: str, tmp_path: Path) -> None:
    (root / ".env.yaml").write_text("SECRET: hunter2\n")
    (root / "notes.txt").write_text("private\n")
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("name: elsewhere\n")
    (root / "link.yaml").symlink_to(outside)
    os.mkfifo(root / "pipe.yaml")

    async def scenario() -> None:
        async with wfkit_mcp(root) as client:
            listed = {str(r.uri) for r in (await client.list_resources()).resources}
            assert "wfkit://workflows/pwn.yaml" in listed
            for hidden in ("link.yaml", ".env.yaml", "notes.txt", "pipe.yaml"):
                assert f"wfkit://workflows/{hidden}" not in listed, hidden
            for name, why in (
                ("notes.txt", "is not a workflow file"),
                (".env.yaml", "is hidden"),
                ("link.yaml", "outside the server's root"),
                ("pipe.yaml", "is not a regular file"),
            ):
                with pytest.raises(Exception, match=why):
                    await client.read_resource(f"wfkit://workflows/{name}")

    drive(scenario)


def test_health_hints_say_it_starts_servers_outside_read_only(root: Path, mode: str) -> None:
    async def hints(*extra: str) -> Any:
        async with wfkit_mcp(root, *extra) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            return tools["workflow_health"].annotations

    full = asyncio.run(hints())
    assert (full.read_only_hint, full.open_world_hint) == (False, True)
    limited = asyncio.run(hints("--read-only"))
    assert (limited.read_only_hint, limited.open_world_hint) == (True, False)


def test_a_nul_inside_an_object_argument_is_an_input_error(root: Path, mode: str) -> None:
    (root / "echo.yaml").write_text(
        "name: echo\ninputs: {word: {type: string}}\n"
        "steps:\n  - {type: shell_command, command: 'echo {{ word }}'}\n"
    )

    async def scenario() -> None:
        async with wfkit_mcp(root) as client:
            error = await refused(
                client, "workflow_run", workflow="echo.yaml", inputs={"word": "a\0b"}
            )
            assert error.startswith("InputError: input 'word' contains a NUL byte")

    drive(scenario)


SLOW_EXPRESSION = "{{ (['a'*100000]*99999)|map('regex_search', 'a*b')|select|list|length }}"


def test_a_slow_expression_does_not_block_other_calls(root: Path, mode: str) -> None:
    order: list[str] = []

    async def scenario() -> None:
        async with wfkit_mcp(root, "--read-only") as client:

            async def slow() -> None:
                result = await client.call_tool(
                    "workflow_test_transformation", {"transform": SLOW_EXPRESSION}
                )
                order.append("slow")
                assert "CPU time" in (result.structured_content or {})["error"]["message"]

            async def quick() -> None:
                await asyncio.sleep(0.2)  # the slow call is under way
                for _ in range(3):
                    await ok(client, "workflow_list_runs")
                order.append("quick")

            await asyncio.gather(slow(), quick())

    drive(scenario)
    assert order == ["quick", "slow"]


def _raw_session(root: Path, *requests: dict[str, Any]) -> list[dict[str, Any]]:
    """Lines written straight to ``wfkit mcp`` (no SDK client: it would refuse to send what
    these tests send); the answers, one per request with an id."""
    import select
    import subprocess
    import time

    hello = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }
    lines = [hello, {"jsonrpc": "2.0", "method": "notifications/initialized"}, *requests]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfkit", "mcp", "--root", str(root), "--read-only"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "WFKIT_STORE": str(root / "store")},
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(text.encode())
    proc.stdin.flush()
    wanted = 1 + sum("id" in r for r in requests)
    received = b""
    deadline = time.monotonic() + 120  # a hang becomes a failure, never a measure of speed
    while received.count(b"\n") < wanted and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            received += chunk
    proc.kill()
    proc.communicate(timeout=120)  # closes the pipes
    answers = [json.loads(line) for line in received.splitlines()]
    assert len(answers) == wanted, answers
    return answers[1:]


def test_a_request_nested_too_deeply_is_answered(root: Path) -> None:
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": "workflow_test_transformation",
            "arguments": {"transform": "{{ input|length }}", "input": deep},
        },
    }
    after = {**call, "id": 8}
    after["params"] = {**call["params"], "arguments": {"transform": "{{ 1 + 1 }}"}}
    answers = _raw_session(root, call, after)
    assert [a["id"] for a in answers] == [7, 8]
    refused, fine = answers[0]["result"], answers[1]["result"]
    assert refused["isError"]
    assert "nests too deeply" in refused["content"][0]["text"]
    assert fine["structuredContent"]["output"] == 2  # the server still serves


LONG_FLOW = """
name: long
steps:
  - {{id: wait, type: shell_command, command: "touch {started}; sleep 300"}}
finally:
  - {{id: fin, type: shell_command, command: "touch {finished}"}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("closed", ["stdin", "stdout"])
def test_a_client_that_goes_away_cancels_its_run_with_finally(root: Path, closed: str) -> None:
    import subprocess
    import time

    started, finished = root / "STARTED", root / "FINISHED"
    (root / "long.yaml").write_text(LONG_FLOW.format(started=started, finished=finished))
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfkit", "mcp", "--root", str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "WFKIT_STORE": str(root / "store")},
    )
    assert proc.stdin is not None
    assert proc.stdout is not None

    def send(message: dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write((json.dumps(message) + "\n").encode())
        proc.stdin.flush()

    send(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"},
            },
        }
    )
    assert json.loads(proc.stdout.readline())["id"] == 0
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    call = {"name": "workflow_run", "arguments": {"workflow": "long.yaml"}}
    send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call})
    deadline = time.monotonic() + 120  # a hang becomes a failure, never a measure of speed
    while not started.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    if closed == "stdout":
        proc.stdout.close()
        listing = {"name": "workflow_list_runs", "arguments": {}}  # an answer to write
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": listing})
    _, err = proc.communicate(timeout=120)  # closes stdin: the client is gone
    assert "Traceback" not in err.decode(), err.decode()
    assert finished.exists()  # the run's finally step ran
    runs = subprocess.run(
        [sys.executable, "-m", "wfkit", "runs", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "WFKIT_STORE": str(root / "store")},
        check=True,
    )
    assert [r["status"] for r in json.loads(runs.stdout)] == ["cancelled"]


def test_a_secret_input_never_reaches_an_mcp_result(root: Path, mode: str) -> None:
    token = "tok_CANARY_mcp"
    (root / "secret.yaml").write_text(
        "name: s\ninputs: {token: {type: string, secret: true}}\n"
        "state_schema: {raw: {h: string}}\nsteps:\n"
        "  - {type: state_update, path: raw.h, value: 'Bearer {{ token }}'}\n"
        "  - {type: shell_command, command: 'echo {{ token }}; exit 3'}\n"
    )

    async def scenario() -> None:
        async with wfkit_mcp(root) as client:
            result = await client.call_tool(
                "workflow_run", {"workflow": "secret.yaml", "inputs": {"token": token}}
            )
            text = json.dumps(result.structured_content) + str(result.content)
            assert token not in text
            assert (result.structured_content or {})["state"]["raw"]["h"] == "Bearer ***"
            run_id = (result.structured_content or {})["run_id"]
            debug = await client.call_tool("workflow_debug_info", {"run_id": run_id})
            assert token not in json.dumps(debug.structured_content)
            resource = await client.read_resource(f"wfkit://runs/{run_id}")
            assert token not in str(resource)

    drive(scenario)
