"""Reliability figures: transient recovery, an error storm, and kill -9 then resume.

Prints a table; asserts nothing (tests hold the properties, this shows the figures).

    python benchmarks/reliability.py            # full sizes
    python benchmarks/reliability.py --quick    # small sizes (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from wfkit.store.sqlite import RunStore


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
    scale, storm_items, kills = (0.2, 300, 4) if args.quick else (1.0, 2000, 20)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from stress import error_storm, transient

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        rows = [
            ("transient recovery, p=0.3, 5 retries", transient(scale, store, rates=(0.3,))),
            (
                f"error storm, {storm_items} failing items",
                error_storm(1.0, store, storm_items, 1000),
            ),
            ("kill -9 at a random step of 50, resume", kill_and_resume(kills, store)),
        ]
    for title, figures in rows:
        print(f"{title:42} " + ", ".join(f"{k}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
