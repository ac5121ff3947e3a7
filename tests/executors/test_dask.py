"""The Dask executor against a real cluster: items run in the worker processes, survive a
worker killed mid-item, and every record matches what the local executor makes of the same
workflow."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES
from tests.executors.conftest import VENV_BIN, Cluster
from wfkit.commands import RunReport, run_workflow

# imported at collection: assertion-rewriting it later, deep in a run, hit a CPython 3.11
# compile() SystemError ("AST constructor recursion depth mismatch")
from wfkit.executors import dask as dask_executor  # noqa: F401
from wfkit.store.sqlite import RunStore

pytestmark = pytest.mark.slow

WFKIT = (
    [str(VENV_BIN / "wfkit")] if (VENV_BIN / "wfkit").exists() else [sys.executable, "-m", "wfkit"]
)


def write(folder: Path, text: str, name: str = "flow.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def shape(report: RunReport) -> dict[str, Any]:
    """A run's report without what differs between any two runs (ids, times, order of
    records made by items running at once)."""
    data = report.model_dump(mode="json")
    return {
        "status": data["status"],
        "state": data["state"],
        "error": data["error"],
        "steps": [
            {k: s.get(k) for k in ("id", "type", "status", "attempts", "executions", "items")}
            for s in data["steps"]
        ],
        "errors": sorted(
            json.dumps(
                {
                    k: e.get(k)
                    for k in (
                        "step_id",
                        "error_type",
                        "message",
                        "stack_trace",
                        "retry_count",
                        "recovered",
                        "details",
                    )
                },
                sort_keys=True,
            )
            for e in data["errors"]
        ),
        "warnings": sorted(data["warnings"]),
        "messages": sorted((m["level"], m["text"]) for m in data["messages"]),
        "errors_dropped": data["errors_dropped"],
    }


def same(remote: dict[str, Any], local: dict[str, Any]) -> None:
    """``remote == local``, failing with a line diff of the two."""
    import difflib

    a = json.dumps(local, indent=1, sort_keys=True).splitlines()
    b = json.dumps(remote, indent=1, sort_keys=True).splitlines()
    assert remote == local, "\n".join(difflib.unified_diff(a, b, "local", "dask", lineterm=""))


def masked(shaped: dict[str, Any], pattern: re.Pattern[str]) -> dict[str, Any]:
    """A shape with ``pattern`` masked everywhere (errors sorted again)."""
    data: dict[str, Any] = json.loads(pattern.sub("X", json.dumps(shaped)))
    data["errors"] = sorted(data["errors"])
    return data


def both(cluster: Cluster, path: Path, stores: Path, **kw: Any) -> tuple[RunReport, RunReport]:
    local = run_workflow(path, store=stores / "local", **kw)
    remote = run_workflow(
        path, store=stores / "dask", executor="dask", scheduler=cluster.address, **kw
    )
    return local, remote


FAN = """
name: fan
inputs: {n: {type: integer, default: 5}, fail: {type: array, default: []}}
state_schema: {raw: {results: array}}
steps:
  - id: fan
    type: parallel_foreach
    items: "{{ range(n) | list }}"
    sub_agent_task: work
    with: {item: "{{ item }}", fail: "{{ item in fail }}"}
    max_parallel: 1
    ON_ITEM_ERROR
    state_update: {path: raw.results, value: "{{ result }}"}
sub_agent_tasks:
  work:
    inputs: {item: {type: integer}, fail: {type: boolean}}
    state_schema:
      raw: {out: string, doubled: integer}
      computed: {big: {from: raw.doubled, transform: "input > 4"}}
    steps:
      - id: sh
        type: shell_command
        command: "echo value-{{ item }}; exit {{ 3 if fail else 0 }}"
        state_update: {path: raw.out, value: "{{ result.stdout | trim }}"}
      - id: calc
        type: state_update
        path: raw.doubled
        value: "{{ item * 2 }}"
      - type: user_message
        message: "item {{ item }} done"
"""


def fan(extra: str = "") -> str:
    return FAN.replace("ON_ITEM_ERROR", extra or "on_item_error: continue")


def test_items_run_in_the_worker_processes(dask_cluster: Cluster, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: where
        state_schema: {raw: {pids: array}}
        steps:
          - id: fan
            type: parallel_foreach
            items: "{{ range(6) | list }}"
            sub_agent_task: t
            max_parallel: 2
            state_update: {path: raw.pids, value: "{{ result | map(attribute='state') | list }}"}
        sub_agent_tasks:
          t:
            inputs: {item: {type: integer}}
            state_schema: {raw: {parent: integer}}
            steps:
              - id: sh
                type: shell_command
                command: "sleep 0.3; echo $PPID"
                state_update: {path: raw.parent, value: "{{ result.stdout | trim | int }}"}
        """,
    )
    workers = dask_cluster.worker_pids()
    report = run_workflow(path, executor="dask", scheduler=dask_cluster.address)
    assert report.status == "succeeded"
    parents = {s["raw"]["parent"] for s in report.state.raw["pids"]}
    assert os.getpid() not in parents
    assert parents <= workers
    assert len(parents) == 2  # two items at a time: both workers took some


def test_a_task_file_travels_with_the_workflow(dask_cluster: Cluster, tmp_path: Path) -> None:
    from wfkit.language.loader import load_file

    inline = fan()
    head, task = inline.split("sub_agent_tasks:\n  work:\n")
    (tmp_path / "tasks").mkdir()
    write(tmp_path / "tasks", textwrap.dedent(task), "work.yaml")
    path = write(tmp_path, head + "sub_agent_tasks:\n  work: tasks/work.yaml\n")
    local, remote = both(dask_cluster, path, tmp_path)
    assert local.status == "succeeded"
    same(shape(remote), shape(local))
    # the workers load the task file from the text sent with the workflow, never from disk
    # (another file name: the workers have not loaded this one yet)
    again = write(tmp_path, path.read_text(), "again.yaml")
    loaded = load_file(again)
    (tmp_path / "tasks" / "work.yaml").unlink()
    shipped = run_workflow(
        again,
        loaded=loaded,
        store=tmp_path / "shipped",
        executor="dask",
        scheduler=dask_cluster.address,
    )
    same(shape(shipped), shape(local))


def test_workers_never_read_the_files_workflow_steps_call(
    dask_cluster: Cluster, tmp_path: Path
) -> None:
    from wfkit.language.loader import load_file

    write(tmp_path, "name: child\nsteps:\n  - {type: user_message, message: hi}\n", "child.yaml")
    text = fan().replace(
        "steps:\n  - id: fan",
        "steps:\n  - {id: call, type: workflow, file: child.yaml}\n  - id: fan",
        1,
    )
    path = write(tmp_path, text, "calls.yaml")
    loaded = load_file(path)  # the child is loaded here, by the coordinator
    (tmp_path / "child.yaml").unlink()
    report = run_workflow(
        path, loaded=loaded, store=tmp_path / "s", executor="dask", scheduler=dask_cluster.address
    )
    assert report.status == "succeeded", report.error
    assert [s.id for s in report.steps][:2] == ["call", "fan"]


def test_success_matches_local(dask_cluster: Cluster, tmp_path: Path) -> None:
    path = write(tmp_path, fan())
    local, remote = both(dask_cluster, path, tmp_path)
    assert local.status == "succeeded"
    same(shape(remote), shape(local))


BRANCHES = """
name: branches
inputs: {fail: {type: boolean, default: false}}
default_state: {raw: {results: {}, n: 1}}
steps:
  - id: prep
    type: shell_command
    command: echo ready
  - id: checks
    type: parallel
    on_branch_error: continue
    max_parallel: 1  # the records in one order, as in the local run
    branches:
      lint:
        - id: l1
          type: shell_command
          command: "echo lint-{{ steps.prep.output.stdout | trim }}"
          state_update: {path: raw.results.lint, value: "{{ result.stdout | trim }}"}
      unit:
        - {id: u1, type: shell_command, command: "echo unit; exit {{ 3 if fail else 0 }}"}
        - {id: u2, type: state_update, path: raw.n, value: "{{ n + 5 }}"}
      docs:
        - {id: d1, type: state_update, path: raw.results.docs, value: done}
    state_update:
      path: raw.statuses
      value: "{{ result | dictsort | map('last') | map(attribute='status') | list }}"
"""


@pytest.mark.parametrize("fail", [False, True])
def test_parallel_branches_match_local(dask_cluster: Cluster, tmp_path: Path, fail: bool) -> None:
    path = write(tmp_path, BRANCHES)
    local, remote = both(dask_cluster, path, tmp_path, inputs={"fail": fail})
    assert local.status == "succeeded", local.error
    expected = {"lint": "lint-ready", "docs": "done"}
    assert local.state.raw["results"] == expected
    assert local.state.raw["n"] == (1 if fail else 6)
    same(shape(remote), shape(local))


def test_item_failures_with_continue_match_local(dask_cluster: Cluster, tmp_path: Path) -> None:
    path = write(tmp_path, fan())
    local, remote = both(dask_cluster, path, tmp_path, inputs={"fail": [1, 3]})
    assert local.status == "succeeded"
    assert [r["status"] for r in local.state.raw["results"]] == [
        "succeeded",
        "failed",
        "succeeded",
        "failed",
        "succeeded",
    ]
    same(shape(remote), shape(local))


def test_fail_fast_matches_local(dask_cluster: Cluster, tmp_path: Path) -> None:
    path = write(tmp_path, fan("on_item_error: fail_fast"))
    local, remote = both(dask_cluster, path, tmp_path, inputs={"fail": [2]})
    assert local.status == "failed"
    assert local.error is not None
    assert local.error["type"] == "SubAgentError"
    same(shape(remote), shape(local))


def test_fail_fast_cancels_the_items_in_flight(dask_cluster: Cluster, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: cancel
        steps:
          - id: fan
            type: parallel_foreach
            items: [0, 1]
            sub_agent_task: t
            max_parallel: 2
        sub_agent_tasks:
          t:
            inputs: {item: {type: integer}}
            steps:
              - id: sh
                type: shell_command
                command: "if [ {{ item }} = 0 ]; then sleep 1; exit 4; fi; sleep 900"
            finally:
              - id: bye
                type: user_message
                message: "item {{ item }} ended {{ workflow.status }}"
        """,
    )
    started = time.monotonic()
    local, remote = both(dask_cluster, path, tmp_path)
    assert time.monotonic() - started < 300  # the sleeping item did not run its 900 s
    assert local.status == "failed"
    assert ("info", "item 1 ended cancelled") in shape(local)["messages"]
    same(shape(remote), shape(local))


def test_min_success_matches_local(dask_cluster: Cluster, tmp_path: Path) -> None:
    path = write(tmp_path, fan("on_item_error: continue\n    min_success: 4"))
    local, remote = both(dask_cluster, path, tmp_path, inputs={"fail": [0, 4]})
    assert local.status == "failed"
    assert local.error is not None
    assert "needs min_success=4" in local.error["message"]
    same(shape(remote), shape(local))


def test_item_retries_match_local(dask_cluster: Cluster, tmp_path: Path) -> None:
    text = """
        name: retry
        inputs: {marks: {type: string}}
        steps:
          - id: fan
            type: parallel_foreach
            items: [0, 1, 2]
            sub_agent_task: t
            max_parallel: 2
            with: {item: "{{ item }}", marks: "{{ marks }}"}
            item_retry_count: 2
        sub_agent_tasks:
          t:
            inputs: {item: {type: integer}, marks: {type: string}}
            steps:
              - id: once
                type: shell_command
                command: >-
                  m={{ marks }}/{{ item }}; n=$(cat $m 2>/dev/null || echo 0);
                  echo $((n + 1)) > $m; [ $n -ge {{ item }} ]
        """
    path = write(tmp_path, text)
    shapes = []
    for name, options in (
        ("local", {}),
        ("dask", {"executor": "dask", "scheduler": dask_cluster.address}),
    ):
        marks = tmp_path / f"marks-{name}"
        marks.mkdir()
        report = run_workflow(path, {"marks": str(marks)}, store=tmp_path / name, **options)
        assert report.status == "succeeded"
        assert sorted(p.read_text().strip() for p in marks.iterdir()) == ["1", "2", "3"]
        shapes.append(json.loads(json.dumps(shape(report)).replace(str(marks), "MARKS")))
    same(shapes[1], shapes[0])


def test_breakers_match_local(dask_cluster: Cluster, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: breaker
        config:
          circuit_breakers: {svc: {failure_threshold: 2, reset_timeout: 600}}
        steps:
          - id: fan
            type: parallel_foreach
            items: [0, 1, 2, 3]
            sub_agent_task: t
            max_parallel: 1
            on_item_error: continue
        sub_agent_tasks:
          t:
            inputs: {item: {type: integer}}
            steps:
              - id: call
                type: shell_command
                command: "exit 7"
                circuit_breaker: svc
        """,
    )
    local, remote = both(dask_cluster, path, tmp_path)
    types = [json.loads(e)["error_type"] for e in shape(local)["errors"]]
    assert sorted(types) == ["CircuitOpenError"] * 2 + ["ShellCommandError"] * 2
    probe = re.compile(r"next probe in [\d.]+ s")
    same(masked(shape(remote), probe), masked(shape(local), probe))
    stored = []
    for name in ("local", "dask"):
        with RunStore(tmp_path / name) as store:
            state = store.breakers("breaker")["svc"]
            stored.append((state["state"], state["failures"]))
    assert stored == [("open", 2), ("open", 2)]


def test_mcp_call_matches_local_and_starts_once_per_worker(
    dask_cluster: Cluster, tmp_path: Path
) -> None:
    server = EXAMPLES / "servers" / "notes.py"
    path = write(
        tmp_path,
        f"""
        name: mcp
        mcp_servers:
          notes: {{command: python, args: ["{server}"]}}
        state_schema: {{raw: {{results: array}}}}
        steps:
          - id: fan
            type: parallel_foreach
            items: [0, 1, 2, 3, 4, 5]
            sub_agent_task: t
            max_parallel: 2
            on_item_error: continue
            state_update: {{path: raw.results, value: "{{{{ result }}}}"}}
        sub_agent_tasks:
          t:
            inputs: {{item: {{type: integer}}}}
            state_schema: {{raw: {{note: string, pid: integer}}}}
            steps:
              - id: add
                type: mcp_call
                server: notes
                tool: add_note
                parameters: {{title: "t{{{{ item }}}}", body: "b"}}
                state_update: {{path: raw.note, value: "{{{{ result.title }}}}"}}
              - id: pid
                type: mcp_call
                server: notes
                tool: pid
                state_update: {{path: raw.pid, value: "{{{{ result }}}}"}}
              - id: refused
                type: mcp_call
                server: notes
                tool: refuse
                parameters: {{reason: "no {{{{ item }}}}"}}
                if: "{{{{ item == 3 }}}}"
        """,
    )
    local, remote = both(dask_cluster, path, tmp_path)
    assert [r["status"] for r in local.state.raw["results"]].count("failed") == 1, local.state.raw[
        "results"
    ]
    pids = {r["state"]["raw"]["pid"] for r in remote.state.raw["results"]}
    assert 1 <= len(pids) <= 2  # one server per worker for the whole run, not one per item
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)  # closed when the run ended
    for report in (local, remote):
        for result in report.state.raw["results"]:
            result["state"]["raw"].pop("pid")
    clock = re.compile(r"\[\d\d/\d\d/\d\d \d\d:\d\d:\d\d\]")  # in the server's stderr
    same(masked(shape(remote), clock), masked(shape(local), clock))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_traces_and_logs_match_local(dask_cluster: Cluster, tmp_path: Path) -> None:
    path = write(tmp_path, fan())
    outputs = []
    for name, flags in (
        ("local", []),
        ("dask", ["--executor", "dask", "--scheduler", dask_cluster.address]),
    ):
        store = str(tmp_path / name)
        done = subprocess.run(
            [*WFKIT, "run", str(path), "--trace", "--json", "--quiet", "--store", store, *flags],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        run_id = json.loads(done.stdout)["run_id"]
        trace = _wfkit("trace", run_id, "--json", "--store", store)
        logs = _wfkit("logs", run_id, "--store", store)
        shown = json.loads(trace)
        records = sorted(
            json.dumps({k: v for k, v in r.items() if k not in TIMES}, sort_keys=True)
            for part in ("traces", "events", "steps")
            for r in shown[part]
        )
        masked = sorted(
            re.sub(r"\d\d:\d\d:\d\d\.\d+|\d{4}-\d\d-\d\dT[^ ]+", "T", logs).splitlines()
        )
        outputs.append((records, masked))
    assert any('"transform"' in r for r in outputs[0][0])  # traced: transforms recorded
    same(
        {"trace": outputs[1][0], "logs": outputs[1][1]},
        {"trace": outputs[0][0], "logs": outputs[0][1]},
    )


TIMES = ("timestamp", "duration_ms", "started_at", "finished_at", "elapsed_ms")


def _wfkit(*args: str) -> str:
    done = subprocess.run([*WFKIT, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_worker_killed_mid_item_does_not_fail_the_run(
    dask_cluster: Cluster, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    path = write(
        tmp_path,
        f"""
        name: survive
        state_schema: {{raw: {{results: array}}}}
        steps:
          - id: fan
            type: parallel_foreach
            items: [0]
            sub_agent_task: t
            state_update: {{path: raw.results, value: "{{{{ result }}}}"}}
        sub_agent_tasks:
          t:
            inputs: {{item: {{type: integer}}}}
            state_schema: {{raw: {{ran: string}}}}
            steps:
              - id: slow
                type: shell_command
                command: "echo $PPID >> {marks}/pids; sleep 4; echo $PPID"
                state_update: {{path: raw.ran, value: "{{{{ result.stdout | trim }}}}"}}
        """,
    )
    dask_cluster.worker_pids(2)
    process = subprocess.Popen(
        [
            *WFKIT,
            "run",
            str(path),
            "--json",
            "--quiet",
            "--store",
            str(tmp_path / "store"),
            "--executor",
            "dask",
            "--scheduler",
            dask_cluster.address,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pids = marks / "pids"
    deadline = time.monotonic() + 60
    while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = int(pids.read_text().split()[0])
    os.kill(victim, signal.SIGKILL)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err + out
    report = json.loads(out)
    assert report["status"] == "succeeded"
    ran = [int(p) for p in pids.read_text().split()]
    assert len(ran) == 2  # ran again, elsewhere
    assert int(report["state"]["raw"]["results"][0]["state"]["raw"]["ran"]) == ran[1] != victim


def test_step_timeouts_match_local(dask_cluster: Cluster, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: slow
        steps:
          - id: fan
            type: parallel_foreach
            items: [0, 1]
            sub_agent_task: t
            max_parallel: 1
            on_item_error: continue
        sub_agent_tasks:
          t:
            inputs: {item: {type: integer}}
            steps:
              - id: sh
                type: shell_command
                command: "sleep {{ 600 if item else 0 }}"
                timeout: 5
        """,
    )
    local, remote = both(dask_cluster, path, tmp_path)
    assert [json.loads(e)["error_type"] for e in shape(local)["errors"]] == ["StepTimeoutError"]
    same(shape(remote), shape(local))


def _wait_for_items_stored(store: Path, *keys: str, seconds: float = 120) -> None:
    """Until the run store holds the results of the items named (their parent's memory)."""
    deadline = time.monotonic() + seconds
    query = "SELECT name FROM checkpoint_values WHERE tier = 'memory'"
    while time.monotonic() < deadline:
        if (store / "runs.db").exists():
            with contextlib.closing(sqlite3.connect(store / "runs.db", timeout=30)) as db:
                try:
                    names = {row[0] for row in db.execute(query)}
                except sqlite3.OperationalError:  # created, its tables not yet
                    names = set()
            if set(keys) <= names:
                return
        time.sleep(0.1)
    raise AssertionError(f"the store never held {keys}")


def _wait_for(path: Path, lines: int = 1, seconds: float = 60) -> list[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = path.read_text().split() if path.exists() else []
        if len(found) >= lines:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{path} never had {lines} lines")


@pytest.mark.parametrize("how", ["ctrl-c", "wfkit cancel"])
def test_ctrl_c_and_cancel_stop_the_items_on_the_workers(
    dask_cluster: Cluster, tmp_path: Path, how: str
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    path = write(
        tmp_path,
        f"""
        name: interrupt
        steps:
          - id: fan
            type: parallel_foreach
            items: [0, 1]
            sub_agent_task: t
            max_parallel: 2
        sub_agent_tasks:
          t:
            inputs: {{item: {{type: integer}}}}
            steps:
              - id: sh
                type: shell_command
                command: "echo {{{{ item }}}} >> {marks}/started; sleep 900"
            finally:
              - type: user_message
                message: "item {{{{ item }}}} ended {{{{ workflow.status }}}}"
        """,
    )
    process = subprocess.Popen(
        [
            *WFKIT,
            "run",
            str(path),
            "--json",
            "--quiet",
            "--store",
            str(tmp_path / "store"),
            "--scheduler",
            dask_cluster.address,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(marks / "started", 2)
    started = time.monotonic()
    if how == "ctrl-c":
        process.send_signal(signal.SIGINT)
    else:
        store = str(tmp_path / "store")
        run_id = json.loads(_wfkit("runs", "--json", "--store", store))[0]["run_id"]
        _wfkit("cancel", run_id, "--store", store)
    out, err = process.communicate(timeout=90)
    assert time.monotonic() - started < 300  # not the items' 900 s
    report = json.loads(out)
    assert report["status"] == "cancelled", err
    texts = sorted(m["text"] for m in report["messages"])
    assert texts == ["item 0 ended cancelled", "item 1 ended cancelled"]


def test_resume_after_the_coordinator_is_killed_reruns_only_unfinished_items(
    dask_cluster: Cluster, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    path = write(
        tmp_path,
        f"""
        name: resumable
        state_schema: {{raw: {{results: array}}}}
        steps:
          - id: fan
            type: parallel_foreach
            items: [0, 1, 2, 3]
            sub_agent_task: t
            max_parallel: 2
            state_update:
              path: raw.results
              value: "{{{{ result | map(attribute='index') | list }}}}"
        sub_agent_tasks:
          t:
            inputs: {{item: {{type: integer}}}}
            steps:
              - id: sh
                type: shell_command
                command: >-
                  echo {{{{ item }}}} >> {marks}/ran;
                  if [ {{{{ item }}}} -ge 2 ]; then
                  n=0; while [ ! -e {marks}/resumed ] && [ $n -lt 1200 ]; do
                  sleep 0.1; n=$((n + 1)); done; fi
        """,
    )
    store = str(tmp_path / "store")
    flags = ["--json", "--quiet", "--store", store, "--scheduler", dask_cluster.address]
    process = subprocess.Popen(
        [*WFKIT, "run", str(path), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # two in flight: items 0 and 1 go first (four at once could let 2 and 3 take both
    # workers, Dask's priorities being per worker); 2 and 3 then wait for the resume
    try:
        _wait_for(marks / "ran", 2)
        _wait_for_items_stored(tmp_path / "store", "item:fan:0", "item:fan:1")
    finally:
        process.kill()
        process.communicate(timeout=30)
    (marks / "resumed").touch()
    with (marks / "ran").open("a") as ran_file:
        ran_file.write("resume\n")
    runs = json.loads(_wfkit("runs", "--json", "--store", store))
    assert [r["status"] for r in runs] == ["interrupted"]
    done = subprocess.run(
        [*WFKIT, "resume", runs[0]["run_id"], *flags],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"]["raw"]["results"] == [0, 1, 2, 3]
    before, after = (part.split() for part in (marks / "ran").read_text().split("resume"))
    assert sorted(after) == ["2", "3"]  # only the unfinished items ran again
    assert {"0", "1"} <= set(before)


def test_without_a_scheduler_a_local_cluster_runs_the_items(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    path = write(
        tmp_path,
        """
        name: cluster
        state_schema: {raw: {parents: array}}
        steps:
          - id: fan
            type: parallel_foreach
            items: [0, 1, 2]
            sub_agent_task: t
            state_update:
              path: raw.parents
              value: "{{ result | map(attribute='state.raw.parent') | list }}"
        sub_agent_tasks:
          t:
            inputs: {item: {type: integer}}
            state_schema: {raw: {parent: integer}}
            steps:
              - id: sh
                type: shell_command
                command: "echo $PPID"
                state_update: {path: raw.parent, value: "{{ result.stdout | trim | int }}"}
        """,
    )
    env = {k: v for k, v in os.environ.items() if k != "WFKIT_DASK_SCHEDULER"}
    process = subprocess.Popen(
        [*WFKIT, "run", str(path), "--json", "--quiet", "--executor", "dask"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err
    parents = json.loads(out)["state"]["raw"]["parents"]
    assert len(parents) == 3
    assert all(isinstance(p, int) for p in parents)
    assert process.pid not in parents  # not the coordinator: the cluster's worker processes
    for pid in set(parents):  # the cluster's workers were closed with the run
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid)


def test_a_secret_in_a_dask_item_is_masked(
    dask_cluster: Cluster, tmp_path: Path, isolated_store: Path
) -> None:
    token = "tok_CANARY_dask"
    path = write(
        tmp_path,
        """
        name: secretive
        inputs: {token: {type: string, secret: true}}
        steps:
          - id: fan
            type: parallel_foreach
            items: "{{ [token, token] }}"
            sub_agent_task: t
            on_item_error: continue
        sub_agent_tasks:
          t:
            inputs: {item: {type: string}}
            steps:
              - {id: sh, type: shell_command, command: 'echo "got {{ item }}"; exit 3'}
        """,
    )
    report = run_workflow(path, {"token": token}, executor="dask", scheduler=dask_cluster.address)
    assert report.errors
    assert token not in report.model_dump_json()
    for file in isolated_store.rglob("*"):
        if file.is_file():
            assert token.encode() not in file.read_bytes(), file
