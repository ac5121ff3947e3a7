"""Compiled steps: what the engine reads on every execution, built once by the loader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wfkit.core.expressions import Expr, Value
from wfkit.core.models import StepBase
from wfkit.core.policy import ErrorPolicy
from wfkit.core.steps import HANDLERS, Handler


@dataclass(frozen=True)
class CompiledUpdate:
    """A state write with its path and values compiled."""

    path: Expr
    operation: str
    value: Value
    by: Value


@dataclass(frozen=True, slots=True)
class StepPlan:
    """What the engine needs of a step on every execution, built once at load."""

    step_id: str
    step_type: str
    where: str
    path: str
    compiled: dict[str, Any]
    condition: Expr | None
    updates: list[CompiledUpdate]
    timeout: float | None
    effectful: bool
    handler: Handler
    policy: ErrorPolicy
    breaker: str | None

    @classmethod
    def of(cls, step: StepBase, file: str, compiled: dict[str, Any]) -> StepPlan:
        """The plan of ``step`` with its compiled fields."""
        return cls(
            step_id=step.step_id,
            step_type=step.step_type,
            where=f"{file}:{step.line} {step.field_path}",
            path=step.field_path,
            compiled=compiled,
            condition=compiled.get("if_"),
            updates=compiled["updates"],
            timeout=step.timeout,
            effectful=type(step).effectful,
            handler=HANDLERS[type(step)],
            policy=compiled["policy"],
            breaker=step.circuit_breaker,
        )
