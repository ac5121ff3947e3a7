"""The CLI through Typer's runner (in process) with colour off and a fixed width."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wfkit.cli.app import app
from wfkit.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE

Invoke = Callable[..., "object"]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> object:
        return runner.invoke(app, list(args), input=input)

    return invoke


GOOD = """
name: demo
inputs:
  who: {type: string, default: world}
  n: {type: integer, default: 1}
state_schema:
  raw: {said: string}
steps:
  - id: say
    type: state_update
    path: raw.said
    value: "hello {{ who }} x{{ n }}"
  - {type: user_message, message: "{{ said }}"}
"""


def test_run_json_is_one_document_with_the_spec_shape(cli, write) -> None:  # type: ignore[no-untyped-def]
    flow = write(GOOD)
    result = cli("run", str(flow), "-i", "who=there", "-i", "n=3", "--json")
    assert result.exit_code == EXIT_OK, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= {
        "run_id",
        "workflow",
        "status",
        "state",
        "steps",
        "errors",
        "warnings",
        "duration_ms",
    }
    assert report["status"] == "succeeded"
    assert report["state"]["raw"] == {"said": "hello there x3"}
    assert report["state"]["inputs"] == {"who": "there", "n": 3}
    assert report["steps"][0] == {
        "id": "say",
        "type": "state_update",
        "status": "succeeded",
        "attempts": 1,
        "executions": 1,
        "duration_ms": report["steps"][0]["duration_ms"],
    }
    assert "hello there x3" in result.stderr


def test_run_human_output(cli, write) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", str(write(GOOD)))
    assert result.exit_code == EXIT_OK
    assert "succeeded" in result.stdout
    assert "raw.said" in result.stdout
    assert '"hello world x1"' in result.stdout


def test_inputs_file_answers_file_and_overrides(cli, write, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    flow = write(GOOD + "  - {id: q, type: user_input, prompt: ok?}\n")
    inputs = tmp_path / "in.yaml"
    inputs.write_text("who: file\nn: 2\n")
    answers = tmp_path / "answers.json"
    answers.write_text('{"q": "yes"}')
    result = cli(
        "run", str(flow), "--inputs", str(inputs), "-i", "n=5", "--answers", str(answers), "--json"
    )
    assert result.exit_code == EXIT_OK, result.stdout
    assert json.loads(result.stdout)["state"]["raw"]["said"] == "hello file x5"


def test_failed_run_exits_1_and_reports_the_error(cli, write) -> None:  # type: ignore[no-untyped-def]
    flow = write("name: f\nsteps:\n  - {id: bad, type: shell_command, command: 'exit 3'}\n")
    result = cli("run", str(flow), "--json")
    assert result.exit_code == EXIT_FAILED
    report = json.loads(result.stdout)
    assert report["status"] == "failed"
    assert report["errors"][0]["error_type"] == "ShellCommandError"
    human = cli("run", str(flow))
    assert "ShellCommandError" in human.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.yaml"], "no such file"),
        (["run", "{flow}", "-i", "nonsense"], "name=value"),
        (["run", "{flow}", "-i", "n=notanumber"], "input 'n' should be integer"),
        (["run", "{flow}", "-i", "zz=1"], "unknown input"),
        (["run", "{bad}"], "unknown step type 'shel'"),
        (["run", "{flow}", "--inputs", "absent.yaml"], "cannot read inputs file"),
    ],
)
def test_usage_errors_exit_2_with_a_located_message(cli, write, args, message) -> None:  # type: ignore[no-untyped-def]
    flow = write(GOOD)
    bad = write("name: b\nsteps:\n  - type: shel\n", "bad.yaml")
    argv = [a.format(flow=flow, bad=bad) for a in args]
    human = cli(*argv)
    assert human.exit_code == EXIT_USAGE
    assert human.stdout == ""
    assert message in " ".join(human.stderr.split())
    machine = cli(*argv, "--json")
    assert machine.exit_code == EXIT_USAGE
    error = json.loads(machine.stdout)["error"]
    assert set(error) == {"type", "message", "file", "line", "column", "field"}
    assert message in error["message"]


def test_load_error_shows_the_source_line(cli, write) -> None:  # type: ignore[no-untyped-def]
    bad = write("name: b\nsteps:\n  - type: shel\n", "bad.yaml")
    result = cli("run", str(bad))
    assert "bad.yaml:3:5" in result.stderr
    assert "- type: shel" in result.stderr


def test_runs_lists_newest_first(cli, write) -> None:  # type: ignore[no-untyped-def]
    flow = write(GOOD)
    first = json.loads(cli("run", str(flow), "--json").stdout)["run_id"]
    second = json.loads(cli("run", str(flow), "--json").stdout)["run_id"]
    listed = json.loads(cli("runs", "--json").stdout)
    assert [r["run_id"] for r in listed] == [second, first]
    assert set(listed[0]) == {
        "run_id",
        "workflow",
        "status",
        "started_at",
        "duration_ms",
        "parent_run_id",
    }
    human = cli("runs")
    assert second in human.stdout


def test_runs_on_a_broken_store_is_a_usage_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "runs.db"
    broken.write_text("not a database" * 100)
    result = cli("runs", "--store", str(broken))
    assert result.exit_code == EXIT_USAGE


def test_read_only_commands_never_create_a_store(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "nowhere" / "runs.db"
    listed = cli("runs", "--store", str(store), "--json")
    assert (listed.exit_code, json.loads(listed.stdout)) == (0, [])
    for command in ("debug", "trace", "logs"):
        result = cli(command, "some-run", "--store", str(store))
        assert result.exit_code == EXIT_USAGE
        assert "there are no runs" in " ".join(result.stderr.split())
    assert not store.parent.exists()


def test_schema_and_version(cli) -> None:  # type: ignore[no-untyped-def]
    schema = json.loads(cli("schema").stdout)
    assert schema["title"] == "wfkit workflow"
    assert "0." in cli("version").stdout


def test_value_parsing() -> None:
    from wfkit.commands._io import parse_assignments

    parsed = parse_assignments(["a=1", "b=x", "c=[1,2]", "d=", "e=a=b", "f=true"])
    assert parsed == {"a": "1", "b": "x", "c": "[1,2]", "d": "", "e": "a=b", "f": "true"}
    assert [parsed[k].as_type("any") for k in "abcdef"] == [1, "x", [1, 2], "", "a=b", True]
    assert [parsed[k].as_type("string") for k in "abcdef"] == ["1", "x", "[1,2]", "", "a=b", "true"]


TYPED = """
name: typed
inputs:
  version: {type: string, default: "0"}
  year: {type: string, default: "x"}
  count: {type: integer, default: 0}
  tags: {type: array, default: []}
  note: {type: string, default: null}
steps:
  - {type: user_message, message: "{{ version }}"}
"""


def test_inputs_follow_their_declared_type(cli, write) -> None:  # type: ignore[no-untyped-def]
    flow = write(TYPED)
    args = ["run", str(flow), "--json", "-i", "version=1.0", "-i", "year=2024"]
    result = cli(*args, "-i", "count=3", "-i", "tags=[1,2]", "-i", "note=null")
    assert result.exit_code == 0, result.output
    inputs = json.loads(result.stdout)["state"]["inputs"]
    assert inputs == {"version": "1.0", "year": "2024", "count": 3, "tags": [1, 2], "note": None}
    refused = cli("run", str(flow), "-i", "version=null")
    assert refused.exit_code == 2
    assert "input 'version' is a string and cannot be null" in refused.output
    wrong = cli("run", str(flow), "-i", "count=many")
    assert wrong.exit_code == 2
    assert "input 'count' should be integer, got string 'many'" in wrong.output


def test_resume_through_the_cli(cli, write, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gate = tmp_path / "gate"
    flow = write(
        "name: r\nstate_schema:\n  raw: {n: integer}\nsteps:\n"
        "  - {type: state_update, path: raw.n, operation: increment}\n"
        f"  - {{type: shell_command, command: 'test -e {gate}'}}\n"
        "  - {type: state_update, path: raw.n, operation: increment}\n"
    )
    failed = json.loads(cli("run", str(flow), "--json").stdout)
    assert failed["status"] == "failed"
    gate.touch()
    result = cli("resume", failed["run_id"][:17], "--json")
    assert result.exit_code == EXIT_OK, result.stderr
    assert json.loads(result.stdout)["state"]["raw"]["n"] == 2
    again = cli("resume", failed["run_id"])
    assert again.exit_code == EXIT_USAGE
    assert "cannot be resumed: it succeeded" in " ".join(again.stderr.split())
    assert cli("resume", "nope").exit_code == EXIT_USAGE


def test_resume_refuses_a_changed_file_without_force(cli, write) -> None:  # type: ignore[no-untyped-def]
    flow = write(
        "name: r\nsteps:\n  - {id: a, type: state_update, path: raw.n, value: 1}\n"
        "  - {type: shell_command, command: 'exit 1'}\n"
    )
    failed = json.loads(cli("run", str(flow), "--json").stdout)
    flow.write_text("name: r\nsteps:\n  - {type: shell_command, command: 'exit 0'}\n")
    refused = cli("resume", failed["run_id"])
    assert refused.exit_code == EXIT_USAGE
    assert "--force" in refused.stderr
    assert "steps[0]" in refused.stderr
    forced = cli("resume", failed["run_id"], "--force")
    assert forced.exit_code == EXIT_OK


def test_counts_and_statuses_are_checked(cli) -> None:  # type: ignore[no-untyped-def]
    for args in (
        ["runs", "--status", "sucess"],
        ["prune", "--status", "bogus"],
        ["runs", "--limit", "99999999999999999999"],
        ["logs", "x", "--item", "99999999999999999999"],
        ["prune", "--keep", "-1"],
    ):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
    typo = cli("runs", "--status", "succeded")
    assert "did you mean 'succeeded'" in typo.output
