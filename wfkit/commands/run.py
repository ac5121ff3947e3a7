"""``run`` and ``runs``: execute a workflow file and list recorded runs."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from wfkit.commands._io import read_mapping
from wfkit.commands._runs import (
    execute_recorded,
    executor_choice,
    iso,
    merged_answers,
    report,
    run_options,
    until_signalled,
)
from wfkit.commands.results import (
    RunReport,
    RunSummary,
    check_statuses,
)
from wfkit.engine.agents import AgentPerformer
from wfkit.engine.context import Ask, ChildCall, ChildEnded, ChildRunner, Elicit
from wfkit.engine.events import Event
from wfkit.engine.inject import Fault
from wfkit.engine.runtime import Run
from wfkit.engine.tools import ToolProvider
from wfkit.errors import ResumeError, RunNotFoundError
from wfkit.language import compile_cache
from wfkit.language.loader import LoadedWorkflow, load_file
from wfkit.store import local_dir, open_store, store_spec
from wfkit.store.base import Store
from wfkit.store.sqlite import new_run_id


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
    agent_command: str | None = None,
    agent: AgentPerformer | None = None,
    elicit: Elicit | None = None,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    inherited_secrets: dict[str, str] | None = None,
    wrap_children: Callable[[ChildRunner], ChildRunner] | None = None,
    note: str | None = None,
) -> RunReport:
    """Load, check inputs, run and record a workflow; raise LoadError/InputError up front.

    ``executor`` (``local``/``dask``) and ``scheduler`` say where parallel items run (see
    :func:`wfkit.executors.choose`); a run given mocks (``shell``, ``tools``, ``sleep``,
    ``clock``) runs its items in-process unless ``executor`` asks otherwise.

    ``sleep`` and ``clock`` replace the real ones (tests skip waits with them); ``seed`` fixes
    retry jitter; ``loaded`` is ``file`` loaded already (a test suite loads it once);
    without ``stored_breakers`` the circuit breakers start closed (test cases are isolated);
    ``open_run_store`` is ``store`` open already, left open after the run (a test suite records
    all its cases through one connection); ``wrap_children`` wraps the runner of ``workflow``
    steps' children (a suite's mocks answer some of them); ``note`` is recorded as the run's
    first message.
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
    children = child_runner(
        store,
        agent_command=agent_command,
        agent=agent,
        elicit=elicit,
        answers=answers,
        answers_file=answers_file,
        ask=ask,
        shell=shell,
        sleep=sleep,
        clock=clock,
        pause_for_input=pause_for_input,
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
            agent_command=agent_command,
            agent=agent,
            elicit=elicit,
            children=children if wrap_children is None else wrap_children(children),
            parent_run_id=parent_run_id,
            inherited_secrets=dict(inherited_secrets or {}),
        )
        run = Run(loaded, run_id or new_run_id(), resolved, options)
        if note is not None:  # what this run is (a replay of another): its first message
            run.message("info", note)
        outcome = await execute_recorded(run, run_store, choice)
        return report(outcome, loaded.file, run_store.location)


def child_runner(
    store: str | Path | None,
    resume_child: Callable[[str], Awaitable[RunReport]] | None = None,
    **shared: Any,
) -> ChildRunner:
    """Runs a ``workflow`` step's child in ``store`` (a connection of its own), linked to
    its parent, with the parent's performers (``shared``).

    In a resumed caller, a step re-entered with the child run it had started continues that
    run through ``resume_child`` when it can be resumed (failed, cancelled, interrupted,
    waiting); otherwise (it succeeded, was never recorded, or its file changed under it) a
    new child run starts."""

    async def run_child(
        loaded: LoadedWorkflow,
        inputs: dict[str, Any],
        parent: str,
        secrets: dict[str, str],
        call: ChildCall,
    ) -> Any:
        if call.earlier is not None and resume_child is not None:
            with contextlib.suppress(ResumeError, RunNotFoundError):
                resumed = await resume_child(call.earlier)
                return ChildEnded(resumed.run_id, resumed.status, resumed.error, resumed.outputs)
        child_id = new_run_id()
        call.started(child_id)
        report = await run_workflow_async(
            loaded.file,
            inputs,
            loaded=loaded,
            store=store,
            run_id=child_id,
            parent_run_id=parent,
            inherited_secrets=secrets,
            **shared,
        )
        return ChildEnded(report.run_id, report.status, report.error, report.outputs)

    return run_child


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


def run_workflow(file: str | Path, inputs: dict[str, Any] | None = None, **kw: Any) -> RunReport:
    """Synchronous :func:`run_workflow_async`; Ctrl-C and SIGTERM end the run as cancelled."""
    return until_signalled(lambda: run_workflow_async(file, inputs, **kw))


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
    from wfkit.commands._runs import effective_status
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
                parent_run_id=r.parent,
            )
            for r in rows
        ]
    if statuses:
        summaries = [s for s in summaries if s.status in statuses]
    return summaries[:limit]
