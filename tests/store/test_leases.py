"""A team's runs on any machine: leases instead of pids, and resume where the file is not.

Teammates are other host names (``unshare -u``, root only: skipped elsewhere, failed under
``CI=true``), on both stores; every process is a real ``wfkit``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import started_run_id, wait_until
from tests.store.test_contract import ARGV, HANG, env_for, query

SLOW = """
name: team
steps:
  - {id: one, type: shell_command, command: "echo one"}
  - id: slow
    type: shell_command
    command: "test -e {marker} || sleep 300"
  - {id: three, type: shell_command, command: "echo three"}
"""


def _can_rename_host() -> str | None:
    done = subprocess.run(
        ["unshare", "-u", "sh", "-c", "hostname wfkit-probe"],
        capture_output=True,
        check=False,
    )
    return None if done.returncode == 0 else done.stderr.decode(errors="replace").strip()


@pytest.fixture(autouse=True)
def _hosts() -> None:
    why = _can_rename_host()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true runs the team tests as root (unshare -u): {why}")
        pytest.skip(f"other host names need unshare -u (root): {why}")


def on_host(host: str, *args: str) -> list[str]:
    """``wfkit ARGS`` as a process of the machine ``host``."""
    return ["unshare", "-u", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *ARGV, *args]


def wfkit_on(
    host: str, spec: str, *args: str, lease: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = env_for(spec) | ({"WFKIT_LEASE": lease} if lease else {})
    return subprocess.run(
        on_host(host, *args), capture_output=True, text=True, timeout=HANG, check=False, env=env
    )


@contextmanager
def running_on(host: str, spec: str, *args: str, lease: str) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        on_host(host, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(spec) | {"WFKIT_LEASE": lease},
        start_new_session=True,
    ) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def status_on(host: str, spec: str, run_id: str) -> Any:
    done = wfkit_on(host, spec, "runs", "--json")
    assert done.returncode == 0, done.stderr
    return next(r["status"] for r in json.loads(done.stdout) if r["run_id"] == run_id)


def team_flow(tmp_path: Path, text: str = SLOW) -> tuple[Path, Path]:
    marker = tmp_path / "go"
    path = tmp_path / "alice" / "team.yaml"
    path.parent.mkdir()
    text = textwrap.dedent(text.replace("{marker}", str(marker))).lstrip()
    path.write_text(text, encoding="utf-8")
    return path, marker


def test_a_dead_coordinators_run_is_resumed_and_cancelled_from_another_host(
    store_spec: str, tmp_path: Path
) -> None:
    """kill -9 under one host name; once the lease ran out the run is interrupted for every
    host: another resumes it (completed steps not again), and cancels a second one."""
    path, marker = team_flow(tmp_path)
    killed = []
    for _ in range(2):
        with running_on("alice-host", store_spec, "run", str(path), lease="2") as run:
            started = started_run_id(run, HANG)
            wait_until(
                lambda run_id=started: status_on("bob-host", store_spec, run_id) == "running",
                "a lease",
            )
            os.killpg(run.pid, signal.SIGKILL)
        killed.append(started)
    for run_id in killed:  # never through the pid: bob's machine cannot see alice's
        wait_until(
            lambda run_id=run_id: status_on("bob-host", store_spec, run_id) == "interrupted",
            "the lease to run out",
            hang=HANG,
        )
    marker.touch()
    resumed = wfkit_on("bob-host", store_spec, "resume", killed[0], "--json")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["status"] == "succeeded"
    assert {s["id"]: s["executions"] for s in report["steps"]} == {"one": 1, "slow": 1, "three": 1}
    cancelled = wfkit_on("bob-host", store_spec, "cancel", killed[1], "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "cancelled"


def test_a_live_run_on_another_host_is_never_taken_over(store_spec: str, tmp_path: Path) -> None:
    path, _ = team_flow(tmp_path)
    with running_on("alice-host", store_spec, "run", str(path), "--json", lease="30") as run:
        run_id = started_run_id(run, HANG)
        refused = wfkit_on("bob-host", store_spec, "resume", run_id, "--force")
        assert refused.returncode == 2
        assert "it is running" in refused.stderr
        assert status_on("bob-host", store_spec, run_id) == "running"
        cancelled = wfkit_on("bob-host", store_spec, "cancel", run_id, "--json")
        assert json.loads(cancelled.stdout)["status"] == "cancelled"  # through the store
        out, _ = run.communicate(timeout=HANG)
    assert json.loads(out)["status"] == "cancelled"


def test_a_coordinator_that_lost_its_lease_stops_and_writes_nothing_more(
    store_spec: str, tmp_path: Path
) -> None:
    """Frozen past its lease, alice's run is resumed by bob; when alice wakes she learns it
    at her next renewal, stops with a clear error, and bob's outcome stands."""
    path, marker = team_flow(tmp_path)
    with running_on("alice-host", store_spec, "run", str(path), lease="2") as run:
        run_id = started_run_id(run, HANG)
        os.killpg(run.pid, signal.SIGSTOP)
        try:
            wait_until(
                lambda: status_on("bob-host", store_spec, run_id) == "interrupted",
                "the lease to run out",
                hang=HANG,
            )
            marker.touch()
            resumed = wfkit_on("bob-host", store_spec, "resume", run_id, "--json")
            assert resumed.returncode == 0, resumed.stderr
        finally:
            os.killpg(run.pid, signal.SIGCONT)
        _, err = run.communicate(timeout=HANG)
    assert run.returncode == 2, err
    assert "taken over by another process" in err
    assert "Traceback" not in err
    assert status_on("bob-host", store_spec, run_id) == "succeeded"
    rows = query(store_spec, "SELECT step_id FROM steps WHERE run_id = ?", (run_id,))
    assert sorted(r[0] for r in rows) == ["one", "slow", "three"]  # nothing of alice's after


def test_resume_without_the_file_uses_the_recorded_text_or_another_copy(
    store_spec: str, tmp_path: Path
) -> None:
    path, marker = team_flow(tmp_path, SLOW.replace(" || sleep 300", ""))
    runs = []
    for _ in range(2):
        failed = wfkit_on("alice-host", store_spec, "run", str(path), "--json")
        assert failed.returncode == 1, failed.stderr
        runs.append(json.loads(failed.stdout)["run_id"])
    path_text = path.read_text(encoding="utf-8")
    path.unlink()  # alice's checkout is gone; bob has his own copy
    copy = tmp_path / "bob" / "team.yaml"
    copy.parent.mkdir()
    marker.touch()
    copy.write_text(path_text, encoding="utf-8")
    recorded = wfkit_on("bob-host", store_spec, "resume", runs[0], "--json")
    assert recorded.returncode == 0, recorded.stderr
    texts = [m["text"] for m in json.loads(recorded.stdout)["messages"]]
    assert any("resumed with the workflow text recorded with the run" in t for t in texts)
    other = wfkit_on("bob-host", store_spec, "resume", runs[1], "--workflow", str(copy), "--json")
    assert other.returncode == 0, other.stderr
    texts = [m["text"] for m in json.loads(other.stdout)["messages"]]
    assert any(f"resumed with {copy}" in t for t in texts)


def test_of_two_takeovers_of_one_run_exactly_one_wins(store_spec: str) -> None:
    """Two resumes (or a resume and a cancel) that saw the same interrupted run: the store
    lets one take it, and the other is told, never both running it."""
    from wfkit.engine.events import RunStarted
    from wfkit.store import open_store

    with open_store(store_spec) as store:
        store(RunStarted("r1", "wf", "f.yaml", "d1", {}, 1.0))
        store.commit()
    query(
        store_spec,
        "UPDATE runs SET pid = 1, process = 'gone-host/boot/1' WHERE run_id = ?",
        ("r1",),
    )
    with open_store(store_spec) as first, open_store(store_spec) as second:
        seen = first.get_run("r1")
        assert first.claim(seen)
        assert not second.claim(seen)  # it saw the run before the first took it
        assert not second.set_status("r1", "cancelled", seen=seen)
    assert query(store_spec, "SELECT status, pid FROM runs WHERE run_id = ?", ("r1",)) == [
        ("running", os.getpid())
    ]
