"""A small MCP server for the examples and tests: notes, and tools that misbehave on purpose.

Run it with the interpreter that has the MCP SDK: ``python examples/servers/notes.py``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

server = MCPServer("notes", instructions="Keeps notes; some tools fail on purpose.")
NOTES: dict[str, str] = {}


@server.tool()
def add_note(title: str, body: str) -> dict[str, object]:
    """Add (or replace) a note; returns the note count."""
    NOTES[title] = body
    return {"title": title, "count": len(NOTES)}


@server.tool()
def list_notes() -> list[str]:
    """Titles of the notes, sorted."""
    return sorted(NOTES)


@server.tool()
def flaky(key: str, failures: int = 2) -> str:
    """Fails `failures` times per key (counted in a file), then succeeds."""
    counter = Path(os.environ.get("NOTES_STATE_DIR", "/tmp")) / f"notes-flaky-{key}"
    count = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(count + 1))
    if count < failures:
        raise ToolError(f"transient failure {count + 1} of {failures}")
    return f"ok after {count + 1} calls"


@server.tool()
def refuse(reason: str) -> str:
    """Always reports an error."""
    raise ToolError(reason)


@server.tool()
def crash() -> str:
    """Kills the server process mid-call."""
    os._exit(3)


@server.tool()
def slow(seconds: float) -> str:
    """Sleeps, then answers."""
    time.sleep(seconds)
    return "done"


@server.tool()
def invalid(count: int) -> int:
    """Refuses its arguments with a JSON-RPC invalid-params error, as strict servers do."""
    raise MCPError(code=INVALID_PARAMS, message=f"count {count} is out of range")


IN_FLIGHT = {"now": 0, "max": 0}


@server.tool()
async def concurrent(seconds: float) -> int:
    """Holds the call for `seconds`; returns the most calls in flight at once so far."""
    IN_FLIGHT["now"] += 1
    IN_FLIGHT["max"] = max(IN_FLIGHT["max"], IN_FLIGHT["now"])
    await asyncio.sleep(seconds)
    IN_FLIGHT["now"] -= 1
    return IN_FLIGHT["max"]


@server.tool()
def log(text: str) -> str:
    """Writes `text` to the server's stderr."""
    print(text, file=sys.stderr, flush=True)
    return "logged"


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


if __name__ == "__main__":
    server.run("stdio")
