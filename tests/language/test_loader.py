from __future__ import annotations

from pathlib import Path

import pytest

from wfkit.errors import LoadError
from wfkit.language.compile import walk
from wfkit.language.loader import load_file, load_text
from wfkit.language.models import STEP_TYPES

pytestmark = pytest.mark.filterwarnings("error")


def load_error(text: str) -> LoadError:
    with pytest.raises(LoadError) as info:
        load_text(text, "flow.yaml")
    return info.value


def test_auto_ids_are_numbered_per_type_in_document_order() -> None:
    loaded = load_text(
        """
name: x
steps:
  - type: shell_command
    command: a
  - type: conditional
    condition: "true"
    then:
      - {type: shell_command, command: b}
    else:
      - {type: wait, seconds: 0}
  - {type: shell_command, command: c}
finally:
  - {type: shell_command, command: d}
""",
        "flow.yaml",
    )
    ids = [step.id for step, _ in walk(loaded.main.steps)]
    assert ids == [
        "shell_command_1",
        "conditional_1",
        "shell_command_2",
        "wait_1",
        "shell_command_3",
    ]
    assert [s.id for s in loaded.main.finally_steps] == ["shell_command_4"]
    assert loaded.main.by_id["wait_1"].line == 11
    assert loaded.main.by_id["wait_1"].field_path == "steps[1].else[0]"


def test_auto_ids_skip_ids_taken_explicitly() -> None:
    loaded = load_text(
        "name: x\nsteps:\n  - {type: wait, seconds: 0, id: wait_1}\n  - {type: wait, seconds: 0}\n"
    )
    assert [s.id for s in loaded.main.steps] == ["wait_1", "wait_2"]


@pytest.mark.parametrize(
    ("text", "line", "column", "field", "message"),
    [
        ("name: x\nstepz: []\n", 2, 1, "stepz", "unknown field 'stepz'; did you mean 'steps'?"),
        (
            "name: x\nsteps:\n  - type: shel_command\n    command: ls\n",
            3,
            5,
            "steps[0].type",
            "unknown step type 'shel_command'; did you mean 'shell_command'?",
        ),
        (
            "name: x\nsteps:\n  - type: shell_command\n",
            3,
            5,
            "steps[0]",
            "missing required field 'command'",
        ),
        (
            "name: x\nsteps:\n  - type: while_loop\n    condition: x\n    max_iterations: lots\n",
            5,
            5,
            "steps[0].max_iterations",
            "must be a whole number",
        ),
        (
            "name: x\nsteps:\n  - {type: wait, seconds: 1, comand: x}\n",
            3,
            30,
            "steps[0].comand",
            "unknown field 'comand'; did you mean 'command'?",
        ),
        ("name: x\nsteps:\n  - seconds: 1\n", 3, 5, "steps[0]", "a step needs a `type`"),
        ("steps: []\n", 1, 1, None, "missing required field 'name'"),
        (
            "name: x\nsteps:\n  - {type: wait, seconds: 1, id: a}\n"
            "  - {type: wait, seconds: 1, id: a}\n",
            4,
            30,
            "steps[1].id",
            "duplicate step id 'a' (first used on line 3)",
        ),
        (
            "name: x\nsteps:\n  - {type: state_update, path: inputs.x, value: 1}\n",
            3,
            26,
            "steps[0].path",
            "the 'inputs' tier is read-only",
        ),
        (
            "name: x\nsteps:\n  - {type: state_update, path: computed.x, value: 1}\n",
            3,
            26,
            "steps[0].path",
            "the 'computed' tier is read-only",
        ),
        (
            "name: x\nsteps:\n  - {type: state_update, path: 'x', value: 1}\n",
            3,
            26,
            "steps[0].path",
            "writes must start with 'raw.<field>'",
        ),
        (
            "name: x\nsteps:\n  - {type: state_update, path: 'inputs.{{ a }}', value: 1}\n",
            3,
            26,
            "steps[0].path",
            "read-only",
        ),
        (
            "name: x\nstate_schema:\n  computed:\n    a: {from: computed.b, transform: input}\n"
            "    b: {from: computed.a, transform: input}\n",
            4,
            9,
            "state_schema.computed.a.from",
            "cycle: a -> b -> a",
        ),
        (
            "name: x\ninputs: {a: {type: string}}\ndefault_state: {raw: {a: 1}}\n",
            3,
            23,
            "default_state.raw.a",
            "'a' is defined in both inputs and raw",
        ),
        ("name: x\nsteps:\n  - type: break\n", 3, 5, "steps[0]", "`break` outside"),
        (
            "name: x\nsteps:\n  - {type: conditional, condition: '{{ a < }}'}\n",
            3,
            25,
            "steps[0].condition",
            "invalid expression",
        ),
        ("name: x\nsteps:\n  - {type: mcp_call}\n", 3, 5, "steps[0]", "exactly one of"),
        (
            "name: x\nsteps:\n  - {type: shell_command, command: ls, circuit_breaker: api}\n",
            3,
            40,
            "steps[0].circuit_breaker",
            "unknown circuit breaker 'api'",
        ),
        (
            "name: x\nsteps:\n  - {type: parallel_foreach, items: [], sub_agent_task: revew}\n"
            "sub_agent_tasks:\n  review: {steps: []}\n",
            3,
            41,
            "steps[0].sub_agent_task",
            "did you mean 'review'?",
        ),
        (
            "name: x\nstate_schema:\n  computed:\n    a: {from: nothing, transform: input}\n",
            4,
            9,
            "state_schema.computed.a.from",
            "reads 'nothing'",
        ),
        (
            "name: x\nstate_schema:\n  raw: {n: number}\n  computed:\n    a: {from: n, transform: "
            "input + m}\n",
            5,
            18,
            "state_schema.computed.a.transform",
            "undefined name 'm'",
        ),
        (
            "name: x\nstate_schema:\n  raw: {n: number}\ndefault_state:\n  raw: {n: lots}\n",
            5,
            9,
            "default_state.raw.n",
            "should be number",
        ),
        (
            "name: x\ninputs:\n  n: {type: integer, default: lots}\n",
            3,
            22,
            "inputs.n.default",
            "should be integer",
        ),
        ("name: x\ndefault_state:\n  raw: {loop: 1}\n", 3, 9, "default_state.raw.loop", "reserved"),
        ("name: x\non: push\n", 2, 1, "on", "boolean"),
        ("- a\n", 1, 1, None, "must be a YAML mapping"),
        (
            "name: x\nsteps:\n  - {type: user_message, message: no}\n",
            3,
            26,
            "steps[0].message",
            "quote the value",
        ),
        (
            "name: x\nsteps:\n  - {type: wait, seconds: 1, id: '1bad'}\n",
            3,
            30,
            "steps[0].id",
            "should match pattern",
        ),
    ],
)
def test_bad_input_names_file_line_column_and_field(
    text: str, line: int | None, column: int | None, field: str | None, message: str
) -> None:
    error = load_error(text)
    assert error.file == "flow.yaml"
    assert (error.line, error.column, error.field) == (line, column, field)
    assert message in error.message


def test_several_problems_are_counted() -> None:
    error = load_error("name: x\nstepz: []\nfinaly: []\n")
    assert "(and 1 more problem)" in error.message


def test_load_file_reports_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no such file"):
        load_file(tmp_path / "absent.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(LoadError, match="not UTF-8"):
        load_file(binary)
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    with pytest.raises(LoadError, match="cannot read"):
        load_file(folder)


def test_every_step_type_loads_and_compiles() -> None:
    loaded = load_text(
        """
name: all
config:
  circuit_breakers: {api: {failure_threshold: 2, reset_timeout: 1}}
sub_agent_tasks:
  t:
    inputs: {item: {type: any}}
    steps: [{type: user_message, message: "{{ item }}"}]
steps:
  - {type: state_update, path: raw.a, value: 1}
  - {type: shell_command, command: [echo, "{{ a }}"], env: {X: "{{ a }}"}}
  - {type: mcp_call, tool: t, server: s, parameters: {q: "{{ a }}"}, circuit_breaker: api}
  - type: conditional
    condition: a > 0
    then: [{type: user_message, message: hi}]
  - type: while_loop
    condition: "false"
    body: [{type: break}, {type: continue}]
  - type: foreach
    items: [1, 2]
    body: [{type: continue}]
  - {type: user_input, prompt: "?", choices: [a, b], default: a}
  - {type: wait, seconds: 0}
  - {type: error, message: nope, error_type: Custom, if: "false"}
  - {type: parallel_foreach, items: [1], sub_agent_task: t}
""",
    )
    kinds = [step.step_type for step, _ in walk(loaded.main.steps)]
    assert kinds[:4] == ["state_update", "shell_command", "mcp_call", "conditional"]
    assert set(kinds) >= {
        "while_loop",
        "foreach",
        "break",
        "continue",
        "user_input",
        "wait",
        "error",
        "parallel_foreach",
        "user_message",
    }
    assert loaded.tasks["t"].steps[0].id == "user_message_1"


def test_error_handler_block_and_policy_fields_are_accepted() -> None:
    loaded = load_text(
        """
name: x
steps:
  - type: shell_command
    command: ls
    on_error: retry
    retry_count: 2
    retry_delay: 10
    retry_backoff: 3
    retry_max_delay: 100
    retry_jitter: 0
    retry_on: [ShellCommandError]
    fallback_value: {a: 1}
    error_state_update: [{path: raw.e, value: "{{ error.message }}"}]
    timeout: 5
    error_handler: {strategy: fallback, retry_count: 1, fallback_value: 2, error_state_path: raw.e}
  - {type: shell_command, command: ls, retry_on: "error.exit_code == 75"}
"""
    )
    first = loaded.main.steps[0]
    assert first.retry_on == ["ShellCommandError"]
    assert first.error_handler is not None
    assert first.error_handler.strategy == "fallback"
    assert loaded.main.steps[1].compiled("retry_on").references == {"error.exit_code"}


def test_computed_fields_are_ordered_by_dependency() -> None:
    loaded = load_text(
        """
name: x
state_schema:
  raw: {n: number}
  computed:
    c: {from: computed.b, transform: input + 1}
    b: {from: computed.a, transform: input + 1}
    a: {from: n, transform: input + 1}
"""
    )
    plan = loaded.main.state
    assert [c.name for c in plan.computed] == ["a", "b", "c"]
    assert plan.dependents["raw.n"] == ("a",)
    assert plan.dependents["computed.a"] == ("b",)


def test_digest_changes_with_the_text() -> None:
    assert load_text("name: a\n").digest != load_text("name: b\n").digest


def test_schema_command_output_validates_field_names() -> None:
    from wfkit.commands.schema import workflow_schema

    schema = workflow_schema()
    assert schema["title"] == "wfkit workflow"
    assert "finally" in schema["properties"]
    assert schema["additionalProperties"] is False
    step_types = {
        d["properties"]["type"]["const"]
        for name, d in schema["$defs"].items()
        if name.endswith("Step") and name != "StepBase"
    }
    assert "shell_command" in step_types
    assert len(step_types) == len(STEP_TYPES) == 16


@pytest.mark.parametrize(
    ("choices", "where"),
    [
        ("[yes, no]", "choices[0]"),
        ("['yes', off]", "choices[1]"),
        ("[a, b]\n    default: no", "default"),
    ],
)
def test_yaml_11_booleans_in_choices_are_refused(choices: str, where: str) -> None:
    text = f"name: x\nsteps:\n  - type: user_input\n    prompt: p\n    choices: {choices}\n"
    with pytest.raises(LoadError, match=r"is read by YAML 1\.1 as the boolean") as caught:
        load_text(text, "f.yaml")
    assert caught.value.field == f"steps[0].{where}"


def test_quoted_or_true_false_choices_load() -> None:
    text = "name: x\nsteps:\n  - type: user_input\n    prompt: p\n    choices: ['yes', true]\n"
    assert load_text(text, "f.yaml").name == "x"


EVERY_PROBLEM = """\
name: x
steps:
  - id: a
    type: foreach
    items: 5
    body: []
  - id: b
    type: shell_command
    comand: ls
config: {timeout: 5, bogus: 1}
"""


def test_every_problem_of_a_file_is_reported_sorted_by_line() -> None:
    error = load_error(EVERY_PROBLEM)
    found = [(p.line, p.field, p.message) for p in error.problems]
    assert found == [
        (5, "steps[0].items", "items must be a list, a mapping or an expression, got 5"),
        (7, "steps[1]", "missing required field 'command'"),
        (9, "steps[1].comand", "unknown field 'comand'; did you mean 'command'?"),
        (10, "config.bogus", "unknown field 'bogus'"),
    ]
    # the error itself is the first problem, so code reading one location keeps working
    assert (error.line, error.column, error.field) == (5, 5, "steps[0].items")
    assert error.message.endswith("(and 3 more problems)")


EVERY_LATER_PROBLEM = """\
name: x
config:
  circuit_breakers: {api: {failure_threshold: 2}}
state_schema:
  raw: {n: integer}
  computed:
    a: {from: computed.b, transform: "input"}
    b: {from: computed.a, transform: "input"}
    c: {from: raw.nope, transform: "input"}
steps:
  - {id: s, type: state_update, path: raw.n, value: 1}
  - {id: s, type: state_update, path: raw.n, value: 2}
  - {id: t, type: break}
  - {id: u, type: shell_command, command: "ls", circuit_breaker: apj}
  - {id: v, type: shell_command, command: "{{ x ", retry_on: [ToolErorr]}
  - {id: w, type: parallel_foreach, items: [1], sub_agent_task: missing}
"""


def test_every_later_stage_problem_is_reported_at_once() -> None:
    """ids, references, expressions, state plans: each found, none stops the others."""
    error = load_error(EVERY_LATER_PROBLEM)
    found = [(p.line, p.field) for p in error.problems]
    assert found == sorted(found, key=lambda f: f[0] or 0)
    messages = " | ".join(p.message for p in error.problems)
    for expected in (
        "computed fields form a cycle",
        "computed field 'c' reads 'raw.nope'",
        "duplicate step id 's' (first used on line 11)",
        "`break` outside a while_loop or foreach",
        "unknown circuit breaker 'apj'; did you mean 'api'?",
        "unknown error type 'ToolErorr' in retry_on; did you mean 'ToolError'?",
        "unknown sub_agent_task 'missing'",
    ):
        assert expected in messages
    assert len(error.problems) >= 8  # the unclosed expression too
    lines = {p.line for p in error.problems}
    assert {7, 9, 12, 13, 14, 15, 16} <= lines
    assert error.message.endswith(f"(and {len(error.problems) - 1} more problems)")


def test_a_single_problem_is_its_own_list() -> None:
    error = load_error("name: x\nsteps: []\nstepz: []\n")
    assert error.problems == [error]


def test_an_unclosed_quote_is_reported_where_it_opens() -> None:
    error = load_error('name: x\ndescription: "never closed\nsteps: []\n')
    assert (error.line, error.column) == (2, 14)
    assert "quoted scalar: it is never closed" in error.message
