"""Pydantic models of workflow files (SPEC sections 1 and 3).

Models describe the file only; compiled expressions and source positions are attached by the
loader in private attributes, and behaviour lives in :mod:`wfkit.engine.steps`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from wfkit.language.config import (
    AgentConfig,
    CircuitBreakerSpec,
    Config,
    ExecutorConfig,
    Retention,
    TraceConfig,
    _Model,
    check_scheduler,
)

__all__ = [
    "AgentConfig",
    "CircuitBreakerSpec",
    "Config",
    "ExecutorConfig",
    "Retention",
    "TraceConfig",
    "check_scheduler",
]

FieldType = Literal["string", "number", "integer", "boolean", "object", "array", "any"]
Operation = Literal[
    "set", "increment", "decrement", "multiply", "append", "extend", "merge", "delete"
]
Strategy = Literal["fail", "continue", "retry", "fallback"]
StepId = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$", max_length=128)]


class InputSpec(_Model):
    """A typed, read-only workflow parameter."""

    type: FieldType = "any"
    default: Any = None
    required: bool | None = None
    description: str | None = None
    #: masked as ``***`` on every surface and never stored; given again on resume
    secret: bool = False

    @property
    def has_default(self) -> bool:
        """True when the file gave a ``default`` (even ``null``)."""
        return "default" in self.model_fields_set

    @property
    def is_required(self) -> bool:
        """Required unless it has a default or says ``required: false``."""
        return self.required if self.required is not None else not self.has_default


class SecretSpec(_Model):
    """A secret read when the run starts: from a variable of the environment or a file."""

    env: str | None = None
    file: str | None = None  # relative to the workflow file
    required: bool = True  # a missing one is a start error; else an empty string
    description: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretSpec:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of `env` or `file`")
        return self


class ComputedField(_Model):
    """A derived value: ``transform`` over the values at ``from``."""

    from_: str | list[str] = Field(alias="from")
    transform: str
    on_error: Literal["propagate", "use_fallback", "ignore"] = "propagate"
    fallback: Any = None
    description: str | None = None

    @property
    def sources(self) -> list[str]:
        """``from`` as a list."""
        return [self.from_] if isinstance(self.from_, str) else list(self.from_)


class StateSchema(_Model):
    raw: dict[str, FieldType] = Field(default_factory=dict)
    computed: dict[str, ComputedField] = Field(default_factory=dict)


class DefaultState(_Model):
    raw: dict[str, Any] = Field(default_factory=dict)


class McpServerSpec(_Model):
    command: str
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    #: calls in flight to this server at once (many servers are not safe under concurrency)
    max_concurrency: int | None = Field(default=None, ge=1)


class StateUpdateSpec(_Model):
    """One write: ``operation`` on ``path`` with ``value`` (or ``by``)."""

    path: str
    value: Any = None
    operation: Operation = "set"
    by: Any = None


class ErrorHandler(_Model):
    """Block form of a step's error settings."""

    strategy: Strategy = "fail"
    retry_count: int | None = Field(None, ge=0)
    retry_delay: int | None = Field(None, ge=0)
    fallback_value: Any = None
    error_state_path: str | None = None


class StepBase(BaseModel):
    """Fields every step accepts (SPEC section 3)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    #: names of fields holding nested step lists, in document order
    child_fields: ClassVar[tuple[str, ...]] = ()
    #: True for steps that act outside the run (processes, tools, people, time): the store
    #: commits before and after them, so a resumed run never repeats their effects
    effectful: ClassVar[bool] = False
    #: fields holding expressions, and how each is compiled:
    #: "bare" (an expression even without braces), "text" (a template), "value" (a YAML value
    #: whose strings may be templates), "shell" (a command line whose templated values get quoted)
    expr_fields: ClassVar[dict[str, str]] = {"if_": "bare", "fallback_value": "value"}

    id: StepId | None = None
    name: str | None = None
    description: str | None = None
    if_: str | bool | None = Field(None, alias="if")
    on_error: Strategy | None = None
    retry_count: int | None = Field(None, ge=0)
    retry_delay: int | None = Field(None, ge=0)
    retry_backoff: float = Field(2.0, ge=1.0)
    retry_max_delay: int = Field(30_000, ge=0)
    retry_jitter: int | None = Field(None, ge=0)
    retry_on: list[str] | str | None = None
    fallback_value: Any = None
    error_state_update: StateUpdateSpec | list[StateUpdateSpec] | None = None
    error_handler: ErrorHandler | None = None
    timeout: float | None = Field(None, gt=0)
    cleanup: list[Step] = Field(default_factory=list)
    circuit_breaker: str | None = None
    state_update: StateUpdateSpec | None = None
    state_updates: list[StateUpdateSpec] = Field(default_factory=list)

    # set by the loader
    _line: int | None = PrivateAttr(None)
    _path: str = PrivateAttr("")
    _compiled: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def step_id(self) -> str:
        """The step's id (the loader gives every step one)."""
        assert self.id is not None, "ids are assigned at load"
        return self.id

    @property
    def step_type(self) -> str:
        """The step's ``type``."""
        return str(getattr(self, "type"))  # noqa: B009 - declared by each subclass

    @property
    def line(self) -> int | None:
        """The line of the step in its file."""
        return self._line

    @property
    def field_path(self) -> str:
        """Where the step sits, as a field path (``steps[2].then[0]``)."""
        return self._path

    def children(self) -> Iterator[tuple[str, list[Step]]]:
        """Nested step lists (branches, bodies) and ``cleanup``, in document order."""
        for name in self.child_fields:
            yield name.rstrip("_"), getattr(self, name)
        if self.cleanup:
            yield "cleanup", self.cleanup

    def compiled(self, name: str) -> Any:
        """The compiled form of field ``name`` (an ``Expr``, ``Value`` or list of updates)."""
        return self._compiled[name]

    def updates(self) -> list[StateUpdateSpec]:
        """``state_update`` then ``state_updates``."""
        return ([self.state_update] if self.state_update else []) + list(self.state_updates)


class StateUpdateStep(StepBase):
    type: Literal["state_update"]
    path: str | None = None
    value: Any = None
    operation: Operation = "set"
    by: Any = None
    updates_: list[StateUpdateSpec] = Field(default_factory=list, alias="updates")

    @model_validator(mode="after")
    def _needs_a_write(self) -> StateUpdateStep:
        if self.path is None and not self.updates_:
            raise ValueError("a state_update step needs `path` (or `updates`)")
        return self

    def writes(self) -> list[StateUpdateSpec]:
        """The writes this step performs, in order."""
        own = []
        if self.path is not None:
            own.append(
                StateUpdateSpec(
                    path=self.path, value=self.value, operation=self.operation, by=self.by
                )
            )
        return own + list(self.updates_)


class ShellCommandStep(StepBase):
    effectful = True
    expr_fields = {
        **StepBase.expr_fields,
        "command": "shell",
        "env": "value",
        "working_directory": "value",
    }
    type: Literal["shell_command"]
    command: str | list[str] = Field(min_length=1)
    working_directory: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    ok_exit_codes: list[int] = Field(default_factory=lambda: [0])
    memory_limit_mb: int | None = Field(None, gt=0)


class McpCallStep(StepBase):
    effectful = True
    expr_fields = {**StepBase.expr_fields, "parameters": "value"}
    type: Literal["mcp_call"]
    method: str | None = None
    tool: str | None = None
    server: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_tool(self) -> McpCallStep:
        if (self.method is None) == (self.tool is None):
            raise ValueError("an mcp_call step needs exactly one of `method` or `tool`")
        return self

    @property
    def tool_name(self) -> str:
        """The tool to call."""
        return self.tool or self.method or ""


class ConditionalStep(StepBase):
    child_fields = ("then", "else_")
    expr_fields = {**StepBase.expr_fields, "condition": "bare"}
    type: Literal["conditional"]
    condition: str | bool
    then: list[Step] = Field(default_factory=list)
    else_: list[Step] = Field(default_factory=list, alias="else")


class WhileLoopStep(StepBase):
    child_fields = ("body",)
    expr_fields = {**StepBase.expr_fields, "condition": "bare"}
    type: Literal["while_loop"]
    condition: str | bool
    max_iterations: int = Field(100, ge=1)
    body: list[Step] = Field(default_factory=list)


class ForeachStep(StepBase):
    child_fields = ("body",)
    expr_fields = {**StepBase.expr_fields, "items": "bare"}
    type: Literal["foreach"]
    items: str | list[Any] | dict[str, Any]
    body: list[Step] = Field(default_factory=list)


class BreakStep(StepBase):
    type: Literal["break"]


class ContinueStep(StepBase):
    type: Literal["continue"]


class UserMessageStep(StepBase):
    expr_fields = {**StepBase.expr_fields, "message": "text"}
    type: Literal["user_message"]
    message: str
    level: Literal["info", "warning", "error", "success"] = "info"


class UserInputStep(StepBase):
    effectful = True
    expr_fields = {**StepBase.expr_fields, "prompt": "text", "default": "value", "choices": "value"}
    type: Literal["user_input"]
    prompt: str
    choices: list[Any] | None = None
    default: Any = None


class WorkflowStep(StepBase):
    """Another workflow file run as a child run of its own (SPEC: docs/language.md)."""

    effectful = True
    expr_fields = {**StepBase.expr_fields, "inputs": "value"}
    type: Literal["workflow"]
    #: relative to the calling file
    file: str = Field(min_length=1)
    inputs: dict[str, Any] = Field(default_factory=dict)


class AgentTaskStep(StepBase):
    """Work an agent performs: a prompt (and context) out, a response checked against
    ``response_schema`` back (SPEC: docs/agents.md)."""

    effectful = True
    expr_fields = {**StepBase.expr_fields, "prompt": "text", "context": "value"}
    type: Literal["agent_task"]
    prompt: str = Field(min_length=1)
    context: Any = None
    #: a JSON Schema (draft 2020-12) the response must match; none takes any JSON or text
    response_schema: dict[str, Any] | None = None


class WaitStep(StepBase):
    effectful = True
    expr_fields = {**StepBase.expr_fields, "seconds": "bare"}
    type: Literal["wait"]
    seconds: float | str


class ErrorStep(StepBase):
    expr_fields = {**StepBase.expr_fields, "message": "text"}
    type: Literal["error"]
    message: str
    error_type: str | None = None


class ParallelForeachStep(StepBase):
    effectful = True
    expr_fields = {**StepBase.expr_fields, "items": "bare", "with_": "value"}
    type: Literal["parallel_foreach"]
    items: str | list[Any] | dict[str, Any]
    sub_agent_task: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    max_parallel: int = Field(4, ge=1, le=1024)
    on_item_error: Literal["fail_fast", "continue"] = "fail_fast"
    min_success: int | None = Field(None, ge=0)
    item_retry_count: int = Field(0, ge=0)


class ParallelStep(StepBase):
    """Named lists of steps run side by side, each in a frame of its own over a copy of the
    state; their writes merge back in branch order (SPEC: docs/language.md, "parallel")."""

    effectful = True
    type: Literal["parallel"]
    branches: dict[StepId, list[Step]] = Field(min_length=1, max_length=256)
    #: branches running at once; none runs them all together
    max_parallel: int | None = Field(None, ge=1, le=1024)
    on_branch_error: Literal["fail_fast", "continue"] = "fail_fast"
    min_success: int | None = Field(None, ge=0)

    def children(self) -> Iterator[tuple[str, list[Step]]]:
        """Each branch (labelled ``branches.<name>``), then ``cleanup``."""
        for name, steps in self.branches.items():
            yield f"branches.{name}", steps
        if self.cleanup:
            yield "cleanup", self.cleanup


Step = Annotated[
    StateUpdateStep
    | ShellCommandStep
    | McpCallStep
    | ConditionalStep
    | WhileLoopStep
    | ForeachStep
    | BreakStep
    | ContinueStep
    | UserMessageStep
    | UserInputStep
    | AgentTaskStep
    | WorkflowStep
    | WaitStep
    | ErrorStep
    | ParallelForeachStep
    | ParallelStep,
    Field(discriminator="type"),
]

STEP_TYPES: tuple[str, ...] = (
    "state_update",
    "shell_command",
    "mcp_call",
    "conditional",
    "while_loop",
    "foreach",
    "break",
    "continue",
    "user_message",
    "user_input",
    "agent_task",
    "workflow",
    "wait",
    "error",
    "parallel_foreach",
    "parallel",
)


class SubAgentTask(_Model):
    """A workflow fragment run once per item of a ``parallel_foreach``, with its own state."""

    description: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    default_state: DefaultState = Field(default_factory=DefaultState)
    state_schema: StateSchema = Field(default_factory=StateSchema)
    steps: list[Step] = Field(default_factory=list)
    finally_: list[Step] = Field(default_factory=list, alias="finally")


class Workflow(_Model):
    """A whole workflow file."""

    name: str = Field(min_length=1)
    description: str | None = None
    version: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    default_state: DefaultState = Field(default_factory=DefaultState)
    state_schema: StateSchema = Field(default_factory=StateSchema)
    config: Config = Field(default_factory=Config)
    mcp_servers: dict[str, McpServerSpec] = Field(default_factory=dict)
    #: read when the run starts, masked everywhere, never part of state: ``secrets.NAME``
    secrets: dict[str, SecretSpec] = Field(default_factory=dict)
    #: variables (templates) for every shell command and MCP server; a step's ``env`` wins
    env: dict[str, str] = Field(default_factory=dict)
    #: dotenv-style variables, relative to the workflow file; ``env`` entries win
    env_file: str | None = None
    steps: list[Step] = Field(default_factory=list)
    finally_: list[Step] = Field(default_factory=list, alias="finally")
    #: a task inline, or the path of a task file (relative to this file; language/task_files)
    sub_agent_tasks: dict[str, SubAgentTask | Annotated[str, Field(min_length=1)]] = Field(
        default_factory=dict
    )
    #: the run's result when a ``workflow`` step runs it: templates over its final state
    outputs: dict[str, Any] = Field(default_factory=dict)
