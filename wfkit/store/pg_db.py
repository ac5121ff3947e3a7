"""The PostgreSQL store's connection: the shared SQL in psycopg's terms, its errors in the
store's words, and reconnects that survive a server restart or a terminated backend.

A connection that breaks (``pg_ctl restart``, a failover to the same URL,
``pg_terminate_backend``) is opened again with a bounded backoff (stamina, at most
``WFKIT_STORE_RECONNECT`` seconds, default 60). A read is simply asked again. A write
transaction is *marked*: with its rows it sets this connection's batch number in
``store_writers``, so after a reconnect the store knows whether the batch that was in flight
committed before the connection broke, and applies it again only if it did not: exactly once.
Past the budget the store gives up with one line naming the server; the run's process stops
and the run is ``interrupted`` (``wfkit resume`` continues it).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from wfkit.errors import StoreError
from wfkit.store.base import UNSTORABLE_IN_POSTGRES, env_seconds, storable
from wfkit.store.sql import WRITE_ATTEMPTS, RetryableError

T = TypeVar("T")

#: seconds a store waits for its server to come back when ``WFKIT_STORE_RECONNECT`` does not say
RECONNECT_SECONDS = 60.0
#: seconds without a write after which a run gives its connection back when
#: ``WFKIT_STORE_IDLE`` does not say (a run that only waits holds none of the server's few)
IDLE_SECONDS = 2.0
_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
#: the server went away or is not back yet: the connection is worth opening again
_LOST = (pg_errors.AdminShutdown, pg_errors.CrashShutdown, pg_errors.CannotConnectNow)
#: user:password@ of a URL: the password runs to the last @ before the host (quotes, spaces
#: and other punctuation included; over-redacting is the safe side)
_USERINFO = re.compile(r"(?<=://)([^:@/\s]*):[^/]*@")
#: password=... as a URL parameter or a conninfo pair (quoted with '...' or bare)
_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)", re.IGNORECASE)

# psycopg logs "error ignored terminating <Pipeline [BAD]>" when a pipeline ends on a broken
# connection: the store reports the break itself, in one line
logging.getLogger("psycopg").setLevel(logging.ERROR)


class _StoreFault(StoreError):
    """A store error the store itself acts on (it reconnects); users see a StoreError."""

    @property
    def type_name(self) -> str:
        return "StoreError"


class ConnectionLostError(_StoreFault):
    """The connection to the server broke; it can be opened again."""


class StoreUnreachableError(_StoreFault):
    """The server did not accept a connection (down, restarting, refused)."""


def idle_seconds() -> float:
    """``WFKIT_STORE_IDLE`` (seconds, 0 or more), else ``IDLE_SECONDS``."""
    return env_seconds("WFKIT_STORE_IDLE", IDLE_SECONDS, 0.0)


def reconnect_seconds() -> float:
    """``WFKIT_STORE_RECONNECT`` (seconds, 0 or more), else ``RECONNECT_SECONDS``."""
    return env_seconds("WFKIT_STORE_RECONNECT", RECONNECT_SECONDS, 0.0)


def _cause(exc: StoreError) -> str:
    """The innermost reason of a refused connection ("Connection refused")."""
    return exc.message.rsplit(": ", 1)[-1].strip()


def redact(text: str) -> str:
    """``text`` with the password of any store URL (or ``password=`` parameter) removed."""
    return _PASSWORD.sub(r"\1***", _USERINFO.sub(r"\1@", text))


def server_name(params: dict[str, Any]) -> str:
    """``host:port/dbname`` of connection parameters, for messages."""
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    return f"{host}:{port}/{params.get('dbname') or params.get('user') or ''}"


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """The shared SQL in psycopg's terms: ``%s`` placeholders (a literal ``%`` doubled) and
    the ``rid`` identity column where SQLite has ``rowid``."""
    return re.sub(r"\browid\b", "rid", sql.replace("%", "%%").replace("?", "%s"))


def _storable(args: Sequence[Any]) -> Sequence[Any]:
    return storable(args, UNSTORABLE_IN_POSTGRES)


def _lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection is gone or unusable: the server ended it (a
    terminated backend, a restart), or the client library failed with no server error code,
    as when a pipeline cannot be left because the results it waits for will never come (its
    cause, the server's shutdown message, is then only in the exception's context)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, _LOST):
            return True
        if isinstance(seen, psycopg.OperationalError) and seen.sqlstate is None:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class PostgresDb:
    """The shared SQL on a psycopg connection (autocommit between transactions), opened
    again by ``connect`` when it breaks (module docstring)."""

    #: the server's clock in UNIX seconds, as SQL: the one clock every machine of a team
    #: reads the same
    now = "(EXTRACT(EPOCH FROM clock_timestamp())::double precision)"

    def __init__(
        self,
        connection: psycopg.Connection[Any],
        where: str,
        connect: Callable[[], psycopg.Connection[Any]] | None = None,
        server: str = "",
    ) -> None:
        self.connection = connection
        self.where = where
        self._connect = connect
        self.server = server or where
        #: transactions are marked in ``store_writers`` (set once the table exists)
        self.marking = False
        self.writer = uuid.uuid4().hex
        #: the number of this connection's latest write transaction
        self.batch = 0
        self._in_transaction = False
        #: the error of the latest require() in the open transaction
        self._required: Exception | None = None
        #: the connection was given back (``release``): the next use opens one again
        self.released = False

    def _error(self, exc: psycopg.Error) -> StoreError:
        required, self._required = self._required, None
        if isinstance(exc, pg_errors.DivisionByZero) and isinstance(required, StoreError):
            return required  # a require() found no row
        message = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
        kind: type[StoreError] = StoreError
        if isinstance(exc, _RETRYABLE):
            kind = RetryableError
        elif self.connection.closed or _lost(exc):
            kind = ConnectionLostError
        return kind(f"run store {self.where}: {message}")

    def _ask(self, call: Callable[[], T]) -> T:
        """``call``, asked again on a new connection when the connection broke (outside a
        transaction: a transaction is retried whole, by the store)."""
        self._reopen()
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return call()
            except psycopg.Error as exc:
                error = self._error(exc)
                last = attempt == WRITE_ATTEMPTS - 1
                if self._in_transaction or self._connect is None or last:
                    raise error from exc
                if not isinstance(error, ConnectionLostError):
                    raise error from exc
            self.reconnect()  # a new connection may be lost too: asked again, bounded
        raise AssertionError("unreachable")  # pragma: no cover

    def all(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        return self._ask(
            lambda: self.connection.execute(translate(sql), _storable(args)).fetchall()
        )

    def one(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> tuple[Any, ...] | None:
        return self._ask(
            lambda: self.connection.execute(translate(sql), _storable(args)).fetchone()
        )

    def run(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> None:
        self._ask(lambda: self.connection.execute(translate(sql), _storable(args)))

    def require(self, sql: str, args: tuple[Any, ...], error: Exception) -> None:
        """(A division by zero when no row is found: the transaction fails at its sync.)"""
        self._required = error
        self.run(f"SELECT 1 / COUNT(*) FROM ({sql}) AS required", args)

    def changed(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> int:
        """(``RETURNING``: a count that needs no sync of the pipeline.)"""
        return len(self.all(f"{sql} RETURNING 1", args))

    def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return

        def execute() -> None:
            with self.connection.cursor() as cursor:
                cursor.executemany(translate(sql), [_storable(row) for row in rows])

        self._ask(execute)

    def lock_run(self, run_id: str) -> None:
        """Hold the run's advisory lock until the transaction ends: two writers of one run
        then number its rows one after the other."""
        self.run("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (run_id,))

    @contextmanager
    def transaction(self) -> Iterator[PostgresDb]:
        """One transaction in pipeline mode: statements whose results nobody reads go out
        together, so a commit costs two round trips (the run's numbers read, the rest).
        Marked with the next batch number when ``marking``."""
        self._reopen()
        self.batch += 1
        self._in_transaction = True
        self._required = None
        try:
            with self.connection.pipeline(), self.connection.transaction():
                if self.marking:
                    self.connection.execute(
                        "INSERT INTO store_writers VALUES (%s, %s, %s) ON CONFLICT (writer)"
                        " DO UPDATE SET batch = excluded.batch, at = excluded.at",
                        (self.writer, self.batch, time.time()),
                    )
                yield self
        except psycopg.Error as exc:  # raised when the pipeline syncs, or by COMMIT
            raise self._error(exc) from exc
        finally:
            self._in_transaction = False

    def applied(self, batch: int) -> bool:
        """Whether write transaction ``batch`` of this store committed (asked after a
        reconnect, when the connection broke before its answer came). The mark's row is
        locked first: if the old session is still finishing that transaction (only the
        client saw the break), this waits for its outcome, at most the reconnect budget."""
        wait_ms = max(1, int(reconnect_seconds() * 1000))
        try:
            with self.connection.transaction():
                self.connection.execute(f"SET LOCAL lock_timeout = {wait_ms}")
                self.connection.execute(
                    "INSERT INTO store_writers VALUES (%s, 0, %s) ON CONFLICT (writer) DO NOTHING",
                    (self.writer, time.time()),
                )
                row = self.connection.execute(
                    "SELECT batch FROM store_writers WHERE writer = %s FOR UPDATE", (self.writer,)
                ).fetchone()
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        return row is not None and int(row[0]) >= batch

    def reconnect(self) -> None:
        """Open the connection again, backing off, for at most ``WFKIT_STORE_RECONNECT``
        seconds; past that a :class:`StoreError` names the server and what to do."""
        import stamina
        import stamina.instrumentation

        assert self._connect is not None
        stamina.instrumentation.set_on_retry_hooks([])  # the outcome is reported, not each try
        budget = reconnect_seconds()
        with contextlib.suppress(Exception):
            self.connection.close()
        try:
            for attempt in stamina.retry_context(
                on=StoreUnreachableError,
                attempts=None,
                timeout=budget,
                wait_initial=0.2,
                wait_max=2.0,
                wait_jitter=0.2,
            ):
                with attempt:
                    self.connection = self._connect()
        except StoreUnreachableError as exc:
            raise StoreError(
                f"lost the run store at {self.server}, which did not come back within"
                f" {budget:g} s (WFKIT_STORE_RECONNECT; the last try: {_cause(exc)}): this"
                " process stopped"
                " and its run is interrupted: `wfkit resume` continues it once the server is"
                " back"
            ) from None

    def release(self) -> None:
        """Give the connection back to the server while the run only waits (a long step, a
        retry's wait): the next statement opens one again. Many runs then share a server's
        ``max_connections``."""
        if not self._in_transaction and not self.connection.closed and self._connect:
            self.released = True
            with contextlib.suppress(psycopg.Error):
                self.connection.close()

    def _reopen(self) -> None:
        """Open the connection again after ``release`` (waiting, as a reconnect does, for a
        server that is full)."""
        if self.released:
            self.released = False
            self.reconnect()

    def close(self) -> None:
        if self.marking and not self.connection.closed:
            with contextlib.suppress(psycopg.Error):  # this store's mark, and the forgotten
                self.connection.execute(  # marks of processes that ended without closing
                    "DELETE FROM store_writers WHERE writer = %s OR at < %s",
                    (self.writer, time.time() - 86_400),
                )
        self.connection.close()
