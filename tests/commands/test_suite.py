"""``wfkit test``: mocks, expectations, virtual time, JUnit, coverage, the pytest plugin."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import EXAMPLES
from wfkit.cli.app import app
from wfkit.commands.suite.expect import matches
from wfkit.commands.suite.models import CaseResult, load_suite
from wfkit.commands.suite.reports import write_junit, write_lcov
from wfkit.commands.suite.runner import run_tests
from wfkit.errors import LoadError, StoreError
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
    assert report.passed == 13


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
        "errors",
        "calls.lookup",
        "calls.other",
        "messages[0]",
        "messages[1]",
    ]
    greeting = case.failures[1]
    assert (greeting.expected, greeting.actual) == ("nope", "first")


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


def test_expected_errors_as_matchers(write: Callable[..., Path]) -> None:
    flow = write(
        "name: e\nsteps:\n  - {id: check, type: mcp_call, tool: status, on_error: continue}\n",
        "e.yaml",
    )
    raising = "mocks: {tools: {status: {raises: {type: ToolError, message: 'HTTP 503'}}}}"
    cases = (
        f"  - name: found\n    {raising}\n    expect:\n      errors:\n"
        "        - {step_id: check, error_type: ToolError, message: {contains: '503'}}\n"
        f"  - name: wrong type\n    {raising}\n    expect:\n      errors:\n"
        "        - {step_id: check, error_type: ToolInputError}\n"
    )
    path = write(f"workflow: {flow.name}\ncases:\n{cases}", "e.wftest.yaml")
    found, wrong = run_tests([path]).cases
    assert found.status == "passed", found.failures
    assert wrong.status == "failed"
    assert wrong.failures[0].message.startswith("errors[0]: no recorded error matches")


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
    branch_line = next(i.line for i in flow.items if i.step_id == "branch")
    taken = [r.rsplit(",", 1)[1] for r in text.splitlines() if r.startswith(f"BRDA:{branch_line},")]
    assert sorted(taken) == ["0", "1"], "a branch whose condition ran but not taken is 0, not -"


def test_genhtml_reads_the_lcov_branches(write: Callable[..., Path], tmp_path: Path) -> None:
    """The real consumer: genhtml counts a reached, untaken branch as executed."""
    genhtml = shutil.which("genhtml")
    if genhtml is None:
        if os.environ.get("CI") == "true":
            pytest.fail("genhtml (Debian package lcov) must be installed in CI")
        pytest.skip("genhtml is not installed (apt-get install lcov)")
    path = suite(
        write,
        """
        - name: takes then
          mocks:
            answers: {ask: y}
            tools: {lookup: {returns: {items: [1, 2]}}}
            shell: [{match: make, stdout: hi}]
          expect: {status: succeeded}
    """,
    )
    lcov = tmp_path / "cov.lcov"
    write_lcov(run_tests([path], coverage=True).coverage or [], lcov)
    done = subprocess.run(
        [genhtml, "--branch-coverage", "-o", str(tmp_path / "html"), str(lcov)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    branches = re.search(r"branches\.*: [\d.]+% \((\d+) of (\d+) branches\)", done.stdout)
    assert branches is not None, done.stdout
    records = [r.rsplit(",", 1)[1] for r in lcov.read_text().splitlines() if r.startswith("BRDA")]
    assert (int(branches[1]), int(branches[2])) == (records.count("1"), len(records))
    page = next((tmp_path / "html").rglob("flow.yaml.gcov.html")).read_text()
    assert page.count("was not taken") == records.count("0") > 0  # reached, not taken
    assert page.count("was not executed") == records.count("-")


def test_cli_exit_codes_and_fail_under(write: Callable[..., Path], tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["test", str(EXAMPLES / "tests"), "--json", "--coverage"])
    assert ok.exit_code == 0, ok.stdout
    data = json.loads(ok.stdout)
    assert data["passed"] == 13
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


def test_pytest_shows_a_clear_load_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".wftest.yaml", broken="workflow: flow.yaml\ncases: [{name: 'x}]\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    output = result.stdout.str()
    assert "LoadError: " in output
    assert "broken.wftest.yaml:" in output
    assert "malformed YAML" in output
    for noise in ("yaml/", "Traceback", "_yaml", "ScannerError"):
        assert noise not in output


def test_assert_state_hides_wfkit_frames(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml", flow="name: f\nsteps:\n  - {type: state_update, path: raw.n, value: 1}\n"
    )
    pytester.makepyfile(
        test_flow="""
from wfkit.testing import assert_state, run_with_mocks

def test_n():
    report = run_with_mocks("flow.yaml")
    assert_state(report, "raw.n", 2)
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "state.raw.n: expected == 2, got 1" in output
    assert "wfkit/testing.py" not in output
    assert "test_flow.py:5: AssertionError" in output


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


CI_FLOW = """
name: ci
steps:
  - {id: unit, type: shell_command, command: "pytest -q"}
"""


def test_a_failing_case_says_why_and_keeps_its_run(tmp_path: Path) -> None:
    (tmp_path / "ci.yaml").write_text(CI_FLOW)
    (tmp_path / "ci.wftest.yaml").write_text(
        "workflow: ci.yaml\ncases:\n  - name: green\n    mocks:\n      shell:\n"
        "        - {match: pytest, stdout: 'FAILED test_x.py::test_add - assert 3 == 2',"
        " exit_code: 1}\n    expect: {status: succeeded}\n"
    )
    runner = CliRunner()
    junit = tmp_path / "junit.xml"
    result = runner.invoke(app, ["test", str(tmp_path), "--junit-xml", str(junit), "--json"])
    assert result.exit_code == 1, result.output
    (case,) = json.loads(result.stdout)["cases"]
    first = case["first_error"]
    assert (first["step_id"], first["error_type"]) == ("unit", "ShellCommandError")
    assert "assert 3 == 2" in first["message"]  # the runner's report, from stdout
    text = runner.invoke(app, ["test", str(tmp_path)], env={"NO_COLOR": "1", "COLUMNS": "200"})
    assert "first error: unit: ShellCommandError" in text.stdout
    kept = re.search(r"run kept: wfkit debug (\S+) --store (\S+)", text.stdout)
    assert kept is not None, text.stdout
    assert kept[2] == case["store"]
    again = runner.invoke(app, ["debug", kept[1], "--store", kept[2]], env={"NO_COLOR": "1"})
    assert again.exit_code == 0, again.output
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert failure is not None
    assert "first error: unit: ShellCommandError" in (failure.text or "")
    debug = runner.invoke(app, ["debug", case["run_id"], "--store", case["store"], "--json"])
    assert debug.exit_code == 0, debug.output
    assert json.loads(debug.stdout)["status"] == "failed"


def test_one_bad_suite_does_not_stop_the_others(tmp_path: Path) -> None:
    (tmp_path / "ci.yaml").write_text(CI_FLOW)
    ok_case = "cases:\n  - name: ok\n    mocks: {shell: [{match: pytest}]}\n"
    (tmp_path / "a.wftest.yaml").write_text(f"workflow: ci.yaml\n{ok_case}")
    (tmp_path / "b.wftest.yaml").write_text("workflow: ci.yaml\ncases: [{name: 'x}]\n")
    (tmp_path / "c.wftest.yaml").write_text(f"workflow: gone.yaml\n{ok_case}")
    junit = tmp_path / "junit.xml"
    result = CliRunner().invoke(app, ["test", str(tmp_path), "--junit-xml", str(junit), "--json"])
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    assert [(c["name"], c["status"]) for c in report["cases"]] == [
        ("ok", "passed"),
        ("(suite)", "error"),
        ("ok", "error"),
    ]
    assert report["invalid"] == 2
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("errors")) == ("3", "2")
    error = root.findall("testsuite")[1].find("testcase/error")
    assert error is not None
    assert "b.wftest.yaml:" in (error.text or "")
    assert "malformed YAML" in (error.text or "")


def test_no_suites_is_exit_5(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["test", str(tmp_path / "empty")])
    assert result.exit_code == 5
    assert "no test suites found" in result.output
    as_json = CliRunner().invoke(app, ["test", str(tmp_path / "empty"), "--json"])
    assert json.loads(as_json.stdout)["error"]["type"] == "NoTestsFoundError"


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


def test_junitparser_reads_the_junit_report(write: Callable[..., Path], tmp_path: Path) -> None:
    """A real consumer of JUnit XML: counts, names, failure and error text per case."""
    from junitparser import Error, Failure, JUnitXml

    path = suite(
        write,
        """
        - name: takes then
          mocks:
            answers: {ask: y}
            tools: {lookup: {returns: {items: [1, 2]}}}
            shell: [{match: make, stdout: hi}]
          expect: {status: succeeded}
        - name: broken <on> "purpose" & more
          expect: {status: succeeded}
    """,
    )
    bad = write("workflow: missing.yaml\ncases: oops\n", "bad.wftest.yaml")
    report = run_tests([path, bad])
    junit = tmp_path / "junit.xml"
    write_junit(report, junit)
    xml = JUnitXml.fromfile(str(junit))
    suites = list(xml)
    assert [s.tests for s in suites] == [2, 1]
    assert [(s.failures, s.errors) for s in suites] == [(1, 0), (0, 1)]
    cases = [c for s in suites for c in s]
    assert [c.name for c in cases] == ["takes then", 'broken <on> "purpose" & more', "(suite)"]
    assert cases[0].is_passed
    [failure] = cases[1].result
    assert isinstance(failure, Failure)
    assert "status: expected == 'succeeded'" in (failure.message or "")
    assert "first error" in (failure.text or "")
    [error] = cases[2].result
    assert isinstance(error, Error)
    assert "bad.wftest.yaml" in (error.message or "")


COUNTER_FLOW = """
name: counter
inputs:
  start: {type: integer, default: 0}
state_schema:
  raw: {n: integer}
steps:
  - {id: set, type: state_update, path: raw.n, value: "{{ start }}"}
  - {id: bump, type: state_update, path: raw.n, operation: increment}
"""


def counter_suite(tmp_path: Path, cases: int) -> Path:
    (tmp_path / "counter.yaml").write_text(COUNTER_FLOW)
    body = "".join(
        f"  - name: starts at {i}\n    inputs: {{start: {i}}}\n"
        f"    expect: {{status: succeeded, state: {{n: {i + 1}}}}}\n"
        for i in range(cases)
    )
    path = tmp_path / "counter.wftest.yaml"
    path.write_text("workflow: counter.yaml\ncases:\n" + body)
    return path


def test_a_suite_opens_its_test_store_once_and_keeps_every_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wfkit.store.sqlite import RunStore

    opened: list[Path] = []
    real_init = RunStore.__init__

    def counting(self: RunStore, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        opened.append(self.path)

    monkeypatch.setattr(RunStore, "__init__", counting)
    report = run_tests([counter_suite(tmp_path, 6)], store=tmp_path / "store")
    assert report.passed == 6, [c.failures or c.error for c in report.cases]
    # one connection for the cases, one for pruning after them: not one per case
    assert len(opened) == 2, opened
    assert len({case.run_id for case in report.cases}) == 6
    monkeypatch.undo()
    for case in report.cases:  # each case's own run, state and all, is there to debug
        assert case.store is not None
        assert case.run_id is not None
        shown = CliRunner().invoke(app, ["debug", case.run_id, "--store", case.store, "--json"])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout)["status"] == "succeeded"


def test_a_test_store_that_cannot_open_fails_each_case_saying_why(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the store's folder would be\n")
    seen: list[CaseResult] = []
    with pytest.raises(StoreError, match=r"cannot open run store .*blocker is not a folder"):
        run_tests([counter_suite(tmp_path, 2)], store=blocker / "runs.db", on_case=seen.append)
    assert [c.status for c in seen] == ["error", "error"]
    assert all("cannot open run store" in (c.error or "") for c in seen), seen


def test_a_mocked_workflow_step_runs_no_child_and_a_red_case_names_it(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    """``mocks.workflows``: the case sees the mock's
    outputs; a wrong expectation on them fails the case naming the path."""
    (tmp_path / "child.yaml").write_text("name: child\nsteps: []\noutputs: {n: 1}\n")
    write(
        """
        name: caller
        state_schema: {raw: {n: integer}}
        steps:
          - id: call
            type: workflow
            file: child.yaml
            state_update: {path: raw.n, value: "{{ result.outputs.n }}"}
        """,
        "caller.yaml",
    )
    path = write(
        """
        workflow: caller.yaml
        cases:
          - name: mocked
            mocks: {workflows: {call: {returns: {n: 5}}}}
            expect: {status: succeeded, state: {raw.n: 5}, calls: {call: 1}}
          - name: real
            expect: {status: succeeded, state: {raw.n: 1}}
          - name: red
            mocks: {workflows: {call: {returns: {n: 6}}}}
            expect: {state: {raw.n: 5}}
          - name: raised
            mocks: {workflows: {call: {raises: {type: ToolError, message: down}}}}
            expect:
              status: failed
              errors: [{type: WorkflowStepError, step_id: call}]
        """,
        "c.wftest.yaml",
    )
    report = run_tests([path])
    by_name = {c.name: c for c in report.cases}
    assert by_name["mocked"].status == "passed", by_name["mocked"].failures
    assert by_name["real"].status == "passed", by_name["real"].failures
    assert by_name["raised"].status == "passed", by_name["raised"].failures
    assert by_name["red"].status == "failed"
    assert [(f.path, f.expected, f.actual) for f in by_name["red"].failures] == [
        ("state.raw.n", 5, 6)
    ]


def test_a_task_fanning_out_over_itself_and_a_misspelt_workflow_mock(
    write: Callable[..., Path],
) -> None:
    write(
        """
        name: rec
        inputs: {n: {type: integer, default: 2}}
        steps:
          - {id: top, type: parallel_foreach, items: [1], sub_agent_task: t,
             with: {n: "{{ n }}"}}
        sub_agent_tasks:
          t:
            inputs: {n: {type: integer}}
            steps:
              - {id: deeper, type: parallel_foreach, items: [1], sub_agent_task: t,
                 with: {n: "{{ n - 1 }}"}, if: "{{ n > 0 }}"}
        """,
        "rec.yaml",
    )
    fine = write(
        "workflow: rec.yaml\ncases:\n  - name: ok\n    expect: {steps: {top/deeper: {}}}\n",
        "rec.wftest.yaml",
    )
    report = run_tests([fine])
    assert report.ok, [c.failures or c.error for c in report.cases]
    typo = write(
        "workflow: rec.yaml\ncases:\n  - name: typo\n"
        "    mocks: {workflows: {tops: {returns: {}}}}\n",
        "typo.wftest.yaml",
    )
    [case] = run_tests([typo]).cases
    assert case.status == "error"
    assert "mocks workflow step 'tops'" in str(case.error)


def test_an_unmocked_command_fails_the_case_whatever_the_policy(
    write: Callable[..., Path],
) -> None:
    write(
        "name: lax\nsteps:\n"
        "  - {id: sh, type: shell_command, command: 'rm -rf nothing', on_error: continue}\n",
        "lax.yaml",
    )
    path = write(
        "workflow: lax.yaml\ncases:\n  - name: x\n    expect: {status: succeeded}\n",
        "lax.wftest.yaml",
    )
    [case] = run_tests([path]).cases
    assert case.status == "failed"  # a MockError is fatal: on_error does not hide it
    assert any(f.path == "status" for f in case.failures)
