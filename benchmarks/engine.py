"""Engine overhead per step, against a plain Python loop doing the same work.

Prints figures; asserts nothing. Each scenario runs with the SQLite run store on. The baseline
evaluates the same compiled expressions and does the same dict writes in a bare loop, so the
ratio is what the engine adds: records, events, store rows, state checks, scopes.

    python benchmarks/engine.py            # full sizes
    python benchmarks/engine.py --quick    # small sizes (CI)

Then the wall-clock section (:mod:`wallclock`): fresh ``wfkit`` processes, as a user runs
them, against plain-Python floors timed in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agents import agent_section, pull_section
from wallclock import wall_section

from wfkit.engine.context import RunOptions
from wfkit.engine.runtime import Run
from wfkit.language.expressions import compile_expr
from wfkit.language.loader import LoadedWorkflow, load_text
from wfkit.store.sqlite import RunStore


def sequential(n: int) -> str:
    steps = "\n".join(
        f"  - {{type: state_update, path: raw.n, value: '{{{{ n + 1 }}}}', id: s{i}}}"
        for i in range(n)
    )
    return f"name: seq\nstate_schema:\n  raw: {{n: integer}}\nsteps:\n{steps}\n"


def foreach(n: int) -> str:
    return (
        "name: loop\nstate_schema:\n  raw: {n: integer}\nsteps:\n"
        f"  - type: foreach\n    items: '{{{{ range({n}) | list }}}}'\n    body:\n"
        "      - {type: state_update, path: raw.n, value: '{{ n + 1 }}'}\n"
    )


def fan_out(n: int) -> str:
    return (
        "name: fan\nsteps:\n"
        f"  - type: parallel_foreach\n    items: '{{{{ range({n}) | list }}}}'\n"
        "    sub_agent_task: t\n    max_parallel: 16\n"
        "sub_agent_tasks:\n  t:\n    inputs: {item: {type: integer}}\n"
        "    state_schema:\n      raw: {n: integer}\n    steps:\n"
        "      - {type: state_update, path: raw.n, value: '{{ item + 1 }}'}\n"
        "      - {type: state_update, path: raw.n, value: '{{ n + 1 }}'}\n"
    )


def computed_loop(n: int) -> str:
    return (
        "name: traced\nstate_schema:\n  raw: {n: integer}\n  computed:\n"
        "    double: {from: raw.n, transform: input * 2}\n"
        "    small: {from: computed.double, transform: input < 100}\nsteps:\n"
        f"  - type: foreach\n    items: '{{{{ range({n}) | list }}}}'\n    body:\n"
        "      - {type: state_update, path: raw.n, value: '{{ n + 1 }}', if: '{{ n >= 0 }}'}\n"
    )


def run_once(loaded: LoadedWorkflow, store_dir: Path, trace: bool = False) -> float:
    with RunStore(store_dir) as store:
        options = RunOptions(sinks=[store], trace=trace)
        started = time.perf_counter()
        outcome = asyncio.run(Run(loaded, f"bench-{time.perf_counter_ns()}", {}, options).execute())
        elapsed = time.perf_counter() - started
    if outcome.status != "succeeded":
        raise SystemExit(f"benchmark run failed: {outcome.error}")
    return elapsed


def baseline(steps: int) -> float:
    """The same expression evaluations and dict writes, in a bare loop."""
    expr = compile_expr("{{ n + 1 }}")
    state = {"n": 0}
    started = time.perf_counter()
    for _ in range(steps):
        state["n"] = expr.evaluate(state)
    return time.perf_counter() - started


def measure(fn: Callable[[], float], repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    args = parser.parse_args()
    scale, repeat = (0.1, 1) if args.quick else (1.0, 3)
    scenarios = [
        ("2000 sequential state_update steps", sequential(int(2000 * scale)), int(2000 * scale)),
        ("foreach of 1000 iterations", foreach(int(1000 * scale)), int(1000 * scale) + 1),
        (
            "parallel_foreach 1000 items x 2 steps",
            fan_out(int(1000 * scale)),
            int(1000 * scale) * 2 + 1,
        ),
    ]
    print(
        f"{'scenario':42} {'steps':>6} {'run ms':>9} {'µs/step':>8} {'base µs':>8} "
        f"{'overhead µs':>11} {'ratio':>6}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for title, text, steps in scenarios:
            load_started = time.perf_counter()
            loaded = load_text(text, f"{tmp}/bench.yaml")
            load_ms = (time.perf_counter() - load_started) * 1000
            elapsed = measure(lambda loaded=loaded: run_once(loaded, Path(tmp)), repeat)
            base = measure(lambda steps=steps: baseline(steps), repeat)
            per_step = elapsed / steps * 1e6
            per_base = base / steps * 1e6
            print(
                f"{title:42} {steps:>6} {elapsed * 1000:>9.1f} {per_step:>8.1f} "
                f"{per_base:>8.1f} {per_step - per_base:>11.1f} {per_step / per_base:>6.1f}x"
                f"   (load {load_ms:.0f} ms)"
            )
        n = int(1000 * scale)
        traced = load_text(computed_loop(n), f"{tmp}/traced.yaml")
        off = measure(lambda: run_once(traced, Path(tmp)), repeat)
        on = measure(lambda: run_once(traced, Path(tmp), trace=True), repeat)
        print(
            f"tracing, foreach of {n} with 2 computed fields and a condition: "
            f"off {off * 1000:.1f} ms, on {on * 1000:.1f} ms, ratio {on / off:.2f}x"
        )
    agent_section(args.quick)
    pull_section(args.quick)
    wall_section(args.quick)


if __name__ == "__main__":
    main()
