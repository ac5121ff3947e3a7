"""The run store's interface: what the commands call, whichever database holds the runs.

Two implementations: :class:`wfkit.store.sqlite.RunStore` (one file, the default) and
:class:`wfkit.store.postgres.PostgresStore` (a server that many machines share). Both write
and read through the same SQL (:mod:`wfkit.store.sql`); ``open_store`` picks one from a path
or a ``postgresql://`` URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from wfkit.errors import StoreError

if TYPE_CHECKING:
    from wfkit.engine.events import ErrorRecord, Event, Message
    from wfkit.engine.frame import FrameCheckpoint


#: text no database can hold: lone surrogates (from a ``from_json`` of ``"\\udc80"``, or a
#: command line's undecodable bytes) are not UTF-8
UNSTORABLE = re.compile("[\ud800-\udfff]")
#: PostgreSQL's text can hold no NUL either
UNSTORABLE_IN_POSTGRES = re.compile("[\x00\ud800-\udfff]")


def storable(args: Sequence[Any], unstorable: re.Pattern[str] = UNSTORABLE) -> Sequence[Any]:
    """``args`` of a statement with text the database refuses written out as escapes
    (``\\udc80``, ``\\x00``), so a run records what it saw instead of failing; other
    arguments, and rows without such text, are passed as they are."""
    if not any(isinstance(arg, str) and unstorable.search(arg) for arg in args):
        return args
    return tuple(unstorable.sub(_escaped, arg) if isinstance(arg, str) else arg for arg in args)


def _escaped(found: re.Match[str]) -> str:
    return found.group().encode("unicode_escape", "backslashreplace").decode("ascii")


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
    parent: str | None = None  # the run whose workflow step started this one
    #: seconds left of the lease its process renews (by the store's clock; negative: the
    #: process stopped renewing it); None for a run recorded before leases or finished
    lease_left: float | None = None


@dataclass(frozen=True)
class TaskRow:
    """One attempt of an agent step, as the store keeps it."""

    task_id: str
    run_id: str
    step_id: str
    item: int | None
    attempt: int
    request: dict[str, Any]
    status: str
    worker: str | None
    lease_until: float | None
    created_at: float
    reply: dict[str, Any] | None


class Store(Protocol):
    """A run store as the commands use it: an event sink for a run, and the reads of
    ``runs``, ``debug``, ``logs``, ``trace``, ``why``, ``diff``, ``resume`` and ``prune``."""

    #: opened read-only: nothing is created, migrated or written
    read_only: bool
    #: no store there (read-only or ``create=False``): it reads as an empty one
    missing: bool
    #: seconds a run of this process stays ``running`` for others without a renewal
    lease: float
    #: seconds without a write after which a run gives a server's connection back (None:
    #: kept, as a file's is)
    idle_release: float | None

    @property
    def location(self) -> str:
        """Where the store is, for messages and reports (a URL never shows its password)."""

    @property
    def path(self) -> Path | None:
        """The store's file on this machine; None for a server."""

    def __enter__(self) -> Store: ...
    def __exit__(self, *exc: object) -> None: ...
    def close(self) -> None: ...

    # writing
    def __call__(self, event: Event) -> None: ...
    def commit(self) -> None: ...
    def flush_if_due(self) -> None: ...
    def quiet(self) -> bool:
        """Nothing written for a while: the run only waits, its connection can go back."""

    def release(self) -> None:
        """Give a server's connection back until the next statement (a file's: kept)."""

    def request_cancel(self, run_id: str, by: str) -> None: ...
    def cancel_requested(self, run_id: str) -> bool: ...
    def add_agent_task(self, task: TaskRow) -> None: ...
    def agent_task(self, task_id: str) -> TaskRow | None: ...
    def claim_agent_task(self, run_id: str, worker: str, lease: float) -> TaskRow | None: ...
    def complete_agent_task(self, task_id: str, status: str, reply: dict[str, Any]) -> bool: ...
    def end_agent_task(self, task_id: str, status: str, was: tuple[str, ...]) -> bool: ...
    def withdraw_agent_tasks(self, run_id: str, before: float) -> int: ...
    def mark_pulled(self, run_id: str) -> None: ...
    def pulled(self, run_id: str) -> bool: ...
    def release_agent_task(self, task_id: str, worker: str) -> bool: ...
    def agent_tasks_of(self, run_id: str) -> list[TaskRow]: ...
    def renew_lease(self, run_id: str) -> bool: ...
    def fenced(self, run_id: str) -> bool: ...
    def keep_source(self, digest: str, text: str) -> None: ...
    def source(self, digest: str) -> str | None: ...
    def set_status(self, run_id: str, status: str, seen: RunRow | None = None) -> bool: ...
    def claim(self, row: RunRow) -> bool: ...
    def reset_to(self, run_id: str, top: int) -> FrameCheckpoint: ...
    def delete_runs(self, run_ids: list[str]) -> None: ...
    def reclaim(self) -> None: ...

    # reading
    def list_runs(
        self,
        limit: int = 100,
        *,
        statuses: list[str] | None = None,
        workflow: str | None = None,
        since: float | None = None,
    ) -> list[RunRow]: ...
    def get_run(self, run_id: str) -> RunRow: ...
    def children_of(self, run_id: str) -> list[str]: ...
    def errors(self, run_id: str) -> list[ErrorRecord]: ...
    def step_history(self, run_id: str) -> list[dict[str, Any]]: ...
    def load_frame(self, run_id: str, frame: str) -> FrameCheckpoint | None: ...
    def messages(self, run_id: str) -> list[Message]: ...
    def server_logs(self, run_id: str) -> dict[str, str]: ...
    def traces(self, run_id: str) -> list[dict[str, Any]]: ...
    def checkpoint_log(self, run_id: str) -> list[dict[str, dict[str, str | None]]]: ...
    def decisions(self, run_id: str) -> list[dict[str, Any]]: ...
    def has_traces(self, run_id: str) -> bool: ...
    def breakers(self, workflow: str) -> dict[str, dict[str, object]]: ...
    def outputs(
        self,
        run_id: str,
        *,
        step: str | None = None,
        attempt: int | None = None,
        item: int | None = None,
    ) -> list[OutputRow]: ...
    def chunks(
        self, run_id: str, key: str, after: dict[str, int] | None = None
    ) -> list[ChunkRow]: ...

    # upkeep
    def size_bytes(self) -> int: ...
    def integrity(self) -> str: ...


class Db(Protocol):
    """The few calls the shared SQL makes on a connection (``?`` placeholders, ``rowid``
    for insertion order); each backend translates them for its database."""

    #: the database's clock in UNIX seconds, as an SQL expression (leases are measured by
    #: it, so machines with different clocks agree)
    now: str

    def all(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]: ...
    def one(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> tuple[Any, ...] | None: ...
    def run(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> None: ...
    def changed(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> int:
        """Run an UPDATE or DELETE; how many rows it changed."""

    def require(self, sql: str, args: tuple[Any, ...], error: Exception) -> None:
        """In a transaction: fail it with ``error`` when ``sql`` finds no row (on
        PostgreSQL when the pipeline syncs, without a round trip of its own)."""

    def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None: ...
    def lock_run(self, run_id: str) -> None: ...
    def transaction(self) -> AbstractContextManager[Db]: ...
    def release(self) -> None:
        """Close the connection until the next statement (a server's: it has few)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class OutputRow:
    """One attempt of one step execution that produced output."""

    key: str
    step_id: str
    item: int | None
    execution: int
    attempt: int
    kind: str
    started_at: float
    finished_at: float | None
    status: str
    exit_code: int | None
    stdout_bytes: int
    stdout_dropped: int
    stderr_bytes: int
    stderr_dropped: int


@dataclass(frozen=True)
class ChunkRow:
    """Bytes of one stream of an attempt, as they arrived."""

    key: str
    stream: str
    seq: int
    head: bool
    timestamp: float
    data: bytes


def env_seconds(name: str, default: float, minimum: float) -> float:
    """The environment variable ``name`` as seconds (at least ``minimum``), else
    ``default``; anything else is a :class:`StoreError` naming the variable."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not minimum <= value < float("inf"):
        raise StoreError(f"{name}: {text!r} is not a number of seconds (at least {minimum:g})")
    return value
