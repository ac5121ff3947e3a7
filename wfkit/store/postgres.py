"""The PostgreSQL run store: one database that every machine of a team reaches.

``--store postgresql://user@host:5432/db`` (or ``WFKIT_STORE``). The tables, the event sink
and every query are those of the SQLite store (:mod:`wfkit.store.sql`); this module connects
(psycopg 3, the ``postgres`` extra), translates the shared SQL (``?`` placeholders, ``rowid``)
and migrates the schema. The schema version lives in ``schema_version``; the first use by a
newer wfkit applies the missing migrations under a transaction-scoped advisory lock, so many
processes starting at once migrate exactly once. Read-only commands and ``create=False``
never create tables: a database without them reads as an empty store.

Writers take row locks only on their own run's rows, in a fixed order (a run's advisory lock
before its step numbers are read, breakers by key); a transaction PostgreSQL still aborts to
break a deadlock, or a serialization failure, runs again (:meth:`SqlStore._write`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from wfkit.errors import StoreError
from wfkit.store.base import Db
from wfkit.store.pg_db import (
    ConnectionLostError,
    PostgresDb,
    StoreUnreachableError,
    idle_seconds,
    reconnect_seconds,
    redact,
    server_name,
    translate,
)
from wfkit.store.schema import POSTGRES, TABLES, check_newer, compat_row, statements
from wfkit.store.sql import WRITE_ATTEMPTS, SqlStore

__all__ = ["PostgresDb", "PostgresStore", "redact", "server_name", "translate"]

SCHEMA_VERSION = 4
#: the tables version 2 added
NEW_IN_2 = ("sources", "schema_compat")
#: version -> the statements that bring the previous version to it (additive only: a new
#: table or a nullable column, so an older wfkit still reads and writes a newer schema)
MIGRATIONS: dict[int, list[str]] = {
    1: statements(POSTGRES),
    2: [
        "ALTER TABLE runs ADD COLUMN IF NOT EXISTS lease_until DOUBLE PRECISION",
        # each open store's latest write transaction: "applied?" after a reconnect (pg_db)
        "CREATE TABLE IF NOT EXISTS store_writers (writer TEXT PRIMARY KEY,"
        " batch BIGINT NOT NULL, at DOUBLE PRECISION NOT NULL)",
        *(
            s
            for s in statements(POSTGRES)
            if s.startswith(tuple(f"CREATE TABLE IF NOT EXISTS {t} " for t in NEW_IN_2))
        ),
    ],
    3: [  # pulled agent work (wfkit.store.agent_tasks)
        s
        for s in statements(POSTGRES)
        if any(t in s.split("(", 1)[0] for t in ("agent_tasks", "pulled_runs"))
    ],
    4: ["ALTER TABLE runs ADD COLUMN IF NOT EXISTS parent TEXT"],  # a child run's parent
}
#: the advisory lock held while migrating ("wfkit" in ASCII)
MIGRATION_LOCK = 0x7766_6B69_74
CONNECT_TIMEOUT = 10
T = TypeVar("T")


#: a server that is full or starting: worth waiting for (PostgreSQL's English messages; a
#: refused connection carries no SQLSTATE)
_BUSY = ("too many clients", "remaining connection slots", "system is starting up")


def _open(url: str, read_only: bool) -> psycopg.Connection[Any]:
    """A connection; a server that is full (``max_connections``) or starting is waited for,
    as long as a reconnect would (``WFKIT_STORE_RECONNECT``): a team's runs queue for the
    server's connections instead of failing at start. Anything else fails at once."""
    import stamina
    import stamina.instrumentation

    stamina.instrumentation.set_on_retry_hooks([])
    for attempt in stamina.retry_context(
        on=lambda exc: (
            isinstance(exc, StoreUnreachableError) and any(busy in exc.message for busy in _BUSY)
        ),
        attempts=None,
        timeout=reconnect_seconds(),
        wait_initial=0.2,
        wait_max=2.0,
        wait_jitter=0.5,
    ):
        with attempt:
            return PostgresStore._connect(url, read_only)
    raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover


class PostgresStore(SqlStore):
    """A run store in a PostgreSQL database; cheap to open, one per run or command."""

    def __init__(self, url: str, *, create: bool = True, read_only: bool = False) -> None:
        self.url = url
        self._location = redact(url)
        self.read_only = read_only
        self.missing = False
        self.idle_release = None if read_only else idle_seconds()
        connection = _open(url, read_only)
        db = PostgresDb(
            connection,
            self._location,
            functools.partial(self._connect, url, read_only),
            server_name(conninfo_to_dict(url)),
        )
        try:
            version = self._version(db, read_only)
            if version == 0 and (read_only or not create):
                self.missing = True  # nothing is created: it reads as an empty store
            elif version < SCHEMA_VERSION:
                if read_only:
                    raise StoreError(
                        f"store {self._location} was written by an older wfkit (schema"
                        f" {version}); read-only access cannot upgrade it: any command that"
                        " writes (wfkit run) will"
                    )
                self._migrate(db)
        except BaseException:
            db.connection.close()  # the one open now (a read may have reconnected)
            raise
        if self.missing:
            from wfkit.store.sqlite import SqliteDb, memory_db

            db.connection.close()
            self._sql = SqliteDb(memory_db(), self._location)
        else:
            self._sql = db
            db.marking = (not read_only and version != 0) or (not self.missing and not read_only)
        self._start()

    def _write(self, work: Callable[[Db], T], applied: Callable[[Db], T] | None = None) -> T:
        """As :meth:`SqlStore._write`, surviving a broken connection: reconnect (bounded),
        then, if the transaction in flight had committed, ``applied`` (what ``work`` would
        have returned, read back; ``work`` again when None: it is idempotent), else ``work``
        again. Exactly once either way (:mod:`wfkit.store.pg_db`)."""
        sql = self._sql
        lost: int | None = None  # the batch in flight when the connection broke
        for attempt in range(WRITE_ATTEMPTS):
            try:
                if lost is not None:  # its outcome is asked on a new connection, which
                    assert isinstance(sql, PostgresDb)  # may break too: asked again then
                    sql.reconnect()
                    if applied is not None and sql.marking and sql.applied(lost):
                        return applied(sql)
                    lost = None
                return super()._write(work)
            except ConnectionLostError:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise StoreError(
                        f"run store {self._location}: the connection broke"
                        f" {WRITE_ATTEMPTS} times in one write"
                    ) from None
                if lost is None:
                    lost = sql.batch  # type: ignore[attr-defined]
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _connect(url: str, read_only: bool) -> psycopg.Connection[Any]:
        shown = redact(url)
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            first = redact(str(exc).strip().splitlines()[0])
            raise StoreError(f"bad PostgreSQL run store URL {shown}: {first}") from None
        extra: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params:
            extra["connect_timeout"] = CONNECT_TIMEOUT
        if "application_name" not in params:
            extra["application_name"] = "wfkit"
        options = str(params.get("options") or "")
        if "synchronous_commit" not in options:
            # as SQLite's synchronous=NORMAL in WAL mode: a server crash (not a client's) may
            # lose the last commits, never corrupts; a commit does not wait for the disk
            options += " -c synchronous_commit=off"
        if read_only:  # the server refuses every write of this session
            options += " -c default_transaction_read_only=on"
        extra["options"] = options.strip()
        try:
            return psycopg.connect(url, **extra)
        except psycopg.Error as exc:
            text = str(exc).strip()
            password = params.get("password")
            if password:
                text = text.replace(str(password), "***")
            first = redact(text.splitlines()[0].strip() if text else repr(exc))  # the cause
            kind = (
                StoreUnreachableError if isinstance(exc, psycopg.OperationalError) else StoreError
            )
            raise kind(
                f"cannot reach the PostgreSQL run store at {server_name(params)}: {first}"
            ) from None

    @property
    def location(self) -> str:
        """The URL without its password."""
        return self._location

    @property
    def path(self) -> None:
        """A server's store has no file on this machine."""
        return None

    def __enter__(self) -> PostgresStore:
        return self

    def _version(self, db: PostgresDb, read_only: bool) -> int:
        """The schema version (0: no tables); a newer one is read as it is, and written only
        when its ``schema_compat`` allows this wfkit (:func:`check_newer`)."""
        exists = db.one("SELECT to_regclass('schema_version')")
        if exists is None or exists[0] is None:
            return 0
        row = db.one("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:

            def one(sql: str) -> tuple[Any, ...] | None:
                if db.one("SELECT to_regclass('schema_compat')") in (None, (None,)):
                    return None
                return db.one(sql)

            check_newer(one, version, SCHEMA_VERSION, self._location, read_only)
        return version

    def _migrate(self, db: PostgresDb) -> None:
        """Apply the missing migrations in one transaction, one process at a time; a role
        that may not change the tables is told who can (docs/scaling.md, "Roles")."""
        try:
            self._apply_migrations(db)
        except StoreError as exc:
            if not isinstance(exc.__cause__, pg_errors.InsufficientPrivilege):
                raise
            row = db.one("SELECT current_user")
            raise StoreError(
                f"store {self._location} needs schema {SCHEMA_VERSION} for this wfkit, and"
                f" role {row[0] if row else '?'} may not create or alter its tables: run any"
                " writing command (wfkit run) once as the store's owner role, which migrates"
                " it for every role"
            ) from None

    def _apply_migrations(self, db: PostgresDb) -> None:
        with db.transaction():
            db.run("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            db.run(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
            row = db.one("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            current = int(row[0]) if row else 0  # another process may have migrated meanwhile
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    db.run(statement)
                db.run("INSERT INTO schema_version VALUES (?, ?)", (version, time.time()))
            db.run(
                "INSERT INTO schema_compat VALUES (?, ?, ?) ON CONFLICT (version) DO NOTHING",
                compat_row(SCHEMA_VERSION),
            )

    def reclaim(self) -> None:
        """VACUUM the store's tables: the space of deleted rows is reused (autovacuum would
        get there too); the files do not shrink."""
        if not self.missing:
            self._sql.run(f"VACUUM {', '.join(TABLES)}")

    def size_bytes(self) -> int:
        """The store's tables with their indexes and TOAST data."""
        if self.missing:
            return 0
        row = self._sql.one(
            "SELECT COALESCE(SUM(pg_total_relation_size(to_regclass(t))), 0)"
            " FROM unnest(?::text[]) AS t",
            (list(TABLES),),
        )
        return int(row[0]) if row else 0

    def integrity(self) -> str:
        """``ok`` when the server answers (it checks its own pages)."""
        self._sql.one("SELECT 1")
        return "ok"
