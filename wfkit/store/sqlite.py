"""The run store: one SQLite database (WAL) under ``.wfkit/``.

Tables: ``runs`` (one row per run: status, inputs, final state), ``steps`` (one row per step
execution), ``errors`` (one row per failed attempt), ``messages``, ``breakers`` (circuit
breaker state per workflow), and the checkpoints of each frame of a run: ``checkpoints`` (its
cursor) and ``checkpoint_values`` (one row per top-level value it changed; a NULL value marks
a deletion), so a checkpoint writes only what changed since the previous one. Each run writes
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
    ErrorRecord,
    Event,
    Message,
    RetryScheduled,
    RunFinished,
    RunStarted,
    StepStarted,
)
from wfkit.core.frame import FrameCheckpoint
from wfkit.core.state import MISSING
from wfkit.errors import RunNotFoundError, StoreError
from wfkit.store.pending import SERVER_LOG, Pending

SCHEMA_VERSION = 3
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
    pid         INTEGER,
    current     TEXT,
    errors_dropped INTEGER NOT NULL DEFAULT 0,
    structure   TEXT,
    process     TEXT
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
    item        INTEGER,
    injected    INTEGER NOT NULL DEFAULT 0,
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
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id      TEXT NOT NULL,
    frame       TEXT NOT NULL,
    cursor      TEXT NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (run_id, frame)
);
CREATE TABLE IF NOT EXISTS checkpoint_values (
    run_id      TEXT NOT NULL,
    frame       TEXT NOT NULL,
    tier        TEXT NOT NULL,
    name        TEXT NOT NULL,
    value       TEXT,
    PRIMARY KEY (run_id, frame, tier, name)
);
CREATE TABLE IF NOT EXISTS checkpoint_log (
    run_id      TEXT NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoint_log_run ON checkpoint_log(run_id);
CREATE TABLE IF NOT EXISTS traces (
    run_id      TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    step_id     TEXT,
    field       TEXT,
    data        TEXT NOT NULL,
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
CREATE TABLE IF NOT EXISTS outputs (
    run_id      TEXT NOT NULL,
    okey        TEXT NOT NULL,
    step_id     TEXT NOT NULL,
    item        INTEGER,
    execution   INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    status      TEXT NOT NULL,
    exit_code   INTEGER,
    stdout_bytes   INTEGER NOT NULL DEFAULT 0,
    stdout_dropped INTEGER NOT NULL DEFAULT 0,
    stderr_bytes   INTEGER NOT NULL DEFAULT 0,
    stderr_dropped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, okey)
);
CREATE TABLE IF NOT EXISTS output_chunks (
    run_id    TEXT NOT NULL,
    okey      TEXT NOT NULL,
    stream    TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    head      INTEGER NOT NULL,
    timestamp REAL NOT NULL,
    data      BLOB NOT NULL,
    PRIMARY KEY (run_id, okey, stream, seq)
);
CREATE TABLE IF NOT EXISTS cancel_requests (
    run_id       TEXT PRIMARY KEY,
    requested_at REAL NOT NULL,
    requested_by TEXT NOT NULL
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

#: statements that bring a store of an older schema version to the current one
_MIGRATIONS: dict[int, list[str]] = {
    1: ["ALTER TABLE runs ADD COLUMN structure TEXT"],  # + the new tables of _SCHEMA
    2: [  # who holds the pid (see process_identity); an execution's parallel item; whether
        # an injected fault hit it
        "ALTER TABLE runs ADD COLUMN process TEXT",
        "ALTER TABLE steps ADD COLUMN item INTEGER",
        "ALTER TABLE steps ADD COLUMN injected INTEGER NOT NULL DEFAULT 0",
    ],
}

#: every table holding rows of a run (prune deletes from all of them)
RUN_TABLES = (
    "runs",
    "steps",
    "errors",
    "checkpoints",
    "checkpoint_values",
    "checkpoint_log",
    "traces",
    "messages",
    "outputs",
    "output_chunks",
    "cancel_requests",
)


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
    pid: int | None = None
    #: the identity of the process with that pid (host, boot, start time): a pid alone may
    #: have been reused by another process since, or belong to another machine
    process: str | None = None
    current: str | None = None  # the last effectful step that started
    errors_dropped: int = 0
    structure: list[str] | None = None  # the step structure it ran (resume checks it)


class RunStore:
    """Access to one store file; cheap to open, one per run or command."""

    def __init__(
        self, path: str | Path | None = None, *, create: bool = True, read_only: bool = False
    ) -> None:
        self.path = resolve_store_path(path)
        #: opened with SQLite's read-only mode: nothing is created, migrated or written
        self.read_only = read_only
        #: read-only commands never create a store: a missing one reads as an empty one
        self.missing = (read_only or not create) and not self.path.exists()
        try:
            if self.missing:
                self._check_could_exist()
                self._db = sqlite3.connect(
                    ":memory:", isolation_level=None, check_same_thread=False
                )
                self._migrate(0)
            elif read_only:
                self._db = self._open_read_only()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(
                    self.path, timeout=30.0, isolation_level=None, check_same_thread=False
                )
                self._db.execute("PRAGMA busy_timeout = 30000")
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")
                version = self._version(self._db)
                if version < SCHEMA_VERSION:
                    self._migrate(version)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open run store {self.path}: {exc}") from exc
        self._seq: dict[str, int] = {}
        self._pending = Pending()
        self._last_commit = time.monotonic()
        #: (run id, frame) with checkpoint rows in the database (written or loaded here)
        self._stored_frames: set[tuple[str, str]] = set()

    def _check_could_exist(self) -> None:
        """A store path under a file can never hold a store: say so now."""
        above = self.path.parent
        while not above.exists():
            above = above.parent
        if not above.is_dir():
            raise StoreError(f"cannot open run store {self.path}: {above} is not a folder")

    def _open_read_only(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=30.0,
            isolation_level=None,
            check_same_thread=False,
        )
        db.execute("PRAGMA busy_timeout = 30000")
        try:
            version = self._version(db)
            if version < SCHEMA_VERSION:
                raise StoreError(
                    f"store {self.path} was written by an older wfkit (schema {version}); "
                    "read-only access cannot upgrade it: any command that writes (wfkit run) will"
                )
        except StoreError:
            db.close()
            raise
        return db

    def _version(self, db: sqlite3.Connection) -> int:
        """The store's schema version; a newer one than this wfkit knows is refused."""
        version: int = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"store {self.path} was written by a newer wfkit (schema {version})")
        return version

    def _migrate(self, version: int) -> None:
        """Create the schema, or bring an older one up to date, in one transaction."""
        with self.transaction():  # executescript would commit: run statements one by one
            for old in range(version, SCHEMA_VERSION) if version else ():
                for statement in _MIGRATIONS.get(old, []):
                    self._db.execute(statement)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Commit what is pending and close the connection."""
        try:
            self.commit()
        finally:
            self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error).

        IMMEDIATE takes the write lock at once, under the busy timeout; a deferred
        transaction that reads first can fail at once with SQLITE_BUSY_SNAPSHOT when another
        process commits in between.
        """
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
        """Take one engine event; commit when the event calls for it (module docstring)."""
        try:
            if isinstance(event, StepStarted):
                if event.effectful:  # the step's effects start from a durable position
                    self._pending.add(event, self._next, self._stored_frames)
                    self.commit()
                return
            self._pending.add(event, self._next, self._stored_frames)
            if (
                isinstance(event, (RunStarted, RunFinished, RetryScheduled))
                or getattr(event, "effectful", False)
                or time.monotonic() - self._last_commit >= COMMIT_INTERVAL
            ):
                self.commit()
        except sqlite3.Error as exc:
            raise StoreError(f"run store {self.path}: {exc}") from exc

    def commit(self) -> None:
        """Write everything pending in one transaction."""
        self._last_commit = time.monotonic()
        if not self._pending:
            return
        pending, self._pending = self._pending, Pending()
        try:
            with self.transaction() as db:
                pending.write(db)
            self._stored_frames.update(pending.cursors)
        except sqlite3.Error as exc:
            raise StoreError(f"run store {self.path}: {exc}") from exc

    def flush_if_due(self) -> None:
        """Commit pending rows once ``COMMIT_INTERVAL`` has passed since the last commit.

        Called between events (a run's watcher task), so output of a step that writes a line
        and then goes quiet still reaches ``logs --follow`` within the interval.
        """
        if self._pending and time.monotonic() - self._last_commit >= COMMIT_INTERVAL:
            self.commit()

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for the modules that read and maintain the store (outputs, prune)."""
        return self._db

    def request_cancel(self, run_id: str, by: str) -> None:
        """Ask the process running ``run_id`` (on any machine) to cancel it."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO cancel_requests VALUES (?, ?, ?)", (run_id, time.time(), by)
            )

    def cancel_requested(self, run_id: str) -> bool:
        """Whether someone asked to cancel the run (polled by the running process)."""
        row = self._db.execute(
            "SELECT 1 FROM cancel_requests WHERE run_id = ?", (run_id,)
        ).fetchone()
        return row is not None

    def set_status(self, run_id: str, status: str) -> None:
        """Record a status for a run no process runs any more (an interrupted run cancelled)."""
        self.commit()
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished_at = COALESCE(finished_at, ?)"
                " WHERE run_id = ?",
                (status, time.time(), run_id),
            )

    # reading ---------------------------------------------------------------------------

    def list_runs(
        self,
        limit: int = 100,
        *,
        statuses: list[str] | None = None,
        workflow: str | None = None,
        since: float | None = None,
    ) -> list[RunRow]:
        """Newest first; only the given stored statuses, workflow and start time when given."""
        self.commit()  # what this process wrote is visible to its reads
        where: list[str] = ["1"]
        args: list[object] = []
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args.extend(statuses)
        if workflow is not None:
            where.append("workflow = ?")
            args.append(workflow)
        if since is not None:
            where.append("started_at >= ?")
            args.append(since)
        rows = self._db.execute(
            f"SELECT * FROM runs WHERE {' AND '.join(where)}"
            " ORDER BY started_at DESC, rowid DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [self._row(r) for r in rows]

    def get_run(self, run_id: str) -> RunRow:
        """One run, by id or unique id prefix."""
        self.commit()  # what this process wrote is visible to its reads
        rows = self._db.execute(
            "SELECT * FROM runs WHERE run_id = ? OR run_id LIKE ? LIMIT 2",
            (run_id, run_id.replace("%", "").replace("_", "\\_") + "%"),
        ).fetchall()
        exact = [r for r in rows if r[0] == run_id]
        if exact:
            return self._row(exact[0])
        if len(rows) != 1:
            where = (
                f"{self.path} (there are no runs: no store there)" if self.missing else self.path
            )
            raise RunNotFoundError(
                f"no run {run_id!r} in {where}"
                if not rows
                else f"run id prefix {run_id!r} is ambiguous"
            )
        return self._row(rows[0])

    def errors(self, run_id: str) -> list[ErrorRecord]:
        """The failed attempts of a run, in order."""
        self.commit()  # what this process wrote is visible to its reads
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
        self.commit()  # what this process wrote is visible to its reads
        rows = self._db.execute(
            "SELECT step_id, step_type, status, attempts, duration_ms, finished_at, error_type,"
            " item, injected FROM steps WHERE run_id = ? ORDER BY seq",
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
            "item",
            "injected",
        )
        history = [dict(zip(keys, r, strict=True)) for r in rows]
        for h in history:
            h["injected"] = bool(h["injected"])
        return history

    def load_frame(self, run_id: str, frame: str) -> FrameCheckpoint | None:
        """A frame's last checkpoint, or None when it has none."""
        self.commit()  # what this process wrote is visible to its reads
        row = self._db.execute(
            "SELECT cursor FROM checkpoints WHERE run_id = ? AND frame = ?", (run_id, frame)
        ).fetchone()
        if row is None:
            return None
        self._stored_frames.add((run_id, frame))
        tiers: dict[str, dict[str, Any]] = {"raw": {}, "computed": {}, "steps": {}, "memory": {}}
        for tier, name, value in self._db.execute(
            "SELECT tier, name, value FROM checkpoint_values WHERE run_id = ? AND frame = ?",
            (run_id, frame),
        ):
            tiers[tier][name] = MISSING if value is None else json.loads(value)
        steps = {k: v for k, v in tiers["steps"].items() if v is not MISSING}
        memory = {k: v for k, v in tiers["memory"].items() if v is not MISSING}
        return FrameCheckpoint(json.loads(row[0]), tiers["raw"], tiers["computed"], steps, memory)

    def reset_to(self, run_id: str, top: int) -> FrameCheckpoint:
        """Make the run's stored position "before top-level step ``top``" (``resume --from``).

        The main frame's values come from ``checkpoint_log`` (the last value of each name
        written by the top-level steps before ``top``); every stored frame is replaced.
        """
        self.commit()
        tiers: dict[str, dict[str, Any]] = {"raw": {}, "computed": {}, "steps": {}, "memory": {}}
        #: top-level index -> "tier/name" -> serialized value, for the steps before ``top``
        by_top: dict[int, dict[str, str | None]] = {}
        for (data,) in self._db.execute(
            "SELECT data FROM checkpoint_log WHERE run_id = ? ORDER BY rowid", (run_id,)
        ):
            for written_by, values in json.loads(data).items():
                if int(written_by) < top:
                    by_top.setdefault(int(written_by), {}).update(values)
        kept: dict[str, str | None] = {}
        for index in sorted(by_top):
            kept.update(by_top[index])
        for key, value in kept.items():
            tier, name = key.split("/", 1)
            tiers[tier][name] = MISSING if value is None else json.loads(value)
        cursor = [{"i": top - 1, "done": True, "note": {}}] if top > 0 else []
        with self.transaction() as db:
            for table in ("checkpoints", "checkpoint_values"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM checkpoint_log WHERE run_id = ?", (run_id,))
            if by_top:  # the log starts again from what was kept
                db.execute(
                    "INSERT INTO checkpoint_log VALUES (?, ?)",
                    (run_id, json.dumps({str(k): v for k, v in sorted(by_top.items())})),
                )
            db.execute(
                "INSERT INTO checkpoints VALUES (?, 'main', ?, ?)",
                (run_id, json.dumps(cursor), time.time()),
            )
            db.executemany(
                "INSERT INTO checkpoint_values VALUES (?, 'main', ?, ?, ?)",
                [
                    (run_id, tier, name, None if v is MISSING else json.dumps(v))
                    for tier, values in tiers.items()
                    for name, v in values.items()
                ],
            )
        self._stored_frames = {k for k in self._stored_frames if k[0] != run_id}
        self._stored_frames.add((run_id, "main"))
        steps = {k: v for k, v in tiers["steps"].items() if v is not MISSING}
        memory = {k: v for k, v in tiers["memory"].items() if v is not MISSING}
        return FrameCheckpoint(cursor, tiers["raw"], tiers["computed"], steps, memory)

    def checkpoint_log(self, run_id: str) -> list[dict[str, dict[str, str | None]]]:
        """The main frame's checkpointed changes, one entry per commit, in order: top-level
        step index -> "tier/name" -> the value's JSON (``None``: deleted)."""
        self.commit()
        rows = self._db.execute(
            "SELECT data FROM checkpoint_log WHERE run_id = ? ORDER BY rowid", (run_id,)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def messages(self, run_id: str) -> list[Message]:
        """The messages of a run, in order (tool servers' stderr apart)."""
        self.commit()  # what this process wrote is visible to its reads
        rows = self._db.execute(
            "SELECT step_id, level, text, timestamp FROM messages "
            "WHERE run_id = ? AND level != ? ORDER BY seq",
            (run_id, SERVER_LOG),
        ).fetchall()
        return [Message(run_id, r[0], r[1], r[2], r[3]) for r in rows]

    def server_logs(self, run_id: str) -> dict[str, str]:
        """What each tool server wrote to stderr during the run (its end), by server."""
        self.commit()
        rows = self._db.execute(
            "SELECT step_id, text FROM messages WHERE run_id = ? AND level = ? ORDER BY seq",
            (run_id, SERVER_LOG),
        ).fetchall()
        logs: dict[str, str] = {}
        for server, text in rows:  # a resumed run adds the stderr of its own starts
            logs[server] = f"{logs[server]}\n{text}" if server in logs else text
        return logs

    def traces(self, run_id: str) -> list[dict[str, Any]]:
        """A traced run's records, in order."""
        self.commit()  # what this process wrote is visible to its reads
        rows = self._db.execute(
            "SELECT data FROM traces WHERE run_id = ? AND kind != 'decision' ORDER BY idx",
            (run_id,),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def decisions(self, run_id: str) -> list[dict[str, Any]]:
        """What the run decided and why (conditions, retry verdicts...), in order."""
        self.commit()
        rows = self._db.execute(
            "SELECT data FROM traces WHERE run_id = ? AND kind = 'decision' ORDER BY idx",
            (run_id,),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def has_traces(self, run_id: str) -> bool:
        """Whether the run recorded trace records (it ran with tracing on)."""
        self.commit()
        row = self._db.execute(
            "SELECT 1 FROM traces WHERE run_id = ? AND kind != 'decision' LIMIT 1", (run_id,)
        )
        return row.fetchone() is not None

    def breakers(self, workflow: str) -> dict[str, dict[str, object]]:
        """The stored state of a workflow's circuit breakers, by name."""
        self.commit()  # what this process wrote is visible to its reads
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
            pid=r[11],
            current=r[12],
            errors_dropped=r[13],
            structure=json.loads(r[14]) if r[14] else None,
            process=r[15] if len(r) > 15 else None,
        )


def new_run_id() -> str:
    """A sortable, unique run id: ``20261128-133012-3fa9c1``."""
    return time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + os.urandom(3).hex()
