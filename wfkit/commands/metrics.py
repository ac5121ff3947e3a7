"""Run metrics: figures computed from the run store, written as Prometheus text exposition.

The figures come from what the store recorded (step history, errors, traces, final state,
breakers), so ``wfkit run --metrics FILE`` and ``wfkit debug --json`` agree by construction.
prometheus-client is optional (``pip install 'wfkit[metrics]'``) and imported only to write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from wfkit.commands.results import RUN_STATUSES
from wfkit.errors import MissingExtraError, WfkitError
from wfkit.language.values import json_len
from wfkit.store import open_store
from wfkit.store.base import Store

DURATION_BUCKETS_MS = (1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 60000)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
# the states a finished run's file can say (interrupted is only ever seen afterwards)
OUTCOMES = tuple(s for s in RUN_STATUSES if s != "interrupted")


class MetricsError(WfkitError):
    """Metrics cannot be written (prometheus-client missing, or the file)."""


class RunMetrics(BaseModel):
    """The figures of one run (also shown by ``wfkit debug --json``)."""

    model_config = ConfigDict(frozen=True)

    steps: dict[str, dict[str, int]]  # step type -> status -> executions
    step_durations_ms: dict[str, list[float]]  # step type -> durations
    retries: int
    errors: dict[str, int]  # error type -> failed attempts
    transform_durations_ms: dict[str, list[float]]  # field -> durations (traced runs)
    state_bytes: int
    breakers: dict[str, str]
    duration_ms: float | None
    #: the run's status, and when the workflow last succeeded (UNIX time; from the store)
    status: str | None = None
    last_success_at: float | None = None


def run_metrics(
    run_id: str, store: str | Path | None = None, *, read_only: bool = False
) -> RunMetrics:
    """Figures of a recorded run."""
    with open_store(store, create=False, read_only=read_only) as run_store:
        row = run_store.get_run(run_id)
        history = run_store.step_history(row.run_id)
        errors = run_store.errors(row.run_id)
        traces = run_store.traces(row.run_id)
        breakers = run_store.breakers(row.workflow)
        last = last_success(run_store, row.workflow)
    return figures(history, errors, traces, row.state, breakers, row.duration_ms, row.status, last)


def last_success(run_store: Store, workflow: str) -> float | None:
    """When a run of ``workflow`` last succeeded (UNIX time), from the store."""
    succeeded = run_store.list_runs(1, statuses=["succeeded"], workflow=workflow)
    return succeeded[0].finished_at if succeeded else None


def figures(
    history: list[dict[str, Any]],
    errors: list[Any],
    traces: list[dict[str, Any]],
    state: dict[str, Any] | None,
    breakers: dict[str, dict[str, Any]],
    duration_ms: float | None,
    status: str | None = None,
    last_success_at: float | None = None,
) -> RunMetrics:
    """The metrics of a run from its stored records."""
    steps: dict[str, dict[str, int]] = {}
    durations: dict[str, list[float]] = {}
    retries = 0
    # a step that failed but whose failure a `continue`/`fallback` handled is counted apart
    handled = {e.step_id for e in errors if e.recovered} - {
        e.step_id for e in errors if not e.recovered
    }
    for h in history:
        by_status = steps.setdefault(h["step_type"], {})
        label = "handled" if h["status"] == "failed" and h["step_id"] in handled else h["status"]
        by_status[label] = by_status.get(label, 0) + 1
        if h["status"] != "skipped":
            durations.setdefault(h["step_type"], []).append(round(h["duration_ms"], 3))
        retries += max(h["attempts"] - 1, 0)
    by_type: dict[str, int] = {}
    for e in errors:
        by_type[e.error_type] = by_type.get(e.error_type, 0) + 1
    transforms: dict[str, list[float]] = {}
    for r in traces:
        if r["kind"] == "transform":
            transforms.setdefault(r["field"], []).append(r["duration_ms"])
    size = json_len(state) if state else 0
    return RunMetrics(
        steps=steps,
        step_durations_ms=durations,
        retries=retries,
        errors=by_type,
        transform_durations_ms=transforms,
        state_bytes=size,
        breakers={name: str(b["state"]) for name, b in breakers.items()},
        duration_ms=duration_ms,
        status=status,
        last_success_at=last_success_at,
    )


def require_prometheus() -> None:
    """Raise :class:`MissingExtraError` when prometheus-client is not installed."""
    import importlib.util

    try:
        found = importlib.util.find_spec("prometheus_client") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingExtraError("--metrics needs prometheus-client: pip install 'wfkit[metrics]'")


def write_prometheus(metrics: RunMetrics, workflow: str, path: str | Path) -> None:
    """Write the figures as Prometheus text exposition, atomically (node_exporter's textfile
    collector never reads half a file)."""
    require_prometheus()
    import prometheus_client as prom
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    prom.disable_created_metrics()  # type: ignore[no-untyped-call]  # one file per run: no *_created
    registry = CollectorRegistry(auto_describe=True)  # per run, never the global one
    labels = {"workflow": workflow}
    steps = Counter(
        "wfkit_steps",
        "Step executions by type and status",
        ["workflow", "type", "status"],
        registry=registry,
    )
    for step_type, by_status in metrics.steps.items():
        for status, count in by_status.items():
            steps.labels(workflow, step_type, status).inc(count)

    def histogram(name: str, text: str, label: str, data: dict[str, list[float]]) -> None:
        metric = Histogram(
            name,
            text,
            ["workflow", label],
            buckets=[b / 1000 for b in DURATION_BUCKETS_MS],
            registry=registry,
        )
        for key, values in data.items():
            for value in values:
                metric.labels(workflow, key).observe(value / 1000)

    histogram("wfkit_step_duration_seconds", "Step durations", "type", metrics.step_durations_ms)
    Counter(
        "wfkit_retries", "Retries (attempts after the first)", ["workflow"], registry=registry
    ).labels(**labels).inc(metrics.retries)
    errors = Counter(
        "wfkit_errors", "Failed attempts by error type", ["workflow", "type"], registry=registry
    )
    for error_type, count in metrics.errors.items():
        errors.labels(workflow, error_type).inc(count)
    histogram(
        "wfkit_transform_duration_seconds",
        "Computed-field evaluations (traced runs)",
        "field",
        metrics.transform_durations_ms,
    )
    Gauge(
        "wfkit_state_bytes", "JSON size of the final state", ["workflow"], registry=registry
    ).labels(**labels).set(metrics.state_bytes)
    breaker = Gauge(
        "wfkit_circuit_breaker_state",
        "0 closed, 1 half-open, 2 open",
        ["workflow", "breaker"],
        registry=registry,
    )
    for name, state in metrics.breakers.items():
        breaker.labels(workflow, name).set(BREAKER_STATES.get(state, 0))
    if metrics.duration_ms is not None:
        Gauge(
            "wfkit_run_duration_seconds", "Wall time of the run", ["workflow"], registry=registry
        ).labels(**labels).set(metrics.duration_ms / 1000)
    if metrics.status is not None:  # a state set: 1 for the run's status, 0 for the others
        outcome = Gauge(
            "wfkit_run_status",
            "The run's status (1 for it, 0 for the others)",
            ["workflow", "status"],
            registry=registry,
        )
        for name in OUTCOMES:
            outcome.labels(workflow, name).set(int(name == metrics.status))
    if metrics.last_success_at is not None:
        Gauge(
            "wfkit_run_last_success_timestamp_seconds",
            "When a run of the workflow last succeeded",
            ["workflow"],
            registry=registry,
        ).labels(**labels).set(metrics.last_success_at)
    try:
        prom.write_to_textfile(str(path), registry)
    except OSError as exc:
        raise MetricsError(f"cannot write metrics to {path}: {exc.strerror}") from exc
