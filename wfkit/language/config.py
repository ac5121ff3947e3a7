"""The ``config:`` section of a workflow file, and the base of every file model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wfkit.language.durations import parse_duration


# defer_build: every model's validator is built on first use, once, instead of at import.
# Built eagerly, each class of the recursive step union (`cleanup`, `then`, `body` hold
# `list[Step]`) regenerated the whole union's schema, and the model_rebuild() loop did it
# again per class: ~160 ms before a command could start. Loading now builds `Workflow`'s
# validator once (~40 ms), and commands that load no workflow build none.
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class CircuitBreakerSpec(_Model):
    failure_threshold: int = Field(5, ge=1)
    reset_timeout: float = Field(30.0, gt=0)


class TraceConfig(_Model):
    """How much a traced run keeps."""

    enabled: bool = True
    max_records: int = Field(10_000, ge=1, le=10_000_000)
    sample_rate: float = Field(1.0, gt=0, le=1)


class Retention(_Model):
    """Which finished runs ``wfkit run`` prunes from the store after each run."""

    older_than: str | None = None  # a duration: 30d, 12h, 90m
    keep: int | None = Field(None, ge=0)

    @field_validator("older_than")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss")


def check_scheduler(address: str) -> str:
    """A Dask scheduler address (``tcp://host:port``), or ValueError saying what is wrong."""
    from urllib.parse import urlsplit

    expected = f"expected tcp://host:port, got {address!r}"
    parts = urlsplit(address)
    if parts.scheme not in SCHEDULER_SCHEMES or not parts.hostname:
        raise ValueError(expected)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(expected) from None
    if port is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(expected)
    return address


class ExecutorConfig(_Model):
    """Where ``parallel_foreach`` items run: in the run's process, or on a Dask cluster."""

    kind: Literal["local", "dask"] = "local"
    #: a running scheduler; none (with ``kind: dask``) starts a local cluster for the run
    scheduler: str | None = None

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        return check_scheduler(value) if value is not None else None


class AgentConfig(_Model):
    """Who performs ``agent_task`` steps when the run names no one (``--agent-command`` and
    ``WFKIT_AGENT_COMMAND`` win)."""

    #: started once per attempt: one JSON request on its stdin, the response on its stdout
    command: str | list[str] = Field(min_length=1)


class Config(_Model):
    timeout: float | None = Field(None, gt=0)
    trace: bool | TraceConfig = False
    max_state_bytes: int = Field(10_000_000, gt=0)
    state_warn_bytes: int = Field(1_000_000, gt=0)
    max_memory_mb: int | None = Field(None, gt=0)
    max_error_records: int = Field(1000, ge=1)
    max_output_bytes: int = Field(65_536, ge=1)
    #: how deep ``workflow`` steps may call (this file is depth 1)
    max_workflow_depth: int = Field(16, ge=1, le=64)
    retention: str | Retention | None = None  # a duration (older_than), or the mapping

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str | Retention | None) -> str | Retention | None:
        if isinstance(value, str):
            parse_duration(value)
        return value

    circuit_breakers: dict[str, CircuitBreakerSpec] = Field(default_factory=dict)
    executor: ExecutorConfig | None = None
    agent: AgentConfig | None = None
