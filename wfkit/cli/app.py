"""The ``wfkit`` command line: the typer app, its group options and its command table.

Each command lives in a module of its theme (running, inspecting, testing, admin) as "parse,
call, render, exit code" over :mod:`wfkit.cli.common`; this module registers them in the order
``wfkit --help`` lists them. Imports of the engine, rich and jinja2 happen inside commands so
``wfkit --help`` stays fast.
"""

from __future__ import annotations

import copy
import os
import sys
from typing import Annotated, Any, Literal

import typer
from typer.core import TyperGroup

from wfkit.cli import admin, inspecting, running, testing
from wfkit.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    LOGGING,
    json_requested,
    write_error_json,
)


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
        write_error_json(exc)
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

LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]


def _show_version(value: bool) -> None:
    if value:
        from wfkit.cli.version import version_text

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
    if verbose:  # read where servers start (wfkit.mcp_client.tools), in this process and children
        os.environ["WFKIT_VERBOSE"] = "1"
    LOGGING["on"] = log_format is not None or log_file is not None
    if LOGGING["on"] or logging_configured():
        from wfkit.cli.eventlog import configure

        configure(log_format, log_file, log_level)


def logging_configured() -> bool:
    """Whether an earlier invocation in this process left wfkit's log handlers set."""
    import logging

    return bool(logging.getLogger("wfkit").handlers)


# The command table, in the order help lists it.
app.command()(running.run)
app.command()(running.resume)
app.command()(inspecting.explain)
app.command("test-transform")(testing.transform_command)
app.command("trace")(inspecting.trace)
app.command()(inspecting.debug)
app.command()(inspecting.why)
app.command()(inspecting.diff)
app.command()(inspecting.replay)
app.command()(inspecting.report)
app.command("test-step")(testing.step_trial_command)
app.command("test")(testing.suite_command)
app.command()(testing.bench)
app.command()(admin.health)
app.command()(inspecting.runs)
app.command()(inspecting.logs)
app.command()(running.cancel)
app.command()(admin.prune)
app.command("mcp")(admin.mcp_command)
app.command()(admin.schema)
app.command()(admin.version)


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
