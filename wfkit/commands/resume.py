"""``resume``: continue a failed, interrupted, timed-out or cancelled run where it stopped."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from wfkit.commands._io import read_mapping
from wfkit.commands._runs import (
    effective_status,
    execute_recorded,
    executor_choice,
    merged_answers,
    report,
    run_options,
    until_signalled,
)
from wfkit.commands._secrets import require_secret_inputs, secret_inputs
from wfkit.commands.results import RunReport
from wfkit.commands.resume_plan import ResumePlan, plan_changes
from wfkit.commands.run import child_runner
from wfkit.engine.agents import AgentPerformer
from wfkit.engine.context import Ask, Elicit
from wfkit.engine.events import Event
from wfkit.engine.frame import StepRecord
from wfkit.engine.runtime import Run
from wfkit.engine.tools import ToolProvider
from wfkit.errors import ResumeError
from wfkit.language.fingerprint import step_structure, structure_change
from wfkit.language.loader import LoadedWorkflow, load_file, load_text
from wfkit.store import open_store
from wfkit.store.base import RunRow, Store

RESUMABLE = ("failed", "timed_out", "cancelled", "interrupted", "waiting")
FANS = ("parallel", "parallel_foreach")


def history_records(history: list[dict[str, Any]]) -> list[StepRecord]:
    """Step records (last execution, count of executions) rebuilt from stored history."""
    records: dict[str, StepRecord] = {}
    for row in history:
        record = records.setdefault(row["step_id"], StepRecord(row["step_id"], row["step_type"]))
        record.status = row["status"]
        record.statuses[row["status"]] = record.statuses.get(row["status"], 0) + 1
        record.attempts = row["attempts"]
        record.duration_ms = row["duration_ms"]
        record.executions += row["status"] != "skipped"
        record.injected = record.injected or bool(row.get("injected"))
    return list(records.values())


async def resume_workflow_async(
    run_id: str,
    *,
    force: bool = False,
    from_step: str | None = None,
    inputs: dict[str, Any] | None = None,
    inputs_file: str | Path | None = None,
    answers: dict[str, Any] | None = None,
    answers_file: str | Path | None = None,
    store: str | Path | None = None,
    tools: ToolProvider | None = None,
    ask: Ask | None = None,
    on_event: Callable[[Event], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    pause_for_input: bool = False,
    workflow_path: Callable[[str], Path] | None = None,
    executor: str | None = None,
    scheduler: str | None = None,
    workflow: str | Path | None = None,
    agent_command: str | None = None,
    agent: AgentPerformer | None = None,
    elicit: Elicit | None = None,
) -> RunReport:
    """Continue a stored run from its last checkpoint: completed steps do not run again.

    Inputs are resolved again against the current file (its defaults included), with
    ``inputs``/``inputs_file`` over the stored ones; what changed is recorded as a message.
    ``from_step`` (a top-level step of the main workflow that ran) re-runs from that step,
    with the state as it was before it, like Temporal's reset; a succeeded run may be reset.
    Refuses (``ResumeError``) a run that succeeded (without ``from_step``) or is still
    running, and one whose step structure changed before the saved position, unless ``force``.
    The workflow is ``workflow`` when given (another copy of the file, checked against the
    recorded structure like an edit), else the recorded file, else, where that file is not
    (another machine, a deleted checkout), the text recorded with the run; a message says
    which was used. ``workflow_path`` turns a path into the one to load, or refuses it (the
    MCP shim confines it to its root). ``executor`` and ``scheduler`` as for ``run``.
    """
    all_answers = merged_answers(answers, answers_file)
    given = read_mapping(inputs_file, "inputs") if inputs_file else {}
    given.update(inputs or {})
    with open_store(store, create=False) as run_store:
        row = run_store.get_run(run_id)
        status = effective_status(row)
        if status not in RESUMABLE and not (from_step is not None and status == "succeeded"):
            why = "it succeeded" if status == "succeeded" else f"it is {status} (pid {row.pid})"
            raise ResumeError(f"run {row.run_id} cannot be resumed: {why}")
        loaded, used = _workflow_of(row, run_store, workflow, workflow_path)
        cursor = _cursor(row, run_store, loaded, from_step)
        plan = _plan(row, run_store, loaded, cursor, given)
        _check_structure(row, loaded, cursor, force, plan)
        choice = executor_choice(loaded, executor, scheduler, in_process=tools is not None)
        require_secret_inputs(loaded, given, row.run_id)
        declared = loaded.main.state.inputs
        # an input that took its default takes the file's default now (resume --plan says so)
        defaulted = plan.new_defaults.keys() if plan is not None else set()
        kept = {k: v for k, v in row.inputs.items() if k in declared and k not in defaulted}
        resolved = loaded.main.state.resolve_inputs({**kept, **given})
        secret = set(secret_inputs(loaded))  # stored as ***: given again, never "changed"
        changed = sorted(
            k
            for k in set(resolved) | set(row.inputs)
            if k not in secret and resolved.get(k, _GONE) != row.inputs.get(k, _GONE)
        )
        if not run_store.claim(row):  # another process resumed or cancelled it meanwhile
            raise ResumeError(
                f"run {row.run_id} cannot be resumed: another process resumed or cancelled it"
                " just now"
            )
        if from_step is not None and cursor is not None:
            run_store.reset_to(row.run_id, cursor[0]["i"])
        shared: dict[str, Any] = {
            "agent_command": agent_command,
            "agent": agent,
            "elicit": elicit,
            "answers": answers,
            "answers_file": answers_file,
            "ask": ask,
            "sleep": sleep,
            "pause_for_input": pause_for_input,
        }
        options = run_options(
            run_store,
            loaded,
            all_answers,
            tools=tools,
            ask=ask,
            on_event=on_event,
            sleep=sleep,
            resume=lambda key: run_store.load_frame(row.run_id, key),
            pause_for_input=pause_for_input,
            changed_inputs=changed,
            prior_ms=row.duration_ms or 0.0,
            agent_command=agent_command,
            agent=agent,
            elicit=elicit,
            children=child_runner(
                store,
                resume_child=lambda child_id: resume_workflow_async(
                    child_id, store=store, **shared
                ),
                **shared,
            ),
            parent_run_id=row.parent,
        )
        run = Run(loaded, row.run_id, resolved, options)
        run.continue_from(
            history_records(run_store.step_history(row.run_id)),
            run_store.errors(row.run_id),
            run_store.messages(row.run_id),
        )
        if used is not None:
            run.message("info", used)
        if from_step is not None:
            run.message("info", f"resumed from step {from_step!r}, with the state before it")
        if changed:
            run.message(
                "info",
                "resume changed inputs: "
                + ", ".join(
                    f"{k}: {_show(row.inputs.get(k, _GONE))} -> {_show(resolved.get(k, _GONE))}"
                    for k in changed
                ),
            )
        outcome = await execute_recorded(run, run_store, choice)
        return report(outcome, loaded.file, run_store.location)


_GONE = object()


def _workflow_of(
    row: RunRow,
    run_store: Store,
    workflow: str | Path | None,
    workflow_path: Callable[[str], Path] | None,
) -> tuple[LoadedWorkflow, str | None]:
    """The workflow to resume ``row`` with, and a message saying which, when it is not the
    recorded file (module docstring of :mod:`wfkit.store.leases`)."""
    if workflow is not None:
        path = workflow_path(str(workflow)) if workflow_path else Path(workflow)
        loaded = load_file(path)
        if str(path.resolve()) == row.file:
            return loaded, None
        return loaded, f"resumed with {path} (the run was started from {row.file})"
    path = workflow_path(row.file) if workflow_path else Path(row.file)
    if path.exists():
        return load_file(path), None
    text = run_store.source(row.digest)
    if text is None:  # recorded before texts were kept: the file is the only copy
        return load_file(path), None
    return (
        load_text(text, file=row.file),
        f"{row.file} is not on this machine: resumed with the workflow text recorded with the run",
    )


def _show(value: Any) -> str:
    return "(none)" if value is _GONE else json.dumps(value, default=str)[:200]


def _top_index(loaded: LoadedWorkflow, step_id: str, history: list[dict[str, Any]]) -> int:
    """The index of a top-level main step that ran in the stored run."""
    for index, step in enumerate(loaded.main.steps):
        if loaded.plans[id(step)].step_id == step_id:
            if not any(h["step_id"] == step_id for h in history):
                raise ResumeError(f"step {step_id!r} never ran in this run: nothing to go back to")
            return index
    raise ResumeError(
        f"--from takes a top-level step of the main workflow; {step_id!r} is not one of "
        + ", ".join(loaded.plans[id(s)].step_id for s in loaded.main.steps)
    )


def _check_structure(
    row: RunRow,
    loaded: LoadedWorkflow,
    cursor: list[dict[str, Any]] | None,
    force: bool,
    plan: ResumePlan | None,
) -> None:
    """Refuse a file whose changes the resume would not honour (unless ``force``): the
    unsafe changes of the plan, or, without the recorded text, steps moved under the saved
    position."""
    if loaded.digest == row.digest or force:
        return
    if plan is not None:
        if not plan.safe:
            raise ResumeError(
                f"{row.file} changed since run {row.run_id} started; resuming it as it is"
                f" would not honour these changes:\n{plan.refusal()}\n(see `wfkit resume"
                f" {row.run_id} --plan`; --from STEP re-runs from an earlier step, --force"
                " resumes anyway)"
            )
        return
    if row.structure is None:  # recorded by an older wfkit: only the digest is known
        change: str | None = "the file changed"
    else:
        change = structure_change(row.structure, step_structure(loaded), cursor)
    if change is not None:
        raise ResumeError(
            f"{row.file} changed since run {row.run_id} started ({change}); resuming could "
            "skip or repeat the wrong steps (use --force to resume anyway)"
        )


def _cursor(
    row: RunRow, run_store: Store, loaded: LoadedWorkflow, from_step: str | None
) -> list[dict[str, Any]] | None:
    """Where the resume continues: the top-level step ``from_step`` (re-run from it), or the
    run's saved position (None: nothing was saved)."""
    if from_step is not None:
        top = _top_index(loaded, from_step, run_store.step_history(row.run_id))
        return [{"i": top, "done": False, "note": {}}]
    main = run_store.load_frame(row.run_id, "main")
    return main.cursor if main else None


def _plan(
    row: RunRow,
    run_store: Store,
    loaded: LoadedWorkflow,
    cursor: list[dict[str, Any]] | None,
    given: dict[str, Any],
) -> ResumePlan | None:
    """What changed since ``row`` started and whether resuming at ``cursor`` is sound; None
    when the run's workflow text was not recorded (an older wfkit)."""
    text = run_store.source(row.digest)
    if text is None:
        return None
    old = load_text(text, file=row.file) if loaded.digest != row.digest else loaded
    if cursor:
        done = bool(cursor[0]["done"]) and len(cursor) == 1
        stop, inside = cursor[0]["i"] + int(done), len(cursor) > 1
        tops = old.main.steps
        if not done and 0 <= stop < len(tops) and tops[stop].step_type in FANS:
            inside = True  # its items or branches keep their own positions
    else:
        stop, inside = -1, False
    history = run_store.step_history(row.run_id)
    completed = {h["step_id"] for h in history if h["status"] in ("succeeded", "skipped")}
    completed |= {sid.rsplit("/", 1)[-1] for sid in completed}  # a branch's or item's step
    before = old.workflow.inputs
    defaulted = {
        name
        for name, value in row.inputs.items()
        if name not in given
        and name in before
        and before[name].has_default
        and value == before[name].default
    }
    after = loaded.workflow.inputs
    new_defaults = {
        name: after[name].default
        for name in defaulted
        if name in after and after[name].has_default and after[name].default != row.inputs[name]
    }
    steps = [s.step_id for s in old.main.steps]
    return ResumePlan(
        run_id=row.run_id,
        file=loaded.file,
        changed=loaded.digest != row.digest,
        continues_at=steps[stop] if 0 <= stop < len(steps) else None,
        changes=plan_changes(old, loaded, stop, inside, completed, defaulted)
        if loaded.digest != row.digest
        else [],
        new_defaults=new_defaults,
    )


def plan_resume(
    run_id: str,
    *,
    store: str | Path | None = None,
    workflow: str | Path | None = None,
    from_step: str | None = None,
    inputs: dict[str, Any] | None = None,
    inputs_file: str | Path | None = None,
    workflow_path: Callable[[str], Path] | None = None,
) -> ResumePlan:
    """``wfkit resume --plan``: what a resume of ``run_id`` would do with the file as it is
    now (or ``workflow``), without resuming."""
    with open_store(store, create=False, read_only=True) as run_store:
        row = run_store.get_run(run_id)
        if from_step is None and effective_status(row) == "succeeded":
            raise ResumeError(
                f"run {row.run_id} cannot be resumed: it succeeded (--from STEP re-runs it)"
            )
        loaded, _ = _workflow_of(row, run_store, workflow, workflow_path)
        cursor = _cursor(row, run_store, loaded, from_step)
        given = read_mapping(inputs_file, "inputs") if inputs_file else {}
        given.update(inputs or {})
        plan = _plan(row, run_store, loaded, cursor, given)
        if plan is None:
            raise ResumeError(
                f"run {row.run_id} was recorded without its workflow text: no plan to show"
            )
        return plan


def resume_workflow(run_id: str, **kw: Any) -> RunReport:
    """Synchronous :func:`resume_workflow_async`; Ctrl-C and SIGTERM cancel the run."""
    return until_signalled(lambda: resume_workflow_async(run_id, **kw))
