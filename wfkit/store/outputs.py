"""Reading captured step output back from the run store (``wfkit logs``, ``debug``)."""

from __future__ import annotations

from wfkit.store.base import ChunkRow, Db, OutputRow


def read_outputs(
    db: Db,
    run_id: str,
    *,
    step: str | None = None,
    attempt: int | None = None,
    item: int | None = None,
) -> list[OutputRow]:
    """The attempts with output of a run, in the order they started.

    ``step`` matches a step id exactly, or the last part of a nested id (``check`` finds
    ``fan/check`` inside a parallel_foreach).
    """
    where: list[str] = ["run_id = ?"]
    args: list[object] = [run_id]
    if step is not None:
        where.append("(step_id = ? OR step_id LIKE ? ESCAPE '\\')")
        args.extend([step, "%/" + step.replace("%", "\\%").replace("_", "\\_")])
    if attempt is not None:
        where.append("attempt = ?")
        args.append(attempt)
    if item is not None:
        where.append("item = ?")
        args.append(item)
    rows = db.all(
        "SELECT okey, step_id, item, execution, attempt, kind, started_at, finished_at, status,"
        " exit_code, stdout_bytes, stdout_dropped, stderr_bytes, stderr_dropped FROM outputs"
        f" WHERE {' AND '.join(where)} ORDER BY rowid",
        args,
    )
    return [OutputRow(*r) for r in rows]


def read_chunks(
    db: Db, run_id: str, key: str, after: dict[str, int] | None = None
) -> list[ChunkRow]:
    """The kept chunks of one attempt in arrival order (only those after ``after[stream]``)."""
    after = after or {}
    rows = db.all(
        "SELECT okey, stream, seq, head, timestamp, data FROM output_chunks"
        " WHERE run_id = ? AND okey = ? AND seq > CASE stream WHEN 'stdout' THEN ? ELSE ? END"
        " ORDER BY timestamp, stream DESC, seq",
        (run_id, key, after.get("stdout", -1), after.get("stderr", -1)),
    )
    return [ChunkRow(r[0], r[1], r[2], bool(r[3]), r[4], bytes(r[5])) for r in rows]
