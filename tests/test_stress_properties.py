"""Properties the stress figures rest on, at test size (benchmarks/stress.py prints figures)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfkit.commands import list_runs, run_workflow, run_workflow_async
from wfkit.commands.debug import debug_run
from wfkit.commands.explain import explain_workflow
from wfkit.engine.context import RunOptions
from wfkit.engine.events import Checkpoint
from wfkit.engine.runtime import Run
from wfkit.engine.tools import FunctionTools
from wfkit.errors import WfkitError
from wfkit.language.expressions import compile_expr
from wfkit.language.loader import load_text
from wfkit.language.models import STEP_TYPES


def test_error_history_is_bounded_with_a_count_of_what_was_dropped(
    write: Callable[..., Path],
) -> None:
    def down() -> None:
        raise RuntimeError("down")

    report = run_workflow(
        write(
            "name: storm\nconfig: {max_error_records: 3}\nsteps:\n"
            "  - {type: parallel_foreach, items: '{{ range(10) | list }}', sub_agent_task: c,\n"
            "     on_item_error: continue}\n"
            "sub_agent_tasks:\n  c:\n    inputs: {item: {type: integer}}\n"
            "    steps: [{type: mcp_call, tool: down}]\n"
        ),
        tools=FunctionTools({"down": down}),
    )
    assert len(report.errors) == 3
    assert report.errors_dropped == 7
    assert debug_run(report.run_id).errors_dropped == 7


def test_unrelated_writes_neither_recompute_nor_rewrite_a_large_value(tmp_path: Path) -> None:
    loaded = load_text(
        "name: large\nstate_schema:\n  raw: {big: array, counter: integer}\n  computed:\n"
        "    size: {from: raw.big, transform: input | length}\n"
        "steps:\n  - type: while_loop\n    condition: counter < 50\n    body:\n"
        "      - {type: state_update, path: raw.counter, operation: increment}\n",
        str(tmp_path / "large.yaml"),
    )
    written: list[set[tuple[str, str]]] = []

    def sink(event: Any) -> None:
        if isinstance(event, Checkpoint):
            written.append(set(event.changes))

    run = Run(
        loaded,
        "r",
        {},
        RunOptions(sinks=[sink], trace=True, initial_raw={"big": list(range(50_000))}),
    )
    outcome = asyncio.run(run.execute())
    assert outcome.state["computed"]["size"] == 50_000
    assert run.tracer is not None
    triggers = [r["trigger"] for r in run.tracer.records if r["kind"] == "transform"]
    assert triggers == ["initial state", "raw.big update"]
    assert ("raw", "big") in written[0]
    assert all(("raw", "big") not in changes for changes in written[1:])
    assert all(("raw", "counter") in changes for changes in written[1:-1])


def test_many_runs_at_once_in_one_process(write: Callable[..., Path]) -> None:
    flow = write(
        "name: tiny\nstate_schema:\n  raw: {n: integer}\nsteps:\n"
        "  - type: foreach\n    items: '{{ range(10) | list }}'\n    body:\n"
        "      - {type: state_update, path: raw.n, operation: increment}\n"
        "      - {type: shell_command, command: 'true', if: '{{ n == 5 }}'}\n"
    )

    async def many() -> list[Any]:
        return await asyncio.gather(*(run_workflow_async(flow) for _ in range(40)))

    reports = asyncio.run(many())
    assert {r.status for r in reports} == {"succeeded"}
    assert {r.state.raw["n"] for r in reports} == {10}
    assert len(list_runs(limit=1000)) == 40


KEYS = st.sampled_from(
    [
        "name",
        "steps",
        "type",
        "id",
        "command",
        "path",
        "value",
        "condition",
        "then",
        "else",
        "body",
        "items",
        "inputs",
        "config",
        "state_schema",
        "raw",
        "computed",
        "from",
        "transform",
        "on_error",
        "retry_count",
        "timeout",
        "finally",
        "sub_agent_tasks",
        "x",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.text(max_size=12),
    st.sampled_from(
        [*STEP_TYPES, "{{ x }}", "{{ 1/0 }}", "raw.x", "{{ 'a' * 10**9 }}", "input", "{{"]
    ),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=25,
)


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(DOCUMENTS)
def test_hostile_workflow_files_give_wfkit_errors_only(document: Any) -> None:
    if isinstance(document, dict):
        document.setdefault("name", "fuzz")
    text = yaml.safe_dump(document, default_flow_style=False)
    try:
        loaded = load_text(text, "fuzz.yaml")
    except WfkitError:
        return
    assert loaded.name


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(DOCUMENTS)
def test_hostile_workflows_explain_and_run_cleanly(tmp_path_factory: Any, document: Any) -> None:
    if not isinstance(document, dict):
        return
    document["name"] = "fuzz"
    document.pop("timeout", None)
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        explain_workflow(path)
        report = asyncio.run(
            run_workflow_async(
                path,
                store=folder / "store",
                shell=lambda command: {"stdout": "", "stderr": "", "exit_code": 0},
                sleep=_no_sleep,
            )
        )
    except WfkitError:
        return
    json.dumps(report.model_dump(mode="json"))  # whatever happened, the report is data


async def _no_sleep(_: float) -> None:
    return None


TOKENS = st.sampled_from(
    [
        "input",
        "x",
        "1",
        "10**9",
        "'a'",
        "*",
        "**",
        "+",
        "(",
        ")",
        "[",
        "]",
        "|",
        "length",
        "join",
        "range",
        ".",
        "__class__",
        "{{",
        "}}",
        "if",
        "else",
        "not",
        "==",
        ",",
        "dict",
        "9" * 30,
        "-1",
    ]
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(TOKENS, max_size=12))
def test_hostile_expressions_give_expression_errors_only(tokens: list[str]) -> None:
    source = " ".join(tokens)
    with contextlib.suppress(WfkitError):
        compile_expr(source, bare=True).evaluate({"input": [1, 2], "x": "abc"})
