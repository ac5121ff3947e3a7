"""``trace``: what a traced run's transforms, conditions and retries saw, as a table or as
Chrome trace-event JSON; it runs and changes nothing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from wfkit.commands._base import FrozenModel
from wfkit.commands._runs import iso
from wfkit.errors import InputError
from wfkit.store import open_store


class TraceView(FrozenModel):
    """The result of ``wfkit trace`` (SPEC section 6; ``traces`` has the seed's shape)."""

    run_id: str
    workflow: str
    traced: bool
    traces: list[dict[str, Any]]
    events: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    dropped: int


def trace_run(
    run_id: str,
    *,
    field: str | None = None,
    step: str | None = None,
    store: str | Path | None = None,
    read_only: bool = False,
) -> TraceView:
    """A run's trace records and step events, optionally for one field or one step."""
    with open_store(store, create=False, read_only=read_only) as run_store:
        row = run_store.get_run(run_id)
        records = run_store.traces(row.run_id)
        history = run_store.step_history(row.run_id)
    dropped = sum(r.get("count", 0) for r in records if r["kind"] == "dropped")
    records = [_iso_timestamp(r) for r in records if r["kind"] != "dropped"]
    wanted = (
        None if field is None else (field if field.startswith("computed.") else f"computed.{field}")
    )
    if wanted is not None:
        _check_traced_field(row.run_id, wanted, records)
    traces = [
        r
        for r in records
        if r["kind"] == "transform"
        and (wanted is None or r["field"] == wanted)
        and (step is None or r.get("step_id") == step)
    ]
    events = [
        r
        for r in records
        if r["kind"] != "transform"
        and (step is None or r.get("step_id") == step)
        and wanted is None
    ]
    steps = [
        {
            **h,
            "started_at": iso(h["finished_at"] - h["duration_ms"] / 1000),
            "finished_at": iso(h["finished_at"]),
        }
        for h in history
        if (step is None or h["step_id"] == step) and wanted is None
    ]
    return TraceView(
        run_id=row.run_id,
        workflow=row.workflow,
        traced=bool(records),
        traces=traces,
        events=events,
        steps=steps,
        dropped=dropped,
    )


def _iso_timestamp(record: dict[str, Any]) -> dict[str, Any]:
    """A stored trace record with its UNIX ``timestamp`` as ISO 8601 (the seed's shape)."""
    if isinstance(record.get("timestamp"), int | float):
        return {**record, "timestamp": iso(record["timestamp"])}
    return record


def _check_traced_field(run_id: str, wanted: str, records: list[dict[str, Any]]) -> None:
    """``--field`` must name a field the run traced: a typo is an error, not silence."""
    from wfkit.language.diagnostics import suggest

    fields = sorted({r["field"] for r in records if r["kind"] == "transform"})
    if wanted in fields:
        return
    if not fields:
        raise InputError(
            f"run {run_id} recorded no computed-field traces (run it with --trace), "
            f"so there is nothing for {wanted!r}"
        )
    raise InputError(
        f"run {run_id} traced no field {wanted!r}{suggest(wanted, fields)} "
        f"(traced: {', '.join(fields)})"
    )


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def chrome_trace(view: TraceView) -> dict[str, Any]:
    """Chrome trace-event JSON (opens in Perfetto or chrome://tracing)."""
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": f"wfkit {view.run_id}"}},
    ]
    threads: dict[str, int] = {}
    for step in view.steps:
        lane = step["step_id"].split("/", 1)[0] if "/" in step["step_id"] else "workflow"
        tid = threads.setdefault(lane, len(threads) + 1)
        events.append(
            {
                "name": step["step_id"],
                "cat": f"step,{step['step_type']}",
                "ph": "X",
                "ts": round(_seconds(step["started_at"]) * 1e6),
                "dur": round(step["duration_ms"] * 1000),
                "pid": 1,
                "tid": tid,
                "args": {"status": step["status"], "attempts": step["attempts"]},
            }
        )
    for tid_name, tid in threads.items():
        events.append(
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": tid_name}}
        )
    for record in view.traces:
        events.append(
            {
                "name": record["field"],
                "cat": "transform",
                "ph": "X",
                "pid": 1,
                "tid": 0,
                "ts": round((_seconds(record["timestamp"]) - record["duration_ms"] / 1000) * 1e6),
                "dur": max(1, round(record["duration_ms"] * 1000)),
                "args": {"trigger": record["trigger"], "output": record["output"]},
            }
        )
    for record in view.events:
        events.append(
            {
                "name": f"{record['kind']} {record.get('step_id')}",
                "cat": record["kind"],
                "ph": "i",
                "s": "t",
                "pid": 1,
                "tid": 0,
                "ts": round(_seconds(record["timestamp"]) * 1e6),
                "args": record,
            }
        )
    return {"traceEvents": events, "displayTimeUnit": "ms"}
