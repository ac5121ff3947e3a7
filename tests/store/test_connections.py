"""A run gives its PostgreSQL connection back while it only waits: 64 runs, all waiting at
once for each other in a step, work against a server with ``max_connections=40``, where
runs that each held a connection for their whole life could never all start. A throwaway
cluster of its own; every run a real ``wfkit`` process."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg_cluster import Cluster
from tests.store.conftest import cluster_or_skip
from tests.store.test_contract import ARGV

RUNS = 64
MAX_CONNECTIONS = 40

#: every run waits in its step until all of them have arrived: they are running at once
FLOW = """
name: together
steps:
  - id: arrive
    type: shell_command
    timeout: 900
    command: "mktemp -p HERE >/dev/null; until [ $(ls HERE | wc -l) -ge RUNS ]; do sleep 0.2; done"
  - {id: last, type: shell_command, command: "echo done"}
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    started = cluster_or_skip({"fsync": "off", "max_connections": str(MAX_CONNECTIONS)})
    try:
        yield started
    finally:
        started.stop()


def _connections(url: str) -> int:
    import psycopg

    with psycopg.connect(url, connect_timeout=30) as db:
        row = db.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'wfkit'"
        ).fetchone()
    return int(row[0]) if row else -1


def test_more_runs_than_connections_all_run_at_once(cluster: Cluster, tmp_path: Path) -> None:
    url = cluster.create_database("connections")
    here = tmp_path / "arrived"
    here.mkdir()
    flow = tmp_path / "together.yaml"
    flow.write_text(FLOW.replace("HERE", str(here)).replace("RUNS", str(RUNS)), encoding="utf-8")
    # the schema first, so that 64 first runs do not all wait on one migration
    warm = tmp_path / "warm.yaml"
    warm.write_text("name: warm\nsteps:\n  - {type: shell_command, command: 'true'}\n")
    first = subprocess.run(
        [*ARGV, "run", str(warm), "--store", url],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    runs = [
        subprocess.Popen(
            [*ARGV, "run", str(flow), "--json", "--store", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "WFKIT_LEASE": "30"},
        )
        for _ in range(RUNS)
    ]
    outcomes = [run.communicate(timeout=1200) for run in runs]
    failed = [
        (out + err)[-600:] for run, (out, err) in zip(runs, outcomes, strict=True) if run.returncode
    ]
    assert not failed, failed[:3]
    assert len(list(here.iterdir())) == RUNS
    results = [json.loads(out) for out, _ in outcomes]
    assert {r["status"] for r in results} == {"succeeded"}
    assert len({r["run_id"] for r in results}) == RUNS
    import psycopg

    with psycopg.connect(url, connect_timeout=30) as db:
        rows = db.execute("SELECT step_id, COUNT(*) FROM steps GROUP BY step_id").fetchall()
    assert sorted(rows) == [("arrive", RUNS), ("last", RUNS), ("shell_command_1", 1)]
    assert _connections(url) == 0  # every run gave its connection back as it ended
