"""Views of trials: ``wfkit test`` (case lines and the summary) and ``wfkit bench``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.text import Text

from wfkit.cli.views.common import (
    add_row,
    short,
    titled_table,
)

if TYPE_CHECKING:
    from wfkit.commands.bench import BenchReport
    from wfkit.commands.suite.models import CaseResult, TestReport


def case_line(case: CaseResult) -> Text:
    """One line per finished test case."""
    style = {"passed": "green", "failed": "red", "error": "bold red"}[case.status]
    text = Text.assemble(
        (f"{case.status.upper():6}", style),
        f" {Path(case.file).name} :: ",
        (case.name, "bold"),
        (f"  {case.duration_ms:.0f} ms", "dim"),
    )
    if case.virtual_seconds:
        text.append(f" ({case.virtual_seconds:.1f} s of waits skipped)", style="dim")
    return text


def test_summary(report: TestReport, show_coverage: bool) -> Group:
    """``wfkit test``: failures with path, expected and actual; totals; coverage."""
    parts: list[Any] = []
    for case in report.cases:
        if case.status == "passed":
            continue
        parts.append(
            Text(f"{case.status}: {Path(case.file).name} :: {case.name}", style="bold red")
        )
        if case.error:
            parts.append(Text(f"  {case.error}", style="red"))
        for failure in case.failures:
            parts.append(
                Text.assemble(
                    ("  ✗ ", "red"),
                    (failure.path, "bold"),
                    f"  expected {short(failure.expected)}",
                    f"  actual {short(failure.actual)}",
                )
            )
        for line in case.why():
            parts.append(Text(f"  {line}", style="yellow" if line[0] == "f" else "dim"))
    if show_coverage and report.coverage is not None:
        table = titled_table("workflow coverage", "workflow", "covered", "missed")
        for workflow in report.coverage:
            missed = [
                f"{i.step_id} {i.what} (line {i.line})" for i in workflow.items if not i.covered
            ]
            add_row(
                table,
                Path(workflow.workflow).name,
                f"{workflow.percent:.0f}%",
                "; ".join(missed) or "-",
            )
        parts.append(table)
        parts.append(Text(f"total workflow coverage {report.coverage_percent:.1f}%"))
    verdict = "green" if report.ok else "red"
    parts.append(
        Text(
            f"{report.passed} passed, {report.failed} failed, {report.errors} errors "
            f"in {report.duration_ms / 1000:.2f} s",
            style=f"bold {verdict}",
        )
    )
    return Group(*parts)


def bench_view(report: BenchReport) -> Group:
    """``wfkit bench``."""
    wall = report.wall_ms
    parts: list[Any] = [
        Text.assemble(
            ("bench ", "bold"),
            (report.workflow, "bold cyan"),
            f"  {report.runs} runs after {report.warmup} warm-up",
        ),
        Text(
            f"wall ms  min {wall.min:.1f}  median {wall.median:.1f}  p95 {wall.p95:.1f}  "
            f"max {wall.max:.1f}"
        ),
        Text(
            f"{report.steps_per_run} steps per run, {report.steps_per_second:.0f} steps/s, "
            f"peak RSS {report.peak_rss_mb:.0f} MiB"
        ),
    ]
    if report.injected:
        share = (
            f"{report.recovered_share:.0%} recovered"
            if report.recovered_share is not None
            else "none hit"
        )
        parts.append(
            Text(
                f"injected {'; '.join(report.injected)}: {report.runs_hit} of {report.runs} "
                f"runs hit, {share}, {report.failed_runs} failed"
            )
        )
    table = titled_table("median per step (ms)", "step", "ms", right=("ms",))
    for step, ms in sorted(report.step_median_ms.items(), key=lambda kv: -kv[1])[:15]:
        add_row(table, step, f"{ms:.3f}")
    parts.append(table)
    if report.transform_median_ms:
        transforms = titled_table("median per transform (ms)", "field", "ms", right=("ms",))
        for field, ms in report.transform_median_ms.items():
            add_row(transforms, field, f"{ms:.4f}")
        parts.append(transforms)
    if report.regression_percent is not None:
        style = "bold red" if report.regressed else "green"
        parts.append(
            Text(
                f"median {report.regression_percent:+.1f}% against the baseline "
                f"({report.baseline_median_ms:.1f} ms)",
                style=style,
            )
        )
    if report.profile:
        parts.append(Text(f"profile written to {report.profile}", style="dim"))
    return Group(*parts)
