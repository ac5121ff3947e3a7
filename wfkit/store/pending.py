"""Rows on their way to the run store, grouped until the next commit."""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wfkit.engine.events import (
    BreakerChanged,
    Checkpoint,
    ErrorRecorded,
    ErrorsRecovered,
    Event,
    FrameDropped,
    Message,
    OutputChunk,
    OutputFinished,
    OutputStarted,
    OutputTrimmed,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    ToolServerLog,
    TracesCollected,
)
from wfkit.errors import LeaseLostError
from wfkit.language.values import MISSING, dumps

if TYPE_CHECKING:
    from wfkit.store.base import Db

#: the ``messages`` level under which a tool server's stderr is kept
SERVER_LOG = "server_log"


def process_identity(pid: int | None = None) -> str | None:
    """``host/boot id/start time`` of a process (this one by default), or None when it is gone
    or this is not Linux: two processes never share it, even when they share a pid."""
    pid = pid or os.getpid()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    start = stat.rsplit(")", 1)[1].split()[19]  # field 22: start time in ticks since boot
    return f"{socket.gethostname()}/{boot}/{start}"


_OWN: dict[int, str | None] = {}


def own_identity() -> str | None:
    """This process's :func:`process_identity`, read once per process (a commit asks)."""
    pid = os.getpid()
    if pid not in _OWN:  # a forked child is another process
        _OWN.clear()
        _OWN[pid] = process_identity(pid)
    return _OWN[pid]


#: a run that is still this process's: running, under its pid and process identity
OWNED = (
    "SELECT 1 FROM runs WHERE run_id = ? AND status = 'running' AND pid = ?"
    " AND COALESCE(process, '') = ?"
)
#: a run's highest step or message number in the database
HIGHEST_SEQ = (
    "SELECT MAX(seq) FROM (SELECT MAX(seq) AS seq FROM steps WHERE run_id = ?"
    " UNION ALL SELECT MAX(seq) FROM messages WHERE run_id = ?) AS m"
)


class Pending:
    """Rows waiting for the next commit, coalesced where a later row replaces an earlier one.

    Checkpoint values are serialized when the checkpoint is taken, so state written after it
    can never leak into it; of several checkpoints of a frame only the last cursor and the
    last value of each name are written.
    """

    def __init__(self) -> None:
        self.ops: list[tuple[str, tuple[Any, ...]]] = []  # in order: runs rows, deletions
        self.steps: list[tuple[Any, ...]] = []
        self.messages: list[tuple[Any, ...]] = []
        self.errors: dict[tuple[str, int], tuple[Any, ...]] = {}
        self.recovered: list[tuple[str, int]] = []
        self.breakers: dict[tuple[str, str], tuple[Any, ...]] = {}
        self.cursors: dict[tuple[str, str], tuple[Any, ...]] = {}
        self.values: dict[tuple[str, str], dict[tuple[str, str], str | None]] = {}
        #: characters of checkpointed values held here (the store commits past a bound)
        self.value_chars = 0
        #: the main frame's values by the top-level step that wrote them (``resume --from``):
        #: run -> top-level index -> "tier/name" -> serialized value; one row per commit
        self.log: dict[str, dict[int, dict[str, str | None]]] = {}
        self.finished: list[RunFinished] = []
        #: runs whose rows are written only while they are this process's (leased runs)
        self.owned: set[str] = set()
        self.traces: list[TracesCollected] = []
        #: output rows: head chunks (kept for good), and tail chunks per (run, attempt key,
        #: stream) in seq order, so a trim pops only what it drops
        self.heads: list[tuple[Any, ...]] = []
        self.tails: dict[tuple[str, str, str], deque[tuple[Any, ...]]] = {}
        #: (run, attempt key, stream) -> last trimmed seq, for rows already in the database
        self.trims: dict[tuple[str, str, str], int] = {}

    def __bool__(self) -> bool:
        return bool(
            self.ops
            or self.steps
            or self.messages
            or self.errors
            or self.recovered
            or self.breakers
            or self.traces
            or self.cursors
            or self.values
            or self.finished
            or self.heads
            or self.tails
            or self.trims
            or self.log
        )

    def add(
        self, event: Event, next_seq: Callable[[str], int], stored: set[tuple[str, str]]
    ) -> None:
        if isinstance(event, Checkpoint):
            self._checkpoint(event)
        elif isinstance(event, StepFinished):
            self.steps.append(
                (
                    event.run_id,
                    next_seq(event.run_id),
                    event.step_id,
                    event.step_type,
                    event.status,
                    event.attempts,
                    event.duration_ms,
                    event.timestamp,
                    event.error_type,
                    event.item,
                    int(event.injected),
                )
            )
        elif isinstance(event, ErrorRecorded):
            e = event.error
            self.errors[(event.run_id, event.index)] = (
                event.run_id,
                event.index,
                e.step_id,
                e.error_type,
                e.message,
                e.stack_trace,
                e.timestamp,
                e.retry_count,
                int(e.recovered),
                dumps(e.details),
            )
        elif isinstance(event, ErrorsRecovered):
            self.recovered.extend((event.run_id, i) for i in event.indexes)
        elif isinstance(event, BreakerChanged):
            self.breakers[(event.workflow, event.name)] = (
                event.workflow,
                event.name,
                event.state,
                event.failures,
                event.opened_at,
                time.time(),
            )
        elif isinstance(event, Message):
            self.messages.append(
                (
                    event.run_id,
                    next_seq(event.run_id),
                    event.step_id,
                    event.level,
                    event.text,
                    event.timestamp,
                )
            )
        elif isinstance(event, ToolServerLog):  # kept with the messages, under its own level
            self.messages.append(
                (
                    event.run_id,
                    next_seq(event.run_id),
                    event.server,
                    SERVER_LOG,
                    event.text,
                    event.timestamp,
                )
            )
        elif isinstance(event, FrameDropped):
            key = (event.run_id, event.frame)
            self.cursors.pop(key, None)
            self.values.pop(key, None)
            if key in stored:  # rows of it reached the database: delete them there too
                stored.discard(key)
                for table in ("checkpoints", "checkpoint_values"):
                    self.ops.append((f"DELETE FROM {table} WHERE run_id = ? AND frame = ?", key))
        elif isinstance(event, OutputChunk):
            row = (
                event.run_id,
                event.key,
                event.stream,
                event.seq,
                int(event.head),
                event.timestamp,
                event.data,
            )
            if event.head:
                self.heads.append(row)
            else:
                self.tails.setdefault((event.run_id, event.key, event.stream), deque()).append(row)
        elif isinstance(event, OutputTrimmed):
            self._trim(event)
        elif isinstance(event, OutputStarted):
            self.ops.append(
                (
                    "INSERT INTO outputs (run_id, okey, step_id, item, execution, attempt, kind,"
                    " started_at, status) VALUES (?,?,?,?,?,?,?,?,'running')",
                    (
                        event.run_id,
                        event.key,
                        event.step_id,
                        event.item,
                        event.execution,
                        event.attempt,
                        event.kind,
                        event.timestamp,
                    ),
                )
            )
        elif isinstance(event, OutputFinished):
            self.ops.append(
                (
                    "UPDATE outputs SET status=?, exit_code=?, finished_at=?, stdout_bytes=?,"
                    " stdout_dropped=?, stderr_bytes=?, stderr_dropped=?"
                    " WHERE run_id=? AND okey=?",
                    (
                        event.status,
                        event.exit_code,
                        event.timestamp,
                        event.stdout_bytes,
                        event.stdout_dropped,
                        event.stderr_bytes,
                        event.stderr_dropped,
                        event.run_id,
                        event.key,
                    ),
                )
            )
        elif isinstance(event, RunStarted) and event.resumed:
            self.ops.append(
                (
                    "UPDATE runs SET status = 'running', digest = ?, pid = ?, process = ?,"
                    " finished_at = NULL, inputs = ?, structure = COALESCE(?, structure)"
                    " WHERE run_id = ?",
                    (
                        event.digest,
                        os.getpid(),
                        own_identity(),
                        dumps(event.inputs),
                        dumps(event.structure) if event.structure is not None else None,
                        event.run_id,
                    ),
                )
            )
            # a cancel request was for the run as it was: the resumed run starts afresh
            self.ops.append(("DELETE FROM cancel_requests WHERE run_id = ?", (event.run_id,)))
        elif isinstance(event, RunStarted):
            self.ops.append(
                (
                    "INSERT INTO runs (run_id, workflow, file, digest, status, inputs, started_at,"
                    " pid, structure, process, parent) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        event.run_id,
                        event.workflow,
                        event.file,
                        event.digest,
                        "running",
                        dumps(event.inputs),
                        event.started_at,
                        os.getpid(),
                        dumps(event.structure) if event.structure is not None else None,
                        own_identity(),
                        event.parent,
                    ),
                )
            )
        elif isinstance(event, RunFinished):
            self.finished.append(event)
        elif isinstance(event, TracesCollected):
            self.traces.append(event)
        elif isinstance(event, StepStarted):
            self.ops.append(
                ("UPDATE runs SET current = ? WHERE run_id = ?", (event.step_id, event.run_id))
            )

    def _checkpoint(self, event: Checkpoint) -> None:
        key = (event.run_id, event.frame)
        self.cursors[key] = (event.run_id, event.frame, dumps(event.cursor), time.time())
        values = self.values.setdefault(key, {})
        log = None
        if event.frame == "main" and event.cursor:
            log = self.log.setdefault(event.run_id, {}).setdefault(event.cursor[0]["i"], {})
        for change, value in event.changes.items():
            text = values[change] = None if value is MISSING else dumps(value)
            self.value_chars += len(text) if text is not None else 0
            if log is not None and (text is not None or change[0] != "memory"):
                # a remembered value's end is no change of state: its last value stays
                # there for the report (a fan-out's item entries)
                log[f"{change[0]}/{change[1]}"] = text

    def _trim(self, event: OutputTrimmed) -> None:
        """Drop trimmed tail chunks: unwritten ones here, written ones at the next commit."""
        stream = (event.run_id, event.key, event.stream)
        tail = self.tails.get(stream)
        while tail and tail[0][3] <= event.upto:  # in seq order: the oldest go first
            tail.popleft()
        self.trims[stream] = event.upto

    def write(self, db: Db) -> dict[str, int]:
        """Write the rows in the open transaction ``db``; the runs whose step and message
        numbers had to move past rows another writer added meanwhile, with their last number.
        """
        steps, messages, renumbered = self._numbered(db)
        for sql, args in self.ops:
            db.run(sql, args)
        for run_id in sorted(self.owned):  # in the transaction: never after a successor's rows
            db.require(
                OWNED,
                (run_id, os.getpid(), own_identity() or ""),
                LeaseLostError(f"run {run_id} is no longer this process's", run_id=run_id),
            )
        db.many(
            "DELETE FROM output_chunks WHERE run_id = ? AND okey = ? AND stream = ?"
            " AND seq <= ? AND head = 0",
            [(*key, upto) for key, upto in self.trims.items()],
        )
        db.many(
            "INSERT INTO output_chunks VALUES (?,?,?,?,?,?,?)",
            [*self.heads, *(row for tail in self.tails.values() for row in tail)],
        )
        db.many(
            "INSERT INTO checkpoint_log VALUES (?, ?)",
            [(run_id, dumps(tops)) for run_id, tops in self.log.items()],
        )
        db.many("INSERT INTO steps VALUES (?,?,?,?,?,?,?,?,?,?,?)", steps)
        db.many("INSERT INTO messages VALUES (?,?,?,?,?,?)", messages)
        db.many(
            "INSERT INTO errors VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id, idx) DO UPDATE"
            " SET step_id = excluded.step_id, error_type = excluded.error_type,"
            " message = excluded.message, stack_trace = excluded.stack_trace,"
            " timestamp = excluded.timestamp, retry_count = excluded.retry_count,"
            " recovered = excluded.recovered, details = excluded.details",
            list(self.errors.values()),
        )
        db.many("UPDATE errors SET recovered = 1 WHERE run_id = ? AND idx = ?", self.recovered)
        db.many(  # in key order: writers of one workflow's breakers never wait in a cycle
            "INSERT INTO breakers VALUES (?,?,?,?,?,?) ON CONFLICT (workflow, name) DO UPDATE"
            " SET state = excluded.state, failures = excluded.failures,"
            " opened_at = excluded.opened_at, updated_at = excluded.updated_at",
            [self.breakers[key] for key in sorted(self.breakers)],
        )
        db.many(
            "INSERT INTO checkpoints VALUES (?,?,?,?) ON CONFLICT (run_id, frame) DO UPDATE"
            " SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            list(self.cursors.values()),
        )
        db.many(
            "INSERT INTO checkpoint_values VALUES (?,?,?,?,?)"
            " ON CONFLICT (run_id, frame, tier, name) DO UPDATE SET value = excluded.value",
            [
                (*frame, tier, name, value)
                for frame, values in self.values.items()
                for (tier, name), value in values.items()
            ],
        )
        for collected in self.traces:
            top = db.one("SELECT MAX(idx) FROM traces WHERE run_id = ?", (collected.run_id,))
            start = 0 if top is None or top[0] is None else top[0] + 1
            rows = [
                (
                    collected.run_id,
                    start + i,
                    r["kind"],
                    r.get("step_id"),
                    r.get("field"),
                    dumps(r),
                )
                for i, r in enumerate(collected.records)
            ]
            if collected.dropped:
                rows.append(
                    (
                        collected.run_id,
                        start + len(rows),
                        "dropped",
                        None,
                        None,
                        dumps({"kind": "dropped", "count": collected.dropped}),
                    )
                )
            db.many("INSERT INTO traces VALUES (?,?,?,?,?,?)", rows)
        mine = (os.getpid(), own_identity() or "") if self.finished else ()
        for event in self.finished:
            db.run(  # only while the run is this process's (not taken over after its lease)
                "UPDATE runs SET status=?, finished_at=?, duration_ms=?, state=?, error=?,"
                " errors_dropped=?, lease_until=NULL WHERE run_id=? AND status='running'"
                " AND pid=? AND COALESCE(process, '') = ?",
                (
                    event.status,
                    event.finished_at,
                    event.duration_ms,
                    dumps(event.state) if event.state is not None else None,
                    dumps(event.error) if event.error else None,
                    event.errors_dropped,
                    event.run_id,
                    *mine,
                ),
            )
            if event.status == "succeeded":  # nothing left to resume
                for table in ("checkpoints", "checkpoint_values"):
                    db.run(f"DELETE FROM {table} WHERE run_id = ?", (event.run_id,))
        return renumbered

    def numbers(self, db: Db) -> dict[str, int]:
        """What :meth:`write` returns, read back after the batch was found committed (its
        answer lost with a broken connection): the highest numbers of its runs."""
        found: dict[str, int] = {}
        for run_id in sorted({row[0] for row in (*self.steps, *self.messages)}):
            top = db.one(HIGHEST_SEQ, (run_id, run_id))
            if top is not None and top[0] is not None:
                found[run_id] = int(top[0])
        return found

    def _numbered(
        self, db: Db
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], dict[str, int]]:
        """The step and message rows with numbers past every row of their run in the database.

        A store counts a run's numbers from what the database held when it first wrote to
        the run; when another writer (another process, machine or store) added rows to it
        since, this batch moves past them, in the order it numbered them. The run is locked
        first, so two writers of one run never read the same highest number.
        """
        runs = sorted({row[0] for row in self.steps} | {row[0] for row in self.messages})
        moved: dict[str, int] = {}
        for run_id in runs:
            db.lock_run(run_id)
            top = db.one(HIGHEST_SEQ, (run_id, run_id))
            highest = top[0] if top is not None and top[0] is not None else 0
            first = min(row[1] for row in (*self.steps, *self.messages) if row[0] == run_id)
            if first > highest:
                continue
            rows = sorted(
                (
                    (row[1], kind, n)
                    for kind, table in enumerate((self.steps, self.messages))
                    for n, row in enumerate(table)
                    if row[0] == run_id
                )
            )
            moved[run_id] = highest + len(rows)
            moves = {(kind, n): highest + i + 1 for i, (_, kind, n) in enumerate(rows)}
            self.steps, self.messages = (
                [
                    (row[0], moves[(kind, n)], *row[2:]) if (kind, n) in moves else row
                    for n, row in enumerate(table)
                ]
                for kind, table in enumerate((self.steps, self.messages))
            )
        return self.steps, self.messages, moved
