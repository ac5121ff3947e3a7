"""``agent_task``: work an agent performs, its response checked against ``response_schema``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wfkit.engine.agents import AgentReply, AgentRequest, AttemptIO, read_reply
from wfkit.engine.capture import OutputCapture
from wfkit.engine.steps.registry import handles
from wfkit.engine.steps.shell import output_limit
from wfkit.errors import StepError, WfkitError
from wfkit.language.models import AgentTaskStep
from wfkit.language.policy import retry_verdict
from wfkit.language.values import dumps

if TYPE_CHECKING:
    from wfkit.engine.frame import Frame


@handles(AgentTaskStep)
async def run_agent_task(step: AgentTaskStep, frame: Frame) -> Any:
    """Ask the run's performer (or the answer given for the step); the result is the
    response, parsed and checked (:func:`wfkit.engine.agents.read_reply`).

    The attempt's output keeps the request (first line of ``stderr``), what the performer
    said on the side, and the response (``stdout``), bounded like a shell command's.
    """
    run = frame.run
    options = run.options
    request = AgentRequest(
        run_id=run.run_id,
        step_id=step.step_id,
        item=frame.item,
        attempt=frame.attempt,
        prompt=str(frame.eval(step, "prompt")),
        context=frame.eval(step, "context") if step.context is not None else None,
        response_schema=step.response_schema,
        previous_error=frame.previous_error,
    )
    capture = OutputCapture(frame, step.step_id, "agent", output_limit(run))
    err = capture.streams["stderr"]

    def masked(data: dict[str, Any]) -> dict[str, Any]:
        return run.masker.value(data) if run.masker else data

    # masked whole, before the capture may cut the line (a cut through a secret would
    # leave both halves unmasked)
    err.feed(f"request: {dumps(masked(request.as_dict()))}\n".encode())

    def retried(error: StepError) -> bool:
        """Whether the step's policy would retry this attempt failing with ``error``."""
        retry = run.plan(step).policy.retry
        if retry is None or frame.attempt >= retry.attempts:
            return False
        try:
            return retry_verdict(error, retry, frame.view({"error": error.details()}))[0]
        except StepError:  # a broken retry_on: the step runner says so, and does not retry
            return False

    io = AttemptIO(
        run.loaded.workflow.config.max_state_bytes,
        options.kill_grace_seconds,
        err.feed,
        cwd=options.cwd,
        env={**run.env, "WFKIT_WORKFLOW_DIR": str(Path(run.loaded.file).resolve().parent)},
        masked=masked,
        retried=retried,
    )
    try:
        if step.step_id in options.answers:
            reply = AgentReply(value=options.answers[step.step_id])
        else:
            reply = await options.agent.perform(request, io)
        text = reply.text if reply.text is not None else dumps(reply.value)
        capture.streams["stdout"].feed(text.encode())
        value = read_reply(reply, step.response_schema, step.step_id)
    except BaseException as exc:
        if isinstance(exc, WfkitError):
            err.feed(f"{exc.type_name}: {exc.message}\n".encode())
        capture.finish("cancelled" if isinstance(exc, asyncio.CancelledError) else "failed")
        raise
    capture.finish("succeeded")
    return value
