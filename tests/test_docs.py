"""Every complete workflow in docs/ loads and runs as the page says."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT
from wfkit.commands import run_workflow

BLOCK = re.compile(r"```yaml\n(name:.*?)```", re.DOTALL)
WORKFLOWS = {
    match.group(1).splitlines()[0].split('"')[1]: match.group(1)
    for page in sorted((ROOT / "docs").glob("*.md"))
    for match in BLOCK.finditer(page.read_text())
}


def test_docs_have_workflows() -> None:
    assert {"docs:tour", "docs:computed", "docs:steps", "docs:fan-out"} <= set(WORKFLOWS)


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_doc_workflow_runs(name: str, write: Callable[..., Path]) -> None:
    report = run_workflow(write(WORKFLOWS[name]))
    assert report.status == "succeeded", report.errors


def test_documented_results(write: Callable[..., Path]) -> None:
    tour = run_workflow(write(WORKFLOWS["docs:tour"]))
    assert tour.messages[0].text == "counted to 3 (started)"
    computed = run_workflow(write(WORKFLOWS["docs:computed"]))
    assert computed.state.computed == {"total": 60, "to_pay": 30.0, "ratio": 100 / 30.0}
    steps = run_workflow(write(WORKFLOWS["docs:steps"]))
    assert steps.state.raw["sizes"] == {"f0": 5, "f1": 7}
    assert steps.messages[0].text == "several files"
    fan = run_workflow(write(WORKFLOWS["docs:fan-out"]))
    assert fan.messages[0].text == "[1, 4, 9, 16]"


def test_documented_load_error_is_real(write: Callable[..., Path]) -> None:
    from wfkit.errors import LoadError
    from wfkit.language.loader import load_file

    page = (ROOT / "docs" / "language.md").read_text()
    flow = write("name: x\nsteps:\n  - type: shel_command\n    command: ls\n")
    with pytest.raises(LoadError) as info:
        load_file(flow)
    shown = f"LoadError: {info.value}".replace(str(flow), "flow.yaml")
    assert shown in page


def test_documented_policies_and_breaker(write: Callable[..., Path]) -> None:
    from wfkit.engine.tools import FunctionTools

    policies = run_workflow(write(WORKFLOWS["docs:policies"]))
    assert policies.messages[0].text == "unavailable / skipped after 3 failures"
    assert [s.attempts for s in policies.steps[:2]] == [1, 3]

    def search() -> str:
        raise RuntimeError("search is down")

    breaker = run_workflow(
        write(WORKFLOWS["docs:breaker"]), tools=FunctionTools({"search": search})
    )
    types = [e.error_type for e in breaker.errors]
    assert types == ["ToolError"] * 3 + ["CircuitOpenError"] * 2
    assert breaker.status == "succeeded"
