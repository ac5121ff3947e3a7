"""Where steps execute: a :class:`Frame` (state plus local names) and per-step plans."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wfkit.core.expressions import Scope, make_scope
from wfkit.core.loader import Body, CompiledUpdate
from wfkit.core.models import StepBase
from wfkit.core.policy import ErrorPolicy
from wfkit.core.state import State
from wfkit.core.steps import HANDLERS, Handler

if TYPE_CHECKING:
    from wfkit.core.runtime import Run


@dataclass
class StepRecord:
    """The last execution of a step id, and how many executions it had."""

    id: str
    type: str
    status: str = "running"
    attempts: int = 0
    executions: int = 0
    duration_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class StepPlan:
    """What the engine needs of a step on every execution, looked up once per step."""

    step_id: str
    step_type: str
    where: str
    path: str
    compiled: dict[str, Any]
    condition: Any
    updates: list[CompiledUpdate]
    timeout: float | None
    effectful: bool
    handler: Handler
    policy: ErrorPolicy
    breaker: str | None

    @classmethod
    def of(cls, step: StepBase, file: str) -> StepPlan:
        """The plan of ``step`` (reads its pydantic fields and private attributes once)."""
        compiled = step._compiled
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


class Frame:
    """Where steps execute: a state, local names, and the chain of active steps."""

    __slots__ = (
        "_scope",
        "active",
        "body",
        "during",
        "locals",
        "prefix",
        "run",
        "state",
        "steps_view",
    )

    def __init__(
        self,
        run: Run,
        body: Body,
        state: State,
        prefix: str = "",
        active: tuple[str, ...] = (),
    ) -> None:
        self.run = run
        self.body = body
        self.state = state
        self.prefix = prefix
        self.steps_view: dict[str, dict[str, Any]] = {}
        self.locals: dict[str, Any] = {"steps": self.steps_view}
        self.active: list[str] = list(active)
        self.during: str | None = None  # "cleanup" or "finally" while those run
        self._scope = make_scope(self.locals, state.flat)

    def view(self, extra: Mapping[str, Any] | None = None) -> Scope:
        """What expressions of the current step see (``extra`` names first)."""
        return self._scope.new_child(dict(extra)) if extra else self._scope

    def eval(self, step: StepBase, name: str, extra: Mapping[str, Any] | None = None) -> Any:
        """Evaluate a compiled field of ``step`` in this frame."""
        return self.run.plan(step).compiled[name].render(self.view(extra))

    def apply(self, updates: list[CompiledUpdate], extra: Mapping[str, Any] | None = None) -> None:
        """Perform compiled state writes in order."""
        if not updates:
            return
        scope = self.view(extra)
        for update in updates:
            self.state.write(
                str(update.path.render(scope)),
                update.operation,
                update.value.render(scope),
                update.by.render(scope),
            )

    async def run_steps(self, steps: list[Any]) -> None:
        """Execute a list of steps in order."""
        execute = self.run.executor.execute_step
        for step in steps:
            await execute(step, self)
