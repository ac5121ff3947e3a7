"""``workflow``: another workflow file run as a child run, and a run's ``outputs:``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from wfkit.engine.context import ChildCall
from wfkit.engine.steps.registry import handles
from wfkit.errors import ChildRunError, StepError, WfkitError, WorkflowStepError
from wfkit.language.expressions import make_scope
from wfkit.language.models import WorkflowStep

if TYPE_CHECKING:
    from wfkit.engine.frame import Frame
    from wfkit.engine.runtime import Run
    from wfkit.engine.state import State


@handles(WorkflowStep)
async def run_workflow_step(step: WorkflowStep, frame: Frame) -> Any:
    """Run the child as a run of its own, recorded with this one; the result is
    ``{status, run_id, outputs}``. A child that does not succeed fails the step with
    :class:`WorkflowStepError`, its own error as the cause; every attempt is a new child run."""
    run = frame.run
    child = run.loaded.children.get(id(step))
    runner = run.options.children
    if runner is None or child is None:  # an item on a Dask worker: no store there
        raise WorkflowStepError(
            f"workflow {step.file!r} needs a run store to record its child run in (a"
            " workflow step does not run in a parallel item on Dask workers)",
            step_id=step.step_id,
        )
    inputs = dict(frame.eval(step, "inputs")) if step.inputs else {}
    # a resume re-entering this step continues the child run it had started, if any
    earlier = (frame.take_reentry() or {}).get("child")

    def started(child_id: str) -> None:
        """The child's run id, kept with the caller's position before the child runs."""
        if frame.cursor:
            frame.note(child=child_id)
            if frame.during is None:
                run.checkpoint(frame, durable=True)

    call = ChildCall(frame.prefix + step.step_id, earlier, started)
    try:
        ended = await runner(child, inputs, run.run_id, dict(run.masker.secrets), call)
    except StepError:
        raise
    except WfkitError as exc:  # the child could not start (its inputs)
        raise WorkflowStepError(
            f"workflow {step.file!r} did not start: {exc.type_name}: {exc.message}",
            step_id=step.step_id,
            cause=exc,
        ) from None
    task = asyncio.current_task()
    if task is not None and task.cancelling():  # the caller is cancelled or timed out: the
        raise asyncio.CancelledError  # child ended for it; so does this step, as cancelled
    if ended.status != "succeeded":
        error = ended.error or {}
        cause = ChildRunError(
            str(error.get("message", f"the child run {ended.status}")),
            child_type=str(error.get("type", "StepError")),
            step_id=error.get("step_id"),
        )
        raise WorkflowStepError(
            f"child run {ended.run_id} of {step.file!r} {ended.status}: "
            f"{cause.type_name}: {cause.message}",
            step_id=step.step_id,
            child_run_id=ended.run_id,
            cause=cause,
        )
    return {"status": ended.status, "run_id": ended.run_id, "outputs": ended.outputs or {}}


async def finish(
    run: Run, frame: Frame, state: State, status: str, error: StepError | None
) -> tuple[dict[str, Any] | None, str, StepError | None]:
    """The run's ``outputs:`` rendered over its state once its steps succeeded (an output that
    cannot be rendered fails the run), then its ``finally`` steps (which see that status);
    the outputs are kept only when the run still succeeded."""
    outputs: dict[str, Any] | None = None
    if status == "succeeded" and run.loaded.outputs:
        scope = make_scope(run.names, state.flat)
        try:
            outputs = {k: v.render(scope) for k, v in run.loaded.outputs.items()}
        except StepError as exc:
            run.record_error(exc, "outputs", [], 0, recovered=False)
            status, error = "failed", exc
    status, error = await run.run_finally(frame, status, error)
    return (outputs if status == "succeeded" else None), status, error
