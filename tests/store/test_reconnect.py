"""A PostgreSQL store survives its server: a restart (``pg_ctl restart -m fast``) and
terminated backends in the middle of a run end with the run ``succeeded`` and every step row
stored exactly once; a server that stays away past ``WFKIT_STORE_RECONNECT`` stops the run
with one line naming it, and the run resumes once the server is back. A throwaway cluster of
its own, restarted and stopped by the tests; every run a real ``wfkit`` process."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.pg_cluster import Cluster
from tests.store.conftest import cluster_or_skip
from tests.store.test_contract import ARGV, HANG

ITERATIONS = 200

FLOW = f"""
name: long
steps:
  - id: loop
    type: foreach
    items: "{{{{ range({ITERATIONS}) | list }}}}"
    body:
      - {{id: sh, type: shell_command, command: "test -e GATE || sleep 0.05"}}
  - {{id: last, type: shell_command, command: "echo done"}}
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    started = cluster_or_skip({"fsync": "off"})
    try:
        yield started
    finally:
        started.stop()


def _database(cluster: Cluster, name: str) -> str:
    return cluster.create_database(f"{name}_{time.monotonic_ns()}")


def _rows(url: str, run_id: str | None = None) -> list[tuple[str, int]]:
    import psycopg

    with psycopg.connect(url, connect_timeout=30) as db:
        if db.execute("SELECT to_regclass('steps')").fetchone() == (None,):
            return []
        sql = "SELECT step_id, COUNT(*) FROM steps"
        sql += " WHERE run_id = %s" if run_id else ""
        return db.execute(
            sql + " GROUP BY step_id ORDER BY step_id", (run_id,) if run_id else ()
        ).fetchall()


def _executions(url: str) -> int:
    return sum(count for step, count in _rows(url) if step == "sh")


def _start(flow: Path, url: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*ARGV, "run", str(flow), "--json", "--store", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def _flow(tmp_path: Path) -> tuple[Path, Path]:
    gate = tmp_path / "gate"
    path = tmp_path / "long.yaml"
    path.write_text(FLOW.replace("GATE", str(gate)), encoding="utf-8")
    return path, gate


def _exactly_once(url: str, out: str, err: str) -> None:
    report = json.loads(out)
    assert report["status"] == "succeeded", err
    rows = dict(_rows(url, report["run_id"]))
    assert rows == {"loop": 1, "sh": ITERATIONS, "last": 1}
    assert "psycopg" not in err  # no library lines
    assert "Traceback" not in err


def _terminate_backends(url: str, cluster: Cluster) -> int:
    import psycopg

    with psycopg.connect(cluster.url(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = 'wfkit'",
            (url.rsplit("/", 1)[1],),
        ).fetchall()
    return len(rows)


def test_a_server_restart_mid_run_loses_nothing_and_repeats_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = _database(cluster, "restart")
    flow, _ = _flow(tmp_path)
    with _start(flow, url) as run:
        wait_until(lambda: _executions(url) >= 20, "the run to be under way", hang=HANG)
        cluster.pg_ctl("-m", "fast", "-t", "60", "restart")
        wait_until(lambda: _executions(url) >= 60, "the run to go on", hang=HANG)
        cluster.pg_ctl("-m", "fast", "-t", "60", "restart")
        out, err = run.communicate(timeout=HANG)
    assert run.returncode == 0, err
    _exactly_once(url, out, err)


def test_terminated_backends_are_replaced_and_every_batch_lands_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = _database(cluster, "terminate")
    flow, _ = _flow(tmp_path)
    terminated = 0
    with _start(flow, url) as run:
        wait_until(lambda: _executions(url) >= 10, "the run to be under way", hang=HANG)
        # often enough that a new connection is ended too, in a read, a write, or while
        # asking whether the write in flight committed
        while run.poll() is None and terminated < 30:
            terminated += _terminate_backends(url, cluster)
            time.sleep(0.1)
        out, err = run.communicate(timeout=HANG)
    assert terminated >= 3
    assert run.returncode == 0, out + err
    _exactly_once(url, out, err)


def test_a_server_away_past_the_budget_stops_the_run_which_resumes_later(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = _database(cluster, "away")
    flow, gate = _flow(tmp_path)
    with _start(flow, url, WFKIT_STORE_RECONNECT="3") as run:
        wait_until(lambda: _executions(url) >= 10, "the run to be under way", hang=HANG)
        cluster.pg_ctl("-m", "fast", "stop")
        try:
            out, err = run.communicate(timeout=HANG)
        finally:
            cluster.pg_ctl("-t", "60", "restart")  # started with its recorded options
    assert run.returncode == 2, err
    assert "Traceback" not in err
    assert "psycopg" not in err
    error = json.loads(out)["error"]
    assert error["type"] == "StoreError"
    assert f"lost the run store at 127.0.0.1:{cluster.port}/" in error["message"]
    assert "within 3 s" in error["message"]
    assert "Connection refused" in error["message"]
    assert "\n" not in error["message"]
    listed = subprocess.run(
        [*ARGV, "runs", "--json", "--store", url],
        capture_output=True,
        text=True,
        timeout=HANG,
        check=False,
    )
    assert listed.returncode == 0, listed.stdout
    (run_row,) = json.loads(listed.stdout)
    assert run_row["status"] == "interrupted"
    gate.touch()
    resumed = subprocess.run(
        [*ARGV, "resume", run_row["run_id"], "--json", "--store", url],
        capture_output=True,
        text=True,
        timeout=HANG,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    _exactly_once(url, resumed.stdout, resumed.stderr)


def test_runs_beyond_max_connections_wait_for_a_connection_and_all_succeed(
    tmp_path: Path,
) -> None:
    """Twelve runs at once against a server that takes four connections: the runs that
    find it full wait (a refused start used to fail: "sorry, too many clients already")."""
    small = cluster_or_skip(
        {"fsync": "off", "max_connections": "4", "superuser_reserved_connections": "0"}
    )
    try:
        url = small.create_database("full")
        flow = tmp_path / "short.yaml"
        flow.write_text(
            "name: short\nsteps:\n"
            "  - {id: a, type: shell_command, command: 'sleep 1'}\n"
            "  - {id: b, type: shell_command, command: 'echo b'}\n",
            encoding="utf-8",
        )
        runs = [_start(flow, url) for _ in range(12)]
        outcomes = []
        for run in runs:
            with run:
                _, err = run.communicate(timeout=HANG)
            outcomes.append((run.returncode, err))
        assert [code for code, _ in outcomes] == [0] * 12, outcomes
        assert {dict(_rows(url))["a"], dict(_rows(url))["b"]} == {12}
    finally:
        small.stop()
