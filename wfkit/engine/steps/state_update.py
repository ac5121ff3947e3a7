"""``state_update``: writes to ``raw.`` paths."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wfkit.engine.steps.registry import handles
from wfkit.language.models import StateUpdateStep

if TYPE_CHECKING:
    from wfkit.engine.frame import Frame


@handles(StateUpdateStep)
async def run_state_update(step: StateUpdateStep, frame: Frame) -> Any:
    """Apply the step's writes; the result is the value now at the (first) path."""
    frame.apply(frame.run.plan(step).compiled["writes"])
    return frame.state.read(step.path) if step.path and "{" not in step.path else None
