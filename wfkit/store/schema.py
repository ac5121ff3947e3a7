"""The tables of a run store, written once for both databases.

The template's types are filled per database (SQLite's ``REAL``/``INTEGER``/``BLOB``,
PostgreSQL's ``DOUBLE PRECISION``/``BIGINT``/``BYTEA``). Tables read back in insertion order
(``runs``, ``outputs``, ``checkpoint_log``) use SQLite's implicit ``rowid``; PostgreSQL has
none, so they get an identity column ``rid`` there, and the shared SQL's ``rowid`` is
translated to it (:mod:`wfkit.store.postgres`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wfkit.errors import StoreError

_TEMPLATE = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    workflow    TEXT NOT NULL,
    file        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    status      TEXT NOT NULL,
    inputs      TEXT NOT NULL,
    started_at  {real} NOT NULL,
    finished_at {real},
    duration_ms {real},
    state       TEXT,
    error       TEXT,
    pid         {int},
    current     TEXT,
    errors_dropped {int} NOT NULL DEFAULT 0,
    structure   TEXT,
    process     TEXT,
    parent      TEXT,
    lease_until {real}{order}
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started_at DESC);
CREATE TABLE IF NOT EXISTS steps (
    run_id      TEXT NOT NULL,
    seq         {int} NOT NULL,
    step_id     TEXT NOT NULL,
    step_type   TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    {int} NOT NULL,
    duration_ms {real} NOT NULL,
    finished_at {real} NOT NULL,
    error_type  TEXT,
    item        {int},
    injected    {int} NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS errors (
    run_id      TEXT NOT NULL,
    idx         {int} NOT NULL,
    step_id     TEXT NOT NULL,
    error_type  TEXT NOT NULL,
    message     TEXT NOT NULL,
    stack_trace TEXT,
    timestamp   {real} NOT NULL,
    retry_count {int} NOT NULL,
    recovered   {int} NOT NULL,
    details     TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id      TEXT NOT NULL,
    frame       TEXT NOT NULL,
    cursor      TEXT NOT NULL,
    updated_at  {real} NOT NULL,
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
    data        TEXT NOT NULL{order}
);
CREATE INDEX IF NOT EXISTS checkpoint_log_run ON checkpoint_log(run_id);
CREATE TABLE IF NOT EXISTS traces (
    run_id      TEXT NOT NULL,
    idx         {int} NOT NULL,
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
    failures    {int} NOT NULL,
    opened_at   {real} NOT NULL,
    updated_at  {real} NOT NULL,
    PRIMARY KEY (workflow, name)
);
CREATE TABLE IF NOT EXISTS outputs (
    run_id      TEXT NOT NULL,
    okey        TEXT NOT NULL,
    step_id     TEXT NOT NULL,
    item        {int},
    execution   {int} NOT NULL,
    attempt     {int} NOT NULL,
    kind        TEXT NOT NULL,
    started_at  {real} NOT NULL,
    finished_at {real},
    status      TEXT NOT NULL,
    exit_code   {int},
    stdout_bytes   {int} NOT NULL DEFAULT 0,
    stdout_dropped {int} NOT NULL DEFAULT 0,
    stderr_bytes   {int} NOT NULL DEFAULT 0,
    stderr_dropped {int} NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, okey){order}
);
CREATE TABLE IF NOT EXISTS output_chunks (
    run_id    TEXT NOT NULL,
    okey      TEXT NOT NULL,
    stream    TEXT NOT NULL,
    seq       {int} NOT NULL,
    head      {int} NOT NULL,
    timestamp {real} NOT NULL,
    data      {blob} NOT NULL,
    PRIMARY KEY (run_id, okey, stream, seq)
);
CREATE TABLE IF NOT EXISTS cancel_requests (
    run_id       TEXT PRIMARY KEY,
    requested_at {real} NOT NULL,
    requested_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schema_compat (
    version       {int} PRIMARY KEY,
    writable_from {int} NOT NULL,
    written_by    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    digest    TEXT PRIMARY KEY,
    text      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agent_tasks (
    task_id     TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    step_id     TEXT NOT NULL,
    item        {int},
    attempt     {int} NOT NULL,
    request     TEXT NOT NULL,
    status      TEXT NOT NULL,
    worker      TEXT,
    lease_until {real},
    created_at  {real} NOT NULL,
    reply       TEXT
);
CREATE INDEX IF NOT EXISTS agent_tasks_run ON agent_tasks(run_id, status, created_at);
CREATE TABLE IF NOT EXISTS pulled_runs (
    run_id      TEXT PRIMARY KEY,
    since       {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    run_id    TEXT NOT NULL,
    seq       {int} NOT NULL,
    step_id   TEXT,
    level     TEXT NOT NULL,
    text      TEXT NOT NULL,
    timestamp {real} NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""


@dataclass(frozen=True)
class Types:
    """A database's names for the template's column types."""

    real: str
    int: str
    blob: str
    order: str  # the insertion-order column, when the database has no implicit one


SQLITE = Types(real="REAL", int="INTEGER", blob="BLOB", order="")
POSTGRES = Types(
    real="DOUBLE PRECISION",
    int="BIGINT",
    blob="BYTEA",
    order=",\n    rid BIGINT GENERATED ALWAYS AS IDENTITY",
)


def statements(types: Types) -> list[str]:
    """The schema's statements for one database, one by one."""
    text = _TEMPLATE.format(real=types.real, int=types.int, blob=types.blob, order=types.order)
    return [s.strip() for s in text.split(";") if s.strip()]


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
    "agent_tasks",
    "pulled_runs",
)

#: every table of the schema (``sources``: the workflow texts runs were started from, by
#: digest, shared by the runs of one text)
TABLES = (*RUN_TABLES, "breakers", "sources")

#: the columns of ``runs`` as :class:`wfkit.store.base.RunRow` reads them
RUN_COLUMNS = (
    "run_id, workflow, file, digest, status, inputs, started_at, finished_at, duration_ms,"
    " state, error, pid, current, errors_dropped, structure, process, parent"
)


WRITABLE_FROM = 1
"""The oldest schema version whose wfkit may still write a store of this schema: every
migration so far is additive (a new table, a nullable column), so every wfkit may. A
migration that is not raises it, and older wfkits then only read."""


def compat_row(version: int) -> tuple[int, int, str]:
    """The ``schema_compat`` row a migration to ``version`` writes."""
    from wfkit import __version__

    return (version, WRITABLE_FROM, __version__)


def check_newer(
    one: Callable[[str], tuple[Any, ...] | None],
    version: int,
    known: int,
    where: str,
    read_only: bool,
) -> None:
    """A store of a newer schema (``version`` > ``known``) is read as it is; written only
    when its ``schema_compat`` says this wfkit's schema may write it, else refused naming
    the wfkit that can."""
    row = one("SELECT writable_from, written_by FROM schema_compat ORDER BY version DESC LIMIT 1")
    if read_only or (row is not None and int(row[0]) <= known):
        return
    needed = f"schema {row[0]} (wfkit {row[1]} writes it)" if row else f"schema {version}"
    raise StoreError(
        f"store {where} was written by a newer wfkit (schema {version}); writing it needs"
        f" {needed}, this wfkit writes schema {known}: read-only commands (runs, debug,"
        " report) still work"
    )


def lease_column(now: str) -> str:
    """The seconds left of a run's lease by the database's clock ``now`` (an SQL
    expression): negative once the run's process stopped renewing it."""
    return f"lease_until - {now}"
