"""Commands that look after wfkit itself: ``health``, ``prune``, ``mcp``, ``schema`` and
``version``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from wfkit.cli.common import (
    MAX_COUNT,
    JsonOpt,
    StatusOpt,
    StoreOpt,
    call,
    console,
    emit_json,
    fail_usage,
    ok_or_failed,
    respond,
)


def health(
    workflow: Annotated[
        str | None, typer.Option("--workflow", help="Also check this workflow and its servers.")
    ] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check the store, disk and memory headroom, dependencies (and a workflow); exit 0 or 1."""
    from wfkit.cli.views.health import health_view
    from wfkit.commands.health import check_health

    respond(
        lambda: check_health(store, workflow),
        health_view,
        json_out,
        lambda result: ok_or_failed(result.ok),
    )


def prune(
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Runs started before: 30d, 12h.")
    ] = None,
    keep: Annotated[
        int | None,
        typer.Option("--keep", min=0, max=MAX_COUNT, help="Keep the newest N finished runs."),
    ] = None,
    status: StatusOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go; delete nothing.")
    ] = False,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Delete old finished runs and all they own, then reclaim the space."""
    from wfkit.commands.manage import prune_runs

    if older_than is None and keep is None and not status:
        raise fail_usage(ValueError("prune needs --older-than, --keep or --status"), json_out)
    result = call(
        lambda: prune_runs(
            store, older_than=older_than, keep=keep, statuses=status, dry_run=dry_run
        ),
        json_out,
        ValueError,
    )
    if json_out:
        emit_json(result)
        return
    out = console()
    verb = "would delete" if dry_run else "deleted"
    for run in result.runs:
        out.print(f"{verb} {run.run_id}  {run.workflow}  {run.status}", markup=False)
    out.print(
        f"{verb} {len(result.runs)} run(s); store {result.bytes_before} -> "
        f"{result.bytes_after} bytes",
        markup=False,
    )


def mcp_command(
    root: Annotated[
        str, typer.Option("--root", help="Workflow paths must stay inside this folder.")
    ] = ".",
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Serve only the tools that run nothing.")
    ] = False,
    store: StoreOpt = None,
    http: Annotated[
        str | None,
        typer.Option(
            "--http",
            metavar="HOST:PORT",
            help="Serve over streamable HTTP at http://HOST:PORT/mcp instead of stdio.",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="With --http: clients must send this file's text as a bearer token "
            "(or set WFKIT_MCP_TOKEN). Required to listen beyond 127.0.0.1.",
        ),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="With --http: another name clients reach the server by (its Host and Origin "
            "headers are checked against DNS rebinding). Repeatable.",
        ),
    ] = None,
) -> None:
    """Serve wfkit's functions as MCP tools over stdio, or HTTP (for agents)."""
    import importlib.util

    if importlib.util.find_spec("mcp") is None:  # pragma: no cover - the mcp extra is missing
        raise fail_usage(ValueError("wfkit mcp needs the MCP SDK: pip install 'wfkit[mcp]'"))
    from wfkit.mcp_server.server import serve

    listen = None
    if http is not None:
        from wfkit.mcp_server.http import listen_on

        try:
            listen = listen_on(http, token_file, tuple(allow_host or ()))
        except ValueError as exc:
            raise fail_usage(exc) from None
    elif token_file is not None or allow_host:
        option = "--token-file" if token_file is not None else "--allow-host"
        raise fail_usage(ValueError(f"{option} is for --http: stdio needs none"))
    serve(root, read_only, store, listen)


def schema() -> None:
    """Print the JSON Schema of workflow files (for yaml-language-server and editors)."""
    from wfkit.commands.schema import workflow_schema

    sys.stdout.write(json.dumps(workflow_schema(), indent=2) + "\n")


def version() -> None:
    """Print wfkit's version."""
    from wfkit.cli.version import version_text

    sys.stdout.write(version_text())
