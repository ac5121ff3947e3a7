"""What an ``agent_task`` step costs beyond a ``state_update`` step, with the command
performer answering at once (``cat`` of a fixed answer): per step, and per 100-item fan-out.

Prints figures; asserts nothing. The spawn floor is the same command started and read with
asyncio alone, so "agent - floor" is what wfkit adds around the process.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from wfkit.engine.agents import CommandAgent
from wfkit.engine.context import RunOptions
from wfkit.engine.runtime import Run
from wfkit.language.loader import load_text
from wfkit.store.sqlite import RunStore

SCHEMA = "{type: object, required: [ok]}"


def _sequential(n: int, agent: bool) -> str:
    step = (
        f"{{type: agent_task, prompt: 'Check {{{{ n }}}}', response_schema: {SCHEMA}, "
        "state_update: {path: raw.n, value: '{{ n + 1 }}'}}"
        if agent
        else "{type: state_update, path: raw.n, value: '{{ n + 1 }}'}"
    )
    body = "\n".join(f"  - {step}" for _ in range(n))
    return f"name: seq\nstate_schema:\n  raw: {{n: integer}}\nsteps:\n{body}\n"


def _fan_out(n: int, agent: bool) -> str:
    step = (
        f"{{type: agent_task, prompt: 'Check {{{{ item }}}}', response_schema: {SCHEMA}}}"
        if agent
        else "{type: state_update, path: raw.n, value: '{{ item }}'}"
    )
    return (
        "name: fan\nsteps:\n"
        f"  - type: parallel_foreach\n    items: '{{{{ range({n}) | list }}}}'\n"
        "    sub_agent_task: t\n    max_parallel: 8\n"
        "sub_agent_tasks:\n  t:\n    inputs: {item: {type: integer}}\n"
        f"    state_schema:\n      raw: {{n: integer}}\n    steps:\n      - {step}\n"
    )


def _run(text: str, folder: Path, agent: CommandAgent) -> float:
    loaded = load_text(text, f"{folder}/bench.yaml")
    with RunStore(folder) as store:
        options = RunOptions(sinks=[store], agent=agent)
        started = time.perf_counter()
        run = Run(loaded, f"agents-{time.perf_counter_ns()}", {}, options)
        outcome = asyncio.run(run.execute())
        elapsed = time.perf_counter() - started
    if outcome.status != "succeeded":
        raise SystemExit(f"benchmark run failed: {outcome.error}")
    return elapsed


def _spawn_floor(argv: list[str], n: int) -> float:
    async def once() -> None:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        await proc.communicate(b"{}\n")

    async def all_of_them() -> None:
        for _ in range(n):
            await once()

    started = time.perf_counter()
    asyncio.run(all_of_them())
    return time.perf_counter() - started


def agent_section(quick: bool) -> None:
    steps, items, repeat = (10, 20, 1) if quick else (50, 100, 3)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        answer = folder / "answer.json"
        answer.write_text('{"ok": true}\n')
        argv = ["cat", str(answer)]
        agent = CommandAgent(tuple(argv))
        rows = []
        for title, make, count in (
            (f"{steps} sequential steps", _sequential, steps),
            (f"fan-out of {items} items (max_parallel 8)", _fan_out, items),
        ):
            plain = statistics.median(
                _run(make(count, False), folder, agent) for _ in range(repeat)
            )
            agents = statistics.median(
                _run(make(count, True), folder, agent) for _ in range(repeat)
            )
            rows.append((title, count, plain, agents))
        floor = statistics.median(_spawn_floor(argv, steps) for _ in range(repeat)) / steps
    print("\nagent_task with the command performer (cat of a fixed answer)")
    print(f"{'scenario':40} {'state_update ms':>16} {'agent_task ms':>14} {'+ms/step':>9}")
    for title, count, plain, agents in rows:
        extra = (agents - plain) / count * 1000
        print(f"{title:40} {plain * 1000:>16.1f} {agents * 1000:>14.1f} {extra:>9.2f}")
    print(f"spawn floor (cat started and read by asyncio alone): {floor * 1000:.2f} ms per process")


def pull_section(quick: bool) -> None:
    """Pull mode over stdio: a ``wfkit mcp`` server runs the workflow (``workflow_start``),
    one worker on the same connection claims and answers every task."""
    import os
    import sys

    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters

    steps, items = (5, 20) if quick else (20, 100)

    async def drive(client: Client, workflow: str) -> float:
        started = time.perf_counter()
        out = await client.call_tool("workflow_start", {"workflow": workflow})
        run_id = (out.structured_content or {})["run_id"]
        while True:
            got = await client.call_tool(
                "workflow_next_task", {"run_id": run_id, "worker": "bench", "wait_s": 5}
            )
            data = got.structured_content or {}
            task = data.get("task")
            if task is None:
                if data.get("run_status") != "running":
                    break
                continue
            await client.call_tool(
                "workflow_complete_task", {"task_id": task["task_id"], "result": {"ok": True}}
            )
        return time.perf_counter() - started

    async def timed(client: Client, workflow: str) -> float:
        started = time.perf_counter()
        await client.call_tool("workflow_run", {"workflow": workflow})
        return time.perf_counter() - started

    async def all_of_it(folder: Path) -> list[tuple[str, int, float, float]]:
        env = {**os.environ, "WFKIT_STORE": str(folder / "store")}
        env.pop("WFKIT_AGENT_COMMAND", None)
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "wfkit", "mcp", "--root", str(folder)], env=env
        )
        rows = []
        async with Client(params) as client:
            for title, make, count in (
                (f"{steps} sequential steps", _sequential, steps),
                (f"fan-out of {items} items (max_parallel 8)", _fan_out, items),
            ):
                (folder / "plain.yaml").write_text(make(count, False))
                (folder / "agents.yaml").write_text(make(count, True))
                plain = await timed(client, "plain.yaml")
                pulled = await drive(client, "agents.yaml")
                rows.append((title, count, plain, pulled))
        return rows

    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(all_of_it(Path(tmp)))
    print("\nagent_task in pull mode over stdio (one worker answering at once)")
    print(f"{'scenario':40} {'state_update ms':>16} {'pulled ms':>10} {'+ms/step':>9}")
    for title, count, plain, pulled in rows:
        extra = (pulled - plain) / count * 1000
        print(f"{title:40} {plain * 1000:>16.1f} {pulled * 1000:>10.1f} {extra:>9.2f}")
