"""``run`` and ``runs``: execute a workflow file and list recorded runs."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from wfkit.commands._io import read_mapping
from wfkit.commands.results import (
    ErrorEntry,
    MessageEntry,
    RunReport,
    RunState,
    RunSummary,
    StepSummary,
    check_statuses,
)
from wfkit.engine.events import ErrorRecord, Event
from wfkit.engine.inject import Fault
from wfkit.engine.runtime import Ask, Run, RunOptions, RunOutcome
from wfkit.engine.tools import NoTools, ToolProvider
from wfkit.language import compile_cache
from wfkit.language.loader import LoadedWorkflow, load_file
from wfkit.store import local_dir, open_store, store_spec
from wfkit.store.base import Store
from wfkit.store.sqlite import new_run_id

if TYPE_CHECKING:
    from wfkit.executors import ExecutorChoice

T = TypeVar("T")


def iso(timestamp: float) -> str:
    """A UNIX time as ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


async def run_workflow_async(
    file: str | Path,
    inputs: dict[str, Any] | None = None,
    *,
    inputs_file: str | Path | None = None,
    answers: dict[str, Any] | None = None,
    trace: bool = False,
    answers_file: str | Path | None = None,
    store: str | Path | None = None,
    tools: ToolProvider | None = None,
    ask: Ask | None = None,
    on_event: Callable[[Event], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    clock: Callable[[], float] | None = None,
    seed: str | None = None,
    shell: Callable[[str | list[str]], dict[str, Any] | None] | None = None,
    initial_state: dict[str, Any] | None = None,
    pause_for_input: bool = False,
    loaded: LoadedWorkflow | None = None,
    stored_breakers: bool = True,
    faults: list[Fault] | None = None,
    inject_seed: str | None = None,
    executor: str | None = None,
    scheduler: str | None = None,
    open_run_store: Store | None = None,
) -> RunReport:
    """Load, check inputs, run and record a workflow; raise LoadError/InputError up front.

    ``executor`` (``local``/``dask``) and ``scheduler`` say where parallel items run (see
    :func:`wfkit.executors.choose`); a run given mocks (``shell``, ``tools``, ``sleep``,
    ``clock``) runs its items in-process unless ``executor`` asks otherwise.

    ``sleep`` and ``clock`` replace the real ones (tests skip waits with them); ``seed`` fixes
    retry jitter; ``loaded`` is ``file`` loaded already (a test suite loads it once);
    without ``stored_breakers`` the circuit breakers start closed (test cases are isolated);
    ``open_run_store`` is ``store`` open already, left open after the run (a test suite records
    all its cases through one connection).
    """
    if loaded is None:
        loaded = load_file(file, compile_cache_dir(store))
    given = read_mapping(inputs_file, "inputs") if inputs_file else {}
    given.update(inputs or {})
    resolved = loaded.main.state.resolve_inputs(given)
    all_answers = merged_answers(answers, answers_file)
    mocked = any(x is not None for x in (shell, tools, sleep, clock))
    choice = executor_choice(loaded, executor, scheduler, in_process=mocked)
    recording = (
        open_store(store) if open_run_store is None else contextlib.nullcontext(open_run_store)
    )
    with recording as run_store:
        options = run_options(
            run_store,
            loaded,
            all_answers,
            tools=tools,
            ask=ask,
            on_event=on_event,
            sleep=sleep,
            clock=clock,
            seed=seed,
            trace=trace,
            shell=shell,
            initial_raw=dict((initial_state or {}).get("raw", initial_state or {})),
            pause_for_input=pause_for_input,
            stored_breakers=stored_breakers,
            faults=list(faults or []),
            inject_seed=inject_seed,
        )
        run = Run(loaded, new_run_id(), resolved, options)
        outcome = await execute_recorded(run, run_store, choice)
        return report(outcome, loaded.file, run_store.location)


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
    from wfkit.commands.manage import apply_retention, execute_watched, retention_policy
    from wfkit.errors import StoreError
    from wfkit.executors import ExecutorChoice, open_executor

    try:  # a bad WFKIT_RETENTION is a usage error before anything runs
        policy = retention_policy(run.loaded.workflow.config.retention)
    except ValueError as exc:
        raise StoreError(f"WFKIT_RETENTION: {exc}") from None
    async with open_executor(executor or ExecutorChoice()) as items:
        run.options.executor = items
        outcome = await execute_watched(run, run_store)
    if policy is not None:
        apply_retention(run_store, policy)
    return outcome


def compile_cache_dir(store: str | Path | None) -> Path | None:
    """The compile cache of a store, unless ``WFKIT_COMPILE_CACHE=0``.

    ``cache/`` in the store's folder (``.wfkit/cache/``); for a database file given by
    another name, ``NAME.cache/`` beside it, so no folder is claimed that the user did not
    give wfkit; for a store on a server, ``.wfkit/cache/`` of the working directory.
    """
    if not compile_cache.enabled():
        return None
    database = store_spec(store)
    if isinstance(database, str):  # a server: this machine's cache goes to .wfkit/cache/
        return local_dir(database) / "cache"
    if database.name == "runs.db":
        return database.parent / "cache"
    return database.with_name(database.name + ".cache")


def existing_compile_cache_dir(store: str | Path | None) -> Path | None:
    """The compile cache of a store whose folder exists: for commands that must not create
    a store (``explain``) but may read and fill the cache of one that is there."""
    cache = compile_cache_dir(store)
    return cache if cache is not None and cache.parent.is_dir() else None


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
    from wfkit.mcp_tools import McpTools

    return McpTools(loaded.workflow.mcp_servers, Path(loaded.source_path).parent)


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
    **more: Any,
) -> RunOptions:
    """The engine options of a run recorded in ``run_store`` (its breakers' stored state
    included); ``sleep`` and ``clock`` replace the real ones when given."""
    sinks: list[Callable[[Event], None]] = [run_store]
    if on_event is not None:
        sinks.append(on_event)
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


def run_workflow(file: str | Path, inputs: dict[str, Any] | None = None, **kw: Any) -> RunReport:
    """Synchronous :func:`run_workflow_async`; Ctrl-C and SIGTERM end the run as cancelled."""
    return until_signalled(lambda: run_workflow_async(file, inputs, **kw))


def until_signalled(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` in a new event loop, where SIGINT and SIGTERM cancel it (a run then ends
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
    """Turn SIGINT/SIGTERM into cancellation of the current task (main thread only)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, task.cancel if task else lambda: None)
            installed.append(sig)
        except (RuntimeError, ValueError, NotImplementedError):
            pass  # not the main thread: the caller handles signals
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


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


def list_runs(
    store: str | Path | None = None,
    limit: int = 100,
    *,
    statuses: list[str] | None = None,
    workflow: str | None = None,
    since: str | None = None,
    read_only: bool = False,
) -> list[RunSummary]:
    """Recorded runs, newest first (``interrupted``: running, but its process is gone).

    Filters: statuses (``interrupted`` included), workflow name, started within ``since``
    (a duration: 2h, 7d). No store means no runs: none is created.
    """
    from wfkit.commands.resume import effective_status
    from wfkit.language.durations import parse_duration

    check_statuses(statuses)
    after = time.time() - parse_duration(since) if since else None
    stored = list(statuses or [])
    if "interrupted" in stored:  # stored as running; told apart by its process
        stored.append("running")
    with open_store(store, create=False, read_only=read_only) as run_store:
        rows = run_store.list_runs(
            -1 if statuses else limit, statuses=stored or None, workflow=workflow, since=after
        )
        summaries = [
            RunSummary(
                run_id=r.run_id,
                workflow=r.workflow,
                status=effective_status(r),
                started_at=iso(r.started_at),
                duration_ms=r.duration_ms,
            )
            for r in rows
        ]
    if statuses:
        summaries = [s for s in summaries if s.status in statuses]
    return summaries[:limit]
