"""The run store: one SQLite database (WAL) under ``.wfkit/``.

Tables: ``runs`` (one row per run: status, inputs, final state, position), ``steps`` (one row
per step execution), ``errors`` (one row per failed attempt) and ``messages``. Each run writes
through its own connection; WAL plus a busy timeout lets several ``wfkit run`` processes share
one store. A schema version in ``PRAGMA user_version`` lets later releases migrate it.

Writes are grouped: rows collect in one open transaction that commits before and after every
step with external effects (``effectful`` events), when a run starts or ends, and at least every
``COMMIT_INTERVAL`` seconds. A crash can therefore lose only the rows of pure, in-memory steps
since the last commit, and replaying those from the committed state is indistinguishable from
their first execution.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wfkit.core.events import (
    BreakerChanged,
    ErrorRecord,
    ErrorRecorded,
    ErrorsRecovered,
    Event,
    Message,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
)
from wfkit.errors import RunNotFoundError, StoreError

SCHEMA_VERSION = 1
DEFAULT_DIR = ".wfkit"
COMMIT_INTERVAL = 0.2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    workflow    TEXT NOT NULL,
    file        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    status      TEXT NOT NULL,
    inputs      TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    duration_ms REAL,
    state       TEXT,
    error       TEXT,
    position    TEXT,
    pid         INTEGER
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started_at DESC);
CREATE TABLE IF NOT EXISTS steps (
    run_id      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    step_id     TEXT NOT NULL,
    step_type   TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    duration_ms REAL NOT NULL,
    finished_at REAL NOT NULL,
    error_type  TEXT,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS errors (
    run_id      TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    step_id     TEXT NOT NULL,
    error_type  TEXT NOT NULL,
    message     TEXT NOT NULL,
    stack_trace TEXT,
    timestamp   REAL NOT NULL,
    retry_count INTEGER NOT NULL,
    recovered   INTEGER NOT NULL,
    details     TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
);
CREATE TABLE IF NOT EXISTS breakers (
    workflow    TEXT NOT NULL,
    name        TEXT NOT NULL,
    state       TEXT NOT NULL,
    failures    INTEGER NOT NULL,
    opened_at   REAL NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (workflow, name)
);
CREATE TABLE IF NOT EXISTS messages (
    run_id    TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    step_id   TEXT,
    level     TEXT NOT NULL,
    text      TEXT NOT NULL,
    timestamp REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""


def default_store_path() -> Path:
    """``$WFKIT_STORE``, else ``.wfkit/runs.db`` under the working directory."""
    env = os.environ.get("WFKIT_STORE")
    if env:
        path = Path(env)
        return path / "runs.db" if path.is_dir() or not path.suffix else path
    return Path(DEFAULT_DIR) / "runs.db"


def resolve_store_path(store: str | Path | None) -> Path:
    """A store given as a directory or a file; ``None`` for the default."""
    if store is None:
        return default_store_path()
    path = Path(store)
    return path / "runs.db" if path.is_dir() or not path.suffix else path


@dataclass(frozen=True)
class RunRow:
    """A run as stored."""

    run_id: str
    workflow: str
    file: str
    digest: str
    status: str
    inputs: dict[str, Any]
    started_at: float
    finished_at: float | None
    duration_ms: float | None
    state: dict[str, Any] | None
    error: dict[str, Any] | None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


class RunStore:
    """Access to one store file; cheap to open, one per run or command."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = resolve_store_path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.path} was written by a newer wfkit (schema {version})"
                )
            if version < SCHEMA_VERSION:
                with self.transaction():  # executescript would commit: run statements one by one
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open run store {self.path}: {exc}") from exc
        self._seq: dict[str, int] = {}
        self._open_since: float | None = None  # when the open write transaction began

    def close(self) -> None:
        """Commit what is pending and close the connection."""
        try:
            self.commit()
        finally:
            self._db.close()

    def commit(self) -> None:
        """Make every write so far durable (no-op when nothing is pending)."""
        if self._open_since is not None:
            self._open_since = None
            self._db.execute("COMMIT")

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _next(self, run_id: str) -> int:
        if run_id not in self._seq:  # a resumed run continues its numbering
            self._seq[run_id] = max(
                self._db.execute(
                    f"SELECT COALESCE(MAX(seq), 0) FROM {table} WHERE run_id = ?", (run_id,)
                ).fetchone()[0]
                for table in ("steps", "messages")
            )
        seq = self._seq[run_id] + 1
        self._seq[run_id] = seq
        return seq

    # writing: the store is an event sink ---------------------------------------------

    def __call__(self, event: Event) -> None:
        """Persist one engine event."""
        try:
            if isinstance(event, StepStarted):
                if event.effectful:
                    self.commit()  # the step's effects start from a durable position
                return
            if self._open_since is None:
                # IMMEDIATE takes the write lock now, under busy_timeout; a deferred BEGIN that
                # reads first can fail at once with SQLITE_BUSY_SNAPSHOT when another process
                # commits in between
                self._db.execute("BEGIN IMMEDIATE")
                self._open_since = time.monotonic()
            self._write(event)
            if (
                isinstance(event, (RunStarted, RunFinished))
                or getattr(event, "effectful", False)
                or time.monotonic() - self._open_since >= COMMIT_INTERVAL
            ):
                self.commit()
        except sqlite3.Error as exc:
            raise StoreError(f"run store {self.path}: {exc}") from exc

    def _write(self, event: Event) -> None:
        db = self._db
        if isinstance(event, StepFinished):
            db.execute(
                "INSERT INTO steps VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    event.run_id,
                    self._next(event.run_id),
                    event.step_id,
                    event.step_type,
                    event.status,
                    event.attempts,
                    event.duration_ms,
                    event.timestamp,
                    event.error_type,
                ),
            )
        elif isinstance(event, ErrorRecorded):
            e = event.error
            db.execute(
                "INSERT OR REPLACE INTO errors VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    event.run_id,
                    event.index,
                    e.step_id,
                    e.error_type,
                    e.message,
                    e.stack_trace,
                    e.timestamp,
                    e.retry_count,
                    int(e.recovered),
                    _dumps(e.details),
                ),
            )
        elif isinstance(event, ErrorsRecovered):
            db.executemany(
                "UPDATE errors SET recovered = 1 WHERE run_id = ? AND idx = ?",
                [(event.run_id, i) for i in event.indexes],
            )
        elif isinstance(event, BreakerChanged):
            db.execute(
                "INSERT OR REPLACE INTO breakers VALUES (?,?,?,?,?,?)",
                (
                    event.workflow,
                    event.name,
                    event.state,
                    event.failures,
                    event.opened_at,
                    time.time(),
                ),
            )
        elif isinstance(event, Message):
            db.execute(
                "INSERT INTO messages VALUES (?,?,?,?,?,?)",
                (
                    event.run_id,
                    self._next(event.run_id),
                    event.step_id,
                    event.level,
                    event.text,
                    event.timestamp,
                ),
            )
        elif isinstance(event, RunStarted):
            db.execute(
                "INSERT INTO runs (run_id, workflow, file, digest, status, inputs, started_at,"
                " pid) VALUES (?,?,?,?,?,?,?,?)",
                (
                    event.run_id,
                    event.workflow,
                    event.file,
                    event.digest,
                    "running",
                    _dumps(event.inputs),
                    event.started_at,
                    os.getpid(),
                ),
            )
        elif isinstance(event, RunFinished):
            db.execute(
                "UPDATE runs SET status=?, finished_at=?, duration_ms=?, state=?, error=?"
                " WHERE run_id=?",
                (
                    event.status,
                    event.finished_at,
                    event.duration_ms,
                    _dumps(event.state),
                    _dumps(event.error) if event.error else None,
                    event.run_id,
                ),
            )

    # reading ---------------------------------------------------------------------------

    def list_runs(self, limit: int = 100) -> list[RunRow]:
        """Newest first."""
        rows = self._db.execute(
            "SELECT * FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?", (limit,)
        ).fetchall()
        return [self._row(r) for r in rows]

    def get_run(self, run_id: str) -> RunRow:
        """One run, by id or unique id prefix."""
        rows = self._db.execute(
            "SELECT * FROM runs WHERE run_id = ? OR run_id LIKE ? LIMIT 2",
            (run_id, run_id.replace("%", "").replace("_", "\\_") + "%"),
        ).fetchall()
        exact = [r for r in rows if r[0] == run_id]
        if exact:
            return self._row(exact[0])
        if len(rows) != 1:
            raise RunNotFoundError(
                f"no run {run_id!r} in {self.path}"
                if not rows
                else f"run id prefix {run_id!r} is ambiguous"
            )
        return self._row(rows[0])

    def errors(self, run_id: str) -> list[ErrorRecord]:
        """The failed attempts of a run, in order."""
        rows = self._db.execute(
            "SELECT step_id, error_type, message, stack_trace, timestamp, retry_count,"
            " recovered, details FROM errors WHERE run_id = ? ORDER BY idx",
            (run_id,),
        ).fetchall()
        return [
            ErrorRecord(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), json.loads(r[7]))
            for r in rows
        ]

    def step_history(self, run_id: str) -> list[dict[str, Any]]:
        """Every step execution of a run, in order of completion."""
        rows = self._db.execute(
            "SELECT step_id, step_type, status, attempts, duration_ms, finished_at, error_type"
            " FROM steps WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ).fetchall()
        keys = (
            "step_id",
            "step_type",
            "status",
            "attempts",
            "duration_ms",
            "finished_at",
            "error_type",
        )
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def breakers(self, workflow: str) -> dict[str, dict[str, object]]:
        """The stored state of a workflow's circuit breakers, by name."""
        rows = self._db.execute(
            "SELECT name, state, failures, opened_at FROM breakers WHERE workflow = ?",
            (workflow,),
        ).fetchall()
        return {r[0]: {"state": r[1], "failures": r[2], "opened_at": r[3]} for r in rows}

    @staticmethod
    def _row(r: tuple[Any, ...]) -> RunRow:
        return RunRow(
            run_id=r[0],
            workflow=r[1],
            file=r[2],
            digest=r[3],
            status=r[4],
            inputs=json.loads(r[5]),
            started_at=r[6],
            finished_at=r[7],
            duration_ms=r[8],
            state=json.loads(r[9]) if r[9] else None,
            error=json.loads(r[10]) if r[10] else None,
        )


def new_run_id() -> str:
    """A sortable, unique run id: ``20261128-133012-3fa9c1``."""
    return time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + os.urandom(3).hex()
