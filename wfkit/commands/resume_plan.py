"""``wfkit resume --plan``: what changed in a workflow since a run started, and whether
resuming the run with the edited file is sound.

The recorded workflow (the text kept with the run) and the file on disk are compared step by
step (by id): steps added, removed, renamed (same definition, another id), moved, changed
(the fields that differ); input defaults; the state schema; and the changed expressions that
read the recorded output of a completed step. Each change is judged against where the resume
continues (the top-level step the run stopped in, or ``--from STEP``):

- at or after that step, a change is ``safe``: those steps run again with the new definition
  (a step the run stopped *inside* is unsafe: its completed part ran with the old one);
- before it, a change is ``unsafe``: the step completed with the old definition and a resume
  would not run it again. The override is ``--from STEP`` (re-run from there) or ``--force``.
"""

from __future__ import annotations

import re
from typing import Any

from wfkit.commands._base import StrictModel
from wfkit.language import models as m
from wfkit.language.compile import walk
from wfkit.language.loader import LoadedWorkflow
from wfkit.language.plan import references_in

_TOP = re.compile(r"^steps\[(\d+)\]")
_AFTER_ALL = 1 << 30  # finally steps and sub-agent tasks: they run after any stop point


class PlanChange(StrictModel):
    """One difference between the recorded workflow and the file, judged for a resume."""

    kind: str  # added | removed | renamed | moved | changed | input_default | input |
    # state_schema | reads_completed
    step_id: str | None = None
    detail: str
    safe: bool
    reason: str
    override: str | None = None  # the flag that makes an unsafe change acceptable


class ResumePlan(StrictModel):
    """The result of ``wfkit resume RUN_ID --plan``."""

    run_id: str
    file: str
    changed: bool  # the file differs from the recorded workflow
    continues_at: str | None  # the top-level step the resume starts with (None: the end)
    changes: list[PlanChange]
    #: inputs that took their default: a resume gives them the file's default now
    new_defaults: dict[str, Any] = {}

    @property
    def safe(self) -> bool:
        """Every change is safe: a plain resume goes ahead."""
        return all(change.safe for change in self.changes)

    def refusal(self) -> str:
        """The unsafe changes, one per line, as a refused resume says them."""
        return "\n".join(
            f"  - {c.detail}: {c.reason} (override: {c.override})"
            for c in self.changes
            if not c.safe
        )


def plan_changes(
    old: LoadedWorkflow,
    new: LoadedWorkflow,
    stop: int,
    inside: bool,
    completed: set[str],
    defaulted: set[str],
) -> list[PlanChange]:
    """The changes from ``old`` to ``new`` for a resume continuing at top-level index ``stop``
    (``inside``: the run stopped inside that step, part of it completed); ``completed`` are
    the step ids that completed; ``defaulted`` the inputs that took their default."""
    judge = _Judge(old, stop, inside)
    before, after = _steps(old), _steps(new)
    changes: list[PlanChange] = []
    removed = [sid for sid in before if sid not in after]
    added = [sid for sid in after if sid not in before]
    for sid in list(removed):  # the same definition under another id: renamed
        twin = next((a for a in added if _body(after[a][0]) == _body(before[sid][0])), None)
        if twin is not None:
            removed.remove(sid)
            added.remove(twin)
            changes.append(
                judge.step(
                    "renamed", sid, before[sid][1], f"step {sid!r} is now {twin!r}", completed
                )
            )
    for sid in removed:
        changes.append(
            judge.step("removed", sid, before[sid][1], f"step {sid!r} was removed", completed)
        )
    for sid in added:
        where = after[sid][1]
        changes.append(judge.added(sid, where))
    for sid, (step, where) in before.items():
        if sid not in after:
            continue
        new_step, new_where = after[sid]
        if new_where != where:
            detail = f"step {sid!r} moved from {where} to {new_where}"
            changes.append(judge.step("moved", sid, min(where, new_where, key=_top), detail, set()))
        fields = _differing(step, new_step)
        if fields:
            detail = f"step {sid!r} changed: {', '.join(fields)}"
            changes.append(judge.step("changed", sid, where, detail, completed))
            changes += _reads_completed(new, new_step, completed, sid)
    changes += _inputs(old, new, defaulted, _readers(old, completed))
    if _schema(old) != _schema(new):
        changes.append(
            PlanChange(
                kind="state_schema",
                detail="state_schema or default_state changed",
                safe=stop < 0,
                reason="the recorded state was built under the old schema"
                if stop >= 0
                else "nothing completed yet",
                override="--force" if stop >= 0 else None,
            )
        )
    return changes


class _Judge:
    """Safe or not, for a step at a field path, given where the resume continues."""

    def __init__(self, old: LoadedWorkflow, stop: int, inside: bool) -> None:
        self.stop = stop
        self.inside = inside
        self.top_ids = [s.step_id for s in old.main.steps]
        #: the top-level steps whose parallel_foreach runs each task, by task name
        self.fans: dict[str, list[int]] = {}
        for index, top in enumerate(old.main.steps):
            for step, _ in walk([top]):
                if isinstance(step, m.ParallelForeachStep):
                    self.fans.setdefault(step.sub_agent_task, []).append(index)

    def step(self, kind: str, sid: str, where: str, detail: str, completed: set[str]) -> PlanChange:
        top = _top(where)
        detail = f"{detail} ({where})"
        if top == _AFTER_ALL:  # finally, or a task: judged by the fan-outs that run it
            task = where.split(".")[1] if where.startswith("sub_agent_tasks.") else None
            fans = [i for i in self.fans.get(task or "", []) if i <= self.stop]
            if not fans:
                return self._safe(kind, sid, detail, "it runs after the resume point")
            owner = self.top_ids[min(fans)]
            return PlanChange(
                kind=kind,
                step_id=sid,
                detail=detail,
                safe=False,
                reason=f"items of {owner!r} completed with the old task and do not run again",
                override=f"--from {owner}" if kind == "changed" else "--force",
            )
        if top > self.stop or (top == self.stop and not self.inside):
            return self._safe(kind, sid, detail, "it runs again with the new definition")
        nested = where != f"steps[{top}]"
        if top == self.stop and nested and kind == "changed" and sid not in completed:
            return self._safe(kind, sid, detail, "it has not completed: it runs with the change")
        owner = self.top_ids[top] if 0 <= top < len(self.top_ids) else sid
        if top == self.stop:
            reason = "the run stopped inside this step; its completed part used the old one"
        else:
            reason = "it completed before the resume point with the old definition"
        return PlanChange(
            kind=kind,
            step_id=sid,
            detail=detail,
            safe=False,
            reason=reason,
            override=f"--from {owner}" if kind == "changed" else "--force",
        )

    @staticmethod
    def _safe(kind: str, sid: str, detail: str, reason: str) -> PlanChange:
        return PlanChange(kind=kind, step_id=sid, detail=detail, safe=True, reason=reason)

    def added(self, sid: str, where: str) -> PlanChange:
        top = _top(where)
        if top > self.stop or (top == self.stop and not self.inside):
            return PlanChange(
                kind="added",
                step_id=sid,
                detail=f"step {sid!r} was added at {where}",
                safe=True,
                reason="after the resume point: it will run",
            )
        return PlanChange(
            kind="added",
            step_id=sid,
            detail=f"step {sid!r} was added at {where}",
            safe=False,
            reason="before the resume point: a resume would skip it and shift the saved position",
            override="--force",
        )


def _steps(loaded: LoadedWorkflow) -> dict[str, tuple[m.StepBase, str]]:
    """Every step of the main workflow and its ``finally`` by id, with its field path."""
    found: dict[str, tuple[m.StepBase, str]] = {}
    for steps, part in ((loaded.main.steps, "steps"), (loaded.main.finally_steps, "finally")):
        for step, _ in walk(steps, (part,)):
            found[step.step_id] = (step, step.field_path)
    for name, body in loaded.tasks.items():
        for steps in (body.steps, body.finally_steps):
            for step, _ in walk(steps):
                found[f"{name}/{step.step_id}"] = (step, step.field_path)
    return found


def _top(where: str) -> int:
    match = _TOP.match(where)
    return int(match[1]) if match else _AFTER_ALL


_NESTED = frozenset({"then", "else", "body", "branches", "cleanup"})


def _body(step: m.StepBase) -> dict[str, Any]:
    """A step's own definition: its fields without its id and nested step lists."""
    dumped = step.model_dump(by_alias=True, exclude_defaults=True)
    return {k: v for k, v in dumped.items() if k not in _NESTED and k != "id"}


def _differing(old: m.StepBase, new: m.StepBase) -> list[str]:
    a, b = _body(old), _body(new)
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _reads_completed(
    new: LoadedWorkflow, step: m.StepBase, completed: set[str], sid: str
) -> list[PlanChange]:
    """A changed step whose expressions read a completed step's recorded output."""
    plan = new.plans.get(id(step))
    if plan is None:
        return []
    read = sorted(
        {
            ref.split(".")[1]
            for ref in references_in(plan.compiled)
            if ref.startswith("steps.") and ref.count(".") >= 1
        }
        & completed
    )
    return [
        PlanChange(
            kind="reads_completed",
            step_id=sid,
            detail=f"changed step {sid!r} reads steps.{other}, recorded before the edit",
            safe=True,
            reason=f"{other!r} is not run again: its recorded output is what {sid!r} reads "
            f"(--from {other} to produce it again)",
        )
        for other in read
    ]


def _readers(old: LoadedWorkflow, completed: set[str]) -> dict[str, list[str]]:
    """The completed steps reading each input (``name`` or ``inputs.name``), by input."""
    found: dict[str, list[str]] = {}
    for plan in old.plans.values():
        if plan.step_id not in completed:
            continue
        for ref in references_in(plan.compiled):
            parts = ref.split(".")
            name = parts[1] if parts[0] == "inputs" and len(parts) > 1 else parts[0]
            if name in old.workflow.inputs and plan.step_id not in found.get(name, []):
                found.setdefault(name, []).append(plan.step_id)
    return found


def _inputs(
    old: LoadedWorkflow, new: LoadedWorkflow, defaulted: set[str], readers: dict[str, list[str]]
) -> list[PlanChange]:
    changes = []
    before, after = old.workflow.inputs, new.workflow.inputs
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        if a is None or b is None:
            changes.append(
                PlanChange(
                    kind="input",
                    detail=f"input {name!r} was {'added' if a is None else 'removed'}",
                    safe=a is None and (b is not None and not b.is_required),
                    reason="the resume gives it its default"
                    if a is None and b is not None and not b.is_required
                    else "a required input the run never had"
                    if a is None
                    else "the run's value is dropped",
                    override=None if a is None and b is not None and not b.is_required else "-i",
                )
            )
            continue
        if a.default != b.default or a.has_default != b.has_default:
            detail = f"input {name!r}: default {a.default!r} -> {b.default!r}"
            read = readers.get(name, [])
            if name in defaulted and read:
                changes.append(
                    PlanChange(
                        kind="input_default",
                        detail=detail,
                        safe=False,
                        reason=f"it took its default, and completed step(s) {', '.join(read)}"
                        " read the old one: the run would mix both",
                        override=f"-i {name}=<the old value> to keep it, or --from {read[0]}",
                    )
                )
                continue
            changes.append(
                PlanChange(
                    kind="input_default",
                    detail=detail,
                    safe=True,
                    reason="given when the run started: kept"
                    if name not in defaulted
                    else "it took its default: the resume uses the new one",
                )
            )
    return changes


def _schema(loaded: LoadedWorkflow) -> Any:
    workflow = loaded.workflow
    return (
        workflow.state_schema.model_dump(by_alias=True, exclude_defaults=True),
        workflow.default_state.model_dump(by_alias=True, exclude_defaults=True),
    )
