"""``parallel`` steps: named branches side by side, each over a copy of the state, merged
back in branch order; ``fail_fast`` cancelling the others (their cleanup and the
workflow's ``finally`` run, no process left), ``min_success``, ``BranchError`` with the
branch's own error as cause, and a resume after ``kill -9`` rerunning only the branches
that had not succeeded."""

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

from tests.conftest import measured, wfkit_cli
from wfkit.commands import RunReport
from wfkit.errors import LoadError
from wfkit.language.loader import load_file

CHECKS = """
name: checks
default_state: {raw: {results: {}, n: 1, who: none}}
steps:
  - id: prep
    type: shell_command
    command: echo ready
  - id: checks
    type: parallel
    max_parallel: 3
    on_branch_error: continue
    MIN_SUCCESS
    branches:
      lint:
        - id: l1
          type: shell_command
          command: "echo lint-{{ steps.prep.output.stdout | trim }}"
          state_updates:
            - {path: raw.results.lint, value: "{{ result.stdout | trim }}"}
            - {path: raw.who, value: lint}
      unit:
        - id: u1
          type: shell_command
          command: "echo unit"
          state_update: {path: raw.results.unit, value: "{{ result.stdout | trim }}"}
        - {id: u2, type: state_update, path: raw.n, value: "{{ n + 5 }}"}
        - {id: u3, type: state_update, path: raw.who, value: unit}
      docs:
        - {id: d0, type: state_update, path: raw.results.docs, value: written}
        - {id: d1, type: shell_command, command: "exit 3"}
    state_update: {path: raw.seen, value: "{{ result }}"}
"""


def test_branches_merge_their_writes_in_branch_order(
    run_yaml: Callable[..., RunReport],
) -> None:
    report = run_yaml(CHECKS.replace("MIN_SUCCESS", ""))
    assert report.status == "succeeded", report.error
    raw = report.state.raw
    # both writes under one map landed; the later branch won the same key; the failed
    # branch's write (results.docs) was dropped
    assert raw["results"] == {"lint": "lint-ready", "unit": "unit"}
    assert raw["who"] == "unit"
    assert raw["n"] == 6
    seen = raw["seen"]
    assert list(seen) == ["lint", "unit", "docs"]
    assert seen["unit"] == {"status": "succeeded", "error": None, "result": "unit"}
    assert seen["lint"]["result"]["stdout"].strip() == "lint-ready"
    assert seen["docs"]["status"] == "failed"
    assert seen["docs"]["error"]["type"] == "ShellCommandError"
    checks = next(s for s in report.steps if s.id == "checks")
    assert checks.items == {"succeeded": 2, "failed": 1}
    recovered = [(e.step_id, e.recovered) for e in report.errors]
    assert ("checks/d1", True) in recovered


def test_min_success_not_reached_fails_with_a_branch_error(
    run_yaml: Callable[..., RunReport],
) -> None:
    report = run_yaml(CHECKS.replace("MIN_SUCCESS", "min_success: 3"))
    assert report.status == "failed"
    assert report.error is not None
    assert report.error["type"] == "BranchError"
    assert report.error["branch"] == "docs"
    assert "2 of 3 branches succeeded" in report.error["message"]
    assert report.error["cause"]["type"] == "ShellCommandError"
    assert "results" not in report.state.raw or report.state.raw["results"] == {}


def test_min_success_reached_succeeds(run_yaml: Callable[..., RunReport]) -> None:
    report = run_yaml(CHECKS.replace("MIN_SUCCESS", "min_success: 2"))
    assert report.status == "succeeded"


def test_branches_run_side_by_side(run_yaml: Callable[..., RunReport], tmp_path: Path) -> None:
    """Each branch waits for the other's file: only concurrent branches both finish (a
    sequential run gives up after a minute and fails)."""
    wait = "touch {0}; for i in $(seq 600); do [ -f {1} ] && exit 0; sleep 0.1; done; exit 9"
    a, b = tmp_path / "a", tmp_path / "b"
    report = run_yaml(
        f"""
        name: side
        steps:
          - id: both
            type: parallel
            branches:
              a: [{{type: shell_command, command: "{wait.format(a, b)}"}}]
              b: [{{type: shell_command, command: "{wait.format(b, a)}"}}]
        """
    )
    assert report.status == "succeeded", report.error


def test_a_branch_reads_the_loop_it_runs_in(run_yaml: Callable[..., RunReport]) -> None:
    report = run_yaml(
        """
        name: looped
        default_state: {raw: {out: []}}
        steps:
          - id: each
            type: foreach
            items: [x, y]
            body:
              - id: par
                type: parallel
                branches:
                  one: [{id: o, type: shell_command, command: "echo {{ loop.item }}1"}]
                  two: [{id: t, type: shell_command, command: "echo {{ loop.item }}2"}]
                state_update:
                  path: raw.out
                  operation: append
                  value: "{{ result.one.result.stdout | trim }}{{
                    result.two.result.stdout | trim }}"
        """
    )
    assert report.status == "succeeded", report.error
    assert report.state.raw["out"] == ["x1x2", "y1y2"]


FAIL_FAST = """
name: ff
steps:
  - id: checks
    type: parallel
    branches:
      slow:
        - id: sleeper
          type: shell_command
          command: "echo $$ > {pid}; exec sleep 300"
          cleanup:
            - {{id: tidy, type: shell_command, command: "echo tidied > {tidy}"}}
      bad:
        - id: boom
          type: shell_command
          command: "while [ ! -s {pid} ]; do sleep 0.05; done; exit 4"
finally:
  - {{id: fin, type: shell_command, command: "echo {{{{ workflow.status }}}} > {fin}"}}
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_fail_fast_cancels_the_other_branches(tmp_path: Path) -> None:
    files = {k: tmp_path / k for k in ("pid", "tidy", "fin")}
    flow = tmp_path / "ff.yaml"
    flow.write_text(FAIL_FAST.format(**files))
    done = wfkit_cli(tmp_path, "run", str(flow), "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["error"]["type"] == "BranchError"
    assert report["error"]["branch"] == "bad"
    assert report["error"]["cause"]["type"] == "ShellCommandError"
    statuses = {s["id"]: s["status"] for s in report["steps"]}
    assert statuses["checks/sleeper"] == "cancelled"
    assert statuses["checks/tidy"] == "succeeded"
    assert files["tidy"].read_text().strip() == "tidied"
    assert files["fin"].read_text().strip() == "failed"
    pid = int(files["pid"].read_text())
    for _ in range(600):  # the process group was ended; give the kernel a moment to reap
        if not _alive(pid):
            break
        time.sleep(0.1)
    assert not _alive(pid)
    why = wfkit_cli(tmp_path, "why", report["run_id"], "checks/sleeper")
    assert "fail_fast after branch 'bad' of 'checks' failed" in why.stdout


RESUMED = """
name: resumed
default_state: {{raw: {{got: {{}}}}}}
steps:
  - id: checks
    type: parallel
    branches:
      fast:
        - id: f
          type: shell_command
          command: "echo fast >> {log}"
          state_update: {{path: raw.got.fast, value: 1}}
      slow:
        - id: s1
          type: shell_command
          command: "echo slow >> {log}; while [ ! -f {go} ]; do sleep 0.05; done"
        - {{id: s2, type: state_update, path: raw.got.slow, value: 2}}
  - {{id: after, type: shell_command, command: "echo after >> {log}"}}
"""


def test_a_resume_after_kill_9_reruns_only_the_unfinished_branch(tmp_path: Path) -> None:
    log, go = tmp_path / "log", tmp_path / "go"
    flow = tmp_path / "flow.yaml"
    flow.write_text(RESUMED.format(log=log, go=go))
    env = {**os.environ, **measured(), "WFKIT_STORE": str(tmp_path / "store")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfkit", "run", str(flow), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        for _ in range(3000):  # both branches started, and the fast one's checkpoint is in
            text = log.read_text() if log.exists() else ""
            if "fast" in text and "slow" in text and _stored(tmp_path / "store"):
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"the branches never started: {log.read_text()!r}")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    go.touch()
    run_id = json.loads(wfkit_cli(tmp_path, "runs", "--json").stdout)[0]["run_id"]
    done = wfkit_cli(tmp_path, "resume", run_id, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["state"]["raw"]["got"] == {"fast": 1, "slow": 2}
    # the fast branch is not run again; the slow one, in flight at the kill, is
    assert sorted(log.read_text().split()) == ["after", "fast", "slow", "slow"]


def _stored(store: Path) -> bool:
    """Whether the parent frame remembered the fast branch (a checkpoint holds it)."""
    import sqlite3

    db = next(store.glob("*.db"), None) if store.is_dir() else None
    if db is None:
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rows = conn.execute("select name from sqlite_master where type='table'").fetchall()
            for (table,) in rows:
                cols = [c[1] for c in conn.execute(f"pragma table_info({table})")]
                if "name" in cols:
                    hit = conn.execute(
                        f"select 1 from {table} where name like 'branch:checks:0'"
                    ).fetchone()
                    if hit:
                        return True
    except sqlite3.Error:
        return False
    return False


@pytest.mark.parametrize(
    ("snippet", "message", "field"),
    [
        ("min_success: 3", "min_success=3 but 'p' has 2 branch(es)", "steps[0].min_success"),
        ("max_parallel: 0", "max_parallel", "steps[0].max_parallel"),
        ("on_branch_error: ignore", "on_branch_error", "steps[0].on_branch_error"),
    ],
)
def test_bad_parallel_steps_are_refused_at_load(
    write: Callable[..., Path], snippet: str, message: str, field: str
) -> None:
    path = write(
        f"""
        name: bad
        steps:
          - id: p
            type: parallel
            {snippet}
            branches:
              a: [{{type: shell_command, command: "true"}}]
              b: [{{type: shell_command, command: "true"}}]
        """
    )
    with pytest.raises(LoadError) as caught:
        load_file(path)
    assert message in str(caught.value)
    assert field in str(caught.value)


def test_break_inside_a_branch_is_refused(write: Callable[..., Path]) -> None:
    path = write(
        """
        name: bad
        steps:
          - type: foreach
            items: [1]
            body:
              - type: parallel
                branches:
                  a: [{type: break}]
        """
    )
    with pytest.raises(LoadError) as caught:
        load_file(path)
    assert "`break` outside a while_loop or foreach" in str(caught.value)
    assert "branches.a[0]" in str(caught.value)


def test_a_branch_needs_steps_and_a_name(write: Callable[..., Path]) -> None:
    path = write(
        """
        name: bad
        steps:
          - type: parallel
            branches: {}
        """
    )
    with pytest.raises(LoadError) as caught:
        load_file(path)
    assert "branches" in str(caught.value)
    assert "Input should" not in str(caught.value)


def test_report_diff_and_explain_name_the_branches(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(CHECKS.replace("MIN_SUCCESS", ""))
    first = json.loads(wfkit_cli(tmp_path, "run", str(flow), "--json").stdout)
    flow.write_text(CHECKS.replace("MIN_SUCCESS", "").replace('"exit 3"', '"exit 0"'))
    second = json.loads(wfkit_cli(tmp_path, "run", str(flow), "--json").stdout)
    page = json.loads(wfkit_cli(tmp_path, "report", first["run_id"], "--json").stdout)
    lanes = sorted(lane["name"] for lane in page["lanes"])
    assert lanes == [
        "checks [branch docs]",
        "checks [branch lint]",
        "checks [branch unit]",
        "workflow",
    ]
    diff = wfkit_cli(tmp_path, "diff", first["run_id"], second["run_id"], "--json")
    steps = json.loads(diff.stdout)["steps"]
    assert [(s["step_id"], s["branch"]) for s in steps] == [("checks/d1", "docs")]
    human = wfkit_cli(tmp_path, "diff", first["run_id"], second["run_id"])
    assert "checks/d1 [branch docs]" in human.stdout
    plan = wfkit_cli(tmp_path, "explain", str(flow), "--json")
    views = {s["id"]: s for s in json.loads(plan.stdout)["steps"]}
    assert (views["l1"]["branch"], views["u1"]["branch"], views["u2"]["branch"]) == (
        "lint",
        "unit",
        "unit",
    )
    assert views["checks"]["branch"] is None
    assert "lint ▸ l1" in wfkit_cli(tmp_path, "explain", str(flow)).stdout


def test_merges_keep_new_maps_deletions_and_types(run_yaml: Callable[..., RunReport]) -> None:
    report = run_yaml(
        """
        name: merges
        default_state: {raw: {tmp: 1, c: {x: 1, y: 0}}}
        steps:
          - id: p
            type: parallel
            branches:
              a:
                - {type: state_update, path: raw.results.a, value: 1}
                - {type: state_update, path: raw.tmp, operation: delete}
              b:
                - {type: state_update, path: raw.results.b, value: 2}
                - {type: state_update, path: raw.c.x, value: true}
                - {type: state_update, path: raw.c.y, value: false}
        """
    )
    assert report.status == "succeeded", report.error
    raw = report.state.raw
    assert raw["results"] == {"a": 1, "b": 2}  # a map both created: both keys
    assert "tmp" not in raw  # a's deletion landed
    assert raw["c"] == {"x": True, "y": False}  # true is not 1, false is not 0
    assert raw["c"]["x"] is True


def test_each_execution_in_a_loop_runs_every_branch_again(
    run_yaml: Callable[..., RunReport],
) -> None:
    report = run_yaml(
        """
        name: looped
        default_state: {raw: {r: {}}}
        steps:
          - id: each
            type: foreach
            items: [1, 2]
            body:
              - id: p
                type: parallel
                on_error: continue
                branches:
                  a: [{id: sa, type: state_update, path: raw.r.a, value: "{{ loop.item }}"}]
                  b: [{id: sb, type: shell_command, command: "test {{ loop.item }} -ne 1"}]
        """
    )
    assert report.status == "succeeded", report.error
    assert report.state.raw["r"] == {"a": 2}
    runs = {s.id: s.executions for s in report.steps}
    assert runs["p/sa"] == 2


def test_a_task_named_workflow_keeps_its_own_branches(run_yaml: Callable[..., RunReport]) -> None:
    report = run_yaml(
        """
        name: names
        default_state: {raw: {said: []}}
        steps:
          - id: p
            type: parallel
            branches:
              x: [{type: state_update, path: raw.said, operation: append, value: main}]
          - {id: fan, type: parallel_foreach, items: [1], sub_agent_task: workflow,
             state_update: {path: raw.said, operation: append,
                            value: "{{ result[0].state.raw.said[0] }}"}}
        sub_agent_tasks:
          workflow:
            default_state: {raw: {said: []}}
            steps:
              - id: p
                type: parallel
                branches:
                  x: [{type: state_update, path: raw.said, operation: append, value: task}]
        """
    )
    assert report.status == "succeeded", report.error
    assert report.state.raw["said"] == ["main", "task"]
