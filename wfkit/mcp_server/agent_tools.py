"""The pull protocol's tools: start a run that waits for agents, and let agents (this client,
or sub-agents on other servers of the same store) claim and answer its agent steps."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from wfkit.commands._base import StrictModel
from wfkit.commands.agent_work import DEFAULT_LEASE, Completion, NextTask
from wfkit.commands.results import RunReport
from wfkit.mcp_server.agents import in_background
from wfkit.mcp_server.arguments import (
    Answers,
    Inputs,
    RunId,
    Workflow,
    check_path_text,
    confine,
    json_arg,
)
from wfkit.mcp_server.tools import NextCall, NextCalls, Scope, apart


class StartResult(StrictModel):
    """``workflow_start``: the run's id while it runs (or its end, when it ended at once)."""

    run_id: str
    status: str
    next: NextCalls = []


def _started(run_id: str, report: RunReport | None) -> StartResult:
    status = report.status if report is not None else "running"
    calls = [
        NextCall(
            tool="workflow_next_task",
            arguments={"run_id": run_id, "worker": "<your name>", "wait_s": 30},
            why="claim the run's agent work as it comes (several agents may pull at once)",
        ),
        NextCall(
            tool="workflow_debug_info",
            arguments={"run_id": run_id},
            why="see where the run is: its steps, state and errors",
        ),
    ]
    return StartResult(run_id=run_id, status=status, next=calls if report is None else calls[1:])


async def workflow_start(
    scope: Scope, workflow: Workflow, inputs: Inputs = None, answers: Answers = None
) -> StartResult:
    """Start a workflow in the server and return its run id at once; it goes on after this
    call. Its agent_task steps wait until an agent claims them (workflow_next_task) and
    answers them (workflow_complete_task); any number of agents may pull from one run."""
    from wfkit.commands import run_workflow_async

    path, given, answered = (
        confine(scope.root, workflow),
        json_arg(inputs, "inputs"),
        json_arg(answers, "answers"),
    )
    started = await in_background(
        scope.store,
        lambda agent, on_event: run_workflow_async(
            path,
            given,
            answers=answered,
            store=scope.store,
            pause_for_input=True,
            agent=agent,
            on_event=on_event,
        ),
    )
    if isinstance(started, RunReport):
        return _started(started.run_id, started)
    return _started(str(started), None)


async def workflow_next_task(
    scope: Scope,
    run_id: RunId,
    worker: Annotated[
        str, Field(description="Who takes the task (a name for logs).", min_length=1)
    ] = "agent",
    wait_s: Annotated[
        float, Field(description="Seconds to wait for work while the run runs.", ge=0, le=60)
    ] = 10.0,
    lease_s: Annotated[
        float,
        Field(description="Seconds to answer in before the task is taken back.", ge=1, le=86_400),
    ] = DEFAULT_LEASE,
) -> NextTask:
    """Claim the run's oldest pending agent task, leased to `worker`: its prompt, context,
    response schema, attempt and the previous attempt's error. `task` is null when there is
    none within wait_s; stop when run_status is no longer `running`. A lease that runs out
    fails that attempt (AgentTimeoutError) and the step's policy decides."""
    from wfkit.commands.agent_work import next_task

    check_path_text(run_id, "run_id")
    return await apart(
        lambda: next_task(run_id, worker, wait_s=wait_s, lease_s=lease_s, store=scope.store)
    )


async def workflow_complete_task(
    scope: Scope,
    task_id: Annotated[str, Field(description="The task_id workflow_next_task gave.")],
    result: Annotated[
        dict[str, Any] | list[Any] | str | int | float | bool | None,
        Field(description="The answer: JSON matching the task's response_schema."),
    ] = None,
    error: Annotated[
        str | None, Field(description="Instead of a result: why the agent could not do it.")
    ] = None,
) -> Completion:
    """Answer a task you claimed. The result is checked against the response schema first:
    `accepted` false with the error when it does not match (the step's policy may hand out a
    new attempt carrying that error: `retry_scheduled`). A task that is unknown, not yours,
    already completed or past its lease is refused and nothing changes."""
    from wfkit.commands.agent_work import complete_task

    check_path_text(task_id, "task_id")
    return await apart(
        lambda: complete_task(task_id, result=result, error=error, store=scope.store)
    )


TOOLS: tuple[Any, ...] = (workflow_start, workflow_next_task, workflow_complete_task)
