"""Long runs as an agent meets them through the SDK's client, over stdio, streamable HTTP and
in process: progress notifications, cancelling (the client's cancel notification and
``workflow_cancel``), ``user_input`` asked by elicitation, and the tools that read a run
(``workflow_logs``, ``workflow_report``) or continue it (``workflow_resume`` with ``from`` and
``inputs``)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from mcp.client import Client

from tests.mcp_server.test_guarantees import ok, refused
from tests.mcp_server.transports import HANG, connect

TRANSPORTS = ["stdio", "http", "in-process"]

FIVE = """
name: five
steps:
""" + "".join(
    f'  - {{id: s{i}, type: shell_command, command: "echo step-{i}"}}\n' for i in range(1, 6)
)

FAN = """
name: fan
sub_agent_tasks:
  t:
    steps: [{id: s, type: shell_command, command: "true"}]
steps:
  - {id: first, type: shell_command, command: "true"}
  - {id: fan, type: parallel_foreach, items: "{{ [1, 2, 3, 4] }}", sub_agent_task: t}
"""

LONG = """
name: long
steps:
  - {id: hello, type: shell_command, command: "echo hello"}
  - id: sleep
    type: shell_command
    command: "echo $$ > '{root}/pid'; touch '{root}/STARTED'; exec sleep 300"
finally:
  - {id: note, type: shell_command, command: "touch '{root}/FINISHED'"}
"""

ASK = """
name: ask
state_schema:
  raw: {count: integer, colour: string}
steps:
  - id: how_many
    type: user_input
    prompt: "How many copies?"
    default: 2
    state_update: {path: raw.count, value: "{{ result }}"}
  - id: colour
    type: user_input
    prompt: "Which colour?"
    choices: [red, blue]
    state_update: {path: raw.colour, value: "{{ result }}"}
"""

READS = """
name: reads
inputs:
  suffix: {type: string, default: "-a"}
steps:
  - {id: read, type: shell_command, command: "cat config{{ suffix }}"}
  - {id: check, type: shell_command, command: "test '{{ steps.read.output.stdout }}' = good"}
"""


def drive(scenario: Any) -> None:
    asyncio.run(asyncio.wait_for(scenario(), HANG * 2))


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)  # where commands run in process, as in the served ones
    for name, text in {
        "five": FIVE,
        "fan": FAN,
        "long": LONG.replace("{root}", str(project)),
        "ask": ASK,
        "reads": READS,
    }.items():
        (project / f"{name}.yaml").write_text(text)
    return project


async def _with_progress(client: Client, workflow: str) -> tuple[dict[str, Any], list[Any]]:
    notes: list[tuple[float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        notes.append((value, total, message))

    result = await client.call_tool(
        "workflow_run", {"workflow": workflow}, progress_callback=progress
    )
    assert not result.is_error, result.content[0].text  # type: ignore[union-attr]
    return dict(result.structured_content or {}), notes


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_run_reports_progress_per_finished_step(root: Path, transport: str) -> None:
    async def scenario() -> None:
        async with connect(transport, root) as client:
            run, notes = await _with_progress(client, "five.yaml")
            assert run["status"] == "succeeded"
            assert notes == [(float(i), 5.0, f"s{i} succeeded") for i in range(1, 6)]
            fan, notes = await _with_progress(client, "fan.yaml")
            assert fan["status"] == "succeeded"
            values = [value for value, _, _ in notes]
            assert values == sorted(values)
            assert len(set(values)) == len(values)
            assert notes[0] == (1.0, 2.0, "first succeeded")
            items = [m for _, _, m in notes if m and " item " in m]
            assert len(items) == 4
            assert all(m.endswith("succeeded") for m in items)
            assert notes[-1] == (2.0, 2.0, "fan succeeded")
            plain = await ok(client, "workflow_run", workflow="five.yaml")  # no token: none
            assert plain["status"] == "succeeded"

    drive(scenario)


def _ended(root: Path) -> None:
    """The sleep's process is gone and the finally step ran."""
    pid = int((root / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert (root / "FINISHED").exists()


async def _started(root: Path) -> None:
    while not (root / "STARTED").exists():
        await asyncio.sleep(0.05)


async def _status(client: Client, run_id: str | None = None) -> str:
    runs = (await ok(client, "workflow_list_runs"))["runs"]
    row = runs[0] if run_id is None else next(r for r in runs if r["run_id"] == run_id)
    return str(row["status"])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_cancelled_call_cancels_its_run_with_finally(root: Path, transport: str) -> None:
    async def scenario() -> None:
        async with connect(transport, root) as client:
            call = asyncio.ensure_future(
                client.call_tool("workflow_run", {"workflow": "long.yaml"})
            )
            await _started(root)
            call.cancel()  # the client's cancellation of the request
            with pytest.raises(asyncio.CancelledError):
                await call
            while await _status(client) == "running":
                await asyncio.sleep(0.1)
            assert await _status(client) == "cancelled"
        _ended(root)

    drive(scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_workflow_cancel_ends_a_run_started_earlier(root: Path, transport: str) -> None:
    async def scenario() -> None:
        async with connect(transport, root) as client:
            started = await ok(client, "workflow_start", workflow="long.yaml")
            await _started(root)
            cancelled = await ok(client, "workflow_cancel", run_id=started["run_id"])
            assert cancelled == {
                "run_id": started["run_id"],
                "status": "cancelled",
                "signalled": False,  # never its own server
            }
            _ended(root)
            again = await refused(client, "workflow_cancel", run_id=started["run_id"])
            assert again.startswith("CancelError: ")
            assert "is not running" in again
            # the server lives on: a run after the cancel
            assert (await ok(client, "workflow_run", workflow="five.yaml"))["status"] == "succeeded"

    drive(scenario)


def _answering(action: str, answers: dict[str, Any], seen: list[Any]) -> Any:
    async def elicit(context: Any, params: Any) -> Any:
        from mcp_types import ElicitResult

        seen.append((params.message, params.requested_schema))
        if action != "accept":
            return ElicitResult(action=action)
        field = params.requested_schema["properties"]["answer"]
        return ElicitResult(action="accept", content={"answer": answers[field["title"]]})

    return elicit


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_user_input_is_asked_by_elicitation(root: Path, transport: str) -> None:
    async def scenario() -> None:
        seen: list[Any] = []
        answers = {"how_many": 3, "colour": "blue"}
        async with connect(
            transport, root, elicitation_callback=_answering("accept", answers, seen)
        ) as client:
            run = await ok(client, "workflow_run", workflow="ask.yaml")
        assert run["status"] == "succeeded"
        assert run["state"]["raw"] == {"count": 3, "colour": "blue"}
        assert seen == [
            (
                "How many copies?",
                {
                    "type": "object",
                    "properties": {
                        "answer": {
                            "title": "how_many",
                            "description": "How many copies?",
                            "type": "integer",  # as raw.count is declared
                            "default": 2,
                        }
                    },
                    "required": ["answer"],
                },
            ),
            (
                "Which colour?",
                {
                    "type": "object",
                    "properties": {
                        "answer": {
                            "title": "colour",
                            "description": "Which colour?",
                            "type": "string",
                            "enum": ["red", "blue"],
                        }
                    },
                    "required": ["answer"],
                },
            ),
        ]

    drive(scenario)


@pytest.mark.parametrize("action", ["decline", "cancel", "absent"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_declined_or_absent_elicitation_leaves_the_run_waiting(
    root: Path, transport: str, action: str
) -> None:
    async def scenario() -> None:
        seen: list[Any] = []
        client_options = (
            {} if action == "absent" else {"elicitation_callback": _answering(action, {}, seen)}
        )
        async with connect(transport, root, **client_options) as client:
            run = await ok(client, "workflow_run", workflow="ask.yaml")
            assert run["status"] == "waiting"
            assert run["error"]["step_id"] == "how_many"
            assert len(seen) == (0 if action == "absent" else 1)
            resumed = await ok(
                client,
                "workflow_resume",
                run_id=run["run_id"],
                answers={"how_many": 1, "colour": "red"},
            )
            assert resumed["state"]["raw"] == {"count": 1, "colour": "red"}

    drive(scenario)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_logs_report_and_resume_from_with_inputs(root: Path, transport: str) -> None:
    async def scenario() -> None:
        (root / "config-a").write_text("bad")
        async with connect(transport, root) as client:
            run = await ok(client, "workflow_run", workflow="reads.yaml")
            assert run["status"] == "failed"
            logs = await ok(client, "workflow_logs", run_id=run["run_id"], step="read")
            assert [a["stdout"] for a in logs["attempts"]] == ["bad"]  # a succeeded step's
            assert logs["attempts"][0]["status"] == "succeeded"
            everything = await ok(client, "workflow_logs", run_id=run["run_id"])
            assert [a["step_id"] for a in everything["attempts"]] == ["read", "check"]
            report = await ok(client, "workflow_report", run_id=run["run_id"])
            assert report["run_id"] == run["run_id"]
            assert report["status"] == "failed"
            replayed = await ok(client, "workflow_replay", run_id=run["run_id"])
            assert replayed["replay_of"] == run["run_id"]
            assert replayed["reproduced"] is True, replayed["divergences"]
            # the step that read the file completed: resuming alone fails again ...
            (root / "config-b").write_text("good")
            again = await ok(client, "workflow_resume", run_id=run["run_id"])
            assert again["status"] == "failed"
            # ... from it, with another input, it reads the fixed file
            fixed = await ok(
                client,
                "workflow_resume",
                run_id=run["run_id"],
                inputs={"suffix": "-b"},
                **{"from": "read"},
            )
            assert fixed["status"] == "succeeded"
            logs = await ok(client, "workflow_logs", run_id=run["run_id"], step="read")
            assert [a["stdout"] for a in logs["attempts"]] == ["bad", "good"]
            second = await ok(client, "workflow_logs", run_id=run["run_id"], step="read", attempt=1)
            assert len(second["attempts"]) == 2  # attempt 1 of each execution
            unknown = await refused(client, "workflow_resume", run_id=run["run_id"], frm="read")
            assert "its arguments are: run_id, answers, force, from, inputs" in unknown

    drive(scenario)


TYPED = """
name: typed
state_schema:
  raw: {count: integer, go: boolean, size: string}
steps:
  - id: how_many
    type: user_input
    prompt: "How many?"
    state_update: {path: raw.count, value: "{{ result }}"}
  - id: proceed
    type: user_input
    prompt: "Proceed (yes/no)?"
    state_update: {path: raw.go, value: "{{ result == 'yes' }}"}
  - id: size
    type: user_input
    prompt: "Size?"
    choices: [1, 2, 3]
    default: 7
    state_update: {path: raw.size, value: "{{ result | string }}"}
"""


@pytest.mark.parametrize(
    ("answers", "status", "raw"),
    [
        # text that reads as the asked type is taken as it; a choice given as its text too
        ({"how_many": "3", "proceed": "yes", "size": "2"}, "succeeded", [3, True, "2"]),
        ({"how_many": 4, "proceed": "no", "size": 3}, "succeeded", [4, False, "3"]),
        # an answer that does not fit the form leaves the run waiting there, never failed
        ({"how_many": "three"}, "waiting", [0, False, ""]),
        ({"how_many": 1, "proceed": "yes", "size": "9"}, "waiting", [1, True, ""]),
    ],
)
@pytest.mark.parametrize("transport", ["stdio", "in-process"])
def test_an_elicited_answer_is_checked_against_its_form(
    root: Path, transport: str, answers: dict[str, Any], status: str, raw: list[Any]
) -> None:
    (root / "typed.yaml").write_text(TYPED)

    async def scenario() -> None:
        seen: list[Any] = []
        elicit = _answering("accept", answers, seen)
        async with connect(transport, root, elicitation_callback=elicit) as client:
            run = await ok(client, "workflow_run", workflow="typed.yaml")
        assert run["status"] == status
        assert [run["state"]["raw"][k] for k in ("count", "go", "size")] == raw
        fields = [schema["properties"]["answer"] for _, schema in seen]
        assert fields[0]["type"] == "integer"
        if len(fields) > 1:  # written through an expression: asked as text
            assert fields[1]["type"] == "string"
        if len(fields) > 2:  # a default outside the choices is not offered
            assert fields[2] == {
                "title": "size",
                "description": "Size?",
                "type": "string",
                "enum": ["1", "2", "3"],
            }

    drive(scenario)
