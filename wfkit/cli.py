"""The ``wfkit`` command line: parse, call a command function, render, exit.

Imports of the engine, rich and jinja2 happen inside commands so ``wfkit --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console
    from rich.text import Text

    from wfkit.commands.results import RunReport

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_TESTS = 5
EXPLAIN_TREE_STEPS = 100  # steps of the explain tree shown unless --steps all
MAX_COUNT = 1_000_000_000  # counts and indexes beyond any run (SQLite integers stay in range)
"""Exit codes: 0 success, 1 the workflow or a test failed, 2 invalid usage, file or inputs,
5 ``wfkit test`` found no test suite (as pytest)."""


def json_requested(args: list[str]) -> bool:
    """Whether the command line asks for JSON (``--json`` before any ``--``)."""
    head = args[: args.index("--")] if "--" in args else args
    return "--json" in head


def error_document(exc: BaseException) -> dict[str, Any]:
    """The one JSON document of a failure: ``{"error": {type, message, file, line, ...}}``."""
    from wfkit.errors import LoadError, WfkitError

    if isinstance(exc, WfkitError):
        kind, message = exc.type_name, exc.message
    elif isinstance(exc, typer.TyperException):  # click's usage errors
        kind, message = "UsageError", exc.format_message()
    else:
        kind, message = type(exc).__name__, str(exc)
    error: dict[str, Any] = {
        "type": kind,
        "message": message,
        "file": None,
        "line": None,
        "column": None,
        "field": None,
    }
    if isinstance(exc, LoadError):
        error.update(file=exc.file, line=exc.line, column=exc.column, field=exc.field)
        if len(exc.problems) > 1:  # every problem of the file, in line order
            error["errors"] = [
                {k: v for k, v in p.details().items() if k != "type"} for p in exc.problems
            ]
    return {"error": error}


def _write_error_json(exc: BaseException) -> None:
    sys.stdout.write(json.dumps(error_document(exc), indent=2) + "\n")


class _JsonGroup(TyperGroup):
    """A command group whose usage errors are a JSON document too when ``--json`` is given.

    Click prints usage errors (a missing argument, an unknown option, a value outside an
    option's choices) as text before any of our code runs; with ``--json`` a script still gets
    exactly one JSON document on stdout. The errors are caught where click raises them (the
    group's own options, then the command's) so the run itself goes the usual way out.
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        wants_json = json_requested(list(args))
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except typer.TyperException as exc:
            _json_usage_error(exc, wants_json)
            raise
        ctx.meta["wfkit.json"] = wants_json
        return ctx

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except typer.TyperException as exc:
            _json_usage_error(exc, bool(ctx.meta.get("wfkit.json")))
            raise


def _json_usage_error(exc: typer.TyperException, wants_json: bool) -> None:
    """With ``--json``, a usage error click would print is the JSON document instead."""
    if wants_json:
        _write_error_json(exc)
        raise typer.Exit(getattr(exc, "exit_code", EXIT_USAGE)) from None


app = typer.Typer(
    name="wfkit",
    cls=_JsonGroup,
    help="Run YAML-defined workflows and debug their failures.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
StepsOpt = Annotated[
    Literal["summary", "all"],
    typer.Option(
        "--steps",
        help="summary: the failed, retried and slowest steps and a count of the rest; "
        "all: every step, failed attempt and value.",
    ),
]
_LOGGING = {"on": False}


LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]


def _show_version(value: bool) -> None:
    if value:
        from wfkit.entry import version_text

        sys.stdout.write(version_text())
        raise typer.Exit(EXIT_OK)


@app.callback()
def _options(
    log_format: Annotated[
        LogFormat | None,
        typer.Option("--log-format", help="text or json: log engine events to stderr."),
    ] = None,
    log_file: Annotated[
        str | None, typer.Option("--log-file", help="Write the logs to this file instead.")
    ] = None,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", help="The least level logged.")
    ] = "info",
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Pass MCP servers' stderr through to stderr.")
    ] = False,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print wfkit's version."
        ),
    ] = False,
) -> None:
    """Run YAML-defined workflows and debug their failures."""
    if verbose:  # read where servers start (wfkit.mcp_tools), in this process and children
        os.environ["WFKIT_VERBOSE"] = "1"
    _LOGGING["on"] = log_format is not None or log_file is not None
    if _LOGGING["on"] or logging_configured():
        from wfkit.logs import configure

        configure(log_format, log_file, log_level)


def logging_configured() -> bool:
    """Whether an earlier invocation in this process left wfkit's log handlers set."""
    import logging

    return bool(logging.getLogger("wfkit").handlers)


def _sink(
    live: Callable[[Any], None], export: Callable[[Any], None] | None = None
) -> Callable[[Any], None]:
    """The live display, plus structured logs and the trace export when asked for."""
    sinks = [live]
    if _LOGGING["on"]:
        from wfkit.logs import log_event

        sinks.append(log_event)
    if export is not None:
        sinks.append(export)
    if len(sinks) == 1:
        return live

    def every(event: Any) -> None:
        for sink in sinks:
            sink(event)

    return every


OtlpOpt = Annotated[
    str | None,
    typer.Option(
        "--otlp",
        help="Export the run as an OpenTelemetry trace to this OTLP/HTTP endpoint "
        "(default: OTEL_EXPORTER_OTLP_ENDPOINT, if set).",
    ),
]


@contextlib.contextmanager
def _trace_export(otlp: str | None, err: Console) -> Iterator[Any]:
    """The run's OpenTelemetry export when asked for, closed at the end with a bounded wait;
    a warning (never a failure) when it cannot export. A bad ``--otlp`` is InputError."""
    from wfkit.otel import start_export

    export, warning = start_export(otlp)
    if warning is not None:
        err.print(error_view_text(Exception(warning)), soft_wrap=True)
    try:
        yield export
    finally:
        if export is not None:
            problem = export.close()
            if problem is not None:
                err.print(error_view_text(Exception(problem)), soft_wrap=True)


ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor", help="Where parallel items run: local (default) or dask.", metavar="KIND"
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Dask scheduler (tcp://host:8786; default $WFKIT_DASK_SCHEDULER, else a local "
        "cluster).",
    ),
]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="WFKIT_STORE",
        help="Run store: a path (default: .wfkit/runs.db) or a postgresql:// URL.",
    ),
]


def _console(stderr: bool = False) -> Console:
    from wfkit.terminal import SafeConsole

    # emoji=False: ``:name:`` in a workflow name or a value is text, never an emoji code;
    # SafeConsole: control characters in what is shown are shown, never obeyed.
    return SafeConsole(stderr=stderr, highlight=False, emoji=False)


def _emit_json(result: BaseModel | list[Any]) -> None:
    """Write a result as JSON, streamed: the text of a large report is never built whole
    (its values are shared with the result, its containers copied once)."""
    data = (
        [r.model_dump(mode="json") for r in result]
        if isinstance(result, list)
        else result.model_dump(mode="json")
    )
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def error_view_text(exc: Exception) -> Text:
    """A one-line error for problems that do not change the exit code."""
    from rich.text import Text

    return Text.assemble(("warning: ", "yellow"), str(exc))


def _fail_usage(exc: Exception, json_out: bool = False) -> typer.Exit:
    """Report a usage error (as one JSON document with ``--json``) and exit 2."""
    from wfkit.errors import WfkitError

    error = exc if isinstance(exc, WfkitError) else WfkitError(str(exc))
    if json_out:
        _write_error_json(error)
    else:
        from wfkit.render import error_view

        _console(stderr=True).print(error_view(error))
    return typer.Exit(EXIT_USAGE)


def _faults(texts: list[str] | None) -> list[Any]:
    from wfkit.engine.inject import parse_fault

    return [parse_fault(text) for text in texts or []]


@app.command()
def run(
    file: Annotated[str, typer.Argument(help="Workflow YAML file.")],
    inputs: Annotated[
        list[str] | None, typer.Option("-i", "--input", help="Input as name=value (JSON or text).")
    ] = None,
    inputs_file: Annotated[
        str | None, typer.Option("--inputs", help="YAML/JSON file of inputs.")
    ] = None,
    answers: Annotated[
        str | None, typer.Option("--answers", help="YAML/JSON file: user_input step id -> answer.")
    ] = None,
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
    from wfkit.commands._io import parse_assignments
    from wfkit.errors import ExecutorError, InputError, LoadError, StoreError
    from wfkit.render_run import LiveReporter

    full = _steps_choice(steps)
    err = _console(stderr=True)
    try:
        given = parse_assignments(inputs)
        if metrics is not None:  # refused before the run, not after it
            from wfkit.commands.metrics import require_prometheus

            require_prometheus()
        faults = _faults(inject)
        with (
            _trace_export(otlp, err) as export,
            LiveReporter(err, stream=_streams(quiet, stream, json_out)) as live,
        ):
            interactive = sys.stdin.isatty() and not json_out
            result = run_workflow(
                file,
                given,
                inputs_file=inputs_file,
                answers_file=answers,
                store=store,
                trace=trace,
                ask=live.ask if interactive else None,
                on_event=_sink(live, export),
                faults=faults,
                inject_seed=inject_seed,
                executor=executor,
                scheduler=scheduler,
            )
    except (LoadError, InputError, StoreError, ExecutorError) as exc:
        raise _fail_usage(exc, json_out) from None
    if metrics is not None:
        from wfkit.commands.metrics import MetricsError, run_metrics, write_prometheus

        try:
            write_prometheus(run_metrics(result.run_id, store), result.workflow, metrics)
        except MetricsError as exc:
            _console(stderr=True).print(error_view_text(exc))
    _show_report(result, json_out, full)


QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Do not show step output live.")]
StreamOpt = Annotated[
    bool, typer.Option("--stream", help="With --json: show step output live on stderr.")
]


def _streams(quiet: bool, stream: bool, json_out: bool) -> bool:
    """Live step output: on, unless --quiet; with --json only when --stream asks for it."""
    return not quiet and (stream or not json_out)


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
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
    answers: Annotated[
        str | None, typer.Option("--answers", help="YAML/JSON file: user_input step id -> answer.")
    ] = None,
    store: StoreOpt = None,
    quiet: QuietOpt = False,
    stream: StreamOpt = False,
    steps: StepsOpt = "summary",
    json_out: JsonOpt = False,
    otlp: OtlpOpt = None,
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Continue a failed, interrupted, cancelled or timed-out run where it stopped."""
    from wfkit.commands import resume_workflow
    from wfkit.commands._io import parse_assignments
    from wfkit.errors import (
        ExecutorError,
        InputError,
        LoadError,
        ResumeError,
        RunNotFoundError,
        StoreError,
    )
    from wfkit.render_run import LiveReporter

    full = _steps_choice(steps)
    err = _console(stderr=True)
    try:
        given = parse_assignments(inputs)
        with (
            _trace_export(otlp, err) as export,
            LiveReporter(err, stream=_streams(quiet, stream, json_out)) as live,
        ):
            interactive = sys.stdin.isatty() and not json_out
            result = resume_workflow(
                run_id,
                force=force,
                from_step=from_step,
                inputs=given,
                inputs_file=inputs_file,
                answers_file=answers,
                store=store,
                ask=live.ask if interactive else None,
                on_event=_sink(live, export),
                executor=executor,
                scheduler=scheduler,
            )
    except (
        LoadError,
        InputError,
        ResumeError,
        RunNotFoundError,
        StoreError,
        ExecutorError,
    ) as exc:
        raise _fail_usage(exc, json_out) from None
    _show_report(result, json_out, full)


def _steps_choice(steps: str) -> bool:
    """``--steps``: True for ``all`` (typer checked the choice)."""
    return steps == "all"


def _show_report(result: RunReport, json_out: bool, full: bool = False) -> None:
    from wfkit.render_run import run_report

    if json_out:
        _emit_json(result)
    else:
        _console().print(run_report(result, full))
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)


@app.command()
def explain(
    file: Annotated[str, typer.Argument(help="Workflow YAML file.")],
    inputs: Annotated[
        list[str] | None, typer.Option("-i", "--input", help="Input as name=value (JSON or text).")
    ] = None,
    store: StoreOpt = None,
    steps: Annotated[
        Literal["summary", "all"],
        typer.Option(
            "--steps",
            help=f"summary: the first {EXPLAIN_TREE_STEPS} steps of the tree and a count of the "
            "rest; all: every step.",
        ),
    ] = "summary",
    json_out: JsonOpt = False,
) -> None:
    """Show the plan and its mistakes before running: nothing is executed.

    A store whose folder exists lends its compile cache; explain never creates one.
    """
    from wfkit.commands._io import parse_assignments
    from wfkit.commands.explain import explain_workflow
    from wfkit.commands.run import existing_compile_cache_dir
    from wfkit.errors import InputError, LoadError
    from wfkit.render import explanation_tree

    try:
        cache = existing_compile_cache_dir(store)
        result = explain_workflow(file, parse_assignments(inputs), cache)
    except (LoadError, InputError) as exc:
        raise _fail_usage(exc, json_out) from None
    if json_out:
        _emit_json(result)
    else:
        limit = None if steps == "all" else EXPLAIN_TREE_STEPS
        _console().print(explanation_tree(result, limit))


@app.command("test-transform")
def transform_command(
    expression: Annotated[
        str | None, typer.Argument(help="Expression (bare or a {{ }} template).")
    ] = None,
    input_json: Annotated[
        str | None, typer.Option("--input", help="JSON value bound to `input`.")
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="JSON object of names, or @FILE (JSON/YAML).")
    ] = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", help="Test a computed field of this workflow.")
    ] = None,
    field: Annotated[str | None, typer.Option("--field", help="The computed field.")] = None,
    state: Annotated[
        str | None, typer.Option("--state", help='JSON {"inputs": {...}, "raw": {...}}.')
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Evaluate an expression, or a workflow's computed field, in the run sandbox."""
    from wfkit.commands._io import json_argument
    from wfkit.commands.transform import evaluate_transform
    from wfkit.errors import InputError, LoadError
    from wfkit.render import transform_result

    try:
        result = evaluate_transform(
            expression,
            json_argument(input_json, "--input"),
            json_argument(context, "--context", mapping=True),
            workflow=workflow,
            field=field,
            state=json_argument(state, "--state", mapping=True),
        )
    except (LoadError, InputError) as exc:
        raise _fail_usage(exc, json_out) from None
    if json_out:
        _emit_json(result)
    else:
        _console().print(transform_result(result))
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)


@app.command("trace")
def trace_command(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
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
    from wfkit.commands.trace import chrome_trace, trace_run
    from wfkit.errors import InputError, RunNotFoundError, StoreError
    from wfkit.render import trace_view

    try:
        result = trace_run(run_id, field=field, step=step, store=store)
    except (InputError, RunNotFoundError, StoreError) as exc:
        raise _fail_usage(exc, json_out) from None
    if output_format == "chrome":
        text = json.dumps(chrome_trace(result))
        if output:
            Path(output).write_text(text, encoding="utf-8")
            _console(stderr=True).print(
                f"wrote {output} (open it in https://ui.perfetto.dev)", markup=False
            )
        else:
            sys.stdout.write(text + "\n")
    elif json_out:
        _emit_json(result)
    else:
        _console().print(trace_view(result))


@app.command()
def debug(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A run's status, failing step, state, errors with stack traces, history and bottlenecks."""
    from wfkit.commands.debug import debug_run
    from wfkit.errors import RunNotFoundError, StoreError
    from wfkit.render import debug_view

    try:
        result = debug_run(run_id, store=store)
    except (RunNotFoundError, StoreError) as exc:
        raise _fail_usage(exc, json_out) from None
    if json_out:
        _emit_json(result)
    else:
        _console().print(debug_view(result))


@app.command()
def why(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    step_id: Annotated[str, typer.Argument(help="Step id (an item's step: PARALLEL/STEP).")],
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Why a step ran, was skipped, was not retried, took its fallback or was cancelled."""
    from wfkit.commands.why import why_step
    from wfkit.errors import InputError, RunNotFoundError, StoreError
    from wfkit.render_why import why_view

    try:
        result = why_step(run_id, step_id, store=store)
    except (InputError, RunNotFoundError, StoreError) as exc:
        raise _fail_usage(exc, json_out) from None
    if json_out:
        _emit_json(result)
    else:
        _console().print(why_view(result))


@app.command()
def diff(
    run_a: Annotated[str, typer.Argument(help="The run to compare from (id or prefix).")],
    run_b: Annotated[str, typer.Argument(help="The run to compare with (id or prefix).")],
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Two runs aligned step by step (iterations, items), with their first divergence."""
    from wfkit.commands.diff import diff_runs
    from wfkit.errors import RunNotFoundError, StoreError
    from wfkit.render_diff import diff_view

    try:
        result = diff_runs(run_a, run_b, store=store)
    except (RunNotFoundError, StoreError) as exc:
        raise _fail_usage(exc, json_out) from None
    if json_out:
        _emit_json(result)
    else:
        _console().print(diff_view(result))


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
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
    from wfkit.commands.report import report_run
    from wfkit.errors import RunNotFoundError, StoreError
    from wfkit.render_html import run_page_html

    try:
        result = report_run(run_id, store=store)
    except (RunNotFoundError, StoreError) as exc:
        raise _fail_usage(exc, json_out) from None
    if json_out:
        _emit_json(result)
        return
    _write_page(run_page_html(result), output or f"wfkit-report-{result.run_id}.html")


def _write_page(page: str, output: str) -> None:
    """Write an HTML page to ``output`` ('-': stdout) and name the file on stderr."""
    from wfkit.errors import InputError

    if output == "-":
        sys.stdout.write(page)
        return
    path = Path(output)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise _fail_usage(InputError(f"cannot write {output}: {exc.strerror or exc}")) from None
    sys.stderr.write(f"{path}\n")


@app.command("test-step")
def step_trial_command(
    file: Annotated[str, typer.Argument(help="Workflow YAML file.")],
    step_id: Annotated[str, typer.Argument(help="The step to run.")],
    state: Annotated[
        str | None, typer.Option("--state", help='JSON {"inputs": {...}, "raw": {...}}.')
    ] = None,
    attempt: Annotated[int, typer.Option("--attempt", help="Run as this attempt (1-based).")] = 1,
    mock_result: Annotated[
        str | None, typer.Option("--mock-result", help="JSON result instead of running it.")
    ] = None,
    mock_error: Annotated[
        str | None, typer.Option("--mock-error", help="Fail with this error type instead.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run one step in isolation: condition, rendered fields, result, writes, policy branch."""
    from wfkit.commands._io import json_argument
    from wfkit.commands.step_trial import run_one_step
    from wfkit.errors import InputError, LoadError
    from wfkit.render_step import step_trial_view

    try:
        extra = (
            {}
            if mock_result is None
            else {"mock_result": json_argument(mock_result, "--mock-result")}
        )
        result = run_one_step(
            file,
            step_id,
            state=json_argument(state, "--state", mapping=True),
            attempt=attempt,
            mock_error=mock_error,
            **extra,
        )
    except (LoadError, InputError) as exc:
        raise _fail_usage(exc, json_out) from None
    if json_out:
        _emit_json(result)
    else:
        _console().print(step_trial_view(result))
    raise typer.Exit(EXIT_FAILED if result.branch == "fail" else EXIT_OK)


@app.command("test")
def suite_command(
    paths: Annotated[list[str], typer.Argument(help="*.wftest.yaml files or folders.")],
    junit_xml: Annotated[
        str | None, typer.Option("--junit-xml", help="Write a JUnit XML report here.")
    ] = None,
    coverage: Annotated[
        bool, typer.Option("--coverage", help="Workflow coverage: steps, branches, handlers.")
    ] = False,
    lcov: Annotated[
        str | None, typer.Option("--lcov", help="Write workflow coverage as LCOV here.")
    ] = None,
    fail_under: Annotated[
        float | None, typer.Option("--coverage-fail-under", help="Fail below this percent.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, help="Run cases in this many processes (results as serial)."
        ),
    ] = 1,
    html: Annotated[
        str | None,
        typer.Option("--html", help="Write an HTML page: cases, failures, coverage."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run workflow test suites with mocked tools, shell and answers, in virtual time."""
    from rich.text import Text

    from wfkit.commands.suite.reports import write_junit, write_lcov
    from wfkit.commands.suite.runner import run_tests
    from wfkit.errors import LoadError, NoTestsFoundError
    from wfkit.render import case_line, test_summary

    err = _console(stderr=True)
    measure = coverage or lcov is not None or fail_under is not None
    try:
        result = run_tests(
            paths,
            coverage=measure or html is not None,
            on_case=None if json_out else lambda c: err.print(case_line(c)),
            workers=workers,
        )
    except NoTestsFoundError as exc:  # as pytest: exit 5 when nothing was collected
        if json_out:
            _write_error_json(exc)
        else:
            err.print(Text(str(exc), style="yellow"))
        raise typer.Exit(EXIT_NO_TESTS) from None
    except LoadError as exc:
        raise _fail_usage(exc, json_out) from None
    if junit_xml:
        write_junit(result, junit_xml)
    if lcov and result.coverage is not None:
        write_lcov(result.coverage, lcov)
    if html:
        from wfkit.render_html import suite_page_html

        _write_page(suite_page_html(result, f"wfkit test {' '.join(paths)}"), html)
    if json_out:
        _emit_json(result)
    else:
        _console().print(test_summary(result, show_coverage=measure))
    under = (
        fail_under is not None
        and result.coverage_percent is not None
        and result.coverage_percent < fail_under
    )
    if under and not json_out:
        err.print(
            f"workflow coverage {result.coverage_percent:.1f}% is under {fail_under:g}%",
            style="red",
            markup=False,
        )
    if result.invalid:  # a suite or workflow file that does not load is a usage error
        raise typer.Exit(EXIT_USAGE)
    raise typer.Exit(EXIT_OK if result.ok and not under else EXIT_FAILED)


@app.command()
def bench(
    file: Annotated[str, typer.Argument(help="Workflow YAML file.")],
    runs: Annotated[int, typer.Option("-n", "--runs", help="Measured runs.")] = 5,
    warmup: Annotated[int, typer.Option("--warmup", help="Runs before measuring.")] = 1,
    inputs: Annotated[
        list[str] | None, typer.Option("-i", "--input", help="Input as name=value (JSON or text).")
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", help="pyinstrument HTML (or .json speedscope).")
    ] = None,
    save: Annotated[str | None, typer.Option("--save", help="Save the report as JSON.")] = None,
    compare: Annotated[
        str | None, typer.Option("--compare", help="A saved report to compare the median with.")
    ] = None,
    max_regression: Annotated[
        float | None, typer.Option("--max-regression", help="Exit 1 above this % slowdown.")
    ] = None,
    json_out: JsonOpt = False,
    inject: Annotated[
        list[str] | None, typer.Option("--inject", help="A fault in every run (see wfkit run).")
    ] = None,
    inject_seed: Annotated[
        str | None, typer.Option("--inject-seed", help="Seed of the faults' draws.")
    ] = None,
) -> None:
    """Run a workflow N times: wall min/median/p95/max, steps per second, per-step medians."""
    from rich.progress import Progress

    from wfkit.commands._io import parse_assignments
    from wfkit.commands.bench import BenchError, bench_workflow
    from wfkit.errors import InputError, LoadError
    from wfkit.render import bench_view

    try:
        with Progress(console=_console(stderr=True), transient=True) as progress:
            task = progress.add_task("benchmarking", total=runs + warmup)
            result = bench_workflow(
                file,
                runs,
                warmup,
                parse_assignments(inputs),
                profile=profile,
                compare=compare,
                max_regression=max_regression,
                on_progress=lambda done, total: progress.update(task, completed=done),
                faults=_faults(inject),
                inject_seed=inject_seed,
            )
    except (LoadError, InputError, BenchError) as exc:
        raise _fail_usage(exc, json_out) from None
    if save:
        Path(save).write_text(result.model_dump_json(indent=2), encoding="utf-8")
    if json_out:
        _emit_json(result)
    else:
        _console().print(bench_view(result))
    raise typer.Exit(EXIT_FAILED if result.regressed else EXIT_OK)


@app.command()
def health(
    workflow: Annotated[
        str | None, typer.Option("--workflow", help="Also check this workflow and its servers.")
    ] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check the store, disk and memory headroom, dependencies (and a workflow); exit 0 or 1."""
    from wfkit.commands.health import check_health
    from wfkit.render import health_view

    result = check_health(store, workflow)
    if json_out:
        _emit_json(result)
    else:
        _console().print(health_view(result))
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)


@app.command()
def runs(
    store: StoreOpt = None,
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Only runs with this status (repeat).")
    ] = None,
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
    from wfkit.commands import list_runs
    from wfkit.errors import InputError, StoreError
    from wfkit.render import runs_table

    try:
        result = list_runs(store, limit, statuses=status, workflow=workflow, since=since)
    except (InputError, StoreError, ValueError) as exc:
        raise _fail_usage(exc, json_out) from None
    if json_out:
        _emit_json(result)
    else:
        _console().print(runs_table(result))


@app.command()
def logs(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
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
    from wfkit.commands.logs import follow_logs, run_logs
    from wfkit.errors import RunNotFoundError, StoreError
    from wfkit.render_output import attempt_title, print_chunk, print_logs

    out = _console()
    try:
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
            return
        if follow:  # --json: one document, once the run has ended
            follow_logs(
                run_id, step, store=store, on_attempt=lambda a: None, on_chunk=lambda a, c: None
            )
        result = run_logs(run_id, step, attempt=attempt, item=item, store=store)
    except (RunNotFoundError, StoreError) as exc:
        raise _fail_usage(exc, json_out) from None
    except KeyboardInterrupt:  # Ctrl-C ends a --follow; the run goes on
        raise typer.Exit(130) from None
    if json_out:
        _emit_json(result)
    else:
        print_logs(out, result)


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for it to stop before SIGTERM.")
    ] = 15.0,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Cancel a running run from another process: finally runs, it stays resumable."""
    from wfkit.commands.manage import cancel_run
    from wfkit.errors import CancelError, RunNotFoundError, StoreError

    try:
        result = cancel_run(run_id, store, wait=wait)
    except (CancelError, RunNotFoundError, StoreError) as exc:
        raise _fail_usage(exc, json_out) from None
    if json_out:
        _emit_json(result)
    else:
        how = " (after SIGTERM)" if result.signalled else ""
        _console().print(f"run {result.run_id}: {result.status}{how}", markup=False)
    raise typer.Exit(EXIT_OK if result.status != "running" else EXIT_FAILED)


@app.command()
def prune(
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Runs started before: 30d, 12h.")
    ] = None,
    keep: Annotated[
        int | None,
        typer.Option("--keep", min=0, max=MAX_COUNT, help="Keep the newest N finished runs."),
    ] = None,
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Only runs with this status (repeat).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go; delete nothing.")
    ] = False,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Delete old finished runs and all they own, then reclaim the space."""
    from wfkit.commands.manage import prune_runs
    from wfkit.errors import InputError, RunNotFoundError, StoreError

    if older_than is None and keep is None and not status:
        raise _fail_usage(ValueError("prune needs --older-than, --keep or --status"), json_out)
    try:
        result = prune_runs(
            store, older_than=older_than, keep=keep, statuses=status, dry_run=dry_run
        )
    except (InputError, RunNotFoundError, StoreError, ValueError) as exc:
        raise _fail_usage(exc, json_out) from None
    if json_out:
        _emit_json(result)
        return
    console = _console()
    verb = "would delete" if dry_run else "deleted"
    for run in result.runs:
        console.print(f"{verb} {run.run_id}  {run.workflow}  {run.status}", markup=False)
    console.print(
        f"{verb} {len(result.runs)} run(s); store {result.bytes_before} -> "
        f"{result.bytes_after} bytes",
        markup=False,
    )


@app.command("mcp")
def mcp_command(
    root: Annotated[
        str, typer.Option("--root", help="Workflow paths must stay inside this folder.")
    ] = ".",
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Serve only the tools that run nothing.")
    ] = False,
    store: StoreOpt = None,
) -> None:
    """Serve wfkit's functions as MCP tools over stdio (for agents)."""
    import importlib.util

    if importlib.util.find_spec("mcp") is None:  # pragma: no cover - the mcp extra is missing
        raise _fail_usage(ValueError("wfkit mcp needs the MCP SDK: pip install 'wfkit[mcp]'"))
    from wfkit.mcp_server import serve

    serve(root, read_only, store)


@app.command()
def schema() -> None:
    """Print the JSON Schema of workflow files (for yaml-language-server and editors)."""
    from wfkit.commands.schema import workflow_schema

    sys.stdout.write(json.dumps(workflow_schema(), indent=2) + "\n")


@app.command()
def version() -> None:
    """Print wfkit's version."""
    from wfkit.entry import version_text

    sys.stdout.write(version_text())


# The group's options that take a value: ``wfkit --log-level debug run f.yaml`` names ``run``.
_GROUP_VALUE_OPTIONS = frozenset({"--log-format", "--log-file", "--log-level"})


def invoked_command(args: list[str]) -> str | None:
    """The subcommand ``args`` invoke, past the group's options; None when help comes first."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("--help", "--"):
            return None
        if arg in _GROUP_VALUE_OPTIONS:
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            return arg
    return None


def app_for(args: list[str]) -> typer.Typer:
    """``app`` with only the command ``args`` invoke, or whole when it is unknown or help.

    Typer builds every command's click parameters from its signature before parsing (~50 ms
    for this CLI); a command line that names one command needs only that one. Help, an unknown
    name (for click's "did you mean") and shell completion get the whole tree.
    """
    name = invoked_command(args)
    if name is None or any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ):
        return app
    from typer.main import get_command_name

    chosen = [
        info
        for info in app.registered_commands
        if name == (info.name or get_command_name(info.callback.__name__))  # type: ignore[union-attr]
    ]
    if not chosen:
        return app
    lean = copy.copy(app)
    lean.registered_commands = chosen
    return lean


def main() -> None:
    """Console-script entry point."""
    app_for(sys.argv[1:])()
