"""Frozen records of what happens in a run, sent to sinks (store, progress, metrics).

The engine only emits these; sinks decide what to keep and how to show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    workflow: str
    file: str
    digest: str
    inputs: dict[str, Any]
    started_at: float
    resumed: bool = False
    structure: list[str] | None = None  # the workflow's step structure (see loader)
    parent: str | None = None  # the run whose ``workflow`` step started this one


@dataclass(frozen=True, slots=True)
class StepStarted:
    run_id: str
    step_id: str
    step_type: str
    path: str
    attempt: int
    timestamp: float
    effectful: bool = False
    frame: str = "main"  # the frame it runs in (a parallel item's: ``main/fan[3]``)
    item: int | None = None  # the parallel_foreach item it runs in


@dataclass(frozen=True, slots=True)
class StepFinished:
    run_id: str
    step_id: str
    step_type: str
    status: str  # succeeded | failed | skipped | recovered
    attempts: int
    duration_ms: float
    timestamp: float
    error_type: str | None = None
    effectful: bool = False
    outcome: str | None = None  # "then"/"else" for a conditional, "entered"/"not entered" loops
    item: int | None = None  # the parallel_foreach item it ran in
    injected: bool = False  # an injected fault (--inject) hit one of its attempts
    frame: str = "main"  # the frame it ran in (see StepStarted)
    error_message: str | None = None  # with error_type: the message of the error it raised


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """One failed attempt (the seed's ``WorkflowError``)."""

    step_id: str
    error_type: str
    message: str
    stack_trace: str | None
    timestamp: float
    retry_count: int
    recovered: bool
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErrorRecorded:
    run_id: str
    index: int
    error: ErrorRecord
    frame: str | None = None  # the frame of the step that failed, when a step did


@dataclass(frozen=True, slots=True)
class ErrorsRecovered:
    """Earlier failed attempts turned out not to fail the run."""

    run_id: str
    indexes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """Attempt ``attempt`` failed and another follows after ``delay_ms``."""

    run_id: str
    step_id: str
    attempt: int
    delay_ms: float
    error_type: str
    timestamp: float = 0.0  # when the attempt's failure was judged retryable
    frame: str = "main"
    message: str = ""  # the failed attempt's error message


@dataclass(frozen=True, slots=True)
class BreakerChanged:
    run_id: str
    workflow: str
    name: str
    state: str
    failures: int
    opened_at: float


@dataclass(frozen=True, slots=True)
class Message:
    """A ``user_message`` step, or a warning the engine raises."""

    run_id: str
    step_id: str | None
    level: str  # info | warning | error | success
    text: str
    timestamp: float


@dataclass(frozen=True, slots=True)
class ToolServerLog:
    """What a tool server wrote to stderr during the run (the end of it), kept for debugging."""

    run_id: str
    server: str
    text: str
    timestamp: float


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A frame's position and the values it changed since its last checkpoint.

    ``changes`` maps ``(tier, name)`` to the new value; tiers are ``raw``, ``computed``,
    ``steps`` and ``memory``. A value of ``MISSING`` (wfkit.engine.state) marks a deletion.
    """

    run_id: str
    frame: str
    cursor: list[dict[str, Any]]
    changes: dict[tuple[str, str], Any]
    #: committed at once (before something outside the run starts), like an effectful step
    effectful: bool = False


@dataclass(frozen=True, slots=True)
class FrameDropped:
    """A parallel item finished: its frame's checkpoints are no longer needed."""

    run_id: str
    frame: str


@dataclass(frozen=True, slots=True)
class ItemFinished:
    """A parallel item ended, succeeded or failed (after its own retries)."""

    run_id: str
    step_id: str  # the parallel_foreach step (with its frame's prefix: ``outer/fan``)
    index: int
    of: int  # the number of items
    status: str  # succeeded | failed
    frame: str = "main"  # the frame of the parallel_foreach step


@dataclass(frozen=True, slots=True)
class TracesCollected:
    """A traced run's records (transforms, conditions, retry decisions), at its end."""

    run_id: str
    records: list[dict[str, Any]]
    dropped: int


@dataclass(frozen=True, slots=True)
class OutputStarted:
    """An attempt of a step that produces output (shell command, tool call) began."""

    run_id: str
    key: str  # unique per attempt: its output rows are filed under it
    step_id: str
    item: int | None  # the parallel_foreach item index, when inside one
    execution: int
    attempt: int
    kind: str  # shell | tool
    timestamp: float


@dataclass(frozen=True, slots=True)
class OutputChunk:
    """Bytes of a stream as they arrived: whole lines, except for very long ones."""

    run_id: str
    key: str
    step_id: str
    stream: str  # stdout | stderr
    seq: int
    data: bytes
    head: bool  # part of the kept head (never trimmed)
    timestamp: float


@dataclass(frozen=True, slots=True)
class OutputTrimmed:
    """Tail chunks up to ``upto`` (inclusive) of a stream are no longer kept."""

    run_id: str
    key: str
    stream: str
    upto: int


@dataclass(frozen=True, slots=True)
class OutputFinished:
    run_id: str
    key: str
    status: str  # succeeded | failed | cancelled
    exit_code: int | None
    timestamp: float
    stdout_bytes: int
    stdout_dropped: int
    stderr_bytes: int
    stderr_dropped: int


@dataclass(frozen=True, slots=True)
class RunFinished:
    run_id: str
    status: str
    state: dict[str, Any] | None  # None: kept in the run's checkpoint only
    duration_ms: float
    finished_at: float
    error: dict[str, Any] | None = None
    errors_dropped: int = 0  # failed attempts beyond config.max_error_records


Event = (
    RunStarted
    | StepStarted
    | StepFinished
    | ErrorRecorded
    | ErrorsRecovered
    | RetryScheduled
    | BreakerChanged
    | Message
    | ToolServerLog
    | Checkpoint
    | FrameDropped
    | ItemFinished
    | TracesCollected
    | OutputStarted
    | OutputChunk
    | OutputTrimmed
    | OutputFinished
    | RunFinished
)
