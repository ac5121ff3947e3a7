"""Reliability figures: transient recovery, an error storm, and kill -9 then resume.

Prints a table; asserts nothing (tests hold the properties, this shows the figures).

    python benchmarks/reliability.py            # full sizes
    python benchmarks/reliability.py --quick    # small sizes (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from wfkit.commands import run_workflow_async
from wfkit.core.store import RunStore
from wfkit.core.tools import FunctionTools

TRANSIENT = """
name: transient
steps:
  - id: trials
    type: parallel_foreach
    items: "{{ range(TRIALS) | list }}"
    sub_agent_task: trial
    max_parallel: 32
    on_item_error: continue
sub_agent_tasks:
  trial:
    inputs: {item: {type: integer}}
    steps:
      - {type: mcp_call, tool: flaky, on_error: retry, retry_count: 5, retry_delay: 100}
"""

STORM = """
name: storm
config:
  circuit_breakers: {api: {failure_threshold: 20, reset_timeout: 600}}
steps:
  - id: storm
    type: parallel_foreach
    items: "{{ range(ITEMS) | list }}"
    sub_agent_task: call
    max_parallel: 64
    on_item_error: continue
sub_agent_tasks:
  call:
    inputs: {item: {type: integer}}
    steps:
      - {type: mcp_call, tool: down, BREAKER}
"""


async def _no_sleep(_: float) -> None:
    return None


def transient(trials: int, p: float, store: Path) -> dict[str, Any]:
    rng = random.Random(1234)

    def flaky() -> str:
        if rng.random() < p:
            raise RuntimeError("transient")
        return "ok"

    path = store / "transient.yaml"
    path.write_text(TRANSIENT.replace("TRIALS", str(trials)))
    report = asyncio.run(
        run_workflow_async(
            path, store=store, sleep=_no_sleep, tools=FunctionTools({"flaky": flaky})
        )
    )
    recovered = sum(1 for e in report.errors if e.recovered)
    # an item that finally failed has one unrecovered record per attempt (the last is 5)
    failed_items = sum(1 for e in report.errors if not e.recovered and e.retry_count == 5)
    return {
        "trials": trials,
        "recovered share": (trials - failed_items) / trials,
        "theory 1-p^6": 1 - p**6,
        "retries that recovered": recovered,
    }


def storm(items: int, breaker: bool, store: Path) -> dict[str, Any]:
    calls = 0

    def down() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("dependency down")

    path = store / f"storm-{breaker}.yaml"
    path.write_text(
        STORM.replace("ITEMS", str(items)).replace(
            ", BREAKER", ", circuit_breaker: api" if breaker else ""
        )
    )
    started = time.perf_counter()
    report = asyncio.run(
        run_workflow_async(path, store=store, sleep=_no_sleep, tools=FunctionTools({"down": down}))
    )
    return {
        "items": items,
        "breaker": breaker,
        "seconds": round(time.perf_counter() - started, 2),
        "real calls": calls,
        "errors recorded": len(report.errors),
        "peak RSS MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def kill_and_resume(trials: int, store: Path) -> dict[str, Any]:
    steps = 50
    body = "\n".join(
        f"  - {{id: s{i}, type: shell_command, command: 'echo {i} >> $LOG',"
        f" state_update: {{path: raw.done, operation: append, value: {i}}}}}"
        for i in range(steps)
    )
    flow = store / "fifty.yaml"
    flow.write_text(f"name: fifty\nstate_schema:\n  raw: {{done: array}}\nsteps:\n{body}\n")
    expected = list(range(steps))
    rng = random.Random(99)

    def start(trial: int) -> tuple[subprocess.Popen[bytes], Path, dict[str, str]]:
        log = store / f"log-{trial}"
        env = {**os.environ, "LOG": str(log), "WFKIT_STORE": str(store / f"s{trial}")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "wfkit", "run", str(flow), "--json"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return proc, log, env

    def first_line(proc: subprocess.Popen[bytes], log: Path) -> None:
        while proc.poll() is None and not (log.exists() and log.read_text().strip()):
            time.sleep(0.001)

    proc, log, _ = start(-1)
    first_line(proc, log)
    began = time.perf_counter()
    while proc.poll() is None and len(log.read_text().split()) < steps:
        time.sleep(0.001)
    duration = time.perf_counter() - began  # from the first step's output to the last one
    proc.wait()
    same_state = repeated = interrupted = 0
    for trial in range(trials):
        proc, log, env = start(trial)
        first_line(proc, log)
        time.sleep(rng.uniform(0, 1) * duration)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        runs = json.loads(
            subprocess.run(
                [sys.executable, "-m", "wfkit", "runs", "--json"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            ).stdout
        )
        if runs and runs[0]["status"] == "interrupted":
            interrupted += 1
            subprocess.run(
                [sys.executable, "-m", "wfkit", "resume", runs[0]["run_id"]],
                env=env,
                capture_output=True,
                check=False,
            )
        with RunStore(store / f"s{trial}") as run_store:
            row = run_store.get_run(runs[0]["run_id"])
        state = (row.state or {}).get("raw", {}).get("done")
        same_state += row.status == "succeeded" and state == expected
        written = [int(x) for x in log.read_text().split()] if log.exists() else []
        repeated += len(written) - len(set(written))
    return {
        "trials": trials,
        "killed mid-run": interrupted,
        "final state as uninterrupted": same_state,
        "steps run twice (in flight at the kill)": repeated,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    trials, storm_items, kills = (200, 300, 4) if args.quick else (1000, 2000, 20)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        rows = [
            ("transient recovery, p=0.3, 5 retries", transient(trials, 0.3, store)),
            ("error storm, no breaker", storm(storm_items, False, store)),
            ("error storm, breaker (threshold 20)", storm(storm_items, True, store)),
            ("kill -9 at a random step of 50, resume", kill_and_resume(kills, store)),
        ]
    for title, figures in rows:
        shown = ", ".join(
            f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in figures.items()
        )
        print(f"{title:42} {shown}")


if __name__ == "__main__":
    main()
