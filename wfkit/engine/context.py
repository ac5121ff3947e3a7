"""What a frame, a step handler and an item need of their run: the run's options, and the
:class:`RunContext` protocol that :class:`wfkit.engine.runtime.Run` implements.

Frames, the step runner, step handlers and items know their run only through this protocol,
so the runtime that drives them sits above them and no import circle spans the engine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from wfkit.engine.agents import AgentPerformer, NoAgent
from wfkit.engine.tools import NoTools, ToolProvider

if TYPE_CHECKING:
    from wfkit.engine.breakers import Breakers
    from wfkit.engine.events import ErrorRecord, Event, Message
    from wfkit.engine.frame import Frame, FrameCheckpoint, StepRecord
    from wfkit.engine.inject import Fault, Injector
    from wfkit.engine.items import ItemExecutor
    from wfkit.engine.secrets import Masker
    from wfkit.engine.state import State
    from wfkit.engine.tracing import DecisionLog, Tracer
    from wfkit.errors import StepError, WfkitError
    from wfkit.language.loader import LoadedWorkflow
    from wfkit.language.models import StepBase
    from wfkit.language.plan import StepPlan
    from wfkit.language.stateplan import StatePlan

Ask = Callable[[str, list[Any] | None, Any], Any]


@dataclass(frozen=True)
class Question:
    """What a ``user_input`` step asks, for a caller that asks a person on the run's behalf
    (an MCP client's elicitation)."""

    step_id: str
    prompt: str
    choices: list[Any] | None
    default: Any
    #: the declared type of the ``raw`` field the answer is written to (``string`` when
    #: the step writes none, or an untyped one)
    kind: str = "string"


NOT_ANSWERED = object()
"""An :data:`Elicit` result: the person declined or cancelled; the run waits for an answer
as it would with no one to ask."""

Elicit = Callable[[Question], Awaitable[Any]]


@dataclass(frozen=True)
class ChildEnded:
    """How a child run (a ``workflow`` step's) ended."""

    run_id: str
    status: str
    error: dict[str, Any] | None
    outputs: dict[str, Any] | None


@dataclass(frozen=True)
class ChildCall:
    """Which ``workflow`` step calls a child: its recorded id (``fan/call`` in an item), the
    child run it started before a resume (to continue), and what to tell of a new one."""

    step_id: str
    earlier: str | None
    started: Callable[[str], None]


#: runs a loaded workflow with inputs as a child run of ``parent`` (recorded with the
#: parent's run), masking the parent's secrets (name -> value) in the child's records too
ChildRunner = Callable[
    ["LoadedWorkflow", dict[str, Any], str, dict[str, str], ChildCall], Awaitable[ChildEnded]
]


@dataclass
class RunOptions:
    """How to run: where answers and tools come from, how to sleep, who listens."""

    answers: dict[str, Any] = field(default_factory=dict)
    ask: Ask | None = None
    elicit: Elicit | None = None
    """Asks ``user_input`` steps without an answer through the caller (before ``ask``)."""
    children: ChildRunner | None = None
    """Runs ``workflow`` steps' children (the store's: wfkit.commands)."""
    parent_run_id: str | None = None
    """The run whose ``workflow`` step started this one."""
    inherited_secrets: dict[str, str] = field(default_factory=dict)
    """A child run's parent's secrets: masked in the child's records too."""
    tools: ToolProvider = field(default_factory=NoTools)
    agent: AgentPerformer = field(default_factory=NoAgent)
    """Performs ``agent_task`` steps (answers given by step id win)."""
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    sinks: list[Callable[[Event], None]] = field(default_factory=list)
    max_output_bytes: int | None = None
    """Bytes kept of each end of each output stream; ``config.max_output_bytes`` when None."""
    kill_grace_seconds: float = 2.0
    seed: str | None = None
    """Seed of retry jitter; the run id when not given."""
    clock: Callable[[], float] = time.time
    """Wall clock of circuit breakers (their state outlives the process)."""
    breaker_state: dict[str, dict[str, object]] = field(default_factory=dict)
    """Breaker states stored by earlier runs of the workflow."""
    resume: Callable[[str], FrameCheckpoint | None] | None = None
    """Loads stored frames when this run continues an earlier one."""
    trace: bool = False
    """Trace even when the workflow's ``config.trace`` does not ask for it."""
    shell: Callable[[str | list[str]], dict[str, Any] | None] | None = None
    """Test mocks: given a command, its ``{stdout, stderr, exit_code}``, or None to run it."""
    pause_for_input: bool = False
    """A ``user_input`` without an answer pauses the run as ``waiting`` (no terminal)."""
    secrets: dict[str, str] = field(default_factory=dict)
    """The values of the workflow's ``secrets:`` map, read when the run started."""
    prior_ms: float = 0.0
    """A resumed run's duration before this segment: its reported duration is the total."""
    env_file: dict[str, str] = field(default_factory=dict)
    """The variables of the workflow's ``env_file``, read when the run started."""
    initial_raw: dict[str, Any] = field(default_factory=dict)
    """Raw values written over the defaults before the first step (test cases' ``state``)."""
    changed_inputs: list[str] = field(default_factory=list)
    """Inputs a resume changed: the computed fields reading them are recomputed."""
    faults: list[Fault] = field(default_factory=list)
    """Injected faults (``--inject``)."""
    inject_seed: str | None = None
    """Seed of the faults' draws; the retry seed when not given."""
    executor: ItemExecutor | None = None
    """Where ``parallel_foreach`` items run; in this process when None."""
    cwd: str | None = None
    """The folder a ``shell_command`` without ``working_directory`` runs in: the process's
    own when None. Items run elsewhere get their coordinator's, so relative paths mean the
    same thing on every machine."""


class RunContext(Protocol):
    """One run as its frames, steps and items see it."""

    loaded: LoadedWorkflow
    run_id: str
    options: RunOptions
    names: dict[str, Any]  # ``secrets`` and ``env``: read by expressions beside the state
    env: dict[str, str]  # the workflow's ``env:``, rendered: every shell command gets it
    seed: str
    records: dict[str, StepRecord]
    tracer: Tracer | None
    decisions: DecisionLog
    breakers: Breakers
    injector: Injector | None
    errors: list[ErrorRecord]
    errors_dropped: int
    messages: list[Message]
    warnings: list[str]
    masker: Masker  # what the run shows as ***

    def plan(self, step: StepBase) -> StepPlan:
        """The compiled plan of a step of the run's workflow."""
        ...

    def emit(self, event: Event) -> None:
        """Send an event to every sink."""
        ...

    def new_state(self, plan: StatePlan, inputs: dict[str, Any], **tiers: Any) -> State:
        """A state with the workflow's size limits (``raw``, ``computed``: a copy's)."""
        ...

    async def pause_point(self) -> None:
        """Give the event loop a turn now and then."""
        ...

    def check_memory(self, step_id: str) -> None:
        """Fail the step when the engine is over its memory limit."""
        ...

    def checkpoint(self, frame: Frame, durable: bool = False) -> None:
        """Store where ``frame`` is and what it changed."""
        ...

    def load_frame(self, key: str) -> FrameCheckpoint | None:
        """A stored frame to continue (resumed runs only)."""
        ...

    def warn(self, text: str, step_id: str | None = None) -> None:
        """Record a warning (once per distinct text)."""
        ...

    def message(self, level: str, text: str, step_id: str | None = None) -> None:
        """Record and emit a message."""
        ...

    def record_error(
        self,
        exc: WfkitError,
        step_id: str,
        stack: list[str],
        retry: int,
        recovered: bool = False,
        during: str | None = None,
        frame: str | None = None,
    ) -> int:
        """Record one failed attempt; its index in the run's error history."""
        ...

    def keep_error(self, record: ErrorRecord, frame: str | None = None) -> int:
        """Add a failed attempt to the bounded history; its index, or -1 when dropped."""
        ...

    def mark_recovered(self, error: StepError) -> None:
        """The error (and the errors that caused it) did not fail the run."""
        ...

    async def execute_step(self, step: StepBase, frame: Frame) -> None:
        """Execute one step in ``frame`` under its error policy."""
        ...
