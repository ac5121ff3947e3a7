"""``parallel_foreach``: one isolated sub-agent task per item, at most ``max_parallel`` at once.

Each item runs in its own frame (its own state and checkpoints, keyed
``<parent frame>/<step id>[<index>]``). A succeeded item's result is remembered by the parent
frame and the item's checkpoints are dropped, so a resume reruns only the items that had not
succeeded, each from its own last checkpoint.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from wfkit.core.events import FrameDropped
from wfkit.core.models import ParallelForeachStep

if TYPE_CHECKING:
    from wfkit.core.state import State
from wfkit.core.steps import handles
from wfkit.core.steps.control import list_items
from wfkit.errors import CancelledRunError, StepError, SubAgentError, WfkitError

if TYPE_CHECKING:
    from wfkit.core.frame import Frame


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
    from wfkit.core.frame import Frame

    run = frame.run
    task = run.loaded.tasks[step.sub_agent_task]
    loop = {"item": item, "index": index, "iteration": index + 1}
    key = _frame_key(step, frame, index)
    error: WfkitError | None = None
    state: State | None = None
    saved = run.load_frame(key)
    for attempt in range(step.item_retry_count + 1):
        child: Frame | None = None
        try:
            inputs = _item_inputs(step, frame, task.state.inputs, loop)
            state = run.new_state(task.state, task.state.resolve_inputs(inputs))
            child = Frame(
                run,
                task,
                state,
                prefix=f"{frame.prefix}{step.step_id}/",
                active=(*frame.active, f"item {index}"),
                key=key,
            )
            child.ends_with_parent = not task.finally_steps
            child.item = index
            if saved is not None and attempt == 0:
                child.restore(saved)
            elif attempt > 0:
                run.emit(FrameDropped(run.run_id, key))  # a retry starts from scratch
            await child.run_steps(task.steps)
            await _finally(child, task.finally_steps, "succeeded", index)
            error = None
            break
        except asyncio.CancelledError:
            if child is not None:
                await _finally(child, task.finally_steps, "cancelled", index)
            raise
        except WfkitError as exc:
            error = exc
            if child is not None and isinstance(exc, StepError):
                await _finally(child, task.finally_steps, "failed", index)
    if error is None:
        assert state is not None
        snapshot = state.snapshot()
        return {
            "index": index,
            "item": item,
            "status": "succeeded",
            "state": snapshot,
            "error": None,
        }, None
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
    }, wrapped


async def _finally(child: Frame, steps: list[Any], status: str, index: int) -> None:
    """An item's ``finally`` steps, with ``workflow.status`` of the item; never raises."""
    if not steps:
        return
    child.locals["workflow"] = {"status": status, "item_index": index}
    child.during = "finally"
    try:
        await child.run_steps(steps)
    except (StepError, CancelledRunError):
        pass  # recorded where it arose
    finally:
        child.during = None


def _item_inputs(
    step: ParallelForeachStep, frame: Frame, declared: dict[str, Any], loop: dict[str, Any]
) -> dict[str, Any]:
    if step.with_:
        value = frame.eval(step, "with_", {"loop": loop, "item": loop["item"]})
        return dict(value)
    return {k: loop[k] for k in ("item", "index") if k in declared}
