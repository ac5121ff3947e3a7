"""pytest collects ``*.wftest.yaml`` suites: one test item per case.

Registered as a ``pytest11`` entry point, so it loads in every pytest run of an environment
where wfkit is installed: it imports nothing heavy until such a file is collected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    """Collect ``*.wftest.yaml`` files."""
    if file_path.name.endswith(".wftest.yaml"):
        return WorkflowSuiteFile.from_parent(parent, path=file_path)
    return None


class CaseFailed(Exception):
    """A case whose expectations did not hold."""


class SuiteLoadError(Exception):
    """A suite file that does not load: shown as its clear message, with no traceback."""


class WorkflowSuiteFile(pytest.File):
    """A test suite file."""

    def collect(self) -> Iterator[pytest.Item]:
        from wfkit.commands.suite.models import load_suite
        from wfkit.errors import LoadError

        try:
            suite = load_suite(self.path)
        except LoadError as exc:  # the parser's own traceback says nothing more
            raise SuiteLoadError(f"{exc.type_name}: {exc}") from None
        for case in suite.cases:
            yield WorkflowCase.from_parent(self, name=case.name, suite=suite, case=case)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, SuiteLoadError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))


class WorkflowCase(pytest.Item):
    """One case of a suite."""

    def __init__(self, *, suite: Any, case: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite = suite
        self.case = case

    def runtest(self) -> None:
        from wfkit.commands.suite.runner import run_case

        result = run_case(self.path, self.suite, self.case)
        if result.status == "error":
            raise CaseFailed(f"error: {result.error}")
        if result.status == "failed":
            raise CaseFailed("\n".join([*(f.message for f in result.failures), *result.why()]))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CaseFailed):
            return f"{self.path.name} :: {self.name}\n{excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"wftest: {self.name}"
