"""What only the SQLite store does: paths, files, its read-only mode; the rest of the
contract is in test_contract.py, run against every store."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

from wfkit.engine.events import RunStarted
from wfkit.errors import RunNotFoundError, StoreError
from wfkit.store.sqlite import SCHEMA_VERSION, RunStore, new_run_id, resolve_store_path


def started(run_id: str, at: float) -> RunStarted:
    return RunStarted(run_id, "wf", "f.yaml", "d1", {"a": 1}, at)


def test_a_newer_schema_without_a_word_on_writers_is_only_read(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    RunStore(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE schema_compat")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=f"writing it needs schema {SCHEMA_VERSION + 1}"):
        RunStore(path)
    RunStore(path, read_only=True).close()


def test_a_store_of_schema_3_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    """The schema before leases: its runs read as before (no lease), the first writer adds
    the lease column and the new tables."""
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        store(started("r1", 1.0))
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE runs DROP COLUMN lease_until")
    db.execute("ALTER TABLE runs DROP COLUMN parent")
    db.execute("DROP TABLE sources")
    db.execute("DROP TABLE schema_compat")
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="older wfkit"):
        RunStore(path, read_only=True)
    with RunStore(path) as store:
        row = store.get_run("r1")
        assert (row.status, row.lease_left) == ("running", None)
        store.keep_source("d1", "name: wf")
        store.commit()
        assert store.source("d1") == "name: wf"
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert db.execute("SELECT writable_from FROM schema_compat").fetchall() == [(1,)]
    db.close()


def test_unusable_store_path_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError):
        RunStore(blocker / "sub" / "runs.db")


def test_store_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_store_path(tmp_path) == tmp_path / "runs.db"
    assert resolve_store_path(tmp_path / "x.db") == tmp_path / "x.db"
    monkeypatch.setenv("WFKIT_STORE", str(tmp_path / "env"))
    assert resolve_store_path(None) == tmp_path / "env" / "runs.db"
    monkeypatch.delenv("WFKIT_STORE")
    assert resolve_store_path(None) == Path(".wfkit") / "runs.db"


def test_run_ids_are_unique_and_sortable() -> None:
    ids = {new_run_id() for _ in range(200)}
    assert len(ids) == 200


def test_a_read_only_store_creates_and_writes_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "runs.db"
    with RunStore(missing, read_only=True) as store:
        assert store.missing is True
        assert store.list_runs() == []
        with pytest.raises(RunNotFoundError):
            store.get_run("x")
    assert not (tmp_path / "nowhere").exists()
    with RunStore(tmp_path / "s") as store:
        store(started("20260101-000000-aaaaaa", 1.0))
    with RunStore(tmp_path / "s", read_only=True) as store:
        assert [r.run_id for r in store.list_runs()] == ["20260101-000000-aaaaaa"]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store._db.execute("DELETE FROM runs")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="is not a folder"):
        RunStore(blocker / "sub" / "runs.db", read_only=True)


def test_a_reused_pid_is_not_the_runs_process(tmp_path: Path) -> None:
    """A run whose process died, its pid taken by another process: the run is interrupted,
    and cancel never signals the stranger."""
    from wfkit.commands._runs import effective_status, run_process_alive
    from wfkit.commands.manage import cancel_run

    stranger = subprocess.Popen(["sleep", "60"])  # the process the pid now belongs to
    try:
        with RunStore(tmp_path / "s") as store:
            store(started("20260101-000000-aaaaaa", 1.0))
            store.commit()
            row = store.get_run("20260101")
            assert run_process_alive(row) is True  # this very process, identity and all
            store.db.execute(
                "UPDATE runs SET pid = ?, process = ? WHERE run_id = ?",
                (stranger.pid, "host/boot/1", row.run_id),
            )
            reused = store.get_run("20260101")
            assert run_process_alive(reused) is None  # another machine: cannot tell
            store.db.execute(
                "UPDATE runs SET process = ? WHERE run_id = ?",
                (f"{socket.gethostname()}/boot/1", row.run_id),
            )
            reused = store.get_run("20260101")
            assert run_process_alive(reused) is False
            assert effective_status(reused) == "interrupted"
        result = cancel_run("20260101", store=tmp_path / "s", wait=0.1)
        assert (result.status, result.signalled) == ("cancelled", False)
        assert stranger.poll() is None, "cancel signalled a process that is not the run's"
    finally:
        stranger.kill()
        stranger.wait()
