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

`wfkit mcp` serves wfkit's functions as MCP tools over stdio, or over streamable HTTP for a
team (`--http`). Each tool calls the same
function as the CLI and returns the same result as structured output, plus `next`: the calls
that usually come next (a failed run suggests `workflow_debug_info` and `workflow_resume` with
its run id; a waiting run suggests `workflow_resume` with an answer).

```sh
wfkit mcp --root path/to/project          # workflow paths must stay inside the root
wfkit mcp --root . --read-only            # only the tools that run nothing
wfkit mcp --root . --http 127.0.0.1:8765  # streamable HTTP at http://127.0.0.1:8765/mcp
wfkit mcp --root . --http 0.0.0.0:8765 --token-file ~/.wfkit-token   # for a team
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

Over HTTP, clients take the URL and the token as a header:

```json
{
  "mcpServers": {
    "wfkit": {
      "type": "http",
      "url": "http://build-box:8765/mcp",
      "headers": {"Authorization": "Bearer <the token file's text>"}
    }
  }
}
```

With the Python SDK: `Client(streamable_http_client(url, http_client=httpx2.AsyncClient(
headers={"Authorization": f"Bearer {token}"})))`.

## HTTP and authentication

`wfkit mcp --http HOST:PORT` serves the same tools (and `--root`, `--read-only`, `--store`
as on stdio) with the SDK's streamable HTTP transport on uvicorn, at `/mcp`.

- **Token**: `--token-file FILE` (its text, stripped) or `WFKIT_MCP_TOKEN`. With one, every
  request must carry `Authorization: Bearer TOKEN` (compared in constant time); any other
  request, on any path and with any method, is answered 401 before its body is read, and
  nothing of it is logged. The token is never written by wfkit, and `WFKIT_MCP_TOKEN` is taken
  out of the server's environment once read: the commands and tool servers its runs start
  never see it. There is no OAuth: no authorization-server metadata is published.
- **Without a token** on a loopback address, any user of this machine who can reach the port
  can run workflows, as any user who can start `wfkit` can: give a token on shared machines.
- **Beyond loopback**: binding anything but `127.0.0.1`, `::1` or `localhost` without a token
  is refused at start (exit 2, saying why): anyone who reaches the port could run commands.
- **DNS rebinding**: the Host and Origin headers are checked (the SDK's transport security
  settings) against the names the server answers to: `127.0.0.1`, `localhost` and `[::1]`,
  the address it binds, and beyond loopback this machine's host names (and, for `0.0.0.0` or
  `::`, every address of the machine), plus each `--allow-host NAME` (a DNS alias, a load
  balancer's name). Another Host is answered 421, a page of another Origin 403; a request with
  no Origin (a program, not a browser page) passes.
- **Stopping**: SIGTERM, SIGINT or SIGHUP stops the server cleanly: from then on the tools that
  start runs refuse ("the server is stopping"), every run it is running (calls in flight and
  `workflow_start` runs) is cancelled as `wfkit cancel` would (its step's process group ends,
  its `finally` steps run, it ends `cancelled` and stays resumable) and each call is answered
  with its cancelled run, for up to a minute; then the server stops taking requests and exits
  0. A second signal stops it at once (a run still in its `finally` steps is then
  `interrupted`, resumable).

## Long runs: progress and cancellation

- **Progress**: `workflow_run` and `workflow_resume` called with a progress token send one
  `notifications/progress` per finished top-level step and per finished item of a top-level
  `parallel_foreach`. `progress` counts the top-level steps done (an item adds its share of
  its step: 3 of 10 items of the second step done is 1.3), `total` is the number of top-level
  steps (absent for a resumed run), `message` names the step and how it ended (`build
  succeeded`, `fan item 3 failed`). Every notification arrives before the call's result.
  `workflow_start` answers as soon as the run is recorded: its run's progress is read with
  `workflow_debug_info` and `workflow_logs`.
- **Cancelling a call**: the client's cancellation of a running `workflow_run` or
  `workflow_resume` (`notifications/cancelled`, or closing the request on protocol
  2026-07-28) cancels its run exactly as `wfkit cancel` does: finally steps run, children end,
  the run ends `cancelled`.
- **`workflow_cancel(run_id)`** does the same for a run started earlier (by `workflow_start`,
  another client, or a CLI process on a shared store) and waits up to a minute for it to end.
  It goes through the store only and never signals a process (the run's process may be a
  server running other runs). `wfkit cancel`'s fallback SIGTERM, for a run that does not stop
  in time, likewise goes only to a process running that run alone, never to itself.
- **MCP tasks** (task-augmented `tools/call`, `tasks/get`, `tasks/result`, `tasks/cancel`):
  the installed SDK (mcp 2.3) carries the task types of protocol 2025-11-25 but serves no
  task methods, so `workflow_run` is not offered as a task; a task-augmented call is answered
  as a plain call. `workflow_start` + `workflow_debug_info` + `workflow_cancel` cover the same
  need: start, poll, cancel.

## Asking the user: elicitation

When the client declares the `elicitation` capability, a `user_input` step without an answer
asks through `elicitation/create` (form mode) instead of pausing: the prompt is the message,
and the form has one field, `answer`, titled with the step id: `choices` become a string enum
(a non-string choice is shown as text and mapped back), `default` its default, and the type is
that of the `raw` field the step's `state_update` sets (`integer`, `number`, `boolean`,
`string`; anything else is asked as text). `accept` continues the run with the answer;
`decline`, `cancel`, a failed request or none within `WFKIT_MCP_INPUT_WAIT` leave the run
`waiting` as without the capability, resumable with `answers`. The answer is checked against
the form it was asked with (a choice, or a value of the field's type; text that reads as one,
`"3"` for an integer, is taken as it): one that does not fit leaves the run `waiting` too,
never `failed`. A step that writes the answer through an expression (`value: "{{ result ==
'yes' }}"`) asks for text, whatever the field's type. On protocol 2026-07-28 the
question goes back in the call's `InputRequiredResult` round (as agent steps' sampling does)
and the client's retry carries the answer; on earlier protocols the server sends the request.
Without the capability nothing changes.

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
- **Questions**: a `user_input` step without an answer is asked by elicitation when the
  client can (below), else pauses the run as `waiting`, with the prompt and choices in
  `error`; `workflow_resume` with `answers: {step_id: value}` continues it from that step.
- **Resuming**: `workflow_resume` takes `from` (run again from a top-level step that ran, with
  the state before it: after fixing a file a completed step read) and `inputs` (changed
  inputs), as `wfkit resume --from` and `--input` do.
- **Version**: `serverInfo` carries wfkit's own version (`wfkit version`).
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
- `workflow_logs` and `workflow_report` read the run store the same way; neither reads a
  workflow file. `workflow_cancel` writes a cancel request: it is not served.
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
