"""What `run`, `resume` and the run-management commands share: a run's engine options,
executing it while watching the store for a cancel request, its report, the status of its
process, the retention policy applied after it."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from wfkit.commands._io import agent_command, read_mapping
from wfkit.commands.results import (
    ErrorEntry,
    MessageEntry,
    RunReport,
    RunState,
    StepSummary,
    ordered_statuses,
)
from wfkit.engine.agents import AgentPerformer
from wfkit.engine.context import Ask, RunOptions
from wfkit.engine.events import BreakerChanged, ErrorRecord, Event
from wfkit.engine.interrupts import SIGNALS, cancel_on
from wfkit.engine.runtime import Run, RunOutcome
from wfkit.engine.tools import NoTools, ToolProvider
from wfkit.errors import StoreError
from wfkit.language.durations import parse_duration
from wfkit.language.loader import LoadedWorkflow
from wfkit.language.models import Retention
from wfkit.store.base import RunRow, Store
from wfkit.store.leases import lost_lease
from wfkit.store.pending import own_identity, process_identity
from wfkit.store.retention import PrunePolicy, delete_runs, select_runs

if TYPE_CHECKING:
    from wfkit.executors import ExecutorChoice


T = TypeVar("T")


def iso(timestamp: float) -> str:
    """A UNIX time as ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def executor_choice(
    loaded: LoadedWorkflow,
    executor: str | None,
    scheduler: str | None,
    in_process: bool = False,
) -> ExecutorChoice:
    """Where the run's parallel items run: the options, else ``WFKIT_DASK_SCHEDULER``, else
    the workflow's ``config.executor`` (``in_process``: only the options count)."""
    from wfkit.executors import ExecutorChoice, choose

    if in_process and executor is None and scheduler is None:
        return ExecutorChoice()
    return choose(executor, scheduler, loaded.workflow.config.executor)


async def execute_recorded(
    run: Run, run_store: Store, executor: ExecutorChoice | None = None
) -> RunOutcome:
    """Execute a run, cancellable through the store, on its executor (local by default),
    then apply the store's retention."""
    from wfkit.errors import StoreError
    from wfkit.executors import ExecutorChoice, open_executor

    try:  # a bad WFKIT_RETENTION is a usage error before anything runs
        policy = retention_policy(run.loaded.workflow.config.retention)
    except ValueError as exc:
        raise StoreError(f"WFKIT_RETENTION: {exc}") from None
    run_store.keep_source(run.loaded.digest, run.loaded.text)
    async with open_executor(executor or ExecutorChoice()) as items:
        run.options.executor = items
        outcome = await execute_watched(run, run_store)
    if policy is not None and run.options.parent_run_id is None:  # a child's parent runs on
        apply_retention(run_store, policy)
    return outcome


def merged_answers(
    answers: dict[str, Any] | None, answers_file: str | Path | None
) -> dict[str, Any]:
    """Answers from ``--answers FILE``, overridden by ``answers``."""
    merged = read_mapping(answers_file, "answers") if answers_file else {}
    merged.update(answers or {})
    return merged


def default_tools(loaded: LoadedWorkflow) -> ToolProvider:
    """The workflow's MCP servers (started on first use), or no tools."""
    if not loaded.workflow.mcp_servers:
        return NoTools()
    from wfkit.mcp_client.tools import McpTools

    return McpTools(loaded.workflow.mcp_servers, Path(loaded.source_path).parent)


def default_agent(loaded: LoadedWorkflow, command: str | None = None) -> AgentPerformer:
    """The performer of agent steps: the command :func:`agent_command` names, or none."""
    from wfkit.engine.agents import CommandAgent, NoAgent

    found = agent_command(loaded.workflow, command)
    return CommandAgent(found) if found is not None else NoAgent()


def run_options(
    run_store: Store,
    loaded: LoadedWorkflow,
    answers: dict[str, Any],
    *,
    tools: ToolProvider | None,
    ask: Ask | None,
    on_event: Callable[[Event], None] | None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    clock: Callable[[], float] | None = None,
    stored_breakers: bool = True,
    agent_command: str | None = None,
    **more: Any,
) -> RunOptions:
    """The engine options of a run recorded in ``run_store`` (its breakers' stored state
    included; without ``stored_breakers`` they start closed and their changes are not
    stored); ``sleep`` and ``clock`` replace the real ones when given."""
    sinks: list[Callable[[Event], None]] = [
        run_store if stored_breakers else _no_breakers(run_store)
    ]
    if on_event is not None:
        sinks.append(on_event)
    from wfkit.commands._secrets import read_env_file, read_secrets

    more.setdefault("secrets", read_secrets(loaded))
    more.setdefault("env_file", read_env_file(loaded))
    if more.get("agent") is None:
        more["agent"] = default_agent(loaded, agent_command)
    options = RunOptions(
        answers=answers,
        ask=ask,
        tools=tools or default_tools(loaded),
        sinks=sinks,
        breaker_state=run_store.breakers(loaded.name) if stored_breakers else {},
        **more,
    )
    if sleep is not None:
        options.sleep = sleep
    if clock is not None:
        options.clock = clock
    return options


def _no_breakers(run_store: Store) -> Callable[[Event], None]:
    """The store as a sink that leaves the shared breaker state alone (a test case, a
    replay: their breakers are their own)."""

    def sink(event: Event) -> None:
        if not isinstance(event, BreakerChanged):
            run_store(event)

    return sink


def until_signalled(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` in a new event loop, where SIGINT, SIGTERM and SIGHUP cancel it (a run then ends
    as ``cancelled`` after its ``finally`` steps, instead of dying mid-step)."""

    async def main() -> T:
        with _cancel_on_signals():
            return await work()

    return run_to_end(main())


def run_to_end(work: Awaitable[T], runner: asyncio.Runner | None = None) -> T:
    """``asyncio.run(work)`` (or on ``runner``), with the result kept out of the main task.

    An asyncio runner ends by asking ``signal.getsignal`` whether its SIGINT handler is still
    installed; that call tries the handler (a partial holding the main task) as a
    ``signal.Handlers`` value, and the enum's error message formats its ``repr``, which
    includes ``repr`` of the task's result. For a run report that is every step's summary
    (~7 µs a step, 14 ms for 2,000 steps). The main task here returns None instead.
    """
    box: list[T] = []

    async def main() -> None:
        box.append(await work)

    if runner is None:
        asyncio.run(main())
    else:
        runner.run(main(), context=contextvars.copy_context())
    return box[0]


@contextlib.contextmanager
def _cancel_on_signals() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP (the terminal closed) into cancellation of the current
    task (main thread only). The handlers are Python signal handlers, not the loop's: they run
    even while an expression keeps the loop busy, and stop that evaluation at once."""
    loop = asyncio.get_running_loop()
    handler = cancel_on(loop, asyncio.current_task())
    previous = {}
    for sig in SIGNALS:
        with contextlib.suppress(ValueError):  # not the main thread: the caller handles them
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def report(outcome: RunOutcome, file: str, store: str) -> RunReport:
    """A :class:`RunReport` from the engine's outcome."""
    return RunReport(
        run_id=outcome.run_id,
        workflow=outcome.workflow,
        file=file,
        status=outcome.status,
        state=RunState(**outcome.state),
        steps=[
            StepSummary(
                id=s.id,
                type=s.type,
                status=s.status,
                attempts=s.attempts,
                executions=s.executions,
                duration_ms=round(s.duration_ms, 3),
                injected=s.injected,
                items=s.items,
                statuses=ordered_statuses(s.statuses) if sum(s.statuses.values()) > 1 else None,
            )
            for s in outcome.steps
        ],
        errors=report_errors(outcome.errors),
        warnings=outcome.warnings,
        messages=[
            MessageEntry(step_id=m.step_id, level=m.level, text=m.text) for m in outcome.messages
        ],
        error=outcome.error,
        errors_dropped=outcome.errors_dropped,
        outputs=outcome.outputs,
        duration_ms=round(outcome.duration_ms, 3),
        store=store,
    )


def report_errors(errors: list[ErrorRecord]) -> list[ErrorEntry]:
    """Error history entries as reported."""
    return [
        ErrorEntry(
            step_id=e.step_id,
            error_type=e.error_type,
            message=e.message,
            stack_trace=e.stack_trace,
            timestamp=iso(e.timestamp),
            retry_count=e.retry_count,
            recovered=e.recovered,
            details=e.details,
        )
        for e in errors
    ]


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists (on this machine)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_process_alive(row: RunRow) -> bool | None:
    """Whether the process that runs ``row`` is alive: True, False, or None when it cannot be
    told (it ran on another machine). A pid alone is not trusted: the identity recorded with it
    (host, boot, start time) must match, so a reused pid is not mistaken for the run."""
    if row.process is None:  # a run recorded before identities were
        return pid_alive(row.pid)
    if row.process.split("/", 1)[0] != socket.gethostname():
        return None
    return row.pid is not None and process_identity(row.pid) == row.process


def this_process(row: RunRow) -> bool:
    """Whether this process runs ``row``: its pid, and its identity when recorded (pids
    repeat across machines and containers)."""
    return row.pid == os.getpid() and (not row.process or row.process == own_identity())


def effective_status(row: RunRow) -> str:
    """A run's status, with ``interrupted`` for a ``running`` run whose process is gone: on
    this machine as soon as it is (its process identity), on any machine once its lease ran
    out (the process stopped renewing it)."""
    if row.status != "running" or this_process(row):
        return row.status
    if run_process_alive(row) is False:
        return "interrupted"
    if row.lease_left is not None and row.lease_left < 0:
        return "interrupted"
    return row.status


WATCH_SECONDS = 0.25
"""How often a running process looks for a cancel request (and flushes quiet output)."""


async def execute_watched(run: Run, run_store: Store, poll: float = WATCH_SECONDS) -> RunOutcome:
    """Execute the run while watching the store for a cancel request and renewing the run's
    lease (a quiet run gives a server's connection back between its polls); a run whose
    lease another process took (it ran out, and the run was resumed or
    cancelled elsewhere) is stopped, and :class:`LeaseLostError` says so."""
    engine = asyncio.ensure_future(run.execute())
    renew_every = run_store.lease / 3
    failed: list[StoreError] = []  # the store failed the watcher: the run stops, saying so

    # a quiet run (it only waits) gives a server's connection back, and asks at that pace
    slow = min(max(poll, run_store.idle_release or 0.0), renew_every)  # renewals stay due

    async def watch() -> None:
        loop = asyncio.get_running_loop()
        renewed = polled = loop.time()
        while not engine.done():
            await asyncio.sleep(poll)
            try:
                run_store.flush_if_due()
                quiet = run_store.quiet()
                if quiet and loop.time() - polled < slow:
                    continue
                polled = loop.time()
                if loop.time() - renewed >= renew_every:
                    renewed = loop.time()
                    run_store.renew_lease(run.run_id)
                if run_store.fenced(run.run_id):
                    raise lost_lease(run.run_id, run_store.lease)
                if run_store.cancel_requested(run.run_id):
                    engine.cancel()
                    return
                if quiet:
                    run_store.release()
            except StoreError as exc:
                failed.append(exc)
                engine.cancel()
                return

    watcher = asyncio.ensure_future(watch())
    try:
        outcome = await engine
    finally:
        watcher.cancel()
        await asyncio.wait({watcher})  # ended, its outcome kept in ``failed``
    if failed:
        raise failed[0]
    if run_store.fenced(run.run_id):
        raise lost_lease(run.run_id, run_store.lease)
    return outcome


def retention_policy(config: str | Retention | None) -> PrunePolicy | None:
    """``WFKIT_RETENTION`` (it wins), else the workflow's ``config.retention``."""
    env = os.environ.get("WFKIT_RETENTION")
    if env:
        return PrunePolicy.parse(env)
    if isinstance(config, str):
        return PrunePolicy(parse_duration(config))
    if isinstance(config, Retention):
        older = parse_duration(config.older_than) if config.older_than else None
        return PrunePolicy(older, config.keep)
    return None


def apply_retention(run_store: Store, policy: PrunePolicy) -> int:
    """Prune what the retention policy says after a run; the number of runs deleted.

    No VACUUM here (it rewrites the whole file): SQLite reuses the freed pages, and
    ``wfkit prune`` shrinks the file when asked.
    """

    chosen = [r.run_id for r in select_runs(run_store, policy, effective_status)]
    if chosen:
        delete_runs(run_store, chosen, vacuum=False)
    return len(chosen)
