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
        none within wait_s; stop when the run ended (run_status neither `running` nor `interrupted`,
    which a resume continues). A lease that runs out
        fails that attempt (AgentTimeoutError) and the step's policy decides."""
    import time

    import anyio

    from wfkit.commands.agent_work import FIRST_POLL_SECONDS, POLL_SECONDS, next_task, release_task

    check_path_text(run_id, "run_id")
    deadline = time.monotonic() + wait_s
    pause = FIRST_POLL_SECONDS
    while True:  # the waits on the loop, each claim in a thread: a cancelled call stops here
        claimed: list[NextTask] = []

        def claim(claimed: list[NextTask] = claimed) -> NextTask:
            found = next_task(run_id, worker, lease_s=lease_s, store=scope.store)
            claimed.append(found)
            return found

        try:
            found = await apart(claim)
        except BaseException:  # cancelled while claiming: a task claimed for no one goes back
            task = claimed[0].task if claimed else None
            if task is not None:
                release_task(task.task_id, worker, scope.store)
            raise
        ended = found.run_status not in ("running", "interrupted")
        if found.task is not None or ended or time.monotonic() >= deadline:
            return found
        await anyio.sleep(pause)
        pause = min(pause * 2, POLL_SECONDS)


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
    worker: Annotated[
        str | None,
        Field(description="The worker that claimed it: refused if another holds it."),
    ] = None,
) -> Completion:
    """Answer a task you claimed with `result` or `error` (one of them). The result is
    checked against the response schema first: `accepted` false with the error when it does
    not match (the step's policy may hand out a new attempt carrying that error:
    `retry_scheduled`). A task that is unknown, held by another `worker`, already completed,
    past its lease, or whose run is no longer running is refused and nothing changes."""
    from wfkit.commands.agent_work import complete_task

    check_path_text(task_id, "task_id")
    return await apart(
        lambda: complete_task(task_id, result=result, error=error, worker=worker, store=scope.store)
    )


TOOLS: tuple[Any, ...] = (workflow_start, workflow_next_task, workflow_complete_task)
