"""Control flow: ``conditional``, ``while_loop``, ``foreach``, ``break``, ``continue``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wfkit.engine.steps.registry import LoopSignal, handles
from wfkit.errors import ExpressionError
from wfkit.language.models import (
    BreakStep,
    ConditionalStep,
    ContinueStep,
    ForeachStep,
    WhileLoopStep,
)

if TYPE_CHECKING:
    from wfkit.engine.frame import Frame


@handles(ConditionalStep)
async def run_conditional(step: ConditionalStep, frame: Frame) -> Any:
    """Run ``then`` or ``else``; the result names the branch taken.

    The branch is noted, so a resume continues in it without evaluating the condition again.
    """
    resumed = frame.take_reentry()
    if resumed and "branch" in resumed:
        branch = resumed["branch"]
    else:
        condition = frame.run.plan(step).compiled["condition"]
        branch = "then" if frame.test(condition, step.step_id, "condition") else "else"
    frame.note(branch=branch)
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
    resumed = frame.take_reentry()
    condition = frame.run.plan(step).compiled["condition"]
    try:
        going = True
        if resumed and "iteration" in resumed:  # finish the iteration a resume stopped in
            iterations = resumed["iteration"]
            going = await _iteration(
                frame, step.body, {"index": iterations - 1, "iteration": iterations}
            )
        while going:
            frame.locals["loop"] = {"index": iterations, "iteration": iterations + 1}
            if not frame.test(condition, step.step_id, "condition"):
                break
            if iterations >= step.max_iterations:
                frame.run.warn(
                    f"while_loop {step.step_id!r} stopped at max_iterations="
                    f"{step.max_iterations} with its condition still true",
                    step.step_id,
                )
                break
            iterations += 1
            frame.note(iteration=iterations)
            going = await _iteration(
                frame, step.body, {"index": iterations - 1, "iteration": iterations}
            )
    finally:
        _restore(frame, outer)
    return {"iterations": iterations}


@handles(ForeachStep)
async def run_foreach(step: ForeachStep, frame: Frame) -> Any:
    """Run ``body`` once per item of ``items``, with ``loop.item`` and ``loop.index``.

    The items are evaluated once and remembered, so a resume iterates the same list.
    """
    key = f"items:{step.step_id}"
    resumed = frame.take_reentry()
    if resumed and "index" in resumed and key in frame.memory:
        items, start = frame.memory[key], int(resumed["index"])
    else:
        items, start = list_items(frame.eval(step, "items"), step.step_id), 0
        frame.remember(key, items)
    outer = frame.locals.get("loop")
    done = start
    try:
        for index in range(start, len(items)):
            done += 1
            frame.note(index=index)
            loop = {
                "item": items[index],
                "index": index,
                "iteration": index + 1,
                "length": len(items),
            }
            if not await _iteration(frame, step.body, loop):
                break
    finally:
        _restore(frame, outer)
        frame.forget(key)
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
