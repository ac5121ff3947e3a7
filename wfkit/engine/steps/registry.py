"""The step registry: one handler per step model, and the signal loops unwind with.

A handler is ``async def handler(step, frame) -> result``. Adding a step type means a model in
:mod:`wfkit.language.models` and one module in this package that registers its handler with
:func:`handles`; :mod:`wfkit.engine.steps` imports every such module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from wfkit.engine.frame import Frame
    from wfkit.language.models import StepBase

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
