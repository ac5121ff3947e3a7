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
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from contextlib import redirect_stdout
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from wfkit.errors import InputError, WfkitError

LOGGER = logging.getLogger("wfkit.mcp")

READ_ONLY = (
    "workflow_explain_plan",
    "workflow_trace_transformations",
    "workflow_debug_info",
    "workflow_test_transformation",
    "workflow_list_runs",
    "workflow_health",
    "workflow_why",
    "workflow_diff",
)
#: longest path argument accepted (Linux PATH_MAX); longer ones are refused before any I/O
MAX_PATH_CHARS = 4096
#: longest file name in a path argument (Linux NAME_MAX)
MAX_NAME_CHARS = 255
#: workflow files listed as resources (the rest stay readable through the template)
MAX_LISTED_FILES = 500
_SKIPPED_DIRS = {"node_modules", "__pycache__", "venv"}
MAX_FILE_BYTES = 5_000_000  # as the loader: a resource is never bigger than a loadable file


class RootEscapeError(InputError):
    """A workflow path points outside the server's root."""


def confine(root: Path, path: str) -> Path:
    """``path`` resolved inside ``root`` (symlinks followed); anything else is refused."""
    check_path_text(path, "workflow")
    candidate = Path(path)
    try:
        full = (candidate if candidate.is_absolute() else root / candidate).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
        raise InputError(f"workflow path {path[:200]!r} cannot be resolved: {exc}") from None
    if not full.is_relative_to(root):
        raise RootEscapeError(
            f"{path!r} is outside the server's root {str(root)!r}; give a path inside it"
        )
    return full


def check_path_text(text: str, name: str) -> None:
    """Refuse a NUL byte or an over-long path before it reaches the file system."""
    if "\0" in text:
        raise InputError(f"argument {name!r} contains a NUL byte")
    if len(text) > MAX_PATH_CHARS:
        raise InputError(
            f"argument {name!r} is {len(text)} characters long; paths are at most {MAX_PATH_CHARS}"
        )
    longest = max((len(part) for part in text.split("/")), default=0)
    if longest > MAX_NAME_CHARS:
        raise InputError(
            f"argument {name!r} has a name of {longest} characters; file names are at most "
            f"{MAX_NAME_CHARS}"
        )


def json_arg(value: Any, name: str, kind: type = dict) -> Any:
    """An object or list argument, also accepted as JSON text (agents often send strings)."""
    if value is None or isinstance(value, kind):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise InputError(f"{name} is neither dict nor JSON text: {exc}") from None
        if isinstance(parsed, kind):
            return parsed
    raise InputError(f"{name} must be a JSON {'object' if kind is dict else 'array'}")


# ----------------------------------------------------------------------------- arguments

Workflow = Annotated[
    str,
    Field(
        description="Path of a workflow YAML file, relative to the server's root (or an "
        "absolute path inside it), e.g. 'flows/build.yaml'."
    ),
]
OptionalWorkflow = Annotated[
    str | None,
    Field(
        description="Path of a workflow YAML file inside the server's root; omit it for "
        "checks that need no workflow."
    ),
]
RunId = Annotated[
    str,
    Field(description="A run id as returned by workflow_run or workflow_list_runs."),
]
Inputs = Annotated[
    dict[str, Any] | str | None,
    Field(
        description="Workflow inputs by name, as an object or as JSON text, e.g. "
        '{"max_attempts": 3}; declared defaults fill the rest.'
    ),
]
Answers = Annotated[
    dict[str, Any] | str | None,
    Field(
        description="Answers to user_input steps by step id, as an object or JSON text, "
        'e.g. {"confirm": "yes"}.'
    ),
]


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
}


def _description(func: Callable[..., Any]) -> str:
    """The docstring as clean text: paragraphs kept, lines joined, no indentation."""
    paragraphs = inspect.cleandoc(func.__doc__ or "").split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def _argument_error(tool: str, error: Any) -> str:
    """One sentence for a pydantic validation error of a tool's arguments."""
    problems = []
    for item in error.errors(include_url=False):
        name = ".".join(str(part) for part in item["loc"]) or "arguments"
        if item["type"] == "missing":
            problems.append(f"argument {name!r} is required")
        else:
            problems.append(f"argument {name!r}: {item['msg']}")
    return f"{tool}: " + "; ".join(dict.fromkeys(problems))


# ----------------------------------------------------------------------------- next calls


def _call(tool: str, run_id: str, why: str, **arguments: Any) -> dict[str, Any]:
    """One suggested call: the tool, its arguments (the run id and more), and why."""
    return {"tool": tool, "arguments": {"run_id": run_id, **arguments}, "why": why}


def _next_calls(report: dict[str, Any], traced: bool, called: str) -> list[dict[str, Any]]:
    run_id = report["run_id"]
    status = report["status"]
    trace = "workflow_trace_transformations"
    if status == "waiting":
        error = report.get("error") or {}
        calls = [
            _call(
                "workflow_resume",
                run_id,
                f"the run waits for an answer: {error.get('prompt')}",
                answers={error.get("step_id"): "<answer>"},
            )
        ]
    elif status == "succeeded":
        calls = [
            *([_call(trace, run_id, "see what each computed field did")] if traced else []),
            _call(
                "workflow_debug_info",
                run_id,
                "see each step's attempts and durations, the state and the bottlenecks",
            ),
        ]
    else:
        why_trace = "see the computed fields, conditions and retry decisions"
        calls = [
            _call(
                "workflow_debug_info",
                run_id,
                f"the run {status}: see the failing step, state and errors",
            ),
            *([_call(trace, run_id, why_trace)] if traced else []),
            _call("workflow_resume", run_id, "continue where it stopped once the cause is fixed"),
        ]
    return [c for c in calls if c["tool"] != called]


# ----------------------------------------------------------------------------- the server


def _server_class() -> type:
    """``MCPServer`` with arguments checked before the SDK validates them."""
    from mcp.server import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from pydantic import ValidationError

    class WfkitServer(MCPServer):
        """Refuses unknown arguments, NUL bytes and over-long paths; one-sentence errors."""

        parameters: dict[str, list[str]]

        async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
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
                    raise ToolError(_argument_error(name, exc.__cause__)) from None
                prefix = f"Error executing tool {name}: "  # the SDK's, before our sentence
                message = str(exc)
                if message.startswith(prefix):
                    raise ToolError(message[len(prefix) :]) from exc.__cause__
                raise

        async def list_tools(self) -> list[Any]:
            tools = await super().list_tools()
            for tool in tools:  # what call_tool refuses, the schema says
                tool.input_schema["additionalProperties"] = False
            return tools

    return WfkitServer


def build_server(  # noqa: PLR0915 - one closure per tool, over the root and the store
    root: str | Path = ".", read_only: bool = False, store: str | Path | None = None
) -> Any:
    """The MCP server with the wfkit tools (all, or only those that run nothing)."""
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp_types import ToolAnnotations

    base = Path(root).resolve()
    server = _server_class()(
        "wfkit",
        instructions=(
            "Run, explain, trace and debug YAML workflows. Every result carries the run id "
            "and `next`: the useful calls that follow. "
            + (
                "This server is read-only: it runs, starts and writes nothing."
                if read_only
                else "workflow_run and workflow_resume run shell commands and tools."
            )
        ),
    )
    server.parameters = {}

    def traced(run_id: str) -> bool:
        from wfkit.store import open_store

        with open_store(store, create=False, read_only=read_only) as run_store:
            return run_store.has_traces(run_id)

    def with_next(result: Any, called: str) -> dict[str, Any]:
        data: dict[str, Any] = result.model_dump(mode="json")
        if "status" in data and "run_id" in data and "state" in data:
            data["next"] = _next_calls(data, traced(data["run_id"]), called)
        return data

    def tool(func: Callable[..., Awaitable[Any]]) -> None:
        name = func.__name__
        if read_only and name not in READ_ONLY:
            return
        hints = _HINTS[name]
        if name == "workflow_health" and not read_only:  # it starts the workflow's servers
            hints = _Hints(hints.title, read_only=False, open_world=True)

        @wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> dict[str, Any]:
            try:
                with redirect_stdout(sys.stderr):  # stdout carries the protocol only
                    return with_next(await func(*args, **kwargs), name)
            except WfkitError as exc:
                raise ToolError(f"{exc.type_name}: {exc}") from exc
            except Exception as exc:  # a bug: say what, keep the traceback in the log
                LOGGER.exception("tool %s failed", name)
                raise ToolError(f"{name} failed: {type(exc).__name__}: {exc}") from exc

        # the result is a JSON object (the SDK derives the output schema from this)
        signature = inspect.signature(func, eval_str=True)
        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            return_annotation=dict[str, Any]
        )
        server.add_tool(
            wrapper,
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
        server.parameters[name] = list(inspect.signature(func).parameters)

    async def workflow_run(
        workflow: Workflow,
        inputs: Inputs = None,
        answers: Answers = None,
        trace: Annotated[
            bool,
            Field(description="Record computed-field evaluations for workflow_trace_*."),
        ] = False,
    ) -> Any:
        """Run a workflow file inside the root: its shell commands and tool calls execute.

        A user_input step without an answer pauses the run as `waiting`; answer it with
        workflow_resume. The result has the run id, status, state, steps, errors and `next`.
        """
        from wfkit.commands import run_workflow_async

        return await run_workflow_async(
            confine(base, workflow),
            json_arg(inputs, "inputs"),
            answers=json_arg(answers, "answers"),
            store=store,
            trace=trace,
            pause_for_input=True,
        )

    async def workflow_resume(
        run_id: RunId,
        answers: Answers = None,
        force: Annotated[
            bool,
            Field(description="Resume even though the workflow file changed since the run."),
        ] = False,
    ) -> Any:
        """Continue a failed, interrupted, timed-out or waiting run where it stopped.

        Completed steps do not run again. The run's workflow file must still lie inside the
        root.
        """
        from wfkit.commands import resume_workflow_async

        check_path_text(run_id, "run_id")
        return await resume_workflow_async(
            run_id,
            force=force,
            answers=json_arg(answers, "answers"),
            store=store,
            pause_for_input=True,
            workflow_path=lambda recorded: confine(base, recorded),
        )

    async def workflow_explain_plan(workflow: Workflow, inputs: Inputs = None) -> Any:
        """The plan of a workflow and its mistakes, before running: nothing is executed.

        Each step with what it reads and writes, its error policy and retry schedule, and
        warnings for undefined names, unreachable steps and the like.
        """
        from wfkit.commands.explain import explain_workflow

        return explain_workflow(confine(base, workflow), json_arg(inputs, "inputs"))

    async def workflow_trace_transformations(
        run_id: RunId,
        field: Annotated[
            str | None,
            Field(description="Only this computed field, e.g. 'computed.can_retry'."),
        ] = None,
        step: Annotated[str | None, Field(description="Only the records of this step id.")] = None,
    ) -> Any:
        """Computed-field evaluations (input, output, timing), conditions and retry decisions
        of a run made with trace."""
        from wfkit.commands.trace import trace_run

        check_path_text(run_id, "run_id")
        return trace_run(run_id, field=field, step=step, store=store, read_only=read_only)

    async def workflow_debug_info(run_id: RunId) -> Any:
        """A run's status, failing step, state, errors with stack traces, history, retries,
        breakers, bottlenecks, metrics and its MCP servers' stderr."""
        from wfkit.commands.debug import debug_run

        check_path_text(run_id, "run_id")
        return debug_run(run_id, store=store, read_only=read_only)

    async def workflow_test_transformation(
        transform: Annotated[
            str | None,
            Field(description="A Jinja2 expression, e.g. 'input | length > 2'."),
        ] = None,
        input: Annotated[
            Any, Field(description="The value bound to `input` in the expression.")
        ] = None,
        context: Annotated[
            dict[str, Any] | str | None,
            Field(description="More names for the expression, as an object or JSON text."),
        ] = None,
        workflow: OptionalWorkflow = None,
        field: Annotated[
            str | None,
            Field(description="A computed field of `workflow` to evaluate instead of transform."),
        ] = None,
        state: Annotated[
            dict[str, Any] | str | None,
            Field(description='State for the field\'s inputs, e.g. {"raw": {"n": 1}}.'),
        ] = None,
    ) -> Any:
        """Evaluate an expression, or a workflow's computed field, in the run sandbox.

        Give `transform` (and `input`/`context`), or `workflow` and `field` (and `state`).
        """
        from wfkit.commands.transform import evaluate_transform

        return evaluate_transform(
            transform,
            input,
            json_arg(context, "context"),
            workflow=confine(base, workflow) if workflow else None,
            field=field,
            state=json_arg(state, "state"),
        )

    async def workflow_list_runs(
        limit: Annotated[int, Field(description="Most runs to list.", ge=1, le=10_000)] = 20,
    ) -> Any:
        """Recorded runs, newest first: run id, workflow, status, start and duration."""
        from wfkit.commands import list_runs
        from wfkit.commands.results import RunList

        return RunList(runs=list_runs(store, limit, read_only=read_only))

    async def workflow_health(workflow: OptionalWorkflow = None) -> Any:
        """Store, disk, memory and dependencies, and a workflow's MCP servers (started and
        stopped to list their tools; not checked in read-only mode)."""
        from wfkit.commands.health import check_health_async

        return await check_health_async(
            store, confine(base, workflow) if workflow else None, read_only=read_only
        )

    async def workflow_why(
        run_id: RunId,
        step_id: Annotated[
            str, Field(description="The step id, e.g. 'fetch' (an item's step: 'fan/fetch').")
        ],
    ) -> Any:
        """Why a step of a run ran, was skipped, was not retried, took its fallback or was
        cancelled: its condition with the operand values, each retry verdict with the error
        type and retry_on, the fail_fast trigger and its circuit breaker, as recorded."""
        from wfkit.commands.why import why_step

        check_path_text(run_id, "run_id")
        return why_step(run_id, step_id, store=store, read_only=read_only)

    async def workflow_diff(
        run_a: Annotated[str, Field(description="The run to compare from.")],
        run_b: Annotated[str, Field(description="The run to compare with.")],
    ) -> Any:
        """Two runs aligned step by step (by step id, loop iteration and parallel item):
        status, attempts, durations, errors, input and state differences, and the first
        divergence."""
        from wfkit.commands.diff import diff_runs

        check_path_text(run_a, "run_a")
        check_path_text(run_b, "run_b")
        return diff_runs(run_a, run_b, store=store, read_only=read_only)

    for func in (
        workflow_run,
        workflow_resume,
        workflow_explain_plan,
        workflow_trace_transformations,
        workflow_debug_info,
        workflow_test_transformation,
        workflow_list_runs,
        workflow_health,
        workflow_why,
        workflow_diff,
    ):
        tool(func)
    _add_resources(server, base, store, read_only)
    return server


# ----------------------------------------------------------------------------- resources


def workflow_files(root: Path) -> list[Path]:
    """YAML files under ``root`` (hidden and tool folders skipped), at most a bounded count."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for name in sorted(files):
            path = Path(folder) / name
            try:
                workflow_file(root, path.relative_to(root).as_posix())
            except InputError:
                continue  # not served: a link leading out, a FIFO, a hidden or huge file
            found.append(path)
            if len(found) >= MAX_LISTED_FILES:
                return found
    return found


def workflow_file(root: Path, path: str) -> Path:
    """A workflow file the resources serve: a regular ``.yaml``/``.yml`` file inside the root,
    not hidden, and small enough to load; anything else is refused."""
    full = confine(root, path)
    if full.suffix not in (".yaml", ".yml"):
        raise InputError(f"{path!r} is not a workflow file (.yaml or .yml)")
    if any(part.startswith(".") for part in full.relative_to(root).parts):
        raise InputError(f"{path!r} is hidden: not served")
    if not full.is_file():  # a folder, a FIFO, a device, or nothing
        raise InputError(f"{path!r} is not a regular file")
    if full.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"{path!r} is larger than {MAX_FILE_BYTES} bytes")
    return full


def _add_resources(server: Any, base: Path, store: str | Path | None, read_only: bool) -> None:
    def runs() -> str:
        """Recorded runs, newest first (JSON)."""
        from wfkit.commands import list_runs

        runs = list_runs(store, 100, read_only=read_only)
        return json.dumps([r.model_dump(mode="json") for r in runs], indent=2)

    def run(run_id: str) -> str:
        """Everything recorded about one run, as workflow_debug_info returns it (JSON)."""
        from wfkit.commands.debug import debug_run

        check_path_text(run_id, "run_id")
        return debug_run(run_id, store=store, read_only=read_only).model_dump_json(indent=2)

    def workflow(path: str) -> str:
        """A workflow file under the root."""
        from wfkit.language.yamlsrc import read_source

        return read_source(workflow_file(base, path), limit=MAX_FILE_BYTES)

    json_type = "application/json"
    server.resource("wfkit://runs", name="runs", mime_type=json_type)(_clean(runs))
    server.resource("wfkit://runs/{run_id}", name="run", mime_type=json_type)(_clean(run))
    server.resource("wfkit://workflows/{+path}", name="workflow", mime_type="application/yaml")(
        _clean(workflow)
    )
    for file in workflow_files(base):
        relative = file.relative_to(base).as_posix()

        def read(relative: str = relative) -> str:
            return workflow(relative)

        server.resource(
            f"wfkit://workflows/{relative}",
            name=relative,
            description=f"The workflow file {relative}",
            mime_type="application/yaml",
        )(_clean(_static(read)))


def _clean(read: Callable[..., str]) -> Callable[..., str]:
    """A resource function whose errors reach the client as their type and message."""
    from mcp.server.mcpserver.exceptions import ResourceError

    @wraps(read)
    def reader(*args: Any, **kwargs: Any) -> str:
        try:
            return read(*args, **kwargs)
        except WfkitError as exc:
            raise ResourceError(f"{exc.type_name}: {exc}") from None

    return reader


def _static(read: Callable[[], str]) -> Callable[[], str]:
    """A resource function without parameters (the SDK checks the signature)."""

    def static() -> str:
        return read()

    return static


def serve(root: str | Path = ".", read_only: bool = False, store: str | Path | None = None) -> None:
    """Serve the tools over stdio until the client goes away."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)  # before the SDK's own
    build_server(root, read_only, store).run("stdio")
