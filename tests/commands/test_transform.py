"""``test-transform``: one expression or one computed field, in the run sandbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import EXAMPLES
from wfkit.cli.app import app
from wfkit.commands.transform import evaluate_transform
from wfkit.errors import InputError, LoadError


def test_output_type_and_references() -> None:
    result = evaluate_transform(
        "input | map(attribute='n') | sum + bonus", [{"n": 1}, {"n": 2}], {"bonus": 10}
    )
    assert (result.output, result.type, result.error) == (13, "integer", None)
    assert result.references == ["bonus", "input"]
    assert result.duration_ms >= 0


def test_template_form_and_filters() -> None:
    assert evaluate_transform("{{ input | to_json }}", {"a": [1]}).output == '{"a": [1]}'
    assert evaluate_transform("ver {{ input }}", 2).output == "ver 2"


def test_errors_name_the_cause() -> None:
    undefined = evaluate_transform("input + missing", 1)
    assert undefined.error is not None
    assert (undefined.error.type, undefined.error.name) == ("UndefinedVariableError", "missing")
    syntax = evaluate_transform("input +", 1)
    assert syntax.error is not None
    assert (syntax.error.type, syntax.error.line) == ("ExpressionError", 1)
    hostile = evaluate_transform("'x' * 10**9")
    assert hostile.error is not None
    assert "refused by the sandbox" in hostile.error.message


def test_a_computed_field_of_a_workflow() -> None:
    flow = EXAMPLES / "build-project.yaml"
    result = evaluate_transform(
        workflow=flow, field="summary", state={"raw": {"checked": ["a", "b"], "test_runs": 2}}
    )
    assert result.output == "2 files checked, tests passed after 2 run(s)"
    assert result.dependencies == ["computed.checked_count", "raw.test_runs"]
    assert result.input == [2, 2]
    with pytest.raises(LoadError, match="no computed field 'nope'"):
        evaluate_transform(workflow=flow, field="nope")
    with pytest.raises(InputError, match="'inputs' and 'raw'"):
        evaluate_transform(workflow=flow, field="summary", state={"computed": {}})


def test_a_failing_field_reports_instead_of_raising(write: Callable[..., Path]) -> None:
    flow = write(
        "name: t\nstate_schema:\n  raw: {n: number}\n  computed:\n"
        "    inv: {from: n, transform: 1 / input, on_error: use_fallback}\n"
        "    strict: {from: n, transform: 1 / input}\n"
    )
    result = evaluate_transform(workflow=flow, field="strict", state={"raw": {"n": 0}})
    assert result.error is not None
    assert "ZeroDivisionError" in result.error.message


def test_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    context = tmp_path / "ctx.yaml"
    context.write_text("limit: 3\n")
    ok = runner.invoke(
        app,
        ["test-transform", "input < limit", "--input", "2", "--context", f"@{context}", "--json"],
    )
    assert ok.exit_code == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert set(data) >= {"output", "duration_ms", "references", "error"}
    assert data["output"] is True
    failed = runner.invoke(app, ["test-transform", "nope", "--json"])
    assert failed.exit_code == 1
    assert json.loads(failed.stdout)["error"]["name"] == "nope"
    bad = runner.invoke(app, ["test-transform", "x", "--input", "{not json"])
    assert bad.exit_code == 2
    assert "not valid JSON" in bad.stderr
    human = runner.invoke(
        app,
        ["test-transform", "--workflow", str(EXAMPLES / "hello.yaml"), "--field", "count"],
        env={"NO_COLOR": "1"},
    )
    assert "output 0" in human.stdout
    assert runner.invoke(app, ["test-transform"]).exit_code == 2
