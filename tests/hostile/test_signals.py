"""Signals and timeouts always win, whatever a step does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wfkit.commands import RunReport

Runner = Callable[..., RunReport]
HANG = 120  # seconds: a bound that turns a hang into a failure, never a measure of speed

BUSY = """
name: busy
state_schema:
  raw: {{n: integer}}
steps:
  - id: spin
    type: while_loop
    condition: "range(20000)|map('string')|list|length > 0"
    max_iterations: 100000000
    {timeout}
    body:
      - {{type: state_update, path: raw.n, operation: increment}}
finally:
  - {{type: user_message, message: "finally {{{{ workflow.status }}}}"}}
"""


def test_a_busy_run_times_out_on_config_timeout(run_yaml: Runner) -> None:
    started = time.perf_counter()
    report = run_yaml("config: {timeout: 1}\n" + BUSY.format(timeout=""))
    assert time.perf_counter() - started < HANG
    assert report.status == "timed_out"
    assert report.messages[-1].text == "finally timed_out"


def test_a_busy_step_times_out_on_its_timeout(run_yaml: Runner) -> None:
    started = time.perf_counter()
    report = run_yaml(BUSY.format(timeout="timeout: 1"))
    assert time.perf_counter() - started < HANG
    assert report.status == "failed"
    assert report.error is not None
    assert report.error["type"] == "StepTimeoutError"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_cancels_a_busy_run(tmp_path: Path, sig: signal.Signals) -> None:
    flow = tmp_path / "busy.yaml"
    flow.write_text(BUSY.format(timeout=""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfkit", "run", str(flow), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()  # "run ID started": the run is under way, handlers set
    assert "started" in first, first
    time.sleep(0.5)  # let it get busy
    sent = time.perf_counter()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=HANG)
    assert time.perf_counter() - sent < HANG
    report = json.loads(out)
    assert report["status"] == "cancelled", err
    assert report["messages"][-1]["text"] == "finally cancelled"
    resumed = subprocess.run(
        [sys.executable, "-m", "wfkit", "runs", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert json.loads(resumed.stdout)[0]["status"] == "cancelled"


def test_a_blocked_terminal_read_cannot_outlast_the_step_timeout(run_yaml: Runner) -> None:
    never = threading.Event()

    def ask(prompt: str, choices: object, default: object) -> str:
        never.wait(HANG * 5)  # a terminal nobody answers
        return "late"

    started = time.perf_counter()
    report = run_yaml(
        """
        name: ask
        steps:
          - {id: q, type: user_input, prompt: "name?", timeout: 1}
        """,
        ask=ask,
    )
    never.set()
    assert time.perf_counter() - started < HANG
    assert report.status == "failed"
    assert report.error is not None
    assert report.error["type"] == "StepTimeoutError"


def test_answers_from_the_terminal_still_arrive(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: ask
        state_schema: {raw: {who: string}}
        steps:
          - {id: q, type: user_input, prompt: "name?",
             state_update: {path: raw.who, value: "{{ result }}"}}
        """,
        ask=lambda prompt, choices, default: f"ada ({prompt})",
    )
    assert report.state.raw["who"] == "ada (name?)"


def test_a_failing_terminal_read_fails_the_step(run_yaml: Runner) -> None:
    def ask(prompt: str, choices: object, default: object) -> str:
        raise EOFError

    report = run_yaml("name: ask\nsteps:\n  - {id: q, type: user_input, prompt: p}\n", ask=ask)
    assert report.status == "failed"
