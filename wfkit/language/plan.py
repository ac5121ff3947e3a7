"""Compiled steps: what the engine reads on every execution, built once by the loader.

A plan names its step's model, never its handler: the engine looks the handler up when the
step runs (:mod:`wfkit.engine.steps.registry`), so the language needs nothing of the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from wfkit.language.expressions import Expr, Value
from wfkit.language.models import StepBase
from wfkit.language.policy import ErrorPolicy


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
    model: type[StepBase]
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
            model=type(step),
            policy=compiled["policy"],
            breaker=step.circuit_breaker,
        )


def expressions_in(value: Any) -> Iterator[Expr | Value]:
    """The compiled expressions and values inside ``value`` (a step's compiled fields:
    expressions, values, state writes, its error policy, lists and maps of them)."""
    if isinstance(value, (Expr, Value)):
        yield value
    elif isinstance(value, CompiledUpdate):
        for part in (value.path, value.value, value.by):
            yield from expressions_in(part)
    elif isinstance(value, ErrorPolicy):
        yield from expressions_in(value.fallback)
        if value.retry is not None:
            yield from expressions_in(value.retry.retry_on_expr)
    elif isinstance(value, dict):
        for item in value.values():
            yield from expressions_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from expressions_in(item)


def references_in(value: Any) -> Iterator[str]:
    """The dotted paths read by the compiled expressions inside ``value``."""
    for found in expressions_in(value):
        yield from found.references


def under(ref: str, root: str) -> bool:
    """Whether the dotted path ``ref`` is ``root`` or a path inside it."""
    return ref == root or ref.startswith(root + ".")
