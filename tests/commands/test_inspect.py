"""Tracing, ``wfkit trace`` and ``wfkit debug`` through real runs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wfkit.cli.app import app
from wfkit.commands import run_workflow
from wfkit.commands.debug import debug_run
from wfkit.commands.trace import chrome_trace, trace_run
from wfkit.errors import InputError

TRACED = """
name: traced
inputs:
  target: {type: integer, default: 3}
state_schema:
  raw: {n: integer, batch_status: object}
  computed:
    file_batches: {from: inputs.target, transform: "range(input) | list"}
    ready_batches:
      from: [computed.file_batches, raw.batch_status]
      transform: "input[0] | reject('in', input[1].keys() | map('int') | list) | list"
    done: {from: [raw.n, inputs.target], transform: "input[0] >= input[1]"}
steps:
  - type: while_loop
    condition: "not done"
    body:
      - {id: inc, type: state_update, path: raw.n, operation: increment}
      - {id: mark, type: state_update, path: "raw.batch_status.{{ n - 1 }}", value: complete}
  - {id: flaky, type: shell_command, command: "exit 3", on_error: retry, retry_count: 1,
     retry_delay: 1, retry_on: "error.exit_code == 3", fallback_value: x}
  - {id: perm, type: user_message, message: "{{ nope }}", on_error: retry, retry_delay: 1,
     fallback_value: y}
  - {id: skipped, type: user_message, message: never, if: "{{ n > 10 }}"}
"""


def traced_run(write: Callable[..., Path], **kw: object) -> str:
    report = run_workflow(write(TRACED), trace=True, **kw)  # type: ignore[arg-type]
    assert report.status == "succeeded", report.errors
    return report.run_id


def test_transforms_are_traced_with_inputs_outputs_and_dependencies(write) -> None:  # type: ignore[no-untyped-def]
    view = trace_run(traced_run(write), field="ready_batches")
    assert view.traced
    first, *_, last = view.traces
    assert first["trigger"] == "initial state"
    assert first["output"] == [0, 1, 2]
    assert last["trigger"] == "raw.batch_status update"
    assert last["step_id"] == "mark"
    assert last["input"] == [[0, 1, 2], {"0": "complete", "1": "complete", "2": "complete"}]
    assert last["output"] == []
    assert last["dependencies"] == ["computed.file_batches", "raw.batch_status"]
    assert set(last) >= {
        "field",
        "timestamp",
        "trigger",
        "input",
        "output",
        "duration_ms",
        "dependencies",
    }
    assert all(r["field"] == "computed.ready_batches" for r in view.traces)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first["timestamp"])


def test_a_field_the_run_did_not_trace_is_an_error(write) -> None:  # type: ignore[no-untyped-def]
    run_id = traced_run(write)
    with pytest.raises(
        InputError,
        match=re.escape("traced no field 'computed.ready_batchs'; did you mean 'computed.ready_"),
    ):
        trace_run(run_id, field="ready_batchs")
    untraced = run_workflow(
        write("name: u\nsteps:\n  - {type: user_message, message: x}\n", "u.yaml")
    )
    with pytest.raises(InputError, match="recorded no computed-field traces"):
        trace_run(untraced.run_id, field="anything")
    result = CliRunner().invoke(app, ["trace", run_id, "--field", "ready_batchs"])
    assert result.exit_code == 2
    assert "did you mean 'computed.ready_batches'" in result.output


def test_conditions_and_retry_decisions_explain_skips_and_retries(write) -> None:  # type: ignore[no-untyped-def]
    view = trace_run(traced_run(write))
    conditions = [e for e in view.events if e["kind"] == "condition"]
    assert [c["outcome"] for c in conditions if c["step_id"] == "while_loop_1"] == [
        True,
        True,
        True,
        False,
    ]
    skipped = next(c for c in conditions if c["step_id"] == "skipped")
    assert (skipped["role"], skipped["operands"], skipped["outcome"]) == ("if", {"n": 3}, False)
    retries = [
        (e["step_id"], e["retried"], e["reason"]) for e in view.events if e["kind"] == "retry"
    ]
    assert retries == [
        ("flaky", True, "retry_on 'error.exit_code == 3' is true"),
        ("flaky", False, "all 2 attempts used"),
        ("perm", False, "UndefinedVariableError is permanent"),
    ]
    assert trace_run(view.run_id, step="flaky").events == [
        e for e in view.events if e.get("step_id") == "flaky"
    ]


def test_untraced_runs_keep_no_records(write) -> None:  # type: ignore[no-untyped-def]
    report = run_workflow(write(TRACED))
    view = trace_run(report.run_id)
    assert (view.traced, view.traces, view.events) == (False, [], [])
    assert view.steps  # step events are always recorded


def test_trace_buffer_is_bounded_and_sampled(write) -> None:  # type: ignore[no-untyped-def]
    text = TRACED.replace("steps:\n", "config:\n  trace: {max_records: 5}\nsteps:\n", 1)
    report = run_workflow(write(text))
    view = trace_run(report.run_id)
    assert len(view.traces) + len(view.events) == 5
    assert view.dropped > 0
    sampled = TRACED.replace("steps:\n", "config:\n  trace: {sample_rate: 0.5}\nsteps:\n", 1)
    half = trace_run(run_workflow(write(sampled)).run_id)
    full = trace_run(traced_run(write))
    assert len(half.traces) == (len(full.traces) + 1) // 2  # every other one, first kept


def test_chrome_trace_events(write) -> None:  # type: ignore[no-untyped-def]
    data = chrome_trace(trace_run(traced_run(write)))
    kinds = {e["ph"] for e in data["traceEvents"]}
    assert kinds == {"M", "X", "i"}
    flaky = next(e for e in data["traceEvents"] if e["name"] == "flaky")
    assert flaky["dur"] > 0
    assert flaky["args"]["attempts"] == 2
    json.dumps(data)


def test_debug_reports_failure_state_history_and_bottlenecks(write, tmp_path) -> None:  # type: ignore[no-untyped-def]
    flow = write(
        """
        name: broken
        config:
          circuit_breakers: {api: {failure_threshold: 1, reset_timeout: 60}}
        state_schema:
          raw: {items: array}
        steps:
          - {id: fill, type: state_update, path: raw.items, value: [1, 2, 3]}
          - {id: slow, type: shell_command, command: "sleep 0.05"}
          - {id: call, type: mcp_call, tool: api, circuit_breaker: api, on_error: continue}
          - id: boom
            type: shell_command
            command: "echo bad >&2; exit 4"
            cleanup:
              - {id: failing_cleanup, type: shell_command, command: "exit 5"}
        """
    )
    report = run_workflow(flow)
    info = debug_run(report.run_id)
    assert (info.status, info.failed_step) == ("failed", "boom")
    assert info.error is not None
    assert info.error["exit_code"] == 4
    assert info.state_source == "final"
    assert info.state["raw"].values == {"items": [1, 2, 3]}
    assert info.state["raw"].bytes == len('{"items":[1,2,3]}')
    boom = next(e for e in info.errors if e.step_id == "boom")
    assert "flow.yaml:" in (boom.stack_trace or "")
    cleanup = next(e for e in info.errors if e.step_id == "failing_cleanup")
    assert cleanup.details["during"] == "cleanup"
    assert info.bottlenecks[0].name == "slow"
    assert info.bottlenecks[0].kind == "step"
    assert info.breakers == {
        "api": {"state": "open", "failures": 1, "opened_at": info.breakers["api"]["opened_at"]}
    }
    assert info.next[0] == f"wfkit resume {report.run_id}"


def test_debug_of_an_interrupted_run_shows_the_checkpoint(write) -> None:  # type: ignore[no-untyped-def]
    from wfkit.store.sqlite import RunStore

    report = run_workflow(
        write(
            "name: i\nstate_schema:\n  raw: {n: integer}\nsteps:\n"
            "  - {type: state_update, path: raw.n, value: 7}\n"
            "  - {id: hang, type: shell_command, command: 'exit 1'}\n"
        )
    )
    with RunStore() as store:  # pretend its process died mid-run
        store._db.execute(
            "UPDATE runs SET status = 'running', state = NULL, pid = 999999999,"
            " current = 'hang' WHERE run_id = ?",
            (report.run_id,),
        )
    info = debug_run(report.run_id)
    assert (info.status, info.current_step, info.state_source) == (
        "interrupted",
        "hang",
        "checkpoint",
    )
    assert info.state["raw"].values == {"n": 7}


def test_cli_trace_and_debug(write, tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    run_id = json.loads(
        runner.invoke(app, ["run", str(write(TRACED)), "--trace", "--json"]).stdout
    )["run_id"]
    table = runner.invoke(app, ["trace", run_id], env={"NO_COLOR": "1", "COLUMNS": "160"})
    assert "computed.ready_batches" in table.stdout
    assert "UndefinedVariableError is permanent" in table.stdout
    data = json.loads(runner.invoke(app, ["trace", run_id, "--json"]).stdout)
    assert set(data) >= {"traces", "events", "steps"}
    out = tmp_path / "trace.json"
    chrome = runner.invoke(app, ["trace", run_id, "--format", "chrome", "-o", str(out)])
    assert chrome.exit_code == 0
    assert json.loads(out.read_text())["traceEvents"]
    assert runner.invoke(app, ["trace", run_id, "--format", "svg"]).exit_code == 2
    debug = runner.invoke(app, ["debug", run_id], env={"NO_COLOR": "1", "COLUMNS": "160"})
    assert "bottlenecks" in debug.stdout
    assert json.loads(runner.invoke(app, ["debug", run_id, "--json"]).stdout)["status"] == (
        "succeeded"
    )
    assert runner.invoke(app, ["debug", "nope"]).exit_code == 2
    assert runner.invoke(app, ["trace", "nope"]).exit_code == 2


def test_debug_suggests_trace_only_for_a_traced_run(write: Callable[..., Path]) -> None:
    traced = traced_run(write)
    untraced = run_workflow(write("name: u\nsteps:\n  - {type: user_message, message: x}\n"))
    assert debug_run(traced).next == [f"wfkit trace {traced}"]
    assert debug_run(untraced.run_id).next == [f"wfkit report {untraced.run_id}"]
