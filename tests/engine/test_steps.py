"""Every step type, driven through YAML workflows run by the command layer."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wfkit.commands import RunReport, run_workflow_async
from wfkit.engine.context import RunOptions
from wfkit.engine.runtime import Run
from wfkit.engine.tools import FunctionTools
from wfkit.language.loader import load_text

Runner = Callable[..., RunReport]


def step(report: RunReport, step_id: str) -> Any:
    return next(s for s in report.steps if s.id == step_id)


# --- state_update ----------------------------------------------------------------------


def test_state_update_with_templated_path_and_result(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: t
        state_schema:
          raw: {slots: object, n: number}
        steps:
          - type: foreach
            items: [a, b]
            body:
              - type: state_update
                path: "raw.slots.{{ loop.item }}"
                value: "{{ loop.index }}"
          - id: inc
            type: state_update
            path: raw.n
            operation: increment
            by: 5
            state_update: {path: raw.slots.after, value: "{{ result }}"}
          - type: state_update
            updates:
              - {path: raw.n, operation: multiply, by: 2}
              - {path: raw.slots.a, operation: delete}
        """
    )
    assert report.status == "succeeded", report.errors
    assert report.state.raw == {"slots": {"b": 1, "after": 5}, "n": 10}


# --- shell_command ---------------------------------------------------------------------


def test_shell_result_and_metacharacters_in_state_stay_data(
    run_yaml: Runner, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    hostile = f'x\'; rm -f {victim}; echo "$(id)" `id` $HOME && true | cat > /dev/null #'
    report = run_yaml(
        """
        name: t
        inputs:
          text: {type: string}
        state_schema:
          raw: {echoed: string}
        steps:
          - id: echo
            type: shell_command
            command: "printf '%s' {{ text }}"
            state_update: {path: raw.echoed, value: "{{ result.stdout }}"}
        """,
        {"text": hostile},
    )
    assert report.status == "succeeded", report.errors
    assert report.state.raw["echoed"] == hostile
    assert victim.read_text() == "keep"


def test_shell_argv_env_and_working_directory(run_yaml: Runner, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    report = run_yaml(
        """
        name: t
        inputs:
          word: {type: string, default: "two words"}
        state_schema:
          raw: {out: object}
        steps:
          - type: shell_command
            command: ["sh", "-c", 'echo "$1|$GREETING|$(basename "$PWD")"', "-", "{{ word }}"]
            env: {GREETING: "hi {{ word }}"}
            working_directory: sub
            state_update: {path: raw.out, value: "{{ result }}"}
        """
    )
    assert report.status == "succeeded", report.errors
    assert report.state.raw["out"] == {
        "stdout": "two words|hi two words|sub",
        "stderr": "",
        "exit_code": 0,
    }


def test_shell_failure_carries_exit_code_and_stderr(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: t
        steps:
          - id: bad
            type: shell_command
            command: "echo oops >&2; exit 3"
          - id: never
            type: shell_command
            command: "true"
        """
    )
    assert report.status == "failed"
    assert [(s.id, s.status) for s in report.steps] == [("bad", "failed")]
    [error] = report.errors
    assert error.error_type == "ShellCommandError"
    assert error.details["exit_code"] == 3
    assert error.details["stderr"] == "oops"
    assert "exited with 3: oops" in error.message
    assert "flow.yaml:3 steps[0] (bad)" in (error.stack_trace or "")


def test_ok_exit_codes_and_missing_command(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: t
        state_schema:
          raw: {code: integer}
        steps:
          - type: shell_command
            command: "exit 1"
            ok_exit_codes: [0, 1]
            state_update: {path: raw.code, value: "{{ result.exit_code }}"}
          - type: shell_command
            command: ["/nonexistent/tool", "x"]
        """
    )
    assert report.state.raw["code"] == 1
    assert report.errors[0].details["exit_code"] == 127
    assert "cannot start" in report.errors[0].message


def test_shell_output_is_bounded(write: Callable[..., Path]) -> None:
    loaded = load_text(
        """
name: t
state_schema:
  raw: {out: string}
steps:
  - id: big
    type: shell_command
    command: "head -c 5000 /dev/zero | tr '\\\\0' x"
    state_update: {path: raw.out, value: "{{ result.stdout }}"}
""",
        str(write("name: t\n")),
    )
    outcome = asyncio.run(Run(loaded, "r1", {}, RunOptions(max_output_bytes=1000)).execute())
    assert outcome.status == "succeeded", outcome.errors
    out = outcome.state["raw"]["out"]
    # the head and the tail of the stream, each max_output_bytes, and what was dropped
    assert out == "x" * 1000 + "\n[wfkit: 3000 more bytes not kept]\n" + "x" * 1000


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has ended
        return stat.read().split()[2] != "Z"


def _wait_gone(pid: int) -> bool:
    for _ in range(200):
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


def test_step_timeout_ends_the_whole_process_group(run_yaml: Runner, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    report = run_yaml(
        f"""
        name: t
        steps:
          - id: slow
            type: shell_command
            timeout: 0.5
            command: "sleep 60 & echo $! > {pidfile}; sleep 60"
        """
    )
    assert report.status == "failed"
    assert report.errors[0].error_type == "StepTimeoutError"
    child = int(pidfile.read_text().strip())
    assert _wait_gone(child), "the backgrounded grandchild survived the timeout"


def test_workflow_timeout(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: t
        config: {timeout: 0.3}
        steps:
          - {id: slow, type: shell_command, command: "sleep 30"}
        """
    )
    assert report.status == "timed_out"
    assert report.error is not None
    assert report.error["type"] == "WorkflowTimeoutError"
    assert step(report, "slow").status == "cancelled"


# --- control flow ----------------------------------------------------------------------


def test_conditional_branches_and_if_skips(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: t
        inputs:
          go: {type: boolean, default: false}
        state_schema:
          raw: {path: array}
        steps:
          - id: choose
            type: conditional
            condition: go
            then:
              - {id: yes_branch, type: state_update, path: raw.path, operation: append, value: then}
            else:
              - {id: no_branch, type: state_update, path: raw.path, operation: append, value: else}
          - id: skipped
            if: "{{ go }}"
            type: state_update
            path: raw.path
            operation: append
            value: never
          - id: reads_status
            type: state_update
            path: raw.path
            operation: append
            value: "{{ steps.skipped.status }}/{{ steps.choose.output.branch }}"
        """
    )
    assert report.state.raw["path"] == ["else", "skipped/else"]
    assert step(report, "skipped").status == "skipped"
    assert step(report, "skipped").executions == 0
    assert [s.id for s in report.steps] == ["choose", "no_branch", "skipped", "reads_status"]


def test_while_loop_with_break_continue_and_max_iterations(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: t
        state_schema:
          raw: {n: integer, odd: array, spins: integer}
        steps:
          - type: while_loop
            condition: "n < 100"
            body:
              - {type: state_update, path: raw.n, operation: increment}
              - type: conditional
                condition: "n % 2 == 0"
                then: [{type: continue}]
              - type: conditional
                condition: "n > 7"
                then: [{type: break}]
              - {type: state_update, path: raw.odd, operation: append, value: "{{ n }}"}
          - id: capped
            type: while_loop
            condition: "true"
            max_iterations: 4
            body: [{type: state_update, path: raw.spins, operation: increment}]
        """
    )
    assert report.status == "succeeded", report.errors
    assert report.state.raw["odd"] == [1, 3, 5, 7]
    assert report.state.raw["n"] == 9
    assert report.state.raw["spins"] == 4
    assert any("max_iterations=4" in w for w in report.warnings)


def test_foreach_over_list_and_mapping_with_nested_loops(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: t
        state_schema:
          raw: {pairs: array}
        steps:
          - type: foreach
            items: {a: 1, b: 2}
            body:
              - type: foreach
                items: [x, y]
                body:
                  - type: state_update
                    path: raw.pairs
                    operation: append
                    value: "{{ loop.item }}{{ loop.index }}"
              - type: state_update
                path: raw.pairs
                operation: append
                value: "{{ loop.item.key }}={{ loop.item.value }}/{{ loop.iteration }}"
        """
    )
    assert report.state.raw["pairs"] == ["x0", "y1", "a=1/1", "x0", "y1", "b=2/2"]


def test_foreach_items_must_be_a_list(run_yaml: Runner) -> None:
    report = run_yaml("name: t\nsteps:\n  - {type: foreach, items: '{{ 5 }}', body: []}\n")
    assert report.errors[0].error_type == "ExpressionError"
    assert "must be a list" in report.errors[0].message


def test_loop_variables_do_not_leak(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: t
        steps:
          - {type: foreach, items: [1], body: []}
          - {id: after, type: user_message, message: "{{ loop.item }}"}
        """
    )
    assert report.errors[0].error_type == "UndefinedVariableError"
    assert report.errors[0].step_id == "after"


# --- messages, input, wait, error ------------------------------------------------------


def test_user_message_and_input_from_answers(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: t
        state_schema:
          raw: {env: string}
        steps:
          - id: which
            type: user_input
            prompt: "Deploy where?"
            choices: [staging, prod]
            state_update: {path: raw.env, value: "{{ result }}"}
          - {type: user_message, level: success, message: "deploying to {{ env }}"}
        """,
        answers={"which": "staging"},
    )
    assert report.state.raw["env"] == "staging"
    assert [(m.level, m.text) for m in report.messages] == [("success", "deploying to staging")]


def test_user_input_without_answer_or_terminal_fails_clearly(run_yaml: Runner) -> None:
    report = run_yaml("name: t\nsteps:\n  - {id: q, type: user_input, prompt: Name?}\n")
    assert report.errors[0].error_type == "UserError"
    assert "--answers FILE" in report.errors[0].message


def test_user_input_answer_must_be_a_choice(run_yaml: Runner) -> None:
    report = run_yaml(
        "name: t\nsteps:\n  - {id: q, type: user_input, prompt: x, choices: [a, b]}\n",
        answers={"q": "c"},
    )
    assert "is not one of" in report.errors[0].message


def test_user_input_asks_the_terminal_callback(run_yaml: Runner) -> None:
    asked: list[Any] = []

    def ask(prompt: str, choices: list[Any] | None, default: Any) -> Any:
        asked.append((prompt, choices, default))
        return "typed"

    report = run_yaml(
        "name: t\nsteps:\n  - {id: q, type: user_input, prompt: 'Name {{ 1 }}?', default: x}\n",
        ask=ask,
    )
    assert report.status == "succeeded"
    assert asked == [("Name 1?", None, "x")]


def test_wait_uses_the_injected_clock(write: Callable[..., Path]) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    loaded = load_text(
        "name: t\nsteps:\n  - {type: wait, seconds: '{{ 60 * 5 }}'}\n"
        "  - {type: wait, seconds: 0.5}\n",
        str(write("name: t\n")),
    )
    outcome = asyncio.run(Run(loaded, "r", {}, RunOptions(sleep=fake_sleep)).execute())
    assert outcome.status == "succeeded"
    assert slept == [300.0, 0.5]


@pytest.mark.parametrize("seconds", ["\"{{ 'soon' }}\"", "-1", "999999"])
def test_wait_rejects_bad_durations(run_yaml: Runner, seconds: str) -> None:
    report = run_yaml(f"name: t\nsteps:\n  - {{type: wait, seconds: {seconds}}}\n")
    assert report.errors[0].error_type == "ExpressionError"


def test_error_step_runs_cleanup_then_fails_with_user_error(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: t
        state_schema:
          raw: {cleaned: string}
        steps:
          - id: stop
            type: error
            message: "gave up at {{ 3 }}"
            error_type: Quota
            cleanup:
              - type: state_update
                path: raw.cleaned
                value: "after {{ error.type }}: {{ error.message }}"
              - {id: broken_cleanup, type: shell_command, command: "exit 4"}
        finally:
          - {id: fin, type: user_message, message: "status={{ workflow.status }}"}
        """
    )
    assert report.status == "failed"
    assert report.error is not None
    assert report.error["type"] == "UserError"
    assert report.error["kind"] == "Quota"
    assert report.error["message"] == "gave up at 3"
    assert report.state.raw["cleaned"] == "after UserError: gave up at 3"
    assert [e.error_type for e in report.errors] == ["UserError", "ShellCommandError"]
    assert report.messages[-1].text == "status=failed"


def test_finally_runs_after_success_and_its_failure_fails_the_run(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: t
        steps:
          - {type: user_message, message: main}
        finally:
          - {type: user_message, message: "{{ workflow.status }}"}
          - {id: boom, type: shell_command, command: "exit 2"}
        """
    )
    assert [m.text for m in report.messages] == ["main", "succeeded"]
    assert report.status == "failed"
    assert report.error is not None
    assert report.error["step_id"] == "boom"


def test_nested_failure_is_recorded_once_and_fails_parents(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: t
        steps:
          - id: outer
            type: foreach
            items: [1]
            body:
              - id: inner
                type: conditional
                condition: "true"
                then: [{id: leaf, type: shell_command, command: "exit 9"}]
        """
    )
    assert [e.step_id for e in report.errors] == ["leaf"]
    assert [(s.id, s.status) for s in report.steps] == [
        ("outer", "failed"),
        ("inner", "failed"),
        ("leaf", "failed"),
    ]
    trace = report.errors[0].stack_trace or ""
    assert trace.splitlines()[0].endswith("(outer)")
    assert trace.splitlines()[-1].endswith("(leaf)")


# --- mcp_call through a tool provider --------------------------------------------------


def test_mcp_call_uses_the_provider_and_missing_tools_fail(run_yaml: Runner) -> None:
    tools = FunctionTools({"search": lambda query: {"hits": [query.upper()]}})
    report = run_yaml(
        """
        name: t
        state_schema:
          raw: {hits: array}
        steps:
          - type: mcp_call
            tool: search
            parameters: {query: "{{ 'abc' }}"}
            state_update: {path: raw.hits, value: "{{ result.hits }}"}
          - {id: absent, type: mcp_call, method: nope}
        """,
        tools=tools,
    )
    assert report.state.raw["hits"] == ["ABC"]
    assert tools.calls == [("search", {"query": "abc"})]
    assert report.errors[0].error_type == "ToolNotFoundError"
    assert report.errors[0].step_id == "absent"


def test_tool_exceptions_become_tool_errors(run_yaml: Runner) -> None:
    def broken() -> None:
        raise RuntimeError("backend down")

    async def slow() -> str:
        await asyncio.sleep(0)
        return "ok"

    report = run_yaml(
        "name: t\nsteps:\n  - {type: mcp_call, tool: slow}\n  - {type: mcp_call, tool: broken}\n",
        tools=FunctionTools({"broken": broken, "slow": slow}),
    )
    assert report.errors[0].error_type == "ToolError"
    assert "backend down" in report.errors[0].message


def test_a_tool_result_larger_than_any_state_value_fails_the_step(run_yaml: Runner) -> None:
    """A result no state could hold is refused when it arrives, not kept in the run."""
    report = run_yaml(
        """
        name: t
        config: {max_state_bytes: 1000}
        steps:
          - {id: big, type: mcp_call, tool: dump, on_error: continue}
          - {id: small, type: mcp_call, tool: dump, parameters: {n: 10}}
        """,
        tools=FunctionTools({"dump": lambda n=5000: "x" * n}),
    )
    assert report.status == "succeeded"
    [error] = report.errors
    assert (error.step_id, error.error_type) == ("big", "StateSizeLimitError")
    assert "5,000 characters, more than max_state_bytes=1,000" in error.message
    assert report.steps[1].status == "succeeded"


# --- parallel_foreach ------------------------------------------------------------------

PARALLEL = """
name: t
inputs:
  items: {type: array}
state_schema:
  raw: {results: array}
steps:
  - id: fan
    type: parallel_foreach
    items: "{{ items }}"
    sub_agent_task: work
    max_parallel: 3
    on_item_error: __MODE__
    __MIN__
    with: {n: "{{ loop.item }}", position: "{{ loop.index }}"}
    state_update:
      path: raw.results
      value: "{{ result | map(attribute='state') | map(attribute='raw') | list }}"
sub_agent_tasks:
  work:
    inputs:
      n: {type: integer}
      position: {type: integer}
    state_schema:
      raw: {square: integer, at: integer}
    steps:
      - type: mcp_call
        tool: probe
        parameters: {n: "{{ n }}"}
      - type: state_update
        updates:
          - {path: raw.square, value: "{{ n * n }}"}
          - {path: raw.at, value: "{{ position }}"}
"""


class Probe:
    """Counts concurrency; fails for chosen items."""

    def __init__(self, fail: set[int] | None = None, delay: float = 0.01) -> None:
        self.fail = fail or set()
        self.delay = delay
        self.active = 0
        self.peak = 0
        self.seen: list[int] = []

    async def __call__(self, n: int) -> int:
        self.active += 1
        self.peak = max(self.peak, self.active)
        self.seen.append(n)
        try:
            await asyncio.sleep(self.delay * (n % 3))
            if n in self.fail:
                raise RuntimeError(f"item {n} broke")
            return n
        finally:
            self.active -= 1


def run_parallel(
    write: Callable[..., Path],
    items: list[int],
    probe: Probe,
    mode: str = "fail_fast",
    min_success: int | None = None,
) -> RunReport:
    text = PARALLEL.replace("__MODE__", mode).replace(
        "__MIN__", f"min_success: {min_success}" if min_success is not None else ""
    )
    path = write(text)
    return asyncio.run(
        run_workflow_async(path, {"items": items}, tools=FunctionTools({"probe": probe}))
    )


def test_parallel_items_are_isolated_ordered_and_bounded(write: Callable[..., Path]) -> None:
    probe = Probe()
    items = list(range(10))
    report = run_parallel(write, items, probe)
    assert report.status == "succeeded", report.errors
    assert report.state.raw["results"] == [{"square": n * n, "at": n} for n in items]
    assert sorted(probe.seen) == items
    assert probe.peak == 3
    record = step(report, "fan/mcp_call_1")
    assert record.executions == 10


def test_parallel_fail_fast_raises_sub_agent_error_with_cause(write: Callable[..., Path]) -> None:
    probe = Probe(fail={4}, delay=0.05)
    report = run_parallel(write, list(range(30)), probe)
    assert report.status == "failed"
    assert report.error is not None
    assert report.error["type"] == "SubAgentError"
    assert report.error["index"] == 4
    assert report.error["cause"]["type"] == "ToolError"
    assert len(probe.seen) < 30, "fail_fast should stop starting new items"


def test_parallel_continue_keeps_going_and_min_success(write: Callable[..., Path]) -> None:
    report = run_parallel(write, list(range(6)), Probe(fail={1, 2}), mode="continue")
    assert report.status == "succeeded", report.errors
    assert len(report.state.raw["results"]) == 6
    report = run_parallel(write, list(range(6)), Probe(fail={1, 2}), mode="continue", min_success=5)
    assert report.status == "failed"
    assert report.error is not None
    assert "4 of 6 items succeeded" in report.error["message"]


def test_parallel_item_retry(run_yaml: Runner) -> None:
    attempts: dict[int, int] = {}

    def flaky(n: int) -> int:
        attempts[n] = attempts.get(n, 0) + 1
        if attempts[n] < 2:
            raise RuntimeError("first try fails")
        return n

    report = run_yaml(
        """
        name: t
        steps:
          - id: fan
            type: parallel_foreach
            items: [1, 2]
            sub_agent_task: w
            item_retry_count: 1
        sub_agent_tasks:
          w:
            inputs: {item: {type: integer}}
            steps: [{type: mcp_call, tool: flaky, parameters: {n: "{{ item }}"}}]
            finally: [{type: user_message, message: "item {{ item }} {{ workflow.status }}"}]
        """,
        tools=FunctionTools({"flaky": flaky}),
    )
    assert report.status == "succeeded", report.errors
    assert attempts == {1: 2, 2: 2}
    assert sorted(m.text for m in report.messages) == [  # finally runs for every attempt
        "item 1 failed",
        "item 1 succeeded",
        "item 2 failed",
        "item 2 succeeded",
    ]


def test_parallel_bad_item_inputs_fail_the_item(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: t
        steps:
          - {id: fan, type: parallel_foreach, items: [a], sub_agent_task: w,
             with: {n: "{{ loop.item }}"}}
        sub_agent_tasks:
          w:
            inputs: {n: {type: integer}}
        """
    )
    assert report.error is not None
    assert report.error["type"] == "SubAgentError"
    assert "should be integer" in report.error["message"]


def test_sigterm_cancels_the_run_and_its_children(tmp_path: Path) -> None:
    import subprocess
    import sys

    flow = tmp_path / "flow.yaml"
    pidfile = tmp_path / "pid"
    flow.write_text(
        "name: t\nsteps:\n"
        f"  - {{type: shell_command, command: 'echo $$ > {pidfile}; exec sleep 60'}}\n"
        "finally:\n  - {type: user_message, message: 'finally {{ workflow.status }}'}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfkit", "run", str(flow), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    for _ in range(500):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.02)
    child = int(pidfile.read_text())
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    import json

    report = json.loads(out)
    assert report["status"] == "cancelled", err
    assert report["messages"][-1]["text"] == "finally cancelled"
    assert proc.returncode == 1
    assert _wait_gone(child)
