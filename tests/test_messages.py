"""Every user-facing error through the real CLI: it names the file and line where it has
them, and speaks the workflow's words: never pydantic's sentences or wfkit's class names."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from wfkit.language import models as m

CLASS_NAMES = re.compile(
    r"\b("
    + "|".join(
        name
        for name in dir(m)
        if isinstance(getattr(m, name), type) and name[0].isupper() and len(name) > 6
    )
    + r")\b"
)
PYDANTIC = ("Input should", "validation error", "pydantic", "For further information")

BAD_FILES = {
    "expression_in_a_number": (
        "name: a\ninputs: {workers: {type: integer, default: 2}}\nsteps:\n"
        "  - {id: f, type: parallel_foreach, items: [1], sub_agent_task: t,"
        " max_parallel: '{{ workers }}'}\nsub_agent_tasks:\n  t: {steps: []}\n",
        "max_parallel must be a whole number",
    ),
    "duration_with_a_unit": (
        "name: a\nsteps:\n  - {id: s, type: shell_command, command: 'true', timeout: 10s}\n",
        "durations are seconds",
    ),
    "task_not_a_mapping": ("name: a\nsub_agent_tasks:\n  t: 5\nsteps: []\n", "must be a mapping"),
    "enum_typo": (
        "name: a\nsteps:\n  - {id: s, type: shell_command, command: 'true', on_error: retyr}\n",
        "did you mean 'retry'?",
    ),
    "top_level_setting": ("name: a\ntimeout: 5\nsteps: []\n", "did you mean 'config.timeout'?"),
    "negative_timeout": (
        "name: a\nsteps:\n  - {id: s, type: shell_command, command: 'true', timeout: -1}\n",
        "timeout must be greater than 0",
    ),
    "wrong_type_of_input_spec": (
        "name: a\ninputs: {n: {type: integer, required: maybe}}\nsteps: []\n",
        "required must be true or false",
    ),
    "unknown_field_in_body": (
        "name: a\nsteps:\n  - {id: l, type: foreach, items: [1], steps: []}\n",
        "unknown field 'steps'",
    ),
    "missing_field": ("name: a\nsteps:\n  - {id: s, type: shell_command}\n", "command"),
    "secret_without_source": ("name: a\nsecrets:\n  k: {}\nsteps: []\n", "exactly one of"),
    "list_not_string": ("name: [a]\nsteps: []\n", "name must be a string"),
}


def wfkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wfkit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def assert_in_own_words(text: str) -> None:
    for phrase in PYDANTIC:
        assert phrase not in text, text
    found = CLASS_NAMES.search(text)
    assert found is None, (found.group(0) if found else "", text)
    assert "Traceback" not in text


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_load_errors_name_file_and_line_in_the_workflows_words(tmp_path: Path, case: str) -> None:
    text, expected = BAD_FILES[case]
    (tmp_path / "flow.yaml").write_text(text)
    for command in (["explain", "flow.yaml"], ["run", "flow.yaml"]):
        human = wfkit(*command, cwd=tmp_path)
        assert human.returncode == 2, human.stderr
        assert_in_own_words(human.stdout + human.stderr)
        assert re.search(r"flow\.yaml:\d+", human.stderr), human.stderr
        as_json = wfkit(*command, "--json", cwd=tmp_path)
        error = json.loads(as_json.stdout)["error"]
        assert_in_own_words(json.dumps(error))
        assert error["file"].endswith("flow.yaml")
        assert error["line"] >= 1
        assert expected in error["message"]


RUNTIME = """
name: und
inputs: {outdir: {type: string, default: /tmp/x}, config: {type: object, default: {endpointt: x}}}
steps:
  - {id: mk, type: shell_command, command: "echo {{ out_dir }}", on_error: continue}
  - {id: call, type: shell_command, command: "echo {{ config.endpoint }}", on_error: continue}
  - {id: cond, type: user_message, message: hi, if: "outdirr > 1"}
"""


@pytest.mark.slow
def test_runtime_expression_errors_say_where_and_suggest(tmp_path: Path) -> None:
    (tmp_path / "und.yaml").write_text(RUNTIME)
    done = wfkit("run", "und.yaml", "--json", cwd=tmp_path)
    report = json.loads(done.stdout)
    messages = [e["message"] for e in report["errors"]]
    assert "did you mean 'outdir'?" in messages[0]
    assert "und.yaml:5 steps[0]" in messages[0]
    assert "did you mean 'endpointt'? (config has: endpointt)" in messages[1]
    assert "und.yaml:7 steps[2]" in report["error"]["message"]  # an `if` too, recorded
    assert report["error"]["step_id"] == "cond"
    assert [e["step_id"] for e in report["errors"]] == ["mk", "call", "cond"]
    human = wfkit("run", "und.yaml", cwd=tmp_path)
    assert_in_own_words(human.stdout + human.stderr)


RETRY_ON = """
name: ts
steps:
  - id: s
    type: shell_command
    command: "exit 75"
    on_error: retry
    retry_count: 2
    retry_on: "error.exit_code == 75"
"""


@pytest.mark.slow
def test_a_mocked_error_carries_details_and_a_failing_retry_on_never_crashes(
    tmp_path: Path,
) -> None:
    (tmp_path / "ts.yaml").write_text(RETRY_ON)
    plain = wfkit("test-step", "ts.yaml", "s", "--mock-error", "ToolError", "--json", cwd=tmp_path)
    result = json.loads(plain.stdout)
    assert result["branch"] == "fail"
    assert "could not be evaluated" in result["reason"]
    assert "Traceback" not in plain.stderr
    detailed = wfkit(
        "test-step",
        "ts.yaml",
        "s",
        "--mock-error",
        "ShellCommandError exit_code=75",
        "--json",
        cwd=tmp_path,
    )
    assert json.loads(detailed.stdout)["branch"] == "retry"
    as_json = wfkit(
        "test-step",
        "ts.yaml",
        "s",
        "--mock-error",
        '{"type": "ShellCommandError", "exit_code": 3}',
        "--json",
        cwd=tmp_path,
    )
    assert json.loads(as_json.stdout)["branch"] == "fail"
    bad = wfkit(
        "test-step", "ts.yaml", "s", "--mock-error", "ShellCommandError nope=1", cwd=tmp_path
    )
    assert bad.returncode == 2
    assert "has no detail 'nope'" in bad.stderr


@pytest.mark.slow
def test_an_ambiguous_run_prefix_lists_the_candidates(tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text("name: f\nsteps: []\n")
    ids = [
        json.loads(wfkit("run", "f.yaml", "--json", cwd=tmp_path).stdout)["run_id"]
        for _ in range(2)
    ]
    prefix = ids[0][:4]
    done = wfkit("debug", prefix, cwd=tmp_path)
    assert done.returncode != 0
    assert "is ambiguous: it starts" in done.stderr
    assert ids[0] in done.stderr.replace("\n", "")


@pytest.mark.slow
def test_a_suite_expecting_an_unknown_step_says_so_with_a_suggestion(tmp_path: Path) -> None:
    (tmp_path / "su.yaml").write_text(
        'name: su\nsteps:\n  - {id: unit_tests, type: shell_command, command: "true"}\n'
    )
    (tmp_path / "su.wftest.yaml").write_text(
        "workflow: su.yaml\ncases:\n  - name: c\n    allow_real_shell: true\n"
        "    expect: {status: succeeded, steps: {unit_test: {status: succeeded}}}\n"
    )
    done = wfkit("test", "su.wftest.yaml", "--json", cwd=tmp_path)
    (case,) = json.loads(done.stdout)["cases"]
    assert case["status"] == "error"
    assert "expects step 'unit_test'" in case["error"]
    assert "did you mean 'unit_tests'?" in case["error"]


RUN_FAILURES = {
    "ShellCommandError": "steps:\n  - {id: s, type: shell_command, command: 'exit 3'}\n",
    "StepTimeoutError": (
        "steps:\n  - {id: s, type: shell_command, command: 'sleep 5', timeout: 0.2}\n"
    ),
    "UserError": "steps:\n  - {id: s, type: error, message: 'stop {{ 1 + 1 }}'}\n",
    "ToolNotFoundError": "steps:\n  - {id: s, type: mcp_call, tool: nothing_here}\n",
    "StateSizeLimitError": (
        "config: {max_state_bytes: 100}\nsteps:\n"
        "  - {id: s, type: state_update, path: raw.v, value: \"{{ 'x' * 500 }}\"}\n"
    ),
    "UndefinedVariableError": "steps:\n  - {id: s, type: user_message, message: '{{ nope }}'}\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(RUN_FAILURES))
def test_run_errors_name_their_step_in_the_workflows_words(tmp_path: Path, kind: str) -> None:
    (tmp_path / "f.yaml").write_text("name: f\n" + RUN_FAILURES[kind])
    human = wfkit("run", "f.yaml", cwd=tmp_path)
    assert human.returncode == 1, human.stderr
    assert_in_own_words(human.stdout + human.stderr)
    report = json.loads(wfkit("run", "f.yaml", "--json", cwd=tmp_path).stdout)
    assert report["error"]["type"] == kind
    assert report["error"]["step_id"] == "s"
    assert_in_own_words(json.dumps(report["error"]))


@pytest.mark.slow
def test_command_errors_are_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text("name: f\ninputs: {count: {type: integer}}\nsteps: []\n")
    (tmp_path / "file").write_text("")
    done = json.loads(wfkit("run", "f.yaml", "-i", "count=1", "--json", cwd=tmp_path).stdout)
    cases = {
        "InputError": (["run", "f.yaml", "-i", "cuont=1"], "did you mean 'count'?"),
        "RunNotFoundError": (["debug", "nope"], "no run 'nope'"),
        "ResumeError": (["resume", done["run_id"]], "cannot be resumed"),
        "CancelError": (["cancel", done["run_id"]], ""),
        "StoreError": (["runs", "--store", str(tmp_path / "file" / "runs.db")], "not a folder"),
        "NoTestsFoundError": (["test", str(tmp_path)], "no test suites found"),
    }
    for kind, (args, expected) in cases.items():
        human = wfkit(*args, cwd=tmp_path)
        assert human.returncode != 0, (kind, human.stdout)
        assert kind in human.stderr or kind == "NoTestsFoundError", (kind, human.stderr)
        assert expected in " ".join(human.stderr.split()), (kind, human.stderr)
        assert_in_own_words(human.stdout + human.stderr)
