"""``wfkit resume --plan`` and resuming an edited file: every change class judged against
where the resume continues, the refusal that lists the unsafe ones, and an input that took
its default getting the file's new default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wfkit_cli

FLOW = """\
name: plan
inputs:
  level: {type: integer, default: 1}
  who: {type: string, default: me}
state_schema: {raw: {n: integer}}
steps:
  - id: first
    type: shell_command
    command: "echo first {{ level }}"
  - id: loop
    type: foreach
    items: [1, 2]
    body:
      - {id: inner, type: shell_command, command: "echo inner"}
  - id: gate
    type: shell_command
    command: "test -f open"
  - id: last
    type: shell_command
    command: "echo last {{ who }} {{ steps.first.output.stdout | trim }}"
"""


def failed_run(tmp_path: Path, *args: str) -> str:
    (tmp_path / "flow.yaml").write_text(FLOW)
    done = wfkit_cli(tmp_path, "run", "flow.yaml", "--json", *args)
    report = json.loads(done.stdout)
    assert report["status"] == "failed", done.stderr
    return str(report["run_id"])


def plan_of(tmp_path: Path, run_id: str, *args: str) -> dict[str, Any]:
    done = wfkit_cli(tmp_path, "resume", run_id, "--plan", "--json", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def edit(tmp_path: Path, old: str, new: str) -> None:
    path = tmp_path / "flow.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


CASES = [
    # (edit, kind, step, safe)
    (('"echo first {{ level }}"', '"echo FIRST {{ level }}"'), "changed", "first", False),
    (('"echo last', '"echo LAST'), "changed", "last", True),
    (
        ("  - id: gate\n", "  - {id: extra, type: wait, seconds: 0}\n  - id: gate\n"),
        "added",
        "extra",
        True,
    ),
    (
        ("  - id: first\n", "  - {id: early, type: wait, seconds: 0}\n  - id: first\n"),
        "added",
        "early",
        False,
    ),
    (("  - id: last\n", "  - id: final\n"), "renamed", "last", True),
    (("      - {id: inner,", "      - {id: inner2,"), "renamed", "inner", False),
    (("default: me}", "default: them}"), "input_default", None, True),
    (
        (
            '  - id: first\n    type: shell_command\n    command: "echo first {{ level }}"\n',
            "",
        ),
        "removed",
        "first",
        False,
    ),
    (
        ("state_schema: {raw: {n: integer}}", "state_schema: {raw: {n: string}}"),
        "state_schema",
        None,
        False,
    ),
]


@pytest.mark.parametrize(("change", "kind", "step", "safe"), CASES)
def test_each_change_is_judged_against_the_resume_point(
    tmp_path: Path, change: tuple[str, str], kind: str, step: str | None, safe: bool
) -> None:
    run_id = failed_run(tmp_path)
    edit(tmp_path, *change)
    plan = plan_of(tmp_path, run_id)
    assert plan["continues_at"] == "gate"
    assert plan["changed"] is True
    found = [c for c in plan["changes"] if c["kind"] == kind and c["step_id"] == step]
    assert found, plan["changes"]
    assert found[0]["safe"] is safe
    assert (found[0]["override"] is None) is safe
    resumed = wfkit_cli(tmp_path, "resume", run_id, "--json")
    if safe:  # the gate still fails: refused only for unsafe changes
        assert "would not honour" not in resumed.stdout + resumed.stderr
    else:
        assert resumed.returncode == 2
        assert "would not honour these changes" in resumed.stdout
        assert found[0]["detail"] in resumed.stdout


def test_a_refused_resume_goes_ahead_with_from_or_force(tmp_path: Path) -> None:
    run_id = failed_run(tmp_path)
    edit(tmp_path, "echo first", "echo FIRST")
    (tmp_path / "open").touch()
    assert plan_of(tmp_path, run_id, "--from", "first")["changes"][0]["safe"] is True
    done = wfkit_cli(tmp_path, "resume", run_id, "--from", "first", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["status"] == "succeeded"


def test_a_changed_step_reading_a_completed_one_is_named(tmp_path: Path) -> None:
    run_id = failed_run(tmp_path)
    edit(tmp_path, '"echo last', '"echo LAST')
    plan = plan_of(tmp_path, run_id)
    reads = [c for c in plan["changes"] if c["kind"] == "reads_completed"]
    assert [(c["step_id"], c["safe"]) for c in reads] == [("last", True)]
    assert "steps.first" in reads[0]["detail"]


def test_an_input_that_took_its_default_gets_the_new_one(tmp_path: Path) -> None:
    run_id = failed_run(tmp_path)
    edit(tmp_path, "level: {type: integer, default: 1}", "level: {type: integer, default: 2}")
    edit(tmp_path, "default: me}", "default: them}")
    plan = plan_of(tmp_path, run_id)
    assert plan["new_defaults"] == {"level": 2, "who": "them"}
    by_detail = {c["detail"].split(":")[0]: c for c in plan["changes"]}
    # `first` completed reading the old default of level: taking the new one mixes both
    assert by_detail["input 'level'"]["safe"] is False
    assert "first" in by_detail["input 'level'"]["reason"]
    assert by_detail["input 'who'"]["safe"] is True  # only `last` reads it, not run yet
    refused = wfkit_cli(tmp_path, "resume", run_id, "--json")
    assert refused.returncode == 2
    (tmp_path / "open").touch()
    done = wfkit_cli(tmp_path, "resume", run_id, "-i", "level=1", "--json")
    report = json.loads(done.stdout)
    assert report["status"] == "succeeded", done.stdout + done.stderr
    assert report["state"]["inputs"] == {"level": 1, "who": "them"}


def test_an_input_given_when_the_run_started_is_kept(tmp_path: Path) -> None:
    run_id = failed_run(tmp_path, "-i", "who=you")
    edit(tmp_path, "default: me}", "default: them}")
    assert plan_of(tmp_path, run_id)["new_defaults"] == {}
    human = wfkit_cli(tmp_path, "resume", run_id, "--plan").stdout
    assert "given when the run started: kept" in human
    (tmp_path / "open").touch()
    done = wfkit_cli(tmp_path, "resume", run_id, "--json")
    assert json.loads(done.stdout)["state"]["inputs"]["who"] == "you"


def test_an_unchanged_file_has_an_empty_plan(tmp_path: Path) -> None:
    run_id = failed_run(tmp_path)
    plan = plan_of(tmp_path, run_id)
    assert (plan["changed"], plan["changes"], plan["new_defaults"]) == (False, [], {})
    assert "a plain resume goes ahead" in wfkit_cli(tmp_path, "resume", run_id, "--plan").stdout


def test_a_step_moved_from_before_the_resume_point_is_unsafe(tmp_path: Path) -> None:
    run_id = failed_run(tmp_path)
    text = (tmp_path / "flow.yaml").read_text()
    first = '  - id: first\n    type: shell_command\n    command: "echo first {{ level }}"\n'
    (tmp_path / "flow.yaml").write_text(text.replace(first, "") + first)
    plan = plan_of(tmp_path, run_id)
    moved = [c for c in plan["changes"] if c["kind"] == "moved"]
    assert moved, plan["changes"]
    by_step = {c["step_id"]: c for c in moved}
    assert by_step["first"]["safe"] is False
    assert by_step["first"]["override"] == "--force"


def test_changes_to_a_completed_fan_task_or_branch_are_unsafe(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(
        "name: fans\nsteps:\n"
        "  - {id: fan, type: parallel_foreach, items: [1, 2], sub_agent_task: t}\n"
        "  - id: par\n    type: parallel\n    branches:\n"
        "      a: [{id: s1, type: state_update, path: raw.a, value: one}]\n"
        "      b: [{id: s2, type: shell_command, command: 'test -f open'}]\n"
        "sub_agent_tasks:\n  t:\n    inputs: {item: {type: integer}}\n    steps:\n"
        "      - {id: work, type: shell_command, command: 'echo {{ item * 10 }}'}\n"
    )
    failed = json.loads(wfkit_cli(tmp_path, "run", "flow.yaml", "--json").stdout)
    assert failed["status"] == "failed"
    text = (tmp_path / "flow.yaml").read_text()
    (tmp_path / "flow.yaml").write_text(
        text.replace("item * 10", "item * 100").replace("value: one", "value: uno")
    )
    plan = plan_of(tmp_path, failed["run_id"])
    by_step = {c["step_id"]: c for c in plan["changes"] if c["kind"] == "changed"}
    assert by_step["t/work"]["safe"] is False
    assert by_step["t/work"]["override"] == "--from fan"
    assert by_step["s1"]["safe"] is False  # branch a completed with the old definition
    (tmp_path / "flow.yaml").write_text(text.replace("test -f open", "true"))
    again = plan_of(tmp_path, failed["run_id"])
    [changed] = [c for c in again["changes"] if c["kind"] == "changed"]
    assert (changed["step_id"], changed["safe"]) == ("s2", True)  # not completed: reruns
