"""Evaluations stopped from outside, delivered as the cancellation or timeout they stand for.

An expression runs synchronously inside the event loop, so neither an asyncio timeout nor a
signal handler registered with the loop can act until it returns. The budget of every
evaluation therefore looks, between operations, at the signals the engine received and at
the step and run deadlines in scope (:func:`~wfkit.language.budget.deadline_in`), and raises
:class:`~wfkit.language.budget.Interrupted`. The engine catches it where a step awaits and
gives the loop a turn: the timeout or cancellation it stands for is then delivered as usual
(a ``timed_out`` step or run, a ``cancelled`` run with its ``finally`` steps).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

from wfkit.errors import ExpressionError
from wfkit.language.budget import Interrupted, deadline_in, interrupt

T = TypeVar("T")

DELIVERY_TURNS = 200
"""Turns of 5 ms the loop gets to deliver the cancellation an interruption stands for."""


async def delivered() -> NoReturn:
    """Let the loop deliver the pending timeout or cancellation (as ``CancelledError``)."""
    for _ in range(DELIVERY_TURNS):
        await asyncio.sleep(0.005)
    raise ExpressionError("the expression was interrupted")  # pragma: no cover - defensive


async def guarded(work: Awaitable[T]) -> T:
    """Await ``work``; an evaluation interrupted inside it ends as what interrupted it."""
    try:
        return await work
    except Interrupted:
        await delivered()


async def evaluated(call: Callable[[], T]) -> T:
    """``call()`` (an evaluation); interrupted, it ends as what interrupted it."""
    try:
        return call()
    except Interrupted:
        await delivered()


def cancel_on(
    loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any] | None
) -> Callable[..., None]:
    """A signal handler (installed with :func:`signal.signal`, so it runs between two
    operations of a busy evaluation) that stops the evaluation in progress and cancels
    ``task``."""

    def handler(signum: int, _frame: Any) -> None:
        interrupt()
        if task is not None:
            loop.call_soon_threadsafe(task.cancel)

    return handler


SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

__all__ = [
    "SIGNALS",
    "Interrupted",
    "cancel_on",
    "deadline_in",
    "delivered",
    "evaluated",
    "guarded",
]
