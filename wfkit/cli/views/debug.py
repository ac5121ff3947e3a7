"""Views of recorded runs: ``wfkit runs``, ``wfkit trace`` and ``wfkit debug``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from wfkit.cli.views.common import (
    add_row,
    short,
    status_text,
    titled_table,
)

if TYPE_CHECKING:
    from wfkit.commands.debug import DebugInfo
    from wfkit.commands.results import RunSummary
    from wfkit.commands.trace import TraceView


def runs_table(runs: list[RunSummary]) -> Table:
    """``wfkit runs``."""
    table = Table(title="runs (newest first)")
    for column in ("run id", "workflow", "status", "started", "ms"):
        table.add_column(  # a run id is never cut: it is what users copy
            column,
            justify="right" if column == "ms" else "left",
            no_wrap=column == "run id",
            min_width=24 if column == "run id" else None,
        )
    for run in runs:
        started = run.started_at[:19].replace("T", " ")
        add_row(
            table,
            # a child run: its caller's id under its own (whole: ids are what users copy)
            run.run_id + (f"\n↳ {run.parent_run_id}" if run.parent_run_id is not None else ""),
            run.workflow + (" (child run)" if run.parent_run_id is not None else ""),
            status_text(run.status),
            started,
            "" if run.duration_ms is None else f"{run.duration_ms:.0f}",
        )
    return table


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
                short(r["input"], 40),
                short(output, 40),
                f"{r['duration_ms']:.3f}",
            )
        parts.append(table)
    if view.events:
        table = titled_table("conditions and retries", "step", "kind", "what", "outcome")
        for r in view.events:
            if r["kind"] == "condition":
                what = f"{r['role']}: {r['expression']}  {short(r['operands'], 60)}"
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
    if info.parent_run_id is not None:
        parts.append(Text(f"called by {info.parent_run_id} (a workflow step)", style="dim"))
    if info.child_run_ids:
        parts.append(Text(f"child runs: {', '.join(info.child_run_ids)}", style="dim"))
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
        add_row(table, tier, str(view.bytes), short(view.values, 70))
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
