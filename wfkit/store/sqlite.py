"""The SQLite run store (the default): one database file in WAL mode under ``.wfkit/``.

Each run writes through its own connection; WAL plus a busy timeout lets several ``wfkit
run`` processes share one file. ``PRAGMA user_version`` carries the schema version; opening
an older store migrates it in one transaction. The tables, the event sink and every query
are shared with the PostgreSQL store (:mod:`wfkit.store.sql`, :mod:`wfkit.store.schema`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from wfkit.errors import StoreError
from wfkit.store.base import RunRow, storable
from wfkit.store.schema import RUN_TABLES, SQLITE, check_newer, compat_row, statements
from wfkit.store.sql import COMMIT_INTERVAL, SqlStore

__all__ = [
    "COMMIT_INTERVAL",
    "DEFAULT_DIR",
    "RUN_TABLES",
    "SCHEMA_VERSION",
    "RunRow",
    "RunStore",
    "default_store_path",
    "new_run_id",
    "resolve_store_path",
]

SCHEMA_VERSION = 6
DEFAULT_DIR = ".wfkit"

#: statements that bring a store of an older schema version to the current one
_MIGRATIONS: dict[int, list[str]] = {
    1: ["ALTER TABLE runs ADD COLUMN structure TEXT"],  # + the new tables of the schema
    2: [  # who holds the pid (see process_identity); an execution's parallel item; whether
        # an injected fault hit it
        "ALTER TABLE runs ADD COLUMN process TEXT",
        "ALTER TABLE steps ADD COLUMN item INTEGER",
        "ALTER TABLE steps ADD COLUMN injected INTEGER NOT NULL DEFAULT 0",
    ],
    3: ["ALTER TABLE runs ADD COLUMN lease_until REAL"],  # + the sources table
    4: [],  # the agent_tasks and pulled_runs tables
    5: ["ALTER TABLE runs ADD COLUMN parent TEXT"],  # the run a workflow step started it from
}


def default_store_path() -> Path:
    """``$WFKIT_STORE`` (a path), else ``.wfkit/runs.db`` under the working directory."""
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


class SqliteDb:
    """The shared SQL on a sqlite3 connection; its errors become :class:`StoreError`."""

    #: the database's clock in UNIX seconds, as SQL
    now = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, connection: sqlite3.Connection, where: str) -> None:
        self.connection = connection
        self.where = where

    def _error(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"run store {self.where}: {exc}")

    def all(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.connection.execute(sql, storable(args)).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def one(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> tuple[Any, ...] | None:
        try:
            row: tuple[Any, ...] | None = self.connection.execute(sql, storable(args)).fetchone()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        return row

    def run(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> None:
        try:
            self.connection.execute(sql, storable(args))
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def require(self, sql: str, args: tuple[Any, ...], error: Exception) -> None:
        if self.one(sql, args) is None:
            raise error

    def changed(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> int:
        try:
            return int(self.connection.execute(sql, storable(args)).rowcount)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            try:
                self.connection.executemany(sql, [storable(row) for row in rows])
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def lock_run(self, run_id: str) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` holds the database's one write lock."""

    @contextmanager
    def transaction(self) -> Iterator[SqliteDb]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error).

        IMMEDIATE takes the write lock at once, under the busy timeout; a deferred
        transaction that reads first can fail at once with SQLITE_BUSY_SNAPSHOT when another
        process commits in between.
        """
        self.run("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.run("COMMIT")

    def release(self) -> None:
        """A file's connection costs no server anything: it is kept."""

    def close(self) -> None:
        self.connection.close()


def _create_private(path: Path) -> None:
    """A new store is private: its folder 0700, its file 0600 (SQLite gives the WAL and
    shared-memory files the database file's mode)."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _writable(path: Path) -> bool:
    """Whether the store file and its folder can be written (``access`` says no on a
    read-only mount, also to root)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


class RunStore(SqlStore):
    """Access to one store file; cheap to open, one per run or command."""

    def __init__(
        self, path: str | Path | None = None, *, create: bool = True, read_only: bool = False
    ) -> None:
        self._path = resolve_store_path(path)
        #: opened with SQLite's read-only mode: nothing is created, migrated or written
        self.read_only = read_only
        #: read-only commands never create a store: a missing one reads as an empty one
        self.missing = (read_only or not create) and not self._path.exists()
        try:
            if self.missing:
                self._check_could_exist()
                self._db = memory_db()
            elif read_only or (not create and not _writable(self._path)):
                self._db = self._open_read_only()  # also a store on a read-only mount
            else:
                _create_private(self._path)
                self._db = sqlite3.connect(
                    self._path, timeout=30.0, isolation_level=None, check_same_thread=False
                )
                self._db.execute("PRAGMA busy_timeout = 30000")
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")
                version = self._version(self._db, read_only=False)
                if version < SCHEMA_VERSION:
                    migrate(SqliteDb(self._db, str(self._path)), version)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open run store {self._path}: {exc}") from exc
        self._sql = SqliteDb(self._db, str(self._path))
        self._start()

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def location(self) -> str:
        return str(self._path)

    def _check_could_exist(self) -> None:
        """A store path under a file can never hold a store: say so now."""
        above = self._path.parent
        while not above.exists():
            above = above.parent
        if not above.is_dir():
            raise StoreError(f"cannot open run store {self._path}: {above} is not a folder")

    def _open_read_only(self) -> sqlite3.Connection:
        """SQLite's read-only mode; where even that cannot open the file (a WAL store on a
        read-only mount: a reader needs to create the shared-memory file), an immutable open,
        which reads the database file as it is (what a crashed writer left in its WAL, never
        checkpointed, is not seen)."""
        uri = self._path.resolve().as_uri()
        try:
            db = self._connect_uri(f"{uri}?mode=ro")
            self._version(db)
        except sqlite3.OperationalError:
            db = self._connect_uri(f"{uri}?mode=ro&immutable=1")
        try:
            version = self._version(db)
            if version < SCHEMA_VERSION:
                raise StoreError(
                    f"store {self._path} was written by an older wfkit (schema {version}); "
                    "read-only access cannot upgrade it: any command that writes (wfkit run) will"
                )
        except StoreError:
            db.close()
            raise
        return db

    @staticmethod
    def _connect_uri(uri: str) -> sqlite3.Connection:
        db = sqlite3.connect(
            uri, uri=True, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA busy_timeout = 30000")
        return db

    def _version(self, db: sqlite3.Connection, read_only: bool = True) -> int:
        """The store's schema version; a newer one is read as it is, and written only when
        its ``schema_compat`` allows this wfkit (:func:`check_newer`)."""
        version: int = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:

            def one(sql: str) -> tuple[Any, ...] | None:
                try:
                    row: tuple[Any, ...] | None = db.execute(sql).fetchone()
                except sqlite3.Error:  # no such table: nothing says it may be written
                    return None
                return row

            check_newer(one, version, SCHEMA_VERSION, str(self._path), read_only)
        return version

    @property
    def db(self) -> sqlite3.Connection:
        """The sqlite3 connection (tests and maintenance of this backend only)."""
        return self._db

    def __enter__(self) -> RunStore:
        return self

    def reclaim(self) -> None:
        """VACUUM rewrites the file without the freed pages; the WAL is folded in and emptied."""
        if self.missing:
            return
        self._sql.run("PRAGMA wal_checkpoint(TRUNCATE)")
        self._sql.run("VACUUM")
        self._sql.run("PRAGMA wal_checkpoint(TRUNCATE)")

    def size_bytes(self) -> int:
        """The file and its write-ahead log."""
        if self.missing:
            return 0
        wal = Path(str(self._path) + "-wal")
        return self._path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def integrity(self) -> str:
        """``ok``, or what SQLite's quick check found."""
        row = self._sql.one("PRAGMA quick_check")
        return str(row[0]) if row else "unknown"


def memory_db() -> sqlite3.Connection:
    """An empty store in memory: what a missing store reads as (nothing is created)."""
    db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    migrate(SqliteDb(db, ":memory:"), 0)
    return db


def migrate(db: SqliteDb, version: int) -> None:
    """Create the schema, or bring an older one up to date, in one transaction."""
    with db.transaction():  # executescript would commit: run statements one by one
        for old in range(version, SCHEMA_VERSION) if version else ():
            for statement in _MIGRATIONS.get(old, []):
                db.run(statement)
        for statement in statements(SQLITE):
            db.run(statement)
        db.run("INSERT OR IGNORE INTO schema_compat VALUES (?, ?, ?)", compat_row(SCHEMA_VERSION))
        db.run(f"PRAGMA user_version = {SCHEMA_VERSION}")


def new_run_id() -> str:
    """A sortable, unique run id: ``20261128-133012-3fa9c1``."""
    return time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + os.urandom(3).hex()
