"""A cluster as a team runs it: a scheduler lost in the middle of a fan-out ends the run
promptly, whatever ``on_item_error`` says, with one line naming the scheduler, and the run
resumes once the scheduler is back, running only the items that had not finished; items mean
by a relative path what they mean locally; a worker of another wfkit version is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.executors.conftest import Cluster, _require_distributed, free_port, running_cluster
from tests.executors.test_dask import WFKIT, _wait_for, _wait_for_items_stored

pytestmark = pytest.mark.slow

#: turns a hang into a failure: the run used to wait for its items for ever
HANG = 240

FLOW = """
name: lost
state_schema: {{raw: {{results: array}}}}
steps:
  - id: fan
    type: parallel_foreach
    items: [0, 1, 2, 3, 4, 5]
    sub_agent_task: t
    max_parallel: 4
    on_item_error: {policy}
    state_update:
      path: raw.results
      value: >-
        {{{{ result | selectattr('status', 'eq', 'succeeded') | map(attribute='index') | list }}}}
sub_agent_tasks:
  t:
    inputs: {{item: {{type: integer}}}}
    steps:
      - id: sh
        type: shell_command
        command: >-
          echo {{{{ item }}}} >> {marks}/ran;
          if [ {{{{ item }}}} -ge 2 ]; then
          n=0; while [ ! -e {marks}/back ] && [ $n -lt 3000 ]; do
          sleep 0.1; n=$((n + 1)); done; fi
"""


@pytest.mark.parametrize("policy", ["continue", "fail_fast"])
def test_a_lost_scheduler_ends_the_run_and_it_resumes_when_back(
    tmp_path: Path, policy: str
) -> None:
    _require_distributed()
    marks = tmp_path / "marks"
    marks.mkdir()
    path = tmp_path / "lost.yaml"
    path.write_text(textwrap.dedent(FLOW.format(policy=policy, marks=marks)), encoding="utf-8")
    store = tmp_path / "store"
    port = free_port()
    logs = tmp_path / "dask"
    logs.mkdir()
    with running_cluster(logs, port, nthreads=2) as cluster:
        flags = ["--json", "--quiet", "--store", str(store), "--scheduler", cluster.address]
        with subprocess.Popen(
            [*WFKIT, "run", str(path), *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as run:
            try:
                _wait_for_items_stored(store, "item:fan:0", "item:fan:1")
                _wait_for(marks / "ran", 4)  # two items waiting on each worker
                os.killpg(cluster.processes[0].pid, signal.SIGKILL)  # the scheduler
                out, err = run.communicate(timeout=HANG)
            finally:
                if run.poll() is None:
                    os.killpg(run.pid, signal.SIGKILL)
                    run.communicate()
    assert run.returncode == 1, err
    report = json.loads(out)
    assert report["status"] == "failed"
    assert report["error"]["type"] == "ExecutorLostError"
    assert f"127.0.0.1:{port}" in report["error"]["message"]
    assert "Traceback" not in err
    assert "distributed" not in err  # no library log lines
    (marks / "back").touch()
    with (marks / "ran").open("a") as ran:
        ran.write("resume\n")
    with running_cluster(logs, port) as cluster:
        done = subprocess.run(
            [*WFKIT, "resume", report["run_id"], *flags],
            capture_output=True,
            text=True,
            timeout=HANG,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"]["raw"]["results"] == [0, 1, 2, 3, 4, 5]
    _, after = (part.split() for part in (marks / "ran").read_text().split("resume"))
    assert sorted(after) == ["2", "3", "4", "5"]  # the finished items did not run again


RELATIVE = """
name: relative
steps:
  - id: fan
    type: parallel_foreach
    items: [1, 2]
    sub_agent_task: t
    state_update: {path: raw.read, value: "{{ result | map(attribute='state') | list }}"}
state_schema: {raw: {read: array}}
sub_agent_tasks:
  t:
    state_schema: {raw: {text: string}}
    steps:
      - id: read
        type: shell_command
        command: cat data.txt
        state_update: {path: raw.text, value: "{{ result.stdout | trim }}"}
"""


def test_relative_paths_mean_the_same_on_the_workers_as_locally(
    dask_cluster: Cluster, tmp_path: Path
) -> None:
    """Items' shell steps run in the folder wfkit was started from, not the worker's."""
    (tmp_path / "data.txt").write_text("here\n", encoding="utf-8")
    (tmp_path / "relative.yaml").write_text(RELATIVE, encoding="utf-8")
    states = []
    for flags in ([], ["--executor", "dask", "--scheduler", dask_cluster.address]):
        done = subprocess.run(
            [*WFKIT, "run", "relative.yaml", "--json", *flags],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=HANG,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        states.append(json.loads(done.stdout)["state"]["raw"]["read"])
    assert states[0] == states[1]
    assert [s["raw"]["text"] for s in states[1]] == ["here", "here"]


def test_a_worker_with_another_wfkit_version_is_refused_at_start(tmp_path: Path) -> None:
    _require_distributed()
    preload = tmp_path / "older.py"
    preload.write_text("import wfkit\nwfkit.__version__ = '0.0.1'\n", encoding="utf-8")
    (tmp_path / "relative.yaml").write_text(RELATIVE, encoding="utf-8")
    logs = tmp_path / "dask"
    logs.mkdir()
    with running_cluster(logs, worker_args=("--preload", str(preload))) as cluster:
        done = subprocess.run(
            [*WFKIT, "run", "relative.yaml", "--scheduler", cluster.address],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=HANG,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert "runs wfkit 0.0.1, this process wfkit" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
