"""``workflow`` steps through the real CLI: a child run of its own in the same store, linked
both ways; its ``outputs:`` as the step's result; a failing child under the caller's error
policy (each retry a new child run); the checks across files at load (a missing file, a
cycle, an unknown input, the depth bound) and under ``wfkit mcp --root``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.mcp_server.test_guarantees import ok, refused
from tests.mcp_server.transports import connect

BUILD = """\
name: build
inputs:
  target: {type: string}
  fail: {type: boolean, default: false}
state_schema: {raw: {artifact: string}}
steps:
  - id: make
    type: shell_command
    command: "echo built-{{ target }}; echo x >> attempts; {{ 'exit 3' if fail else 'true' }}"
    state_update: {path: raw.artifact, value: "{{ result.stdout | trim }}"}
outputs:
  artifact: "{{ artifact }}"
  size: "{{ artifact | length }}"
"""

RELEASE = """\
name: release
inputs:
  fail: {type: boolean, default: false}
state_schema: {raw: {artifact: string, size: integer}}
steps:
  - id: build
    type: workflow
    file: shared/build.yaml
    inputs: {target: linux, fail: "{{ fail }}"}
    POLICY
    state_updates:
      - {path: raw.artifact, value: "{{ result.outputs.artifact }}"}
      - {path: raw.size, value: "{{ result.outputs.size }}"}
"""


def wfkit(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wfkit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "WFKIT_STORE": str(cwd / "store")},
        timeout=300,
        check=False,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(done.stdout)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "build.yaml").write_text(BUILD)
    (tmp_path / "release.yaml").write_text(RELEASE.replace("POLICY", ""))
    return tmp_path


def test_a_child_run_is_recorded_and_linked_both_ways(project: Path) -> None:
    done = wfkit(project, "run", "release.yaml", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    parent = as_json(done)
    assert parent["state"]["raw"] == {"artifact": "built-linux", "size": 11}
    runs = as_json(wfkit(project, "runs", "--json"))
    by_workflow = {r["workflow"]: r for r in runs}
    assert set(by_workflow) == {"release", "build"}
    child = by_workflow["build"]
    assert child["parent_run_id"] == parent["run_id"]
    assert by_workflow["release"]["parent_run_id"] is None
    debug = as_json(wfkit(project, "debug", parent["run_id"], "--json"))
    assert debug["child_run_ids"] == [child["run_id"]]
    child_debug = as_json(wfkit(project, "debug", child["run_id"], "--json"))
    assert child_debug["parent_run_id"] == parent["run_id"]
    assert child_debug["state"]["raw"]["values"]["artifact"] == "built-linux"
    alone = as_json(wfkit(project, "run", "shared/build.yaml", "-i", "target=arm", "--json"))
    assert alone["outputs"] == {"artifact": "built-arm", "size": 9}  # a run's own result


def test_a_failing_child_fails_the_step_under_the_callers_policy(project: Path) -> None:
    policy = "on_error: retry\n    retry_count: 2\n    retry_delay: 0"
    (project / "release.yaml").write_text(RELEASE.replace("POLICY", policy))
    done = wfkit(project, "run", "release.yaml", "-i", "fail=true", "--json")
    assert done.returncode == 1, done.stderr
    parent = as_json(done)
    assert parent["status"] == "failed"
    error = parent["error"]
    assert error["type"] == "WorkflowStepError"
    assert error["cause"]["type"] == "ShellCommandError"  # the child's own error
    assert "shared/build.yaml" in error["message"]
    children = [r for r in as_json(wfkit(project, "runs", "--json")) if r["workflow"] == "build"]
    assert len(children) == 3  # every attempt a new child run, each linked
    assert {c["parent_run_id"] for c in children} == {parent["run_id"]}
    assert {c["status"] for c in children} == {"failed"}
    assert error["child_run_id"] in {c["run_id"] for c in children}
    assert (project / "attempts").read_text().count("x") == 3


def test_a_fallback_covers_a_failed_child(project: Path) -> None:
    policy = "on_error: continue\n    fallback_value: {outputs: {artifact: none, size: 0}}"
    (project / "release.yaml").write_text(RELEASE.replace("POLICY", policy))
    done = wfkit(project, "run", "release.yaml", "-i", "fail=true", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert as_json(done)["state"]["raw"] == {"artifact": "none", "size": 0}


def test_a_wrongly_typed_child_input_fails_the_step_naming_the_child(project: Path) -> None:
    text = RELEASE.replace("POLICY", "").replace('fail: "{{ fail }}"', "fail: [1]")
    (project / "release.yaml").write_text(text)
    done = wfkit(project, "run", "release.yaml", "--json")
    parent = as_json(done)
    assert parent["status"] == "failed"
    assert parent["error"]["type"] == "WorkflowStepError"
    assert parent["error"]["cause"]["type"] == "InputError"
    assert "shared/build.yaml" in parent["error"]["message"]
    assert "fail" in parent["error"]["cause"]["message"]


@pytest.mark.parametrize(
    ("files", "where", "says"),
    [
        (  # a cycle across three files, with the chain
            {
                "a.yaml": "name: a\nsteps:\n  - {id: b, type: workflow, file: b.yaml}\n",
                "b.yaml": "name: b\nsteps:\n  - {id: c, type: workflow, file: c.yaml}\n",
                "c.yaml": "name: c\nsteps:\n  - {id: a, type: workflow, file: a.yaml}\n",
            },
            "c.yaml:3",
            "calls back into itself: a.yaml -> b.yaml -> c.yaml -> a.yaml",
        ),
        (
            {"a.yaml": "name: a\nsteps:\n  - {id: b, type: workflow, file: nope.yaml}\n"},
            "a.yaml:3",
            "workflow 'nope.yaml': cannot read file: no such file (at steps[0].file)",
        ),
        (
            {
                "a.yaml": "name: a\nsteps:\n"
                "  - {id: b, type: workflow, file: shared/build.yaml, inputs: {targt: x}}\n"
            },
            "a.yaml:3",
            "shared/build.yaml declares no input 'targt'; did you mean 'target'?",
        ),
        (
            {
                "a.yaml": "name: a\nconfig: {max_workflow_depth: 2}\nsteps:\n"
                "  - {id: b, type: workflow, file: b.yaml}\n",
                "b.yaml": "name: b\nsteps:\n  - {id: c, type: workflow, file: c.yaml}\n",
                "c.yaml": "name: c\nsteps:\n  - {type: user_message, message: hi}\n",
            },
            "b.yaml:3",
            "goes 3 workflows deep, beyond config.max_workflow_depth (2)",
        ),
        (  # the child's own problem names the child's line
            {
                "a.yaml": "name: a\nsteps:\n  - {id: b, type: workflow, file: b.yaml}\n",
                "b.yaml": "name: b\nsteps:\n  - {type: shel_command, command: x}\n",
            },
            "b.yaml:3",
            "unknown step type 'shel_command'",
        ),
    ],
)
def test_problems_across_files_are_found_at_load(
    project: Path, files: dict[str, str], where: str, says: str
) -> None:
    for name, text in files.items():
        (project / name).write_text(text)
    for command in ("run", "explain"):
        done = wfkit(project, command, "a.yaml")
        assert done.returncode == 2, done.stdout + done.stderr
        text = " ".join(done.stderr.split())
        assert where in text
        assert says in text
        assert "Traceback" not in done.stderr


def test_children_of_parallel_items_are_each_linked(project: Path) -> None:
    (project / "fan.yaml").write_text(
        "name: fan\n"
        "sub_agent_tasks:\n"
        "  one:\n"
        "    inputs: {item: {type: integer}}\n"
        "    steps:\n"
        "      - {id: b, type: workflow, file: shared/build.yaml,"
        ' inputs: {target: "t{{ item }}"}}\n'
        "steps:\n"
        '  - {id: fan, type: parallel_foreach, items: "{{ range(20) | list }}",'
        " sub_agent_task: one, max_parallel: 4}\n"
    )
    done = wfkit(project, "run", "fan.yaml", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    parent = as_json(done)["run_id"]
    runs = as_json(wfkit(project, "runs", "--json", "--limit", "100"))
    children = [r for r in runs if r["workflow"] == "build"]
    assert len(children) == 20
    assert {c["parent_run_id"] for c in children} == {parent}
    assert {c["status"] for c in children} == {"succeeded"}


def test_under_the_mcp_root_a_child_outside_it_is_refused(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "build.yaml"
    outside.write_text(BUILD)
    (project / "escape.yaml").write_text(
        "name: escape\nsteps:\n"
        f"  - {{id: b, type: workflow, file: {outside}, inputs: {{target: x}}}}\n"
    )

    async def scenario() -> None:
        async with connect("stdio", project) as client:
            run = await ok(client, "workflow_run", workflow="release.yaml")
            assert run["status"] == "succeeded"
            error = await refused(client, "workflow_run", workflow="escape.yaml")
            assert "lies outside the server's root" in error

    asyncio.run(asyncio.wait_for(scenario(), 240))
