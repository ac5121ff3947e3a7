"""Tools for ``mcp_call`` steps from real MCP servers, over stdio, with the official SDK.

Each server in ``mcp_servers`` starts on first use within a run and is shared by every step
and parallel item; all are closed when the run ends, whatever happened. A server that cannot
start, or dies, is a ``ToolConnectionError``; the next call starts it again.

Each connection lives in a task of its own: the SDK's client is an anyio context manager that
must be entered and left by one task, while calls come from any task of the run.
"""

from __future__ import annotations

import asyncio
import os
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

from wfkit.core.models import McpServerSpec
from wfkit.errors import ToolConnectionError, ToolError, ToolNotFoundError

STARTUP_TIMEOUT_SECONDS = 30.0


class _Connection:
    """One running server: its client, its tools, and the task that holds it open."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.client: Any = None
        self.tools: dict[str, Any] = {}
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.dead = False


class McpTools:
    """A ``ToolProvider`` over the MCP servers a workflow declares."""

    def __init__(self, servers: dict[str, McpServerSpec], workflow_dir: Path) -> None:
        self.servers = servers
        self.workflow_dir = workflow_dir
        self._connections: dict[str, _Connection] = {}
        self._locks: dict[str, asyncio.Lock] = {}

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
        env.update(spec.env)
        # "python" is the interpreter running wfkit, which has the MCP SDK installed
        command = sys.executable if spec.command in ("python", "python3") else spec.command
        return StdioServerParameters(command=command, args=list(spec.args), env=env, cwd=str(cwd))

    async def connect(self, name: str) -> _Connection:
        """The running connection to server ``name``, started if need be."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            current = self._connections.get(name)
            if current is not None and not current.dead:
                return current
            connection = _Connection(name)
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            connection.task = asyncio.create_task(self._hold(connection, ready))
            try:
                await asyncio.wait_for(asyncio.shield(ready), STARTUP_TIMEOUT_SECONDS)
            except (TimeoutError, OSError, Exception) as exc:
                connection.stop.set()
                await _finish(connection)
                raise ToolConnectionError(
                    f"MCP server {name!r} could not start: {type(exc).__name__}: {exc}"
                ) from exc
            self._connections[name] = connection
            return connection

    async def _hold(self, connection: _Connection, ready: asyncio.Future[None]) -> None:
        from mcp.client import Client

        spec = self.servers[connection.name]
        try:
            async with Client(self._parameters(spec)) as client:
                listed = await client.list_tools()
                connection.client = client
                connection.tools = {tool.name: tool for tool in listed.tools}
                ready.set_result(None)
                await connection.stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
        finally:
            connection.dead = True

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
        for name in self.servers:
            connection = await self.connect(name)
            if tool in connection.tools:
                offering.append(connection)
        if not offering:
            raise ToolNotFoundError(
                f"no declared MCP server offers tool {tool!r} "
                f"(servers: {', '.join(self.servers) or 'none'})"
            )
        if len(offering) > 1:
            names = ", ".join(c.name for c in offering)
            raise ToolNotFoundError(f"tool {tool!r} is offered by {names}: set `server:`")
        return offering[0]

    async def call(self, server: str | None, tool: str, arguments: dict[str, Any]) -> Any:
        connection = await self._server_for(server, tool)
        try:
            result = await connection.client.call_tool(tool, arguments)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            connection.dead = True  # the next call starts the server again
            connection.stop.set()
            raise ToolConnectionError(
                f"MCP server {connection.name!r} failed during {tool!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        text = "\n".join(getattr(block, "text", "") for block in result.content).strip()
        if result.is_error:
            raise ToolError(f"tool {tool!r} reported an error: {text or 'no message'}")
        if result.structured_content is not None:
            return _unwrap(result.structured_content, connection.tools[tool])
        return _parse(text)

    async def aclose(self) -> None:
        """Stop every server this run started."""
        for connection in self._connections.values():
            connection.stop.set()
        for connection in self._connections.values():
            await _finish(connection)
        self._connections.clear()


async def _finish(connection: _Connection) -> None:
    if connection.task is not None:
        with suppress(BaseException):
            await asyncio.wait_for(connection.task, 10)


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
