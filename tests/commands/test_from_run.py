"""``wfkit test --from-run``: a recorded run written as a test case that passes at once
(shell by step and attempt, tools by name, answers, children), and that fails, naming the
expectation, once the workflow changes the outcome."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from tests.conftest import EXAMPLES, wfkit_cli

FLOW = """\
name: recorded
inputs: {n: {type: integer, default: 2}}
state_schema: {raw: {out: string, asked: string}}
steps:
  - id: hello
    type: shell_command
    command: "printf 'line one\\nline two\\n'; echo x >> tries.txt"
    state_update: {path: raw.out, value: "{{ result.stdout }}"}
  - id: ask
    type: user_input
    prompt: "which?"
    state_update: {path: raw.asked, value: "{{ result }}"}
  - id: flaky
    type: shell_command
    command: "test -f open"
    on_error: retry
    retry_count: 1
    retry_delay: 0
  - id: fan
    type: parallel_foreach
    items: [1, 2]
    sub_agent_task: w
sub_agent_tasks:
  w:
    inputs: {item: {type: integer}}
    steps:
      - {id: sq, type: shell_command, command: "echo sq-{{ item * item }}"}
"""


def record(tmp_path: Path, *args: str) -> str:
    (tmp_path / "flow.yaml").write_text(FLOW)
    (tmp_path / "answers.yaml").write_text("ask: blue\n")
    done = wfkit_cli(tmp_path, "run", "flow.yaml", "--answers", "answers.yaml", "--json", *args)
    return str(json.loads(done.stdout)["run_id"])


def write_case(tmp_path: Path, run_id: str) -> Path:
    out = tmp_path / "tests" / "recorded.wftest.yaml"
    out.parent.mkdir(exist_ok=True)
    done = wfkit_cli(tmp_path, "test", "--from-run", run_id, "-o", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_a_failed_and_a_succeeded_run_become_green_cases(tmp_path: Path) -> None:
    failed = record(tmp_path)
    (tmp_path / "open").touch()
    succeeded = record(tmp_path)
    (tmp_path / "open").unlink()  # the cases never run the commands: no file needed
    for run_id, status in ((failed, "failed"), (succeeded, "succeeded")):
        path = write_case(tmp_path, run_id)
        suite = yaml.safe_load(path.read_text())
        assert suite["workflow"] == "../flow.yaml"
        [case] = suite["cases"]
        assert case["expect"]["status"] == status
        assert case["mocks"]["answers"] == {"ask": "blue"}
        shells = {(m["step"], m.get("item")) for m in case["mocks"]["shell"]}
        assert ("hello", None) in shells
        assert "line one\n  " in path.read_text() or "|" in path.read_text()  # a block
        done = wfkit_cli(tmp_path, "test", str(path), "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["passed"] == 1
    assert ("fan/sq", 1) in shells  # the succeeded run: each item's own reply


def test_an_edit_that_changes_the_outcome_fails_the_case(tmp_path: Path) -> None:
    path = write_case(tmp_path, record(tmp_path))
    flow = tmp_path / "flow.yaml"
    flow.write_text(flow.read_text().replace("retry_count: 1", "retry_count: 0"))
    done = wfkit_cli(tmp_path, "test", str(path), "--json")
    assert done.returncode == 1
    [case] = json.loads(done.stdout)["cases"]
    paths = [f["path"] for f in case["failures"]]
    assert "steps.flaky.attempts" in paths


def test_tool_calls_are_answered_by_name(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "servers", tmp_path / "servers")
    shutil.copy(EXAMPLES / "notes.yaml", tmp_path / "notes.yaml")
    done = wfkit_cli(tmp_path, "run", "notes.yaml", "--json")
    report = json.loads(done.stdout)
    assert report["status"] == "succeeded", done.stderr
    path = write_case(tmp_path, report["run_id"])
    mocks = yaml.safe_load(path.read_text())["cases"][0]["mocks"]
    assert set(mocks["tools"]) == {"add_note", "list_notes", "refuse"}
    assert len(mocks["tools"]["add_note"]["sequence"]) == 2
    assert mocks["tools"]["refuse"]["raises"]["type"] == "ToolError"
    shutil.rmtree(tmp_path / "servers")  # the case never starts the server
    tested = wfkit_cli(tmp_path, "test", str(path), "--json")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_child_run_is_answered_from_the_callers_record(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(
        "name: child\nstate_schema: {raw: {v: string}}\nsteps:\n"
        "  - {id: make, type: shell_command, command: 'echo made',"
        " state_update: {path: raw.v, value: '{{ result.stdout }}'}}\n"
        "outputs: {v: '{{ v }}'}\n"
    )
    (tmp_path / "caller.yaml").write_text(
        "name: caller\nstate_schema: {raw: {got: string}}\nsteps:\n"
        "  - {id: call, type: workflow, file: child.yaml,"
        " state_update: {path: raw.got, value: '{{ result.outputs.v }}'}}\n"
    )
    report = json.loads(wfkit_cli(tmp_path, "run", "caller.yaml", "--json").stdout)
    path = write_case(tmp_path, report["run_id"])
    [case] = yaml.safe_load(path.read_text())["cases"]
    assert case["mocks"]["workflows"] == {"call": {"returns": {"v": "made"}}}
    assert case["expect"]["state"] == {"raw.got": "made"}
    tested = wfkit_cli(tmp_path, "test", str(path), "--json")
    assert tested.returncode == 0, tested.stdout + tested.stderr
