"""``trace`` and ``debug``: read a recorded run; neither runs nor changes anything."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from wfkit.commands.metrics import RunMetrics, figures, last_success
from wfkit.commands.results import ErrorEntry
from wfkit.commands.resume import effective_status
from wfkit.commands.run import iso
from wfkit.engine.state import MISSING
from wfkit.errors import InputError
from wfkit.language.values import json_len
from wfkit.store import open_store
from wfkit.store.base import RunRow, Store

CONTAINERS = frozenset({"conditional", "while_loop", "foreach", "parallel_foreach"})


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class TraceView(_Model):
    """The result of ``wfkit trace`` (SPEC section 6; ``traces`` has the seed's shape)."""

    run_id: str
    workflow: str
    traced: bool
    traces: list[dict[str, Any]]
    events: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    dropped: int


class StepStats(_Model):
    id: str
    type: str
    status: str
    executions: int
    attempts: int
    total_ms: float
    mean_ms: float
    max_ms: float


class Bottleneck(_Model):
    name: str
    kind: str  # step | transform
    total_ms: float  # for a step of parallel items: the work summed over the items
    count: int
    share: float  # of the run's wall time, never above 1 (parallel work: at most its step's)
    parallel: bool = False  # a step of parallel_foreach items: total_ms overlaps in time


class TierView(_Model):
    bytes: int
    values: dict[str, Any]


class DebugInfo(_Model):
    """The result of ``wfkit debug``."""

    run_id: str
    workflow: str
    file: str
    status: str
    started_at: str
    finished_at: str | None
    duration_ms: float | None
    failed_step: str | None
    current_step: str | None
    error: dict[str, Any] | None
    state_source: str  # final | checkpoint | none
    state: dict[str, TierView]
    state_bytes: int
    errors: list[ErrorEntry]
    errors_dropped: int
    steps: list[StepStats]
    retries: dict[str, int]  # retries (attempts after the first) per step
    breakers: dict[str, dict[str, Any]]
    bottlenecks: list[Bottleneck]
    warnings: list[str]
    #: the end of what each MCP server wrote to stderr during the run
    server_logs: dict[str, str]
    metrics: RunMetrics
    next: list[str]


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


def _state_of(row: RunRow, run_store: Store) -> tuple[str, dict[str, Any]]:
    if row.state is not None:
        return "final", row.state
    saved = run_store.load_frame(row.run_id, "main")
    if saved is None:
        return "none", {"inputs": row.inputs, "raw": {}, "computed": {}}
    return "checkpoint", {
        "inputs": row.inputs,
        "raw": {k: v for k, v in saved.raw.items() if v is not MISSING},
        "computed": {k: v for k, v in saved.computed.items() if v is not MISSING},
    }


def debug_run(
    run_id: str, *, store: str | Path | None = None, read_only: bool = False
) -> DebugInfo:
    """Everything recorded about a run: status, failing step, state, errors, history,
    retries, breakers, bottlenecks and warnings."""
    from wfkit.commands.run import report_errors

    with open_store(store, create=False, read_only=read_only) as run_store:
        row = run_store.get_run(run_id)
        status = effective_status(row)
        history = run_store.step_history(row.run_id)
        errors = run_store.errors(row.run_id)
        messages = run_store.messages(row.run_id)
        server_logs = run_store.server_logs(row.run_id)
        traces = run_store.traces(row.run_id)
        breakers = run_store.breakers(row.workflow)
        last = last_success(run_store, row.workflow)
        state_source, state = _state_of(row, run_store)
    stats: dict[str, dict[str, Any]] = {}
    for h in history:
        s = stats.setdefault(
            h["step_id"],
            {
                "id": h["step_id"],
                "type": h["step_type"],
                "executions": 0,
                "total_ms": 0.0,
                "max_ms": 0.0,
            },
        )
        s["status"], s["attempts"] = h["status"], h["attempts"]
        if h["status"] != "skipped":
            s["executions"] += 1
        s["total_ms"] += h["duration_ms"]
        s["max_ms"] = max(s["max_ms"], h["duration_ms"])
    steps = [
        StepStats(**s, mean_ms=s["total_ms"] / max(s["executions"], 1)) for s in stats.values()
    ]
    wall = row.duration_ms or sum(s.total_ms for s in steps if s.type not in CONTAINERS) or 1.0
    fans = {s.id: s.total_ms for s in steps if s.type == "parallel_foreach"}

    def fan_of(step_id: str) -> str | None:
        """The outermost parallel_foreach step this step's items ran under."""
        parts = step_id.split("/")
        for end in range(1, len(parts)):
            if "/".join(parts[:end]) in fans:
                return "/".join(parts[:end])
        return None

    def share(step_id: str, total_ms: float) -> float:
        fan = fan_of(step_id)  # items overlap: their summed work can exceed the wall time
        spent = min(total_ms, fans[fan]) if fan is not None else total_ms
        return round(min(spent / wall, 1.0), 4)

    bottlenecks = [
        Bottleneck(
            name=s.id,
            kind="step",
            total_ms=round(s.total_ms, 3),
            count=s.executions,
            share=share(s.id, s.total_ms),
            parallel=fan_of(s.id) is not None,
        )
        for s in steps
        if s.type not in CONTAINERS
    ]
    per_field: dict[str, list[float]] = {}
    for r in traces:
        if r["kind"] == "transform":
            per_field.setdefault(r["field"], []).append(r["duration_ms"])
    bottlenecks += [
        Bottleneck(
            name=name,
            kind="transform",
            total_ms=round(sum(d), 3),
            count=len(d),
            share=round(min(sum(d) / wall, 1.0), 4),
        )
        for name, d in per_field.items()
    ]
    bottlenecks.sort(key=lambda b: b.total_ms, reverse=True)
    retries: dict[str, int] = {}
    for h in history:
        if h["attempts"] > 1:
            retries[h["step_id"]] = retries.get(h["step_id"], 0) + h["attempts"] - 1
    failed_step = (row.error or {}).get("step_id") if status != "succeeded" else None
    tiers = {
        name: TierView(bytes=json_len(values), values=values) for name, values in state.items()
    }
    return DebugInfo(
        run_id=row.run_id,
        workflow=row.workflow,
        file=row.file,
        status=status,
        started_at=iso(row.started_at),
        finished_at=iso(row.finished_at) if row.finished_at else None,
        duration_ms=row.duration_ms,
        failed_step=failed_step,
        current_step=row.current if status in ("running", "interrupted") else None,
        error=row.error,
        state_source=state_source,
        state=tiers,
        state_bytes=json_len(state),
        errors=report_errors(errors),
        errors_dropped=row.errors_dropped,
        steps=steps,
        retries=retries,
        breakers=breakers,
        bottlenecks=bottlenecks[:10],
        warnings=[m.text for m in messages if m.level == "warning"],
        server_logs=server_logs,
        metrics=figures(
            history, errors, traces, row.state, breakers, row.duration_ms, row.status, last
        ),
        next=_next_steps(row.run_id, status),
    )


def _next_steps(run_id: str, status: str) -> list[str]:
    if status == "waiting":
        return [f"wfkit resume {run_id} --answers FILE"]
    if status in ("failed", "timed_out", "cancelled", "interrupted"):
        return [f"wfkit resume {run_id}", f"wfkit trace {run_id}"]
    if status == "running":
        return [f"wfkit debug {run_id}"]
    return [f"wfkit trace {run_id}"]
