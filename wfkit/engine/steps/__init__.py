"""Step types: one module per step type, each registering its handler in
:mod:`wfkit.engine.steps.registry`; importing this package registers them all."""

from __future__ import annotations

from wfkit.engine.steps import (
    agent,
    branches,
    control,
    interaction,
    parallel,
    shell,
    state_update,
    tool,
    workflow,
)
from wfkit.engine.steps.registry import HANDLERS, Handler, LoopSignal, handles

__all__ = [
    "HANDLERS",
    "Handler",
    "LoopSignal",
    "agent",
    "branches",
    "control",
    "handles",
    "interaction",
    "parallel",
    "shell",
    "state_update",
    "tool",
    "workflow",
]
