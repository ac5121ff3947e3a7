"""A step run several times reports every execution, whatever order they finished in."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wfkit.commands import RunReport, run_workflow
from wfkit.commands.why import why_step

ORDER = """
name: order
inputs: {xs: {type: array, default: [1, 2]}}
steps:
  - id: loop
    type: foreach
    items: "{{ xs }}"
    body:
      - {id: check, type: shell_command, command: "test {{ loop.item }} -eq 2", on_error: continue}
"""


@pytest.mark.parametrize("xs", [[1, 2], [2, 1]])
def test_a_loops_step_counts_each_execution(run_yaml: Callable[..., RunReport], xs: Any) -> None:
    report = run_yaml(ORDER, {"xs": xs})
    check = next(s for s in report.steps if s.id == "check")
    assert check.statuses == {"succeeded": 1, "failed": 1}
    assert check.outcome == "failed"  # the same for either order
    assert check.status_text == "1 succeeded / 1 failed"
    loop = next(s for s in report.steps if s.id == "loop")
    assert loop.statuses is None  # one execution: no counts
    assert '"statuses":{"succeeded":1,"failed":1}' in report.model_dump_json()


def test_the_summary_is_the_same_in_either_order(write: Callable[..., Path]) -> None:
    flow = write(ORDER)
    lines = []
    for xs in ("[1,2]", "[2,1]"):
        done = subprocess.run(
            [sys.executable, "-m", "wfkit", "run", str(flow), "-i", f"xs={xs}"],
            capture_output=True,
            text=True,
            check=False,
        )
        lines.append([line for line in done.stdout.splitlines() if "steps:" in line])
        assert "1 succeeded / 1 failed" in done.stdout
    assert lines[0] == lines[1] == [lines[0][0]]
    assert "1 succeeded, 1 failed" in lines[0][0]


FAN = """
name: fan
steps:
  - id: fan
    type: parallel_foreach
    items: [1, 2]
    sub_agent_task: t
    item_retry_count: 1
sub_agent_tasks:
  t:
    inputs: {item: {type: integer}}
    steps:
      - {id: x, type: shell_command, command: "test {{ item }} -eq 1"}
"""


def test_why_names_the_item_retry_policy(write: Callable[..., Path]) -> None:
    report = run_workflow(write(FAN))
    assert report.status == "failed"
    answer = why_step(report.run_id, "fan").answer
    assert "rerun up to 1 time(s): item_retry_count" in answer


ASK = """
name: ask
state_schema: {raw: {who: string}}
steps:
  - {id: q, type: user_input, prompt: "name?", state_update: {path: raw.who, value: "{{ result }}"}}
  - {id: slow, type: shell_command, command: "sleep 0.2"}
"""


def test_a_waiting_question_is_waiting_then_recovered(write: Callable[..., Path]) -> None:
    from wfkit.commands import resume_workflow

    waiting = run_workflow(write(ASK), pause_for_input=True)
    assert waiting.status == "waiting"
    assert [(s.id, s.status) for s in waiting.steps] == [("q", "waiting")]
    done = resume_workflow(waiting.run_id, answers={"q": "ada"})
    assert done.status == "succeeded"
    assert done.state.raw["who"] == "ada"
    assert [(e.error_type, e.recovered) for e in done.errors] == [("InputRequiredError", True)]


def test_a_resumed_runs_duration_is_the_total_of_its_segments(write: Callable[..., Path]) -> None:
    from wfkit.commands import list_runs, resume_workflow

    waiting = run_workflow(write(ASK), pause_for_input=True)
    done = resume_workflow(waiting.run_id, answers={"q": "ada"})
    assert done.duration_ms > waiting.duration_ms  # the first segment is part of it
    assert any("in all" in m.text and "before it" in m.text for m in done.messages)
    (row,) = list_runs(None, 5)
    assert row.duration_ms == pytest.approx(done.duration_ms, abs=0.01)


REPEATED = """
name: rec
steps:
  - id: fan
    type: parallel_foreach
    items: [1, 2, 3, 4, 5, 6, 7]
    sub_agent_task: t
    on_item_error: continue
sub_agent_tasks:
  t:
    inputs: {item: {type: integer}}
    steps:
      - {id: x, type: shell_command, command: "test {{ item }} -eq 1"}
"""


def test_repeated_recovered_failures_are_shown_once_with_a_count(
    write: Callable[..., Path],
) -> None:
    flow = write(REPEATED)
    done = subprocess.run(
        [sys.executable, "-m", "wfkit", "run", str(flow)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("✗")]
    assert len(lines) == 1, done.stdout
    assert "ShellCommandError 6 times (recovered), first:" in lines[0]
    full = subprocess.run(
        [sys.executable, "-m", "wfkit", "run", str(flow), "--steps", "all"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert len([line for line in full.stdout.splitlines() if line.startswith("✗")]) == 6
