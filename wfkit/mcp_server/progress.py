"""Progress notifications for a tool call that runs a workflow (``notifications/progress``).

One notification per finished top-level step and per finished item of a top-level
``parallel_foreach``: ``progress`` counts the top-level steps done, an item adding its share of
its step (3 of 10 items of the second step done: 1.3), ``total`` is the number of top-level steps
(unknown for a resumed run, whose earlier steps send nothing), ``message`` names the step and
how it ended. The SDK sends nothing when the request carried no progress token.

The engine calls the sink synchronously, possibly from another thread; notifications go out
in order through one queue, and :meth:`Progress.flush` waits until all are sent, so a client
has every notification before the call's result. A run carried over several rounds of
input requests (:class:`~wfkit.mcp_server.agents.LiveRun`) reports to the latest round's call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from typing import Any

from wfkit.engine.events import Event, ItemFinished, RunStarted, StepFinished

LOGGER = logging.getLogger("wfkit.mcp")

_TOP = re.compile(r"^steps\[\d+\]$")


class Progress:
    """An engine event sink that reports a run's progress to the calling client."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()
        self.queue: asyncio.Queue[tuple[float, float | None, str] | None] = asyncio.Queue()
        self.top: set[str] = set()
        self.total: float | None = None
        self.done = 0  # top-level steps finished
        self.items: dict[str, int] = {}  # items finished, by parallel_foreach step
        self.sent = -1.0  # the progress last sent
        self.sender: asyncio.Future[None] | None = None

    def __call__(self, event: Event) -> None:
        note = self._note(event)
        if note is None:
            return
        if threading.get_ident() == self.thread:
            self._put(note)
        else:  # a sink called from a worker thread
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self.loop.call_soon_threadsafe(self._put, note)

    def _put(self, note: tuple[float, float | None, str]) -> None:
        if self.sender is None or self.sender.done():  # the first, or the first after a flush
            self.sender = asyncio.ensure_future(self._send())
        self.queue.put_nowait(note)

    def _note(self, event: Event) -> tuple[float, float | None, str] | None:
        if isinstance(event, RunStarted):
            self.top = {entry.split()[1] for entry in event.structure or [] if _top(entry)}
            self.total = None if event.resumed else float(len(self.top))
            return None
        if isinstance(event, StepFinished):
            if event.frame != "main" or event.item is not None or event.step_id not in self.top:
                return None
            self.done += 1
            return self._progress(self.done), self.total, f"{event.step_id} {event.status}"
        if isinstance(event, ItemFinished) and event.frame == "main":
            self.items[event.step_id] = finished = self.items.get(event.step_id, 0) + 1
            share = finished / max(event.of, 1)
            message = f"{event.step_id} item {event.index} {event.status}"
            return self._progress(self.done + min(share, 0.99)), self.total, message
        return None

    def _progress(self, value: float) -> float:
        return value if self.total is None else min(value, self.total)

    async def _send(self) -> None:
        while (note := await self.queue.get()) is not None:
            progress, total, message = note
            if progress <= self.sent:  # progress only counts up (items end out of order)
                continue
            self.sent = progress
            try:
                await self.context.report_progress(progress, total, message)
            except Exception as exc:  # a client gone, or a call already answered
                LOGGER.debug("progress not sent: %s", exc)

    async def flush(self) -> None:
        """Send what is queued (before the call's result goes out)."""
        if self.sender is not None and not self.sender.done():
            self.queue.put_nowait(None)
            await asyncio.shield(self.sender)


def _top(entry: str) -> bool:
    parts = entry.split()
    return len(parts) >= 2 and _TOP.match(parts[0]) is not None
