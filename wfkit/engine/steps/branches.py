"""``parallel``: named step lists (branches) run side by side, at most ``max_parallel`` at once.

A branch runs as a parallel item does (:mod:`wfkit.engine.items`): in a frame of its own
(keyed ``<parent frame>/<step id>[<position>]``), here or on an executor's worker. It starts
from a copy of the state and of the local names (``steps``, ``loop``) of the frame running
the step, so branches never see each other's writes while they run. When they have all
ended, what each *succeeded* branch changed is written back, in branch order: a value a
branch set (compared leaf by leaf with the copy it started from) replaces the shared one,
so two branches writing different keys of one map both land, and on the same key the later
branch wins. A failed branch's writes are dropped. A succeeded branch's entry (its final
state and result) is remembered by the parent frame, so a resume reruns only the others.
"""

from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any

from wfkit.engine.events import FrameDropped, ItemFinished
from wfkit.engine.items import ItemJob, run_item
from wfkit.engine.state import MISSING
from wfkit.engine.steps.registry import handles
from wfkit.errors import BranchError, StepError
from wfkit.language.loader import branch_name
from wfkit.language.models import ParallelStep

if TYPE_CHECKING:
    from wfkit.engine.frame import Frame


@handles(ParallelStep)
async def run_parallel(step: ParallelStep, frame: Frame) -> Any:
    """Run every branch; the result is ``{branch: {status, error, result}}`` in branch order,
    ``result`` being the output of the branch's last step. Under ``fail_fast`` the first
    failure cancels the branches in flight (their cleanup runs) and fails the step."""
    names = list(step.branches)
    resumed = frame.take_reentry() is not None
    if not resumed:  # a new execution (a retry, a loop's next turn): nothing of an earlier one
        for index in range(len(names)):
            frame.forget(_key(step, index))
            frame.run.emit(FrameDropped(frame.run.run_id, _frame_key(step, frame, index)))
    frame.note(branches=len(names))  # a resume re-enters the step (take_reentry)
    entries: list[dict[str, Any] | None] = [
        frame.memory.get(_key(step, i)) for i in range(len(names))
    ]
    start = {
        **copy.deepcopy({"raw": frame.state.raw, "computed": frame.state.computed}),
        "inputs": frame.state.inputs,
        "locals": frame.locals,  # each branch copies them as it starts (items.run_item)
    }
    queue = iter([i for i, entry in enumerate(entries) if entry is None])
    errors: list[BranchError] = []

    async def worker() -> None:
        for index in queue:
            entry, error = await _run_branch(step, frame, index, names, start, resumed)
            entries[index] = entry
            if error is None:
                frame.remember(_key(step, index), entry)
                frame.run.checkpoint(frame)  # the parent stays at this (unfinished) step
                frame.run.emit(FrameDropped(frame.run.run_id, _frame_key(step, frame, index)))
                continue
            errors.append(error)
            if step.on_branch_error == "fail_fast":
                frame.run.decisions.fail_fast(
                    frame.prefix + step.step_id,
                    index,
                    error.type_name,
                    error.message,
                    branch=names[index],
                )
                raise error

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(step.max_parallel or len(names), len(names))):
                group.create_task(worker())
    except BaseExceptionGroup as group_error:
        failures = [e for e in group_error.exceptions if isinstance(e, BranchError)]
        raise failures[0] if failures else group_error.exceptions[0] from None
    succeeded = [e for e in entries if e is not None and e["status"] == "succeeded"]
    if step.min_success is not None and len(succeeded) < step.min_success:
        first = min(errors, key=lambda e: names.index(e.branch or ""))
        raise BranchError(
            f"{len(succeeded)} of {len(names)} branches succeeded; {step.step_id!r} needs "
            f"min_success={step.min_success} (first failure: branch {first.branch!r}: "
            f"{first.message})",
            branch=first.branch,
            cause=first.cause,
        )
    for error in errors:  # on_branch_error: continue took over: these did not fail the run
        frame.run.mark_recovered(error)
    with frame.state.atomic():
        for entry in succeeded:
            _merge_into(frame, start["raw"], entry["state"]["raw"])
    for index in range(len(names)):
        frame.forget(_key(step, index))
    return {
        names[i]: {"status": e["status"], "error": e["error"], "result": e.get("result")}
        for i, e in enumerate(entries)
        if e is not None
    }


def _key(step: ParallelStep, index: int) -> str:
    return f"branch:{step.step_id}:{index}"


def _frame_key(step: ParallelStep, frame: Frame, index: int) -> str:
    return f"{frame.key}/{step.step_id}[{index}]"


async def _run_branch(
    step: ParallelStep,
    frame: Frame,
    index: int,
    names: list[str],
    start: dict[str, Any],
    resumed: bool,
) -> tuple[dict[str, Any], BranchError | None]:
    """One branch's entry, or its error; its end is told (:class:`ItemFinished`)."""
    run = frame.run
    name = names[index]
    job = ItemJob(
        step_id=step.step_id,
        task=branch_name(frame.body.owner, step.step_id, name),
        prefix=f"{frame.prefix}{step.step_id}/",
        active=(*frame.active, f"branch {name}"),
        key=_frame_key(step, frame, index),
        index=index,
        item=name,
        retries=0,
        inputs={},
        saved=run.load_frame(_frame_key(step, frame, index)) if resumed else None,
        start=start,
    )
    executor = run.options.executor
    entry, error = await (run_item(run, job) if executor is None else executor.run_item(run, job))
    status = "failed" if error is not None else "succeeded"
    step_id = frame.prefix + step.step_id
    run.emit(ItemFinished(run.run_id, step_id, index, len(names), status, frame.key))
    if error is None:
        return entry, None
    return entry, BranchError(
        f"branch {name!r} of {step.step_id!r} failed: {error.type_name}: {error.message}",
        branch=name,
        cause=error if isinstance(error, StepError) else None,
    )


def _merge_into(frame: Frame, base: dict[str, Any], final: dict[str, Any]) -> None:
    """Write what a branch changed (``base`` -> ``final``) into the frame's state."""
    current = frame.state.raw
    for top in base.keys() - final.keys():  # the branch deleted it
        if top in current:
            frame.state.write(f"raw.{top}", "delete")
    for top, value in final.items():  # in the branch's own order: deterministic
        old = base.get(top, MISSING)
        if not _same(value, old):
            frame.state.write(f"raw.{top}", "set", _merged(current.get(top, MISSING), old, value))


def _merged(current: Any, base: Any, new: Any) -> Any:
    """``current`` with the changes from ``base`` to ``new``: maps key by key (a key the
    branch removed is removed; a map the branch created merges with one another branch
    created), anything else replaced whole."""
    if base is MISSING:
        base = {}
    if not (isinstance(current, dict) and isinstance(base, dict) and isinstance(new, dict)):
        return copy.deepcopy(new)
    out = dict(current)
    for key in base.keys() - new.keys():
        out.pop(key, None)
    for key, value in new.items():
        old = base.get(key, MISSING)
        if not _same(value, old):
            out[key] = _merged(current.get(key, MISSING), old, value)
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values: ``true`` is not ``1``, nor ``1.0`` ``1``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
