"""Write docs/mcp.md; its tool reference comes from the server's own tool schemas.

``python docs/generate_mcp.py``; tests/test_docs_mcp.py checks the page is current.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return "any JSON value" if len(kind) >= 6 else " or ".join(map(str, kind))
    return str(kind)


async def _tools() -> list[Any]:
    from mcp.client import Client

    from wfkit.mcp_server.server import build_server

    async with Client(build_server(ROOT)) as client:
        return list((await client.list_tools()).tools)


def reference() -> str:
    """The tool reference: each tool, its hints, its description and its arguments."""
    lines = []
    for tool in asyncio.run(_tools()):
        hints = tool.annotations
        flags = [
            name
            for name, on in (
                ("read-only", hints.read_only_hint),
                ("destructive", hints.destructive_hint),
                ("idempotent", hints.idempotent_hint),
                ("open world", hints.open_world_hint),
            )
            if on
        ]
        shown = f" ({', '.join(flags)})" if flags else " (writes, not destructive)"
        lines += [f"### `{tool.name}`{shown}", "", tool.description or "", ""]
        properties = tool.input_schema.get("properties", {})
        required = set(tool.input_schema.get("required", []))
        if properties:
            lines += [
                "| argument | type | required | default | description |",
                "|---|---|---|---|---|",
            ]
            for name, schema in properties.items():
                default = "" if name in required else f"`{json.dumps(schema.get('default'))}`"
                lines.append(
                    f"| `{name}` | {_type(schema)} | {'yes' if name in required else ''}"
                    f" | {default} | {schema.get('description', '')} |"
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
  text, since agents often send strings. Every argument has a description and a type, and
  every tool carries MCP annotations (`readOnlyHint`, `destructiveHint`, `idempotentHint`,
  `openWorldHint`).
- **Paths**: `workflow` arguments resolve inside `--root` (default: the working directory);
  `..`, absolute paths and symlinks that lead outside are refused with a clear error.
- **Errors** come back as tool errors with their type and message (`RunNotFoundError: no run
  'x'`, `LoadError: flow.yaml:3:5: ...`), never a bare "Error executing tool".
- **`next`** lists the calls that apply to the result: `workflow_trace_transformations` only
  for a run that recorded traces, never the tool that was just called.
- **Questions**: a `user_input` step without an answer pauses the run as `waiting`, with the
  prompt and choices in `error`; `workflow_resume` with `answers: {step_id: value}` continues
  it from that step.
- **stdout** carries protocol messages only: tools run with stdout sent to stderr, and logs go
  to stderr.
- The run store is `WFKIT_STORE`, `--store`, or `.wfkit/` under the server's working directory.

## Read-only mode

`wfkit mcp --read-only` serves only the tools below marked read-only, and each of them
executes, starts and writes nothing. Audited tool by tool (tests in
`tests/mcp_server/test_guarantees.py` drive a real `wfkit mcp --read-only` over stdio):

- `workflow_explain_plan` reads the workflow file; static analysis only: no step, server or
  command runs.
- `workflow_test_transformation` reads the workflow file when given one; it evaluates in the
  expression sandbox only, which has no I/O.
- `workflow_trace_transformations`, `workflow_debug_info`, `workflow_list_runs` read the run
  store, opened read-only; a missing store is read as empty, never created. The run's
  workflow file is not read.
- `workflow_why` and `workflow_diff` read the run store the same way (read-only, never
  created), and neither reads a workflow file.
- `workflow_health` reads the store, the workflow file, disk and memory figures; the
  workflow's MCP servers are reported as "not checked in read-only mode": none is started.

The store is opened with SQLite's `mode=ro`: the database is never written (SQLite may create
its shared-memory index files, `runs.db-wal` and `runs.db-shm`, beside it, as any reader of a
WAL database does); `PRAGMA quick_check` is its only statement beyond reads. Outside
read-only mode, `workflow_health` with a workflow starts each of its servers to list their
tools, then stops them.

## Root confinement

Every path argument and every recorded path resolves inside `--root`, symlinks followed:
`workflow` arguments, workflow resources, and the workflow file of a run given by id
(`workflow_resume` loads the recorded file through the same check as `workflow_run`, so a run
recorded from a file outside the root, or from a file later replaced by a symlink leading
outside, is refused with `RootEscapeError` and runs nothing). `workflow_debug_info` and
`workflow_trace_transformations` read only the store, never the run's file.

## Arguments

Unknown arguments are refused with the list of valid names (`workflow_run takes no argument
'bogus'; its arguments are: workflow, inputs, answers, trace`); every tool's input schema says
`additionalProperties: false`. A wrong type or a missing argument is one sentence
(`workflow_run: argument 'trace': Input should be a valid boolean, ...`). A NUL byte in any
string argument, a path longer than 4096 characters or with a name over 255 is refused before
it reaches the file system. Errors of wfkit itself carry their type (`LoadError: ...`).

## Resources

| URI | what |
|---|---|
| `wfkit://runs` | recorded runs, newest first (JSON, as `workflow_list_runs`) |
| `wfkit://runs/{run_id}` | one run (JSON, as `workflow_debug_info`) |
| `wfkit://workflows/{+path}` | a workflow file under the root (YAML) |

The resources serve workflow files only: regular `.yaml`/`.yml` files inside the root (symlinks
followed and confined), not hidden, at most 5 MB; anything else (`notes.txt`, `.env.yaml`, a
FIFO, a link leading out) is refused with its reason. Those under the root (hidden folders,
`node_modules`, `venv` and `__pycache__` left out; at most 500) are listed as
`wfkit://workflows/<path>` when the server starts. Errors reach the client as their type and
message (`InputError: 'notes.txt' is not a workflow file (.yaml or .yml)`).

Outside `--read-only`, `workflow_health` with a workflow starts its servers, so its hints say
`readOnlyHint: false, openWorldHint: true` there.

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
call starts it again. A step's `timeout` bounds the call, start-up included: a start-up cut off
by a timeout or a cancellation stops the server's process, and the run's end waits for it.
`examples/servers/notes.py` is a small server used by `examples/notes.yaml` and the tests.

- **Arguments** are validated against the tool's advertised `inputSchema` before the call: a
  mismatch is `ToolInputError` naming the field (`parameters.title does not match the input
  schema of tool 'add_note': 5 is not of type 'string'`), and so is a server's JSON-RPC
  `-32602` (invalid params). `ToolInputError` is a permanent `ToolError`: it is not retried
  unless `retry_on` names it (`retry_on: [ToolError]` does not).
- **A tool named without `server:`** is looked up among the servers that started; servers that
  could not start are named in the error only when no started server offers the tool (then
  the error is `ToolConnectionError`). Within a run, a server that failed to start is not
  tried again for such look-ups; a step naming it with `server:` tries again.
- **Start-up failures say what happened**: `MCP server 'db' (python srv.py) could not start:
  it exited with code 3 during start-up; its stderr ended with: ...`, or `command not found:
  X`. Without the `mcp` extra, a workflow with `mcp_servers` is refused at once (exit 2) with
  `pip install 'wfkit[mcp]'`. A server runs under `/bin/sh`, which reports its exit status.
- **`max_concurrency`** (`mcp_servers.<name>.max_concurrency`, default unlimited) bounds the
  calls in flight to one server: many servers are not safe under concurrent calls.
- **stderr**: each server's stderr is captured (its last 16 KiB per start), quoted in the
  error when a call fails or the server dies, recorded with the run (shown by `wfkit debug`
  and `workflow_debug_info` as `server_logs`), and passed through to wfkit's stderr only with
  `wfkit --verbose`.

## Tool reference

{reference}
"""


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    (ROOT / "docs" / "mcp.md").write_text(generate(), encoding="utf-8")
    print("wrote docs/mcp.md")
