"""Result models of the user-facing operations: what the CLI renders and the MCP shim sends."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from wfkit.commands._base import FrozenModel
from wfkit.errors import InputError


class StepSummary(FrozenModel):
    """A step id's last execution, and how many it had."""

    id: str
    type: str
    status: str
    attempts: int
    executions: int
    duration_ms: float
    #: an injected fault (--inject) hit one of its attempts (shown only then: the spec's shape)
    injected: bool = Field(default=False, exclude_if=lambda value: not value)
    #: parallel_foreach: its items by status, e.g. {"succeeded": 43, "failed": 7}
    items: dict[str, int] | None = Field(default=None, exclude_if=lambda v: v is None)
    #: a step run more than once (in a loop, per parallel item): its executions by status,
    #: e.g. {"succeeded": 3, "failed": 2}; ``status`` is the last execution's
    statuses: dict[str, int] | None = Field(default=None, exclude_if=lambda v: v is None)

    @property
    def outcome(self) -> str:
        """The step's status whatever order its executions finished in: the worst of them
        (failed, timed out, cancelled, waiting, running, succeeded, skipped)."""
        if not self.statuses:
            return self.status
        return min(self.statuses, key=_severity)

    @property
    def status_text(self) -> str:
        """``succeeded``, or ``3 succeeded / 2 failed`` for several executions."""
        if not self.statuses or len(self.statuses) == 1:
            return self.status if not self.statuses else next(iter(self.statuses))
        ordered = sorted(self.statuses, key=_severity, reverse=True)
        return " / ".join(f"{self.statuses[s]} {s}" for s in ordered)


_SEVERITY = ("failed", "timed_out", "cancelled", "waiting", "running", "succeeded", "skipped")
_SHOWN = ("succeeded", "failed", "timed_out", "cancelled", "skipped", "waiting", "running")


def ordered_statuses(statuses: dict[str, int]) -> dict[str, int]:
    """``statuses`` in one fixed order, whatever order the executions finished in."""
    rank = {s: i for i, s in enumerate(_SHOWN)}
    return dict(sorted(statuses.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def _severity(status: str) -> int:
    return _SEVERITY.index(status) if status in _SEVERITY else len(_SEVERITY)


class ErrorEntry(FrozenModel):
    """One failed attempt (the seed's ``WorkflowError``)."""

    step_id: str
    error_type: str
    message: str
    stack_trace: str | None
    timestamp: str
    retry_count: int
    recovered: bool
    details: dict[str, Any] = {}


class MessageEntry(FrozenModel):
    """A ``user_message`` or a warning, in order."""

    step_id: str | None
    level: str
    text: str


class RunState(FrozenModel):
    inputs: dict[str, Any]
    raw: dict[str, Any]
    computed: dict[str, Any]


RUN_STATUSES = (
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    "waiting",
    "running",
    "interrupted",
)
"""Every status a run can have (``interrupted``: running, but its process is gone)."""


def check_statuses(statuses: list[str] | None) -> None:
    """Refuse a status filter no run can match (a typo would list nothing, silently)."""
    from wfkit.language.diagnostics import suggest

    for status in statuses or []:
        if status not in RUN_STATUSES:
            raise InputError(
                f"unknown run status {status!r}{suggest(status, RUN_STATUSES)} "
                f"(one of: {', '.join(RUN_STATUSES)})"
            )


class RunReport(FrozenModel):
    """The outcome of ``wfkit run`` (SPEC section 6)."""

    run_id: str
    workflow: str
    file: str
    status: str
    state: RunState
    steps: list[StepSummary]
    errors: list[ErrorEntry]
    warnings: list[str]
    messages: list[MessageEntry]
    error: dict[str, Any] | None
    duration_ms: float
    store: str
    errors_dropped: int = 0
    """Failed attempts beyond ``config.max_error_records`` (the first ones are kept)."""
    outputs: dict[str, Any] | None = None
    """The workflow's ``outputs:`` over its final state, when it has some and succeeded."""

    @property
    def ok(self) -> bool:
        """True when the run succeeded."""
        return self.status == "succeeded"


class RunSummary(FrozenModel):
    """One line of ``wfkit runs``."""

    run_id: str
    workflow: str
    status: str
    started_at: str
    duration_ms: float | None
    parent_run_id: str | None = None  # the run whose ``workflow`` step started it


class RunList(FrozenModel):
    """Recorded runs, newest first (``workflow_list_runs``)."""

    runs: list[RunSummary]
