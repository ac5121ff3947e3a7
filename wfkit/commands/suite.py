"""``wfkit test``: run ``*.wftest.yaml`` suites with mocked tools, shell and answers.

Each case runs in isolation (its own store) in virtual time: waits and retry delays take no
real time, while attempts, order and the delays recorded stay as in a real run.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from wfkit.commands.results import ErrorEntry, RunReport
from wfkit.commands.run import run_workflow_async
from wfkit.commands.suite_reports import WorkflowCoverage, measure_coverage
from wfkit.core.events import Event, StepFinished
from wfkit.core.inject import parse_fault
from wfkit.core.loader import LoadedWorkflow, load_file, translate_validation_error
from wfkit.core.state import json_type
from wfkit.core.values import child, parse_path
from wfkit.core.yamlsrc import parse, read_source
from wfkit.errors import (
    ERROR_TYPES,
    InputError,
    LoadError,
    NoTestsFoundError,
    StateError,
    StepError,
    ToolError,
    ToolNotFoundError,
    WfkitError,
)
from wfkit.store import local_dir, open_store, store_spec

MATCHERS = ("matches", "contains", "gt", "ge", "lt", "le", "type", "len")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Raises(_Model):
    type: str = "ToolError"
    message: str = "mocked failure"


class ToolReply(_Model):
    """One reply of a mocked tool: a value, or an error."""

    returns: Any = None
    raises: Raises | None = None


class ToolMock(ToolReply):
    """``returns`` / ``raises`` for every call, or ``sequence`` by attempt (the last repeats)."""

    sequence: list[ToolReply] | None = None


class ShellReply(_Model):
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


class ShellMock(ShellReply):
    """Commands containing ``match`` (or matching ``re:<regex>``) get this reply."""

    match: str
    sequence: list[ShellReply] | None = None


class Mocks(_Model):
    tools: dict[str, ToolMock] = Field(default_factory=dict)
    shell: list[ShellMock] = Field(default_factory=list)
    answers: dict[str, Any] = Field(default_factory=dict)
    inject: list[str] = Field(default_factory=list)
    inject_seed: str | None = None

    @field_validator("inject")
    @classmethod
    def _faults(cls, texts: list[str]) -> list[str]:
        for text in texts:  # refused at load, with the suite's line, like any bad field
            try:
                parse_fault(text)
            except InputError as exc:
                raise ValueError(exc.message) from None
        return texts


class StepExpectation(_Model):
    status: str | None = None
    attempts: int | None = None
    executions: int | None = None


class ErrorExpectation(_Model):
    """A recorded error to find: ``error_type`` (or ``type``), ``step_id``, ``message``."""

    type: str | None = Field(default=None, validation_alias=AliasChoices("error_type", "type"))
    step_id: str | None = None
    message: Any = None
    recovered: bool | None = None


class CallExpectation(_Model):
    count: int | None = None
    arguments: list[Any] | None = None


class Expect(_Model):
    status: str | None = None
    state: dict[str, Any] = Field(default_factory=dict)
    steps: dict[str, StepExpectation] = Field(default_factory=dict)
    errors: int | list[ErrorExpectation] | None = None
    calls: dict[str, int | CallExpectation] = Field(default_factory=dict)
    messages: list[Any] | None = None


class Case(_Model):
    name: str
    description: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    state: dict[str, Any] = Field(default_factory=dict)
    mocks: Mocks = Field(default_factory=Mocks)
    allow_real_shell: bool = False
    expect: Expect = Field(default_factory=Expect)


class Suite(_Model):
    workflow: str
    description: str | None = None
    cases: list[Case] = Field(min_length=1)


class Failure(_Model):
    """One expectation that did not hold."""

    path: str
    expected: Any
    actual: Any
    message: str


class CaseResult(_Model):
    file: str
    workflow: str
    name: str
    status: Literal["passed", "failed", "error"]
    duration_ms: float
    virtual_seconds: float
    failures: list[Failure] = []
    error: str | None = None
    #: the suite or its workflow file did not load (``wfkit test`` exits 2)
    invalid: bool = False
    run_id: str | None = None
    #: where the case's run is kept: ``wfkit debug RUN_ID --store STORE`` opens it
    store: str | None = None
    #: the run's first error (the one that failed it when there is one): why the case failed
    first_error: ErrorEntry | None = None
    events: list[dict[str, Any]] = Field(default=[], exclude=True)
    errors_seen: list[tuple[str, str, bool]] = Field(default=[], exclude=True)
    report: RunReport | None = Field(default=None, exclude=True)

    def why(self) -> list[str]:
        """Why a case that did not pass failed: the run's first error, and where to look."""
        lines = []
        if self.first_error is not None:
            e = self.first_error
            lines.append(f"first error: {e.step_id}: {e.error_type}: {e.message}")
        if self.run_id is not None and self.store is not None:
            lines.append(f"run kept: wfkit debug {self.run_id} --store {self.store}")
        return lines


class MockError(StepError):
    """The workflow did something the test case does not mock."""

    permanent = True
    fatal = True


class VirtualClock:
    """Time that passes only when the run sleeps."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept = 0.0

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds
        await asyncio.sleep(0)

    def time(self) -> float:
        return self.now


_ERROR_DEFAULTS: dict[str, dict[str, Any]] = {
    "ShellCommandError": {"exit_code": 1, "stderr": ""},
    "SubAgentError": {"index": 0},
    "UndefinedVariableError": {"name": "mocked"},
}


def make_error(type_name: str, message: str) -> StepError:
    """A step error of the named type, as a mock raises it."""
    cls = ERROR_TYPES.get(type_name)
    if cls is None or not issubclass(cls, StepError):
        return ToolError(f"{message} (unknown error type {type_name!r} in the mock)")
    return cls(message, **_ERROR_DEFAULTS.get(type_name, {}))


class MockTools:
    """A tool provider answering from a case's mocks, counting calls and arguments."""

    def __init__(self, mocks: dict[str, ToolMock]) -> None:
        self.mocks = mocks
        self.calls: dict[str, list[dict[str, Any]]] = {}

    async def call(self, server: str | None, tool: str, arguments: dict[str, Any]) -> Any:
        mock = self.mocks.get(tool)
        if mock is None:  # as in a run where no server offers it
            raise ToolNotFoundError(f"no tool {tool!r}: the case mocks none by that name")
        made = self.calls.setdefault(tool, [])
        made.append(arguments)
        reply: ToolReply = mock
        if mock.sequence:
            reply = mock.sequence[min(len(made), len(mock.sequence)) - 1]
        if reply.raises is not None:
            raise make_error(reply.raises.type, reply.raises.message)
        return reply.returns

    async def aclose(self) -> None:
        return None


class MockShell:
    """Answers shell commands from a case's mocks; unmatched commands run only if allowed."""

    def __init__(self, mocks: list[ShellMock], allow_real: bool) -> None:
        self.mocks = mocks
        self.allow_real = allow_real
        self.calls: list[str] = []
        self._uses: dict[int, int] = {}

    def __call__(self, command: str | list[str]) -> dict[str, Any] | None:
        text = command if isinstance(command, str) else " ".join(command)
        self.calls.append(text)
        for i, mock in enumerate(self.mocks):
            pattern = mock.match
            hit = re.search(pattern[3:], text) if pattern.startswith("re:") else pattern in text
            if hit:
                uses = self._uses[i] = self._uses.get(i, 0) + 1
                reply: ShellReply = mock
                if mock.sequence:
                    reply = mock.sequence[min(uses, len(mock.sequence)) - 1]
                return reply.model_dump()
        if self.allow_real:
            return None
        raise MockError(
            f"no shell mock matches {text!r} (add one under mocks.shell, or set "
            "allow_real_shell: true)"
        )


# --- loading ---------------------------------------------------------------------------


def load_suite(path: str | Path) -> Suite:
    """Read a ``*.wftest.yaml`` file; errors name file, line and field."""
    file = str(path)
    source = parse(read_source(path), file)
    if not isinstance(source.data, dict):
        raise LoadError(
            "a test suite must be a mapping (workflow:, cases:)", file=file, line=1, column=1
        )
    try:
        return Suite.model_validate(source.data)
    except ValidationError as exc:
        raise translate_validation_error(exc, source, _SUITE_FIELDS) from None


_SUITE_FIELDS = sorted(
    {
        name
        for model in (
            Suite,
            Case,
            Mocks,
            ToolMock,
            Raises,
            ShellMock,
            Expect,
            StepExpectation,
            ErrorExpectation,
            CallExpectation,
        )
        for name in model.model_fields
    }
    | {"error_type"}
)


def discover(paths: Sequence[str | Path]) -> list[Path]:
    """``*.wftest.yaml`` files among ``paths`` (files, or folders searched recursively)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(path.rglob("*.wftest.yaml")))
        elif path.exists():
            found.append(path)
        else:
            raise LoadError("no such file or folder", file=str(path))
    return found


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
) -> CaseResult:
    """Run one case isolated (its own mocks and clock; breakers start closed) and check its
    expectations; the run is kept in the test store (``store``, default
    :func:`case_store_path`) for ``wfkit debug``."""
    workflow = (suite_file.parent / suite.workflow).resolve()
    clock = VirtualClock()
    tools = MockTools(case.mocks.tools)
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
        report = asyncio.run(
            run_workflow_async(
                workflow,
                case.inputs,
                answers=case.mocks.answers,
                store=kept,
                tools=tools,
                on_event=collect,
                sleep=clock.sleep,
                clock=clock.time,
                shell=shell,
                initial_state=case.state,
                loaded=loaded,
                stored_breakers=False,
                faults=[parse_fault(text) for text in case.mocks.inject],
                inject_seed=case.mocks.inject_seed,
            )
        )
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


# --- expectations ----------------------------------------------------------------------


def matches(expected: Any, actual: Any) -> tuple[bool, str]:
    """Whether ``actual`` satisfies ``expected`` (a value, or a one-key matcher)."""
    if isinstance(expected, dict) and len(expected) == 1 and next(iter(expected)) in MATCHERS:
        ((kind, arg),) = expected.items()
        try:
            if kind == "matches":
                return bool(re.search(str(arg), str(actual))), f"matches {arg!r}"
            if kind == "contains":
                return arg in actual, f"contains {arg!r}"
            if kind == "type":
                return json_type(actual) == arg or (
                    arg == "number" and json_type(actual) in ("integer", "number")
                ), f"is {arg}"
            if kind == "len":
                return len(actual) == arg, f"has length {arg}"
            ops = {
                "gt": lambda a, b: a > b,
                "ge": lambda a, b: a >= b,
                "lt": lambda a, b: a < b,
                "le": lambda a, b: a <= b,
            }
            return bool(ops[kind](actual, arg)), f"{kind} {arg}"
        except TypeError:
            return False, f"{kind} {arg!r} (not applicable to {json_type(actual)})"
    return expected == actual, f"== {expected!r}"


def _read_state(report: RunReport, path: str) -> Any:
    """A state path as runs read it: ``raw.x``/``computed.y``/``inputs.z`` or a flat name,
    with ``.key`` and ``[n]``; None where nothing is (or the path is not a state path)."""
    state = report.state.model_dump()
    names = {**state["inputs"], **state["raw"], **state["computed"], **state}
    try:
        head, *rest = parse_path(path)
    except StateError:
        return None
    current = names.get(str(head))
    for part in rest:
        current = child(current, part)
    return current


def check(expect: Expect, report: RunReport, tools: MockTools) -> list[Failure]:
    """Every expectation that does not hold."""
    failures: list[Failure] = []

    def verify(path: str, expected: Any, actual: Any) -> None:
        ok, described = matches(expected, actual)
        if not ok:
            failures.append(
                Failure(
                    path=path,
                    expected=expected,
                    actual=actual,
                    message=f"{path}: expected {described}, got {actual!r}",
                )
            )

    if expect.status is not None:
        verify("status", expect.status, report.status)
    for path, expected in expect.state.items():
        verify(f"state.{path}", expected, _read_state(report, path))
    steps = {s.id: s for s in report.steps}
    for step_id, wanted in expect.steps.items():
        step = steps.get(step_id)
        for attr in ("status", "attempts", "executions"):
            value = getattr(wanted, attr)
            if value is not None:
                verify(
                    f"steps.{step_id}.{attr}", value, getattr(step, attr) if step else "never ran"
                )
    if isinstance(expect.errors, int):
        verify("errors", expect.errors, len(report.errors))
    elif expect.errors is not None:
        remaining = list(report.errors)
        for i, wanted_error in enumerate(expect.errors):
            found = next((e for e in remaining if _error_matches(wanted_error, e)), None)
            if found is None:
                failures.append(
                    Failure(
                        path=f"errors[{i}]",
                        expected=wanted_error.model_dump(exclude_none=True),
                        actual=[f"{e.step_id}: {e.error_type}: {e.message}" for e in remaining],
                        message=f"errors[{i}]: no recorded error matches "
                        f"{wanted_error.model_dump(exclude_none=True)}",
                    )
                )
            else:
                remaining = remaining[remaining.index(found) + 1 :]
    for tool, wanted_calls in expect.calls.items():
        made = tools.calls.get(tool, [])
        spec = (
            wanted_calls
            if isinstance(wanted_calls, CallExpectation)
            else CallExpectation(count=wanted_calls)
        )
        if spec.count is not None:
            verify(f"calls.{tool}", spec.count, len(made))
        for i, arguments in enumerate(spec.arguments or []):
            actual = made[i] if i < len(made) else None
            if isinstance(arguments, dict) and isinstance(actual, dict):
                for key, value in arguments.items():
                    verify(f"calls.{tool}[{i}].{key}", value, actual.get(key))
            else:
                verify(f"calls.{tool}[{i}]", arguments, actual)
    if expect.messages is not None:
        texts = [m.text for m in report.messages]
        for i, wanted_text in enumerate(expect.messages):
            verify(f"messages[{i}]", wanted_text, texts[i] if i < len(texts) else None)
    return failures


def _error_matches(wanted: ErrorExpectation, actual: Any) -> bool:
    if wanted.type is not None and wanted.type != actual.error_type:
        return False
    if wanted.step_id is not None and wanted.step_id != actual.step_id:
        return False
    if wanted.recovered is not None and wanted.recovered != actual.recovered:
        return False
    return wanted.message is None or matches(wanted.message, actual.message)[0]


# --- whole suites ----------------------------------------------------------------------


class TestReport(_Model):
    """The result of ``wfkit test``."""

    __test__ = False  # not a pytest test class

    cases: list[CaseResult]
    passed: int
    failed: int
    errors: int
    #: cases that errored because their suite or workflow file did not load
    invalid: int = 0
    duration_ms: float
    coverage: list[WorkflowCoverage] | None = None
    coverage_percent: float | None = None

    @property
    def ok(self) -> bool:
        """True when every case passed."""
        return self.failed == 0 and self.errors == 0


def _prune_test_store(path: Path) -> None:
    """Keep the newest :data:`TEST_RUNS_KEPT` case runs (the test store stays bounded)."""
    from wfkit.commands.manage import apply_retention
    from wfkit.store.retention import PrunePolicy

    with open_store(path, create=False) as run_store:
        if not run_store.missing:
            apply_retention(run_store, PrunePolicy(keep=TEST_RUNS_KEPT))


def run_tests(
    paths: Sequence[str | Path],
    *,
    coverage: bool = False,
    on_case: Callable[[CaseResult], None] | None = None,
    store: str | Path | None = None,
) -> TestReport:
    """Discover and run every case of every suite under ``paths``."""
    started = time.perf_counter()
    results: list[CaseResult] = []
    found = discover(paths)
    if not found:
        raise NoTestsFoundError(
            f"no test suites found in {', '.join(map(str, paths))} (files named *.wftest.yaml)"
        )
    kept = case_store_path(store)
    for path in found:
        try:
            suite = load_suite(path)
        except LoadError as exc:  # reported as one errored case; the other suites still run
            invalid = CaseResult(
                file=str(path),
                workflow="",
                name="(suite)",
                status="error",
                error=str(exc),
                invalid=True,
                duration_ms=0.0,
                virtual_seconds=0.0,
            )
            results.append(invalid)
            if on_case is not None:
                on_case(invalid)
            continue
        for case in suite.cases:
            result = run_case(path, suite, case, store=kept)
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
