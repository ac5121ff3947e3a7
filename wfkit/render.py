"""Human output: rich renderings of command results, errors and live run progress.

Everything here reads result models or engine events; nothing here changes a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from wfkit.commands.bench import BenchReport
    from wfkit.commands.debug import DebugInfo
    from wfkit.commands.explain import Explanation, StepPlanView
    from wfkit.commands.health import HealthReport
    from wfkit.commands.results import RunSummary
    from wfkit.commands.suite.models import CaseResult, TestReport
    from wfkit.commands.trace import TraceView
    from wfkit.commands.transform import TransformResult
    from wfkit.errors import WfkitError

STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "timed_out": "red",
    "cancelled": "yellow",
    "skipped": "dim",
    "running": "cyan",
    "waiting": "yellow",
}
LEVEL_STYLE = {"info": "", "warning": "yellow", "error": "red", "success": "green"}


def titled_table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    """A plain table with a left-aligned title; ``right`` columns are right-aligned."""
    table = Table(title=title, box=None, pad_edge=False, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    return table


def add_row(table: Table, *cells: str | Text) -> None:
    """Add a row whose strings show as they are: never read as markup or emoji codes.

    Table cells given as ``str`` go through rich's markup parser; values from workflow files,
    state, tools and commands must not (``[red]`` or ``:fire:`` in a value is text).
    """
    table.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in cells))


def status_text(status: str) -> Text:
    """A status word in its colour."""
    return Text(status, style=STATUS_STYLE.get(status, ""))


def error_view(error: WfkitError) -> Group:
    """A load or input error, with the offending lines of the file when known; a file with
    several problems shows each, in line order."""
    from wfkit.errors import LoadError

    if not isinstance(error, LoadError) or len(error.problems) < 2:
        return Group(*_error_body(error, str(error)))
    body: list[Any] = [
        Text(f"{len(error.problems)} problems in {error.file or '<workflow>'}:", style="bold red")
    ]
    for problem in error.problems[:MAX_SHOWN_PROBLEMS]:
        body.extend(_error_body(problem, str(problem)))
    if len(error.problems) > MAX_SHOWN_PROBLEMS:
        body.append(Text(f"… {len(error.problems) - MAX_SHOWN_PROBLEMS} more", style="red"))
    return Group(*body)


MAX_SHOWN_PROBLEMS = 20


def _error_body(error: WfkitError, message: str) -> list[Any]:
    from rich.syntax import Syntax  # pygments: only when there is a file to show

    from wfkit.errors import LoadError

    body: list[Any] = [Text.assemble((f"{error.type_name}: ", "bold red"), message)]
    if isinstance(error, LoadError) and error.file and error.line:
        first = max(1, error.line - 2)
        snippet = _snippet(error.file, first, error.line + 2)
        if snippet:
            body.append(
                Syntax(
                    snippet,
                    "yaml",
                    line_numbers=True,
                    start_line=first,
                    highlight_lines={error.line},
                    theme="ansi_dark",
                )
            )
    return body


def _snippet(file: str, first: int, last: int, width: int = 300) -> str:
    """Lines ``first..last`` of a file, each cut to ``width``: only these are highlighted, so a
    huge file (or one long line) is reported as fast as a small one; never a decode error."""
    from wfkit.language.yamlsrc import MAX_FILE_BYTES

    try:
        with open(file, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES)
    except OSError:
        return ""
    lines = raw.decode("utf-8", errors="replace").splitlines()[first - 1 : last]
    return "\n".join(line[:width] + (" …" if len(line) > width else "") for line in lines)


def runs_table(runs: list[RunSummary]) -> Table:
    """``wfkit runs``."""
    table = Table(title="runs (newest first)")
    for column in ("run id", "workflow", "status", "started", "ms"):
        table.add_column(  # a run id is never cut: it is what users copy
            column,
            justify="right" if column == "ms" else "left",
            no_wrap=column == "run id",
            min_width=22 if column == "run id" else None,
        )
    for run in runs:
        started = run.started_at[:19].replace("T", " ")
        add_row(
            table,
            run.run_id,
            run.workflow,
            status_text(run.status),
            started,
            "" if run.duration_ms is None else f"{run.duration_ms:.0f}",
        )
    return table


def _short(value: Any, limit: int = 80) -> str:
    import json

    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def explanation_tree(plan: Explanation, limit: int | None = None) -> Group:
    """``wfkit explain``: inputs, the step tree with policies, computed fields, warnings.

    With ``limit``, the tree shows the first ``limit`` steps (in file order, at any depth) and
    one line counting the rest, and as many warnings: rendering costs ~0.1-0.2 ms a line, so a
    2000-step file would spend most of its time drawing rows nobody reads.
    """
    from rich.tree import Tree

    parts: list[Any] = [
        Text.assemble(("plan ", "bold"), (plan.workflow, "bold cyan"), f"  {plan.file}")
    ]
    if plan.inputs:
        table = titled_table("inputs", "name", "type", "status", "value")
        for item in plan.inputs:
            style = "red" if item.status == "missing" else ""
            add_row(table, item.name, item.type, Text(item.status, style=style), _short(item.value))
        parts.append(table)
    root = Tree(Text("steps", style="bold"))
    branches: dict[tuple[str, int], Tree] = {}
    shown = plan.steps if limit is None else plan.steps[:limit]
    for step in shown:
        parent = root if step.depth == 0 else branches.get((step.scope, step.depth - 1), root)
        if step.depth == 0 and step.scope != "workflow":  # finally, sub-agent tasks
            if (step.scope, -1) not in branches:
                branches[(step.scope, -1)] = root.add(Text(step.scope, style="bold magenta"))
            parent = branches[(step.scope, -1)]
        branches[(step.scope, step.depth)] = parent.add(_step_label(step))
    parts.append(root)
    if len(shown) < len(plan.steps):
        rest, first = len(plan.steps) - len(shown), plan.steps[len(shown)]
        where = f" (line {first.line})" if first.line is not None else ""
        parts.append(
            Text(
                f"… and {rest:,} more step{'s' if rest != 1 else ''}, from {first.id}{where} on "
                "(--steps all shows every one)",
                style="dim",
            )
        )
    if plan.computed:
        table = titled_table("computed fields (evaluation order)", "field", "from", "transform")
        for c in plan.computed:
            add_row(table, c.name, ", ".join(c.sources), c.transform)
        parts.append(table)
    total = "unbounded" if plan.worst_case_ms is None else f"{plan.worst_case_ms / 1000:g} s"
    parts.append(Text(f"worst-case duration: {total}", style="dim"))
    warnings = plan.warnings if limit is None else plan.warnings[:limit]
    for warning in warnings:
        where = f"line {warning.line} " if warning.line else ""
        owner = f"{warning.step_id}: " if warning.step_id else ""
        parts.append(Text(f"! {where}{owner}{warning.message}", style="yellow"))
    if len(warnings) < len(plan.warnings):
        rest = len(plan.warnings) - len(warnings)
        parts.append(
            Text(
                f"! … and {rest:,} more warning{'s' if rest != 1 else ''} "
                "(--steps all or --json shows every one)",
                style="yellow",
            )
        )
    if not plan.warnings:
        parts.append(Text("no warnings", style="green"))
    return Group(*parts)


def _step_label(step: StepPlanView) -> Text:
    text = Text.assemble((step.id, "bold"), f" {step.type}", (f"  line {step.line}", "dim"))
    if step.condition is not None:
        decided = "" if step.condition_value is None else f" -> {step.condition_value}"
        text.append(f"  if {step.condition}{decided}", style="cyan")
    policy = step.policy
    if policy.strategy != "fail" or policy.attempts > 1:
        delays = ", ".join(f"{d:g}" for d in policy.delays_ms)
        text.append(f"  on_error={policy.strategy}", style="yellow")
        if policy.attempts > 1:
            text.append(f" attempts={policy.attempts} waits=[{delays}] ms", style="yellow")
    if step.timeout is not None:
        text.append(f"  timeout={step.timeout:g}s", style="magenta")
    if step.reads:
        text.append(f"  reads {', '.join(step.reads)}", style="dim")
    if step.writes:
        text.append(f"  writes {', '.join(step.writes)}", style="green")
    if not step.reachable:
        text.append("  UNREACHABLE", style="bold red")
    elif step.dead:
        text.append("  (dead: the inputs decide against it)", style="dim red")
    return text


def transform_result(result: TransformResult) -> Group:
    """``wfkit test-transform``."""
    parts: list[Any] = [Text.assemble(("expression ", "dim"), result.expression)]
    if result.dependencies:
        parts.append(Text(f"from {', '.join(result.dependencies)}", style="dim"))
        parts.append(Text.assemble(("input ", "dim"), _short(result.input, 200)))
    if result.error is not None:
        parts.append(Text(f"{result.error.type}: {result.error.message}", style="bold red"))
    else:
        parts.append(
            Text.assemble(
                ("output ", "bold"),
                _short(result.output, 400),
                (f"  ({result.type})", "dim"),
            )
        )
    parts.append(
        Text(
            f"references: {', '.join(result.references) or 'none'}  {result.duration_ms:.3f} ms",
            style="dim",
        )
    )
    return Group(*parts)


def trace_view(view: TraceView) -> Group:
    """``wfkit trace``: transforms, then conditions and retry decisions."""
    parts: list[Any] = [
        Text.assemble(("trace ", "bold"), (view.run_id, "bold cyan"), "  ", view.workflow)
    ]
    if not view.traced:
        parts.append(
            Text(
                "this run was not traced: run it with --trace (or config.trace: true)",
                style="yellow",
            )
        )
    if view.traces:
        table = titled_table(
            "computed fields", "field", "trigger", "step", "input", "output", "ms", right=("ms",)
        )
        for r in view.traces:
            output = r["output"] if r.get("error") is None else f"error: {r['error']}"
            add_row(
                table,
                r["field"],
                r["trigger"],
                r.get("step_id") or "",
                _short(r["input"], 40),
                _short(output, 40),
                f"{r['duration_ms']:.3f}",
            )
        parts.append(table)
    if view.events:
        table = titled_table("conditions and retries", "step", "kind", "what", "outcome")
        for r in view.events:
            if r["kind"] == "condition":
                what = f"{r['role']}: {r['expression']}  {_short(r['operands'], 60)}"
                outcome = str(r["outcome"]).lower()
            else:
                what = f"attempt {r['attempt']} {r['error_type']}: {r['reason']}"
                outcome = "retried" if r["retried"] else "not retried"
            add_row(table, r.get("step_id") or "", r["kind"], what, outcome)
        parts.append(table)
    if view.dropped:
        parts.append(
            Text(
                f"{view.dropped} older records were dropped (config.trace max_records)",
                style="yellow",
            )
        )
    return Group(*parts)


def debug_view(info: DebugInfo) -> Group:
    """``wfkit debug``."""
    parts: list[Any] = [
        Text.assemble(
            ("run ", "bold"),
            (info.run_id, "bold cyan"),
            "  ",
            (info.workflow, "bold"),
            "  ",
            status_text(info.status),
            f"  {info.duration_ms:.0f} ms" if info.duration_ms is not None else "",
        ),
        Text(f"file {info.file}  started {info.started_at[:19].replace('T', ' ')}", style="dim"),
    ]
    if info.failed_step:
        message = (info.error or {}).get("message", "")
        parts.append(Text(f"failed at {info.failed_step}: {message}", style="bold red"))
    if info.current_step:
        parts.append(Text(f"stopped during {info.current_step}", style="yellow"))
    table = titled_table(
        f"state ({info.state_source}, {info.state_bytes} bytes)",
        "tier",
        "bytes",
        "values",
        right=("bytes",),
    )
    for tier, view in info.state.items():
        add_row(table, tier, str(view.bytes), _short(view.values, 70))
    parts.append(table)
    if info.steps:
        steps = titled_table(
            "steps",
            "step",
            "type",
            "status",
            "runs",
            "attempts",
            "total ms",
            "max ms",
            right=("runs", "attempts", "total ms", "max ms"),
        )
        for s in info.steps:
            add_row(
                steps,
                s.id,
                s.type,
                status_text(s.status),
                str(s.executions),
                str(s.attempts),
                f"{s.total_ms:.1f}",
                f"{s.max_ms:.1f}",
            )
        parts.append(steps)
    if info.bottlenecks:
        slow = titled_table(
            "bottlenecks (share of wall time)", "name", "kind", "total ms", "count", "share"
        )
        for b in info.bottlenecks[:5]:
            kind = f"{b.kind} (parallel work)" if b.parallel else b.kind
            add_row(slow, b.name, kind, f"{b.total_ms:.1f}", str(b.count), f"{b.share:.0%}")
        parts.append(slow)
    for error in info.errors:
        flag = " (recovered)" if error.recovered else ""
        parts.append(
            Text(
                f"✗ {error.step_id} attempt {error.retry_count + 1}: "
                f"{error.error_type}: {error.message}{flag}",
                style="yellow" if error.recovered else "red",
            )
        )
        if error.stack_trace and not error.recovered:
            parts.append(Text(error.stack_trace, style="dim"))
    if info.retries:
        parts.append(
            Text("retries: " + ", ".join(f"{k} x{v}" for k, v in info.retries.items()), style="dim")
        )
    for name, breaker in info.breakers.items():
        parts.append(
            Text(
                f"breaker {name}: {breaker['state']} ({breaker['failures']} failures)", style="dim"
            )
        )
    for warning in info.warnings:
        parts.append(Text(f"! {warning}", style="yellow"))
    for server, text in info.server_logs.items():
        parts.append(Text(f"stderr of MCP server {server}:", style="bold"))
        parts.append(Text("\n".join(f"  {line}" for line in text.splitlines()[-20:]), style="dim"))
    if info.next:
        parts.append(Text("next: " + "  |  ".join(info.next), style="cyan"))
    return Group(*parts)


def health_view(report: HealthReport) -> Group:
    """``wfkit health``."""
    table = Table(box=None, pad_edge=False, show_header=False)
    for check in report.checks:
        mark = Text("ok  ", style="green") if check.ok else Text("FAIL", style="bold red")
        add_row(table, mark, check.name, check.detail)
    verdict = (
        Text("healthy", style="bold green") if report.ok else Text("unhealthy", style="bold red")
    )
    return Group(table, verdict)


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
                    f"  expected {_short(failure.expected)}",
                    f"  actual {_short(failure.actual)}",
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
