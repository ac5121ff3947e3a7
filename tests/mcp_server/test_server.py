"""``wfkit mcp``: every tool in process, and the real server over stdio."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from tests.conftest import EXAMPLES
from wfkit.errors import InputError
from wfkit.mcp_server.arguments import confine, json_arg
from wfkit.mcp_server.catalog import READ_ONLY, TOOLS
from wfkit.mcp_server.server import build_server

FLOW = """
name: agent-flow
inputs:
  n: {type: integer, default: 2}
state_schema:
  raw: {doubled: integer}
  computed:
    big: {from: raw.doubled, transform: input > 3}
steps:
  - {id: double, type: state_update, path: raw.doubled, value: "{{ n * 2 }}"}
  - id: confirm
    type: user_input
    prompt: "Ship {{ doubled }}?"
    choices: ["yes", "no"]
  - {id: gate, type: shell_command, command: "test '{{ steps.confirm.output }}' = yes"}
"""


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise AssertionError(result.content[0].text)  # type: ignore[union-attr]
    return result.structured_content


async def error_of(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    return str(result.content[0].text)  # type: ignore[union-attr]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "flow.yaml").write_text(FLOW)
    return tmp_path


def test_every_tool_in_process(root: Path) -> None:
    async def scenario() -> None:
        async with Client(build_server(root, store=root / "store")) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {f.__name__ for f in TOOLS}
            plan = await call(
                client, "workflow_explain_plan", workflow="flows/flow.yaml", inputs='{"n": 5}'
            )
            assert plan["inputs"][0]["value"] == 5
            waiting = await call(
                client, "workflow_run", workflow="flows/flow.yaml", inputs={"n": 3}, trace=True
            )
            assert waiting["status"] == "waiting"
            assert waiting["error"]["prompt"] == "Ship 6?"
            assert waiting["next"][0]["tool"] == "workflow_resume"
            run_id = waiting["run_id"]
            debug = await call(client, "workflow_debug_info", run_id=run_id)
            assert (debug["status"], debug["failed_step"]) == ("waiting", "confirm")
            done = await call(
                client, "workflow_resume", run_id=run_id, answers='{"confirm": "yes"}'
            )
            assert done["status"] == "succeeded"
            assert done["state"]["computed"] == {"big": True}
            assert done["next"][0]["tool"] == "workflow_trace_transformations"
            refused = await call(
                client, "workflow_run", workflow="flows/flow.yaml", answers={"confirm": "no"}
            )
            assert refused["status"] == "failed"
            assert refused["next"][0] == {
                "tool": "workflow_debug_info",
                "arguments": {"run_id": refused["run_id"]},
                "why": "the run failed: see the failing step, state and errors",
            }
            trace = await call(client, "workflow_trace_transformations", run_id=run_id, field="big")
            assert trace["traces"][0]["field"] == "computed.big"
            runs = await call(client, "workflow_list_runs")
            assert [r["run_id"] for r in runs["runs"]] == [refused["run_id"], run_id]
            transform = await call(
                client, "workflow_test_transformation", transform="input * 2", input=21
            )
            assert transform["output"] == 42
            field = await call(
                client,
                "workflow_test_transformation",
                workflow="flows/flow.yaml",
                field="big",
                state='{"raw": {"doubled": 1}}',
            )
            assert field["output"] is False
            health = await call(client, "workflow_health", workflow="flows/flow.yaml")
            assert health["ok"] is True

    asyncio.run(scenario())


def test_every_tool_publishes_the_output_schema_of_its_result(root: Path) -> None:
    import jsonschema

    async def scenario() -> dict[str, Any]:
        async with Client(build_server(root, store=root / "store")) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            run = await client.call_tool("workflow_run", {"workflow": "flows/flow.yaml"})
            debug = await client.call_tool(
                "workflow_debug_info", {"run_id": run.structured_content["run_id"]}
            )
            schemas = {name: tool.output_schema for name, tool in tools.items()}
            for name, result in (("workflow_run", run), ("workflow_debug_info", debug)):
                jsonschema.validate(result.structured_content, schemas[name])
            return schemas

    schemas = asyncio.run(scenario())
    expected = {
        "workflow_run": {"run_id", "status", "state", "steps", "errors", "next"},
        "workflow_resume": {"run_id", "status", "state", "steps", "errors", "next"},
        "workflow_explain_plan": {"workflow", "inputs", "steps", "warnings"},
        "workflow_trace_transformations": {"run_id", "traces", "events"},
        "workflow_debug_info": {"run_id", "status", "state", "bottlenecks", "next"},
        "workflow_test_transformation": {"expression", "output", "error"},
        "workflow_list_runs": {"runs"},
        "workflow_health": {"ok", "checks"},
        "workflow_why": {"run_id", "step_id", "status"},
        "workflow_diff": {"run_a", "run_b", "first_divergence"},
    }
    shown = {name: set((schemas[name] or {}).get("properties", {})) for name in expected}
    assert {name: fields & shown[name] for name, fields in expected.items()} == expected
    assert schemas["workflow_run"]["properties"]["next"]["items"] == {"$ref": "#/$defs/NextCall"}
    assert set(schemas["workflow_run"]["$defs"]["NextCall"]["properties"]) == {
        "tool",
        "arguments",
        "why",
    }


def test_errors_are_useful_tool_errors(root: Path) -> None:
    async def scenario() -> None:
        async with Client(build_server(root, store=root / "store")) as client:
            escape = await error_of(client, "workflow_run", workflow="../outside.yaml")
            assert "RootEscapeError" in escape
            assert "outside the server's root" in escape
            missing = await error_of(client, "workflow_debug_info", run_id="nope")
            assert "RunNotFoundError" in missing
            bad = await error_of(
                client, "workflow_run", workflow="flows/flow.yaml", inputs="{not json"
            )
            assert "inputs is neither dict nor JSON text" in bad
            broken = root / "flows" / "broken.yaml"
            broken.write_text("name: x\nstepz: 1\n")
            load = await error_of(client, "workflow_explain_plan", workflow="flows/broken.yaml")
            assert "broken.yaml:2:1: unknown field 'stepz'" in load

    asyncio.run(scenario())


def test_read_only_serves_only_tools_that_run_nothing(root: Path) -> None:
    async def scenario() -> None:
        async with Client(build_server(root, read_only=True)) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == set(READ_ONLY)

    asyncio.run(scenario())


def test_paths_are_confined_to_the_root(
    root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.yaml").write_text("name: secret\n")
    (root / "link").symlink_to(outside)
    assert confine(root, "flows/flow.yaml") == root / "flows" / "flow.yaml"
    assert confine(root, str(root / "flows" / "flow.yaml")) == root / "flows" / "flow.yaml"
    for attempt in (
        "../x.yaml",
        "flows/../../x.yaml",
        str(outside / "secret.yaml"),
        "link/secret.yaml",
        "/etc/passwd",
    ):
        with pytest.raises(InputError, match="outside the server's root"):
            confine(root, attempt)


def test_json_text_arguments() -> None:
    assert json_arg('{"a": 1}', "x") == {"a": 1}
    assert json_arg({"a": 1}, "x") == {"a": 1}
    assert json_arg(None, "x") is None
    assert json_arg("[1, 2]", "x", list) == [1, 2]
    with pytest.raises(InputError, match="must be a JSON object"):
        json_arg("[1]", "x")
    with pytest.raises(InputError, match="must be a JSON object"):
        json_arg(3, "x")


def test_wfkit_mcp_over_stdio_run_debug_resume(root: Path) -> None:
    """The installed CLI as an MCP server, driven by the SDK's stdio client."""
    env = {"WFKIT_STORE": str(root / "store"), "PATH": os.environ["PATH"]}
    if "COVERAGE_PROCESS_START" in os.environ:
        env["COVERAGE_PROCESS_START"] = os.environ["COVERAGE_PROCESS_START"]
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "wfkit", "mcp", "--root", str(root)], env=env
    )

    async def scenario() -> None:
        async with Client(params) as client:
            waiting = await call(client, "workflow_run", workflow="flows/flow.yaml")
            run_id = waiting["run_id"]
            assert waiting["status"] == "waiting"
            debug = await call(client, "workflow_debug_info", run_id=run_id)
            assert debug["status"] == "waiting"
            done = await call(
                client, "workflow_resume", run_id=run_id, answers=json.dumps({"confirm": "yes"})
            )
            assert done["status"] == "succeeded"
            assert done["state"]["raw"] == {"doubled": 4}

    asyncio.run(scenario())


def test_examples_through_the_shim() -> None:
    async def scenario() -> None:
        async with Client(build_server(EXAMPLES)) as client:
            report = await call(client, "workflow_run", workflow="hello.yaml")
            assert report["status"] == "succeeded"

    asyncio.run(scenario())


def test_a_fifo_given_as_a_workflow_is_refused_not_waited_on(root: Path) -> None:
    os.mkfifo(root / "flows" / "pipe.yaml")

    async def scenario() -> str:
        async with Client(build_server(root, store=root / "store")) as client:
            return await error_of(client, "workflow_explain_plan", workflow="flows/pipe.yaml")

    message = asyncio.run(asyncio.wait_for(scenario(), timeout=120))
    assert "LoadError" in message
    assert "not a regular file" in message


def test_every_argument_has_a_json_schema_type(root: Path) -> None:
    async def scenario() -> dict[str, dict[str, Any]]:
        async with Client(build_server(root, store=root / "store")) as client:
            return {t.name: t.input_schema for t in (await client.list_tools()).tools}

    untyped = [
        (tool, name)
        for tool, schema in asyncio.run(scenario()).items()
        for name, prop in schema["properties"].items()
        if not ({"type", "anyOf", "$ref"} & set(prop))
    ]
    assert untyped == []


def test_the_server_reports_its_version(root: Path) -> None:
    from wfkit import __version__

    async def scenario() -> str:
        async with Client(build_server(root, store=root / "store")) as client:
            return str(client.server_info.version)

    assert asyncio.run(scenario()) == __version__
