"""``diff``: two runs aligned step by step, and the first place they diverge.

Step executions are aligned by ``(step id, parallel item, n)``: the n-th execution of that step
id (inside that ``parallel_foreach`` item) in run A faces the n-th in run B, so loop
iterations line up by iteration and parallel items by item index, whatever order they finished
in. Inputs and the final state are compared path by path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wfkit.commands._base import StrictModel
from wfkit.commands.report_timeline import branch_names
from wfkit.engine.events import ErrorRecord
from wfkit.store import open_store
from wfkit.store.base import RunRow

SLOWER_RATIO = 1.5
"""A step counts as slower only when it took 1.5 times as long (and 5 ms more)."""
SLOWER_MS = 5.0
MAX_VALUE_CHARS = 300
"""Values in differences are shown up to this many characters of JSON."""


class StepSide(StrictModel):
    """One run's side of an aligned step execution."""

    status: str
    attempts: int
    duration_ms: float
    error_type: str | None = None
    error: str | None = None


class StepDiff(StrictModel):
    """One aligned step execution and what differs."""

    step_id: str
    item: int | None
    #: the ``parallel`` branch the item is (by the structure of run A, else B)
    branch: str | None = None
    execution: int  # 1-based: the n-th execution of this step id (in this item)
    a: StepSide | None
    b: StepSide | None
    changes: list[str]  # status | attempts | error | only_a | only_b (| slower | faster: --timing)
    slower_by_ms: float | None = None


class ValueDiff(StrictModel):
    """A path whose value differs (``a``/``b`` absent: the path exists in one run only)."""

    path: str
    a: Any = None
    b: Any = None
    only: str | None = None  # "a" | "b" when one run lacks the path


class StepRef(StrictModel):
    """A step execution: its id, its parallel item (if any) and which execution."""

    step_id: str
    item: int | None
    execution: int


class DiffResult(StrictModel):
    """``wfkit diff --json``."""

    run_a: str
    run_b: str
    workflow_a: str
    workflow_b: str
    same_workflow_file: bool
    status_a: str
    status_b: str
    duration_a_ms: float | None
    duration_b_ms: float | None
    first_divergence: str | None
    #: the first step execution that behaved differently (timing aside), whatever else differs
    first_divergent_step: StepRef | None = None
    inputs: list[ValueDiff]
    state: list[ValueDiff]
    steps: list[StepDiff]
    identical_steps: int


def _short(value: Any) -> Any:
    text = json.dumps(value, default=repr, sort_keys=True)
    if len(text) <= MAX_VALUE_CHARS:
        return value
    return text[:MAX_VALUE_CHARS] + "..."


def value_diffs(a: Any, b: Any, path: str = "") -> list[ValueDiff]:
    """Leaf differences of two JSON values (objects compared key by key)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[ValueDiff] = []
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in b:
                out.append(ValueDiff(path=sub, a=_short(a[key]), only="a"))
            elif key not in a:
                out.append(ValueDiff(path=sub, b=_short(b[key]), only="b"))
            else:
                out.extend(value_diffs(a[key], b[key], sub))
        return out
    if a == b and type(a) is type(b):
        return []
    return [ValueDiff(path=path or "(value)", a=_short(a), b=_short(b))]


def _executions(
    history: list[dict[str, Any]], errors: list[ErrorRecord]
) -> dict[tuple[str, int | None, int], tuple[int, StepSide]]:
    """Each step execution under its alignment key, with its position in the history; a
    failed execution carries the last error its step recorded before it finished."""
    counts: dict[tuple[str, int | None], int] = {}
    out: dict[tuple[str, int | None, int], tuple[int, StepSide]] = {}
    for position, h in enumerate(history):
        base = (h["step_id"], h.get("item"))
        counts[base] = counts.get(base, 0) + 1
        error = None
        if h["status"] == "failed":
            last = [
                e for e in errors if e.step_id == h["step_id"] and e.timestamp <= h["finished_at"]
            ]
            error = f"{last[-1].error_type}: {last[-1].message}" if last else None
        out[(*base, counts[base])] = (
            position,
            StepSide(
                status=h["status"],
                attempts=int(h["attempts"]),
                duration_ms=round(float(h["duration_ms"]), 3),
                error_type=h.get("error_type"),
                error=error,
            ),
        )
    return out


def _compare(a: StepSide | None, b: StepSide | None) -> tuple[list[str], float | None]:
    if a is None:
        return ["only_b"], None
    if b is None:
        return ["only_a"], None
    changes = []
    if a.status != b.status:
        changes.append("status")
    if a.attempts != b.attempts:
        changes.append("attempts")
    if (a.error_type, a.error) != (b.error_type, b.error):
        changes.append("error")
    delta = round(b.duration_ms - a.duration_ms, 3)
    if b.duration_ms > a.duration_ms * SLOWER_RATIO and delta > SLOWER_MS:
        changes.append("slower")
    elif a.duration_ms > b.duration_ms * SLOWER_RATIO and -delta > SLOWER_MS:
        changes.append("faster")
    return changes, delta


def _branch(step_id: str, item: int | None, branches: dict[str, list[str]]) -> str | None:
    names = branches.get(step_id.split("/", 1)[0] if step_id.count("/") == 1 else "", [])
    return names[item] if item is not None and 0 <= item < len(names) else None


def diff_runs(
    run_a: str,
    run_b: str,
    *,
    store: str | Path | None = None,
    read_only: bool = False,
    timing: bool = False,
) -> DiffResult:
    """Align two runs (of the same workflow or not) and name their first divergence.

    Timing differences (a step ``slower``/``faster`` by half again) count as changes only
    with ``timing``: two runs of the same work differ in time, not in behaviour."""
    from wfkit.commands._runs import effective_status

    with open_store(store, create=False, read_only=read_only) as run_store:
        row_a, row_b = run_store.get_run(run_a), run_store.get_run(run_b)
        branches = branch_names(row_a.structure or row_b.structure or [])
        side_a = _executions(run_store.step_history(row_a.run_id), run_store.errors(row_a.run_id))
        side_b = _executions(run_store.step_history(row_b.run_id), run_store.errors(row_b.run_id))
    # in run A's order, then what only B did, in B's order
    keys = sorted(side_a, key=lambda k: side_a[k][0])
    keys += sorted((k for k in side_b if k not in side_a), key=lambda k: side_b[k][0])
    steps: list[StepDiff] = []
    identical = 0
    for key in keys:
        a = side_a.get(key, (0, None))[1]
        b = side_b.get(key, (0, None))[1]
        changes, delta = _compare(a, b)
        if not timing:
            changes = [c for c in changes if c not in ("slower", "faster")]
        if not changes:
            identical += 1
            continue
        steps.append(
            StepDiff(
                step_id=key[0],
                item=key[1],
                branch=_branch(key[0], key[1], branches),
                execution=key[2],
                a=a,
                b=b,
                changes=changes,
                slower_by_ms=delta if "slower" in changes else None,
            )
        )
    inputs = value_diffs(row_a.inputs, row_b.inputs)
    state = value_diffs(row_a.state or {}, row_b.state or {})
    status_a, status_b = effective_status(row_a), effective_status(row_b)
    return DiffResult(
        run_a=row_a.run_id,
        run_b=row_b.run_id,
        workflow_a=row_a.workflow,
        workflow_b=row_b.workflow,
        same_workflow_file=row_a.digest == row_b.digest,
        status_a=status_a,
        status_b=status_b,
        duration_a_ms=row_a.duration_ms,
        duration_b_ms=row_b.duration_ms,
        first_divergence=_first(row_a, row_b, inputs, steps, state, status_a, status_b),
        first_divergent_step=next(
            (
                StepRef(step_id=s.step_id, item=s.item, execution=s.execution)
                for s in steps
                if set(s.changes) - {"slower", "faster"}
            ),
            None,
        ),
        inputs=inputs,
        state=state,
        steps=steps,
        identical_steps=identical,
    )


def _where(step: StepDiff) -> str:
    item = f" item {step.item}" if step.item is not None else ""
    return f"{step.step_id!r}{item} (execution {step.execution})"


def _first(
    row_a: RunRow,
    row_b: RunRow,
    inputs: list[ValueDiff],
    steps: list[StepDiff],
    state: list[ValueDiff],
    status_a: str,
    status_b: str,
) -> str | None:
    """The earliest difference that matters: the file, the inputs, then the first step that
    behaved differently (timing alone comes last), then the state."""
    if row_a.digest != row_b.digest:
        return "the workflow file differs between the runs"
    if inputs:
        return f"input {inputs[0].path!r} differs: {_show(inputs[0].a)} vs {_show(inputs[0].b)}"
    for step in steps:
        changes = [c for c in step.changes if c not in ("slower", "faster")]
        if not changes:
            continue
        if "only_a" in changes:
            return f"{_where(step)} ran only in A ({step.a.status if step.a else ''})"
        if "only_b" in changes:
            return f"{_where(step)} ran only in B ({step.b.status if step.b else ''})"
        assert step.a is not None
        assert step.b is not None
        if "status" in changes:
            what = f"{step.a.status} in A, {step.b.status} in B"
        elif "attempts" in changes:
            what = f"{step.a.attempts} attempt(s) in A, {step.b.attempts} in B"
        else:
            what = f"error {step.a.error or 'none'} in A, {step.b.error or 'none'} in B"
        return f"{_where(step)}: {what}"
    if state:
        return f"state {state[0].path!r} differs: {_show(state[0].a)} vs {_show(state[0].b)}"
    if status_a != status_b:
        return f"status: {status_a} in A, {status_b} in B"
    slower = next((s for s in steps if "slower" in s.changes), None)
    if slower is not None:
        return f"{_where(slower)} is slower in B by {slower.slower_by_ms:.1f} ms"
    return None


def _show(value: Any) -> str:
    return json.dumps(value, default=repr) if value is not None else "absent"
