"""Parallel items on a Dask cluster: throughput against workers, overhead per item, a
10,000-item fan-out, and the coordinator's memory per item for 10,000 and 100,000 items.
Prints figures; asserts nothing.

Each section starts a real cluster (``dask scheduler`` and ``dask worker --nworkers N``
processes on 127.0.0.1) and runs ``wfkit run --executor dask`` as its own process, the
coordinator, whose peak RSS is read when it exits. Durations are the fan-out step's own
(from the run's report), so the coordinator's start-up is not counted.

    python benchmarks/scale.py            # full sizes (about half an hour)
    python benchmarks/scale.py --quick    # small sizes (under a minute)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: pip install 'wfkit[dask]'")
    return found


def fan_out(items: int, item_steps: str, max_parallel: int, reads: bool = True) -> str:
    """A fan-out over ``items``; ``reads``: its state_update counts the succeeded entries of
    its result (the coordinator then keeps every entry)."""
    return (
        "name: scale\nstate_schema:\n  raw: {done: integer}\n"
        "config: {max_state_bytes: 2000000000}\nsteps:\n"
        f"  - id: fan\n    type: parallel_foreach\n    items: '{{{{ range({items}) | list }}}}'\n"
        f"    sub_agent_task: t\n    max_parallel: {max_parallel}\n"
        + (
            "    state_update: {path: raw.done, value: \"{{ result | selectattr('status', "
            "'equalto', 'succeeded') | list | length }}\"}\n"
            if reads
            else ""
        )
        + "sub_agent_tasks:\n  t:\n    inputs: {item: {type: integer}}\n"
        f"    state_schema:\n      raw: {{n: integer}}\n    steps:\n{item_steps}"
    )


SLEEP = "      - {type: wait, seconds: 0.2}\n"
TRIVIAL = "      - {id: s, type: state_update, path: raw.n, value: '{{ item + 1 }}'}\n"


ONE = ("--nthreads", "1", "--no-dashboard")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def cluster(workers: int, folder: Path) -> Iterator[str]:
    """A scheduler and ``workers`` single-threaded worker processes, killed at the end."""
    from distributed import Client

    dask = tool("dask")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = (folder / f"cluster-{workers}.log").open("wb")
    common = {"stdout": log, "stderr": subprocess.STDOUT, "start_new_session": True}
    processes = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            **common,  # type: ignore[call-overload]
        ),
        subprocess.Popen(
            [dask, "worker", address, "--host", "127.0.0.1", "--nworkers", str(workers), *ONE],
            **common,  # type: ignore[call-overload]
        ),
    ]
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(address, timeout=10) as client:
                    client.wait_for_workers(workers, timeout=120)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield address
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def coordinate(flow: Path, store: Path, *flags: str) -> tuple[dict[str, Any], float, int]:
    """Run the workflow as its own process: its report, the fan-out's seconds and the
    process's peak RSS in bytes."""
    command = [tool("wfkit"), "run", str(flow), "--json", "--quiet", "--store", str(store)]
    out, err = store.with_suffix(".out"), store.with_suffix(".err")
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen([*command, *flags], stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"the run failed: {err.read_text()[-2000:]}")
    report = json.loads(out.read_text())
    fan = next(s for s in report["steps"] if s["id"] == "fan")
    return report, fan["duration_ms"] / 1000, usage.ru_maxrss * 1024


def stored_items(store: Path, run_id: str) -> int:
    """Executions of the items' step recorded in the store."""
    with sqlite3.connect(store / "runs.db") as db:
        row = db.execute(
            "SELECT COUNT(*) FROM steps WHERE run_id = ? AND step_id = 'fan/s'", (run_id,)
        ).fetchone()
    return int(row[0])


def throughput(folder: Path, items: int, counts: list[int]) -> None:
    print(f"\nthroughput: {items} items, each waits 0.2 s (I/O-bound)")
    print(f"{'workers':>8} {'seconds':>9} {'items/s':>9} {'ideal/s':>9} {'ratio':>7}")
    flow = folder / "sleep.yaml"
    flow.write_text(fan_out(items, SLEEP, 64))
    for workers in counts:
        with cluster(workers, folder) as address:
            _, seconds, _ = coordinate(
                flow, folder / f"t{workers}", "--executor", "dask", "--scheduler", address
            )
        rate, ideal = items / seconds, workers / 0.2
        print(f"{workers:>8} {seconds:>9.2f} {rate:>9.1f} {ideal:>9.1f} {rate / ideal:>7.2f}")


def increment(value: int) -> int:
    return value + 1


async def bare_dask(address: str, items: int, in_flight: int) -> float:
    """Seconds for ``items`` trivial Dask tasks, ``in_flight`` at a time: the floor."""
    import asyncio

    from distributed import Client

    client = await Client(address, asynchronous=True)
    slots = asyncio.Semaphore(in_flight)

    async def one(value: int) -> int:
        async with slots:
            return int(await client.submit(increment, value, pure=False))

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(items)))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


def overhead(folder: Path, items: int) -> None:
    import asyncio

    print(f"\noverhead per item: {items} trivial items (one state_update), 2 workers, 16 at once")
    flow = folder / "trivial.yaml"
    flow.write_text(fan_out(items, TRIVIAL, 16))
    _, local, _ = coordinate(flow, folder / "local")
    with cluster(2, folder) as address:
        _, remote, _ = coordinate(flow, folder / "dask", "--scheduler", address)
        floor = asyncio.run(bare_dask(address, items, 16))
    per = {name: t * 1000 / items for name, t in (("local", local), ("dask", remote))}
    print(
        f"local {per['local']:.2f} ms/item, dask {per['dask']:.2f} ms/item "
        f"({per['dask'] - per['local']:.2f} ms more); bare Dask tasks on the same cluster "
        f"{floor * 1000 / items:.2f} ms/item"
    )


def bulk(folder: Path, sizes: list[int]) -> None:
    print("\nbulk: trivial items through a 2-worker cluster")
    print(f"{'items':>7} {'seconds':>9} {'items/s':>9} {'peak RSS MiB':>13} {'stored':>7}")
    with cluster(2, folder) as address:
        for items in sizes:
            flow = folder / f"bulk{items}.yaml"
            flow.write_text(fan_out(items, TRIVIAL, 32))
            store = folder / f"bulk{items}"
            report, seconds, rss = coordinate(flow, store, "--scheduler", address)
            stored = stored_items(store, report["run_id"])
            done = report["state"]["raw"]["done"]
            assert_all = "all" if stored == items == done else f"{stored}/{items}"
            print(
                f"{items:>7} {seconds:>9.2f} {items / seconds:>9.1f} "
                f"{rss / 2**20:>13.1f} {assert_all:>7}"
            )


def memory(folder: Path, sizes: list[int]) -> None:
    """The coordinator's peak RSS against the number of items: the slope per item, for a
    fan-out whose result nothing reads (counts) and one whose state_update reads it."""
    print("\ncoordinator memory: trivial items, peak RSS of the coordinator process")
    print(f"{'where':>6} {'result':>7} {'items':>7} {'peak RSS MiB':>13} {'KiB/item':>9}")
    with cluster(2, folder) as address:
        cases = [("local", False, ()), ("local", True, ()), ("dask", False, ("--scheduler",))]
        for where, reads, flags in cases:
            base: tuple[int, int] | None = None
            for items in sizes:
                flow = folder / f"mem{items}{reads}.yaml"
                flow.write_text(fan_out(items, TRIVIAL, 32, reads=reads))
                store = folder / f"mem-{where}-{reads}-{items}"
                argv = (*flags, address) if flags else ()
                _, _, rss = coordinate(flow, store, *argv)
                slope = ""
                if base is not None:
                    slope = f"{(rss - base[1]) / 1024 / (items - base[0]):.2f}"
                base = base or (items, rss)
                kind = "read" if reads else "counts"
                print(f"{where:>6} {kind:>7} {items:>7} {rss / 2**20:>13.1f} {slope:>9}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes (< 60 s)")
    args = parser.parse_args()
    tool("dask")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.quick:
            throughput(folder, 40, [1, 2])
            overhead(folder, 100)
            bulk(folder, [200, 1000])
            memory(folder, [200, 2000])
        else:
            throughput(folder, 400, [1, 2, 4, 8])
            overhead(folder, 1000)
            bulk(folder, [1000, 10_000])
            memory(folder, [1000, 10_000, 100_000])


if __name__ == "__main__":
    main()
