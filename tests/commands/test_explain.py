"""``explain``: a static plan that names each mistake's step, line and cause."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import EXAMPLES
from wfkit.cli.app import app
from wfkit.commands.explain import explain_workflow
from wfkit.commands.explanation import Explanation

Write = Callable[..., Path]


def kinds(plan: Explanation) -> list[tuple[str, str | None]]:
    return [(w.kind, w.step_id) for w in plan.warnings]


def test_seed_example_warns_of_max_attempts_before_running() -> None:
    plan = explain_workflow(EXAMPLES / "seed-error-handling.yaml")
    undefined = [w for w in plan.warnings if w.kind == "undefined_name"]
    assert len(undefined) == 1
    assert undefined[0].step_id == "conditional_1"
    assert undefined[0].line == 29
    assert "'max_attempts'" in undefined[0].message
    flaky = plan.steps[0]
    assert (flaky.id, flaky.policy.strategy, flaky.policy.attempts) == (
        "shell_command_1",
        "retry",
        4,
    )
    assert flaky.policy.delays_ms == [2000, 4000, 8000]
    assert flaky.policy.worst_case_wait_ms == 14000 + 3 * 200
    assert flaky.writes == ["raw.last_error"]
    assert flaky.reads == ["error.message"]
    assert ("tool_unavailable", "mcp_call_1") in kinds(plan)
    cleanup = next(s for s in plan.steps if s.id == "mcp_call_2")
    assert cleanup.depth == 2


def test_corrected_seed_has_only_tool_warnings() -> None:
    plan = explain_workflow(EXAMPLES / "seed-error-handling-fixed.yaml")
    assert {k for k, _ in kinds(plan)} == {"tool_unavailable"}
    assert plan.inputs[0].model_dump() == {
        "name": "max_attempts",
        "type": "integer",
        "required": False,
        "status": "default",
        "value": 3,
        "description": "How many attempts the conditional allows.",
    }
    flaky = plan.steps[0]
    assert flaky.policy.retry_on == "error.exit_code == 75"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_explains(path: Path) -> None:
    plan = explain_workflow(path, agent="examples/bin/review-agent.py")
    assert plan.steps
    assert {w.kind for w in plan.warnings} <= {"tool_unavailable", "undefined_name"}
    if any(s.type == "agent_task" for s in plan.steps):  # told of no performer, it warns
        bare = explain_workflow(path)
        assert "agent_unavailable" in {w.kind for w in bare.warnings}


DIAGNOSIS = {
    "undefined name": (
        "name: d\nsteps:\n  - {id: greet, type: user_message, message: 'hi {{ usr }}'}\n",
        "undefined_name",
        "greet",
        "undefined name 'usr'",
    ),
    "wrong path": (
        "name: d\nstate_schema:\n  raw: {count: integer}\nsteps:\n"
        "  - {id: show, type: user_message, message: '{{ raw.cuont }}'}\n",
        "undefined_name",
        "show",
        "raw.cuont is not defined; did you mean 'count'?",
    ),
    "retry budget over the timeout": (
        "name: d\nconfig: {timeout: 10}\nsteps:\n  - {id: slow, type: shell_command, "
        "command: 'true', timeout: 5, on_error: retry, retry_count: 3}\n",
        "retry_budget",
        "slow",
        "exceeds the workflow timeout of 10 s",
    ),
    "unreachable after error": (
        "name: d\nsteps:\n  - {id: stop, type: error, message: nope}\n"
        "  - {id: never, type: user_message, message: x}\n",
        "unreachable",
        "never",
        "steps after 'stop' never run",
    ),
    "unreachable after break": (
        "name: d\nsteps:\n  - type: foreach\n    items: [1]\n    body:\n"
        "      - {id: out, type: break}\n      - {id: after, type: user_message, message: x}\n",
        "unreachable",
        "after",
        "steps after 'out' never run",
    ),
    "unknown step in steps.<id>": (
        "name: d\nsteps:\n  - {id: build, type: shell_command, command: 'true'}\n"
        "  - {id: show, type: user_message, message: '{{ steps.biuld.status }}'}\n",
        "unknown_step",
        "show",
        "did you mean 'build'?",
    ),
    "literal that looks like a reference": (
        "name: d\nstate_schema:\n  raw: {out: string}\nsteps:\n"
        "  - {id: run, type: shell_command, command: 'echo hi', "
        "state_update: {path: raw.out, value: stdout}}\n",
        "literal_looks_like_reference",
        "run",
        "did you mean '{{ stdout }}'?",
    ),
    "write to an undeclared field": (
        "name: d\nstate_schema:\n  raw: {count: integer}\nsteps:\n"
        "  - {id: typo, type: state_update, path: raw.cuont, value: 1}\n",
        "undeclared_write",
        "typo",
        "writes raw.cuont",
    ),
    "loop variable outside a loop": (
        "name: d\nsteps:\n  - {id: x, type: user_message, message: '{{ loop.item }}'}\n",
        "undefined_name",
        "x",
        "undefined name 'loop'",
    ),
}


@pytest.mark.parametrize("case", sorted(DIAGNOSIS))
def test_diagnosis_names_the_step_and_the_cause(case: str, write: Write) -> None:
    text, kind, step_id, message = DIAGNOSIS[case]
    plan = explain_workflow(write(text))
    first = plan.warnings[0]
    assert (first.kind, first.step_id) == (kind, step_id)
    assert message in first.message
    assert first.line is not None


def test_conditions_decided_by_inputs_mark_the_dead_branch(write: Write) -> None:
    flow = write(
        """
        name: d
        inputs:
          deploy: {type: boolean, default: false}
        state_schema:
          raw: {n: integer}
        steps:
          - id: gate
            type: conditional
            condition: deploy
            then: [{id: ship, type: shell_command, command: "true"}]
            else: [{id: skip, type: user_message, message: nope}]
          - {id: undecided, type: conditional, condition: "n > 0", then: []}
          - {id: maybe, type: user_message, message: x, if: "{{ deploy }}"}
        """
    )
    plan = explain_workflow(flow)
    by_id = {s.id: s for s in plan.steps}
    assert by_id["gate"].condition_value is False
    assert (by_id["ship"].dead, by_id["skip"].dead) == (True, False)
    assert by_id["undecided"].condition_value is None
    assert by_id["maybe"].dead
    flipped = {s.id: s for s in explain_workflow(flow, {"deploy": True}).steps}
    assert (flipped["ship"].dead, flipped["skip"].dead, flipped["maybe"].dead) == (
        False,
        True,
        False,
    )


def test_missing_input_is_reported_not_raised(write: Write) -> None:
    plan = explain_workflow(write("name: d\ninputs:\n  env: {type: string}\n"))
    assert plan.inputs[0].status == "missing"
    assert plan.warnings[0].kind == "inputs"
    assert "missing required input 'env'" in plan.warnings[0].message


def test_explain_never_executes_anything(write: Write, tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    plan = explain_workflow(
        write(
            f"name: d\nsteps:\n  - {{type: shell_command, command: 'touch {marker}'}}\n"
            f"finally:\n  - {{type: shell_command, command: 'touch {marker}'}}\n"
        )
    )
    assert not marker.exists()
    assert [s.scope for s in plan.steps] == ["workflow", "finally"]


def test_computed_fields_in_evaluation_order_and_worst_case(write: Write) -> None:
    plan = explain_workflow(
        write(
            """
        name: d
        config: {timeout: 60}
        state_schema:
          raw: {a: integer}
          computed:
            c: {from: computed.b, transform: input + 1}
            b: {from: raw.a, transform: input + 1}
        steps:
          - {type: wait, seconds: 2}
          - {type: shell_command, command: "true", timeout: 3, on_error: retry, retry_count: 1,
             retry_delay: 500, retry_jitter: 0}
        """
        )
    )
    assert [c.name for c in plan.computed] == ["b", "c"]
    assert plan.computed[1].dependencies == ["computed.b"]
    assert [s.worst_case_ms for s in plan.steps] == [2000, 6500]
    assert plan.worst_case_ms == 8500


def test_sub_agent_tasks_are_explained(write: Write) -> None:
    plan = explain_workflow(EXAMPLES / "parallel-review.yaml")
    task_steps = [s for s in plan.steps if s.scope == "review_file"]
    assert [s.id for s in task_steps] == ["count"]
    assert "inputs.path" in task_steps[0].reads


def test_cli_explain_json_and_tree(write: Write) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["explain", str(EXAMPLES / "seed-error-handling.yaml"), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert set(data) >= {"workflow", "inputs", "steps", "computed", "warnings"}
    assert {"id", "type", "path", "reads", "writes", "policy", "timeout", "tools"} <= set(
        data["steps"][0]
    )
    tree = runner.invoke(
        app,
        ["explain", str(EXAMPLES / "seed-error-handling.yaml")],
        env={"NO_COLOR": "1", "COLUMNS": "200"},
    )
    assert "conditional_1" in tree.stdout
    assert "waits=[2000, 4000, 8000] ms" in tree.stdout
    assert "line 29 conditional_1: undefined name 'max_attempts'" in tree.stdout
    bad = runner.invoke(app, ["explain", str(write("name: x\nstepz: 1\n"))])
    assert bad.exit_code == 2


def test_computed_fields_may_read_undeclared_raw_paths(write) -> None:  # type: ignore[no-untyped-def]
    from wfkit.commands import run_workflow
    from wfkit.errors import LoadError

    flow = write(
        "name: cf\nstate_schema:\n  computed:\n"
        "    size: {from: raw.big, transform: 'input | length if input else 0'}\n"
        "    safe: {from: raw.nothing, transform: input | length, on_error: use_fallback,"
        " fallback: -1}\n"
        "steps:\n  - {type: state_update, path: raw.big, value: [1, 2, 3]}\n"
    )
    report = run_workflow(flow)
    assert report.state.computed == {"size": 3, "safe": -1}
    kinds = [w.message for w in explain_workflow(flow).warnings if w.kind == "undeclared_read"]
    assert kinds == [
        "computed field 'size' reads raw.big, which state_schema.raw does not declare "
        "(a step writes it; until then it reads null)",
        "computed field 'safe' reads raw.nothing, which no step writes: it always gets its "
        "use_fallback value",
    ]
    strict = write(
        "name: s\nstate_schema:\n  computed:\n    x: {from: raw.nothing, transform: input}\n"
        "steps: []\n",
        "strict.yaml",
    )
    with pytest.raises(LoadError, match=r"reads 'raw\.nothing', which is not an input, raw or"):
        run_workflow(strict)
