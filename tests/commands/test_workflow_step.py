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

from tests.conftest import measured, wfkit_cli
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


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(done.stdout)


def runs_of(project: Path, workflow: str) -> list[dict[str, Any]]:
    listed = as_json(wfkit_cli(project, "runs", "--json", "--limit", "100"))
    return [r for r in listed if r["workflow"] == workflow]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "build.yaml").write_text(BUILD)
    (tmp_path / "release.yaml").write_text(RELEASE.replace("POLICY", ""))
    return tmp_path


def test_a_child_run_is_recorded_and_linked_both_ways(project: Path) -> None:
    done = wfkit_cli(project, "run", "release.yaml", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    parent = as_json(done)
    assert parent["state"]["raw"] == {"artifact": "built-linux", "size": 11}
    runs = as_json(wfkit_cli(project, "runs", "--json"))
    by_workflow = {r["workflow"]: r for r in runs}
    assert set(by_workflow) == {"release", "build"}
    child = by_workflow["build"]
    assert child["parent_run_id"] == parent["run_id"]
    assert by_workflow["release"]["parent_run_id"] is None
    debug = as_json(wfkit_cli(project, "debug", parent["run_id"], "--json"))
    assert debug["child_run_ids"] == [child["run_id"]]
    child_debug = as_json(wfkit_cli(project, "debug", child["run_id"], "--json"))
    assert child_debug["parent_run_id"] == parent["run_id"]
    assert child_debug["state"]["raw"]["values"]["artifact"] == "built-linux"
    table = wfkit_cli(project, "runs", COLUMNS="100").stdout
    assert f"↳ {parent['run_id']}" in table  # a child's row names its caller, whole
    assert "build (child run)" in table
    human = wfkit_cli(project, "debug", parent["run_id"]).stdout
    assert f"child runs: {child['run_id']}" in human
    alone = as_json(wfkit_cli(project, "run", "shared/build.yaml", "-i", "target=arm", "--json"))
    assert alone["outputs"] == {"artifact": "built-arm", "size": 9}  # a run's own result


def test_a_failing_child_fails_the_step_under_the_callers_policy(project: Path) -> None:
    policy = "on_error: retry\n    retry_count: 2\n    retry_delay: 0"
    (project / "release.yaml").write_text(RELEASE.replace("POLICY", policy))
    done = wfkit_cli(project, "run", "release.yaml", "-i", "fail=true", "--json")
    assert done.returncode == 1, done.stderr
    parent = as_json(done)
    assert parent["status"] == "failed"
    error = parent["error"]
    assert error["type"] == "WorkflowStepError"
    assert error["cause"]["type"] == "ShellCommandError"  # the child's own error
    assert "shared/build.yaml" in error["message"]
    children = [
        r for r in as_json(wfkit_cli(project, "runs", "--json")) if r["workflow"] == "build"
    ]
    assert len(children) == 3  # every attempt a new child run, each linked
    assert {c["parent_run_id"] for c in children} == {parent["run_id"]}
    assert {c["status"] for c in children} == {"failed"}
    assert error["child_run_id"] in {c["run_id"] for c in children}
    assert (project / "attempts").read_text().count("x") == 3


def test_a_fallback_covers_a_failed_child(project: Path) -> None:
    policy = "on_error: continue\n    fallback_value: {outputs: {artifact: none, size: 0}}"
    (project / "release.yaml").write_text(RELEASE.replace("POLICY", policy))
    done = wfkit_cli(project, "run", "release.yaml", "-i", "fail=true", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert as_json(done)["state"]["raw"] == {"artifact": "none", "size": 0}


def test_a_wrongly_typed_child_input_fails_the_step_naming_the_child(project: Path) -> None:
    text = RELEASE.replace("POLICY", "").replace('fail: "{{ fail }}"', "fail: [1]")
    (project / "release.yaml").write_text(text)
    done = wfkit_cli(project, "run", "release.yaml", "--json")
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
        done = wfkit_cli(project, command, "a.yaml")
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
    done = wfkit_cli(project, "run", "fan.yaml", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    parent = as_json(done)["run_id"]
    runs = as_json(wfkit_cli(project, "runs", "--json", "--limit", "100"))
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


SLOW = """\
name: slow
steps:
  - {id: nap, type: shell_command, command: "echo $$ > child.pid; touch STARTED; exec sleep 300"}
finally:
  - {id: child_end, type: shell_command, command: "echo '{{ workflow.status }}' > child.end"}
"""


def test_cancelling_the_caller_cancels_the_child_and_both_finally_run(project: Path) -> None:
    import os
    import signal
    import time

    (project / "shared" / "slow.yaml").write_text(SLOW)
    (project / "caller.yaml").write_text(
        "name: caller\nsteps:\n"
        "  - {id: call, type: workflow, file: shared/slow.yaml, on_error: continue}\n"
        "  - {id: after, type: shell_command, command: 'touch AFTER'}\n"
        "finally:\n"
        "  - {id: end, type: shell_command, command: \"echo '{{ workflow.status }}' > end\"}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfkit", "run", "caller.yaml", "--json"],
        cwd=project,
        env={"PATH": "/usr/bin:/bin", "WFKIT_STORE": str(project / "store"), **measured()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120  # a hang becomes a failure, never a measure of speed
    while not (project / "STARTED").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert json.loads(out)["status"] == "cancelled", err
    assert not (project / "AFTER").exists()  # on_error: continue does not hide a cancel
    assert (project / "end").read_text().strip() == "cancelled"
    assert (project / "child.end").read_text().strip() == "cancelled"
    runs = {r["workflow"]: r["status"] for r in as_json(wfkit_cli(project, "runs", "--json"))}
    assert runs == {"caller": "cancelled", "slow": "cancelled"}
    with pytest.raises(ProcessLookupError):
        os.kill(int((project / "child.pid").read_text()), 0)


def test_a_step_timeout_ends_the_child_as_a_timeout(project: Path) -> None:
    (project / "shared" / "slow.yaml").write_text(SLOW)
    (project / "caller.yaml").write_text(
        "name: caller\nsteps:\n  - {id: call, type: workflow, file: shared/slow.yaml, timeout: 1}\n"
    )
    parent = as_json(wfkit_cli(project, "run", "caller.yaml", "--json"))
    assert parent["status"] == "failed"
    assert parent["error"]["type"] == "StepTimeoutError"
    assert (project / "child.end").read_text().strip() == "cancelled"


def test_the_callers_secrets_are_masked_in_the_childs_records(project: Path) -> None:
    (project / "caller.yaml").write_text(
        "name: caller\ninputs: {token: {type: string, secret: true}}\nsteps:\n"
        "  - {id: call, type: workflow, file: shared/build.yaml,"
        ' inputs: {target: "{{ token }}"}}\n'
    )
    done = wfkit_cli(project, "run", "caller.yaml", "-i", "token=HUSH-4411", "--json")
    assert as_json(done)["status"] == "succeeded", done.stderr
    assert "HUSH-4411" not in done.stdout
    stored = b"".join(p.read_bytes() for p in (project / "store").glob("runs.db*"))
    assert b"HUSH-4411" not in stored
    child = next(
        r for r in as_json(wfkit_cli(project, "runs", "--json")) if r["workflow"] == "build"
    )
    logs = wfkit_cli(project, "logs", child["run_id"])
    assert "built-***" in logs.stdout
    assert "HUSH-4411" not in logs.stdout


def test_retention_never_drops_a_caller_for_its_child(project: Path) -> None:
    done = wfkit_cli(project, "run", "release.yaml", "--json", WFKIT_RETENTION="keep=1")
    parent = as_json(done)["run_id"]
    assert as_json(wfkit_cli(project, "debug", parent, "--json"))["status"] == "succeeded"


def test_paths_in_a_task_file_are_relative_to_it(project: Path) -> None:
    (project / "tasks").mkdir()
    (project / "tasks" / "one.yaml").write_text(
        "steps:\n"
        "  - {id: b, type: workflow, file: ../shared/build.yaml, inputs: {target: t}}\n"
        "finally:\n"
        "  - {id: f, type: workflow, file: ../shared/build.yaml, inputs: {target: f}}\n"
    )
    (project / "fan.yaml").write_text(
        "name: fan\nsub_agent_tasks: {one: tasks/one.yaml}\nsteps:\n"
        '  - {id: fan, type: parallel_foreach, items: "{{ [1] }}", sub_agent_task: one}\n'
    )
    done = wfkit_cli(project, "run", "fan.yaml", "--json")
    assert as_json(done)["status"] == "succeeded", done.stdout + done.stderr
    children = [
        r for r in as_json(wfkit_cli(project, "runs", "--json")) if r["workflow"] == "build"
    ]
    assert len(children) == 2
    (project / "tasks" / "one.yaml").write_text(
        "steps: []\nfinally:\n  - {id: f, type: workflow, file: gone.yaml}\n"
    )
    missing = wfkit_cli(project, "explain", "fan.yaml")
    assert missing.returncode == 2
    assert "tasks/one.yaml:3" in " ".join(missing.stderr.split())


def test_answers_reach_the_child(project: Path) -> None:
    (project / "shared" / "ask.yaml").write_text(
        "name: ask\nstate_schema: {raw: {said: string}}\nsteps:\n"
        "  - {id: q, type: user_input, prompt: 'Go?',"
        " state_update: {path: raw.said, value: '{{ result }}'}}\n"
        "outputs: {said: '{{ said }}'}\n"
    )
    (project / "caller.yaml").write_text(
        "name: caller\nstate_schema: {raw: {said: string}}\nsteps:\n"
        "  - {id: call, type: workflow, file: shared/ask.yaml,"
        " state_update: {path: raw.said, value: '{{ result.outputs.said }}'}}\n"
    )
    (project / "answers.yaml").write_text("q: yes please\n")
    done = wfkit_cli(project, "run", "caller.yaml", "--answers", "answers.yaml", "--json")
    report = as_json(done)
    assert report["status"] == "succeeded", done.stdout
    assert report["state"]["raw"] == {"said": "yes please"}


STAGES = """\
name: stages
inputs: {tag: {type: string}}
steps:
  - {id: one, type: shell_command, command: "echo one-{{ tag }} >> log"}
  - {id: two, type: shell_command, command: "echo started >> marks; WAIT test -f fixed"}
  - {id: three, type: shell_command, command: "echo three >> log"}
outputs: {tag: "{{ tag }}"}
"""

CALLER = """\
name: caller
steps:
  - {id: first, type: shell_command, command: "echo first >> log"}
  - {id: call, type: workflow, file: shared/stages.yaml, inputs: {tag: x}}
  - id: after
    type: shell_command
    command: "echo after-{{ steps.call.output.outputs.tag }} >> log"
"""


def _stages(project: Path, wait: str = "") -> None:
    (project / "shared" / "stages.yaml").write_text(STAGES.replace("WAIT ", wait))
    (project / "caller.yaml").write_text(CALLER)


def test_resuming_a_caller_resumes_its_failed_child_where_it_stopped(project: Path) -> None:
    _stages(project)
    failed = as_json(wfkit_cli(project, "run", "caller.yaml", "--json"))
    assert failed["status"] == "failed"
    [child] = runs_of(project, "stages")
    assert child["status"] == "failed"
    (project / "fixed").touch()  # the fix the child's failed step needed
    done = wfkit_cli(project, "resume", failed["run_id"], "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert as_json(done)["status"] == "succeeded"
    # the child's completed step did not run again, nor did the caller's
    assert (project / "log").read_text().split() == ["first", "one-x", "three", "after-x"]
    [resumed] = runs_of(project, "stages")  # the same child run, now succeeded
    assert resumed["run_id"] == child["run_id"]
    assert resumed["status"] == "succeeded"
    debug = as_json(wfkit_cli(project, "debug", failed["run_id"], "--json"))
    assert debug["child_run_ids"] == [child["run_id"]]


def test_after_kill_9_mid_child_both_runs_resume(project: Path) -> None:
    import os
    import signal
    import time

    # the child's second step waits (a minute at most) for a file the test makes later
    _stages(project, "for i in $(seq 600); do test -f go && break; sleep 0.1; done; ")
    (project / "fixed").touch()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfkit", "run", "caller.yaml", "--json"],
        cwd=project,
        env={"PATH": "/usr/bin:/bin", "WFKIT_STORE": str(project / "store"), **measured()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120  # a hang becomes a failure, never a measure of speed
    while not (project / "marks").exists():
        assert proc.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    [parent] = runs_of(project, "caller")
    [child] = runs_of(project, "stages")
    assert {parent["status"], child["status"]} == {"interrupted"}
    (project / "go").touch()
    done = wfkit_cli(project, "resume", parent["run_id"], "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (project / "log").read_text().split() == ["first", "one-x", "three", "after-x"]
    # the child resumed through its caller: one child run, both succeeded
    assert [c["status"] for c in runs_of(project, "stages")] == ["succeeded"]
    assert [c["status"] for c in runs_of(project, "caller")] == ["succeeded"]


def test_explain_nests_the_childs_plan_one_level_unless_all(project: Path) -> None:
    (project / "shared" / "outer.yaml").write_text(
        "name: outer\nsteps:\n"
        "  - {id: inner, type: workflow, file: build.yaml, inputs: {target: x}}\n"
    )
    (project / "top.yaml").write_text(
        "name: top\nsteps:\n  - {id: call, type: workflow, file: shared/outer.yaml}\n"
    )
    shallow = as_json(wfkit_cli(project, "explain", "top.yaml", "--json"))
    assert [(s["id"], s["depth"], s["file"]) for s in shallow["steps"]] == [
        ("call", 0, None),
        ("inner", 1, str(Path("shared/outer.yaml"))),
    ]
    deep = as_json(wfkit_cli(project, "explain", "top.yaml", "--json", "--steps", "all"))
    assert [(s["id"], s["depth"]) for s in deep["steps"]] == [
        ("call", 0),
        ("inner", 1),
        ("make", 2),
    ]
    assert deep["steps"][2]["file"].endswith("build.yaml")
    tree = wfkit_cli(project, "explain", "top.yaml", "--steps", "all").stdout
    assert "make shell_command" in tree
    assert "build.yaml" in tree


def test_a_resume_never_continues_a_child_another_step_started(project: Path) -> None:
    """Two steps call the same file with the same inputs: the first one's child failed (its
    failure covered by on_error), the run failed later; the resume's call of the second step
    starts a child of its own instead of continuing the first step's."""
    _stages(project)
    (project / "caller.yaml").write_text(
        "name: caller\nsteps:\n"
        "  - {id: optional, type: workflow, file: shared/stages.yaml, inputs: {tag: x},"
        " on_error: continue}\n"
        "  - {id: gate, type: shell_command, command: 'test -f open'}\n"
        "  - {id: again, type: workflow, file: shared/stages.yaml, inputs: {tag: x}}\n"
    )
    failed = as_json(wfkit_cli(project, "run", "caller.yaml", "--json"))
    assert failed["status"] == "failed"
    (project / "open").touch()
    (project / "fixed").touch()
    done = wfkit_cli(project, "resume", failed["run_id"], "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (project / "log").read_text().split() == ["one-x", "one-x", "three"]
    statuses = sorted(c["status"] for c in runs_of(project, "stages"))
    assert statuses == ["failed", "succeeded"]
