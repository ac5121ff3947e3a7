"""Step types: one handler per step model, found through :data:`HANDLERS`.

A handler is ``async def handler(step, frame) -> result``. Adding a step type means a model in
:mod:`wfkit.core.models` and one module here that registers its handler with :func:`handles`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from wfkit.core.frame import Frame
    from wfkit.core.models import StepBase

Handler = Callable[[Any, "Frame"], Awaitable[Any]]
HANDLERS: dict[type[StepBase], Handler] = {}

H = TypeVar("H", bound=Handler)


def handles(model: type[StepBase]) -> Callable[[H], H]:
    """Register the decorated coroutine function as the handler of ``model``."""

    def register(func: H) -> H:
        HANDLERS[model] = func
        return func

    return register


class LoopSignal(Exception):
    """``break`` or ``continue`` unwinding to the nearest loop."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


# importing the modules registers their handlers
from wfkit.core.steps import control, interaction, parallel, shell, state_update, tool  # noqa: E402

__all__ = [
    "HANDLERS",
    "LoopSignal",
    "control",
    "handles",
    "interaction",
    "parallel",
    "shell",
    "state_update",
    "tool",
]
