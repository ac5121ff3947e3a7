"""``logs``: the captured output of a run, per step execution and attempt; ``--follow``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from wfkit.commands._base import StrictModel
from wfkit.commands._runs import iso
from wfkit.store import open_store
from wfkit.store.base import ChunkRow, OutputRow

FOLLOW_POLL_SECONDS = 0.25


class LogChunk(StrictModel):
    """Output as it arrived: one or more whole lines of one stream, with its time."""

    stream: str
    timestamp: str
    text: str
    dropped_before: int = 0  # bytes not kept between the head and this chunk


class LogAttempt(StrictModel):
    """The output of one attempt of one step execution."""

    step_id: str
    item: int | None
    execution: int
    attempt: int
    kind: str
    status: str
    exit_code: int | None
    started_at: str
    finished_at: str | None
    stdout: str
    stderr: str
    stdout_bytes: int
    stdout_dropped: int
    stderr_bytes: int
    stderr_dropped: int
    chunks: list[LogChunk]


class LogsResult(StrictModel):
    """``wfkit logs --json``."""

    run_id: str
    status: str
    attempts: list[LogAttempt]


def run_logs(
    run_id: str,
    step: str | None = None,
    *,
    attempt: int | None = None,
    item: int | None = None,
    store: str | Path | None = None,
    read_only: bool = False,
) -> LogsResult:
    """The stored output of a run (or of one step, attempt, item), in the order it started."""
    from wfkit.commands._runs import effective_status

    with open_store(store, create=False, read_only=read_only) as run_store:
        row = run_store.get_run(run_id)
        outputs = run_store.outputs(row.run_id, step=step, attempt=attempt, item=item)
        status = effective_status(row)
        attempts = [
            log_attempt(out, run_store.chunks(row.run_id, out.key), status) for out in outputs
        ]
        return LogsResult(run_id=row.run_id, status=status, attempts=attempts)


def log_attempt(out: OutputRow, chunks: list[ChunkRow], run_status: str) -> LogAttempt:
    """An attempt's record with its chunks; a marker counts what the middle lost.

    An attempt still ``running`` in a run that is not is ``interrupted`` (its process died).
    """
    dropped = {"stdout": out.stdout_dropped, "stderr": out.stderr_dropped}
    entries = log_chunks(chunks, {}, dropped)
    texts = {}
    for stream in ("stdout", "stderr"):
        parts: list[bytes] = []
        for entry, chunk in zip(entries, chunks, strict=True):
            if entry.stream == stream:
                if entry.dropped_before:
                    parts.append(_marker(entry.dropped_before).encode())
                parts.append(chunk.data)
        # decoded once joined: a character cut between two chunks stays whole
        text = b"".join(parts).decode("utf-8", errors="replace")
        texts[stream] = text[:-1] if text.endswith("\n") else text
    return LogAttempt(
        step_id=out.step_id,
        item=out.item,
        execution=out.execution,
        attempt=out.attempt,
        kind=out.kind,
        status="interrupted" if out.status == "running" and run_status != "running" else out.status,
        exit_code=out.exit_code,
        started_at=iso(out.started_at),
        finished_at=iso(out.finished_at) if out.finished_at is not None else None,
        stdout=texts["stdout"],
        stderr=texts["stderr"],
        stdout_bytes=out.stdout_bytes,
        stdout_dropped=out.stdout_dropped,
        stderr_bytes=out.stderr_bytes,
        stderr_dropped=out.stderr_dropped,
        chunks=entries,
    )


def _marker(dropped: int) -> str:
    if dropped < 0:
        return "\n[wfkit: some bytes not kept]\n"
    return f"\n[wfkit: {dropped} more bytes not kept]\n"


def log_chunks(
    chunks: list[ChunkRow], last: dict[str, int], dropped: dict[str, int] | None = None
) -> list[LogChunk]:
    """Chunks as reported. A gap in a stream's ``seq`` (trimmed chunks) marks the chunk after
    it with the bytes lost (``dropped``, when the attempt has ended), else -1 (not known yet).

    ``last`` maps each stream to the last ``seq`` seen, and carries over between the polls
    of a follow.
    """
    entries = []
    for chunk in chunks:
        gap = chunk.seq - last.get(chunk.stream, -1) > 1
        last[chunk.stream] = chunk.seq
        lost = 0
        if gap:
            lost = (dropped or {}).get(chunk.stream, 0) or -1
        entries.append(
            LogChunk(
                stream=chunk.stream,
                timestamp=iso(chunk.timestamp),
                text=chunk.data.decode("utf-8", errors="replace"),
                dropped_before=lost,
            )
        )
    return entries


def follow_logs(
    run_id: str,
    step: str | None = None,
    *,
    attempt: int | None = None,
    item: int | None = None,
    store: str | Path | None = None,
    on_attempt: Callable[[LogAttempt], None],
    on_chunk: Callable[[LogAttempt, LogChunk], None],
    poll: float = FOLLOW_POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Print a run's output as it is stored, until the run is no longer running.

    Returns the run's final status. Works from any process that reaches the store.
    """
    from wfkit.commands._runs import effective_status

    with open_store(store, create=False) as run_store:
        row = run_store.get_run(run_id)
        seen: dict[str, LogAttempt] = {}
        after: dict[str, dict[str, int]] = {}
        while True:
            status = effective_status(run_store.get_run(row.run_id))
            for out in run_store.outputs(row.run_id, step=step, attempt=attempt, item=item):
                if out.key not in seen:
                    seen[out.key] = log_attempt(out, [], status)
                    after[out.key] = {}
                    on_attempt(seen[out.key])
                chunks = run_store.chunks(row.run_id, out.key, dict(after[out.key]))
                for entry in log_chunks(chunks, after[out.key]):
                    on_chunk(seen[out.key], entry)
            if status != "running":  # the last read above came after the run ended
                return status
            sleep(poll)
