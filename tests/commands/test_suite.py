"""``wfkit test``: mocks, expectations, virtual time, JUnit, coverage, the pytest plugin."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import EXAMPLES
from wfkit.cli import app
from wfkit.commands.suite import load_suite, matches, run_tests
from wfkit.commands.suite_reports import write_junit, write_lcov
from wfkit.errors import LoadError
from wfkit.testing import assert_state, run_with_mocks

FLOW = """
name: under-test
inputs:
  who: {type: string, default: world}
state_schema:
  raw: {greeting: string, tries: integer, items: array}
steps:
  - id: ask
    type: user_input
    prompt: "Proceed?"
  - id: fetch
    type: mcp_call
    tool: lookup
    parameters: {name: "{{ who }}"}
    on_error: retry
    retry_count: 3
    retry_delay: 60000
    retry_max_delay: 600000
    retry_jitter: 0
    error_state_update: {path: raw.tries, operation: increment}
    state_update: {path: raw.items, value: "{{ result.items }}"}
  - id: build
    type: shell_command
    command: "make greeting NAME={{ who }}"
    state_update: {path: raw.greeting, value: "{{ result.stdout }}"}
  - id: branch
    type: conditional
    condition: "items | length > 1"
    then: [{id: many, type: user_message, message: "many"}]
    else: [{id: few, type: user_message, message: "few"}]
"""


def suite(write: Callable[..., Path], cases: str) -> Path:
    write(FLOW, "flow.yaml")
    return write(
        "workflow: flow.yaml\ncases:\n" + textwrap.indent(textwrap.dedent(cases), "  "),
        "flow.wftest.yaml",
    )


def test_example_suites_pass() -> None:
    report = run_tests([EXAMPLES / "tests"])
    assert report.ok, [c.failures or c.error for c in report.cases]
    assert report.passed == 5


def test_every_mock_form_and_virtual_time(write: Callable[..., Path]) -> None:
    path = suite(
        write,
        """
        - name: all mocks
          mocks:
            answers: {ask: "yes"}
            tools:
              lookup:
                sequence:
                  - {raises: {type: ToolError, message: busy}}
                  - {raises: {type: ToolConnectionError, message: gone}}
                  - {returns: {items: [1, 2, 3]}}
            shell:
              - {match: "re:^make greeting NAME=\\\\S+$", stdout: "hello world"}
          expect:
            status: succeeded
            state:
              raw.greeting: hello world
              tries: 2
              items: {len: 3}
            steps:
              fetch: {status: succeeded, attempts: 3}
              many: {status: succeeded}
            calls:
              lookup: {count: 3, arguments: [{name: world}, {name: {matches: "^w"}}]}
            errors:
              - {type: ToolError, step_id: fetch, recovered: true, message: {contains: busy}}
              - {type: ToolConnectionError}
            messages: [many]
    """,
    )
    report = run_tests([path])
    case = report.cases[0]
    assert case.status == "passed", case.failures or case.error
    assert case.virtual_seconds == 60 + 120  # minutes of retry delays, none of them waited


def test_unmatched_shell_is_an_error_naming_the_command(write: Callable[..., Path]) -> None:
    path = suite(
        write,
        """
        - name: no shell mock
          mocks:
            answers: {ask: y}
            tools: {lookup: {returns: {items: []}}}
          expect: {status: succeeded}
    """,
    )
    case = run_tests([path]).cases[0]
    assert case.status == "failed"
    assert case.failures[0].path == "status"
    assert case.report is not None
    assert "no shell mock matches 'make greeting NAME=world'" in case.report.errors[0].message


def test_real_shell_when_allowed(write: Callable[..., Path]) -> None:
    write(FLOW.replace("make greeting NAME={{ who }}", "echo hi {{ who }}"), "flow.yaml")
    path = write(
        "workflow: flow.yaml\ncases:\n  - name: real\n    allow_real_shell: true\n"
        "    mocks: {answers: {ask: y}, tools: {lookup: {returns: {items: [1]}}}}\n"
        "    expect: {state: {greeting: hi world}, steps: {few: {status: succeeded}}}\n",
        "real.wftest.yaml",
    )
    assert run_tests([path]).ok


def test_failing_expectations_say_path_expected_and_actual(write: Callable[..., Path]) -> None:
    path = suite(
        write,
        """
        - name: wrong on purpose
          mocks:
            answers: {ask: y}
            tools: {lookup: {returns: {items: [1]}}}
            shell: [{match: make, stdout: hi, sequence: [{stdout: first}, {stdout: second}]}]
          expect:
            status: failed
            state:
              raw.greeting: nope
              tries: {gt: 0}
              items: {type: string}
              who: {matches: "^x"}
              raw.missing.deep: 1
            steps:
              fetch: {attempts: 2}
              never_ran: {status: succeeded}
            errors: 2
            calls: {lookup: 5, other: {count: 1}}
            messages: [many, extra]
    """,
    )
    case = run_tests([path]).cases[0]
    assert case.status == "failed"
    paths = [f.path for f in case.failures]
    assert paths == [
        "status",
        "state.raw.greeting",
        "state.tries",
        "state.items",
        "state.who",
        "state.raw.missing.deep",
        "steps.fetch.attempts",
        "steps.never_ran.status",
        "errors",
        "calls.lookup",
        "calls.other",
        "messages[0]",
        "messages[1]",
    ]
    greeting = case.failures[1]
    assert (greeting.expected, greeting.actual) == ("nope", "first")
    assert case.failures[7].actual == "never ran"


def test_error_expectations_in_order(write: Callable[..., Path]) -> None:
    path = suite(
        write,
        """
        - name: missing error
          mocks:
            answers: {ask: y}
            tools: {lookup: {raises: {type: ShellCommandError, message: x}}}
          expect:
            errors:
              - {type: UserError}
    """,
    )
    case = run_tests([path]).cases[0]
    assert case.failures[0].path == "errors[0]"
    assert "no recorded error matches" in case.failures[0].message


def test_matchers() -> None:
    assert matches({"matches": r"^\d+$"}, "123")[0]
    assert matches({"contains": 2}, [1, 2])[0]
    assert matches({"ge": 3}, 3)[0]
    assert matches({"lt": 3}, 2)[0]
    assert matches({"le": 3}, 3)[0]
    assert not matches({"gt": 3}, "text")[0]
    assert matches({"type": "number"}, 2)[0]
    assert matches({"len": 0}, "")[0]
    assert matches({"a": 1}, {"a": 1})[0]  # a plain mapping is a value, not a matcher


def test_bad_suite_files_are_located(write: Callable[..., Path]) -> None:
    bad = write("workflow: flow.yaml\ncases:\n  - name: x\n    expekt: {}\n", "bad.wftest.yaml")
    with pytest.raises(LoadError, match="unknown field 'expekt'; did you mean 'expect'"):
        load_suite(bad)
    with pytest.raises(LoadError, match="no such file"):
        run_tests([bad.parent / "absent.wftest.yaml"])
    missing_flow = write("workflow: nowhere.yaml\ncases:\n  - name: x\n", "m.wftest.yaml")
    assert run_tests([missing_flow]).cases[0].status == "error"


def test_junit_and_coverage_with_a_known_missed_branch(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    path = suite(
        write,
        """
        - name: takes then
          mocks:
            answers: {ask: y}
            tools: {lookup: {returns: {items: [1, 2]}}}
            shell: [{match: make, stdout: hi}]
          expect: {status: succeeded}
        - name: broken on purpose
          expect: {status: succeeded}
    """,
    )
    report = run_tests([path], coverage=True)
    assert (report.passed, report.failed) == (1, 1)
    [flow] = report.coverage or []
    missed = {(i.step_id, i.what) for i in flow.items if not i.covered}
    assert missed == {("branch", "else"), ("few", "executed"), ("fetch", "retry")}
    assert flow.percent == pytest.approx(100 * 6 / 9)
    junit = tmp_path / "junit.xml"
    write_junit(report, junit)
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    [testsuite] = root
    failure = testsuite.findall("testcase")[1].find("failure")
    assert failure is not None
    assert "status: expected == 'succeeded'" in (failure.get("message") or "")
    lcov = tmp_path / "cov.lcov"
    write_lcov(report.coverage or [], lcov)
    text = lcov.read_text()
    assert f"SF:{(path.parent / 'flow.yaml').resolve()}" in text
    assert "DA:29,0" in text  # line 29: the else branch's step, never executed
    assert "LF:6\nLH:5" in text


def test_cli_exit_codes_and_fail_under(write: Callable[..., Path], tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["test", str(EXAMPLES / "tests"), "--json", "--coverage"])
    assert ok.exit_code == 0, ok.stdout
    data = json.loads(ok.stdout)
    assert data["passed"] == 5
    assert data["coverage_percent"] > 80
    under = runner.invoke(
        app,
        [
            "test",
            str(EXAMPLES / "tests"),
            "--coverage-fail-under",
            "99",
            "--lcov",
            str(tmp_path / "c.lcov"),
            "--junit-xml",
            str(tmp_path / "j.xml"),
        ],
        env={"NO_COLOR": "1"},
    )
    assert under.exit_code == 1
    assert "is under 99%" in under.stderr
    assert (tmp_path / "c.lcov").exists()
    assert (tmp_path / "j.xml").exists()
    failing = suite(write, "- name: fails\n  expect: {status: succeeded}\n")
    result = runner.invoke(app, ["test", str(failing)], env={"NO_COLOR": "1"})
    assert result.exit_code == 1
    assert "1 failed" in result.stdout
    assert runner.invoke(app, ["test", "absent"]).exit_code == 2


def test_pytest_collects_wftest_files(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", flow=FLOW.replace("make greeting NAME={{ who }}", "true"))
    pytester.makefile(
        ".wftest.yaml",
        suite="workflow: flow.yaml\ncases:\n"
        "  - name: good\n    allow_real_shell: true\n"
        "    mocks: {answers: {ask: y}, tools: {lookup: {returns: {items: []}}}}\n"
        "    expect: {status: succeeded}\n"
        "  - name: bad\n    expect: {status: succeeded}\n",
    )
    result = pytester.runpytest("-p", "no:cacheprovider")  # the plugin loads as an entry point
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*suite.wftest.yaml :: bad*", "*status: expected*"])


def test_python_helpers(write: Callable[..., Path]) -> None:
    flow = write(FLOW, "flow.yaml")
    report = run_with_mocks(
        flow,
        {"who": "ada"},
        tools={"lookup": {"items": [1]}},
        shell=[{"match": "make", "stdout": "hi ada"}],
        answers={"ask": "y"},
    )
    assert report.status == "succeeded"
    assert_state(report, "raw.greeting", "hi ada")
    assert_state(report, "items", {"len": 1})
    with pytest.raises(AssertionError, match=r"state.tries: expected gt 5, got 0"):
        assert_state(report, "tries", {"gt": 5})
    with pytest.raises(AssertionError):
        run_with_mocks(write("name: x\nstepz: 1\n", "bad.yaml"))


def test_mocks_inject_faults_into_a_case(write: Callable[..., Path]) -> None:
    path = suite(
        write,
        """
        - name: the retry outlasts two injected tool faults
          mocks:
            answers: {ask: y}
            tools: {lookup: {returns: {items: [1]}}}
            shell: [{match: make, sequence: [{stdout: hi}]}]
            inject: ["step=fetch error=ToolConnectionError rate=0.5"]
            inject_seed: "2"
          expect:
            status: succeeded
            steps: {fetch: {status: succeeded, attempts: 2}}
        - name: a build that exits 75 fails the case
          mocks:
            answers: {ask: y}
            tools: {lookup: {returns: {items: [1]}}}
            shell: [{match: make, sequence: [{stdout: hi}]}]
            inject: ["step=build exit_code=75"]
          expect: {status: failed, errors: [{type: ShellCommandError, step_id: build}]}
    """,
    )
    first, second = run_tests([path]).cases
    assert (first.status, second.status) == ("passed", "passed"), first.failures
    assert first.report is not None
    injected = [e for e in first.report.errors if e.details.get("injected")]
    assert injected  # the seed hits fetch at least once; the retries recover
    assert {e.error_type for e in injected} == {"ToolConnectionError"}
    again = run_tests([path]).cases[0].report
    assert again is not None
    assert len([e for e in again.errors if e.details.get("injected")]) == len(injected)
    bad = write(
        "workflow: flow.yaml\ncases:\n  - name: x\n    mocks:\n      inject: ['step=fetch']\n",
        "bad.wftest.yaml",
    )
    with pytest.raises(LoadError, match=r"bad.wftest.yaml:5.*give error=TYPE, exit_code=N"):
        load_suite(bad)
