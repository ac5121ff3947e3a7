"""Stress and chaos: the limits, with figures (``nox -s stress``; prints, asserts nothing).

    python benchmarks/stress.py            # full sizes (a few minutes on 2 cores)
    python benchmarks/stress.py --quick    # small sizes

Each scenario runs in a child process, so peak RSS figures are its own.
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

ROOT = Path(__file__).resolve().parent.parent


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _no_sleep(_: float) -> None:
    return None


def large_state(scale: float, tmp: Path) -> dict[str, Any]:
    """A 200,000-item list and 1,000 keys of ~1 KB, then 200 writes to an unrelated field."""
    from wfkit.engine.context import RunOptions
    from wfkit.engine.events import Checkpoint
    from wfkit.engine.runtime import Run
    from wfkit.language.loader import load_text
    from wfkit.store.sqlite import RunStore

    n_items, n_keys, writes = int(200_000 * scale), int(1000 * scale), 200
    loaded = load_text(
        "name: large\nconfig: {max_state_bytes: 100000000, state_warn_bytes: 100000000}\n"
        "state_schema:\n  raw: {big: array, blob: object, counter: integer}\n  computed:\n"
        "    big_len: {from: raw.big, transform: input | length}\n"
        "    blob_keys: {from: raw.blob, transform: input | length}\n"
        f"steps:\n  - type: while_loop\n    condition: counter < {writes}\n"
        f"    max_iterations: {writes + 1}\n    body:\n"
        "      - {type: state_update, path: raw.counter, operation: increment}\n",
        str(tmp / "large.yaml"),
    )
    checkpoint_bytes: list[int] = []

    def measure(event: Any) -> None:
        if isinstance(event, Checkpoint):
            checkpoint_bytes.append(
                sum(len(json.dumps(v, default=str)) for v in event.changes.values())
            )

    with RunStore(tmp / "large-store") as store:
        options = RunOptions(
            sinks=[store, measure],
            trace=True,
            initial_raw={
                "big": list(range(n_items)),
                "blob": {f"k{i}": "x" * 1000 for i in range(n_keys)},
            },
        )
        run = Run(loaded, "large", {}, options)
        started = time.perf_counter()
        outcome = asyncio.run(run.execute())
        elapsed = time.perf_counter() - started
    assert run.tracer is not None
    recomputed = sum(
        1
        for r in run.tracer.records
        if r["kind"] == "transform"
        and r["field"] == "computed.big_len"
        and r["trigger"] == "raw.counter update"
    )
    steps = sum(s.executions for s in outcome.steps)
    return {
        "status": outcome.status,
        "state MB": round(len(json.dumps(outcome.state)) / 2**20, 1),
        "ms per write": round(elapsed * 1000 / writes, 3),
        "big_len recomputed by the 200 writes": recomputed,
        "checkpoint bytes per step": round(sum(checkpoint_bytes[1:]) / max(steps - 1, 1)),
        "first checkpoint bytes": checkpoint_bytes[0] if checkpoint_bytes else 0,
    }


def concurrent(scale: float, tmp: Path) -> dict[str, Any]:
    """16 `wfkit run` processes on one store, then 200 runs at once in one process."""
    from wfkit.commands import list_runs, run_workflow_async

    flow = tmp / "tiny.yaml"
    flow.write_text(
        "name: tiny\nstate_schema:\n  raw: {n: integer}\nsteps:\n"
        "  - type: foreach\n    items: '{{ range(20) | list }}'\n    body:\n"
        "      - {type: state_update, path: raw.n, operation: increment}\n"
        "      - {type: shell_command, command: 'true', if: '{{ n % 10 == 0 }}'}\n"
    )
    store = tmp / "shared"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "wfkit", "run", str(flow), "--store", str(store), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(16)
    ]
    outputs = [p.communicate() for p in procs]
    locked = sum("locked" in err for _, err in outputs)
    ok_processes = sum(p.returncode == 0 for p in procs)
    runs = int(200 * scale)

    async def many() -> list[Any]:
        return await asyncio.gather(
            *(run_workflow_async(flow, store=store) for _ in range(runs)), return_exceptions=True
        )

    started = time.perf_counter()
    results = asyncio.run(many())
    elapsed = time.perf_counter() - started
    ok_inline = sum(not isinstance(r, BaseException) and r.status == "succeeded" for r in results)
    locked += sum("locked" in str(r) for r in results if isinstance(r, BaseException))
    return {
        "processes ok": f"{ok_processes}/16",
        "in-process runs ok": f"{ok_inline}/{runs}",
        "in-process seconds": round(elapsed, 2),
        "listed by runs": len(list_runs(store, limit=10_000)),
        "'database is locked'": locked,
    }


def fan_out(scale: float, tmp: Path) -> dict[str, Any]:
    """parallel_foreach of 10,000 items, 64 at a time."""
    from wfkit.commands import run_workflow

    def flow(n: int) -> Path:
        path = tmp / f"fan{n}.yaml"
        path.write_text(
            "name: fan\nsteps:\n  - type: parallel_foreach\n"
            f"    items: '{{{{ range({n}) | list }}}}'"
            "\n    sub_agent_task: t\n    max_parallel: 64\nsub_agent_tasks:\n  t:\n"
            "    inputs: {item: {type: integer}}\n    state_schema:\n      raw: {v: integer}\n"
            "    steps:\n      - {type: state_update, path: raw.v, value: '{{ item * 2 }}'}\n"
        )
        return path

    small, large = int(2000 * scale), int(10_000 * scale)
    before = _rss_mb()
    run_workflow(flow(small), store=tmp / "fan-store")
    after_small = _rss_mb()
    started = time.perf_counter()
    report = run_workflow(flow(large), store=tmp / "fan-store")
    elapsed = time.perf_counter() - started
    after_large = _rss_mb()
    return {
        "items": large,
        "status": report.status,
        "seconds": round(elapsed, 2),
        "items/s": round(large / elapsed),
        "peak RSS MiB": round(_peak_mb()),
        "RSS KiB per item": round((after_large - after_small) * 1024 / (large - small), 2),
        "RSS before MiB": round(before),
    }


def error_storm(scale: float, tmp: Path, items: int = 5000, cap: int = 500) -> dict[str, Any]:
    """5,000 failing items, with a circuit breaker and without."""
    from wfkit.commands import run_workflow_async
    from wfkit.engine.tools import FunctionTools

    items = int(items * scale)
    rows = {}
    for breaker in (False, True):
        calls = 0

        def down() -> None:
            nonlocal calls
            calls += 1
            raise RuntimeError("down")

        path = tmp / f"storm{breaker}.yaml"
        path.write_text(
            f"name: storm\nconfig:\n  max_error_records: {cap}\n"
            "  circuit_breakers: {api: {failure_threshold: 20, reset_timeout: 600}}\n"
            f"steps:\n  - type: parallel_foreach\n    items: '{{{{ range({items}) | list }}}}'\n"
            "    sub_agent_task: c\n    max_parallel: 64\n    on_item_error: continue\n"
            "sub_agent_tasks:\n  c:\n    inputs: {item: {type: integer}}\n    steps:\n"
            "      - {type: mcp_call, tool: down"
            + (", circuit_breaker: api}\n" if breaker else "}\n")
        )
        started = time.perf_counter()
        report = asyncio.run(
            run_workflow_async(
                path,
                store=tmp / f"storm{breaker}",
                sleep=_no_sleep,
                tools=FunctionTools({"down": down}),
            )
        )
        rows[f"breaker={breaker}"] = {
            "seconds": round(time.perf_counter() - started, 2),
            "real calls": calls,
            "errors kept": len(report.errors),
            "errors dropped": report.errors_dropped,
        }
    return {"items": items, **rows, "peak RSS MiB": round(_peak_mb())}


def transient(
    scale: float, tmp: Path, rates: tuple[float, ...] = (0.1, 0.3, 0.5)
) -> dict[str, Any]:
    """Fault injection at 0.1/0.3/0.5 with 5 retries, against 1 - p^6."""
    from wfkit.commands import run_workflow_async
    from wfkit.engine.tools import FunctionTools

    trials = int(1000 * scale)
    out = {}
    for p in rates:
        rng = random.Random(7)

        def flaky(p: float = p, rng: random.Random = rng) -> str:
            if rng.random() < p:
                raise RuntimeError("transient")
            return "ok"

        path = tmp / "transient.yaml"
        path.write_text(
            f"name: t\nconfig: {{max_error_records: 100000}}\nsteps:\n  - type: parallel_foreach\n"
            f"    items: '{{{{ range({trials}) | list }}}}'\n    sub_agent_task: c\n"
            "    max_parallel: 32\n    on_item_error: continue\nsub_agent_tasks:\n  c:\n"
            "    inputs: {item: {type: integer}}\n    steps:\n"
            "      - {type: mcp_call, tool: flaky, on_error: retry, retry_count: 5,"
            " retry_delay: 10}\n"
        )
        report = asyncio.run(
            run_workflow_async(
                path,
                store=tmp / "transient",
                sleep=_no_sleep,
                tools=FunctionTools({"flaky": flaky}),
            )
        )
        # an item that finally failed has one unrecovered record per attempt; count items
        failed = sum(
            1
            for e in report.errors
            if e.error_type == "ToolError" and not e.recovered and e.retry_count == 5
        )
        out[f"p={p}"] = f"{(trials - failed) / trials:.4f} (theory {1 - p**6:.4f})"
    return {"trials": trials, **out}


def memory_pressure(scale: float, tmp: Path) -> dict[str, Any]:
    """State grows toward max_memory_mb: MemoryLimitError, checkpoint kept, resume works."""
    limit = round(_rss_mb()) + int(100 * scale) + 60
    flow = tmp / "memory.yaml"
    text = (
        f"name: mem\nconfig: {{max_memory_mb: {limit}, max_state_bytes: 2000000000,"
        " state_warn_bytes: 2000000000}\n"
        "state_schema:\n  raw: {n: integer}\nsteps:\n"
        "  - type: while_loop\n    condition: n < 400\n    max_iterations: 401\n    body:\n"
        # a new top-level field per step: checkpoints write only what changed (1 MB each;
        # the expression size cap is 1 MB), so the run stays linear as the state grows
        "      - {type: state_update, path: 'raw.chunk_{{ n }}',"
        " value: \"{{ 'x' * 1000000 }}\"}\n"
        "      - {type: state_update, path: raw.n, operation: increment}\n"
    )
    flow.write_text(text)
    env = {**os.environ, "WFKIT_STORE": str(tmp / "mem-store")}
    first = subprocess.run(
        [sys.executable, "-m", "wfkit", "run", str(flow), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    report = json.loads(first.stdout)
    flow.write_text(text.replace(f"max_memory_mb: {limit}", "max_memory_mb: 100000"))
    resumed = subprocess.run(
        [sys.executable, "-m", "wfkit", "resume", report["run_id"], "--force", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    after = json.loads(resumed.stdout)
    return {
        "limit MiB": limit,
        "first run": f"{report['status']} ({(report.get('error') or {}).get('type')})",
        "MB in state at the stop": report["state"]["raw"]["n"],
        "resumed": after["status"],
        "MB in state after resume": after["state"]["raw"]["n"],
    }


def chaos(scale: float, tmp: Path) -> dict[str, Any]:
    """SIGKILL of the engine at random moments, and of an MCP server mid-call."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from reliability import kill_and_resume

    from wfkit.commands import run_workflow

    engine = kill_and_resume(max(2, int(20 * scale)), tmp)
    server = ROOT / "examples" / "servers" / "notes.py"
    flow = tmp / "server-kill.yaml"
    flow.write_text(
        "name: server-kill\nmcp_servers:\n"
        f"  notes: {{command: python, args: ['{server}']}}\n"
        "state_schema:\n  raw: {pids: array}\nsteps:\n"
        "  - {id: first, type: mcp_call, tool: pid,"
        " state_update: {path: raw.pids, operation: append, value: '{{ result }}'}}\n"
        "  - {id: killer, type: shell_command, command: 'kill -9 {{ pids[0] }}'}\n"
        "  - {id: again, type: mcp_call, tool: pid, on_error: retry, retry_delay: 10,"
        " state_update: {path: raw.pids, operation: append, value: '{{ result }}'}}\n"
    )
    report = run_workflow(flow, store=tmp / "server-kill-store")
    again = next(s for s in report.steps if s.id == "again")
    return {
        **{f"engine: {k}": v for k, v in engine.items()},
        "server killed mid-run": report.status,
        "attempts after the kill": again.attempts,
        "server restarted": len(set(report.state.raw["pids"])) == 2,
    }


def huge_output(scale: float, tmp: Path) -> dict[str, Any]:
    """A step writing 1 GB: the engine's memory and the stored output stay bounded."""
    import sqlite3

    from wfkit.commands import run_workflow

    size = int(1_000_000_000 * scale)
    flow = tmp / "huge.yaml"
    flow.write_text(
        "name: huge\nsteps:\n  - id: flood\n    type: shell_command\n"
        f"    command: \"yes 'a line of build output, over and over' | head -c {size}\"\n"
    )
    before = _peak_mb()
    started = time.perf_counter()
    report = run_workflow(flow, store=tmp / "huge-store")
    seconds = time.perf_counter() - started
    with sqlite3.connect(tmp / "huge-store" / "runs.db") as db:
        stored = db.execute(
            "SELECT COALESCE(SUM(LENGTH(data)), 0) FROM output_chunks WHERE run_id = ?",
            (report.run_id,),
        ).fetchone()[0]
    limit = 65_536  # config.max_output_bytes (default)
    return {
        "written MB": size // 1_000_000,
        "status": report.status,
        "seconds": round(seconds, 1),
        "engine peak RSS MiB": round(_peak_mb(), 1),
        "RSS before MiB": round(before, 1),
        "stored output bytes": stored,
        "2 x max_output_bytes": 2 * limit,
    }


def _own_peak_mb() -> float:
    """This process's peak RSS (VmHWM; ru_maxrss would carry the parent's over exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return _peak_mb()  # pragma: no cover - not Linux


def _hostile(category: str) -> Any:
    """One category of the hostile corpus: tried, refused, time and peak RSS."""

    def scenario(scale: float, tmp: Path) -> dict[str, Any]:
        sys.path.insert(0, str(ROOT))
        from tests.hostile import corpus
        from wfkit.commands.transform import evaluate_transform

        cases: list[str] = {
            "escapes": corpus.ESCAPES,
            "hangs": corpus.HANGS,
            "big values": corpus.BIG_VALUES,
            "mutations": corpus.MUTATIONS,
            "not JSON": list(corpus.NOT_JSON),
            "costly operations": ["{{ " + e + " }}" for e in corpus.COSTLY],
            "big allocations": ["{{ " + e + " }}" for e in corpus.BIG_ALLOCATIONS],
            "colliding hashes": ["{{ " + e + " }}" for e in corpus.CLOCKED],
            "results no output shows": ["{{ " + e + " }}" for e in corpus.BROKEN_RESULTS],
        }[category]
        context = {"raw": {"n": 1, "blob": [1]}, "inputs": {"limit": 3}}
        refused = 0
        slowest = 0.0
        started = time.perf_counter()
        for case in cases:
            one = time.perf_counter()
            result = evaluate_transform(case, input={"a": 5}, context=context)
            slowest = max(slowest, time.perf_counter() - one)
            refused += result.error is not None
        return {
            "tried": len(cases),
            "refused": refused,
            "s": round(time.perf_counter() - started, 2),
            "slowest s": round(slowest, 2),
            "peak MiB": round(_own_peak_mb()),
        }

    return scenario


def hostile_shell(scale: float, tmp: Path) -> dict[str, Any]:
    """Injection payloads in every quoting context: the command must print the exact value."""
    sys.path.insert(0, str(ROOT))
    from tests.hostile.test_shell_injection import CONTEXTS, PAYLOADS
    from wfkit.language.expressions import Value
    from wfkit.language.shellquote import render_command

    tried = exact = executed = 0
    started = time.perf_counter()
    for template, expected in CONTEXTS:
        compiled = Value(template, shell=True)
        for payload in PAYLOADS:
            command = render_command(lambda: compiled.render({"v": payload}))  # noqa: B023
            done = subprocess.run(
                ["/bin/sh", "-c", command.text],
                cwd=tmp,
                env={**os.environ, **command.env},
                capture_output=True,
                check=False,
            )
            tried += 1
            exact += done.stdout == expected(payload).encode()
            canary = tmp / "CANARY"
            if canary.exists():
                executed += 1
                canary.unlink()
    return {
        "tried": tried,
        "exact": exact,
        "payloads executed": executed,
        "s": round(time.perf_counter() - started, 2),
        "peak MiB": round(_own_peak_mb()),
    }


SCENARIOS = {
    "huge output": huge_output,
    "large state": large_state,
    "many concurrent workflows": concurrent,
    "fan-out": fan_out,
    "error storm": error_storm,
    "transient recovery": transient,
    "memory pressure": memory_pressure,
    "chaos": chaos,
    "hostile: escapes": _hostile("escapes"),
    "hostile: hangs": _hostile("hangs"),
    "hostile: big values": _hostile("big values"),
    "hostile: mutations": _hostile("mutations"),
    "hostile: not JSON": _hostile("not JSON"),
    "hostile: costly operations": _hostile("costly operations"),
    "hostile: big allocations": _hostile("big allocations"),
    "hostile: colliding hashes": _hostile("colliding hashes"),
    "hostile: results no output shows": _hostile("results no output shows"),
    "hostile: shell injection": hostile_shell,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="run one scenario, in this process")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    if args.only:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(SCENARIOS[args.only](scale, Path(tmp))))
        return
    started = time.perf_counter()
    for name in SCENARIOS:
        command = [sys.executable, __file__, "--only", name] + (["--quick"] if args.quick else [])
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = done.stdout.strip().splitlines()
        try:
            figures = json.loads(lines[-1])
        except (IndexError, ValueError):
            figures = {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
        shown = ", ".join(f"{k}: {v}" for k, v in figures.items())
        print(f"{name:26} {shown}", flush=True)
    print(f"{'total':26} {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
