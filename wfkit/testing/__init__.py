"""Helpers for testing workflows from your own Python tests.

    from wfkit.testing import run_with_mocks, assert_state

    report = run_with_mocks("flow.yaml", tools={"search": {"hits": []}},
                            shell=[{"match": "make", "stdout": "ok"}])
    assert_state(report, "raw.count", {"ge": 1})

Runs use the same mocks, virtual time and expectations as ``wfkit test``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wfkit.commands.results import RunReport

__all__ = ["RunReport", "assert_state", "matches", "run_with_mocks"]


def __getattr__(name: str) -> Any:
    """``RunReport`` and ``matches`` on first use: the pytest plugin in this package loads in
    every pytest run, and must not bring the engine with it."""
    if name == "RunReport":
        from wfkit.commands.results import RunReport

        return RunReport
    if name == "matches":
        from wfkit.commands.suite.expect import matches

        return matches
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_with_mocks(
    workflow: str | Path,
    inputs: dict[str, Any] | None = None,
    *,
    tools: dict[str, Any] | None = None,
    shell: list[dict[str, Any]] | None = None,
    answers: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    allow_real_shell: bool = False,
) -> RunReport:
    """Run a workflow with mocked tools (name -> value returned, or a ``{returns|raises|
    sequence}`` mock), shell mocks and answers, in virtual time, with its own store."""
    from wfkit.commands.suite.models import Case, Expect, Mocks, ShellMock, Suite, ToolMock
    from wfkit.commands.suite.runner import run_case

    tool_mocks = {
        name: ToolMock.model_validate(spec)
        if isinstance(spec, dict) and set(spec) <= {"returns", "raises", "sequence"} and spec
        else ToolMock(returns=spec)
        for name, spec in (tools or {}).items()
    }
    case = Case(
        name="python",
        inputs=inputs or {},
        state=state or {},
        allow_real_shell=allow_real_shell,
        mocks=Mocks(
            tools=tool_mocks,
            shell=[ShellMock.model_validate(s) for s in shell or []],
            answers=answers or {},
        ),
        expect=Expect(),
    )
    path = Path(workflow).resolve()
    suite = Suite(workflow=path.name, cases=[case])
    result = run_case(path.parent / "python.wftest.yaml", suite, case)
    if result.report is None:
        raise AssertionError(result.error)
    return result.report


def assert_state(report: RunReport, path: str, expected: Any) -> None:
    """Assert that the state at ``path`` (``raw.x``, ``computed.y`` or a flat name) is
    ``expected`` or satisfies a matcher (``{"ge": 1}``, ``{"matches": "re"}``...)."""
    __tracebackhide__ = True  # a failure points at the caller's assert_state line
    from wfkit.commands.suite.expect import matches, read_state

    actual = read_state(report, path)
    ok, described = matches(expected, actual)
    assert ok, f"state.{path}: expected {described}, got {actual!r}"
