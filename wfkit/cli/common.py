"""What every command of the CLI shares: exit codes, common options, the consoles, JSON output,
usage errors, and :func:`respond` (call, render or JSON, exit code), written once.

Imports of the commands, the engine, rich and jinja2 happen inside functions so
``wfkit --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer

from wfkit.controls import encodable

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console, RenderableType
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

R = TypeVar("R")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
StepsOpt = Annotated[
    Literal["summary", "all"],
    typer.Option(
        "--steps",
        help="summary: the failed, retried and slowest steps and a count of the rest; "
        "all: every step, failed attempt and value.",
    ),
]
RunIdArg = Annotated[str, typer.Argument(help="Run id (or a unique prefix).")]
FileArg = Annotated[str, typer.Argument(help="Workflow YAML file.")]
InputsOpt = Annotated[
    list[str] | None, typer.Option("-i", "--input", help="Input as name=value (JSON or text).")
]
AnswersOpt = Annotated[
    str | None,
    typer.Option("--answers", help="YAML/JSON file: user_input or agent_task step id -> answer."),
]
AgentOpt = Annotated[
    str | None,
    typer.Option(
        "--agent-command",
        envvar="WFKIT_AGENT_COMMAND",
        show_envvar=False,
        help="Performs agent_task steps: one JSON request on stdin, the response on stdout.",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Do not show step output live.")]
StreamOpt = Annotated[
    bool, typer.Option("--stream", help="With --json: show step output live on stderr.")
]
OtlpOpt = Annotated[
    str | None,
    typer.Option(
        "--otlp",
        help="Export the run as an OpenTelemetry trace to this OTLP/HTTP endpoint "
        "(default: OTEL_EXPORTER_OTLP_ENDPOINT, if set).",
    ),
]
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
StatusOpt = Annotated[
    list[str] | None, typer.Option("--status", help="Only runs with this status (repeat).")
]

LOGGING = {"on": False}
"""Whether this invocation logs engine events (``--log-format``/``--log-file``)."""


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


def write_error_json(exc: BaseException) -> None:
    """Write the JSON document of a failure to stdout."""
    sys.stdout.write(encodable(json.dumps(error_document(exc), indent=2, ensure_ascii=False)))
    sys.stdout.write("\n")


def console(stderr: bool = False) -> Console:
    """A console for what a command shows (on stderr for progress and messages)."""
    from wfkit.cli.terminal import SafeConsole

    # emoji=False: ``:name:`` in a workflow name or a value is text, never an emoji code;
    # SafeConsole: control characters in what is shown are shown, never obeyed.
    return SafeConsole(stderr=stderr, highlight=False, emoji=False)


def emit_json(result: BaseModel | list[Any]) -> None:
    """Write a result as JSON, streamed: the text of a large report is never built whole
    (its values are shared with the result, its containers copied once)."""
    data = (
        [r.model_dump(mode="json") for r in result]
        if isinstance(result, list)
        else result.model_dump(mode="json")
    )
    write = sys.stdout.write
    for chunk in json.JSONEncoder(indent=2, ensure_ascii=False).iterencode(data):
        write(encodable(chunk))  # valid UTF-8 whatever the values hold
    write("\n")


def error_view_text(exc: Exception) -> Text:
    """A one-line error for problems that do not change the exit code."""
    from rich.text import Text

    return Text.assemble(("warning: ", "yellow"), str(exc))


def fail_usage(exc: Exception, json_out: bool = False) -> typer.Exit:
    """Report a usage error (as one JSON document with ``--json``) and exit 2."""
    from wfkit.errors import WfkitError

    error = exc if isinstance(exc, WfkitError) else WfkitError(str(exc))
    if json_out:
        write_error_json(error)
    else:
        from wfkit.cli.views.common import error_view

        console(stderr=True).print(error_view(error))
    return typer.Exit(EXIT_USAGE)


def usage_errors() -> tuple[type[Exception], ...]:
    """The errors a command reports as usage errors (exit 2): a file that does not load,
    bad inputs or arguments, an unknown run, a run that cannot be resumed or cancelled, a
    store or an executor that cannot be used."""
    from wfkit.errors import (
        CancelError,
        ExecutorError,
        InputError,
        LoadError,
        ResumeError,
        RunNotFoundError,
        StoreError,
    )

    return (
        LoadError,
        InputError,
        ResumeError,
        RunNotFoundError,
        StoreError,
        ExecutorError,
        CancelError,
    )


def call(compute: Callable[[], R], json_out: bool, *more: type[Exception]) -> R:
    """``compute()``, with its usage errors (and ``more``) reported as such, exit 2."""
    try:
        return compute()
    except (*usage_errors(), *more) as exc:
        raise fail_usage(exc, json_out) from None


def show(result: Any, view: Callable[[Any], RenderableType], json_out: bool) -> None:
    """The result as one JSON document with ``--json``, else its view on stdout."""
    if json_out:
        emit_json(result)
    else:
        console().print(view(result))


def respond(
    compute: Callable[[], R],
    view: Callable[[R], RenderableType],
    json_out: bool,
    exit_code: Callable[[R], int] | None = None,
) -> None:
    """A command's whole answer: call, JSON or view, exit code (0 unless ``exit_code`` says)."""
    result = call(compute, json_out)
    show(result, view, json_out)
    if exit_code is not None:
        raise typer.Exit(exit_code(result))


def ok_or_failed(ok: bool) -> int:
    """EXIT_OK or EXIT_FAILED."""
    return EXIT_OK if ok else EXIT_FAILED


def sink(
    live: Callable[[Any], None], export: Callable[[Any], None] | None = None
) -> Callable[[Any], None]:
    """The live display, plus structured logs and the trace export when asked for."""
    sinks = [live]
    if LOGGING["on"]:
        from wfkit.cli.eventlog import log_event

        sinks.append(log_event)
    if export is not None:
        sinks.append(export)
    if len(sinks) == 1:
        return live

    def every(event: Any) -> None:
        for one in sinks:
            one(event)

    return every


@contextlib.contextmanager
def trace_export(otlp: str | None, err: Console) -> Iterator[Any]:
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


def streams(quiet: bool, stream: bool, json_out: bool) -> bool:
    """Live step output: on, unless --quiet; with --json only when --stream asks for it."""
    return not quiet and (stream or not json_out)


def steps_choice(steps: str) -> bool:
    """``--steps``: True for ``all`` (typer checked the choice)."""
    return steps == "all"


def show_report(result: RunReport, json_out: bool, full: bool = False) -> None:
    """A run's report (JSON or the human summary), then exit 0 or 1 by its outcome."""
    from wfkit.cli.views.run import run_report

    show(result, lambda r: run_report(r, full), json_out)
    raise typer.Exit(ok_or_failed(result.ok))


def write_page(page: str, output: str) -> None:
    """Write an HTML page to ``output`` ('-': stdout) and name the file on stderr."""
    from wfkit.errors import InputError

    page = encodable(page)
    if output == "-":
        sys.stdout.write(page)
        return
    path = Path(output)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise fail_usage(InputError(f"cannot write {output}: {exc.strerror or exc}")) from None
    sys.stderr.write(f"{path}\n")
