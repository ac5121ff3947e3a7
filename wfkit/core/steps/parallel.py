"""``parallel_foreach``: one isolated sub-agent task per item, at most ``max_parallel`` at once."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from wfkit.core.models import ParallelForeachStep
from wfkit.core.state import State
from wfkit.core.steps import handles
from wfkit.core.steps.control import list_items
from wfkit.errors import StepError, SubAgentError, WfkitError

if TYPE_CHECKING:
    from wfkit.core.frame import Frame


@handles(ParallelForeachStep)
async def run_parallel_foreach(step: ParallelForeachStep, frame: Frame) -> Any:
    """Run the task for every item; the result lists ``{index, item, status, state, error}``
    in item order. Under ``fail_fast`` the first failure cancels the items in flight."""
    items = list_items(frame.eval(step, "items"), step.step_id)
    results: list[dict[str, Any] | None] = [None] * len(items)
    queue = iter(enumerate(items))
    fail_fast = step.on_item_error == "fail_fast"

    async def worker() -> None:
        for index, item in queue:
            results[index] = outcome = await _run_item(step, frame, index, item)
            if fail_fast and outcome["status"] != "succeeded":
                raise outcome.pop("_error")

    workers = min(step.max_parallel, len(items))
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())
    except BaseExceptionGroup as group_error:
        failures = [e for e in group_error.exceptions if isinstance(e, SubAgentError)]
        raise failures[0] if failures else group_error.exceptions[0] from None
    finished = [r for r in results if r is not None]
    for result in finished:
        result.pop("_error", None)
    succeeded = sum(1 for r in finished if r["status"] == "succeeded")
    if step.min_success is not None and succeeded < step.min_success:
        first = next(r for r in finished if r["status"] != "succeeded")
        raise SubAgentError(
            f"{succeeded} of {len(items)} items succeeded; {step.step_id!r} needs "
            f"min_success={step.min_success} (first failure: item {first['index']}: "
            f"{first['error']['message']})",
            index=first["index"],
        )
    return finished


async def _run_item(
    step: ParallelForeachStep, frame: Frame, index: int, item: Any
) -> dict[str, Any]:
    from wfkit.core.frame import Frame

    run = frame.run
    task = run.loaded.tasks[step.sub_agent_task]
    loop = {"item": item, "index": index, "iteration": index + 1}
    error: WfkitError | None = None
    state: State | None = None
    for _ in range(step.item_retry_count + 1):
        try:
            inputs = _item_inputs(step, frame, task.state.inputs, loop)
            state = State(task.state, task.state.resolve_inputs(inputs))
            child = Frame(
                run,
                task,
                state,
                prefix=f"{frame.prefix}{step.step_id}/",
                active=(*frame.active, f"item {index}"),
            )
            await child.run_steps(task.steps)
            if task.finally_steps:
                child.locals["workflow"] = {"status": "succeeded", "item_index": index}
                await child.run_steps(task.finally_steps)
            error = None
            break
        except WfkitError as exc:
            error = exc
    if error is None:
        assert state is not None
        return {
            "index": index,
            "item": item,
            "status": "succeeded",
            "state": state.snapshot(),
            "error": None,
        }
    cause = error if isinstance(error, StepError) else None
    wrapped = SubAgentError(
        f"item {index} of {step.step_id!r} failed: {error.type_name}: {error.message}",
        index=index,
        cause=cause,
    )
    return {
        "index": index,
        "item": item,
        "status": "failed",
        "state": state.snapshot() if state is not None else None,
        "error": error.details(),
        "_error": wrapped,
    }


def _item_inputs(
    step: ParallelForeachStep, frame: Frame, declared: dict[str, Any], loop: dict[str, Any]
) -> dict[str, Any]:
    if step.with_:
        value = frame.eval(step, "with_", {"loop": loop, "item": loop["item"]})
        return dict(value)
    return {k: loop[k] for k in ("item", "index") if k in declared}
