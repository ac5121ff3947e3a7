"""The store's pulled agent work (``agent_tasks``) on SQLite and PostgreSQL: one claimer per
task, answers only under a live lease, and a killed coordinator resumed on PostgreSQL."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.mcp_server.test_pull import FAN, kill_and_resume
from wfkit.store import open_store
from wfkit.store.base import TaskRow


def task(task_id: str, run_id: str = "r1", created: float | None = None) -> TaskRow:
    return TaskRow(
        task_id,
        run_id,
        "ask",
        0,
        1,
        {"prompt": "p"},
        "pending",
        None,
        None,
        created if created is not None else time.time(),
        None,
    )


def test_one_claimer_per_task_and_answers_under_a_live_lease(store_spec: str) -> None:
    with open_store(store_spec) as store:
        for i in range(6):
            store.add_agent_task(task(f"t{i}", created=1000.0 + i))
        store.add_agent_task(task("other", run_id="r2"))

    def claim(worker: str) -> str | None:
        with open_store(store_spec, create=False) as store:
            row = store.claim_agent_task("r1", worker, 60)
            return row.task_id if row else None

    with ThreadPoolExecutor(8) as pool:
        claimed = list(pool.map(claim, [f"w{i}" for i in range(8)]))
    taken = [c for c in claimed if c is not None]
    assert sorted(taken) == [f"t{i}" for i in range(6)]  # each once; two claimers got none
    with open_store(store_spec, create=False) as store:
        assert store.complete_agent_task("t0", "answered", {"result": 1})
        assert not store.complete_agent_task("t0", "answered", {"result": 2})  # done already
        assert store.agent_task("t0").reply == {"result": 1}  # type: ignore[union-attr]
        assert store.end_agent_task("t1", "expired", ("leased",))
        assert not store.complete_agent_task("t1", "answered", {"result": 1})
        assert store.claim_agent_task("r1", "late", 60) is None
        assert store.withdraw_agent_tasks("r1", time.time()) == 4  # t2..t5, leased
        assert store.agent_task("other").status == "pending"  # type: ignore[union-attr]
        statuses = {r.task_id: r.status for r in store.agent_tasks_of("r1")}
        assert statuses == {
            "t0": "answered",
            "t1": "expired",
            **{f"t{i}": "withdrawn" for i in range(2, 6)},
        }


def test_an_answer_after_the_lease_is_refused(store_spec: str) -> None:
    with open_store(store_spec) as store:
        store.add_agent_task(task("t"))
        assert store.claim_agent_task("r1", "slow", 0.05) is not None
        time.sleep(0.2)  # the lease is certainly over (a lower bound, not a speed assertion)
        assert not store.complete_agent_task("t", "answered", {"result": 1})
        assert store.agent_task("t").status == "leased"  # type: ignore[union-attr]


@pytest.mark.parametrize("store_spec", ["postgres"], indirect=True)
def test_a_killed_coordinator_resumes_on_postgresql(store_spec: str, tmp_path: Path) -> None:
    (tmp_path / "fan.yaml").write_text(FAN)
    kill_and_resume(tmp_path, store_spec)


def test_a_pulled_request_keeps_no_secret(tmp_path: Path) -> None:
    """The request a worker reads from the store has the run's secrets as ***."""
    import asyncio
    import threading

    from wfkit.commands import run_workflow_async
    from wfkit.commands.agent_work import PulledAgent, complete_task, next_task

    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "name: s\ninputs:\n  token: {type: string, secret: true}\nsteps:\n"
        "  - {id: a, type: agent_task, prompt: 'use {{ token }}', context: {t: '{{ token }}'}}\n"
    )
    store = str(tmp_path / "runs.db")
    seen: list[dict[str, object]] = []

    def worker() -> None:
        while True:
            with open_store(store) as run_store:
                runs = run_store.list_runs(limit=1)
            if runs:
                out = next_task(runs[0].run_id, "w", wait_s=30, store=store)
                if out.task is not None:
                    seen.append(out.task.model_dump())
                    complete_task(out.task.task_id, result="done", store=store)
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    report = asyncio.run(
        run_workflow_async(flow, {"token": "HUSH-4471"}, store=store, agent=PulledAgent(store))
    )
    thread.join(60)
    assert report.status == "succeeded", report.error
    [task] = seen
    assert task["prompt"] == "use ***"
    assert task["context"] == {"t": "***"}
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("runs.db*"))
    assert b"HUSH-4471" not in stored
