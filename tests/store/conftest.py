"""Store specs for the contract suite: a SQLite path, or a fresh database of a throwaway
PostgreSQL cluster started once per session (``tests.pg_cluster``)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg_cluster import Cluster, ClusterUnavailableError, start_cluster

_databases = itertools.count()


def cluster_or_skip(settings: dict[str, str]) -> Cluster:
    """A started cluster; the test is skipped without the binaries (failed under CI)."""
    try:
        return start_cluster(settings)
    except ClusterUnavailableError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true needs a PostgreSQL server for the store tests: {exc}")
        pytest.skip(f"no PostgreSQL: {exc}")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster for the session."""
    cluster = cluster_or_skip({"fsync": "off", "synchronous_commit": "off"})
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the test's store is: a SQLite path, or the URL of an empty PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "contract" / "runs.db")
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"contract_{os.getpid()}_{next(_databases)}")
