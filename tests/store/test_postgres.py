"""What only the PostgreSQL store does: migrations between versions, deadlocks broken by the
server and run again."""

from __future__ import annotations

import threading

import pytest

from tests.pg_cluster import Cluster
from wfkit.errors import StoreError
from wfkit.store import open_store, postgres
from wfkit.store.base import Db

_names = iter(range(1_000_000))
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))"


@pytest.fixture
def url(pg_cluster: Cluster) -> str:
    return pg_cluster.create_database(f"pg_only_{next(_names)}")


def test_an_older_schema_is_migrated_by_a_writer_only(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_store(url).close()  # the current version
    current = postgres.SCHEMA_VERSION
    monkeypatch.setattr(postgres, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(postgres.MIGRATIONS, current + 1, ["ALTER TABLE runs ADD COLUMN note TEXT"])
    with pytest.raises(StoreError, match="older wfkit"):
        open_store(url, read_only=True)
    open_store(url, create=False).close()  # a command that writes migrates it
    with open_store(url, read_only=True) as store:
        assert store.missing is False
    import psycopg

    with psycopg.connect(url) as db:
        assert db.execute("SELECT version FROM schema_version ORDER BY 1").fetchall() == [
            (v,) for v in range(1, current + 2)
        ]
        db.execute("SELECT note FROM runs")  # the migration's column exists


def test_a_transaction_aborted_by_a_deadlock_runs_again(url: str) -> None:
    """Two writers lock two runs in opposite orders: the server aborts one, which runs its
    transaction again once the other has committed."""
    first, second = open_store(url), open_store(url)
    barrier = threading.Barrier(2)
    calls: list[str] = []
    failures: list[BaseException] = []

    def writer(store: object, a: str, b: str) -> None:
        def work(db: Db) -> None:
            calls.append(a)
            db.one(LOCK, (a,))  # read: the statement goes out now, not with the commit
            if len(calls) <= 2:  # the first attempts meet, each holding one lock
                barrier.wait(timeout=60)
            db.one(LOCK, (b,))

        try:
            store._write(work)  # type: ignore[attr-defined]
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [
        threading.Thread(target=writer, args=(first, "x", "y")),
        threading.Thread(target=writer, args=(second, "y", "x")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    first.close()
    second.close()
    assert failures == []
    assert len(calls) == 3  # one of them ran a second time


def test_a_deadlock_every_time_gives_up_with_a_store_error(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wfkit.store import sql

    monkeypatch.setattr(sql, "WRITE_ATTEMPTS", 2)
    attempts = []

    def work(db: Db) -> None:
        attempts.append(1)
        raise sql.RetryableError("deadlock detected")

    with open_store(url) as store, pytest.raises(StoreError, match="deadlock"):
        store._write(work)  # type: ignore[attr-defined]
    assert len(attempts) == 2
