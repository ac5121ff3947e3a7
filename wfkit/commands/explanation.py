"""What ``wfkit explain`` returns: the plan of a workflow, step by step, with its warnings."""

from __future__ import annotations

from typing import Any

from wfkit.commands._base import FrozenModel
from wfkit.language import models as m
from wfkit.language.compile import Body
from wfkit.language.expressions import SHELL_ENV
from wfkit.language.policy import ErrorPolicy
from wfkit.language.shellquote import shell_text


class InputPlan(FrozenModel):
    name: str
    type: str
    required: bool
    status: str  # given | default | missing | optional
    value: Any = None
    description: str | None = None


class RetryPlan(FrozenModel):
    strategy: str
    attempts: int
    delays_ms: list[float]
    jitter_ms: int
    worst_case_wait_ms: float
    retry_on: list[str] | str | None
    fallback: Any = None

    @classmethod
    def of(cls, policy: ErrorPolicy) -> RetryPlan:
        """The plan of a step's compiled error policy."""
        retry = policy.retry
        retry_on: list[str] | str | None = None
        if retry is not None and retry.retry_on_types is not None:
            retry_on = [t.__name__ for t in retry.retry_on_types]
        elif retry is not None and retry.retry_on_expr is not None:
            retry_on = retry.retry_on_expr.source
        return cls(
            strategy=policy.strategy,
            attempts=policy.attempts,
            delays_ms=retry.schedule_ms() if retry else [],
            jitter_ms=retry.jitter_ms if retry else 0,
            worst_case_wait_ms=retry.worst_case_wait_ms() if retry else 0.0,
            retry_on=retry_on,
            fallback=policy.fallback.source if policy.fallback is not None else None,
        )


class ToolNeed(FrozenModel):
    tool: str
    server: str | None
    available: bool | None  # None: a server is declared but not asked (it would have to start)


class StepPlanView(FrozenModel):
    id: str
    type: str
    path: str
    line: int | None
    depth: int
    scope: str  # workflow | finally | <sub_agent_task name>
    branch: str | None = None  # the ``parallel`` branch whose steps list holds it
    file: str | None = None  # a called workflow's file, for the steps of its nested plan
    condition: str | None = None
    condition_value: bool | None = None
    reads: list[str]
    writes: list[str]
    policy: RetryPlan
    timeout: float | None
    worst_case_ms: float | None
    tools: list[ToolNeed] = []
    reachable: bool = True
    dead: bool = False  # in a branch the inputs decide against
    #: a shell command as /bin/sh reads it: its values as references to variables
    shell: str | None = None
    #: an agent_task's response_schema (JSON Schema), when it has one
    response_schema: dict[str, Any] | None = None


class ComputedPlanView(FrozenModel):
    name: str
    sources: list[str]
    transform: str
    dependencies: list[str]
    on_error: str


class PlanWarning(FrozenModel):
    kind: str
    message: str
    step_id: str | None = None
    line: int | None = None


class Explanation(FrozenModel):
    """The result of ``wfkit explain`` (SPEC section 6)."""

    workflow: str
    file: str
    inputs: list[InputPlan]
    steps: list[StepPlanView]
    computed: list[ComputedPlanView]
    warnings: list[PlanWarning]
    worst_case_ms: float | None
    timeout: float | None


def worst_case(step: m.StepBase, policy: RetryPlan) -> float | None:
    """The longest a step can take, when bounded (its timeout, retries and waits)."""
    if isinstance(step, m.WaitStep) and not isinstance(step.seconds, str):
        return float(step.seconds) * 1000 * policy.attempts + policy.worst_case_wait_ms
    if step.timeout is None:
        if isinstance(
            step, (m.StateUpdateStep, m.UserMessageStep, m.BreakStep, m.ContinueStep, m.ErrorStep)
        ):
            return policy.worst_case_wait_ms  # no waiting inside them
        return None
    return step.timeout * 1000 * policy.attempts + policy.worst_case_wait_ms


def shell_view(step: m.StepBase) -> str | None:
    """A shell command as the shell reads it, where its values stand as references."""
    if not isinstance(step, m.ShellCommandStep) or not isinstance(step.command, str):
        return None
    shown = shell_text(step.command, SHELL_ENV.parse)
    return None if shown == step.command else shown


def undeclared_reads(body: Body) -> list[PlanWarning]:
    """Computed fields reading a raw path the schema does not declare (allowed, as undeclared
    writes are), and those reading one nothing writes (they get their fallback)."""
    from wfkit.language.state_schema import raw_writes

    written = raw_writes(body.steps, body.finally_steps)
    declared = body.state.raw_types.keys() | body.state.raw_defaults.keys()
    warnings = []
    for plan in body.state.computed:
        for src in plan.sources:
            head, _, rest = src.partition(".")
            top = rest.split(".", 1)[0].split("[", 1)[0]
            if head != "raw" or top in declared:
                continue
            if top in written:
                message = (
                    f"computed field {plan.name!r} reads {src}, which state_schema.raw does "
                    "not declare (a step writes it; until then it reads null)"
                )
            else:
                message = (
                    f"computed field {plan.name!r} reads {src}, which no step writes: it "
                    f"always gets its {plan.spec.on_error} value"
                )
            warnings.append(PlanWarning(kind="undeclared_read", message=message))
    return warnings
