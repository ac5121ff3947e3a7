"""Error policies, retries, breakers and cleanup, driven through YAML workflows."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES
from wfkit.commands import RunReport, run_workflow_async
from wfkit.engine.tools import FunctionTools
from wfkit.errors import LoadError
from wfkit.language.loader import load_text
from wfkit.language.policy import RetryPolicy


class Clock:
    """Virtual time: sleeps advance it instead of waiting."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def run(write: Callable[..., Path], clock: Clock) -> Callable[..., RunReport]:
    def runner(text: str, inputs: dict[str, Any] | None = None, **kw: Any) -> RunReport:
        kw.setdefault("sleep", clock.sleep)
        kw.setdefault("clock", clock.time)
        return asyncio.run(run_workflow_async(write(text), inputs, **kw))

    return runner


class Flaky:
    """A tool that fails its first ``failures`` calls."""

    def __init__(self, failures: int, error: type[Exception] = RuntimeError) -> None:
        self.failures = failures
        self.calls = 0
        self.error = error

    def __call__(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"transient failure {self.calls}")
        return {"ok": True, "calls": self.calls}


def flaky_shell(tmp_path: Path, failures: int, code: int = 75) -> str:
    script = tmp_path / "flaky.sh"
    script.write_text(
        f"#!/bin/sh\nn=$(cat {tmp_path}/count 2>/dev/null || echo 0)\nn=$((n+1))\n"
        f"echo $n > {tmp_path}/count\n"
        f'if [ "$n" -le {failures} ]; then echo "fail $n" >&2; exit {code}; fi\necho ok\n'
    )
    script.chmod(0o755)
    return str(script)


# --- retry -----------------------------------------------------------------------------


def test_retry_until_success_records_recovered_attempts(run, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    report = run(
        f"""
        name: t
        state_schema:
          raw: {{last_error: string, failures: integer}}
        steps:
          - id: flaky
            type: shell_command
            command: {flaky_shell(tmp_path, 2)}
            on_error: retry
            retry_count: 3
            retry_delay: 1000
            retry_jitter: 0
            error_state_update:
              - path: raw.last_error
                value: "{{{{ error.message }}}} (attempt {{{{ error.attempt }}}})"
              - {{path: raw.failures, operation: increment}}
        """
    )
    assert report.status == "succeeded", report.errors
    flaky = report.steps[0]
    assert (flaky.status, flaky.attempts) == ("succeeded", 3)
    assert [(e.retry_count, e.recovered, e.error_type) for e in report.errors] == [
        (0, True, "ShellCommandError"),
        (1, True, "ShellCommandError"),
    ]
    assert clock.slept == [1.0, 2.0]
    assert report.state.raw["failures"] == 2
    assert report.state.raw["last_error"].endswith("fail 2 (attempt 2)")


def test_retries_run_out(run, clock) -> None:  # type: ignore[no-untyped-def]
    report = run(
        """
        name: t
        steps:
          - id: never
            type: shell_command
            command: "exit 3"
            on_error: retry
            retry_count: 2
            retry_delay: 100
            retry_backoff: 3
            retry_jitter: 0
        """
    )
    assert report.status == "failed"
    assert report.steps[0].attempts == 3
    assert [e.recovered for e in report.errors] == [False, False, False]
    assert clock.slept == [0.1, 0.3]


def test_backoff_is_capped_and_jitter_is_deterministic() -> None:
    policy = RetryPolicy(attempts=6, delay_ms=1000, backoff=2.0, max_delay_ms=5000, jitter_ms=100)
    assert policy.schedule_ms() == [1000, 2000, 4000, 5000, 5000]
    assert policy.worst_case_wait_ms() == 17000 + 500
    first = [policy.delay_ms_for(n, "run-a", "s") for n in range(1, 6)]
    assert first == [policy.delay_ms_for(n, "run-a", "s") for n in range(1, 6)]
    assert first != [policy.delay_ms_for(n, "run-b", "s") for n in range(1, 6)]
    for base, delay in zip(policy.schedule_ms(), first, strict=True):
        assert base <= delay <= base + 100


def test_default_jitter_is_a_tenth_of_the_delay() -> None:
    loaded = load_text(
        "name: t\nsteps:\n  - {type: wait, seconds: 0, on_error: retry, retry_delay: 500}\n"
    )
    policy = loaded.main.steps[0].compiled("policy").retry
    assert (policy.attempts, policy.delay_ms, policy.jitter_ms) == (4, 500, 50)


def test_retry_on_exit_code_expression(run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    template = """
        name: t
        steps:
          - id: s
            type: shell_command
            command: {cmd}
            on_error: retry
            retry_count: 3
            retry_delay: 1
            retry_on: "error.exit_code == 75"
        """
    transient = run(template.format(cmd=flaky_shell(tmp_path, 1, code=75)))
    assert transient.status == "succeeded"
    assert transient.steps[0].attempts == 2
    other = tmp_path / "other"
    other.mkdir()
    fatal = run(template.format(cmd=flaky_shell(other, 1, code=1)))
    assert fatal.status == "failed"
    assert fatal.steps[0].attempts == 1


def test_retry_on_types_match_subclasses(run) -> None:  # type: ignore[no-untyped-def]
    tool = Flaky(1)
    report = run(
        """
        name: t
        steps:
          - {id: a, type: mcp_call, tool: api, on_error: retry, retry_delay: 1,
             retry_on: [ToolError]}
          - {id: b, type: shell_command, command: "exit 1", on_error: retry, retry_delay: 1,
             retry_on: [ToolError]}
        """,
        tools=FunctionTools({"api": tool}),
    )
    assert [(s.id, s.attempts) for s in report.steps] == [("a", 2), ("b", 1)]


def test_unknown_retry_on_type_is_a_load_error() -> None:
    with pytest.raises(LoadError, match="did you mean 'ToolError'"):
        load_text("name: t\nsteps:\n  - {type: wait, seconds: 0, retry_on: [ToolEror]}\n")


@pytest.mark.parametrize(
    ("fields", "error_type"),
    [
        ("type: user_message, message: '{{ nope }}'", "UndefinedVariableError"),
        ("type: state_update, path: raw.n, value: text", "StateError"),
        ("type: mcp_call, tool: absent", "ToolNotFoundError"),
        ("type: error, message: stop", "UserError"),
    ],
)
def test_permanent_errors_are_not_retried(run, fields: str, error_type: str) -> None:  # type: ignore[no-untyped-def]
    report = run(
        "name: t\nstate_schema:\n  raw: {n: integer}\nsteps:\n"
        f"  - {{id: s, on_error: retry, retry_count: 5, retry_delay: 1, {fields}}}\n"
    )
    assert report.steps[0].attempts == 1
    assert report.errors[0].error_type == error_type


# --- continue, fallback -------------------------------------------------------------------


def test_continue_goes_on_and_marks_the_error_recovered(run) -> None:  # type: ignore[no-untyped-def]
    report = run(
        """
        name: t
        state_schema:
          raw: {after: string}
        steps:
          - id: soft
            type: shell_command
            command: "exit 4"
            on_error: continue
            cleanup: [{type: state_update, path: raw.after, value: cleanup-ran}]
          - {type: state_update, path: raw.after, value: "{{ steps.soft.status }}"}
        """
    )
    assert report.status == "succeeded"
    assert report.state.raw["after"] == "failed"
    assert report.steps[0].status == "failed"
    assert report.errors[0].recovered is True


def test_fallback_value_is_the_result_used_downstream(run) -> None:  # type: ignore[no-untyped-def]
    report = run(
        """
        name: t
        state_schema:
          raw: {status: string, items: array}
        steps:
          - id: api
            type: mcp_call
            method: external_api
            on_error: fallback
            fallback_value: {status: unavailable, data: ["{{ 'cached' }}"]}
            state_updates:
              - {path: raw.status, value: "{{ result.status }}"}
              - {path: raw.items, value: "{{ result.data }}"}
          - {type: user_message, message: "{{ steps.api.output.status }}"}
        """
    )
    assert report.status == "succeeded", report.errors
    assert report.state.raw == {"status": "unavailable", "items": ["cached"]}
    assert report.messages[0].text == "unavailable"
    assert report.errors[0].error_type == "ToolNotFoundError"
    assert report.errors[0].recovered


def test_retry_then_fallback_when_retries_run_out(run) -> None:  # type: ignore[no-untyped-def]
    tool = Flaky(10)
    report = run(
        """
        name: t
        steps:
          - {id: api, type: mcp_call, tool: api, on_error: retry, retry_count: 2,
             retry_delay: 1, fallback_value: degraded}
          - {type: user_message, message: "{{ steps.api.output }}"}
        """,
        tools=FunctionTools({"api": tool}),
    )
    assert report.status == "succeeded"
    assert tool.calls == 3
    assert report.messages[0].text == "degraded"
    assert all(e.recovered for e in report.errors)


def test_error_handler_block_form(run) -> None:  # type: ignore[no-untyped-def]
    tool = Flaky(1)
    report = run(
        """
        name: t
        state_schema:
          raw: {err: object}
        steps:
          - id: api
            type: mcp_call
            tool: api
            error_handler:
              strategy: retry
              retry_count: 2
              retry_delay: 5
              error_state_path: raw.err
        """,
        tools=FunctionTools({"api": tool}),
    )
    assert report.status == "succeeded"
    assert report.steps[0].attempts == 2
    assert report.state.raw["err"]["type"] == "ToolError"
    assert report.state.raw["err"]["attempt"] == 1


def test_failing_error_state_update_is_recorded_but_never_masks(run) -> None:  # type: ignore[no-untyped-def]
    report = run(
        """
        name: t
        state_schema:
          raw: {n: integer}
        steps:
          - id: s
            type: shell_command
            command: "exit 2"
            error_state_update: {path: raw.n, value: not-a-number}
        """
    )
    assert report.error is not None
    assert report.error["type"] == "ShellCommandError"
    assert [e.error_type for e in report.errors] == ["ShellCommandError", "StateError"]
    assert report.errors[1].details["during"] == "error_state_update"


def test_a_container_is_retried_as_a_whole(run) -> None:  # type: ignore[no-untyped-def]
    tool = Flaky(1)
    report = run(
        """
        name: t
        state_schema:
          raw: {n: integer}
        steps:
          - id: block
            type: conditional
            condition: "true"
            on_error: retry
            retry_delay: 1
            then:
              - {type: state_update, path: raw.n, operation: increment}
              - {id: call, type: mcp_call, tool: api}
        """,
        tools=FunctionTools({"api": tool}),
    )
    assert report.status == "succeeded"
    assert report.state.raw["n"] == 2
    assert [(e.step_id, e.recovered) for e in report.errors] == [("call", True)]


def test_cleanup_runs_only_when_the_failure_propagates(run) -> None:  # type: ignore[no-untyped-def]
    report = run(
        """
        name: t
        state_schema:
          raw: {log: array}
        steps:
          - id: tolerated
            type: shell_command
            command: "exit 1"
            on_error: continue
            cleanup: [{type: state_update, path: raw.log, operation: append, value: tolerated}]
          - id: fatal
            type: shell_command
            command: "exit 1"
            cleanup:
              - {type: state_update, path: raw.log, operation: append, value: "{{ error.type }}"}
        """
    )
    assert report.state.raw["log"] == ["ShellCommandError"]
    assert report.status == "failed"


# --- circuit breakers ---------------------------------------------------------------------

BREAKER = """
name: guarded
config:
  circuit_breakers:
    api: {failure_threshold: 3, reset_timeout: 30}
state_schema:
  raw: {results: array}
steps:
  - id: fan
    type: parallel_foreach
    items: "{{ range(10) | list }}"
    sub_agent_task: call
    max_parallel: 1
    on_item_error: continue
    state_update:
      path: raw.results
      value: "{{ result | map(attribute='error') | list }}"
sub_agent_tasks:
  call:
    inputs: {item: {type: integer}}
    steps:
      - {type: mcp_call, tool: api, circuit_breaker: api}
"""


def error_types(report: RunReport) -> list[str | None]:
    return [e["type"] if e else None for e in report.state.raw["results"]]


def test_breaker_opens_under_a_fan_out_and_fails_fast(run) -> None:  # type: ignore[no-untyped-def]
    tool = Flaky(100)
    report = run(BREAKER, tools=FunctionTools({"api": tool}))
    assert tool.calls == 3
    assert error_types(report) == ["ToolError"] * 3 + ["CircuitOpenError"] * 7


def test_breaker_state_survives_into_the_next_run_then_probes(run, clock) -> None:  # type: ignore[no-untyped-def]
    dead = Flaky(100)
    run(BREAKER, tools=FunctionTools({"api": dead}))
    clock.now += 5  # a few seconds later: still open, no call reaches the dependency
    second = Flaky(0)
    report = run(BREAKER, tools=FunctionTools({"api": second}))
    assert second.calls == 0
    assert set(error_types(report)) == {"CircuitOpenError"}
    clock.now += 60  # past reset_timeout: one probe goes through and closes the breaker
    third = Flaky(0)
    report = run(BREAKER, tools=FunctionTools({"api": third}))
    assert third.calls == 10
    assert error_types(report) == [None] * 10


def test_open_breaker_is_degraded_by_the_step_policy(run) -> None:  # type: ignore[no-untyped-def]
    report = run(
        """
        name: t
        config:
          circuit_breakers: {api: {failure_threshold: 1, reset_timeout: 60}}
        steps:
          - {id: first, type: mcp_call, tool: api, circuit_breaker: api, on_error: continue}
          - {id: second, type: mcp_call, tool: api, circuit_breaker: api,
             on_error: fallback, fallback_value: cached}
          - {type: user_message, message: "{{ steps.second.output }}"}
        """,
        tools=FunctionTools({"api": Flaky(100)}),
    )
    assert report.status == "succeeded"
    assert [e.error_type for e in report.errors] == ["ToolError", "CircuitOpenError"]
    assert report.messages[0].text == "cached"


# --- the seed example ---------------------------------------------------------------------


@pytest.fixture
def flaky_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", f"{EXAMPLES / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FLAKY_STATE_FILE", str(tmp_path / "flaky-count"))


@pytest.mark.usefixtures("flaky_on_path")
def test_seed_example_as_written(clock: Clock) -> None:
    report = asyncio.run(
        run_workflow_async(EXAMPLES / "seed-error-handling.yaml", sleep=clock.sleep)
    )
    by_id = {s.id: s for s in report.steps}
    assert (by_id["shell_command_1"].status, by_id["shell_command_1"].attempts) == ("succeeded", 3)
    assert by_id["mcp_call_1"].status == "failed"
    assert report.status == "failed"
    assert report.error is not None
    assert report.error["type"] == "UndefinedVariableError"
    assert report.error["name"] == "max_attempts"
    assert report.error["step_id"] == "conditional_1"
    assert "flaky-command: transient failure 2 of 2" in report.state.raw["last_error"]
    assert len(clock.slept) == 2
    assert 2.0 <= clock.slept[0] <= 2.2
    assert 4.0 <= clock.slept[1] <= 4.2
    kinds = [(e.step_id, e.error_type, e.recovered) for e in report.errors]
    assert kinds == [
        ("shell_command_1", "ShellCommandError", True),
        ("shell_command_1", "ShellCommandError", True),
        ("mcp_call_1", "ToolNotFoundError", True),
        ("conditional_1", "UndefinedVariableError", False),
    ]


@pytest.mark.usefixtures("flaky_on_path")
def test_seed_example_corrected(clock: Clock) -> None:
    report = asyncio.run(
        run_workflow_async(EXAMPLES / "seed-error-handling-fixed.yaml", sleep=clock.sleep)
    )
    assert report.status == "succeeded", report.errors
    assert report.state.raw["attempts"] == 1
    assert report.state.raw["api_status"] == "unavailable"
    assert report.steps[0].attempts == 3


@pytest.mark.usefixtures("flaky_on_path")
def test_seed_example_else_branch_runs_error_and_cleanup(clock: Clock) -> None:
    report = asyncio.run(
        run_workflow_async(
            EXAMPLES / "seed-error-handling-fixed.yaml", {"max_attempts": 0}, sleep=clock.sleep
        )
    )
    assert report.status == "failed"
    assert report.error is not None
    assert (report.error["type"], report.error["message"]) == ("UserError", "Max attempts exceeded")
    cleanup = report.errors[-1]
    assert (cleanup.step_id, cleanup.error_type) == ("mcp_call_1", "ToolNotFoundError")
    assert cleanup.details["during"] == "cleanup"
    assert report.steps[-1].id == "mcp_call_1"


def test_parallel_items_count_their_own_attempts(run) -> None:  # type: ignore[no-untyped-def]
    calls: dict[int, int] = {}

    async def twice_then_ok(n: int) -> int:
        calls[n] = calls.get(n, 0) + 1
        await asyncio.sleep(0)  # let the other items interleave
        if calls[n] <= 2:
            raise RuntimeError(f"item {n} attempt {calls[n]}")
        return n

    report = run(
        """
        name: t
        steps:
          - id: fan
            type: parallel_foreach
            items: "{{ range(20) | list }}"
            sub_agent_task: w
            max_parallel: 8
        sub_agent_tasks:
          w:
            inputs: {item: {type: integer}}
            steps:
              - {id: call, type: mcp_call, tool: f, parameters: {n: "{{ item }}"},
                 on_error: retry, retry_count: 2, retry_delay: 1}
        """,
        tools=FunctionTools({"f": twice_then_ok}),
    )
    assert report.status == "succeeded", report.errors[-1:]
    assert calls == dict.fromkeys(range(20), 3)
    assert {e.retry_count for e in report.errors} == {0, 1}
    assert all(e.recovered for e in report.errors)
