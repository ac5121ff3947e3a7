"""``wfkit mcp``: the command functions as MCP tools over stdio, for agents.

Every tool calls the same function as the CLI and returns its result model as structured
output, plus the run id and the next useful calls. Object and list arguments also accept JSON
text. Workflow paths stay inside the server's root, also through a run id whose recorded file
lies outside. Unknown arguments are refused; argument errors are one sentence. Nothing but
protocol messages reaches stdout: tools run with stdout sent to stderr, and logs go to stderr.

``--read-only`` serves only tools that execute, start and write nothing: health reports the
workflow's servers as not checked, and every store is opened read-only (a missing one is read
as empty, never created). docs/mcp.md holds the audit of each tool.

Runs and workflow files are also served as resources: ``wfkit://runs``,
``wfkit://runs/{run_id}`` and ``wfkit://workflows/{path}``.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from contextlib import redirect_stdout
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

from pydantic_core import PydanticSerializationError

from wfkit import __version__
from wfkit.controls import encodable
from wfkit.errors import WfkitError
from wfkit.mcp_server.arguments import argument_error
from wfkit.mcp_server.wire import REFUSED, GuardedLines, private_stdin

LOGGER = logging.getLogger("wfkit.mcp")


@dataclass(frozen=True)
class _Hints:
    """What a tool does, as MCP tool annotations say it."""

    title: str
    read_only: bool
    destructive: bool = False
    idempotent: bool = True
    open_world: bool = False


_RUNS = _Hints("Run", read_only=False, destructive=True, idempotent=False, open_world=True)
_HINTS = {
    "workflow_run": _RUNS,
    "workflow_resume": _Hints("Resume a run", False, True, False, True),
    "workflow_explain_plan": _Hints("Explain a workflow", True),
    "workflow_trace_transformations": _Hints("Trace a run", True),
    "workflow_debug_info": _Hints("Debug a run", True),
    "workflow_test_transformation": _Hints("Test an expression", True),
    "workflow_list_runs": _Hints("List runs", True),
    "workflow_health": _Hints("Health", True),
    "workflow_why": _Hints("Why a step did what it did", True),
    "workflow_diff": _Hints("Compare two runs", True),
    "workflow_logs": _Hints("A run's output", True),
    "workflow_report": _Hints("A run's report", True),
    "workflow_cancel": _Hints("Cancel a run", False, True, False, False),
    "workflow_replay": _Hints("Replay a recorded run", False, True, False, False),
    "workflow_start": _Hints("Start a run", False, True, False, True),
    "workflow_next_task": _Hints("Claim agent work", False, False, False, False),
    "workflow_complete_task": _Hints("Answer agent work", False, False, False, False),
}


def _description(func: Callable[..., Any]) -> str:
    """The docstring as clean text: paragraphs kept, lines joined, no indentation."""
    paragraphs = inspect.cleandoc(func.__doc__ or "").split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def _server_class() -> type:
    """``MCPServer`` with arguments checked before the SDK validates them."""
    from mcp.server import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from pydantic import ValidationError

    class WfkitServer(MCPServer):
        """Refuses unknown arguments, NUL bytes and over-long paths; one-sentence errors."""

        parameters: dict[str, list[str]]

        async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
            if name == REFUSED:  # a request the wire could not read (see wire.py)
                raise ToolError(str(arguments.get("reason")))
            valid = self.parameters.get(name)
            if valid is not None:
                unknown = sorted(set(arguments) - set(valid))
                if unknown:
                    raise ToolError(
                        f"{name} takes no argument {', '.join(map(repr, unknown))}; "
                        f"its arguments are: {', '.join(valid) or 'none'}"
                    )
                for key, value in arguments.items():
                    if isinstance(value, str) and "\0" in value:
                        raise ToolError(f"{name}: argument {key!r} contains a NUL byte")
            try:
                return await super().call_tool(name, arguments, context)
            except ToolError as exc:
                if isinstance(exc.__cause__, ValidationError):
                    raise ToolError(argument_error(name, exc.__cause__)) from None
                prefix = f"Error executing tool {name}: "  # the SDK's, before our sentence
                message = str(exc)
                if message.startswith(prefix):
                    raise ToolError(message[len(prefix) :]) from exc.__cause__
                raise

        async def run_stdio_async(self) -> None:
            """Serve over stdio, every line through the wire's depth guard."""
            import anyio
            from mcp.server.stdio import stdio_server

            with private_stdin() as stdin:
                lines: Any = GuardedLines(anyio.wrap_file(stdin))
                async with stdio_server(stdin=lines) as (read_stream, write_stream):
                    await self._lowlevel_server.run(
                        read_stream,
                        write_stream,
                        self._lowlevel_server.create_initialization_options(),
                    )

        async def list_tools(self) -> list[Any]:
            tools = await super().list_tools()
            for tool in tools:  # what call_tool refuses, the schema says
                tool.input_schema["additionalProperties"] = False
            return tools

    return WfkitServer


def build_server(
    root: str | Path = ".",
    read_only: bool = False,
    store: str | Path | None = None,
    **auth: Any,
) -> Any:
    """The MCP server with the wfkit tools (all, or only those that run nothing); ``auth``
    is the SDK's ``token_verifier`` and ``auth`` settings of an HTTP server (see http.py)."""
    from wfkit.mcp_server.catalog import READ_ONLY, TOOLS
    from wfkit.mcp_server.resources import add_resources
    from wfkit.mcp_server.tools import Scope

    scope = Scope(Path(root).resolve(), store, read_only)
    server = _server_class()(
        "wfkit",
        version=__version__,
        instructions=(
            "Run, explain, trace and debug YAML workflows. Every result carries the run id "
            "and `next`: the useful calls that follow. "
            + (
                "This server is read-only: it runs, starts and writes nothing."
                if read_only
                else "workflow_run and workflow_resume run shell commands and tools."
            )
        ),
        **auth,
    )
    server.parameters = {}
    for func in TOOLS:
        if not read_only or func.__name__ in READ_ONLY:
            _add_tool(server, func, scope)
    add_resources(server, scope.root, store, read_only)
    return server


def encodable_result(result: Any) -> Any:
    """``result`` as the protocol can carry it: the SDK writes UTF-8 JSON, which holds no lone
    surrogate (an undecodable byte of a command line, a ``from_json`` value), so any string
    holding one gets the escape text ``\\udXXX`` in its place; other results pass as they are."""
    try:
        result.model_dump_json()
    except (UnicodeEncodeError, PydanticSerializationError):
        return type(result).model_validate(_encodable_data(result.model_dump(mode="json")))
    return result


def _encodable_data(value: Any) -> Any:
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, list):
        return [_encodable_data(item) for item in value]
    if isinstance(value, dict):
        return {_encodable_data(k): _encodable_data(v) for k, v in value.items()}
    return value


def _add_tool(server: Any, func: Callable[..., Awaitable[Any]], scope: Any) -> None:
    """Register a tool function bound to the server's scope (its first parameter): the tool's
    schema is its other parameters, its output schema its result model. Tools run with stdout
    sent to stderr; errors reach the client as one sentence."""
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp_types import ToolAnnotations

    from wfkit.language.task_files import CONFINED
    from wfkit.mcp_server.agents import CALLER
    from wfkit.mcp_server.tools import STARTS_RUNS, STOPPING

    name = func.__name__
    hints = _HINTS[name]
    if name == "workflow_health" and not scope.read_only:  # it starts the workflow's servers
        hints = _Hints(hints.title, read_only=False, open_world=True)

    # the signature and type hints the SDK reads, without the scope (bound here)
    signature = inspect.signature(func, eval_str=True)
    parameters = list(signature.parameters.values())[1:]
    python_names = {_wire_name(p): p.name for p in parameters}  # "from" is from_step

    @wraps(func)
    async def tool(ctx: Context, **arguments: Any) -> Any:
        if name in STARTS_RUNS and STOPPING.is_set():
            raise ToolError(f"{name}: the server is stopping: it starts no new run")
        CALLER.set(ctx)  # the call's client: a run it starts may sample from it
        CONFINED.set(scope.root)  # the task files a workflow names stay inside it too
        arguments = {python_names.get(k, k): v for k, v in arguments.items()}
        try:
            with redirect_stdout(sys.stderr):  # stdout carries the protocol only
                return encodable_result(await func(scope, **arguments))
        except WfkitError as exc:
            raise ToolError(f"{exc.type_name}: {exc}") from exc
        except Exception as exc:  # a bug: say what, keep the traceback in the log
            LOGGER.exception("tool %s failed", name)
            raise ToolError(f"{name} failed: {type(exc).__name__}: {exc}") from exc

    # the SDK hands the request's context to the parameter annotated Context (not published)
    context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)
    tool.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*parameters, context]
    )
    tool.__annotations__ = {
        **{p.name: p.annotation for p in parameters},
        "ctx": Context,
        "return": signature.return_annotation,
    }
    server.add_tool(
        tool,
        title=hints.title,
        description=_description(func),
        annotations=ToolAnnotations(
            title=hints.title,
            read_only_hint=hints.read_only,
            destructive_hint=hints.destructive,
            idempotent_hint=hints.idempotent,
            open_world_hint=hints.open_world,
        ),
        structured_output=True,
    )
    server.parameters[name] = list(python_names)


def _wire_name(parameter: inspect.Parameter) -> str:
    """A tool parameter's name on the wire: its ``Field`` alias (``from``, a Python keyword),
    else its own."""
    from pydantic.fields import FieldInfo

    for meta in getattr(parameter.annotation, "__metadata__", ()):
        if isinstance(meta, FieldInfo) and meta.alias:
            return meta.alias
    return parameter.name


def serve(
    root: str | Path = ".",
    read_only: bool = False,
    store: str | Path | None = None,
    http: Any = None,
) -> None:
    """Serve the tools over stdio until the client goes away, or over HTTP as ``http`` (a
    :class:`~wfkit.mcp_server.http.Listen`) says until SIGTERM."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)  # before the SDK's own
    if http is not None:
        from wfkit.mcp_server.http import auth_of, serve_http

        serve_http(build_server(root, read_only, store, **auth_of(http)), http, store)
        return
    try:
        build_server(root, read_only, store).run("stdio")
    except* (BrokenPipeError, ConnectionResetError):
        # the client closed its end: runs in progress ended cancelled, with their finally
        # steps, before the server's task group let this through
        print("wfkit mcp: the client closed the connection", file=sys.stderr)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())  # nothing left to flush into a closed pipe at exit
        os.close(null)
