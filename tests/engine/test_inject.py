"""Fault injection: parsed strictly, drawn reproducibly, marked in every record."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wfkit.cli.app import app
from wfkit.commands import run_workflow, run_workflow_async
from wfkit.commands.why import why_step
from wfkit.engine.inject import parse_fault
from wfkit.engine.tools import FunctionTools
from wfkit.errors import InputError
from wfkit.store.sqlite import RunStore

FLOW = """
name: inj
steps:
  - id: fetch
    type: shell_command
    command: "echo fetched"
    on_error: retry
    retry_count: 9
    retry_delay: 1
    retry_jitter: 0
  - id: deploy
    type: shell_command
    command: "echo deployed"
    on_error: retry
    retry_count: 1
    retry_delay: 1
    retry_on: "error.exit_code == 75"
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("error=ToolError", "give step=ID or tool=NAME"),
        ("step=a tool=b error=ToolError", "give step=ID or tool=NAME"),
        ("step=a", "give error=TYPE, exit_code=N or latency=D"),
        ("step=a error=Nope", "error=Nope is not a step error"),
        ("step=a error=InputError", "error=InputError is not a step error"),
        ("step=a exit_code=x", "invalid literal"),
        ("step=a latency=soon", "is not a duration"),
        ("step=a error=ToolError rate=1.5", "rate=1.5 is not between 0 and 1"),
        ("step=a error=ToolError rate=nan", "is not between 0 and 1"),
        ("step=a error=ToolError exit_code=3", "not both"),
        ("tool=t exit_code=3", "applies to a step"),
        ("step=a step=b error=ToolError", "given twice"),
        ("step=a error=ToolError colour=red", "'colour=red' is not one of"),
    ],
)
def test_bad_faults_are_refused(text: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem.replace("(", r"\(")):
        parse_fault(text)


def _run(path: Path, *faults: str, seed: str = "s") -> tuple[str, list[tuple[str, str, bool]]]:
    report = run_workflow(path, faults=[parse_fault(f) for f in faults], inject_seed=seed)
    errors = [(e.step_id, e.error_type, bool(e.details.get("injected"))) for e in report.errors]
    return report.run_id, errors


def test_rate_and_seed_reproduce_the_same_faults(write: Callable[..., Path]) -> None:
    path = write(FLOW)
    fault = "step=fetch error=ToolError rate=0.5"
    runs = [_run(path, fault, seed=seed) for seed in ("a", "a", "b", "c", "d")]
    assert runs[0][1] == runs[1][1]  # the same seed: the same attempts are hit
    hits = [len(errors) for _, errors in runs]
    assert len(set(hits)) > 1  # other seeds hit other attempts
    assert all(e == ("fetch", "ToolError", True) for _, errors in runs for e in errors)
    run_id = runs[0][0]
    with RunStore() as store:
        history = store.step_history(run_id)
    fetch = next(h for h in history if h["step_id"] == "fetch")
    assert fetch["injected"] is (hits[0] > 0)
    assert fetch["status"] == "succeeded"  # the retries recovered from the injected faults


def test_exit_code_goes_through_retry_on_and_is_marked(write: Callable[..., Path]) -> None:
    run_id, errors = _run(write(FLOW), "step=deploy exit_code=75")
    assert errors == [("deploy", "ShellCommandError", True)] * 2  # retried once: 75 matches
    why = why_step(run_id, "deploy")
    assert why.answer == "not retried: all 2 attempts used"
    hits = [r.text for r in why.reasons if r.kind == "injected"]
    assert hits == [
        f"attempt {n} was hit by an injected fault: step=deploy exit_code=75" for n in (1, 2)
    ]
    with RunStore() as store:
        assert [d["fault"] for d in store.decisions(run_id) if d["decision"] == "injected"] == [
            "step=deploy exit_code=75"
        ] * 2
        deploy = [h for h in store.step_history(run_id) if h["step_id"] == "deploy"]
        assert [h["injected"] for h in deploy] == [True]


def test_latency_goes_through_the_runs_clock_and_tool_faults(write: Callable[..., Path]) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    flow = write(
        """
        name: tools
        steps:
          - {id: add, type: mcp_call, tool: notes.add, parameters: {text: hi}, on_error: continue}
          - {id: slow, type: shell_command, command: "true"}
        """
    )
    tools = FunctionTools({"notes.add": lambda text: {"ok": text}})
    report = asyncio.run(
        run_workflow_async(
            flow,
            tools=tools,
            sleep=sleep,
            faults=[
                parse_fault("tool=notes.add error=ToolError"),
                parse_fault("step=slow latency=2s"),
            ],
        )
    )
    assert slept == [2.0]
    assert tools.calls == []  # the injected failure replaced the call
    assert [(e.step_id, e.details.get("injected")) for e in report.errors] == [("add", True)]
    assert {s.id: s.injected for s in report.steps} == {"add": True, "slow": True}
    assert report.status == "succeeded"


def test_cli_inject(write: Callable[..., Path]) -> None:
    path = write(FLOW)
    runner = CliRunner()
    done = runner.invoke(
        app,
        ["run", str(path), "--inject", "step=deploy exit_code=75", "--inject-seed", "1", "--json"],
    )
    assert done.exit_code == 1
    report = json.loads(done.stdout)
    assert report["errors"][0]["details"]["injected"] is True
    assert report["errors"][0]["message"].startswith("injected fault (step=deploy exit_code=75)")
    bad = runner.invoke(app, ["run", str(path), "--inject", "step=deploy"])
    assert bad.exit_code == 2
    assert "give error=TYPE, exit_code=N or latency=D" in bad.output
    assert "Traceback" not in bad.output
