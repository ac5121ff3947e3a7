"""Human output of runs: the bounded run report and the live display while a run goes.

Everything here reads result models or engine events; nothing here changes a run. The report
shows a run of any size in about the same time (see :mod:`wfkit.cli.views.run_summary`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.text import Text

from wfkit.cli.views.common import LEVEL_STYLE, STATUS_STYLE, short, status_text

if TYPE_CHECKING:
    from rich.progress import Progress

    from wfkit.commands.results import ErrorEntry, RunReport
    from wfkit.engine.events import Event


def aligned_rows(
    header: tuple[str, ...], rows: Sequence[tuple[str, ...]], right: tuple[int, ...] = ()
) -> Text:
    """Columns padded in plain Python, as one ``Text``: rich's ``Table`` measures every cell
    (about 1 ms a row), this costs microseconds. Cells are plain text, never markup; a
    ``status`` column (named so in ``header``) keeps its colour."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    status_at = header.index("status") if "status" in header else -1

    def line(cells: tuple[str, ...]) -> list[str]:
        return [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]

    text = Text(no_wrap=True, overflow="ellipsis", end="\n")
    text.append("  ".join(line(header)).rstrip(), style="bold")
    for row in rows:
        cells = line(row)
        text.append("\n")
        if status_at < 0:
            text.append("  ".join(cells).rstrip())
            continue
        text.append("  ".join(cells[:status_at]) + ("  " if status_at else ""))
        text.append(cells[status_at], style=STATUS_STYLE.get(row[status_at], ""))
        rest = "  ".join(cells[status_at + 1 :]).rstrip()
        text.append(("  " + rest) if rest else "")
    return text


def _items_text(items: dict[str, int]) -> str:
    """A parallel_foreach row's status: ``43 ok / 7 failed`` (and any cancelled)."""
    ok = items.get("succeeded", 0)
    rest = [f"{n} {status}" for status, n in sorted(items.items()) if status != "succeeded"]
    return " / ".join([f"{ok} ok", *rest])


def run_report(report: RunReport, full: bool = False) -> Group:
    """The summary of a finished run: counts, the steps worth a look, errors, final state.

    Bounded whatever the run's size (see :mod:`wfkit.cli.views.run_summary`); ``full`` lists every
    step, failed attempt and value.
    """
    from wfkit.cli.views import run_summary as rs

    parts: list[Any] = []
    head = Text.assemble(
        ("run ", "bold"),
        (report.run_id, "bold cyan"),
        "  ",
        (report.workflow, "bold"),
        "  ",
        status_text(report.status),
        f"  {report.duration_ms:.0f} ms",
    )
    parts.append(head)
    digest = rs.digest_steps(report.steps, full)
    if report.steps:
        parts.append(Text(digest.summary_line(), style="dim"))
        rows = [
            (
                step.id,
                step.type,
                _items_text(step.items) if step.items else step.status_text,
                str(step.attempts),
                str(step.executions),
                f"{step.duration_ms:.1f}",
            )
            for step in digest.rows
        ]
        header = ("step", "type", "status", "attempts", "runs", "ms")
        parts.append(aligned_rows(header, rows, right=(3, 4, 5)))
    if digest.left_out:
        parts.append(
            Text(
                f"… {digest.left_out} more steps (--steps all lists every one)",
                style="dim",
            )
        )
    errors = report.errors if full else [e for e in report.errors if not e.recovered]
    head_errors, tail_errors = rs.head_and_tail(len(errors), full)
    for index in head_errors:
        parts.append(_error_line(errors[index]))
    if tail_errors:
        hidden = len(errors) - len(head_errors) - len(tail_errors)
        parts.append(
            Text(f"… {hidden} more failed attempts (--steps all, --json, wfkit debug)", "yellow")
        )
        for index in tail_errors:
            parts.append(_error_line(errors[index]))
    if not full:
        parts.extend(_recovered_lines(report.errors))
    if report.errors_dropped:
        parts.append(
            Text(
                f"… {report.errors_dropped} more failed attempts not kept "
                "(config.max_error_records)",
                style="yellow",
            )
        )
    warnings = report.warnings if full else report.warnings[: rs.WARNING_ROWS]
    for warning in warnings:
        parts.append(Text(f"! {warning}", style="yellow"))
    if len(warnings) < len(report.warnings):
        parts.append(Text(f"… {len(report.warnings) - len(warnings)} more warnings", "yellow"))
    state = report.state
    pairs = [
        (f"{tier}.{key}", value)
        for tier, values in (("raw", state.raw), ("computed", state.computed))
        for key, value in (values.items() if full else islice(values.items(), rs.STATE_ROWS))
    ]
    total = len(state.raw) + len(state.computed)
    if not full:
        pairs = pairs[: rs.STATE_ROWS]
    if pairs:
        width = max(len(name) for name, _ in pairs)
        lines = Text(no_wrap=True, overflow="ellipsis")
        for n, (name, value) in enumerate(pairs):
            lines.append(("\n" if n else "") + name.ljust(width), style="dim")
            lines.append("  " + short(value))
        parts.append(lines)
    if len(pairs) < total:
        parts.append(Text(f"… {total - len(pairs)} more values (--steps all, --json)", "dim"))
    return Group(*parts)


def _recovered_lines(errors: list[ErrorEntry]) -> list[Text]:
    """Recovered failures, each kind once per step with a count and its first message (first
    line): a fan-out's repeated item failures do not bury the summary."""
    groups: dict[tuple[str, str], list[ErrorEntry]] = {}
    for error in errors:
        if error.recovered:
            groups.setdefault((error.step_id or "", error.error_type), []).append(error)
    lines = []
    for (step_id, error_type), group in groups.items():
        first = group[0].message.splitlines()[0] if group[0].message else ""
        times = f" {len(group)} times" if len(group) > 1 else ""
        more = ", first:" if len(group) > 1 else ":"
        lines.append(
            Text(f"✗ {step_id}: {error_type}{times} (recovered){more} {first}", style="yellow")
        )
    return lines


def _error_line(error: ErrorEntry) -> Text:
    flag = " (recovered)" if error.recovered else ""
    return Text(
        f"✗ {error.step_id}: {error.error_type}: {error.message}{flag}",
        style="yellow" if error.recovered else "red",
    )


class LiveReporter:
    """Shows a run as it goes: a spinner with the current step, messages as lines.

    The spinner exists only on a terminal: elsewhere (a pipe, a file, CI logs) a transient
    display shows nothing, and building it and updating it per step is pure cost.
    """

    def __init__(self, console: Console, *, stream: bool = True) -> None:
        from wfkit.cli.views.output import LiveOutput

        self.console = console
        #: step output shown live as it arrives (off with --quiet)
        self.output = LiveOutput(console) if stream else None
        self.done = 0
        self.progress: Progress | None = None
        if console.is_terminal:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                SpinnerColumn(),
                # markup=False: the description holds a step id from the workflow file
                TextColumn("{task.description}", markup=False),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self.task = self.progress.add_task("starting", total=None)

    def __enter__(self) -> LiveReporter:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, event: Event) -> None:
        """An engine event sink."""
        from wfkit.engine.events import (
            Message,
            OutputChunk,
            OutputFinished,
            OutputStarted,
            RunStarted,
            StepFinished,
            StepStarted,
        )

        if isinstance(event, OutputChunk):
            if self.output is not None:
                self.output.chunk(event)
        elif isinstance(event, OutputStarted):
            if self.output is not None:
                self.output.started(event.key, event.step_id, event.item)
        elif isinstance(event, OutputFinished):
            if self.output is not None:
                self.output.finished(event.key)
        elif isinstance(event, RunStarted):  # the id, to follow or cancel it from elsewhere
            verb = "resumed" if event.resumed else "started"
            self.console.print(Text(f"run {event.run_id} {verb}", style="dim"))
        elif isinstance(event, StepStarted):
            if self.progress is not None:
                self.progress.update(
                    self.task, description=f"{event.step_id} ({self.done} steps done)"
                )
        elif isinstance(event, StepFinished):
            self.done += event.status != "skipped"
        elif isinstance(event, Message):
            style = LEVEL_STYLE.get(event.level, "")
            self.console.print(Text(event.text, style=style))

    def ask(self, prompt: str, choices: list[Any] | None, default: Any) -> Any:
        """Answer a ``user_input`` at the terminal, pausing the spinner."""
        from rich.prompt import Prompt

        if self.progress is not None:
            self.progress.stop()
        try:
            answer = Prompt.ask(
                Text(prompt),  # the prompt comes from the workflow file: never markup
                console=self.console,
                choices=[str(c) for c in choices] if choices else None,
                default=None if default is None else str(default),
            )
        finally:
            if self.progress is not None:
                self.progress.start()
        if answer is None:
            return default
        if choices:
            return {str(c): c for c in choices}.get(answer, answer)
        return answer
