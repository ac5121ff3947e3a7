"""The ``*.wftest.yaml`` format (suites, cases, mocks, expectations), its loading, and
the result of a case.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator

from wfkit.commands._base import StrictModel
from wfkit.commands.results import ErrorEntry, RunReport
from wfkit.engine.inject import parse_fault
from wfkit.errors import (
    InputError,
    LoadError,
)
from wfkit.language.diagnostics import translate_validation_error
from wfkit.language.yamlsrc import parse, read_source

MATCHERS = ("matches", "contains", "gt", "ge", "lt", "le", "type", "len", "equals")


class Raises(StrictModel):
    type: str = "ToolError"
    message: str = "mocked failure"


class ToolReply(StrictModel):
    """One reply of a mocked tool: a value, or an error."""

    returns: Any = None
    raises: Raises | None = None


class ToolMock(ToolReply):
    """``returns`` / ``raises`` for every call, or ``sequence`` by attempt (the last repeats)."""

    sequence: list[ToolReply] | None = None


class AgentRaises(Raises):
    type: str = "AgentError"


class AgentMockReply(StrictModel):
    """One reply of a mocked agent: a response (checked against the step's schema), or an
    error."""

    returns: Any = None
    raises: AgentRaises | None = None


class AgentMock(AgentMockReply):
    """``returns`` / ``raises`` for every request of the step, or ``sequence`` by request
    (the last repeats)."""

    sequence: list[AgentMockReply] | None = None


class WorkflowRaises(Raises):
    type: str = "UserError"


class WorkflowMock(StrictModel):
    """A ``workflow`` step's child, not run: ``returns`` its ``outputs``, or ``raises`` the
    child's error (the step fails with ``WorkflowStepError``, this error as its cause)."""

    returns: dict[str, Any] = Field(default_factory=dict)
    raises: WorkflowRaises | None = None


class ShellReply(StrictModel):
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


class ShellMock(ShellReply):
    """Commands containing ``match`` (or matching ``re:<regex>``), or the commands of the
    step ``step`` (its recorded id or its own; of parallel item ``item`` when given), get
    this reply, or the next of ``sequence`` at each call (the last repeats)."""

    match: str | None = None
    step: str | None = None
    item: int | None = None
    sequence: list[ShellReply] | None = None

    @model_validator(mode="after")
    def _one_matcher(self) -> ShellMock:
        if (self.match is None) == (self.step is None):
            raise ValueError("a shell mock needs `match` (the command) or `step`, not both")
        return self


class Mocks(StrictModel):
    tools: dict[str, ToolMock] = Field(default_factory=dict)
    shell: list[ShellMock] = Field(default_factory=list)
    answers: dict[str, Any] = Field(default_factory=dict)
    agents: dict[str, AgentMock] = Field(default_factory=dict)
    workflows: dict[str, WorkflowMock] = Field(default_factory=dict)
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


class StepExpectation(StrictModel):
    status: str | None = None
    attempts: int | None = None
    executions: int | None = None


class ErrorExpectation(StrictModel):
    """A recorded error to find: ``error_type`` (or ``type``), ``step_id``, ``message``."""

    type: str | None = Field(default=None, validation_alias=AliasChoices("error_type", "type"))
    step_id: str | None = None
    message: Any = None
    recovered: bool | None = None


class CallExpectation(StrictModel):
    count: int | None = None
    arguments: list[Any] | None = None


class Expect(StrictModel):
    status: str | None = None
    state: dict[str, Any] = Field(default_factory=dict)
    steps: dict[str, StepExpectation] = Field(default_factory=dict)
    errors: int | list[ErrorExpectation] | None = None
    calls: dict[str, int | CallExpectation] = Field(default_factory=dict)
    messages: list[Any] | None = None


class Case(StrictModel):
    name: str
    description: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    state: dict[str, Any] = Field(default_factory=dict)
    mocks: Mocks = Field(default_factory=Mocks)
    allow_real_shell: bool = False
    expect: Expect = Field(default_factory=Expect)


class Suite(StrictModel):
    workflow: str
    description: str | None = None
    cases: list[Case] = Field(min_length=1)


class Failure(StrictModel):
    """One expectation that did not hold."""

    path: str
    expected: Any
    actual: Any
    message: str


class CaseResult(StrictModel):
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


# --- loading ---------------------------------------------------------------------------


def load_suite(path: str | Path) -> Suite:
    """Read a ``*.wftest.yaml`` file; errors name file, line and field."""
    file = str(path)
    source = parse(read_source(path, regular=True), file)
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


class CoverageItem(StrictModel):
    kind: str  # step | branch | error_handler
    step_id: str
    line: int | None
    what: str
    covered: bool
    #: whether the step it belongs to ran at all (a branch not taken vs never reached)
    reached: bool = False


class WorkflowCoverage(StrictModel):
    workflow: str
    items: list[CoverageItem]

    @property
    def percent(self) -> float:
        """Covered share of the items, in percent."""
        return 100.0 * sum(i.covered for i in self.items) / len(self.items) if self.items else 100.0


class TestReport(StrictModel):
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
