"""One contract for every run store: each test runs against SQLite and PostgreSQL.

``store_spec`` is a SQLite path or the URL of an empty PostgreSQL database. The commands run
as real ``wfkit`` processes, so what one process writes another reads, as on two machines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, started_run_id
from wfkit.engine.events import (
    BreakerChanged,
    ErrorRecord,
    ErrorRecorded,
    Message,
    RunFinished,
    RunStarted,
    StepFinished,
)
from wfkit.errors import RunNotFoundError, StoreError
from wfkit.store import open_store

ARGV = [sys.executable, "-m", "wfkit"]
HANG = 120  # seconds: turns a hang into a failure, never a speed assert


# helpers -----------------------------------------------------------------------------


def is_pg(spec: str) -> bool:
    return spec.startswith("postgresql://")


def query(spec: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Raw SQL on the store's database, past wfkit (``?`` placeholders)."""
    if is_pg(spec):
        import psycopg

        with psycopg.connect(spec, autocommit=True) as db:
            cursor = db.execute(sql.replace("?", "%s"), args)
            return cursor.fetchall() if cursor.description else []
    with contextlib.closing(sqlite3.connect(spec, isolation_level=None)) as db:
        return db.execute(sql, args).fetchall()


def tables(spec: str) -> set[str]:
    if is_pg(spec):
        return {
            r[0] for r in query(spec, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    if not Path(spec).exists():
        return set()
    return {r[0] for r in query(spec, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def schema_version(spec: str) -> int:
    if is_pg(spec):
        return int(query(spec, "SELECT MAX(version) FROM schema_version")[0][0])
    return int(query(spec, "PRAGMA user_version")[0][0])


def env_for(spec: str) -> dict[str, str]:
    return {**os.environ, "WFKIT_STORE": spec, "NO_COLOR": "1", "COLUMNS": "100"}


def wfkit(spec: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A ``wfkit`` process with the store in ``WFKIT_STORE``."""
    return subprocess.run(
        [*ARGV, *args], capture_output=True, text=True, timeout=HANG, check=False, env=env_for(spec)
    )


def wfkit_json(spec: str, *args: str) -> Any:
    done = wfkit(spec, *args, "--json")
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


@contextlib.contextmanager
def start(spec: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        [*ARGV, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(spec),
    ) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def flow(tmp_path: Path, text: str, name: str = "flow.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return str(path)


def started(run_id: str, at: float, workflow: str = "wf") -> RunStarted:
    return RunStarted(run_id, workflow, "f.yaml", "d1", {"a": 1}, at)


def finished(run_id: str, seq: int) -> StepFinished:
    return StepFinished(run_id, f"s{seq}", "state_update", "succeeded", 1, 0.1, float(seq))


# the store API -----------------------------------------------------------------------


def test_runs_are_listed_newest_first_and_found_by_prefix(store_spec: str) -> None:
    with open_store(store_spec) as store:
        store(started("20260101-000000-aaaaaa", 1.0))
        store(started("20260102-000000-bbbbbb", 2.0))
        store(RunFinished("20260101-000000-aaaaaa", "failed", {"raw": {}}, 5.0, 3.0, {"type": "X"}))
        assert [r.run_id for r in store.list_runs()] == [
            "20260102-000000-bbbbbb",
            "20260101-000000-aaaaaa",
        ]
        assert [r.run_id for r in store.list_runs(1)] == ["20260102-000000-bbbbbb"]
        assert [r.run_id for r in store.list_runs(statuses=["failed"], since=0.5)] == [
            "20260101-000000-aaaaaa"
        ]
        assert store.list_runs(workflow="other") == []
        row = store.get_run("20260101")
        assert (row.status, row.duration_ms, row.error, row.inputs) == (
            "failed",
            5.0,
            {"type": "X"},
            {"a": 1},
        )
        with pytest.raises(RunNotFoundError, match="ambiguous"):
            store.get_run("2026")
        with pytest.raises(RunNotFoundError, match="no run"):
            store.get_run("nope")
        with pytest.raises(RunNotFoundError, match="no run"):
            store.get_run("2026010_")  # LIKE wildcards in a prefix are plain characters


def test_a_child_run_names_its_parent(store_spec: str) -> None:
    with open_store(store_spec) as store:
        store(started("20260101-000000-parent", 1.0))
        for n, at in ((2, 3.0), (1, 2.0)):
            child = started(f"20260101-000000-child{n}", at, workflow="child")
            store(dataclasses.replace(child, parent="20260101-000000-parent"))
        assert store.children_of("20260101-000000-parent") == [
            "20260101-000000-child1",
            "20260101-000000-child2",
        ]
        assert store.get_run("20260101-000000-child1").parent == "20260101-000000-parent"
        assert store.get_run("20260101-000000-parent").parent is None
        assert store.children_of("20260101-000000-child1") == []


def test_large_checkpointed_values_are_committed_at_once(store_spec: str) -> None:
    """Checkpointed values past the pending bound go out at once (memory held for the next
    commit stays bounded), so another connection reads them before any later event."""
    from wfkit.engine.events import Checkpoint
    from wfkit.store.sql import PENDING_VALUE_CHARS

    run_id = "20260101-000000-bbbbbb"
    big = "x" * PENDING_VALUE_CHARS
    with open_store(store_spec) as store:
        store(started(run_id, 1.0))
        store(Checkpoint(run_id, "main", [{"i": 0}], {("raw", "big"): big}))
        with open_store(store_spec, create=False, read_only=True) as reader:
            saved = reader.load_frame(run_id, "main")
            assert saved is not None
            assert saved.raw["big"] == big


def test_text_the_database_cannot_hold_is_stored_as_escapes(store_spec: str) -> None:
    """A lone surrogate (not UTF-8) and, on PostgreSQL, NUL are refused by the database: they
    are written as ``\\udc80`` and ``\\x00`` so the run is recorded, never a traceback."""
    text = "bad \udc80 and \x00 end"
    with open_store(store_spec) as store:
        store(started("r\udcff", 1.0))
        store(Message("r\udcff", "s", "info", text, 1.0))
        store(finished("r\udcff", 1))
    with open_store(store_spec, read_only=True) as reader:
        (run,) = reader.list_runs()
        assert run.run_id == "r\\udcff"
        (message,) = reader.messages(run.run_id)
        nul = "\\x00" if is_pg(store_spec) else "\x00"
        assert message.text == f"bad \\udc80 and {nul} end"


def test_errors_and_messages_keep_their_order_across_connections(store_spec: str) -> None:
    record = ErrorRecord("s", "ToolError", "m", "trace", 1.0, 0, False, {"k": 1})
    with open_store(store_spec) as store:
        store(started("r", 1.0))
        store(ErrorRecorded("r", 0, record))
        store(Message("r", "s", "info", "hello", 1.0))
        store(finished("r", 1))
    with open_store(store_spec) as store:  # a resumed run continues the numbering
        store(ErrorRecorded("r", 1, record))
        store(Message("r", "s", "info", "again", 2.0))
        store(finished("r", 2))
        assert [e.details for e in store.errors("r")] == [{"k": 1}, {"k": 1}]
        assert [m.text for m in store.messages("r")] == ["hello", "again"]
        assert [h["step_id"] for h in store.step_history("r")] == ["s1", "s2"]


def test_two_writers_of_one_run_never_collide_on_step_numbers(store_spec: str) -> None:
    """Two stores (as two processes would) number rows of one run: a commit moves its rows
    past the other's, none is lost and none is duplicated."""
    with open_store(store_spec) as first, open_store(store_spec) as second:
        first(started("r", 1.0))
        first.commit()
        for n in range(3):
            first(finished("r", n))
            second(finished("r", 10 + n))
            second(Message("r", None, "info", f"m{n}", 1.0))
        first.commit()
        second.commit()
        first(finished("r", 99))  # the first store's count continues after the move too
        first.commit()
        history = [h["step_id"] for h in first.step_history("r")]
        assert sorted(history) == sorted(["s0", "s1", "s2", "s10", "s11", "s12", "s99"])
        assert history[-1] == "s99"
        assert [m.text for m in second.messages("r")] == ["m0", "m1", "m2"]
    seqs = query(store_spec, "SELECT seq FROM steps UNION ALL SELECT seq FROM messages")
    assert len(seqs) == len({s for (s,) in seqs}) == 10


def test_breaker_state_is_read_by_other_stores(store_spec: str) -> None:
    with open_store(store_spec) as store:
        store(BreakerChanged("r", "wf", "api", "open", 3, 100.0))
        store(BreakerChanged("r", "wf", "db", "closed", 0, 0.0))
        store.commit()
    with open_store(store_spec, create=False) as other:
        assert other.breakers("wf") == {
            "api": {"state": "open", "failures": 3, "opened_at": 100.0},
            "db": {"state": "closed", "failures": 0, "opened_at": 0.0},
        }
        other(BreakerChanged("r2", "wf", "api", "closed", 0, 0.0))
    with open_store(store_spec, read_only=True) as reader:
        assert reader.breakers("wf")["api"]["state"] == "closed"
        assert reader.breakers("other") == {}


def test_the_schema_is_created_on_first_use_and_reopening_changes_nothing(
    store_spec: str,
) -> None:
    assert tables(store_spec) == set()
    with open_store(store_spec) as store:
        assert store.missing is False
        assert store.list_runs() == []
    created = tables(store_spec)
    assert {
        "runs",
        "steps",
        "errors",
        "checkpoints",
        "checkpoint_values",
        "checkpoint_log",
    } <= created
    assert {
        "traces",
        "breakers",
        "outputs",
        "output_chunks",
        "cancel_requests",
        "messages",
    } <= created
    version = schema_version(store_spec)
    for _ in range(2):
        with open_store(store_spec) as store:
            store(started("r", 1.0))
            store.commit()
            store.delete_runs(["r"])
    assert (tables(store_spec), schema_version(store_spec)) == (created, version)
    if is_pg(store_spec):  # one row per applied migration, however often it was opened
        assert query(store_spec, "SELECT COUNT(*) FROM schema_version") == [(version,)]


def test_a_newer_additive_schema_is_read_and_written(store_spec: str) -> None:
    """A newer wfkit's migration that only adds (a table, a nullable column) leaves the store
    usable by this one: it reads and writes it, the newer column untouched."""
    with open_store(store_spec) as store:
        store(started("before", 1.0))
    query(store_spec, "ALTER TABLE runs ADD COLUMN newer_note TEXT")
    query(store_spec, "INSERT INTO schema_compat VALUES (999, 1, '9.9.9')")
    if is_pg(store_spec):
        query(store_spec, "INSERT INTO schema_version VALUES (999, 0)")
    else:
        query(store_spec, "PRAGMA user_version = 999")
    with open_store(store_spec) as store:
        store(started("after", 2.0))
        store.commit()
        assert [r.run_id for r in store.list_runs()] == ["after", "before"]
    assert schema_version(store_spec) == 999  # nothing migrated back


def test_a_newer_schema_this_wfkit_cannot_write_is_read_only(store_spec: str) -> None:
    with open_store(store_spec) as store:
        store(started("r", 1.0))
    query(store_spec, "INSERT INTO schema_compat VALUES (999, 999, '9.9.9')")
    if is_pg(store_spec):
        query(store_spec, "INSERT INTO schema_version VALUES (999, 0)")
    else:
        query(store_spec, "PRAGMA user_version = 999")
    with pytest.raises(
        StoreError,
        match=r"newer wfkit \(schema 999\); writing it needs schema"
        r" 999 \(wfkit 9\.9\.9 writes it\)",
    ):
        open_store(store_spec)
    with open_store(store_spec, read_only=True) as store:  # reads still work
        assert [r.run_id for r in store.list_runs()] == ["r"]
    done = wfkit(store_spec, "run", str(EXAMPLES / "hello.yaml"))
    assert done.returncode == 2
    assert "wfkit 9.9.9" in done.stderr
    assert "Traceback" not in done.stderr


def test_read_only_and_no_create_opens_create_nothing(store_spec: str) -> None:
    for kwargs in ({"read_only": True}, {"create": False}, {"read_only": True, "create": False}):
        with open_store(store_spec, **kwargs) as store:
            assert store.missing is True
            assert store.list_runs() == []
            assert store.breakers("wf") == {}
            assert store.size_bytes() == 0
            with pytest.raises(RunNotFoundError, match="no store there"):
                store.get_run("x")
    assert tables(store_spec) == set()
    if not is_pg(store_spec):
        assert not Path(store_spec).parent.exists()
    done = wfkit(store_spec, "runs", "--json")
    assert (done.returncode, json.loads(done.stdout)) == (0, [])
    assert tables(store_spec) == set()


def test_a_read_only_store_writes_nothing(store_spec: str) -> None:
    with open_store(store_spec) as store:
        store(started("20260101-000000-aaaaaa", 1.0))
    with open_store(store_spec, read_only=True) as store:
        assert store.missing is False
        assert [r.run_id for r in store.list_runs()] == ["20260101-000000-aaaaaa"]
        with pytest.raises(StoreError):
            store.request_cancel("20260101-000000-aaaaaa", "me")
    assert query(store_spec, "SELECT COUNT(*) FROM cancel_requests") == [(0,)]


def test_database_errors_are_store_errors(store_spec: str) -> None:
    """A table gone from under an open store: every kind of statement fails as a StoreError
    naming the store, never as a driver's exception."""
    with open_store(store_spec) as store:
        store(started("r", 1.0))
        store(finished("r", 1))  # numbered now, written at the commit below
        for table in ("cancel_requests", "runs", "steps"):
            query(store_spec, f"DROP TABLE {table}")
        with pytest.raises(StoreError, match="cancel_requests"):
            store.cancel_requested("r")  # one row
        with pytest.raises(StoreError, match="runs"):
            store._sql.all("SELECT run_id FROM runs")  # type: ignore[attr-defined]
        with pytest.raises(StoreError, match="steps"):
            store.commit()  # many rows


def test_health_reports_the_store(store_spec: str) -> None:
    from wfkit.commands.health import check_health

    [missing] = [c for c in check_health(store_spec).checks if c.name == "store"]
    assert (missing.ok, missing.detail.endswith("no runs yet")) == (True, True)
    with open_store(store_spec) as store:
        store(started("r", 1.0))
    [check] = [c for c in check_health(store_spec).checks if c.name == "store"]
    assert check.ok, check.detail
    assert "1 runs, integrity ok" in check.detail


# the commands, process to process ----------------------------------------------------

TRACED = """
name: traced
inputs:
  mode: {type: string, default: quick}
steps:
  - id: full_only
    type: shell_command
    if: "{{ mode == 'full' }}"
    command: echo full
  - id: shaky
    type: shell_command
    command: "echo trying; echo oops >&2; exit 3"
    on_error: continue
  - id: say
    type: shell_command
    command: "echo {{ mode }}"
"""


def test_a_run_is_read_by_every_command_from_other_processes(
    store_spec: str, tmp_path: Path
) -> None:
    path = flow(tmp_path, TRACED)
    first = wfkit_json(store_spec, "run", path, "--trace")
    second = wfkit_json(store_spec, "run", path, "--trace", "-i", "mode=full")
    assert (first["status"], second["status"]) == ("succeeded", "succeeded")
    if is_pg(store_spec):  # the test cluster's URL carries a password: never shown
        from wfkit.store.postgres import redact

        assert first["store"] == redact(store_spec) != store_spec
    listed = wfkit_json(store_spec, "runs")
    assert [r["run_id"] for r in listed] == [second["run_id"], first["run_id"]]
    debug = wfkit_json(store_spec, "debug", first["run_id"])
    assert [e["step_id"] for e in debug["errors"]] == ["shaky"]
    logs = wfkit_json(store_spec, "logs", first["run_id"], "shaky")
    assert [(a["stdout"], a["stderr"], a["exit_code"]) for a in logs["attempts"]] == [
        ("trying", "oops", 3)
    ]
    why = wfkit_json(store_spec, "why", first["run_id"], "full_only")
    assert (why["status"], why["executions"]) == ("skipped", 1), why
    trace = wfkit(store_spec, "trace", first["run_id"], "--json")
    assert trace.returncode == 0, trace.stderr
    diff = wfkit_json(store_spec, "diff", first["run_id"], second["run_id"])
    assert diff["first_divergence"] is not None, diff


def test_cancel_and_logs_follow_from_other_processes(store_spec: str, tmp_path: Path) -> None:
    path = flow(
        tmp_path,
        """
        name: holder
        steps:
          - id: hold
            type: shell_command
            command: "echo holding; sleep 300"
          - {id: after, type: shell_command, command: "echo after"}
        """,
    )
    with start(store_spec, "run", path, "--json") as run:
        run_id = started_run_id(run, HANG)
        with start(store_spec, "logs", run_id, "--follow") as follow:
            assert follow.stdout is not None
            line = follow.stdout.readline()
            while "holding" not in line:
                assert line, "logs --follow ended before the output came"
                line = follow.stdout.readline()
            cancelled = wfkit(store_spec, "cancel", run_id, "--json")
            assert cancelled.returncode == 0, cancelled.stderr
            assert json.loads(cancelled.stdout)["status"] == "cancelled"
            follow.communicate(timeout=HANG)
            assert follow.returncode == 0
        out, _ = run.communicate(timeout=HANG)
    report = json.loads(out)
    assert report["status"] == "cancelled"
    assert "after" not in [s["id"] for s in report["steps"]]
    listed = wfkit_json(store_spec, "runs", "--status", "cancelled")
    assert [r["run_id"] for r in listed] == [run_id]


def test_resume_from_another_process_continues_after_the_failure(
    store_spec: str, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    counter = tmp_path / "counter"
    path = flow(
        tmp_path,
        f"""
        name: resumable
        steps:
          - id: once
            type: shell_command
            command: "echo x >> {counter}"
          - id: gate
            type: shell_command
            command: "test -e {ready}"
          - {{id: last, type: shell_command, command: "echo done"}}
        """,
    )
    failed = wfkit_json(store_spec, "run", path)
    assert failed["status"] == "failed"
    ready.touch()
    resumed = wfkit_json(store_spec, "resume", failed["run_id"])
    assert resumed["status"] == "succeeded", resumed
    assert counter.read_text().count("x") == 1  # the finished step did not run again
    assert wfkit_json(store_spec, "runs")[0]["status"] == "succeeded"


def test_prune_deletes_every_row_of_the_runs_it_drops(store_spec: str, tmp_path: Path) -> None:
    path = flow(
        tmp_path, "name: p\nsteps:\n  - {id: say, type: shell_command, command: 'echo hi'}\n"
    )
    runs = [wfkit_json(store_spec, "run", path)["run_id"] for _ in range(3)]
    dry = wfkit_json(store_spec, "prune", "--keep", "1", "--dry-run")
    assert sorted(r["run_id"] for r in dry["runs"]) == sorted(runs[:2])
    pruned = wfkit_json(store_spec, "prune", "--keep", "1")
    assert sorted(r["run_id"] for r in pruned["runs"]) == sorted(runs[:2])
    assert [r["run_id"] for r in wfkit_json(store_spec, "runs")] == [runs[2]]
    for table in ("steps", "outputs", "output_chunks"):
        assert query(store_spec, f"SELECT DISTINCT run_id FROM {table}") == [(runs[2],)]


def test_a_breaker_opened_by_one_process_holds_in_the_next(store_spec: str, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    path = flow(
        tmp_path,
        f"""
        name: guarded
        config:
          circuit_breakers: {{api: {{failure_threshold: 1, reset_timeout: 600}}}}
        steps:
          - id: api
            type: shell_command
            command: "echo call >> {calls}; exit 1"
            circuit_breaker: api
            on_error: continue
        """,
    )
    first = wfkit_json(store_spec, "run", path)
    second = wfkit_json(store_spec, "run", path)
    assert [e["error_type"] for e in first["errors"]] == ["ShellCommandError"]
    assert [e["error_type"] for e in second["errors"]] == ["CircuitOpenError"]
    assert calls.read_text().count("call") == 1  # the second process never called
    assert query(store_spec, "SELECT state FROM breakers WHERE workflow = 'guarded'") == [("open",)]


@pytest.mark.slow
def test_sixteen_processes_write_one_store_at_once(store_spec: str, tmp_path: Path) -> None:
    """16 coordinators start together on a fresh store (so they also race to create its
    schema): every run is stored whole, once."""
    path = flow(
        tmp_path,
        """
        name: busy
        state_schema:
          raw: {n: integer}
        steps:
          - type: foreach
            items: '{{ range(20) | list }}'
            body:
              - {type: state_update, path: raw.n, operation: increment}
          - {id: say, type: shell_command, command: "echo {{ n }}"}
        """,
    )
    procs = [
        subprocess.Popen(
            [*ARGV, "run", path, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env_for(store_spec),
        )
        for _ in range(16)
    ]
    outputs = [p.communicate(timeout=HANG * 3) for p in procs]
    assert [p.returncode for p in procs] == [0] * 16, [o[1][-500:] for o in outputs]
    ids = {json.loads(o[0])["run_id"] for o in outputs}
    assert len(ids) == 16
    assert query(store_spec, "SELECT COUNT(*), COUNT(DISTINCT run_id) FROM runs") == [(16, 16)]
    assert query(store_spec, "SELECT status, COUNT(*) FROM runs GROUP BY status") == [
        ("succeeded", 16)
    ]
    per_run = query(
        store_spec, "SELECT run_id, COUNT(*), COUNT(DISTINCT seq) FROM steps GROUP BY run_id"
    )
    assert sorted(r[0] for r in per_run) == sorted(ids)
    assert {(r[1], r[2]) for r in per_run} == {(22, 22)}  # foreach + 20 bodies + say
    chunks = query(store_spec, "SELECT run_id, data FROM output_chunks")
    assert sorted(r[0] for r in chunks) == sorted(ids)
    assert {bytes(r[1]) for r in chunks} == {b"20\n"}
    with open_store(store_spec, read_only=True) as store:
        assert {r.status for r in store.list_runs(-1)} == {"succeeded"}
