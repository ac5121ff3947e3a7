"""``wfkit bench``: run a workflow N times and report timings, or profile one run."""

from __future__ import annotations

import json
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from wfkit.commands._runs import run_to_end
from wfkit.commands.run import run_workflow_async
from wfkit.commands.trace import trace_run
from wfkit.engine.inject import Fault
from wfkit.errors import WfkitError


class BenchError(WfkitError):
    """A benchmark cannot run or compare (a failed run, a missing baseline, no profiler)."""

    permanent = True


class Timing(BaseModel):
    model_config = ConfigDict(frozen=True)

    min: float
    median: float
    p95: float
    max: float


class BenchReport(BaseModel):
    """The result of ``wfkit bench``."""

    model_config = ConfigDict(frozen=True)

    workflow: str
    file: str
    runs: int
    warmup: int
    wall_ms: Timing
    steps_per_run: int
    steps_per_second: float
    step_median_ms: dict[str, float]
    transform_median_ms: dict[str, float]
    peak_rss_mb: float
    baseline_median_ms: float | None = None
    regression_percent: float | None = None
    regressed: bool = False
    profile: str | None = None
    injected: list[str] = []
    """The faults injected into every run (``--inject``)."""
    failed_runs: int = 0
    runs_hit: int = 0
    """Measured runs in which an injected fault hit at least one attempt."""
    recovered_share: float | None = None
    """Of the runs hit, the share that still succeeded (retries, fallbacks...)."""


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def bench_workflow(
    file: str | Path,
    runs: int = 5,
    warmup: int = 1,
    inputs: dict[str, Any] | None = None,
    *,
    profile: str | Path | None = None,
    compare: str | Path | None = None,
    max_regression: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    faults: list[Fault] | None = None,
    inject_seed: str | None = None,
) -> BenchReport:
    """Run ``warmup`` + ``runs`` times (each with its own store) and measure; optionally
    profile one more run (pyinstrument HTML, or speedscope JSON for ``*.json``) and compare
    the median against a saved report."""
    if runs < 1 or warmup < 0:
        raise BenchError("runs must be at least 1 and warmup at least 0")
    walls: list[float] = []
    per_step: dict[str, list[float]] = {}
    steps_per_run = 0
    name = ""
    total = warmup + runs
    failed = hit = hit_ok = 0
    with tempfile.TemporaryDirectory(prefix="wfkit-bench-") as store:
        for i in range(total):
            started = time.perf_counter()
            # each run draws its own faults, reproducibly: the seed and the run's number
            report = run_to_end(
                run_workflow_async(
                    file, inputs, store=store, faults=faults, inject_seed=f"{inject_seed}/{i}"
                )
            )
            elapsed = (time.perf_counter() - started) * 1000
            if report.status != "succeeded" and not faults:
                raise BenchError(f"run {i + 1} {report.status}: {report.error}")
            name = report.workflow
            if i >= warmup and faults:  # under injected failure a failed run is a figure
                failed += report.status != "succeeded"
                if any(e.details.get("injected") for e in report.errors):
                    hit += 1
                    hit_ok += report.status == "succeeded"
            if i >= warmup:
                walls.append(elapsed)
                steps_per_run = sum(s.executions for s in report.steps)
                for step in report.steps:
                    per_step.setdefault(step.id, []).append(step.duration_ms)
            if on_progress is not None:
                on_progress(i + 1, total)
        traced = run_to_end(run_workflow_async(file, inputs, store=store, trace=True))
        per_field: dict[str, list[float]] = {}
        for record in trace_run(traced.run_id, store=store).traces:
            per_field.setdefault(record["field"], []).append(record["duration_ms"])
        profile_path = _profile(file, inputs, store, profile) if profile else None
    median = statistics.median(walls)
    baseline = regression = None
    if compare is not None:
        try:
            saved = json.loads(Path(compare).read_text(encoding="utf-8"))
            baseline = float(saved["wall_ms"]["median"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BenchError(f"cannot read baseline {compare}: {exc}") from exc
        regression = (median - baseline) / baseline * 100
    return BenchReport(
        workflow=name,
        file=str(file),
        runs=runs,
        warmup=warmup,
        wall_ms=Timing(min=min(walls), median=median, p95=_percentile(walls, 0.95), max=max(walls)),
        steps_per_run=steps_per_run,
        steps_per_second=steps_per_run / (median / 1000) if median else 0.0,
        step_median_ms={k: round(statistics.median(v), 3) for k, v in per_step.items()},
        transform_median_ms={k: round(statistics.median(v), 4) for k, v in per_field.items()},
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        baseline_median_ms=baseline,
        regression_percent=regression,
        regressed=regression is not None
        and max_regression is not None
        and regression > max_regression,
        profile=profile_path,
        injected=[f.text for f in faults or []],
        failed_runs=failed,
        runs_hit=hit,
        recovered_share=hit_ok / hit if hit else None,
    )


def _profile(
    file: str | Path, inputs: dict[str, Any] | None, store: str, output: str | Path
) -> str:
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise BenchError("--profile needs pyinstrument: pip install 'wfkit[profile]'") from None
    profiler = Profiler(async_mode="enabled")
    profiler.start()
    run_to_end(run_workflow_async(file, inputs, store=store))
    profiler.stop()
    path = Path(output)
    if path.suffix == ".json":
        from pyinstrument.renderers import SpeedscopeRenderer

        path.write_text(profiler.output(SpeedscopeRenderer()), encoding="utf-8")
    else:
        path.write_text(profiler.output_html(), encoding="utf-8")
    return str(path)
