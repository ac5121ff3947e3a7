"""Text UTF-8 cannot hold (lone surrogates: an undecodable byte on the command line, a
``from_json`` value) never crashes a command: every output is valid UTF-8, with such text
escaped visibly, through the real entry point, human and ``--json``, and over MCP."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FLOW = r"""
name: odd
inputs: {x: {type: string, default: "ok"}}
state_schema: {raw: {v: string, w: string}}
steps:
  - {id: set, type: state_update, path: raw.v, value: '{{ "A\ud800B" }}'}
  - {id: raw, type: state_update, path: raw.w, value: "{{ x }}"}
  - {id: sh, type: shell_command, command: "printf 'I\\377I'; echo {{ x }}"}
  - {id: fail, type: shell_command, command: "exit 3"}
"""
UNDECODABLE = os.fsdecode(b"x=I\xffI")  # what a shell's $'x=I\xffI' gives the command line


def wfkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "wfkit", *args],
        cwd=cwd,
        capture_output=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def failed_run(tmp_path: Path) -> str:
    (tmp_path / "odd.yaml").write_text(FLOW)
    done = wfkit("run", "odd.yaml", "-i", UNDECODABLE, "--trace", "--json", cwd=tmp_path)
    report = json.loads(done.stdout.decode("utf-8"))
    assert (done.returncode, report["status"]) == (1, "failed"), done.stderr
    assert report["state"]["raw"]["v"] == "A\ud800B"  # a JSON escape: read back exactly
    return str(report["run_id"])


def test_every_command_writes_valid_utf8(failed_run: str, tmp_path: Path) -> None:
    commands = [
        (["run", "odd.yaml", "-i", UNDECODABLE], 1),
        (["run", "odd.yaml", "-i", UNDECODABLE, "--steps", "all"], 1),
        (["resume", failed_run, "--json"], 1),
        (["debug", failed_run], 0),
        (["debug", failed_run, "--json"], 0),
        (["trace", failed_run], 0),
        (["trace", failed_run, "--json"], 0),
        (["report", failed_run, "-o", "-"], 0),
        (["report", failed_run, "--json"], 0),
        (["logs", failed_run], 0),
        (["logs", failed_run, "--json"], 0),
        (["why", failed_run, "set", "--json"], 0),
        (["runs", "--json"], 0),
        (["test-transform", '{{ "A\\ud800B" }}', "--json"], 0),
        (["test-transform", '{{ "A\\ud800B" }}'], 0),
        (["explain", "odd.yaml", "-i", UNDECODABLE, "--json"], 0),
        (["explain", "odd.yaml", "-i", UNDECODABLE], 0),
    ]
    for args, code in commands:
        done = wfkit(*args, cwd=tmp_path)
        out, err = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")  # strict: valid
        assert done.returncode == code, (args, err)
        assert "Traceback" not in err, (args, err)
        if "--json" in args:
            json.loads(out)


def test_mcp_answers_with_escaped_text(failed_run: str, tmp_path: Path) -> None:
    from mcp.client import Client

    from wfkit.mcp_server.server import build_server

    async def scenario() -> list[str]:
        store = os.environ["WFKIT_STORE"]  # the isolated store the runs went to
        async with Client(build_server(tmp_path, store=store)) as client:
            texts = []
            for tool, arguments in (
                ("workflow_debug_info", {"run_id": failed_run}),
                ("workflow_trace_transformations", {"run_id": failed_run}),
                ("workflow_run", {"workflow": "odd.yaml"}),
            ):
                result = await client.call_tool(tool, arguments)
                assert not result.is_error, result.content
                texts.append(json.dumps(result.structured_content))
            resource = await client.read_resource(f"wfkit://runs/{failed_run}")
            texts.append(resource.contents[0].text)  # type: ignore[union-attr]
            return texts

    for text in asyncio.run(scenario()):
        text.encode("utf-8")  # valid: the protocol carried it


@pytest.mark.parametrize(
    "step",
    [
        r"""{id: s, type: shell_command, command: "echo $K", env: {K: '{{ "A\ud800B" }}'}}""",
        r"""{id: s, type: shell_command, command: [echo, '{{ "A\ud800B" }}']}""",
        r"""{id: s, type: shell_command, command: 'echo {{ "A\ud800B" }}'}""",
    ],
)
def test_text_a_command_cannot_carry_is_named_not_an_internal_error(
    step: str, tmp_path: Path
) -> None:
    (tmp_path / "cmd.yaml").write_text(f"name: cmd\nsteps:\n  - {step}\n")
    done = wfkit("run", "cmd.yaml", "--json", cwd=tmp_path)
    error = json.loads(done.stdout.decode("utf-8"))["error"]
    assert "is not valid text: 'A\\ud800B' (it holds a lone surrogate)" in error["message"]
    assert "internal error" not in error["message"]


@pytest.mark.parametrize("depth", [300, 700])
def test_deep_values_are_refused_where_they_enter_naming_the_limit(
    depth: int, tmp_path: Path
) -> None:
    value = f"{{{{ ('['*{depth} ~ ']'*{depth})|from_json }}}}"
    (tmp_path / "deep.yaml").write_text(
        "name: deep\nstate_schema: {raw: {v: any}}\nsteps:\n"
        f'  - {{id: d, type: state_update, path: raw.v, value: "{value}"}}\n'
    )
    done = wfkit("run", "deep.yaml", "--json", cwd=tmp_path)
    report = json.loads(done.stdout.decode("utf-8"))  # one document, whatever the depth
    assert (done.returncode, report["status"]) == (1, "failed")
    assert "nested deeper than 100 levels" in report["error"]["message"]  # the result, refused
    debug = wfkit("debug", report["run_id"], "--json", cwd=tmp_path)
    assert json.loads(debug.stdout.decode("utf-8"))["status"] == "failed"


def test_a_deep_input_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "in.yaml").write_text(
        "name: in\ninputs: {x: {type: any}}\nsteps:\n  - {type: user_message, message: hi}\n"
    )
    done = wfkit("run", "in.yaml", "-i", "x=" + "[" * 150 + "]" * 150, "--json", cwd=tmp_path)
    error = json.loads(done.stdout.decode("utf-8"))["error"]
    assert (done.returncode, error["type"]) == (2, "InputError")
    assert error["message"] == "input 'x': the value is nested deeper than 100 levels"
