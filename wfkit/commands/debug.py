"""``debug``: a recorded run's failing step, state, errors, history and bottlenecks; it runs
and changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wfkit.commands._base import FrozenModel
from wfkit.commands._runs import effective_status, iso
from wfkit.commands.metrics import RunMetrics, figures, last_success
from wfkit.commands.results import ErrorEntry
from wfkit.engine.state import MISSING
from wfkit.language.values import json_len
from wfkit.store import open_store
from wfkit.store.base import RunRow, Store

CONTAINERS = frozenset({"conditional", "while_loop", "foreach", "parallel_foreach", "parallel"})


class StepStats(FrozenModel):
    id: str
    type: str
    status: str
    executions: int
    attempts: int
    total_ms: float
    mean_ms: float
    max_ms: float


class Bottleneck(FrozenModel):
    name: str
    kind: str  # step | transform
    total_ms: float  # for a step of parallel items: the work summed over the items
    count: int
    share: float  # of the run's wall time, never above 1 (parallel work: at most its step's)
    parallel: bool = False  # a step of parallel_foreach items: total_ms overlaps in time


class TierView(FrozenModel):
    bytes: int
    values: dict[str, Any]


class DebugInfo(FrozenModel):
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
    parent_run_id: str | None = None  # the run whose ``workflow`` step started this one
    child_run_ids: list[str] = []  # the runs this one's ``workflow`` steps started


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
    from wfkit.commands._runs import report_errors

    with open_store(store, create=False, read_only=read_only) as run_store:
        row = run_store.get_run(run_id)
        status = effective_status(row)
        history = run_store.step_history(row.run_id)
        errors = run_store.errors(row.run_id)
        messages = run_store.messages(row.run_id)
        server_logs = run_store.server_logs(row.run_id)
        traces = run_store.traces(row.run_id)
        traced = any(r.get("kind") != "decision" for r in traces)
        breakers = run_store.breakers(row.workflow)
        last = last_success(run_store, row.workflow)
        state_source, state = _state_of(row, run_store)
        children = run_store.children_of(row.run_id)
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
    fans = {s.id: s.total_ms for s in steps if s.type in ("parallel_foreach", "parallel")}

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
        next=_next_steps(row.run_id, status, traced),
        parent_run_id=row.parent,
        child_run_ids=children,
    )


def _next_steps(run_id: str, status: str, traced: bool) -> list[str]:
    """The commands that usefully follow ``debug`` (``trace`` only for a traced run)."""
    trace = [f"wfkit trace {run_id}"] if traced else []
    if status == "waiting":
        return [f"wfkit resume {run_id} --answers FILE"]
    if status in ("failed", "timed_out", "cancelled", "interrupted"):
        return [f"wfkit resume {run_id}", *trace]
    if status == "running":
        return [f"wfkit debug {run_id}"]
    return trace or [f"wfkit report {run_id}"]
