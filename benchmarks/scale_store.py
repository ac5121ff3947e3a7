"""The PostgreSQL run store against the SQLite one: figures, printed, never asserted.

    python benchmarks/scale_store.py            # 5 repeats
    python benchmarks/scale_store.py --quick    # 2 repeats

Two cases, each on both stores:

- W1, 200 trivial steps (``wallclock.trivial``): the engine run in this process (the store
  open, the run, its commits), and a fresh ``wfkit run`` process as a user starts it;
- one commit of a step row and a checkpoint, what an effectful step costs the store before
  and after it (W1's pure steps commit only every 0.2 s);
- 16 ``wfkit run`` processes started at once on one fresh store (they also race to create
  its schema): wall time until the last ends, runs/s, and a count of what was stored.

The PostgreSQL server is a throwaway cluster in a temporary folder (``tests.pg_cluster``)
with its default, durable settings (``fsync`` on); SQLite runs in WAL mode with
``synchronous=NORMAL``, as wfkit opens it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from wallclock import child_env, trivial

from wfkit.engine.context import RunOptions
from wfkit.engine.events import Checkpoint, RunStarted, StepFinished
from wfkit.engine.runtime import Run
from wfkit.language.loader import load_text
from wfkit.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test cluster helper
from tests.pg_cluster import Cluster, ClusterUnavailableError, start_cluster

PROCESSES = 16
WFKIT = [sys.executable, "-m", "wfkit"]


def engine_run(text: str, spec: str, path: str) -> float:
    """Seconds of one in-process run with the store on (opening the store included)."""
    loaded = load_text(text, path)
    started = time.perf_counter()
    with open_store(spec) as store:
        options = RunOptions(sinks=[store])
        run = Run(loaded, f"bench-{time.perf_counter_ns()}", {}, options)
        outcome = asyncio.run(run.execute())
    elapsed = time.perf_counter() - started
    if outcome.status != "succeeded":
        raise SystemExit(f"benchmark run failed: {outcome.error}")
    return elapsed


def commits(spec: str, count: int) -> float:
    """Seconds per commit of one step row and a checkpoint (what an effectful step costs the
    store twice: before and after it)."""
    run_id = f"commits-{time.perf_counter_ns()}"
    with open_store(spec) as store:
        store(RunStarted(run_id, "commits", "c.yaml", "d", {}, time.time()))
        started = time.perf_counter()
        for n in range(count):
            store(StepFinished(run_id, f"s{n}", "shell_command", "succeeded", 1, 1.0, 1.0))
            store(Checkpoint(run_id, "main", [{"i": n, "done": True, "note": {}}], {}))
            store.commit()
        elapsed = time.perf_counter() - started
    return elapsed / count


def process_run(flow: Path, spec: str) -> float:
    """Wall seconds of one ``wfkit run`` process."""
    env = {**child_env(), "WFKIT_STORE": spec}
    started = time.perf_counter()
    done = subprocess.run(
        [*WFKIT, "run", str(flow), "--quiet"], env=env, capture_output=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"wfkit run failed: {done.stderr.decode()[-500:]}")
    return elapsed


def concurrent(flow: Path, spec: str) -> tuple[float, int, int]:
    """16 ``wfkit run`` at once: wall seconds, runs stored, step rows stored."""
    env = {**child_env(), "WFKIT_STORE": spec}
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*WFKIT, "run", str(flow), "--quiet"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    errors = [p.communicate()[1] for p in procs]
    elapsed = time.perf_counter() - started
    failed = [e.decode()[-300:] for p, e in zip(procs, errors, strict=True) if p.returncode]
    if failed:
        raise SystemExit(f"{len(failed)} concurrent runs failed: {failed[0]}")
    with open_store(spec, read_only=True) as store:
        runs = store.list_runs(-1)
        steps = sum(len(store.step_history(r.run_id)) for r in runs)
    return elapsed, len(runs), steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="2 repeats instead of 5")
    args = parser.parse_args()
    repeat = 2 if args.quick else 5
    try:
        cluster: Cluster = start_cluster()
    except ClusterUnavailableError as exc:
        print(f"PostgreSQL store figures skipped: {exc}")
        return
    try:
        with tempfile.TemporaryDirectory() as tmp:
            figures(cluster, Path(tmp), repeat)
    finally:
        cluster.stop()


def figures(cluster: Cluster, tmp: Path, repeat: int) -> None:
    w1 = trivial(200)
    flow = tmp / "w1.yaml"
    flow.write_text(w1)
    stores: dict[str, Callable[[str], str]] = {
        "sqlite": lambda name: str(tmp / name / "runs.db"),
        "postgres": cluster.create_database,
    }
    specs = {kind: make("w1") for kind, make in stores.items()}
    print(f"run store figures, {os.cpu_count()} cores, median of {repeat}")
    print(f"{'case':44} {'sqlite':>10} {'postgres':>10} {'ratio':>7}")
    engine: dict[str, list[float]] = {k: [] for k in specs}
    wall: dict[str, list[float]] = {k: [] for k in specs}
    for spec in specs.values():  # warm-up: the schema exists before timing
        engine_run(w1, spec, str(flow))
    for _ in range(repeat):  # interleaved, so the machine's load moves both alike
        for kind, spec in specs.items():
            engine[kind].append(engine_run(w1, spec, str(flow)))
            wall[kind].append(process_run(flow, spec))
    commit: dict[str, list[float]] = {
        k: [commits(spec, 20 if repeat < 5 else 100)] for k, spec in specs.items()
    }
    for _ in range(repeat - 1):
        for kind, spec in specs.items():
            commit[kind].append(commits(spec, 20 if repeat < 5 else 100))
    for title, samples, unit in (
        ("W1 200 steps, engine run in process (ms)", engine, 1000),
        ("W1 200 steps, fresh `wfkit run` (ms)", wall, 1000),
        ("one commit: a step row + a checkpoint (µs)", commit, 1e6),
    ):
        lite, pg = (statistics.median(samples[k]) * unit for k in ("sqlite", "postgres"))
        print(f"{title:44} {lite:>10.1f} {pg:>10.1f} {pg / lite:>6.2f}x")
    busy = tmp / "busy.yaml"
    busy.write_text(trivial(200).replace("name: w1", "name: busy"))
    results = {}
    for kind, make in stores.items():
        results[kind] = concurrent(busy, make(f"busy_{kind}"))
    (lite_s, lite_runs, lite_steps), (pg_s, pg_runs, pg_steps) = (
        results["sqlite"],
        results["postgres"],
    )
    print(
        f"{f'{PROCESSES} processes at once, W1 each (s)':44} {lite_s:>10.2f} {pg_s:>10.2f}"
        f" {pg_s / lite_s:>6.2f}x"
    )
    print(
        f"{f'{PROCESSES} processes at once: runs/s':44} {lite_runs / lite_s:>10.2f}"
        f" {pg_runs / pg_s:>10.2f}"
    )
    print(
        f"{'   stored (runs / step rows)':44} {f'{lite_runs}/{lite_steps}':>10}"
        f" {f'{pg_runs}/{pg_steps}':>10}   (expected {PROCESSES}/{PROCESSES * 200})"
    )


if __name__ == "__main__":
    main()
