"""``wfkit test``: run ``*.wftest.yaml`` suites with mocked tools, shell and answers.

Each case runs in isolation (its own store) in virtual time: waits and retry delays take no
real time, while attempts, order and the delays recorded stay as in a real run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wfkit.commands._runs import run_to_end
from wfkit.commands.results import ErrorEntry, RunReport
from wfkit.commands.run import run_workflow_async
from wfkit.commands.suite.expect import check
from wfkit.commands.suite.mocks import (
    MockAgents,
    MockChildren,
    MockShell,
    MockTools,
    VirtualClock,
)
from wfkit.commands.suite.models import (
    Case,
    CaseResult,
    Suite,
    TestReport,
    discover,
    load_suite,
)
from wfkit.commands.suite.reports import measure_coverage
from wfkit.engine.events import Event, StepFinished
from wfkit.engine.inject import parse_fault
from wfkit.errors import (
    InputError,
    LoadError,
    NoTestsFoundError,
    WfkitError,
)
from wfkit.language.loader import LoadedWorkflow, load_file
from wfkit.store import local_dir, open_store, store_spec

if TYPE_CHECKING:
    from concurrent.futures import Future

    from wfkit.store.base import Store


# --- running ---------------------------------------------------------------------------


_LOADED: dict[tuple[str, int, int], LoadedWorkflow] = {}


def suite_workflow(path: Path) -> LoadedWorkflow:
    """``path`` loaded once for all the cases that run it (again if the file changes).

    Runs never change a loaded workflow, so cases share it; each still gets its own store.
    """
    try:
        info = path.stat()
    except OSError:
        return load_file(path)  # the loader says what is wrong with it
    key = (str(path), info.st_mtime_ns, info.st_size)
    if key not in _LOADED:
        if len(_LOADED) >= 32:
            _LOADED.clear()
        _LOADED[key] = load_file(path)
    return _LOADED[key]


#: runs of test cases kept in the test store (the oldest beyond are pruned after a suite run)
TEST_RUNS_KEPT = 500


def case_store_path(store: str | Path | None = None) -> Path:
    """The store test cases record their runs in: ``tests/`` beside the run store (a file on
    this machine, also when the run store is a server)."""
    return local_dir(store) / "tests" / "runs.db"


class CaseSession:
    """What a suite's cases run in turn share: the test store, opened at the first case, and
    one event loop (opening the store and a loop per case cost more than a small case's run).
    A store that cannot be opened fails each case, saying why."""

    def __init__(self, store: Path) -> None:
        self._path = store
        self._store: Store | None = None
        self._runner = asyncio.Runner()

    @property
    def store(self) -> Store:
        """The test store, opened on first use (:class:`StoreError` when it cannot be)."""
        if self._store is None:
            self._store = open_store(self._path)
        return self._store

    def run(self, running: Coroutine[Any, Any, RunReport]) -> RunReport:
        """Run one case's coroutine to its end on the session's loop, in a fresh copy of this
        thread's context (as ``asyncio.run`` gives): no context variable one case sets is
        seen by the next."""
        return run_to_end(running, self._runner)

    def __enter__(self) -> CaseSession:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._runner.close()
        finally:
            if self._store is not None:
                self._store.close()


def _recorded_ids(
    loaded: LoadedWorkflow, steps: list[Any], prefix: str, seen: frozenset[str] = frozenset()
) -> Iterator[tuple[str, Any]]:
    """The ids steps are recorded under, with the step: ``fan/step`` for the steps of a
    fan-out's task or of a ``parallel`` step's branches (a task fanning out over itself is
    followed once: ``seen``)."""
    from wfkit.language.models import ParallelStep

    for step in steps:
        yield prefix + step.step_id, step
        task = getattr(step, "sub_agent_task", None)
        if task in loaded.tasks and task not in seen:
            body = loaded.tasks[task]
            inner = f"{prefix}{step.step_id}/"
            both = [*body.steps, *body.finally_steps]
            yield from _recorded_ids(loaded, both, inner, seen | {task})
        for label, children in step.children():
            branch = isinstance(step, ParallelStep) and label != "cleanup"
            inner = f"{prefix}{step.step_id}/" if branch else prefix
            yield from _recorded_ids(loaded, children, inner, seen)


def _check_expected_steps(loaded: LoadedWorkflow, case: Case, suite_file: Path) -> None:
    """A case expecting a step the workflow does not have is a mistake in the suite: said
    before the case runs, with a did-you-mean, instead of "never ran" after."""
    from wfkit.language.diagnostics import suggest

    recorded = dict(_recorded_ids(loaded, [*loaded.main.steps, *loaded.main.finally_steps], ""))
    known = set(recorded)
    calls = {
        key
        for sid, step in recorded.items()
        if step.step_type == "workflow"
        for key in (sid, step.step_id)
    }
    for step_id in case.mocks.workflows:
        if step_id not in calls:
            raise LoadError(
                f"case {case.name!r} mocks workflow step {step_id!r}, which {loaded.name!r} "
                f"does not have{suggest(step_id, sorted(calls))}",
                file=str(suite_file),
            )
    for step_id in case.expect.steps:
        if step_id not in known:
            raise LoadError(
                f"case {case.name!r} expects step {step_id!r}, which {loaded.name!r} does not"
                f" have{suggest(step_id, sorted(known))}",
                file=str(suite_file),
            )


def first_error(report: RunReport) -> ErrorEntry | None:
    """The error that failed the run (its first unrecovered one), else its first error."""
    unrecovered = [e for e in report.errors if not e.recovered]
    chosen = unrecovered or report.errors
    return chosen[0] if chosen else None


def run_case(
    suite_file: Path,
    suite: Suite,
    case: Case,
    on_event: Callable[[Event], None] | None = None,
    store: str | Path | None = None,
    session: CaseSession | None = None,
) -> CaseResult:
    """Run one case isolated (its own mocks and clock; breakers start closed) and check its
    expectations; the run is kept in the test store (``store``, default
    :func:`case_store_path`) for ``wfkit debug``. A ``session`` (a suite's cases in turn)
    gives the store open already and the event loop to run in."""
    workflow = (suite_file.parent / suite.workflow).resolve()
    clock = VirtualClock()
    tools = MockTools(case.mocks.tools)
    agents = MockAgents(case.mocks.agents, tools.calls)
    shell = MockShell(case.mocks.shell, case.allow_real_shell)
    events: list[dict[str, Any]] = []

    def collect(event: Event) -> None:
        if isinstance(event, StepFinished):
            events.append(
                {
                    "step_id": event.step_id,
                    "status": event.status,
                    "attempts": event.attempts,
                    "outcome": event.outcome,
                    "error_type": event.error_type,
                }
            )
        if on_event is not None:
            on_event(event)

    started = time.perf_counter()
    base = {"file": str(suite_file), "workflow": str(workflow), "name": case.name}
    kept = Path(store) if store is not None else case_store_path()
    try:
        loaded = suite_workflow(workflow)
        _check_expected_steps(loaded, case, suite_file)
        running = run_workflow_async(
            workflow,
            case.inputs,
            answers=case.mocks.answers,
            store=kept,
            tools=tools,
            agent=agents,
            on_event=collect,
            sleep=clock.sleep,
            clock=clock.time,
            shell=shell,
            initial_state=case.state,
            loaded=loaded,
            stored_breakers=False,
            faults=[parse_fault(text) for text in case.mocks.inject],
            inject_seed=case.mocks.inject_seed,
            open_run_store=session.store if session is not None else None,
            wrap_children=lambda real: MockChildren(case.mocks.workflows, tools.calls, real),
        )
        report = session.run(running) if session is not None else run_to_end(running)
    except WfkitError as exc:
        return CaseResult(
            **base,
            status="error",
            error=str(exc),
            invalid=isinstance(exc, LoadError),
            duration_ms=(time.perf_counter() - started) * 1000,
            virtual_seconds=clock.slept,
            events=events,
        )
    failures = check(case.expect, report, tools)
    return CaseResult(
        **base,
        status="failed" if failures else "passed",
        duration_ms=(time.perf_counter() - started) * 1000,
        virtual_seconds=clock.slept,
        failures=failures,
        run_id=report.run_id,
        store=str(store_spec(kept)),
        first_error=first_error(report),
        events=events,
        errors_seen=[(e.step_id, e.error_type, e.recovered) for e in report.errors],
        report=report,
    )


# --- whole suites ----------------------------------------------------------------------


def _prune_test_store(path: Path) -> None:
    """Keep the newest :data:`TEST_RUNS_KEPT` case runs (the test store stays bounded)."""
    from wfkit.commands._runs import apply_retention
    from wfkit.store.retention import PrunePolicy

    with open_store(path, create=False) as run_store:
        if not run_store.missing:
            apply_retention(run_store, PrunePolicy(keep=TEST_RUNS_KEPT))


def _run_slots(
    slots: list[CaseResult | tuple[Path, Suite, Case]], kept: Path, workers: int
) -> Iterator[CaseResult]:
    """Each slot's result in order: run here, or in a pool of ``workers`` processes."""
    jobs = sum(not isinstance(slot, CaseResult) for slot in slots)
    if workers == 1 or jobs < 2:
        with CaseSession(kept) as session:
            for slot in slots:
                yield (
                    slot
                    if isinstance(slot, CaseResult)
                    else run_case(*slot, store=kept, session=session)
                )
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a worker starts clean, whatever threads this process has
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, jobs), mp_context=context) as pool:
        pending: list[CaseResult | Future[CaseResult]] = [
            slot if isinstance(slot, CaseResult) else pool.submit(_case_job, *slot, kept)
            for slot in slots
        ]
        try:
            for index, entry in enumerate(pending):
                yield entry if isinstance(entry, CaseResult) else _collect(entry, slots[index])
        finally:
            pool.shutdown(cancel_futures=True)


def _case_job(path: Path, suite: Suite, case: Case, kept: Path) -> CaseResult:
    """One case in a worker process (a module-level function, so the pool can ship it)."""
    return run_case(path, suite, case, store=kept)


def _collect(future: Future[CaseResult], slot: CaseResult | tuple[Path, Suite, Case]) -> CaseResult:
    """A worker's result. A worker that dies breaks the pool: this case and every case not
    finished by then are reported as errored (the suite ends instead of hanging)."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return future.result()
    except BrokenProcessPool as exc:
        assert not isinstance(slot, CaseResult)
        path, suite, case = slot
        return CaseResult(
            file=str(path),
            workflow=str((path.parent / suite.workflow).resolve()),
            name=case.name,
            status="error",
            error=f"the worker process running this case died ({exc})",
            duration_ms=0.0,
            virtual_seconds=0.0,
        )


def run_tests(
    paths: Sequence[str | Path],
    *,
    coverage: bool = False,
    on_case: Callable[[CaseResult], None] | None = None,
    store: str | Path | None = None,
    workers: int = 1,
) -> TestReport:
    """Discover and run every case of every suite under ``paths``.

    ``workers`` above 1 spreads the cases over that many processes; results come back in
    the order a serial run gives them, so reports, JUnit and coverage are the same.
    """
    if workers < 1:
        raise InputError(f"--workers must be at least 1, not {workers}")
    started = time.perf_counter()
    found = discover(paths)
    if not found:
        raise NoTestsFoundError(
            f"no test suites found in {', '.join(map(str, paths))} (files named *.wftest.yaml)"
        )
    kept = case_store_path(store)
    slots: list[CaseResult | tuple[Path, Suite, Case]] = []
    for path in found:
        try:
            suite = load_suite(path)
        except LoadError as exc:  # reported as one errored case; the other suites still run
            slots.append(
                CaseResult(
                    file=str(path),
                    workflow="",
                    name="(suite)",
                    status="error",
                    error=str(exc),
                    invalid=True,
                    duration_ms=0.0,
                    virtual_seconds=0.0,
                )
            )
            continue
        slots.extend((path, suite, case) for case in suite.cases)
    results: list[CaseResult] = []
    for result in _run_slots(slots, kept, workers):
        results.append(result)
        if on_case is not None:
            on_case(result)
    _prune_test_store(kept)
    covered = measure_coverage(results) if coverage else None
    total = [i for c in covered or [] for i in c.items]
    return TestReport(
        cases=results,
        passed=sum(r.status == "passed" for r in results),
        failed=sum(r.status == "failed" for r in results),
        errors=sum(r.status == "error" for r in results),
        invalid=sum(r.invalid for r in results),
        duration_ms=(time.perf_counter() - started) * 1000,
        coverage=covered,
        coverage_percent=(100.0 * sum(i.covered for i in total) / len(total))
        if total
        else (100.0 if coverage else None),
    )
