"""Control flow: ``conditional``, ``while_loop``, ``foreach``, ``break``, ``continue``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wfkit.core.expressions import truthy
from wfkit.core.models import BreakStep, ConditionalStep, ContinueStep, ForeachStep, WhileLoopStep
from wfkit.core.steps import LoopSignal, handles
from wfkit.errors import ExpressionError

if TYPE_CHECKING:
    from wfkit.core.frame import Frame


@handles(ConditionalStep)
async def run_conditional(step: ConditionalStep, frame: Frame) -> Any:
    """Run ``then`` or ``else``; the result names the branch taken."""
    branch = "then" if truthy(frame.eval(step, "condition")) else "else"
    await frame.run_steps(step.then if branch == "then" else step.else_)
    return {"branch": branch}


async def _iteration(frame: Frame, body: list[Any], loop: dict[str, Any]) -> bool:
    """Run one iteration of a loop body; False when it ended with ``break``."""
    frame.locals["loop"] = loop
    try:
        await frame.run_steps(body)
    except LoopSignal as signal:
        return signal.kind != "break"
    return True


@handles(WhileLoopStep)
async def run_while_loop(step: WhileLoopStep, frame: Frame) -> Any:
    """Repeat ``body`` while ``condition`` holds, at most ``max_iterations`` times."""
    outer = frame.locals.get("loop")
    iterations = 0
    try:
        while True:
            frame.locals["loop"] = {"index": iterations, "iteration": iterations + 1}
            if not truthy(frame.eval(step, "condition")):
                break
            if iterations >= step.max_iterations:
                frame.run.warn(
                    f"while_loop {step.step_id!r} stopped at max_iterations="
                    f"{step.max_iterations} with its condition still true",
                    step.step_id,
                )
                break
            iterations += 1
            loop = {"index": iterations - 1, "iteration": iterations}
            if not await _iteration(frame, step.body, loop):
                break
    finally:
        _restore(frame, outer)
    return {"iterations": iterations}


@handles(ForeachStep)
async def run_foreach(step: ForeachStep, frame: Frame) -> Any:
    """Run ``body`` once per item of ``items``, with ``loop.item`` and ``loop.index``."""
    items = frame.eval(step, "items")
    items = list_items(items, step.step_id)
    outer = frame.locals.get("loop")
    done = 0
    try:
        for index, item in enumerate(items):
            done += 1
            loop = {"item": item, "index": index, "iteration": index + 1, "length": len(items)}
            if not await _iteration(frame, step.body, loop):
                break
    finally:
        _restore(frame, outer)
    return {"iterations": done}


def list_items(items: Any, step_id: str) -> list[Any]:
    """``items`` as a list: lists as they are, a mapping as ``[{key, value}, ...]``."""
    if isinstance(items, dict):
        return [{"key": k, "value": v} for k, v in items.items()]
    if isinstance(items, (list, tuple)):
        return list(items)
    raise ExpressionError(
        f"items of {step_id!r} must be a list (or mapping), got {type(items).__name__}"
    )


def _restore(frame: Frame, outer: Any) -> None:
    if outer is None:
        frame.locals.pop("loop", None)
    else:
        frame.locals["loop"] = outer


@handles(BreakStep)
async def run_break(step: BreakStep, frame: Frame) -> Any:
    """Leave the nearest loop."""
    raise LoopSignal("break")


@handles(ContinueStep)
async def run_continue(step: ContinueStep, frame: Frame) -> Any:
    """Go on with the nearest loop's next iteration."""
    raise LoopSignal("continue")
