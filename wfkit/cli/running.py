"""Commands that run workflows: ``run``, ``resume`` and ``cancel``."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer

from wfkit.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    AgentOpt,
    AnswersOpt,
    ExecutorOpt,
    FileArg,
    InputsOpt,
    JsonOpt,
    OtlpOpt,
    QuietOpt,
    RunIdArg,
    SchedulerOpt,
    StepsOpt,
    StoreOpt,
    StreamOpt,
    call,
    console,
    error_view_text,
    respond,
    show,
    show_report,
    sink,
    steps_choice,
    streams,
    trace_export,
)


@contextlib.contextmanager
def _shown_live(
    otlp: str | None, quiet: bool, stream: bool, json_out: bool
) -> Iterator[tuple[Any, Callable[[Any], None]]]:
    """While a run goes: its live display (questions asked on a terminal only, never with
    ``--json``) and its event sink, with the trace export when asked for."""
    from wfkit.cli.views.run import LiveReporter

    err = console(stderr=True)
    with (
        trace_export(otlp, err) as export,
        LiveReporter(err, stream=streams(quiet, stream, json_out)) as live,
    ):
        interactive = sys.stdin.isatty() and not json_out
        yield (live.ask if interactive else None), sink(live, export)


def run(
    file: FileArg,
    inputs: InputsOpt = None,
    inputs_file: Annotated[
        str | None, typer.Option("--inputs", help="YAML/JSON file of inputs.")
    ] = None,
    answers: AnswersOpt = None,
    agent_command: AgentOpt = None,
    store: StoreOpt = None,
    trace: Annotated[
        bool, typer.Option("--trace", help="Record transforms, conditions and retry decisions.")
    ] = False,
    metrics: Annotated[
        str | None, typer.Option("--metrics", help="Write Prometheus text exposition here.")
    ] = None,
    quiet: QuietOpt = False,
    stream: StreamOpt = False,
    steps: StepsOpt = "summary",
    json_out: JsonOpt = False,
    inject: Annotated[
        list[str] | None,
        typer.Option(
            "--inject", help="Fault: 'step=ID|tool=NAME error=T|exit_code=N|latency=D rate=P'."
        ),
    ] = None,
    inject_seed: Annotated[
        str | None, typer.Option("--inject-seed", help="Seed of the faults' draws.")
    ] = None,
    otlp: OtlpOpt = None,
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Run a workflow and record it in the run store."""
    from wfkit.commands import run_workflow
    from wfkit.commands._io import parse_assignments, parse_faults
    from wfkit.commands.results import RunReport

    def execute() -> RunReport:
        given = parse_assignments(inputs)
        if metrics is not None:  # refused before the run, not after it
            from wfkit.commands.metrics import require_prometheus

            require_prometheus()
        faults = parse_faults(inject)
        with _shown_live(otlp, quiet, stream, json_out) as (ask, on_event):
            return run_workflow(
                file,
                given,
                inputs_file=inputs_file,
                answers_file=answers,
                store=store,
                trace=trace,
                ask=ask,
                on_event=on_event,
                faults=faults,
                inject_seed=inject_seed,
                executor=executor,
                scheduler=scheduler,
                agent_command=agent_command,
            )

    result = call(execute, json_out)
    if metrics is not None:
        from wfkit.commands.metrics import MetricsError, run_metrics, write_prometheus

        try:
            write_prometheus(run_metrics(result.run_id, store), result.workflow, metrics)
        except MetricsError as exc:
            console(stderr=True).print(error_view_text(exc))
    show_report(result, json_out, steps_choice(steps))


def resume(
    run_id: RunIdArg,
    force: Annotated[
        bool,
        typer.Option("--force", help="Resume even if steps moved before the saved position."),
    ] = False,
    from_step: Annotated[
        str | None,
        typer.Option("--from", help="Re-run from this top-level step, with the state before it."),
    ] = None,
    inputs: Annotated[
        list[str] | None,
        typer.Option("-i", "--input", help="Change an input as name=value (JSON or text)."),
    ] = None,
    inputs_file: Annotated[
        str | None, typer.Option("--inputs", help="YAML/JSON file of inputs to change.")
    ] = None,
    answers: AnswersOpt = None,
    agent_command: AgentOpt = None,
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow",
            help="Resume with this copy of the workflow file (checked like an edit).",
        ),
    ] = None,
    store: StoreOpt = None,
    quiet: QuietOpt = False,
    stream: StreamOpt = False,
    steps: StepsOpt = "summary",
    json_out: JsonOpt = False,
    otlp: OtlpOpt = None,
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
    plan: Annotated[
        bool,
        typer.Option(
            "--plan",
            help="Show what changed in the file since the run started, each change safe or "
            "unsafe for a resume, and resume nothing.",
        ),
    ] = False,
) -> None:
    """Continue a failed, interrupted, cancelled or timed-out run where it stopped (on any
    machine: where its file is not, with the workflow text recorded with the run)."""
    from wfkit.commands import resume_workflow
    from wfkit.commands._io import parse_assignments
    from wfkit.commands.results import RunReport

    if plan:
        from wfkit.cli.views.resume_plan import resume_plan_view
        from wfkit.commands.resume import plan_resume

        respond(
            lambda: plan_resume(
                run_id,
                store=store,
                workflow=workflow,
                from_step=from_step,
                inputs=parse_assignments(inputs),
                inputs_file=inputs_file,
            ),
            resume_plan_view,
            json_out,
        )
        return

    def execute() -> RunReport:
        given = parse_assignments(inputs)
        with _shown_live(otlp, quiet, stream, json_out) as (ask, on_event):
            return resume_workflow(
                run_id,
                force=force,
                from_step=from_step,
                inputs=given,
                inputs_file=inputs_file,
                answers_file=answers,
                store=store,
                ask=ask,
                on_event=on_event,
                executor=executor,
                scheduler=scheduler,
                workflow=workflow,
                agent_command=agent_command,
            )

    show_report(call(execute, json_out), json_out, steps_choice(steps))


def cancel(
    run_id: RunIdArg,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for it to stop before SIGTERM.")
    ] = 15.0,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Cancel a running run from another process: finally runs, it stays resumable."""
    from rich.text import Text

    from wfkit.commands.manage import CancelResult, cancel_run

    def view(result: CancelResult) -> Text:
        how = " (after SIGTERM)" if result.signalled else ""
        return Text(f"run {result.run_id}: {result.status}{how}")

    result = call(lambda: cancel_run(run_id, store, wait=wait), json_out)
    show(result, view, json_out)
    raise typer.Exit(EXIT_OK if result.status != "running" else EXIT_FAILED)
