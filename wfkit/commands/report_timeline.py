"""The timeline of a run's page: executions on one time axis, their attempts, errors and
retry waits, parallel items as lanes, and the critical path (``wfkit report``)."""

from __future__ import annotations

import bisect
import re
import time
from typing import Any

from wfkit.commands._base import StrictModel
from wfkit.commands.debug import CONTAINERS

#: slack when matching times recorded by different clocks (seconds)
_EPS = 0.0005
#: how far a recorded end may pass the next execution's start and still hand over to it
_HANDOFF = 0.005
#: ends looked at past the current start for such a handover
_HANDOFF_SCAN = 16
#: executions looked at past the first that could hold a moment (overlapping items)
_SCAN = 64


class ReportAttempt(StrictModel):
    """One attempt of one execution, with its captured output as the page shows it."""

    attempt: int
    status: str
    exit_code: int | None
    start_ms: float  # since the run started
    end_ms: float | None
    stdout: str
    stderr: str
    stdout_bytes: int
    stderr_bytes: int
    #: bytes the store itself did not keep (its head/tail bound)
    dropped_bytes: int
    #: characters of the stored output the page leaves out
    cut_chars: int = 0
    #: the output is not on the page at all (the page's output budget was spent)
    omitted: bool = False


class ReportExecution(StrictModel):
    """One execution of one step, placed on the run's time axis."""

    seq: int
    step_id: str
    step_type: str
    status: str
    attempts: int
    start_ms: float
    duration_ms: float
    error_type: str | None
    item: int | None
    injected: bool
    lane: int
    #: the top-level step this execution belongs to (index into ``RunPage.top_steps``)
    top: int | None
    critical: bool
    tries: list[ReportAttempt]
    #: retry waits: (after attempt, planned delay in ms) from the recorded retry verdicts
    waits: list[tuple[int, float]]
    #: indexes into ``RunPage.errors`` of the failed attempts of this execution
    errors: list[int]


class ReportLane(StrictModel):
    """A row group of the timeline: the main workflow, or one parallel item."""

    index: int
    name: str
    fan: str | None
    item: int | None
    status: str
    start_ms: float
    end_ms: float
    executions: int
    #: a parallel item's own state at its end (JSON text per value), when checkpointed
    state: dict[str, dict[str, str]] | None = None
    #: failed executions the lane got past (a later execution of the step succeeded, or the
    #: run's policy continued): the lane's colour is its outcome, these are marked apart
    recovered: int = 0


def critical_path(starts: list[float], ends: list[float], leaves: list[int]) -> set[int]:
    """The executions the run's wall time waited on: from the last to end, each time the
    execution that ended last before the current one started (parallel items: the slowest).

    A recorded end can trail the real one by the step's bookkeeping (its state writes and
    checkpoint), so an end up to :data:`_HANDOFF` after the current start still counts, from
    an execution that started before it.
    """
    if not leaves:
        return set()
    order = sorted(leaves, key=lambda i: ends[i])
    finish = [ends[i] for i in order]
    path = {order[-1]}
    current = order[-1]
    while True:
        start = starts[current]
        pos = bisect.bisect_right(finish, start + _EPS / 5) - 1
        while pos >= 0 and order[pos] in path:
            pos -= 1
        # an execution that started earlier and ended just after this one started
        top = bisect.bisect_right(finish, start + _HANDOFF) - 1
        for late in range(pos + 1, min(top, pos + _HANDOFF_SCAN) + 1):
            if order[late] not in path and starts[order[late]] < start:
                pos = late  # the latest such end among the nearest few
        if pos < 0:
            return path
        current = order[pos]
        path.add(current)


_OUTPUT_STEP_TYPES = {"shell": "shell_command", "tool": "mcp_call", "agent": "agent_task"}


def unfinished(
    history: list[dict[str, Any]], outputs: list[Any], status: str
) -> list[dict[str, Any]]:
    """Executions that began but were never recorded as ended (a running or killed run),
    from the attempts with output that no recorded execution holds; they end "now": at the
    latest time the run recorded."""
    ended: dict[tuple[str, int | None], list[tuple[float, float]]] = {}
    for h in history:
        span = (h["finished_at"] - h["duration_ms"] / 1000, h["finished_at"])
        ended.setdefault((h["step_id"], h["item"]), []).append(span)
    latest = max(
        [h["finished_at"] for h in history] + [o.finished_at or o.started_at for o in outputs]
        or [0.0]
    )
    if status == "running":
        latest = max(latest, time.time())
    open_runs: dict[tuple[str, int | None, int], list[Any]] = {}
    for out in outputs:
        spans = ended.get((out.step_id, out.item), [])
        # one step id and item run one execution at a time: spans are in order of their ends.
        # An attempt that ended belongs to the next execution to end after it began (clocks
        # of records differ a little); one still open to none that ended after it began.
        pos = bisect.bisect_left(spans, out.started_at - _EPS, key=lambda span: span[1])
        after = spans[pos : pos + 1]
        if not after or (out.finished_at is None and not after[0][0] - _EPS <= out.started_at):
            open_runs.setdefault((out.step_id, out.item, out.execution), []).append(out)
    rows = []
    for (step_id, item, _), attempts in open_runs.items():
        start = min(o.started_at for o in attempts)
        rows.append(
            {
                "step_id": step_id,
                "step_type": _OUTPUT_STEP_TYPES.get(attempts[0].kind, attempts[0].kind),
                "status": "running" if status == "running" else "interrupted",
                "attempts": max(o.attempt for o in attempts),
                "duration_ms": (latest - start) * 1000,
                "finished_at": latest,
                "error_type": None,
                "item": item,
                "injected": False,
            }
        )
    return rows


class Timeline:
    """A run's step executions on one time axis (seconds since the run started)."""

    def __init__(self, history: list[dict[str, Any]], t0: float) -> None:
        self.history = history
        self.starts = [h["finished_at"] - h["duration_ms"] / 1000 - t0 for h in history]
        self.ends = [h["finished_at"] - t0 for h in history]
        self.t0 = t0
        self.lane_keys: dict[tuple[str | None, int | None], int] = {(None, None): 0}
        self.lane_of: list[int] = []
        self.by_step: dict[tuple[str, int | None], list[int]] = {}
        self.by_id: dict[str, list[int]] = {}
        for i, h in enumerate(history):
            item = h["item"]
            key = (h["step_id"].rsplit("/", 1)[0], item) if item is not None else (None, None)
            self.lane_of.append(self.lane_keys.setdefault(key, len(self.lane_keys)))
            self.by_step.setdefault((h["step_id"], item), []).append(i)
            self.by_id.setdefault(h["step_id"], []).append(i)
        ends = self.ends
        self.step_ends = {k: [ends[i] for i in v] for k, v in self.by_step.items()}
        self.id_ends = {k: [ends[i] for i in v] for k, v in self.by_id.items()}

    def executions(
        self,
        tries: list[tuple[tuple[str, int | None, float], ReportAttempt]],
        error_times: list[float],
        error_steps: list[str],
        decisions: list[dict[str, Any]],
        owner: dict[str, int],
    ) -> list[ReportExecution]:
        """Every execution with its attempts, errors, retry waits and critical-path mark."""
        t0, starts, ends = self.t0, self.starts, self.ends
        exec_tries: dict[int, list[ReportAttempt]] = {}
        for (step_id, item, started), attempt in tries:
            key = (step_id, item)
            candidates = self.by_step.get(key, [])
            found = execution_at(
                candidates, starts, ends, started - t0, finish=self.step_ends.get(key)
            )
            if found is not None:
                exec_tries.setdefault(found, []).append(attempt)
        #: executions that can hold a failed attempt, and those that retried
        troubled = [h["status"] != "succeeded" or h["attempts"] > 1 for h in self.history]
        retried = [h["attempts"] > 1 for h in self.history]
        exec_errors: dict[int, list[int]] = {}
        for index, (moment, step_id) in enumerate(zip(error_times, error_steps, strict=True)):
            candidates = self.by_id.get(step_id, [])
            finish = self.id_ends.get(step_id)
            found = execution_at(candidates, starts, ends, moment - t0, troubled, finish)
            if found is not None:
                exec_errors.setdefault(found, []).append(index)
        exec_waits: dict[int, list[tuple[int, float]]] = {}
        for d in decisions:
            if d.get("decision") == "retry" and d.get("retried") and d.get("delay_ms") is not None:
                candidates = self.by_id.get(d["step_id"], [])
                finish = self.id_ends.get(d["step_id"])
                moment = d["timestamp"] - t0
                found = execution_at(candidates, starts, ends, moment, retried, finish)
                if found is not None:
                    wait = (int(d["attempt"]), float(d["delay_ms"]))
                    exec_waits.setdefault(found, []).append(wait)
        leaves = [
            i
            for i, h in enumerate(self.history)
            if h["step_type"] not in CONTAINERS and h["status"] != "skipped"
        ]
        critical = critical_path(starts, ends, leaves)
        return [
            ReportExecution(
                seq=i,
                step_id=h["step_id"],
                step_type=h["step_type"],
                status=h["status"],
                attempts=h["attempts"],
                start_ms=round(max(starts[i], 0.0) * 1000, 3),
                duration_ms=round(h["duration_ms"], 3),
                error_type=h["error_type"],
                item=h["item"],
                injected=h["injected"],
                lane=self.lane_of[i],
                top=owner.get(h["step_id"].split("/", 1)[0]),
                critical=i in critical,
                tries=sorted(exec_tries.get(i, []), key=lambda a: a.attempt),
                waits=exec_waits.get(i, []),
                errors=exec_errors.get(i, []),
            )
            for i, h in enumerate(self.history)
        ]

    def lanes(
        self,
        executions: list[ReportExecution],
        item_states: dict[tuple[str, int], dict[str, dict[str, str]]],
        run_status: str = "succeeded",
        structure: list[str] | None = None,
    ) -> list[ReportLane]:
        """The main workflow's lane, then one per parallel item (or branch, named from the
        run's stored step ``structure``), in order of appearance."""
        names = branch_names(structure or [])
        return _lanes(self.lane_keys, executions, item_states, run_status, names)


_BRANCH = re.compile(r"^(\S+)\.branches\.([A-Za-z0-9_-]+)\[\d+\] ")


def branch_names(structure: list[str]) -> dict[str, list[str]]:
    """The branches of each ``parallel`` step of the main steps' top level (or ``finally``),
    in order, by the step's id (the id it is recorded under)."""
    ids = {
        entry.split(" ")[0]: entry.split(" ")[1]
        for entry in structure
        if re.match(r"^(steps|finally)\[\d+\] ", entry)
    }
    found: dict[str, list[str]] = {}
    for entry in structure:
        match = _BRANCH.match(entry)
        if match is not None and match[1] in ids:
            names = found.setdefault(ids[match[1]], [])
            if match[2] not in names:
                names.append(match[2])
    return found


def execution_at(
    candidates: list[int],
    starts: list[float],
    ends: list[float],
    moment: float,
    plausible: list[bool] | None = None,
    finish: list[float] | None = None,
) -> int | None:
    """The execution among ``candidates`` (in order of completion) running at ``moment``.

    Of those whose span holds the moment, a ``plausible`` one first (for an error: one that
    failed or retried), then the one that started last (a loop's next iteration begins
    where the last ended). None holds it: the next to end after it, if any. ``finish``: the
    candidates' ends, when the caller keeps them (a lookup is then O(log n)).
    """
    if finish is None:
        finish = [ends[i] for i in candidates]
    pos = bisect.bisect_left(finish, moment - _EPS)
    if pos == len(candidates):
        return None
    holding = [
        i for i in candidates[pos : pos + _SCAN] if starts[i] - _EPS <= moment <= ends[i] + _EPS
    ]
    if not holding:
        return candidates[pos]
    return max(holding, key=lambda i: (plausible is None or plausible[i], starts[i]))


def _lanes(
    keys: dict[tuple[str | None, int | None], int],
    executions: list[ReportExecution],
    item_states: dict[tuple[str, int], dict[str, dict[str, str]]],
    run_status: str = "succeeded",
    branches: dict[str, list[str]] | None = None,
) -> list[ReportLane]:
    spans: dict[int, list[ReportExecution]] = {}
    for e in executions:
        spans.setdefault(e.lane, []).append(e)
    lanes = []
    for (fan, item), index in keys.items():
        rows = spans.get(index, [])
        last: dict[str, ReportExecution] = {}  # each step's latest execution: the outcome
        for e in sorted(rows, key=lambda e: e.seq):
            last[e.step_id] = e
        failed = any(e.status in ("failed", "timed_out") for e in last.values())
        cancelled = any(e.status == "cancelled" for e in last.values())
        status = "failed" if failed else "cancelled" if cancelled else "succeeded"
        if fan is None and run_status in ("succeeded", "failed", "timed_out", "cancelled"):
            status = "failed" if run_status == "timed_out" else run_status  # the run's outcome
        troubles = sum(e.status in ("failed", "timed_out") for e in rows)
        lanes.append(
            ReportLane(
                index=index,
                name="workflow" if fan is None else f"{fan} [{_part(fan, item, branches)}]",
                fan=fan,
                item=item,
                status=status,
                recovered=troubles if status == "succeeded" else 0,
                start_ms=min((e.start_ms for e in rows), default=0.0),
                end_ms=max((e.start_ms + e.duration_ms for e in rows), default=0.0),
                executions=len(rows),
                state=None if fan is None or item is None else item_states.get((fan, item)),
            )
        )
    return lanes


def _part(fan: str, item: int | None, branches: dict[str, list[str]] | None) -> str:
    """``item 3`` of a fan-out, or the branch's name."""
    names = (branches or {}).get(fan, [])
    if item is not None and 0 <= item < len(names):
        return f"branch {names[item]}"
    return f"item {item}"
