"""What both run stores share: the event sink, grouped commits, and every query.

The SQL is written once, with ``?`` placeholders, ``ON CONFLICT`` upserts and ``rowid`` for
insertion order; a backend gives a :class:`~wfkit.store.base.Db` that runs it on its
database (the PostgreSQL one rewrites placeholders and ``rowid``). Backends only open
connections, create or migrate the schema and measure their size.

Writes are grouped: rows collect in memory (:mod:`wfkit.store.pending`) and go to the
database in one short transaction before and after every step with external effects
(``effectful`` events), when a run starts or ends, and at least every ``COMMIT_INTERVAL``
seconds. A crash can therefore lose only the rows of pure, in-memory steps since the last
commit, and replaying those from the committed state is indistinguishable from their first
execution.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from wfkit.engine.events import (
    ErrorRecord,
    Event,
    Message,
    RetryScheduled,
    RunFinished,
    RunStarted,
    StepStarted,
)
from wfkit.engine.frame import FrameCheckpoint
from wfkit.engine.state import MISSING
from wfkit.errors import LeaseLostError, RunNotFoundError, StoreError
from wfkit.store.agent_tasks import AgentTasks
from wfkit.store.base import ChunkRow, Db, OutputRow, RunRow
from wfkit.store.leases import Leases, lease_seconds, lost_lease
from wfkit.store.outputs import read_chunks, read_outputs
from wfkit.store.pending import SERVER_LOG, Pending
from wfkit.store.schema import RUN_COLUMNS, RUN_TABLES, lease_column

COMMIT_INTERVAL = 0.2
#: checkpointed values held for the next commit, at most (characters): large values go out
#: at once instead of piling up for COMMIT_INTERVAL
PENDING_VALUE_CHARS = 4_000_000
#: attempts of a transaction the database aborted to break a deadlock or a conflict
WRITE_ATTEMPTS = 8
#: ids per ``DELETE ... IN (...)``: within SQLite's bound on host parameters
DELETE_BATCH = 500

T = TypeVar("T")


class RetryableError(StoreError):
    """The database aborted a transaction that can run again (deadlock, serialization)."""


class SqlStore(Leases, AgentTasks):
    """A run store over one connection; cheap to open, one per run or command.

    Subclasses set ``_sql`` (the connection), ``read_only``, ``missing``, ``location`` and
    ``path``, then call :meth:`_start`.
    """

    _sql: Db
    read_only: bool
    missing: bool

    def _start(self) -> None:
        self._seq: dict[str, int] = {}
        self._pending = Pending()
        self._last_commit = time.monotonic()
        #: (run id, frame) with checkpoint rows in the database (written or loaded here)
        self._stored_frames: set[tuple[str, str]] = set()
        #: how long a run of this process stays ``running`` for others without a renewal
        self.lease = lease_seconds()
        #: runs another process took over (their lease was lost): their events are dropped
        self._fenced: set[str] = set()
        self._renewed: dict[str, float] = {}
        self._columns = f"{RUN_COLUMNS}, {lease_column(self._sql.now)}"

    @property
    def location(self) -> str:
        raise NotImplementedError

    def _write(self, work: Callable[[Db], T], applied: Callable[[Db], T] | None = None) -> T:
        """``work`` in one transaction; run again when the database aborted it to break a
        deadlock between writers (PostgreSQL), with a short growing pause. ``applied`` reads
        back what ``work`` returned, for a store that lost its answer (PostgreSQL's
        reconnect)."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with self._sql.transaction() as db:
                    return work(db)
            except RetryableError:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Commit what is pending and close the connection."""
        try:
            self.commit()
        finally:
            self._sql.close()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next(self, run_id: str) -> int:
        """The next ``seq`` of the run's steps and messages, as this process counts.

        The numbers are provisional: a commit renumbers them after what the database holds
        when another writer added rows of the same run in between (``Pending.write``).
        """
        if run_id not in self._seq:  # a resumed run continues its numbering
            self._seq[run_id] = max(
                (
                    self._sql.one(
                        f"SELECT COALESCE(MAX(seq), 0) FROM {t} WHERE run_id = ?", (run_id,)
                    )
                    or (0,)
                )[0]
                for t in ("steps", "messages")
            )
        seq = self._seq[run_id] + 1
        self._seq[run_id] = seq
        return seq

    # writing: the store is an event sink ---------------------------------------------

    def __call__(self, event: Event) -> None:
        """Take one engine event; commit when the event calls for it (module docstring)."""
        if self._fenced and getattr(event, "run_id", None) in self._fenced:
            if isinstance(event, StepStarted) and event.effectful:
                raise lost_lease(event.run_id, self.lease)  # never a step its successor ran
            return
        if isinstance(event, StepStarted):
            if event.effectful:  # the step's effects start from a durable position
                self._still_mine(event.run_id)
                self._pending.add(event, self._next, self._stored_frames)
                self.commit()
                if event.run_id in self._fenced:  # found taken over as it committed
                    raise lost_lease(event.run_id, self.lease)
            return
        self._pending.add(event, self._next, self._stored_frames)
        if isinstance(event, RunStarted):  # the run is this process's for a lease
            self._renewed[event.run_id] = time.monotonic()
            self._pending.ops.append(
                (
                    f"UPDATE runs SET lease_until = {self._sql.now} + ? WHERE run_id = ?",
                    (self.lease, event.run_id),
                )
            )
        if (
            isinstance(event, (RunStarted, RunFinished, RetryScheduled))
            or getattr(event, "effectful", False)
            or time.monotonic() - self._last_commit >= COMMIT_INTERVAL
            or self._pending.value_chars >= PENDING_VALUE_CHARS
        ):
            self.commit()
        if isinstance(event, RunFinished):  # written: no lease to keep any more
            self._renewed.pop(event.run_id, None)

    def commit(self) -> None:
        """Write everything pending in one transaction."""
        self._last_commit = time.monotonic()
        if not self._pending:
            return
        self._still_mine_all()
        if not self._pending:
            return
        pending, self._pending = self._pending, Pending()
        pending.owned = set(self._renewed)
        try:
            renumbered = self._write(pending.write, pending.numbers)
        except LeaseLostError as lost:  # its rows are dropped; the run stops (execute_watched)
            self._fenced.add(lost.run_id)
            self._renewed.pop(lost.run_id, None)
            return
        for run_id, last in renumbered.items():
            self._seq[run_id] = max(self._seq.get(run_id, 0), last)
        self._stored_frames.update(pending.cursors)

    def flush_if_due(self) -> None:
        """Commit pending rows once ``COMMIT_INTERVAL`` has passed since the last commit.

        Called between events (a run's watcher task), so output of a step that writes a line
        and then goes quiet still reaches ``logs --follow`` within the interval.
        """
        if self._pending and time.monotonic() - self._last_commit >= COMMIT_INTERVAL:
            self.commit()

    def delete_runs(self, run_ids: list[str]) -> None:
        """Delete the runs and every row they own, in one transaction."""
        self.commit()

        def delete(db: Db) -> None:
            for start in range(0, len(run_ids), DELETE_BATCH):
                batch = sorted(run_ids[start : start + DELETE_BATCH])
                marks = ",".join("?" * len(batch))
                for table in RUN_TABLES:
                    db.run(f"DELETE FROM {table} WHERE run_id IN ({marks})", batch)
            db.run("DELETE FROM sources WHERE digest NOT IN (SELECT digest FROM runs)")

        if run_ids:
            self._write(delete)

    # reading ---------------------------------------------------------------------------

    def list_runs(
        self,
        limit: int = 100,
        *,
        statuses: list[str] | None = None,
        workflow: str | None = None,
        since: float | None = None,
    ) -> list[RunRow]:
        """Newest first; only the given stored statuses, workflow and start time when given;
        a negative ``limit`` lists them all."""
        self.commit()  # what this process wrote is visible to its reads
        where: list[str] = ["1 = 1"]
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
        bound = ""
        if limit >= 0:
            bound = " LIMIT ?"
            args.append(limit)
        rows = self._sql.all(
            f"SELECT {self._columns} FROM runs WHERE {' AND '.join(where)}"
            f" ORDER BY started_at DESC, rowid DESC{bound}",
            args,
        )
        return [self._row(r) for r in rows]

    def children_of(self, run_id: str) -> list[str]:
        """The runs ``workflow`` steps of ``run_id`` started, in the order they started."""
        self.commit()
        rows = self._sql.all(
            "SELECT run_id FROM runs WHERE parent = ? ORDER BY started_at, run_id", (run_id,)
        )
        return [str(r[0]) for r in rows]

    def get_run(self, run_id: str) -> RunRow:
        """One run, by id or unique id prefix."""
        self.commit()  # what this process wrote is visible to its reads
        prefix = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._sql.all(
            f"SELECT {self._columns} FROM runs WHERE run_id = ? OR run_id LIKE ? ESCAPE '\\'"
            " ORDER BY run_id LIMIT 6",
            (run_id, prefix),
        )
        exact = [r for r in rows if r[0] == run_id]
        if exact:
            return self._row(exact[0])
        if len(rows) != 1:
            where = (
                f"{self.location} (there are no runs: no store there)"
                if self.missing
                else self.location
            )
            raise RunNotFoundError(
                f"no run {run_id!r} in {where}"
                if not rows
                else f"run id prefix {run_id!r} is ambiguous: it starts "
                + ", ".join(r[0] for r in rows[:5])
                + (" and more" if len(rows) > 5 else "")
            )
        return self._row(rows[0])

    def errors(self, run_id: str) -> list[ErrorRecord]:
        """The failed attempts of a run, in order."""
        self.commit()  # what this process wrote is visible to its reads
        rows = self._sql.all(
            "SELECT step_id, error_type, message, stack_trace, timestamp, retry_count,"
            " recovered, details FROM errors WHERE run_id = ? ORDER BY idx",
            (run_id,),
        )
        return [
            ErrorRecord(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), json.loads(r[7]))
            for r in rows
        ]

    def step_history(self, run_id: str) -> list[dict[str, Any]]:
        """Every step execution of a run, in order of completion."""
        self.commit()  # what this process wrote is visible to its reads
        rows = self._sql.all(
            "SELECT step_id, step_type, status, attempts, duration_ms, finished_at, error_type,"
            " item, injected FROM steps WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
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
        row = self._sql.one(
            "SELECT cursor FROM checkpoints WHERE run_id = ? AND frame = ?", (run_id, frame)
        )
        if row is None:
            return None
        self._stored_frames.add((run_id, frame))
        tiers: dict[str, dict[str, Any]] = {"raw": {}, "computed": {}, "steps": {}, "memory": {}}
        for tier, name, value in self._sql.all(
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
        for (data,) in self._sql.all(
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
            if tier != "memory":  # what finished steps kept to be resumed is of no more use
                tiers[tier][name] = MISSING if value is None else json.loads(value)
        cursor = [{"i": top - 1, "done": True, "note": {}}] if top > 0 else []

        def replace(db: Db) -> None:
            for table in ("checkpoints", "checkpoint_values", "checkpoint_log"):
                db.run(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            if by_top:  # the log starts again from what was kept
                db.run(
                    "INSERT INTO checkpoint_log VALUES (?, ?)",
                    (run_id, json.dumps({str(k): v for k, v in sorted(by_top.items())})),
                )
            db.run(
                "INSERT INTO checkpoints VALUES (?, 'main', ?, ?)",
                (run_id, json.dumps(cursor), time.time()),
            )
            db.many(
                "INSERT INTO checkpoint_values VALUES (?, 'main', ?, ?, ?)",
                [
                    (run_id, tier, name, None if v is MISSING else json.dumps(v))
                    for tier, values in tiers.items()
                    for name, v in values.items()
                ],
            )

        self._write(replace)
        self._stored_frames = {k for k in self._stored_frames if k[0] != run_id}
        self._stored_frames.add((run_id, "main"))
        steps = {k: v for k, v in tiers["steps"].items() if v is not MISSING}
        memory = {k: v for k, v in tiers["memory"].items() if v is not MISSING}
        return FrameCheckpoint(cursor, tiers["raw"], tiers["computed"], steps, memory)

    def checkpoint_log(self, run_id: str) -> list[dict[str, dict[str, str | None]]]:
        """The main frame's checkpointed changes, one entry per commit, in order: top-level
        step index -> "tier/name" -> the value's JSON (``None``: deleted)."""
        self.commit()
        rows = self._sql.all(
            "SELECT data FROM checkpoint_log WHERE run_id = ? ORDER BY rowid", (run_id,)
        )
        return [json.loads(r[0]) for r in rows]

    def messages(self, run_id: str) -> list[Message]:
        """The messages of a run, in order (tool servers' stderr apart)."""
        self.commit()  # what this process wrote is visible to its reads
        rows = self._sql.all(
            "SELECT step_id, level, text, timestamp FROM messages "
            "WHERE run_id = ? AND level != ? ORDER BY seq",
            (run_id, SERVER_LOG),
        )
        return [Message(run_id, r[0], r[1], r[2], r[3]) for r in rows]

    def server_logs(self, run_id: str) -> dict[str, str]:
        """What each tool server wrote to stderr during the run (its end), by server."""
        self.commit()
        rows = self._sql.all(
            "SELECT step_id, text FROM messages WHERE run_id = ? AND level = ? ORDER BY seq",
            (run_id, SERVER_LOG),
        )
        logs: dict[str, str] = {}
        for server, text in rows:  # a resumed run adds the stderr of its own starts
            logs[server] = f"{logs[server]}\n{text}" if server in logs else text
        return logs

    def traces(self, run_id: str) -> list[dict[str, Any]]:
        """A traced run's records, in order."""
        self.commit()  # what this process wrote is visible to its reads
        rows = self._sql.all(
            "SELECT data FROM traces WHERE run_id = ? AND kind != 'decision' ORDER BY idx",
            (run_id,),
        )
        return [json.loads(r[0]) for r in rows]

    def decisions(self, run_id: str) -> list[dict[str, Any]]:
        """What the run decided and why (conditions, retry verdicts...), in order."""
        self.commit()
        rows = self._sql.all(
            "SELECT data FROM traces WHERE run_id = ? AND kind = 'decision' ORDER BY idx",
            (run_id,),
        )
        return [json.loads(r[0]) for r in rows]

    def has_traces(self, run_id: str) -> bool:
        """Whether the run recorded trace records (it ran with tracing on)."""
        self.commit()
        row = self._sql.one(
            "SELECT 1 FROM traces WHERE run_id = ? AND kind != 'decision' LIMIT 1", (run_id,)
        )
        return row is not None

    def breakers(self, workflow: str) -> dict[str, dict[str, object]]:
        """The stored state of a workflow's circuit breakers, by name (shared by every
        process and machine that writes to this store)."""
        self.commit()  # what this process wrote is visible to its reads
        rows = self._sql.all(
            "SELECT name, state, failures, opened_at FROM breakers WHERE workflow = ?",
            (workflow,),
        )
        return {r[0]: {"state": r[1], "failures": r[2], "opened_at": r[3]} for r in rows}

    def outputs(
        self,
        run_id: str,
        *,
        step: str | None = None,
        attempt: int | None = None,
        item: int | None = None,
    ) -> list[OutputRow]:
        """The attempts with captured output of a run, in the order they started."""
        self.commit()
        return read_outputs(self._sql, run_id, step=step, attempt=attempt, item=item)

    def chunks(self, run_id: str, key: str, after: dict[str, int] | None = None) -> list[ChunkRow]:
        """The kept output chunks of one attempt, in arrival order (``after``: see
        :func:`wfkit.store.outputs.read_chunks`)."""
        return read_chunks(self._sql, run_id, key, after)

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
            process=r[15],
            parent=r[16],
            lease_left=r[17] if r[4] == "running" else None,
        )
