"""Agent steps performed by the MCP client's model, by sampling, with the SDK's client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPError
from mcp_types import CreateMessageRequestParams, CreateMessageResult, ErrorData, TextContent

from tests.mcp_server.test_pull import server
from wfkit.commands import list_runs
from wfkit.commands.debug import debug_run
from wfkit.mcp_server import agents
from wfkit.mcp_server.server import build_server

FLOW = """
name: sampled
state_schema:
  raw: {fixes: array}
steps:
  - id: triage
    type: agent_task
    prompt: "Propose one fix per failure."
    context: {failures: [timeout, flaky]}
    response_schema:
      type: object
      required: [fixes]
      properties: {fixes: {type: array, items: {type: string}, minItems: 2}}
    on_error: retry
    retry_count: 1
    retry_delay: 0
    state_update: {path: raw.fixes, value: "{{ result.fixes }}"}
"""


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("WFKIT_AGENT_COMMAND", raising=False)
    (tmp_path / "flow.yaml").write_text(FLOW)
    return tmp_path


class Model:
    """A sampling callback: a wrong first answer, then a right one in a code fence."""

    def __init__(self) -> None:
        self.requests: list[CreateMessageRequestParams] = []

    async def __call__(
        self, context: Any, params: CreateMessageRequestParams
    ) -> CreateMessageResult | ErrorData:
        self.requests.append(params)
        if len(self.requests) == 1:
            text = json.dumps({"fixes": ["only one"]})
        else:
            text = (
                "```json\n" + json.dumps({"fixes": ["raise the timeout", "quarantine"]}) + "\n```"
            )
        return CreateMessageResult(
            role="assistant", content=TextContent(type="text", text=text), model="test-model"
        )


def check_sampled(report: dict[str, Any], model: Model) -> None:
    assert report["status"] == "succeeded", report["error"]
    assert report["state"]["raw"]["fixes"] == ["raise the timeout", "quarantine"]
    assert report["steps"][0]["attempts"] == 2
    first, second = model.requests
    assert '"required": ["fixes"]' in (first.system_prompt or "")
    text = first.messages[0].content.text  # type: ignore[union-attr]
    assert text.startswith("Propose one fix per failure.")
    assert '{"failures": ["timeout", "flaky"]}' in text
    again = second.messages[0].content.text  # type: ignore[union-attr]
    assert "Your previous answer was refused" in again
    assert "minItems" in again or "is too short" in again


def test_a_sampling_client_performs_agent_steps_in_process(root: Path) -> None:
    model = Model()

    async def scenario() -> dict[str, Any]:
        server = build_server(root, store=root / "store")
        async with Client(server, sampling_callback=model) as client:
            result = await client.call_tool("workflow_run", {"workflow": "flow.yaml"})
            assert not result.is_error, result.content
            return dict(result.structured_content or {})

    check_sampled(asyncio.run(asyncio.wait_for(scenario(), 120)), model)


def test_a_sampling_client_performs_agent_steps_over_stdio(root: Path) -> None:
    model = Model()

    async def scenario() -> dict[str, Any]:
        async with server(root, sampling_callback=model) as client:
            result = await client.call_tool("workflow_run", {"workflow": "flow.yaml"})
            assert not result.is_error, result.content
            return dict(result.structured_content or {})

    check_sampled(asyncio.run(asyncio.wait_for(scenario(), 120)), model)


def test_a_legacy_client_is_asked_by_a_request_of_the_server(root: Path) -> None:
    """On a handshake-era protocol the server sends sampling/createMessage itself."""
    model = Model()

    async def scenario() -> dict[str, Any]:
        server = build_server(root, store=root / "store")
        async with Client(server, sampling_callback=model, mode="legacy") as client:
            result = await client.call_tool("workflow_run", {"workflow": "flow.yaml"})
            return dict(result.structured_content or {})

    check_sampled(asyncio.run(asyncio.wait_for(scenario(), 120)), model)


async def refuse(context: Any, params: CreateMessageRequestParams) -> ErrorData:
    return ErrorData(code=-1, message="the user declined")


def test_a_legacy_client_refusing_is_an_agent_error(root: Path) -> None:
    async def scenario() -> dict[str, Any]:
        server = build_server(root, store=root / "store")
        async with Client(server, sampling_callback=refuse, mode="legacy") as client:
            result = await client.call_tool("workflow_run", {"workflow": "flow.yaml"})
            return dict(result.structured_content or {})

    report = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert report["status"] == "failed"
    assert report["error"]["type"] == "AgentError"
    assert "the user declined" in report["error"]["message"]


def test_a_client_that_never_comes_back_fails_the_waiting_attempt(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client refuses a round and stops: after the wait the run ends on its own."""
    monkeypatch.setattr(agents, "INPUT_WAIT_SECONDS", 0.5)
    store = root / "store"

    async def scenario() -> None:
        server = build_server(root, store=store)
        async with Client(server, sampling_callback=refuse) as client:
            with pytest.raises(MCPError, match="the user declined"):
                await client.call_tool("workflow_run", {"workflow": "flow.yaml"})
            for _ in range(1200):  # the run goes on in the server until its attempt fails
                if not agents.LIVE:
                    break
                await asyncio.sleep(0.05)
            assert not agents.LIVE

    asyncio.run(asyncio.wait_for(scenario(), 120))
    [run] = list_runs(store=store)
    info = debug_run(run.run_id, store=store)
    assert info.status == "failed"
    assert info.error is not None
    assert info.error["type"] == "AgentError"
    assert "stopped answering" in info.error["message"]
    first = info.errors[0]
    assert first.error_type == "AgentTimeoutError"
    assert "did not answer a sampling request" in first.message


def test_a_client_without_sampling_has_no_performer(root: Path) -> None:
    async def scenario() -> dict[str, Any]:
        async with Client(build_server(root, store=root / "store")) as client:
            result = await client.call_tool("workflow_run", {"workflow": "flow.yaml"})
            return dict(result.structured_content or {})

    report = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert report["status"] == "failed"
    assert report["error"]["type"] == "AgentUnavailableError"


FAN = """
name: sampled-fan
state_schema:
  raw: {doubles: array}
steps:
  - id: each
    type: parallel_foreach
    items: "{{ range(1, 7) | list }}"
    sub_agent_task: double
    max_parallel: 3
    state_update:
      path: raw.doubles
      value: "{{ result | map(attribute='state.raw.double') | list }}"
sub_agent_tasks:
  double:
    inputs: {item: {type: integer}}
    steps:
      - id: ask
        type: agent_task
        prompt: "Double it."
        context: {n: "{{ item }}"}
        response_schema: {type: integer}
        state_update: {path: raw.double, value: "{{ result }}"}
"""


def test_a_fan_out_samples_each_item_from_the_client(root: Path) -> None:
    (root / "fan.yaml").write_text(FAN)
    seen: list[int] = []

    async def double(context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
        text = params.messages[0].content.text  # type: ignore[union-attr]
        n = json.loads(text.split("Context (JSON):\n", 1)[1])["n"]
        seen.append(n)
        return CreateMessageResult(
            role="assistant", content=TextContent(type="text", text=str(n * 2)), model="m"
        )

    async def scenario() -> dict[str, Any]:
        async with Client(build_server(root, store=root / "store"), sampling_callback=double) as c:
            result = await c.call_tool("workflow_run", {"workflow": "fan.yaml"})
            assert not result.is_error, result.content
            return dict(result.structured_content or {})

    report = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert report["status"] == "succeeded", report["error"]
    assert report["state"]["raw"]["doubles"] == [2, 4, 6, 8, 10, 12]
    assert sorted(seen) == [1, 2, 3, 4, 5, 6]
