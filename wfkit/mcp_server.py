"""``wfkit mcp``: the command functions as MCP tools over stdio, for agents.

Every tool calls the same function as the CLI and returns its result model as structured
output, plus the run id and the next useful calls. Object and list arguments also accept JSON
text. Workflow paths stay inside the server's root. Nothing but protocol messages reaches
stdout: tools run with stdout sent to stderr, and logs go to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Awaitable, Callable
from contextlib import redirect_stdout
from functools import wraps
from pathlib import Path
from typing import Any

from wfkit.errors import InputError, WfkitError

READ_ONLY = (
    "workflow_explain_plan",
    "workflow_trace_transformations",
    "workflow_debug_info",
    "workflow_test_transformation",
    "workflow_list_runs",
    "workflow_health",
)


class RootEscapeError(InputError):
    """A workflow path points outside the server's root."""


def confine(root: Path, path: str) -> Path:
    """``path`` resolved inside ``root`` (symlinks followed); anything else is refused."""
    candidate = Path(path)
    full = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not full.is_relative_to(root):
        raise RootEscapeError(
            f"{path!r} is outside the server's root {str(root)!r}; give a path inside it"
        )
    return full


def json_arg(value: Any, name: str, kind: type = dict) -> Any:
    """An object or list argument, also accepted as JSON text (agents often send strings)."""
    if value is None or isinstance(value, kind):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise InputError(f"{name} is neither {kind.__name__} nor JSON text: {exc}") from None
        if isinstance(parsed, kind):
            return parsed
    raise InputError(f"{name} must be a JSON {'object' if kind is dict else 'array'}")


def _next_calls(report: dict[str, Any]) -> list[dict[str, Any]]:
    run_id = report["run_id"]
    status = report["status"]
    if status == "waiting":
        error = report.get("error") or {}
        return [
            {
                "tool": "workflow_resume",
                "arguments": {"run_id": run_id, "answers": {error.get("step_id"): "<answer>"}},
                "why": f"the run waits for an answer: {error.get('prompt')}",
            }
        ]
    if status == "succeeded":
        return [
            {
                "tool": "workflow_trace_transformations",
                "arguments": {"run_id": run_id},
                "why": "see what each computed field did (runs made with trace)",
            }
        ]
    return [
        {
            "tool": "workflow_debug_info",
            "arguments": {"run_id": run_id},
            "why": f"the run {status}: see the failing step, state and errors",
        },
        {
            "tool": "workflow_resume",
            "arguments": {"run_id": run_id},
            "why": "continue where it stopped once the cause is fixed",
        },
    ]


def _with_next(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = result.model_dump(mode="json")
    if "status" in data and "run_id" in data and "state" in data:
        data["next"] = _next_calls(data)
    return data


def build_server(
    root: str | Path = ".", read_only: bool = False, store: str | Path | None = None
) -> Any:
    """The MCP server with the wfkit tools (all, or only those that run nothing)."""
    from mcp.server import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    base = Path(root).resolve()
    server = MCPServer(
        "wfkit",
        instructions=(
            "Run, explain, trace and debug YAML workflows. Every result carries the run id "
            "and the next useful calls."
        ),
    )

    def tool(func: Callable[..., Awaitable[dict[str, Any]]]) -> None:
        if read_only and func.__name__ not in READ_ONLY:
            return

        @wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> dict[str, Any]:
            try:
                with redirect_stdout(sys.stderr):  # stdout carries the protocol only
                    return await func(*args, **kwargs)
            except WfkitError as exc:
                raise ToolError(f"{exc.type_name}: {exc}") from exc

        server.add_tool(wrapper, structured_output=True)

    async def workflow_run(
        workflow: str,
        inputs: dict[str, Any] | str | None = None,
        answers: dict[str, Any] | str | None = None,
        trace: bool = False,
    ) -> dict[str, Any]:
        """Run a workflow file (inside the root). A user_input without an answer pauses the
        run as `waiting`; answer it with workflow_resume."""
        from wfkit.commands import run_workflow_async

        report = await run_workflow_async(
            confine(base, workflow),
            json_arg(inputs, "inputs"),
            answers=json_arg(answers, "answers"),
            store=store,
            trace=trace,
            pause_for_input=True,
        )
        return _with_next(report)

    async def workflow_resume(
        run_id: str, answers: dict[str, Any] | str | None = None, force: bool = False
    ) -> dict[str, Any]:
        """Continue a failed, interrupted, timed-out or waiting run where it stopped."""
        from wfkit.commands import resume_workflow_async

        report = await resume_workflow_async(
            run_id,
            force=force,
            answers=json_arg(answers, "answers"),
            store=store,
            pause_for_input=True,
        )
        return _with_next(report)

    async def workflow_explain_plan(
        workflow: str, inputs: dict[str, Any] | str | None = None
    ) -> dict[str, Any]:
        """The plan of a workflow and its mistakes, before running: nothing is executed."""
        from wfkit.commands.explain import explain_workflow

        return _with_next(explain_workflow(confine(base, workflow), json_arg(inputs, "inputs")))

    async def workflow_trace_transformations(
        run_id: str, field: str | None = None, step: str | None = None
    ) -> dict[str, Any]:
        """Computed-field evaluations (input, output, timing), conditions and retry
        decisions of a run made with trace."""
        from wfkit.commands.inspect import trace_run

        return _with_next(trace_run(run_id, field=field, step=step, store=store))

    async def workflow_debug_info(run_id: str) -> dict[str, Any]:
        """A run's status, failing step, state, errors with stack traces, history, retries,
        breakers, bottlenecks and metrics."""
        from wfkit.commands.inspect import debug_run

        return _with_next(debug_run(run_id, store=store))

    async def workflow_test_transformation(
        transform: str | None = None,
        input: Any = None,
        context: dict[str, Any] | str | None = None,
        workflow: str | None = None,
        field: str | None = None,
        state: dict[str, Any] | str | None = None,
    ) -> dict[str, Any]:
        """Evaluate an expression (or a workflow's computed field) in the run sandbox."""
        from wfkit.commands.transform import evaluate_transform

        return _with_next(
            evaluate_transform(
                transform,
                input,
                json_arg(context, "context"),
                workflow=confine(base, workflow) if workflow else None,
                field=field,
                state=json_arg(state, "state"),
            )
        )

    async def workflow_list_runs(limit: int = 20) -> dict[str, Any]:
        """Recorded runs, newest first."""
        from wfkit.commands import list_runs

        return {"runs": [r.model_dump(mode="json") for r in list_runs(store, limit)]}

    async def workflow_health(workflow: str | None = None) -> dict[str, Any]:
        """Store, disk, memory and dependencies (and a workflow's servers)."""
        from wfkit.commands.health import check_health_async

        return _with_next(
            await check_health_async(store, confine(base, workflow) if workflow else None)
        )

    for func in (
        workflow_run,
        workflow_resume,
        workflow_explain_plan,
        workflow_trace_transformations,
        workflow_debug_info,
        workflow_test_transformation,
        workflow_list_runs,
        workflow_health,
    ):
        tool(func)
    return server


def serve(root: str | Path = ".", read_only: bool = False, store: str | Path | None = None) -> None:
    """Serve the tools over stdio until the client goes away."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)  # before the SDK's own
    build_server(root, read_only, store).run("stdio")
