"""Tools for ``mcp_call`` steps from real MCP servers, over stdio, with the official SDK.

Each server in ``mcp_servers`` starts on first use within a run and is shared by every step
and parallel item; all are closed when the run ends, whatever happened. A server that cannot
start, or dies, is a ``ToolConnectionError`` that says what happened (the command, its exit
code, the end of its stderr); the next call naming it starts it again.

Each connection lives in a task of its own: the SDK's client is an anyio context manager that
must be entered and left by one task, while calls come from any task of the run. A start-up
cut off by a step timeout or a cancellation cancels that task, which stops the process; the
run's close waits for it, so no server outlives its run.

A server runs under ``/bin/sh`` so that its exit status can be reported: the SDK keeps the
process to itself. Its stderr goes to a pipe of ours, kept as a bounded tail (shown in errors
and recorded with the run) and passed through to wfkit's stderr only when verbose.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shlex
import shutil
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any, NoReturn

from wfkit.errors import (
    MissingExtraError,
    ToolConnectionError,
    ToolError,
    ToolInputError,
    ToolNotFoundError,
)
from wfkit.language.models import McpServerSpec
from wfkit.mcp_client.stderr import WRAPPER, StderrTail

STARTUP_TIMEOUT_SECONDS = 30.0
#: starts of one server whose stderr a run keeps (a server that keeps crashing restarts)
KEPT_STARTS = 3
#: how long a server whose connection closed gets to report its exit status
EXIT_WAIT_SECONDS = 1.0
#: how long the end of a run waits for a server cut off during start-up to be gone
SETTLE_SECONDS = 10.0
INVALID_PARAMS = -32602
CONNECTION_CLOSED = -32000


def require_mcp() -> None:
    """Raise :class:`MissingExtraError` when the MCP SDK is not installed."""
    try:
        found = importlib.util.find_spec("mcp") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingExtraError(
            "this workflow declares mcp_servers, which need the MCP SDK: pip install 'wfkit[mcp]'"
        )


class _Connection:
    """One running server: its client, its tools, and the task that holds it open."""

    def __init__(self, name: str, stderr: StderrTail) -> None:
        self.name = name
        self.client: Any = None
        self.tools: dict[str, Any] = {}
        self.validators: dict[str, Any] = {}
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.dead = False
        self.stderr = stderr
        #: the anyio scope of the connection task: cancelling it lets the SDK stop the server
        self.scope: Any = None


class McpTools:
    """A ``ToolProvider`` over the MCP servers a workflow declares."""

    def __init__(
        self,
        servers: dict[str, McpServerSpec],
        workflow_dir: Path,
        *,
        echo_stderr: bool | None = None,
    ) -> None:
        require_mcp()
        self.servers = servers
        self.workflow_dir = workflow_dir
        self.echo_stderr = (
            bool(os.environ.get("WFKIT_VERBOSE")) if echo_stderr is None else echo_stderr
        )
        #: the workflow's ``env:`` and ``env_file`` (the run passes them); a server's own wins
        self.env: dict[str, str] = {}
        self._connections: dict[str, _Connection] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._limits: dict[str, asyncio.Semaphore] = {}
        #: servers that could not start in this run: skipped when resolving a tool by name
        self._failed: dict[str, ToolConnectionError] = {}
        #: connection tasks cut off during start-up, with the stderr of the process they started
        self._stopping: dict[asyncio.Task[None], StderrTail] = {}
        #: the stderr of each start of each server in this run (the last few starts)
        self._stderr: dict[str, list[StderrTail]] = {}

    def use_env(self, env: dict[str, str]) -> None:
        """The workflow's environment for the servers started from now on."""
        self.env = dict(env)

    def _parameters(self, spec: McpServerSpec) -> Any:
        from mcp.client.stdio import StdioServerParameters

        cwd = Path(spec.cwd) if spec.cwd else self.workflow_dir
        if not cwd.is_absolute():
            cwd = self.workflow_dir / cwd
        # the SDK passes only HOME, PATH and a few more: what a server needs is given here
        env = {
            key: os.environ[key]
            for key in ("COVERAGE_PROCESS_START", "PYTHONPATH")
            if key in os.environ
        }
        env.update(self.env)
        env.update(spec.env)
        command = self._command(spec, cwd, env)
        return StdioServerParameters(
            command="/bin/sh",
            args=["-c", WRAPPER, "wfkit-mcp-server", command, *spec.args],
            env=env,
            cwd=str(cwd),
        )

    @staticmethod
    def _command(spec: McpServerSpec, cwd: Path, env: dict[str, str]) -> str:
        # "python" is the interpreter running wfkit, which has the MCP SDK installed
        if spec.command in ("python", "python3"):
            return sys.executable
        if os.sep in spec.command:
            path = Path(spec.command) if Path(spec.command).is_absolute() else cwd / spec.command
            found = str(path) if os.access(path, os.X_OK) and path.is_file() else None
        else:
            search = env.get("PATH", os.environ.get("PATH", os.defpath))
            found = shutil.which(spec.command, path=search)
        if found is None:
            raise FileNotFoundError(f"command not found: {spec.command}")
        return found

    async def connect(self, name: str) -> _Connection:
        """The running connection to server ``name``, started if need be."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            current = self._connections.get(name)
            if current is not None and not current.dead:
                return current
            starts = self._stderr.setdefault(name, [])
            for earlier in starts:
                earlier.close()
            del starts[: -(KEPT_STARTS - 1)]
            stderr = StderrTail(self.echo_stderr)
            starts.append(stderr)
            connection = _Connection(name, stderr)
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            # once connect has given up, nobody else reads what the start-up ended with
            ready.add_done_callback(lambda f: f.cancelled() or f.exception())
            connection.task = asyncio.create_task(self._hold(connection, ready))
            try:
                await asyncio.wait_for(asyncio.shield(ready), STARTUP_TIMEOUT_SECONDS)
            except BaseException as exc:
                # a timeout or cancellation cut the start-up off: the process must go too
                self._abandon(connection)
                if not isinstance(exc, Exception):
                    raise
                if not connection.task.done():
                    with suppress(BaseException):
                        await asyncio.wait_for(asyncio.shield(connection.task), 10)
                stderr.drain()
                error = ToolConnectionError(self._startup_failure(name, exc, stderr))
                self._failed[name] = error
                raise error from exc
            self._failed.pop(name, None)
            self._connections[name] = connection
            return connection

    def _abandon(self, connection: _Connection) -> None:
        connection.stop.set()
        task = connection.task
        if task is None or task.done():
            return
        # a server cut off while starting has nothing to flush: end its group now, rather than
        # wait out the SDK's graceful stop (stdin closed, 2 s, then TERM), which a run that
        # ends soon after could cut short
        connection.stderr.kill_group()
        # an anyio cancellation, which the SDK's shielded shutdown honours (a bare
        # task.cancel() can cut that shutdown short and leave the process running)
        if connection.scope is not None:
            connection.scope.cancel()
        else:  # not started yet: nothing spawned
            task.cancel()
        self._stopping[task] = connection.stderr
        task.add_done_callback(lambda _: connection.stderr.kill_group())

    def _startup_failure(self, name: str, exc: BaseException, stderr: StderrTail) -> str:
        spec = self.servers[name]
        command = shlex.join([spec.command, *spec.args])
        cause = _leaf(exc)
        if isinstance(cause, FileNotFoundError):
            what = str(cause)
        elif stderr.exit_code is not None:
            what = f"it exited with code {stderr.exit_code} during start-up"
        elif isinstance(cause, TimeoutError):
            what = f"it did not answer within {STARTUP_TIMEOUT_SECONDS:g} s"
        else:
            what = f"{type(cause).__name__}: {cause}"
        message = f"MCP server {name!r} ({command}) could not start: {what}"
        tail = stderr.last_lines()
        return f"{message}; its stderr ended with:\n{tail}" if tail else message

    async def _hold(self, connection: _Connection, ready: asyncio.Future[None]) -> None:
        import anyio
        from mcp.client import Client
        from mcp.client.stdio import stdio_client

        spec = self.servers[connection.name]
        try:
            params = self._parameters(spec)
            with anyio.CancelScope() as connection.scope:
                transport = stdio_client(params, errlog=connection.stderr.writer)
                async with Client(transport) as client:
                    connection.stderr.close_writer()
                    listed = await client.list_tools()
                    connection.client = client
                    connection.tools = {tool.name: tool for tool in listed.tools}
                    ready.set_result(None)
                    await connection.stop.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
        finally:
            connection.stderr.close_writer()
            connection.dead = True
            if not ready.done():
                ready.cancel()

    async def _server_for(self, server: str | None, tool: str) -> _Connection:
        if server is not None:
            if server not in self.servers:
                raise ToolNotFoundError(f"no MCP server {server!r} in mcp_servers")
            connection = await self.connect(server)
            if tool not in connection.tools:
                raise ToolNotFoundError(
                    f"server {server!r} offers no tool {tool!r} "
                    f"(it offers: {', '.join(sorted(connection.tools)) or 'none'})"
                )
            return connection
        offering = []
        failed: list[ToolConnectionError] = []
        for name in self.servers:
            if name in self._failed:  # tried in this run already; `server:` tries again
                failed.append(self._failed[name])
                continue
            try:
                connection = await self.connect(name)
            except ToolConnectionError as exc:
                failed.append(exc)
                continue
            if tool in connection.tools:
                offering.append(connection)
        if not offering:
            if failed:  # the tool may be on a server that did not start
                reasons = "\n".join(exc.message for exc in failed)
                raise ToolConnectionError(
                    f"no started MCP server offers tool {tool!r}, and some could not start:\n"
                    f"{reasons}"
                )
            raise ToolNotFoundError(
                f"no declared MCP server offers tool {tool!r} "
                f"(servers: {', '.join(self.servers) or 'none'})"
            )
        if len(offering) > 1:
            names = ", ".join(c.name for c in offering)
            raise ToolNotFoundError(f"tool {tool!r} is offered by {names}: set `server:`")
        return offering[0]

    def _limit(self, name: str) -> asyncio.Semaphore | None:
        bound = self.servers[name].max_concurrency
        if bound is None:
            return None
        return self._limits.setdefault(name, asyncio.Semaphore(bound))

    async def call(self, server: str | None, tool: str, arguments: dict[str, Any]) -> Any:
        connection = await self._server_for(server, tool)
        _check_arguments(connection, tool, arguments)
        limit = self._limit(connection.name)
        if limit is None:
            return await self._call(connection, tool, arguments)
        async with limit:
            return await self._call(connection, tool, arguments)

    async def _call(self, connection: _Connection, tool: str, arguments: dict[str, Any]) -> Any:
        from mcp.shared.exceptions import MCPError

        seen = connection.stderr.total

        def note() -> str:  # what the server wrote to stderr during this call
            return self._stderr_note(connection, seen)

        try:
            result = await connection.client.call_tool(tool, arguments)
        except asyncio.CancelledError:
            raise
        except MCPError as exc:
            if exc.code == INVALID_PARAMS:
                raise ToolInputError(f"tool {tool!r} refused its arguments: {exc}{note()}") from exc
            if exc.code != CONNECTION_CLOSED:
                raise ToolError(f"tool {tool!r} failed: {exc}{note()}") from exc
            await self._lost(connection, tool, exc, seen)
        except Exception as exc:
            await self._lost(connection, tool, exc, seen)
        text = "\n".join(getattr(block, "text", "") for block in result.content).strip()
        if result.is_error:
            raise ToolError(f"tool {tool!r} reported an error: {text or 'no message'}{note()}")
        if result.structured_content is not None:
            return _unwrap(result.structured_content, connection.tools[tool])
        return _parse(text)

    async def _lost(
        self, connection: _Connection, tool: str, exc: Exception, seen: int
    ) -> NoReturn:
        connection.dead = True  # the next call starts the server again
        connection.stop.set()
        await connection.stderr.wait_exit(EXIT_WAIT_SECONDS)
        code = connection.stderr.exit_code
        exited = f" (it exited with code {code})" if code is not None else ""
        raise ToolConnectionError(
            f"MCP server {connection.name!r} failed during {tool!r}{exited}: "
            f"{type(_leaf(exc)).__name__}: {_leaf(exc)}{self._stderr_note(connection, seen)}"
        ) from exc

    @staticmethod
    def _stderr_note(connection: _Connection, since: int) -> str:
        tail = connection.stderr.last_lines(since)
        return f"; server stderr:\n{tail}" if tail else ""

    def logs(self) -> dict[str, str]:
        """The end of each server's stderr in this run (servers that wrote nothing left out)."""
        logs = {}
        for name, starts in self._stderr.items():
            for stderr in starts:
                stderr.drain()
            text = "\n".join(t for stderr in starts if (t := stderr.text()))
            if text:
                logs[name] = text
        return logs

    async def aclose(self) -> None:
        """Stop every server this run started, and wait for those cut off while starting."""
        for connection in self._connections.values():
            connection.stop.set()
        for connection in self._connections.values():
            await _finish(connection.task)
        for task, stderr in list(self._stopping.items()):
            await _finish(task)
            await stderr.settle(SETTLE_SECONDS)
        self._stopping.clear()
        self._connections.clear()
        for starts in self._stderr.values():
            for stderr in starts:
                stderr.close()


def _check_arguments(connection: _Connection, tool: str, arguments: dict[str, Any]) -> None:
    """Validate ``arguments`` against the tool's advertised input schema, before the call."""
    validator = connection.validators.get(tool)
    if validator is None:
        import jsonschema

        schema = getattr(connection.tools[tool], "input_schema", None) or {}
        try:
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
        except jsonschema.SchemaError:
            return  # the server's schema is itself invalid: let the server judge
        validator = connection.validators[tool] = cls(schema)
    import jsonschema

    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path)
        field = f"parameters.{where}" if where else "parameters"
        raise ToolInputError(
            f"{field} do not match the input schema of tool {tool!r}: {error.message}"
            if not where
            else f"{field} does not match the input schema of tool {tool!r}: {error.message}"
        )


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def _finish(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        with suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(task), 10)


def _unwrap(value: Any, tool: Any) -> Any:
    """The SDK wraps a non-object return as ``{"result": value}``; give back the value."""
    schema = getattr(tool, "output_schema", None) or {}
    if (
        isinstance(value, dict)
        and set(value) == {"result"}
        and set(schema.get("properties", {})) == {"result"}
    ):
        return value["result"]
    return value


def _parse(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text
