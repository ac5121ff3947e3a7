"""``parallel_foreach``: one isolated sub-agent task per item, at most ``max_parallel`` at once.

Each item runs in its own frame (its own state and checkpoints, keyed
``<parent frame>/<step id>[<index>]``). A succeeded item's result is remembered by the parent
frame and the item's checkpoints are dropped, so a resume reruns only the items that had not
succeeded, each from its own last checkpoint.

When nothing reads the step's result (:meth:`LoadedWorkflow.result_read`), the coordinator
keeps only the status of a succeeded item once its entry reached a checkpoint (the store
keeps the entry, for ``report`` and resume), and the result is the counts ``{items,
succeeded, failed}`` with the entries of the failed items (``failed_items``): its memory no
longer grows with what each succeeded item's state holds.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from wfkit.engine.events import FrameDropped, ItemFinished
from wfkit.engine.items import ItemJob, run_item
from wfkit.engine.steps.control import list_items
from wfkit.engine.steps.registry import handles
from wfkit.errors import StepError, SubAgentError, WfkitError
from wfkit.language.fanout import SAMPLE, result_warning
from wfkit.language.models import ParallelForeachStep

if TYPE_CHECKING:
    from wfkit.engine.frame import Frame


@handles(ParallelForeachStep)
async def run_parallel_foreach(step: ParallelForeachStep, frame: Frame) -> Any:
    """Run the task for every item; the result lists ``{index, item, status, state, error}``
    in item order. Under ``fail_fast`` the first failure cancels the items in flight."""
    frame.take_reentry()  # continuing needs no notes: finished items are remembered
    items = list_items(frame.eval(step, "items"), step.step_id)
    lean = not frame.run.loaded.result_read(step)
    if not lean and len(items) > SAMPLE:  # known now, not after every item ran
        note = result_warning(frame.run.loaded, step, len(items))
        if note is not None:
            frame.run.warn(f"{step.step_id}: {note}", step.step_id)
    results: list[Any] = [frame.memory.get(_key(step, i)) for i in range(len(items))]
    if lean:  # entries restored by a resume: the store has them, a mark is enough here
        for index, kept in enumerate(results):
            if isinstance(kept, dict):
                results[index] = _status(kept)
                frame.let_go(_key(step, index), results[index])
    queue = iter([i for i, r in enumerate(results) if r is None])
    fail_fast = step.on_item_error == "fail_fast"
    item_errors: list[SubAgentError] = []
    first_failure: list[dict[str, Any]] = []

    async def worker() -> None:
        for index in queue:
            outcome, error = await _run_item(step, frame, index, items)
            results[index] = outcome if not lean or error is not None else outcome["status"]
            if error is not None:
                item_errors.append(error)
                if not first_failure or index < first_failure[0]["index"]:
                    first_failure[:] = [outcome]
            if error is None:
                frame.remember(_key(step, index), outcome)
                frame.run.checkpoint(frame)  # the parent stays at this (unfinished) step
                if lean:  # the entry is in the checkpoint: its status is enough here
                    frame.let_go(_key(step, index), outcome["status"])
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
    succeeded = sum(1 for r in finished if _status(r) == "succeeded")
    if step.min_success is not None and succeeded < step.min_success:
        first = first_failure[0] if first_failure else None
        earliest = min(item_errors, key=lambda e: e.index or 0, default=None)
        raise SubAgentError(
            f"{succeeded} of {len(items)} items succeeded; {step.step_id!r} needs "
            f"min_success={step.min_success}"
            + (
                f" (first failure: item {first['index']}: {first['error']['message']})"
                if first is not None
                else ""
            ),
            index=first["index"] if first is not None else None,
            cause=earliest.cause if earliest is not None else None,  # the item's own error
        )
    for error in item_errors:  # on_item_error: continue took over: these did not fail the run
        frame.run.mark_recovered(error)
    for index in range(len(items)):
        frame.forget(_key(step, index))
    if lean:  # the failed items' entries (with their state, for the report) and counts
        failed = [r for r in finished if isinstance(r, dict)]
        return {
            "items": len(items),
            "succeeded": succeeded,
            "failed": len(finished) - succeeded,
            "failed_items": failed,
        }
    return [_entry(r, i, items) for i, r in enumerate(results) if r is not None]


def _status(kept: Any) -> str:
    """The status of an item as kept: its entry, or the mark of a lean fan-out."""
    return str(kept["status"]) if isinstance(kept, dict) else str(kept)


def _entry(kept: Any, index: int, items: list[Any]) -> Any:
    """An item's entry in the result (one kept as a mark, by a run resumed with a workflow
    that now reads the result, has no state)."""
    if isinstance(kept, dict):
        return kept
    return {"index": index, "item": items[index], "status": kept, "state": None, "error": None}


def _key(step: ParallelForeachStep, index: int) -> str:
    return f"item:{step.step_id}:{index}"


def _frame_key(step: ParallelForeachStep, frame: Frame, index: int) -> str:
    return f"{frame.key}/{step.step_id}[{index}]"


async def _run_item(
    step: ParallelForeachStep, frame: Frame, index: int, items: list[Any]
) -> tuple[dict[str, Any], SubAgentError | None]:
    """One item's entry, or its error; its end is told (:class:`ItemFinished`)."""
    outcome, error = await _item_outcome(step, frame, index, items[index])
    status = "failed" if error is not None else "succeeded"
    run = frame.run
    run.emit(
        ItemFinished(run.run_id, frame.prefix + step.step_id, index, len(items), status, frame.key)
    )
    return outcome, error


async def _item_outcome(
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
