"""The ``local`` executor: every item is an asyncio task of the run's own event loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wfkit.engine.items import run_item

if TYPE_CHECKING:
    from wfkit.engine.context import RunContext
    from wfkit.engine.items import ItemJob, ItemOutcome


class LocalExecutor:
    """Items run in the run's process, in its frames: records go straight to its sinks."""

    async def run_item(self, run: RunContext, job: ItemJob) -> ItemOutcome:
        """Run the item here."""
        return await run_item(run, job)

    async def close_run(self, run: RunContext) -> None:
        """Nothing is held outside the run."""
