"""How ``mcp_call`` steps reach tools: a small provider protocol.

The engine asks a :class:`ToolProvider`; which one backs it (real MCP servers, Python
functions, test mocks) is the caller's choice.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from wfkit.errors import ToolError, ToolNotFoundError, WfkitError


class ToolProvider(Protocol):
    """Calls tools by name."""

    async def call(self, server: str | None, tool: str, arguments: dict[str, Any]) -> Any:
        """Call ``tool`` with ``arguments``; raise a ToolError subclass on failure."""
        ...

    async def aclose(self) -> None:
        """Release whatever the provider holds (processes, connections)."""
        ...


class NoTools:
    """A provider with no tools: every call is :class:`ToolNotFoundError`."""

    async def call(self, server: str | None, tool: str, arguments: dict[str, Any]) -> Any:
        where = f" on server {server!r}" if server else ""
        raise ToolNotFoundError(
            f"no tool {tool!r}{where}: the workflow declares no MCP server offering it"
        )

    async def aclose(self) -> None:
        return None


class FunctionTools:
    """Tools backed by Python callables (sync or async), keyed by tool name."""

    def __init__(self, tools: Mapping[str, Callable[..., Any]]) -> None:
        self.tools = dict(tools)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def call(self, server: str | None, tool: str, arguments: dict[str, Any]) -> Any:
        func = self.tools.get(tool) or (self.tools.get(f"{server}.{tool}") if server else None)
        if func is None:
            await NoTools().call(server, tool, arguments)
        assert func is not None
        self.calls.append((tool, arguments))
        try:
            result = func(**arguments)
            if inspect.isawaitable(result):
                result = await result
        except WfkitError:
            raise
        except Exception as exc:
            raise ToolError(f"tool {tool!r} failed: {exc}") from exc
        return result

    async def aclose(self) -> None:
        return None
