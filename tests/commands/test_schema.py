"""``wfkit schema`` as editors and check-jsonschema use it: every property described, only
valid values offered, and the loader's rules where JSON Schema can say them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES
from wfkit.commands.schema import workflow_schema

WORKFLOWS = sorted(EXAMPLES.glob("*.yaml"))


def properties(schema: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        for name, prop in schema.get("properties", {}).items():
            yield f"{where}.{name}", prop
        for key, value in schema.items():
            yield from properties(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for value in schema:
            yield from properties(value, where)


def test_every_property_has_a_description() -> None:
    found = list(properties(workflow_schema()))
    assert len(found) > 300
    assert [where for where, prop in found if not prop.get("description")] == []


def test_every_example_in_the_schema_is_valid_for_its_property() -> None:
    """Examples editors show are values the property accepts (checked by the schema itself)."""
    import jsonschema

    schema = workflow_schema()
    with_examples = [(w, p) for w, p in properties(schema) if "examples" in p]
    assert len(with_examples) > 60
    for where, prop in with_examples:
        for example in prop["examples"]:
            subschema = {"$defs": schema["$defs"], **prop}
            errors = list(jsonschema.Draft202012Validator(subschema).iter_errors(example))
            assert errors == [], f"{where}: example {example!r}: {errors[0].message}"


def test_on_error_offers_only_its_values() -> None:
    prop = workflow_schema()["$defs"]["ShellCommandStep"]["properties"]["on_error"]
    assert prop["enum"] == ["fail", "continue", "retry", "fallback"]
    assert "anyOf" not in prop
    assert "null" not in json.dumps(prop)


@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    tool = shutil.which("check-jsonschema") or str(
        Path(sys.executable).with_name("check-jsonschema")
    )
    if not Path(tool).exists():
        pytest.fail("check-jsonschema is part of the dev extra")
    schema = tmp_path_factory.mktemp("schema") / "wfkit.schema.json"
    schema.write_text(json.dumps(workflow_schema()), encoding="utf-8")
    return [tool, "--schemafile", str(schema)]


def check(checker: list[str], *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*checker, *map(str, files)], capture_output=True, text=True, timeout=120, check=False
    )


def test_every_example_validates(checker: list[str]) -> None:
    assert WORKFLOWS
    done = check(checker, *WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


WRONG = {
    "unknown_key": "name: x\nstepz: []\n",
    "no_name": "steps: []\n",
    "bad_on_error": "name: x\nsteps:\n  - {type: wait, seconds: 1, on_error: sometimes}\n",
    "null_on_error": "name: x\nsteps:\n  - {type: wait, seconds: 1, on_error: null}\n",
    "unknown_type": "name: x\nsteps:\n  - {type: shel, command: ls}\n",
    "mcp_call_without_tool": "name: x\nsteps:\n  - {type: mcp_call, parameters: {}}\n",
    "bad_operation": "name: x\nsteps:\n  - {type: state_update, path: raw.a, operation: add}\n",
    "bad_on_item_error": (
        "name: x\nsub_agent_tasks: {t: {steps: []}}\nsteps:\n"
        "  - {type: parallel_foreach, items: [1], sub_agent_task: t, on_item_error: maybe}\n"
    ),
}


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_files_are_rejected(checker: list[str], tmp_path: Path, name: str) -> None:
    bad = tmp_path / f"{name}.yaml"
    bad.write_text(WRONG[name], encoding="utf-8")
    done = check(checker, bad)
    assert done.returncode == 1, (name, done.stdout)


def test_an_unknown_step_type_is_reported_with_the_valid_ones() -> None:
    """Beside the one alternative per step type, the list of types an editor names."""
    import jsonschema

    schema = workflow_schema()
    step = {"id": "a", "type": "shel", "command": "ls"}
    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors({"name": "x", "steps": [step], "finally": [step]}))
    enums = [e for e in errors if e.validator == "enum"]
    assert [list(e.absolute_path) for e in enums] == [["steps", 0, "type"], ["finally", 0, "type"]]
    assert enums[0].validator_value[:3] == ["agent_task", "break", "conditional"]
    assert len(enums[0].validator_value) == 16
