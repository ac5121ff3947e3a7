"""Checkpoints and resume: completed steps never run again, state is as it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wfkit.commands import list_runs, resume_workflow, run_workflow
from wfkit.errors import ResumeError, RunNotFoundError

LOOP = """
name: resumable
inputs:
  log: {type: string}
  gate: {type: string}
state_schema:
  raw: {total: integer, seen: array, scratch: object}
default_state:
  raw: {scratch: {keep: 1, drop: 2}}
steps:
  - id: first
    type: shell_command
    command: "echo first >> {{ log }}"
  - {id: drop_key, type: state_update, path: raw.scratch.drop, operation: delete}
  - id: each
    type: foreach
    items: [1, 2, 3, 4, 5]
    body:
      - id: work
        type: shell_command
        command: "echo item-{{ loop.item }} >> {{ log }}"
      - {id: add, type: state_update, path: raw.total, operation: increment, by: "{{ loop.item }}"}
      - id: gate
        type: shell_command
        if: "{{ loop.item == 3 }}"
        command: "test -e {{ gate }}"
      - {id: note, type: state_update, path: raw.seen, operation: append, value: "{{ loop.item }}"}
  - id: last
    type: shell_command
    command: "echo last >> {{ log }}"
"""


def lines(path: Path) -> list[str]:
    return path.read_text().split()


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, str]:
    return {"log": str(tmp_path / "log"), "gate": str(tmp_path / "gate")}


def test_failed_run_resumes_inside_a_loop(write: Callable[..., Path], paths, tmp_path) -> None:  # type: ignore[no-untyped-def]
    flow = write(LOOP)
    failed = run_workflow(flow, paths)
    assert failed.status == "failed"
    assert failed.state.raw["total"] == 6  # 1 + 2 + 3: item 3's gate failed after its add
    Path(paths["gate"]).touch()
    resumed = resume_workflow(failed.run_id)
    assert resumed.status == "succeeded", resumed.errors
    assert resumed.run_id == failed.run_id
    assert lines(tmp_path / "log") == [
        "first",
        "item-1",
        "item-2",
        "item-3",
        "item-4",
        "item-5",
        "last",
    ]
    assert resumed.state.raw == {"total": 15, "seen": [1, 2, 3, 4, 5], "scratch": {"keep": 1}}
    by_id = {s.id: s for s in resumed.steps}
    assert by_id["first"].executions == 1
    assert by_id["work"].executions == 5
    assert by_id["gate"].executions == 2  # item 3 failed once, then passed on resume
    assert [e.error_type for e in resumed.errors] == ["ShellCommandError"]
    uninterrupted = run_workflow(flow, {**paths, "log": str(tmp_path / "log2")})
    assert uninterrupted.state == resumed.state.model_copy(
        update={"inputs": uninterrupted.state.inputs}
    )


def test_resume_refusals(write: Callable[..., Path], paths) -> None:  # type: ignore[no-untyped-def]
    flow = write(LOOP)
    failed = run_workflow(flow, paths)
    # a step removed before the saved position (inside the loop it stopped in) moves the cursor
    flow.write_text(flow.read_text().replace("  - {id: drop_key,", "  # - {id: drop_key,"))
    with pytest.raises(ResumeError, match=r"(?s)changed since run .*steps\[1\].*--force"):
        resume_workflow(failed.run_id)
    Path(paths["gate"]).touch()
    forced = resume_workflow(failed.run_id, force=True)
    assert forced.status == "succeeded"
    with pytest.raises(ResumeError, match="it succeeded"):
        resume_workflow(failed.run_id)
    with pytest.raises(RunNotFoundError):
        resume_workflow("no-such-run")


def test_resume_accepts_an_edit_after_the_saved_position(write: Callable[..., Path], paths) -> None:  # type: ignore[no-untyped-def]
    flow = write(LOOP)
    failed = run_workflow(flow, paths)
    assert failed.status == "failed"
    text = flow.read_text().replace("echo last", "echo changed-last") + "\n# edited\n"
    flow.write_text(text + "  - {id: added, type: state_update, path: raw.total, value: 0}\n")
    Path(paths["gate"]).touch()
    resumed = resume_workflow(failed.run_id)
    assert resumed.status == "succeeded"
    assert lines(Path(paths["log"]))[-1] == "changed-last"
    assert resumed.state.raw["total"] == 0


def test_conditional_branch_is_kept_on_resume(write: Callable[..., Path], tmp_path) -> None:  # type: ignore[no-untyped-def]
    gate = tmp_path / "gate"
    flow = write(
        f"""
        name: branch
        state_schema:
          raw: {{flag: boolean, path: array}}
        steps:
          - type: conditional
            condition: "not flag"
            then:
              - {{type: state_update, path: raw.flag, value: true}}
              - {{type: state_update, path: raw.path, operation: append, value: then}}
              - {{type: shell_command, command: "test -e {gate}"}}
              - {{type: state_update, path: raw.path, operation: append, value: after}}
            else:
              - {{type: state_update, path: raw.path, operation: append, value: else}}
        """
    )
    failed = run_workflow(flow)
    gate.touch()
    resumed = resume_workflow(failed.run_id)
    assert resumed.state.raw["path"] == ["then", "after"]


def test_while_loop_resumes_its_iteration(write: Callable[..., Path], tmp_path) -> None:  # type: ignore[no-untyped-def]
    gate = tmp_path / "gate"
    flow = write(
        f"""
        name: spin
        state_schema:
          raw: {{n: integer, log: array}}
        steps:
          - type: while_loop
            condition: "n < 4"
            body:
              - {{type: state_update, path: raw.n, operation: increment}}
              - {{type: shell_command, command: "test {{{{ n }}}} -ne 2 -o -e {gate}"}}
              - {{type: state_update, path: raw.log, operation: append,
                 value: "{{{{ n }}}}/{{{{ loop.iteration }}}}"}}
        """
    )
    failed = run_workflow(flow)
    assert failed.state.raw["log"] == ["1/1"]
    gate.touch()
    resumed = resume_workflow(failed.run_id)
    assert resumed.state.raw["log"] == ["1/1", "2/2", "3/3", "4/4"]


PARALLEL = """
name: fan
inputs:
  dir: {type: string}
steps:
  - id: fan
    type: parallel_foreach
    items: [0, 1, 2, 3, 4, 5]
    sub_agent_task: job
    max_parallel: 2
    on_item_error: continue
    min_success: 6
sub_agent_tasks:
  job:
    inputs: {item: {type: integer}, dir: {type: string, default: ""}}
    state_schema:
      raw: {count: integer}
    steps:
      - {type: shell_command, command: "echo a >> {{ dir }}/calls-{{ item }}"}
      - {type: state_update, path: raw.count, operation: increment}
      - {type: shell_command, command: "test {{ item }} -ne 3 -o -e {{ dir }}/gate"}
      - {type: shell_command, command: "echo b >> {{ dir }}/calls-{{ item }}"}
"""


def test_parallel_items_resume_individually(write: Callable[..., Path], tmp_path) -> None:  # type: ignore[no-untyped-def]
    flow = write(
        PARALLEL.replace(
            "on_item_error: continue",
            "on_item_error: continue\n    with: {item: '{{ loop.item }}', dir: '{{ dir }}'}",
        )
    )
    failed = run_workflow(flow, {"dir": str(tmp_path)})
    assert failed.status == "failed"
    (tmp_path / "gate").touch()
    resumed = resume_workflow(failed.run_id)
    assert resumed.status == "succeeded", resumed.errors
    calls = {i: lines(tmp_path / f"calls-{i}") for i in range(6)}
    # every item's steps ran once: item 3 continued from its own checkpoint at the gate
    assert all(calls[i] == ["a", "b"] for i in range(6))
    assert resumed.state.raw == {}


def test_timed_out_run_resumes(write: Callable[..., Path], tmp_path) -> None:  # type: ignore[no-untyped-def]
    flag = tmp_path / "fast"
    flow = write(
        f"""
        name: slow
        config: {{timeout: 0.5}}
        state_schema:
          raw: {{done: array}}
        steps:
          - {{type: state_update, path: raw.done, operation: append, value: one}}
          - {{type: shell_command, command: "test -e {flag} || sleep 30"}}
          - {{type: state_update, path: raw.done, operation: append, value: two}}
        """
    )
    timed_out = run_workflow(flow)
    assert timed_out.status == "timed_out"
    flag.touch()
    resumed = resume_workflow(timed_out.run_id)
    assert resumed.status == "succeeded"
    assert resumed.state.raw["done"] == ["one", "two"]


def _wait_for(path: Path, count: int) -> None:
    for _ in range(1000):
        if path.exists() and len(path.read_text().split()) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} never reached {count} lines")


def test_kill_9_inside_a_loop_then_resume(tmp_path: Path) -> None:
    log = tmp_path / "log"
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "name: killed\nstate_schema:\n  raw: {total: integer}\nsteps:\n"
        "  - type: foreach\n    items: '{{ range(1, 41) | list }}'\n    body:\n"
        "      - type: shell_command\n"
        f"        command: 'echo {{{{ loop.item }}}} >> {log}; sleep 0.02'\n"
        "      - {type: state_update, path: raw.total, operation: increment,\n"
        "         by: '{{ loop.item }}'}\n"
    )
    env = {**os.environ, "WFKIT_STORE": str(tmp_path / "store")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfkit", "run", str(flow), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    _wait_for(log, 12)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    [run] = list_runs(tmp_path / "store")
    assert run.status == "interrupted"
    result = subprocess.run(
        [sys.executable, "-m", "wfkit", "resume", run.run_id, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["state"]["raw"]["total"] == sum(range(1, 41))
    written = [int(x) for x in lines(log)]
    assert written[-1] == 40
    # every item ran once; at most the one in flight at the kill ran twice (at-least-once)
    assert sorted(set(written)) == list(range(1, 41))
    assert len(written) - len(set(written)) <= 1


def test_resume_from_a_completed_step_restores_the_state_before_it(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    log = tmp_path / "log"
    flow = write(
        f"""
        name: reset
        state_schema:
          raw: {{n: integer, seen: array}}
        steps:
          - {{id: one, type: state_update, path: raw.n, operation: increment}}
          - id: loop
            type: foreach
            items: [1, 2]
            body:
              - {{id: note, type: state_update, path: raw.seen, operation: append,
                 value: "{{{{ loop.item }}}}"}}
          - id: say
            type: shell_command
            command: "echo n={{{{ n }}}} seen={{{{ seen | length }}}} >> {log}"
          - {{id: two, type: state_update, path: raw.n, operation: increment}}
        """
    )
    first = run_workflow(flow)
    assert first.status == "succeeded"
    assert first.state.raw == {"n": 2, "seen": [1, 2]}
    again = resume_workflow(first.run_id, from_step="say")
    assert again.status == "succeeded"
    assert again.state.raw == {"n": 2, "seen": [1, 2]}  # not 3: the state before `say`
    assert lines(log) == ["n=1", "seen=2", "n=1", "seen=2"]
    assert "resumed from step 'say', with the state before it" in [m.text for m in again.messages]
    from_loop = resume_workflow(first.run_id, from_step="loop")
    assert from_loop.state.raw == {"n": 2, "seen": [1, 2]}  # the loop appended afresh
    with pytest.raises(ResumeError, match="top-level step"):
        resume_workflow(first.run_id, from_step="note")
