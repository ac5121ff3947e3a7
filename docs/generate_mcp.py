"""Write docs/mcp.md; its tool reference comes from the server's own tool schemas.

``python docs/generate_mcp.py``; tests/test_docs_mcp.py checks the page is current.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    return str(schema.get("type", "any"))


async def _tools() -> list[Any]:
    from mcp.client import Client

    from wfkit.mcp_server import build_server

    async with Client(build_server(ROOT)) as client:
        return list((await client.list_tools()).tools)


def reference() -> str:
    """The tool reference: each tool, its description and its arguments."""
    from wfkit.mcp_server import READ_ONLY

    lines = []
    for tool in asyncio.run(_tools()):
        mode = "read-only" if tool.name in READ_ONLY else "runs workflows"
        description = " ".join((tool.description or "").split())
        lines += [f"### `{tool.name}` ({mode})", "", description, ""]
        properties = tool.input_schema.get("properties", {})
        required = set(tool.input_schema.get("required", []))
        if properties:
            lines += ["| argument | type | required | default |", "|---|---|---|---|"]
            for name, schema in properties.items():
                default = "" if name in required else f"`{schema.get('default')!r}`"
                lines.append(
                    f"| `{name}` | {_type(schema)} | {'yes' if name in required else ''}"
                    f" | {default} |"
                )
            lines.append("")
    return "\n".join(lines)


def generate() -> str:
    """The whole page."""
    return PAGE.replace("{reference}", reference())


PAGE = """# wfkit for agents: `wfkit mcp`

`wfkit mcp` serves wfkit's functions as MCP tools over stdio. Each tool calls the same
function as the CLI and returns the same result as structured output, plus `next`: the calls
that usually come next (a failed run suggests `workflow_debug_info` and `workflow_resume` with
its run id; a waiting run suggests `workflow_resume` with an answer).

```sh
wfkit mcp --root path/to/project          # workflow paths must stay inside the root
wfkit mcp --root . --read-only            # only the tools that run nothing
```

Needs the MCP SDK: `pip install 'wfkit[mcp]'`.

## Client configuration

Claude Desktop (`claude_desktop_config.json`), Cursor (`.cursor/mcp.json`) and other clients
that take the common `mcpServers` form:

```json
{
  "mcpServers": {
    "wfkit": {
      "command": "wfkit",
      "args": ["mcp", "--root", "/path/to/project"],
      "env": {"WFKIT_STORE": "/path/to/project/.wfkit"}
    }
  }
}
```

Claude Code: `claude mcp add wfkit -- wfkit mcp --root /path/to/project`. VS Code
(`.vscode/mcp.json`) uses `"servers"` instead of `"mcpServers"`, with the same entry. The
MCP Inspector: `npx @modelcontextprotocol/inspector --cli wfkit mcp --method tools/list`.

## Behaviour

- **Arguments**: objects and lists (`inputs`, `answers`, `context`, `state`) also accept JSON
  text, since agents often send strings.
- **Paths**: `workflow` arguments resolve inside `--root` (default: the working directory);
  `..`, absolute paths and symlinks that lead outside are refused with a clear error.
- **Errors** come back as tool errors with their type and message (`RunNotFoundError: no run
  'x'`, `LoadError: flow.yaml:3:5: ...`), never a bare "Error executing tool".
- **Questions**: a `user_input` step without an answer pauses the run as `waiting`, with the
  prompt and choices in `error`; `workflow_resume` with `answers: {step_id: value}` continues
  it from that step.
- **stdout** carries protocol messages only: tools run with stdout sent to stderr, and logs go
  to stderr.
- The run store is `WFKIT_STORE`, `--store`, or `.wfkit/` under the server's working directory.

## `mcp_call`: the other direction

Workflows call tools of MCP servers they declare:

```yaml
mcp_servers:
  notes: {command: python, args: [servers/notes.py], env: {NOTES_DIR: /tmp}}
steps:
  - {type: mcp_call, server: notes, tool: add_note, parameters: {title: a, body: b}}
  - {type: mcp_call, method: list_notes}     # a tool only one server offers
```

Servers start over stdio on first use within a run, are shared by every step and parallel
item, and stop when the run ends, whatever happened. `command: python` runs the interpreter
running wfkit (which has the SDK); relative `args` and `cwd` are relative to the workflow
file. A server gets only the environment given in `env` (plus the SDK's few defaults such as
`PATH` and `HOME`). Results are the tool's structured content when it has some, else its text
(parsed as JSON when it is JSON). An unknown tool (or one two servers offer, without
`server:`) is `ToolNotFoundError`, not retried; a result with `is_error` is `ToolError`,
retried by default; a server that cannot start or dies is `ToolConnectionError`, and the next
call starts it again. A step's `timeout` bounds the call. `examples/servers/notes.py` is a
small server used by `examples/notes.yaml` and the tests.

## Tool reference

{reference}
"""


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    (ROOT / "docs" / "mcp.md").write_text(generate(), encoding="utf-8")
    print("wrote docs/mcp.md")
