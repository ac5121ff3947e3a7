"""What a user waits for: wall time of fresh ``wfkit`` processes, against plain-Python floors.

Each workload runs as its own process (``wfkit run FILE --store DIR``, the run store on), after
one warm-up run (which fills the compile cache), and is timed ``repeat`` times; the figure is
the median. The floors are timed
in the same run, interleaved with wfkit's runs so machine load hits both alike:

* ``python -c pass`` for ``--version``;
* ``benchmarks/floor.py FILE`` for the workflows: PyYAML parses the same file and a loop
  dispatches the same operations (dict writes, the same shell commands, a thread pool);
* for the share of W0 that is not wfkit's own, a process that only imports the libraries
  every ``wfkit run`` imports (typer, pydantic, rich, jinja2, PyYAML, asyncio, sqlite3);
* for the 10,000-execution report, plain string formatting of every step row, against the
  rich rendering of the human report (in this process, since the run itself is not timed).

Absolute times move with the machine's load; the ratios are what to compare.

    python benchmarks/wallclock.py                 # the wfkit next to this interpreter
    python benchmarks/wallclock.py --quick         # 3 repeats instead of 5
    python benchmarks/wallclock.py --wfkit PATH    # another installation's entry point
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one_step() -> str:
    return "name: w0\nsteps:\n  - {type: state_update, path: raw.n, value: 1}\n"


def trivial(n: int) -> str:
    steps = "\n".join(
        f"  - {{type: state_update, path: raw.n, value: '{{{{ n + 1 }}}}', id: s{i}}}"
        for i in range(n)
    )
    return f"name: w1\nstate_schema:\n  raw: {{n: integer}}\nsteps:\n{steps}\n"


def distinct(n: int) -> str:
    """``n`` steps, each with its own template (``trivial`` repeats one)."""
    steps = "\n".join(
        f"  - {{type: state_update, path: raw.n, value: '{{{{ n + {i} }}}}', id: s{i}}}"
        for i in range(n)
    )
    return f"name: w5\nstate_schema:\n  raw: {{n: integer}}\nsteps:\n{steps}\n"


def echoes(n: int) -> str:
    steps = "\n".join(f"  - {{type: shell_command, command: echo {i}, id: e{i}}}" for i in range(n))
    return f"name: w2\nsteps:\n{steps}\n"


def shell_state(n: int) -> str:
    """``n`` shell steps, each ``echo x`` with a state update of its output."""
    steps = "\n".join(
        f"  - {{type: shell_command, command: echo x, id: e{i},"
        " state_update: {path: raw.out, value: '{{ result.stdout | trim }}'}}"
        for i in range(n)
    )
    return f"name: w6\nstate_schema:\n  raw: {{out: string}}\nsteps:\n{steps}\n"


def cold(
    wfkit: list[str], path: Path, floor: list[str], tmp: str, repeat: int, env: dict[str, str]
) -> tuple[float, float]:
    """Median wall of ``wfkit run`` in a fresh folder each time (no store, no compile cache:
    a fresh checkout in CI), against ``floor``, interleaved."""
    ours, base = [], []
    for attempt in range(repeat + 1):
        fresh = Path(tempfile.mkdtemp(prefix=f"cold-{path.stem}-", dir=tmp))
        took = timed([*wfkit, "run", str(path), "--store", str(fresh / "runs.db")], env)
        spent = timed(floor, env)
        if attempt:  # the first pair warms the file system and bytecode
            ours.append(took)
            base.append(spent)
    return statistics.median(ours), statistics.median(base)


def spawn_floor(repeat: int) -> float:
    """Seconds of ``subprocess.run(["/bin/sh", "-c", "echo x"])``: what a shell step spawns."""
    times = []
    for _ in range(repeat * 10):
        started = time.perf_counter()
        subprocess.run(["/bin/sh", "-c", "echo x"], capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def retried(n: int) -> str:
    steps = "\n".join(
        f"  - {{type: shell_command, command: 'exit 1', id: r{i}, on_error: continue,"
        " retry_count: 2, retry_delay: 0, retry_jitter: 0}"
        for i in range(n)
    )
    return f"name: w3\nsteps:\n{steps}\n"


def fan_out(n: int, parallel: int) -> str:
    return (
        "name: w4\nsteps:\n"
        f"  - type: parallel_foreach\n    items: '{{{{ range({n}) | list }}}}'\n"
        f"    sub_agent_task: t\n    max_parallel: {parallel}\n"
        "sub_agent_tasks:\n  t:\n    inputs: {item: {type: integer}}\n"
        "    state_schema:\n      raw: {n: integer}\n    steps:\n"
        "      - {type: state_update, path: raw.n, value: '{{ item + 1 }}'}\n"
    )


def suite(cases: int) -> str:
    """A ``wfkit test`` suite of ``cases`` cases of ``w0.yaml`` beside it."""
    body = "\n".join(f"  - name: case {i}\n    expect: {{status: succeeded}}" for i in range(cases))
    return f"workflow: w0.yaml\ncases:\n{body}\n"


#: the libraries every ``wfkit run`` imports (the fixed choices of the project)
LIBRARIES = (
    "import typer, rich.console, jinja2, yaml, asyncio, sqlite3, json;"
    " from pydantic import BaseModel; import importlib.metadata"
)


def child_env() -> dict[str, str]:
    """The environment of timed processes: bytecode may be cached (PITFALLS 19)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("NO_COLOR", "1")
    return env


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one process; output is discarded, failures end the bench."""
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


def paired(
    mine: list[str], floor: list[str], repeat: int, env: dict[str, str]
) -> tuple[float, float]:
    """Median wall of ``mine`` and of ``floor``, interleaved, after one warm-up of each."""
    timed(mine, env)
    timed(floor, env)
    ours, base = [], []
    for _ in range(repeat):
        ours.append(timed(mine, env))
        base.append(timed(floor, env))
    return statistics.median(ours), statistics.median(base)


def per_step(
    mine: list[str], floor: list[str], tmp: str, repeat: int, env: dict[str, str]
) -> tuple[float, float]:
    """Seconds per extra step: W1 minus W0, each pair run back to back, median of the pairs.

    Differences of paired runs cancel most of the machine's load, which moves both alike.
    """
    small, large = Path(tmp, "w0.yaml"), Path(tmp, "w1.yaml")

    def argv(template: list[str], path: Path) -> list[str]:
        return [str(path) if part == "{}" else part for part in template]

    ours, base = [], []
    for _ in range(repeat + 2):
        ours.append(timed(argv(mine, large), env) - timed(argv(mine, small), env))
        base.append(timed(argv(floor, large), env) - timed(argv(floor, small), env))
    return statistics.median(ours) / 199, statistics.median(base) / 199


def per_case(wfkit: list[str], tmp: str, repeat: int, env: dict[str, str]) -> float:
    """Seconds per extra ``wfkit test`` case (the run included): a 200-case suite minus a
    2-case one, each pair run back to back, median of the pairs."""
    folders = []
    for cases in (2, 200):
        folder = Path(tmp, f"suite{cases}")
        folder.mkdir()
        Path(folder, "w0.yaml").write_text(one_step(), encoding="utf-8")
        Path(folder, "s.wftest.yaml").write_text(suite(cases), encoding="utf-8")
        folders.append(folder)
    small, large = ([*wfkit, "test", str(folder)] for folder in folders)
    differences = [timed(large, env) - timed(small, env) for _ in range(repeat + 2)]
    return statistics.median(differences) / 198


def version_argv(wfkit: list[str], env: dict[str, str]) -> list[str]:
    """``wfkit --version``, or ``wfkit version`` for an installation that predates it."""
    probe = subprocess.run([*wfkit, "--version"], env=env, capture_output=True, check=False)
    return [*wfkit, "--version"] if probe.returncode == 0 else [*wfkit, "version"]


def report_render(steps: int, repeat: int) -> tuple[float, float, int, float]:
    """Milliseconds to render the human report of a ``steps``-step run, against plain text.

    The run itself happens once, in process; returns (rich ms, plain ms, characters printed,
    ms of the full report that ``--steps all`` prints).
    """
    import asyncio

    from rich.console import Console

    from wfkit.cli.views.run import run_report
    from wfkit.commands.run import run_workflow_async

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "big.yaml")
        path.write_text(trivial(steps), encoding="utf-8")
        report = asyncio.run(run_workflow_async(path, store=Path(tmp, "store")))

    def rich_once(full: bool = False) -> tuple[float, int]:
        out = io.StringIO()
        console = Console(file=out, width=100, color_system=None)
        started = time.perf_counter()
        console.print(run_report(report, full))
        return time.perf_counter() - started, len(out.getvalue())

    def plain_once() -> float:
        started = time.perf_counter()
        lines = [
            f"{s.id:20} {s.type:14} {s.status:10} {s.attempts:>3} {s.executions:>4} "
            f"{s.duration_ms:>8.1f}"
            for s in report.steps
        ]
        io.StringIO().write("\n".join(lines))
        return time.perf_counter() - started

    rich_times, size = [], 0
    plain_times = []
    for _ in range(repeat):
        elapsed, size = rich_once()
        rich_times.append(elapsed)
        plain_times.append(plain_once())
    full_ms = rich_once(full=True)[0] * 1000
    return (
        statistics.median(rich_times) * 1000,
        statistics.median(plain_times) * 1000,
        size,
        full_ms,
    )


def row(title: str, ours: float, base: float, target: str) -> None:
    print(f"{title:44} {ours * 1000:>9.1f} {base * 1000:>9.1f} {ours / base:>7.1f}x   {target}")


def wall_section(quick: bool, wfkit: list[str] | None = None) -> None:
    """Print the wall-clock table (see the module docstring)."""
    repeat = 3 if quick else 5
    env = child_env()
    if wfkit is None:
        script = Path(sys.executable).with_name("wfkit")
        wfkit = [str(script)] if script.exists() else [sys.executable, "-m", "wfkit"]
    python = str(Path(wfkit[0]).with_name("python")) if len(wfkit) == 1 else wfkit[0]
    if not Path(python).exists():
        python = sys.executable
    floor_script = str(HERE / "floor.py")
    print(
        f"\nwall clock, fresh processes, median of {repeat} "
        f"(floors timed in the same run)\n"
        f"{'workload':44} {'wfkit ms':>9} {'floor ms':>9} {'ratio':>8}   target"
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp, "store"))
        version, pass_floor = paired(version_argv(wfkit, env), [python, "-c", "pass"], repeat, env)
        row("C  wfkit --version", version, pass_floor, "<= 60 ms, <= 4x python -c pass")
        workloads: list[tuple[str, str, str]] = [
            ("W0 one step", one_step(), "<= 200 ms (stretch 120), <= 5x floor"),
            ("W1 200 trivial steps", trivial(200), "marginal/step <= 70 us, <= 2x floor's"),
            ("W2 50 echo shell steps", echoes(50), ""),
            ("W3 20 steps x 3 attempts", retried(20), ""),
            ("W4 fan-out 100 items, 8 in parallel", fan_out(100, 8), ""),
            ("W5 200 steps, 200 distinct templates", distinct(200), ""),
        ]
        for title, text, target in workloads:
            path = Path(tmp, f"{title.split()[0].lower()}.yaml")
            path.write_text(text, encoding="utf-8")
            ours, base = paired(
                [*wfkit, "run", str(path), "--store", store],
                [python, floor_script, str(path)],
                repeat,
                env,
            )
            row(title, ours, base, target)
        # what W0 cannot go below while it imports the libraries it is built on
        imports, base = paired(
            [python, "-c", LIBRARIES],
            [python, floor_script, str(Path(tmp, "w0.yaml"))],
            repeat,
            env,
        )
        row("   W0's libraries, imported only", imports, base, "(share of W0 not wfkit's own)")
        no_cache = Path(tmp, "w0.yaml")
        ours, base = paired(
            [*wfkit, "run", str(no_cache), "--store", store],
            [python, floor_script, str(no_cache)],
            repeat,
            {**env, "WFKIT_COMPILE_CACHE": "0"},
        )
        row("W0 one step, compile cache off", ours, base, "")
        # the cold path: a fresh folder per run, as a CI job on a fresh checkout meets it
        shells = {n: Path(tmp, f"shell{n}.yaml") for n in (1, 50)}
        for n, shell_path in shells.items():
            shell_path.write_text(shell_state(n), encoding="utf-8")
        cold_w0 = Path(tmp, "w0.yaml")
        for title, path, target in (
            ("W0 one step, cold (fresh store each run)", cold_w0, "<= 5x"),
            ("W1 200 trivial steps, cold", Path(tmp, "w1.yaml"), ""),
            ("W6 50 shell steps + state_update, cold", shells[50], ""),
        ):
            ours, base = cold(wfkit, path, [python, floor_script, str(path)], tmp, repeat, env)
            row(title, ours, base, target)
        warm_w0, w0_floor = paired(
            [*wfkit, "run", str(cold_w0), "--store", store],
            [python, floor_script, str(cold_w0)],
            repeat,
            env,
        )
        row("W0 one step, warm (store and cache kept)", warm_w0, w0_floor, "<= 4x")
        one, _ = cold(wfkit, shells[1], [python, "-c", "pass"], tmp, repeat, env)
        fifty, _ = cold(wfkit, shells[50], [python, "-c", "pass"], tmp, repeat, env)
        spawn = spawn_floor(repeat)
        shell_step = (fifty - one) / 49
        print(
            f"{'   W6 marginal per shell step, cold (ms)':44} {shell_step * 1000:>9.2f} "
            f"{spawn * 1000:>9.2f} {shell_step / spawn:>7.1f}x   <= 1.3x the spawn floor"
            " (median 50-step minus median 1-step run, /49)"
        )
        marginal, floor_marginal = per_step(
            [*wfkit, "run", "{}", "--store", store], [python, floor_script, "{}"], tmp, repeat, env
        )
        print(
            f"{'   W1 marginal per step (us)':44} {marginal * 1e6:>9.1f} "
            f"{floor_marginal * 1e6:>9.1f} {marginal / max(floor_marginal, 1e-9):>7.1f}x"
            "   <= 70 us, <= 2x floor's (median of paired W1 - W0)"
        )
        case = per_case(wfkit, tmp, repeat, {**env, "WFKIT_STORE": store})
        print(
            f"{'T  wfkit test, marginal per case (ms)':44} {case * 1000:>9.2f} {'':>9} {'':>8}"
            "   <= 2 ms beyond the run (median of paired 200 - 2 cases, run included)"
        )
        big = Path(tmp, "explain.yaml")
        big.write_text(trivial(2000), encoding="utf-8")
        ours, base = paired(
            [*wfkit, "explain", str(big), "--store", store],
            [python, floor_script, str(big), "--parse"],
            repeat,
            env,
        )
        row("X  explain of 2000 steps", ours, base, "<= 150 ms")
    rich_ms, plain_ms, size, full_ms = report_render(10_000, repeat)
    print(
        f"{'R  human report of 10,000 executions (ms)':44} {rich_ms:>9.1f} {plain_ms:>9.1f} "
        f"{rich_ms / plain_ms:>7.1f}x   <= 50 ms ({size} characters; the floor formats "
        f"every row; --steps all: {full_ms:.0f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 5")
    parser.add_argument("--wfkit", help="the wfkit entry point to time")
    args = parser.parse_args()
    wall_section(args.quick, [args.wfkit] if args.wfkit else None)


if __name__ == "__main__":
    main()
