"""Step output, logs, cancel, prune and resume through the real ``wfkit`` entry point, with
a second process doing what a user in another terminal would."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import started_run_id, wait_until

ARGV = [sys.executable, "-m", "wfkit"]
HANG = 60  # seconds: a bound that turns a hang into a failure, never a speed assert


def wfkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ARGV, *args], capture_output=True, text=True, timeout=HANG * 2, check=False
    )


@contextlib.contextmanager
def start(*args: str) -> Iterator[subprocess.Popen[str]]:
    """A wfkit process in the background; killed (if still running) and reaped at the end."""
    with subprocess.Popen(
        [*ARGV, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def store_rows(store: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(store / "runs.db") as db:
        return db.execute(sql).fetchall()


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def flow(tmp_path: Path, text: str) -> str:
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return str(path)


PYTEST_LIKE = """
name: ci
steps:
  - id: tests
    type: shell_command
    command: >-
      echo "collected 3 items";
      echo "FAILED tests/test_api.py::test_login - assert 401 == 200";
      echo "1 failed, 2 passed in 0.12s";
      echo "warning: cache dir not writable" >&2;
      exit 1
"""


def test_a_failing_test_runners_stdout_reason_is_in_errors_and_logs(tmp_path: Path) -> None:
    done = wfkit("run", flow(tmp_path, PYTEST_LIKE), "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    [error] = report["errors"]
    message = error["message"]  # ends with the last lines of stderr, then of stdout
    assert message.endswith(
        "\nstderr:\n  warning: cache dir not writable\nstdout:\n  collected 3 items\n"
        "  FAILED tests/test_api.py::test_login - assert 401 == 200\n"
        "  1 failed, 2 passed in 0.12s"
    )
    assert error["details"]["stdout_tail"].endswith("1 failed, 2 passed in 0.12s")
    assert error["details"]["stderr_tail"] == "warning: cache dir not writable"
    assert f"run {report['run_id']} started" in done.stderr

    logs = json.loads(wfkit("logs", report["run_id"], "--json").stdout)
    [attempt] = logs["attempts"]
    assert (attempt["step_id"], attempt["attempt"], attempt["exit_code"]) == ("tests", 1, 1)
    assert "test_login - assert 401 == 200" in attempt["stdout"]
    human = wfkit("logs", report["run_id"], "tests")
    assert human.returncode == 0
    assert "stdout| FAILED tests/test_api.py::test_login - assert 401 == 200" in human.stdout
    assert "stderr| warning: cache dir not writable" in human.stdout


def test_logs_follow_from_a_second_process(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    path = flow(
        tmp_path,
        f"""
        name: slow
        steps:
          - id: build
            type: shell_command
            command: "echo compiling; while [ ! -e {gate} ]; do sleep 0.05; done; echo linked"
        """,
    )
    with start("run", path, "--json") as run:
        run_id = started_run_id(run)
        with start("logs", run_id, "--follow") as follow:
            assert follow.stdout is not None
            seen = []
            while not any("stdout| compiling" in line for line in seen):  # while it still runs
                line = follow.stdout.readline()
                assert line, "logs --follow ended before the output came"
                seen.append(line)
            assert not gate.exists()
            with start("logs", run_id, "--follow") as impatient:
                assert impatient.stdout is not None
                assert "compiling" in "".join(impatient.stdout.readline() for _ in range(2))
                impatient.send_signal(signal.SIGINT)  # Ctrl-C ends the follow, not the run
                _, err = impatient.communicate(timeout=HANG)
                assert (impatient.returncode, "Traceback" in err) == (130, False)
            gate.touch()
            rest, _ = follow.communicate(timeout=HANG)
            assert follow.returncode == 0
            assert "stdout| linked" in rest
        assert run.wait(timeout=HANG) == 0


def test_cancel_from_a_second_process_ends_a_step_that_ignores_sigterm(tmp_path: Path) -> None:
    marker = tmp_path / "finally-ran"
    pids = tmp_path / "pids"
    path = flow(
        tmp_path,
        f"""
        name: stubborn
        steps:
          - id: hold
            type: shell_command
            command: "trap '' TERM; echo $$ > {pids}; echo holding; sleep 300; echo never"
          - {{id: after, type: shell_command, command: "echo after"}}
        finally:
          - id: tidy
            type: shell_command
            command: "echo {{{{ workflow.status }}}} > {marker}"
        """,
    )
    with start("run", path, "--json") as run:
        run_id = started_run_id(run)
        wait_until(lambda: pids.exists() and pids.read_text().strip() != "", "the step to start")
        cancelled = wfkit("cancel", run_id, "--json")
        assert cancelled.returncode == 0, cancelled.stderr
        assert json.loads(cancelled.stdout) == {
            "run_id": run_id,
            "status": "cancelled",
            "signalled": False,  # the store request did it, no signal needed
        }
        out, _ = run.communicate(timeout=HANG)
    assert run.returncode == 1
    report = json.loads(out)
    assert report["status"] == "cancelled"
    assert "after" not in [s["id"] for s in report["steps"]]
    assert marker.read_text().strip() == "cancelled"
    shell_pid = int(pids.read_text())
    assert group_members(shell_pid) == []  # its whole group was ended (`sleep` included)
    logs = json.loads(wfkit("logs", run_id, "hold", "--json").stdout)
    assert [(a["status"], a["stdout"]) for a in logs["attempts"]] == [("cancelled", "holding")]
    listed = json.loads(wfkit("runs", "--status", "cancelled", "--json").stdout)
    assert [r["run_id"] for r in listed] == [run_id]


def test_cancel_refuses_a_finished_run(tmp_path: Path) -> None:
    done = json.loads(wfkit("run", flow(tmp_path, PYTEST_LIKE), "--json").stdout)
    refused = wfkit("cancel", done["run_id"])
    assert refused.returncode == 2
    assert "is not running (it is failed)" in " ".join(refused.stderr.split())


def test_prune_leaves_a_consistent_smaller_store(tmp_path: Path) -> None:
    store = Path(os.environ["WFKIT_STORE"])
    path = flow(
        tmp_path,
        """
        name: noisy
        steps:
          - {id: out, type: shell_command, command: "seq 1 40000"}
        """,
    )
    ids = [json.loads(wfkit("run", path, "--json").stdout)["run_id"] for _ in range(4)]
    size = (store / "runs.db").stat().st_size
    dry = json.loads(wfkit("prune", "--keep", "1", "--dry-run", "--json").stdout)
    assert sorted(r["run_id"] for r in dry["runs"]) == sorted(ids[:3])
    assert len(json.loads(wfkit("runs", "--json").stdout)) == 4
    pruned = wfkit("prune", "--keep", "1", "--json")
    assert pruned.returncode == 0, pruned.stderr
    result = json.loads(pruned.stdout)
    assert result["bytes_after"] < result["bytes_before"]
    assert (store / "runs.db").stat().st_size < size * 0.6  # the space is reclaimed
    assert [r["run_id"] for r in json.loads(wfkit("runs", "--json").stdout)] == [ids[3]]
    assert store_rows(store, "PRAGMA integrity_check") == [("ok",)]
    for table in ("steps", "outputs", "output_chunks", "checkpoints", "messages", "errors"):
        orphans = store_rows(
            store, f"SELECT COUNT(*) FROM {table} WHERE run_id NOT IN (SELECT run_id FROM runs)"
        )
        assert orphans == [(0,)], table
    kept = json.loads(wfkit("logs", ids[3], "--json").stdout)["attempts"][0]
    assert kept["stdout"].startswith("1\n2\n")
    assert kept["stdout"].endswith("39999\n40000")
    assert kept["stdout_dropped"] > 0


def test_kill_during_a_retry_wait_then_resume_makes_the_budgeted_attempts(
    tmp_path: Path,
) -> None:
    store = Path(os.environ["WFKIT_STORE"])
    log = tmp_path / "attempts.log"
    path = flow(
        tmp_path,
        f"""
        name: flaky
        steps:
          - id: call
            type: shell_command
            command: "echo try >> {log}; exit 1"
            on_error: retry
            retry_count: 2
            retry_delay: 600000
            retry_backoff: 1
            retry_jitter: 0
        """,
    )  # a wait long enough that the kill always lands in it, however loaded the machine
    with start("run", path, "--json") as run:
        run_id = started_run_id(run)
        wait_until(  # the first attempt failed and its count is checkpointed: the run waits
            lambda: (
                store_rows(
                    store,
                    "SELECT value FROM checkpoint_values WHERE tier = 'memory'"
                    f" AND name = 'attempts:call' AND run_id = '{run_id}'",
                )
                == [("1",)]
            ),
            "the retry wait",
        )
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=HANG)
    assert log.read_text().split() == ["try"]
    # the resume waits too: shorten the delay (not the structure, so resume accepts the edit)
    edited = Path(path).read_text().replace("retry_delay: 600000", "retry_delay: 1")
    Path(path).write_text(edited)
    resumed = wfkit("resume", run_id, "--json")
    assert resumed.returncode == 1
    report = json.loads(resumed.stdout)
    assert log.read_text().split() == ["try"] * 3  # 3 attempts in all, not 1 + 3
    [step] = report["steps"]
    assert (step["id"], step["status"], step["attempts"]) == ("call", "failed", 3)
    assert [e["details"]["attempt"] for e in report["errors"]] == [1, 2, 3]
    attempts = json.loads(wfkit("logs", run_id, "--json").stdout)["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]


def test_output_of_a_step_killed_mid_way_is_kept(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    path = flow(
        tmp_path,
        f"""
        name: crash
        steps:
          - id: work
            type: shell_command
            command: "echo $$ > {pids}; echo partial result; sleep 300"
        """,
    )

    def stored() -> list[tuple[str, str]]:
        logs = json.loads(wfkit("logs", run_id, "--json").stdout)
        return [(a["status"], a["stdout"]) for a in logs["attempts"]]

    with start("run", path, "--json") as run:
        run_id = started_run_id(run)
        # the step prints once and goes quiet: its line still reaches the store
        wait_until(lambda: stored() == [("running", "partial result")], "the line in the store")
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=HANG)
    os.killpg(int(pids.read_text()), signal.SIGKILL)  # the engine died: nobody ended its step
    assert stored() == [("interrupted", "partial result")]
