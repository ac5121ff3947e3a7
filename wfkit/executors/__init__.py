"""Executors: where ``parallel_foreach`` items run (the engine's :class:`ItemExecutor`).

``local`` (:mod:`wfkit.executors.local`) runs them in the run's process, the default;
``dask`` (:mod:`wfkit.executors.dask`) runs each on a Dask distributed cluster. This module
decides which from the command line, the environment and the workflow's ``config.executor``,
and opens it for one run; it imports ``distributed`` only when Dask is chosen.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from wfkit.engine.items import ItemExecutor
from wfkit.errors import ExecutorError
from wfkit.language.models import ExecutorConfig, check_scheduler

KINDS = ("local", "dask")
SCHEDULER_ENV = "WFKIT_DASK_SCHEDULER"


@dataclass(frozen=True)
class ExecutorChoice:
    """The executor a run uses: its kind and, for Dask, the scheduler (None: a local
    cluster started for the run)."""

    kind: str = "local"
    scheduler: str | None = None


def choose(
    kind: str | None = None,
    scheduler: str | None = None,
    config: ExecutorConfig | None = None,
) -> ExecutorChoice:
    """The executor from ``--executor``/``--scheduler``, then ``WFKIT_DASK_SCHEDULER``, then
    the workflow's ``config.executor``; ExecutorError for a value that cannot be used."""
    if kind is not None and kind not in KINDS:
        raise ExecutorError(f"--executor {kind!r}: expected one of {', '.join(KINDS)}")
    if scheduler is not None:
        _checked(scheduler, "--scheduler")
        if kind == "local":
            raise ExecutorError("--scheduler needs --executor dask")
        return ExecutorChoice("dask", scheduler)
    env = os.environ.get(SCHEDULER_ENV) or None
    if kind == "local":
        return ExecutorChoice()
    if env is not None:
        return ExecutorChoice("dask", _checked(env, SCHEDULER_ENV))
    if kind == "dask":
        return ExecutorChoice("dask", config.scheduler if config is not None else None)
    if config is not None and config.kind == "dask":
        return ExecutorChoice("dask", config.scheduler)
    return ExecutorChoice()


def _checked(address: str, where: str) -> str:
    try:
        return check_scheduler(address)
    except ValueError as exc:
        raise ExecutorError(f"{where}: {exc}") from None


@contextlib.asynccontextmanager
async def open_executor(choice: ExecutorChoice) -> AsyncIterator[ItemExecutor]:
    """The chosen executor, ready for a run (a Dask cluster reached, or started)."""
    if choice.kind == "local":
        from wfkit.executors.local import LocalExecutor

        yield LocalExecutor()
        return
    from wfkit.executors.dask import DaskExecutor

    executor = await DaskExecutor.start(choice.scheduler)
    try:
        yield executor
    finally:
        await executor.aclose()
