"""Agent steps in ``wfkit test`` suites and ``wfkit test-step``, through the real CLI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from tests.conftest import EXAMPLES
from tests.test_e2e import wfkit

SUITE = EXAMPLES / "tests" / "agent-review.wftest.yaml"


def test_the_example_suite_passes_and_counts_agent_steps(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    result = wfkit("test", str(SUITE), "--coverage", "--junit-xml", str(junit), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert (report["passed"], report["failed"]) == (4, 0)
    [flow] = report["coverage"]
    covered = {(i["step_id"], i["what"]) for i in flow["items"] if i["covered"]}
    assert ("judge", "executed") in covered
    assert ("summarise", "executed") in covered
    assert ("judge", "retry") in covered  # the corrected answer took a second attempt
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures")) == ("4", "0")


def test_a_wrong_call_count_and_an_unmocked_agent_fail_by_name(write: Callable[..., Path]) -> None:
    write(
        """
        name: one agent
        steps:
          - {id: ask, type: agent_task, prompt: "Which?", response_schema: {type: integer}}
        """
    )
    suite = write(
        """
        workflow: flow.yaml
        cases:
          - name: counted wrong
            mocks: {agents: {ask: {returns: 3}}}
            expect: {status: succeeded, calls: {ask: 2}}
          - name: not mocked
            expect: {status: succeeded}
          - name: a mocked answer is checked like a real one
            mocks: {agents: {ask: {returns: three}}}
            expect:
              status: failed
              errors: [{type: AgentResponseError, step_id: ask}]
        """,
        "flow.wftest.yaml",
    )
    result = wfkit("test", str(suite), "--json")
    assert result.returncode == 1
    cases = {c["name"]: c for c in json.loads(result.stdout)["cases"]}
    [failure] = cases["counted wrong"]["failures"]
    assert (failure["path"], failure["expected"], failure["actual"]) == ("calls.ask", 2, 1)
    assert "no agent mock for agent_task 'ask'" in cases["not mocked"]["first_error"]["message"]
    assert cases["a mocked answer is checked like a real one"]["status"] == "passed"


def test_test_step_mocks_an_agent_step() -> None:
    flow = str(EXAMPLES / "agent-review.yaml")
    result = wfkit("test-step", flow, "summarise", "--mock-result", '"ok"', "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["step_type"], out["mocked"], out["result"]) == ("agent_task", "result", "ok")
    assert out["rendered"]["prompt"].startswith("Summarise these reviews")
    failed = wfkit("test-step", flow, "summarise", "--mock-error", "AgentTimeoutError", "--json")
    assert json.loads(failed.stdout)["error"]["type"] == "AgentTimeoutError"
