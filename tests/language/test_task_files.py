"""Task files: a ``sub_agent_tasks`` entry given as a path runs as the same task inline; its
problems name the task file's line and field (or the calling file's entry when it cannot be
read); under ``wfkit mcp --root`` a task file outside the root is refused. Every run is the
real CLI or the real server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.conftest import wfkit_cli
from tests.mcp_server.test_guarantees import ok, refused
from tests.mcp_server.transports import connect
from wfkit.language.loader import load_text

TASK = """\
inputs:
  item: {type: integer}
state_schema:
  raw: {doubled: integer}
steps:
  - {id: double, type: state_update, path: raw.doubled, value: "{{ item * 2 }}"}
  - {id: say, type: shell_command, command: "echo item-{{ item }}"}
"""

FLOW = """\
name: files
state_schema:
  raw: {doubled: array}
sub_agent_tasks:
  work: ENTRY
steps:
  - id: fan
    type: parallel_foreach
    items: "{{ [1, 2, 3] }}"
    sub_agent_task: work
    state_update: {path: raw.doubled, value: "{{ result | map(attribute='state') | list }}"}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "work.yaml").write_text(TASK)
    (tmp_path / "files.yaml").write_text(FLOW.replace("ENTRY", "tasks/work.yaml"))
    inline = "\n" + "".join(f"    {line}\n" for line in TASK.splitlines())
    (tmp_path / "inline.yaml").write_text(FLOW.replace(" ENTRY", inline))
    return tmp_path


def test_a_task_file_runs_as_the_same_task_inline(project: Path) -> None:
    results = {}
    for name in ("files", "inline"):
        done = wfkit_cli(project, "run", f"{name}.yaml", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        results[name] = (report["status"], report["state"]["raw"], len(report["steps"]))
    assert results["files"] == results["inline"]
    doubled = [item["raw"]["doubled"] for item in results["files"][1]["doubled"]]
    assert doubled == [2, 4, 6]
    plan = wfkit_cli(project, "explain", "files.yaml")
    assert plan.returncode == 0, plan.stderr
    assert "double" in plan.stdout
    assert "say" in plan.stdout


@pytest.mark.parametrize(
    ("entry", "task", "where", "says"),
    [
        ("tasks/gone.yaml", None, "files.yaml:5:3", "cannot read task file: no such file"),
        ("tasks", None, "files.yaml:5:3", "not a regular file"),
        (
            "tasks/work.yaml",
            "steps:\n  - {id: x, type: shell_comand, command: 'true'}\n",
            "tasks/work.yaml:2:13",
            "unknown step type 'shell_comand'; did you mean 'shell_command'?",
        ),
        (
            "tasks/work.yaml",
            "steps:\n  - {id: x, type: shell_command, comand: 'true'}\n",
            "tasks/work.yaml:2",
            "comand",
        ),
        ("tasks/work.yaml", "- just a list\n", "tasks/work.yaml:1", "must be a YAML mapping"),
        ("tasks/work.yaml", "steps: [\n", "tasks/work.yaml", ""),
    ],
)
def test_a_bad_task_file_is_named_with_its_line(
    project: Path, entry: str, task: str | None, where: str, says: str
) -> None:
    if task is not None:
        (project / "tasks" / "work.yaml").write_text(task)
    (project / "files.yaml").write_text(FLOW.replace("ENTRY", entry))
    done = wfkit_cli(project, "run", "files.yaml")
    assert done.returncode == 2, done.stdout + done.stderr
    text = " ".join(done.stderr.split())
    assert where in text
    assert says in text
    assert "Traceback" not in done.stderr
    assert "Input should be" not in done.stderr


def test_a_task_file_loads_from_the_texts_given_with_the_workflow() -> None:
    text = FLOW.replace("ENTRY", "tasks/work.yaml")
    loaded = load_text(text, "/nowhere/files.yaml", included={"tasks/work.yaml": TASK})
    assert loaded.included == {"tasks/work.yaml": TASK}
    assert [s.step_id for s in loaded.tasks["work"].steps] == ["double", "say"]
    assert loaded.fingerprint != loaded.digest  # the task file's text counts
    plain = load_text("name: plain\nsteps: [{type: user_message, message: hi}]\n", "p.yaml")
    assert plain.fingerprint == plain.digest


def test_under_the_mcp_root_a_task_file_outside_it_is_refused(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "work.yaml"
    outside.write_text(TASK)
    (project / "tasks" / "link.yaml").symlink_to(outside)
    (project / "escape.yaml").write_text(FLOW.replace("ENTRY", "tasks/link.yaml"))

    async def scenario() -> None:
        async with connect("stdio", project) as client:
            run = await ok(client, "workflow_run", workflow="files.yaml")
            assert run["status"] == "succeeded"
            error = await refused(client, "workflow_run", workflow="escape.yaml")
            assert "lies outside the server's root" in error
            plan = await refused(client, "workflow_explain_plan", workflow="escape.yaml")
            assert "lies outside the server's root" in plan

    asyncio.run(asyncio.wait_for(scenario(), 240))
