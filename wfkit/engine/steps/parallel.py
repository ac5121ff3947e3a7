"""``parallel_foreach``: one isolated sub-agent task per item, at most ``max_parallel`` at once.

Each item runs in its own frame (its own state and checkpoints, keyed
``<parent frame>/<step id>[<index>]``). A succeeded item's result is remembered by the parent
frame and the item's checkpoints are dropped, so a resume reruns only the items that had not
succeeded, each from its own last checkpoint.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from wfkit.engine.events import FrameDropped
from wfkit.engine.items import ItemJob, run_item
from wfkit.engine.steps.control import list_items
from wfkit.engine.steps.registry import handles
from wfkit.errors import StepError, SubAgentError, WfkitError
from wfkit.language.models import ParallelForeachStep

if TYPE_CHECKING:
    from wfkit.engine.frame import Frame


@handles(ParallelForeachStep)
async def run_parallel_foreach(step: ParallelForeachStep, frame: Frame) -> Any:
    """Run the task for every item; the result lists ``{index, item, status, state, error}``
    in item order. Under ``fail_fast`` the first failure cancels the items in flight."""
    frame.take_reentry()  # continuing needs no notes: finished items are remembered
    items = list_items(frame.eval(step, "items"), step.step_id)
    results: list[dict[str, Any] | None] = [
        frame.memory.get(_key(step, i)) for i in range(len(items))
    ]
    queue = iter([i for i, r in enumerate(results) if r is None])
    fail_fast = step.on_item_error == "fail_fast"
    item_errors: list[SubAgentError] = []

    async def worker() -> None:
        for index in queue:
            outcome, error = await _run_item(step, frame, index, items[index])
            results[index] = outcome
            if error is not None:
                item_errors.append(error)
            if error is None:
                frame.remember(_key(step, index), outcome)
                frame.run.checkpoint(frame)  # the parent stays at this (unfinished) step
                frame.run.emit(FrameDropped(frame.run.run_id, _frame_key(step, frame, index)))
            elif fail_fast:
                frame.run.decisions.fail_fast(
                    frame.prefix + step.step_id, index, error.type_name, error.message
                )
                raise error

    workers = min(step.max_parallel, len(items))
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())
    except BaseExceptionGroup as group_error:
        failures = [e for e in group_error.exceptions if isinstance(e, SubAgentError)]
        raise failures[0] if failures else group_error.exceptions[0] from None
    finished = [r for r in results if r is not None]
    succeeded = sum(1 for r in finished if r["status"] == "succeeded")
    if step.min_success is not None and succeeded < step.min_success:
        first = next(r for r in finished if r["status"] != "succeeded")
        raise SubAgentError(
            f"{succeeded} of {len(items)} items succeeded; {step.step_id!r} needs "
            f"min_success={step.min_success} (first failure: item {first['index']}: "
            f"{first['error']['message']})",
            index=first["index"],
        )
    for error in item_errors:  # on_item_error: continue took over: these did not fail the run
        frame.run.mark_recovered(error)
    for index in range(len(items)):
        frame.forget(_key(step, index))
    return finished


def _key(step: ParallelForeachStep, index: int) -> str:
    return f"item:{step.step_id}:{index}"


def _frame_key(step: ParallelForeachStep, frame: Frame, index: int) -> str:
    return f"{frame.key}/{step.step_id}[{index}]"


async def _run_item(
    step: ParallelForeachStep, frame: Frame, index: int, item: Any
) -> tuple[dict[str, Any], SubAgentError | None]:
    run = frame.run
    task = run.loaded.tasks[step.sub_agent_task]
    loop = {"item": item, "index": index, "iteration": index + 1}
    key = _frame_key(step, frame, index)
    inputs: dict[str, Any] | None = None
    problem: WfkitError | None = None
    try:  # evaluated in the parent frame, which items never change: once for every attempt
        inputs = _item_inputs(step, frame, task.state.inputs, loop)
    except WfkitError as exc:
        problem = exc
    job = ItemJob(
        step_id=step.step_id,
        task=step.sub_agent_task,
        prefix=f"{frame.prefix}{step.step_id}/",
        active=(*frame.active, f"item {index}"),
        key=key,
        index=index,
        item=item,
        retries=step.item_retry_count,
        inputs=inputs,
        inputs_error=problem,
        saved=run.load_frame(key),
    )
    executor = run.options.executor
    entry, error = await (run_item(run, job) if executor is None else executor.run_item(run, job))
    if error is None:
        return entry, None
    cause = error if isinstance(error, StepError) else None
    wrapped = SubAgentError(
        f"item {index} of {step.step_id!r} failed: {error.type_name}: {error.message}",
        index=index,
        cause=cause,
    )
    return entry, wrapped


def _item_inputs(
    step: ParallelForeachStep, frame: Frame, declared: dict[str, Any], loop: dict[str, Any]
) -> dict[str, Any]:
    if step.with_:
        value = frame.eval(step, "with_", {"loop": loop, "item": loop["item"]})
        return dict(value)
    return {k: loop[k] for k in ("item", "index") if k in declared}
