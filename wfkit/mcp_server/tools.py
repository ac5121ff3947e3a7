"""The MCP tools: one typed function per tool over the command functions the CLI calls.

Each tool takes the server's :class:`Scope` first (the root its paths stay inside, the store,
read-only or not) and the tool's own arguments after it, and returns the command's pydantic
result, so the SDK publishes each tool's output schema. A run's report and a run's debug
information also carry ``next``: the useful calls that follow.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from pydantic import Field

from wfkit.commands._base import StrictModel
from wfkit.commands.debug import DebugInfo
from wfkit.commands.diff import DiffResult
from wfkit.commands.explanation import Explanation
from wfkit.commands.health import HealthReport
from wfkit.commands.results import RunList, RunReport
from wfkit.commands.trace import TraceView
from wfkit.commands.transform import TransformResult
from wfkit.commands.why import WhyResult
from wfkit.mcp_server.agents import CALLER, performed, to_the_end
from wfkit.mcp_server.arguments import (
    Answers,
    Inputs,
    OptionalWorkflow,
    RunId,
    Workflow,
    check_path_text,
    confine,
    json_arg,
)
from wfkit.mcp_server.progress import Progress

JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")

STOPPING = threading.Event()
"""Set once the server is asked to stop: the tools that start runs refuse from then on."""
STARTS_RUNS = frozenset({"workflow_run", "workflow_resume", "workflow_start"})

T = TypeVar("T")
LOGGER = logging.getLogger("wfkit.mcp")


async def apart(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` on a worker thread: an evaluation that takes its full bound (seconds of
    CPU) leaves the server's loop free to answer every other call meanwhile."""
    return await anyio.to_thread.run_sync(functools.partial(work, *args))


@dataclass(frozen=True)
class Scope:
    """What every tool of one server works within."""

    root: Path  # resolved: workflow paths must stay inside it
    store: str | Path | None
    read_only: bool  # run, start and write nothing; open stores read-only


class NextCall(StrictModel):
    """A useful call after this one: the tool, its arguments and why."""

    tool: str
    arguments: dict[str, Any]
    why: str


NextCalls = Annotated[
    list[NextCall], Field(description="The useful calls that follow, with their arguments.")
]


class RunResult(RunReport):
    """A run's report (``workflow_run``, ``workflow_resume``) with the calls that follow."""

    next: NextCalls = []


class DebugResult(DebugInfo):
    """A run's debug information (``workflow_debug_info``) with the calls that follow."""

    next: NextCalls = []  # type: ignore[assignment]  # the CLI's next steps, as calls


# ----------------------------------------------------------------------------- next calls


def _call(tool: str, run_id: str, why: str, **arguments: Any) -> NextCall:
    """One suggested call: the tool, its arguments (the run id and more), and why."""
    return NextCall(tool=tool, arguments={"run_id": run_id, **arguments}, why=why)


def next_calls(
    run_id: str, status: str, error: dict[str, Any] | None, traced: bool, called: str
) -> list[NextCall]:
    """The calls that usefully follow ``called`` for a run in ``status``."""
    trace = "workflow_trace_transformations"
    if status == "waiting":
        error = error or {}
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
    return [c for c in calls if c.tool != called]


def _traced(scope: Scope, run_id: str) -> bool:
    from wfkit.store import open_store

    with open_store(scope.store, create=False, read_only=scope.read_only) as run_store:
        return run_store.has_traces(run_id)


def _run_result(scope: Scope, report: RunReport, called: str) -> RunResult:
    fields = {name: getattr(report, name) for name in RunReport.model_fields}
    calls = next_calls(
        report.run_id, report.status, report.error, _traced(scope, report.run_id), called
    )
    return RunResult(**fields, next=calls)


# ----------------------------------------------------------------------------- the tools


async def workflow_run(
    scope: Scope,
    workflow: Workflow,
    inputs: Inputs = None,
    answers: Answers = None,
    trace: Annotated[
        bool,
        Field(description="Record computed-field evaluations for workflow_trace_*."),
    ] = False,
) -> RunResult:
    """Run a workflow file inside the root: its shell commands and tool calls execute.

    A user_input step without an answer pauses the run as `waiting`; answer it with
    workflow_resume. When the client declares `sampling`, agent_task steps are performed by
    its model (sampling/createMessage, in input-required rounds on protocol 2026-07-28).
    The result has the run id, status, state, steps, errors and `next`.
    """
    from wfkit.commands import run_workflow_async

    path, given, answered = (
        confine(scope.root, workflow),
        json_arg(inputs, "inputs"),
        json_arg(answers, "answers"),
    )
    progress = Progress(CALLER.get())
    try:
        report = await performed(
            lambda agent, elicit: run_workflow_async(
                path,
                given,
                answers=answered,
                store=scope.store,
                trace=trace,
                pause_for_input=True,
                agent=agent,
                elicit=elicit,
                on_event=progress,
            ),
            progress,
        )
    finally:
        await progress.flush()
    if not isinstance(report, RunReport):  # a round of questions for the client's model
        return report  # type: ignore[no-any-return]
    return _run_result(scope, report, "workflow_run")


async def workflow_resume(
    scope: Scope,
    run_id: RunId,
    answers: Answers = None,
    force: Annotated[
        bool,
        Field(description="Resume even though the workflow file changed since the run."),
    ] = False,
    from_step: Annotated[
        str | None,
        Field(
            alias="from",
            description="Run again from this top-level step (one that ran), with the state "
            "as it was before it, e.g. after fixing a file a completed step read; a "
            "succeeded run may be resumed this way.",
        ),
    ] = None,
    inputs: Annotated[
        dict[str, Any] | str | None,
        Field(
            description="Inputs to change, by name, as an object or JSON text: they "
            "replace the run's own; the rest are kept (defaults read from the file again)."
        ),
    ] = None,
) -> RunResult:
    """Continue a failed, interrupted, timed-out or waiting run where it stopped.

    Completed steps do not run again (with `from`, the steps from that one do). The run's
    workflow file must still lie inside the root. A run started with workflow_start hands
    its unanswered agent tasks out again (workflow_next_task) while this call waits.
    """
    from wfkit.commands import resume_workflow_async

    check_path_text(run_id, "run_id")
    answered, given = json_arg(answers, "answers"), json_arg(inputs, "inputs")

    progress = Progress(CALLER.get())

    def resume(agent: Any, elicit: Any = None) -> Coroutine[Any, Any, RunReport]:
        return resume_workflow_async(
            run_id,
            force=force,
            from_step=from_step,
            inputs=given,
            answers=answered,
            store=scope.store,
            pause_for_input=True,
            workflow_path=lambda recorded: confine(scope.root, recorded),
            agent=agent,
            elicit=elicit,
            on_event=progress,
        )

    try:
        report = await _resumed(scope, run_id, resume, progress)
    finally:
        await progress.flush()
    if not isinstance(report, RunReport):  # a round of questions for the client's model
        return report  # type: ignore[no-any-return]
    return _run_result(scope, report, "workflow_resume")


async def _resumed(
    scope: Scope,
    run_id: str,
    resume: Callable[..., Coroutine[Any, Any, RunReport]],
    progress: Progress,
) -> Any:
    """The resumed run's report (or a round of questions for the client)."""
    if _pulled(scope, run_id):  # its agent work was handed out: it is again, to any worker
        from wfkit.commands.agent_work import PulledAgent

        agent = PulledAgent(scope.store)  # _pulled took back what the dead process handed out
        try:
            return await to_the_end(resume(agent))
        finally:
            agent.close()
    return await performed(resume, progress)


def _pulled(scope: Scope, run_id: str) -> bool:
    """Whether the run's agent steps were pulled by workers (it was started that way); if
    so, what its last process handed out is taken back now, while no worker can claim it
    (only a running run's tasks are claimed), to be handed out again as the run asks."""
    import time

    from wfkit.commands._runs import effective_status
    from wfkit.store import open_store

    with open_store(scope.store, create=False, read_only=scope.read_only) as run_store:
        row = run_store.get_run(run_id)  # a prefix names it too
        if not (run_store.pulled(row.run_id) or run_store.agent_tasks_of(row.run_id)):
            return False
        live = effective_status(row) == "running"
        if not scope.read_only and not live:  # a live run's tasks are its own (resume refuses)
            run_store.withdraw_agent_tasks(row.run_id, time.time())
        return True


async def workflow_explain_plan(
    scope: Scope, workflow: Workflow, inputs: Inputs = None
) -> Explanation:
    """The plan of a workflow and its mistakes, before running: nothing is executed.

    Each step with what it reads and writes, its error policy and retry schedule, and
    warnings for undefined names, unreachable steps and the like.
    """
    from wfkit.commands.explain import explain_workflow

    path, given = confine(scope.root, workflow), json_arg(inputs, "inputs")
    return await apart(explain_workflow, path, given)


async def workflow_trace_transformations(
    scope: Scope,
    run_id: RunId,
    field: Annotated[
        str | None,
        Field(description="Only this computed field, e.g. 'computed.can_retry'."),
    ] = None,
    step: Annotated[str | None, Field(description="Only the records of this step id.")] = None,
) -> TraceView:
    """Computed-field evaluations (input, output, timing), conditions and retry decisions
    of a run made with trace."""
    from wfkit.commands.trace import trace_run

    check_path_text(run_id, "run_id")
    return trace_run(run_id, field=field, step=step, store=scope.store, read_only=scope.read_only)


async def workflow_debug_info(scope: Scope, run_id: RunId) -> DebugResult:
    """A run's status, failing step, state, errors with stack traces, history, retries,
    breakers, bottlenecks, metrics and its MCP servers' stderr."""
    from wfkit.commands.debug import debug_run

    check_path_text(run_id, "run_id")
    info = debug_run(run_id, store=scope.store, read_only=scope.read_only)
    fields = {name: getattr(info, name) for name in DebugInfo.model_fields if name != "next"}
    traced = _traced(scope, info.run_id)
    calls = next_calls(info.run_id, info.status, info.error, traced, "workflow_debug_info")
    return DebugResult(**fields, next=calls)


async def workflow_test_transformation(
    scope: Scope,
    transform: Annotated[
        str | None,
        Field(description="A Jinja2 expression, e.g. 'input | length > 2'."),
    ] = None,
    input: Annotated[
        Any,
        Field(
            description="The value bound to `input` in the expression (any JSON value).",
            json_schema_extra={"type": list(JSON_TYPES)},
        ),
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
) -> TransformResult:
    """Evaluate an expression, or a workflow's computed field, in the run sandbox.

    Give `transform` (and `input`/`context`), or `workflow` and `field` (and `state`).
    """
    from wfkit.commands.transform import evaluate_transform

    return await apart(
        functools.partial(
            evaluate_transform,
            transform,
            input,
            json_arg(context, "context"),
            workflow=confine(scope.root, workflow) if workflow else None,
            field=field,
            state=json_arg(state, "state"),
        )
    )


async def workflow_list_runs(
    scope: Scope,
    limit: Annotated[int, Field(description="Most runs to list.", ge=1, le=10_000)] = 20,
) -> RunList:
    """Recorded runs, newest first: run id, workflow, status, start and duration."""
    from wfkit.commands import list_runs

    return RunList(runs=list_runs(scope.store, limit, read_only=scope.read_only))


async def workflow_health(scope: Scope, workflow: OptionalWorkflow = None) -> HealthReport:
    """Store, disk, memory and dependencies, and a workflow's MCP servers (started and
    stopped to list their tools; not checked in read-only mode)."""
    from wfkit.commands.health import check_health_async

    return await check_health_async(
        scope.store,
        confine(scope.root, workflow) if workflow else None,
        read_only=scope.read_only,
    )


async def workflow_why(
    scope: Scope,
    run_id: RunId,
    step_id: Annotated[
        str, Field(description="The step id, e.g. 'fetch' (an item's step: 'fan/fetch').")
    ],
) -> WhyResult:
    """Why a step of a run ran, was skipped, was not retried, took its fallback or was
    cancelled: its condition with the operand values, each retry verdict with the error
    type and retry_on, the fail_fast trigger and its circuit breaker, as recorded."""
    from wfkit.commands.why import why_step

    check_path_text(run_id, "run_id")
    return why_step(run_id, step_id, store=scope.store, read_only=scope.read_only)


async def workflow_diff(
    scope: Scope,
    run_a: Annotated[str, Field(description="The run to compare from.")],
    run_b: Annotated[str, Field(description="The run to compare with.")],
    timing: Annotated[
        bool, Field(description="Count steps slower or faster by half as changes.")
    ] = False,
) -> DiffResult:
    """Two runs aligned step by step (by step id, loop iteration and parallel item):
    status, attempts, durations, errors, input and state differences, and the first
    divergence."""
    from wfkit.commands.diff import diff_runs

    check_path_text(run_a, "run_a")
    check_path_text(run_b, "run_b")
    return diff_runs(run_a, run_b, store=scope.store, read_only=scope.read_only, timing=timing)
