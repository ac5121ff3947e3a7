"""``wfkit diff``: two runs aligned by step, iteration and parallel item."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from mcp.client import Client
from typer.testing import CliRunner

from wfkit.cli.app import app
from wfkit.commands import run_workflow
from wfkit.commands.diff import StepSide, _compare, diff_runs, value_diffs
from wfkit.mcp_server.server import build_server

FLOW = """
name: diffed
inputs:
  fail: {type: integer, default: -1}
  skip: {type: integer, default: -1}
  label: {type: string, default: plain}
state_schema:
  raw: {ticks: integer}
steps:
  - id: fan
    type: parallel_foreach
    items: [0, 1, 2]
    sub_agent_task: work
    on_item_error: continue
    with: {n: "{{ loop.item }}", fail: "{{ fail }}"}
  - id: loop
    type: foreach
    items: [1, 2, 3]
    body:
      - id: tick
        type: state_update
        if: "{{ loop.item != skip }}"
        path: raw.ticks
        operation: increment
sub_agent_tasks:
  work:
    inputs: {n: {type: integer}, fail: {type: integer}}
    steps:
      - id: job
        type: shell_command
        # the failing item ends first: completion order differs, alignment must not
        command: "if [ {{ n }} = {{ fail }} ]; then exit 5; fi; sleep 0.{{ 3 - n }}"
"""


def _runs(write: Callable[..., Path], **b_inputs: object) -> tuple[str, str]:
    path = write(FLOW)
    a = run_workflow(path, {"label": "[bold]same[/]"})
    b = run_workflow(path, {"label": "[bold]same[/]", **b_inputs})
    return a.run_id, b.run_id


def test_items_and_iterations_align_and_the_input_is_named_first(
    write: Callable[..., Path],
) -> None:
    a, b = _runs(write, fail=1, skip=2)
    assert diff_runs(a, b).first_divergent_step is not None
    plain = diff_runs(a, b)
    first = plain.first_divergent_step
    assert first is not None
    assert (first.step_id, first.item) == ("fan/job", 1)  # the first step, not only the input
    assert all("slower" not in s.changes and "faster" not in s.changes for s in plain.steps)
    result = diff_runs(a, b, timing=True)
    assert result.first_divergence == "input 'fail' differs: -1 vs 1"
    assert [d.path for d in result.inputs] == ["fail", "skip"]
    behaved = {(s.step_id, s.item, s.execution): s for s in result.steps if s.changes != ["slower"]}
    job = behaved.pop(("fan/job", 1, 1))
    assert job.changes == ["status", "error", "faster"]  # it failed at once
    assert job.a is not None
    assert job.a.status == "succeeded"
    assert job.b is not None
    assert job.b.status == "failed"
    assert (
        job.b.error
        == "ShellCommandError: command 'if [ 1 = 1 ]; then exit 5; fi; sleep 0.2' exited with 5"
    )
    tick = behaved.pop(("tick", None, 2))
    assert (tick.a.status, tick.b.status) == ("succeeded", "skipped")  # type: ignore[union-attr]
    assert not {k for k, s in behaved.items() if set(s.changes) - {"faster"}}
    ticks = next(d for d in result.state if d.path == "raw.ticks")
    assert (ticks.a, ticks.b) == (3, 2)


def test_same_inputs_differ_at_most_in_timing(write: Callable[..., Path]) -> None:
    a, b = _runs(write)
    plain = diff_runs(a, b)
    assert plain.steps == []  # timing is not a change unless asked
    assert plain.first_divergent_step is None
    result = diff_runs(a, b, timing=True)
    assert result.inputs == []
    assert result.state == []
    assert all(set(s.changes) <= {"slower", "faster"} for s in result.steps)
    assert result.first_divergence is None or "slower in B" in result.first_divergence
    assert result.identical_steps + len(result.steps) == 3 + 1 + 3 + 1


def test_steps_only_one_run_reached_and_another_file(write: Callable[..., Path]) -> None:
    flow = "name: g\ninputs: {code: {type: integer}}\nsteps:\n" + (
        "  - {id: gate, type: shell_command, command: 'exit {{ code }}'}\n"
        "  - {id: after, type: shell_command, command: 'true'}\n"
    )
    path = write(flow, "gate.yaml")
    a = run_workflow(path, {"code": 0})
    b = run_workflow(path, {"code": 0})
    c = run_workflow(path, {"code": 3})
    assert diff_runs(a.run_id, c.run_id).steps[-1].changes == ["only_a"]
    first = diff_runs(c.run_id, a.run_id).first_divergence
    assert first == "input 'code' differs: 3 vs 0"
    other = run_workflow(write(flow + "  - {id: more, type: wait, seconds: 0}\n"), {"code": 0})
    result = diff_runs(b.run_id, other.run_id)
    assert result.first_divergence == "the workflow file differs between the runs"
    assert not result.same_workflow_file
    assert [(s.step_id, s.changes) for s in result.steps if "only_b" in s.changes] == [
        ("more", ["only_b"])
    ]


def test_slower_needs_a_ratio_and_a_margin() -> None:
    side = StepSide(status="succeeded", attempts=1, duration_ms=10.0)
    assert _compare(side, side.model_copy(update={"duration_ms": 14.0}))[0] == []
    assert _compare(side, side.model_copy(update={"duration_ms": 40.0})) == (["slower"], 30.0)
    assert _compare(side.model_copy(update={"duration_ms": 40.0}), side)[0] == ["faster"]
    assert _compare(side, side.model_copy(update={"attempts": 2}))[0] == ["attempts"]
    big = value_diffs({"x": "y" * 1000}, {"x": "z"})[0]
    assert isinstance(big.a, str)
    assert big.a.endswith("...")
    assert len(big.a) < 400


def test_cli_escapes_values_json_and_bad_ids(write: Callable[..., Path]) -> None:
    a, _ = _runs(write)
    path = write(FLOW, "other.yaml")
    b = run_workflow(path, {"label": "[red]other[/]"}).run_id
    runner = CliRunner()
    text = runner.invoke(app, ["diff", a, b], env={"COLUMNS": "200"})
    assert text.exit_code == 0, text.output
    assert "first divergence: input 'label' differs" in text.output
    assert '"[red]other[/]"' in text.output  # shown as written, never read as markup
    as_json = json.loads(runner.invoke(app, ["diff", a, b, "--json"]).stdout)
    assert as_json["first_divergence"].startswith("input 'label'")
    missing = runner.invoke(app, ["diff", a, "no-such-run"])
    assert missing.exit_code == 2
    assert "Traceback" not in missing.output
    done = subprocess.run(
        [sys.executable, "-m", "wfkit", "diff", a, b, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["run_b"] == b


def test_mcp_workflow_diff(
    write: Callable[..., Path], isolated_store: Path, tmp_path: Path
) -> None:
    a, b = _runs(write, skip=1)

    async def scenario() -> None:
        async with Client(build_server(tmp_path, read_only=True, store=isolated_store)) as client:
            result = await client.call_tool("workflow_diff", {"run_a": a, "run_b": b})
            assert not result.is_error
            assert result.structured_content["first_divergence"] == "input 'skip' differs: -1 vs 1"
            bad = await client.call_tool("workflow_diff", {"run_a": a, "run_b": "nope"})
            assert bad.is_error

    asyncio.run(scenario())


def test_state_is_the_divergence_when_steps_agree(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    source = tmp_path / "value.txt"
    path = write(
        f"""
        name: reads
        state_schema:
          raw: {{v: string}}
        steps:
          - id: read
            type: shell_command
            command: "cat {source}"
            state_update: {{path: raw.v, value: "{{{{ result.stdout | trim }}}}"}}
        """
    )
    source.write_text("one")
    a = run_workflow(path)
    source.write_text("two")
    b = run_workflow(path)
    result = diff_runs(a.run_id, b.run_id)
    assert result.first_divergence == 'state \'raw.v\' differs: "one" vs "two"'
    assert [(d.a, d.b) for d in result.state] == [("one", "two")]
