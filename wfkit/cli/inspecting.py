"""Commands that read plans and recorded runs, running nothing: ``explain``, ``runs``, ``logs``,
``trace``, ``debug``, ``why``, ``diff`` and ``report``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from wfkit.cli.common import (
    EXPLAIN_TREE_STEPS,
    MAX_COUNT,
    AgentOpt,
    FileArg,
    InputsOpt,
    JsonOpt,
    RunIdArg,
    StatusOpt,
    StoreOpt,
    call,
    console,
    emit_json,
    respond,
    write_page,
)


def explain(
    file: FileArg,
    inputs: InputsOpt = None,
    store: StoreOpt = None,
    agent_command: AgentOpt = None,
    steps: Annotated[
        Literal["summary", "all"],
        typer.Option(
            "--steps",
            help=f"summary: the first {EXPLAIN_TREE_STEPS} steps of the tree and a count of the "
            "rest, the plans of called workflows one level deep; all: every step, every level.",
        ),
    ] = "summary",
    json_out: JsonOpt = False,
) -> None:
    """Show the plan and its mistakes before running: nothing is executed.

    A store whose folder exists lends its compile cache; explain never creates one.
    """
    from wfkit.cli.views.explain import explanation_tree
    from wfkit.commands._io import parse_assignments
    from wfkit.commands.explain import explain_workflow
    from wfkit.commands.run import existing_compile_cache_dir

    limit = None if steps == "all" else EXPLAIN_TREE_STEPS
    respond(
        lambda: explain_workflow(
            file,
            parse_assignments(inputs),
            existing_compile_cache_dir(store),
            agent_command,
            nest=None if steps == "all" else 1,
        ),
        lambda result: explanation_tree(result, limit),
        json_out,
    )


def runs(
    store: StoreOpt = None,
    status: StatusOpt = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", help="Only runs of this workflow name.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only runs started within: 2h, 7d, 30m.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_COUNT, help="How many runs to list.")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """List recorded runs, newest first."""
    from wfkit.cli.views.debug import runs_table
    from wfkit.commands import list_runs

    result = call(
        lambda: list_runs(store, limit, statuses=status, workflow=workflow, since=since),
        json_out,
        ValueError,
    )
    if json_out:
        emit_json(result)
    else:
        console().print(runs_table(result))


def logs(
    run_id: RunIdArg,
    step: Annotated[str | None, typer.Argument(help="Only this step.")] = None,
    attempt: Annotated[
        int | None, typer.Option("--attempt", min=1, max=MAX_COUNT, help="Only this attempt.")
    ] = None,
    item: Annotated[
        int | None,
        typer.Option("--item", min=0, max=MAX_COUNT, help="Only this parallel_foreach item."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")
    ] = False,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The captured output of a run's steps, per execution and attempt, with timestamps."""
    from wfkit.cli.views.output import attempt_title, print_chunk, print_logs
    from wfkit.commands.logs import LogsResult, follow_logs, run_logs

    out = console()

    def read() -> LogsResult | None:
        if follow and not json_out:
            follow_logs(
                run_id,
                step,
                attempt=attempt,
                item=item,
                store=store,
                on_attempt=lambda a: out.print(attempt_title(a), soft_wrap=True),
                on_chunk=lambda a, c: print_chunk(out, c),
            )
            return None
        if follow:  # --json: one document, once the run has ended
            follow_logs(
                run_id, step, store=store, on_attempt=lambda a: None, on_chunk=lambda a, c: None
            )
        return run_logs(run_id, step, attempt=attempt, item=item, store=store)

    try:
        result = call(read, json_out)
    except KeyboardInterrupt:  # Ctrl-C ends a --follow; the run goes on
        raise typer.Exit(130) from None
    if result is None:
        return
    if json_out:
        emit_json(result)
    else:
        print_logs(out, result)


def trace(
    run_id: RunIdArg,
    field: Annotated[str | None, typer.Option("--field", help="Only this computed field.")] = None,
    step: Annotated[str | None, typer.Option("--step", help="Only this step.")] = None,
    output_format: Annotated[
        Literal["table", "chrome"],
        typer.Option("--format", help="table, or chrome (trace-event JSON for Perfetto)."),
    ] = "table",
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="Write --format chrome here.")
    ] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show a traced run's transforms (inputs, outputs, timing), conditions and retries."""
    from wfkit.cli.views.debug import trace_view
    from wfkit.commands.trace import chrome_trace, trace_run

    if output_format == "table":
        respond(
            lambda: trace_run(run_id, field=field, step=step, store=store), trace_view, json_out
        )
        return
    result = call(lambda: trace_run(run_id, field=field, step=step, store=store), json_out)
    text = json.dumps(chrome_trace(result))
    if output:
        Path(output).write_text(text, encoding="utf-8")
        console(stderr=True).print(
            f"wrote {output} (open it in https://ui.perfetto.dev)", markup=False
        )
    else:
        sys.stdout.write(text + "\n")


def debug(run_id: RunIdArg, store: StoreOpt = None, json_out: JsonOpt = False) -> None:
    """A run's status, failing step, state, errors with stack traces, history and bottlenecks."""
    from wfkit.cli.views.debug import debug_view
    from wfkit.commands.debug import debug_run

    respond(lambda: debug_run(run_id, store=store), debug_view, json_out)


def why(
    run_id: RunIdArg,
    step_id: Annotated[str, typer.Argument(help="Step id (an item's step: PARALLEL/STEP).")],
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Why a step ran, was skipped, was not retried, took its fallback or was cancelled."""
    from wfkit.cli.views.why import why_view
    from wfkit.commands.why import why_step

    respond(lambda: why_step(run_id, step_id, store=store), why_view, json_out)


def diff(
    run_a: Annotated[str, typer.Argument(help="The run to compare from (id or prefix).")],
    run_b: Annotated[str, typer.Argument(help="The run to compare with (id or prefix).")],
    store: StoreOpt = None,
    json_out: JsonOpt = False,
    timing: Annotated[
        bool, typer.Option("--timing", help="Count steps slower or faster by half as changes.")
    ] = False,
) -> None:
    """Two runs aligned step by step (iterations, items), with their first divergence."""
    from wfkit.cli.views.diff import diff_view
    from wfkit.commands.diff import diff_runs

    respond(lambda: diff_runs(run_a, run_b, store=store, timing=timing), diff_view, json_out)


def report(
    run_id: RunIdArg,
    output: Annotated[
        str | None,
        typer.Option(
            "-o", "--output", help="HTML file to write ('-': stdout; default wfkit-report-ID.html)."
        ),
    ] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """One self-contained HTML page of a run: timeline, errors, state, traces, output."""
    from wfkit.cli.views.html import run_page_html
    from wfkit.commands.report import report_run

    result = call(lambda: report_run(run_id, store=store), json_out)
    if json_out:
        emit_json(result)
        return
    write_page(run_page_html(result), output or f"wfkit-report-{result.run_id}.html")


def replay(
    run_id: RunIdArg,
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", help="Replay with this (edited) workflow file instead."),
    ] = None,
    live: Annotated[
        list[str] | None,
        typer.Option("--live", help="Run this step's commands for real (repeatable)."),
    ] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a recorded run again with every side effect answered from its record: nothing
    outside runs. Says where the replay differs (with --workflow: what an edit changes)."""
    from wfkit.cli.views.replay import replay_view
    from wfkit.commands.replay import replay_run

    respond(
        lambda: replay_run(run_id, store=store, workflow=workflow, live=live),
        replay_view,
        json_out,
        lambda result: 0 if result.reproduced or result.edited else 1,
    )
