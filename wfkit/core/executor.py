"""Where a ``parallel_foreach`` item runs: the executor protocol and the item as data.

The engine builds an :class:`ItemJob` per item (everything the item needs, evaluated in the
parent frame, picklable) and hands it to the run's :class:`ItemExecutor`. Without one, items
run in this process (:func:`wfkit.core.items.run_item`); implementations live in
``wfkit/executors/`` and the engine knows them only through this protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from wfkit.core.frame import FrameCheckpoint
    from wfkit.core.runtime import Run
    from wfkit.errors import WfkitError

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


class ItemExecutor(Protocol):
    """Runs parallel items somewhere and reports them to the run as if they ran in it."""

    async def run_item(self, run: Run, job: ItemJob) -> ItemOutcome:
        """Run one item; its records reach ``run`` (events, errors, step records) before this
        returns, also when it is cancelled."""
        ...

    async def close_run(self, run: Run) -> None:
        """The run ended: release what its items hold wherever they ran."""
        ...
