"""A ``parallel_foreach`` item: the item as data, where it runs, and running it here.

The engine builds an :class:`ItemJob` per item (everything the item needs, evaluated in the
parent frame, picklable) and hands it to the run's :class:`ItemExecutor`. Without one, items
run in this process through :func:`run_item`; implementations live in ``wfkit/executors/``
and the engine knows them only through this protocol. :func:`run_item` runs an item wherever
an executor puts it: in the coordinating run itself (the default), or on a worker, in a run
that only carries the item (:mod:`wfkit.engine.detached`).
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from wfkit.engine.events import (
    FrameDropped,
)
from wfkit.errors import CancelledRunError, StepError, WfkitError

if TYPE_CHECKING:
    from wfkit.engine.context import RunContext
    from wfkit.engine.frame import Frame, FrameCheckpoint
    from wfkit.engine.state import State


ItemOutcome = tuple[dict[str, Any], "WfkitError | None"]
"""An item's result entry (``{index, item, status, state, error}``) and its error, if any."""


@dataclass(frozen=True, slots=True)
class ItemJob:
    """One item of one execution of a ``parallel_foreach`` step."""

    step_id: str  # the parallel_foreach step
    task: str  # the sub-agent task it runs
    prefix: str  # of the item's step ids: ``<parent prefix><step id>/``
    active: tuple[str, ...]  # the chain of active steps around the item
    key: str  # the item frame's key: ``<parent frame>/<step id>[<index>]``
    index: int
    item: Any
    retries: int  # item_retry_count
    inputs: dict[str, Any] | None  # the task's inputs, or None when ``inputs_error`` is set
    inputs_error: WfkitError | None = None
    saved: FrameCheckpoint | None = None  # the item frame's checkpoint (resumed runs)
    #: a ``parallel`` branch's start: a copy of the state (``raw``, ``computed``) and of the
    #: local names (``steps``, ``loop``...) of the frame running the step; ``inputs`` are its
    start: dict[str, Any] | None = None


class ItemExecutor(Protocol):
    """Runs parallel items somewhere and reports them to the run as if they ran in it."""

    async def run_item(self, run: RunContext, job: ItemJob) -> ItemOutcome:
        """Run one item; its records reach ``run`` (events, errors, step records) before this
        returns, also when it is cancelled."""
        ...

    async def close_run(self, run: RunContext) -> None:
        """The run ended: release what its items hold wherever they ran."""
        ...


async def run_item(run: RunContext, job: ItemJob) -> ItemOutcome:
    """Run the item's task, ``job.retries`` more times after a failure; report its entry."""
    from wfkit.engine.frame import Frame

    task = run.loaded.body(job.task, branch=job.start is not None)
    error: WfkitError | None = job.inputs_error
    state: State | None = None
    attempts = job.retries + 1 if job.inputs_error is None else 0
    child: Frame | None = None
    for attempt in range(attempts):
        child = None
        try:
            assert job.inputs is not None
            state = _state(run, task, job)
            child = Frame(run, task, state, prefix=job.prefix, active=job.active, key=job.key)
            if job.start is not None:
                names = copy.deepcopy(job.start["locals"])
                child.steps_view.update(names.pop("steps", {}))
                child.locals.update(names)
            child.ends_with_parent = not task.finally_steps
            child.item = job.index
            if job.saved is not None and attempt == 0:
                child.restore(job.saved)
            elif attempt > 0:
                run.emit(FrameDropped(run.run_id, job.key))  # a retry starts from scratch
            await child.run_steps(task.steps)
            await _finally(child, task.finally_steps, "succeeded", job.index)
            error = None
            break
        except asyncio.CancelledError:
            if child is not None:
                await _finally(child, task.finally_steps, "cancelled", job.index)
            raise
        except WfkitError as exc:
            error = exc
            if child is not None and isinstance(exc, StepError):
                await _finally(child, task.finally_steps, "failed", job.index)
    entry: dict[str, Any] = {
        "index": job.index,
        "item": job.item,
        "status": "succeeded" if error is None else "failed",
        "state": state.snapshot() if state is not None else None,
        "error": error.details() if error is not None else None,
    }
    if job.start is not None:  # a branch's result: its last step's output
        last = child.steps_view.get(task.steps[-1].step_id) if child and task.steps else None
        entry["result"] = last.get("output") if isinstance(last, dict) else None
    return entry, error


def _state(run: RunContext, task: Any, job: ItemJob) -> State:
    """A task's fresh state from its inputs, or a copy of the state a branch starts from."""
    if job.start is None:
        assert job.inputs is not None
        return run.new_state(task.state, task.state.resolve_inputs(job.inputs))
    start = copy.deepcopy(job.start)
    return run.new_state(task.state, start["inputs"], raw=start["raw"], computed=start["computed"])


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
