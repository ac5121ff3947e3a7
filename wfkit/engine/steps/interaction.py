"""Talking to people and time: ``user_message``, ``user_input``, ``wait``, ``error``."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wfkit.engine.context import NOT_ANSWERED, Question
from wfkit.engine.steps.registry import handles
from wfkit.errors import ExpressionError, InputRequiredError, UserError
from wfkit.language.models import ErrorStep, UserInputStep, UserMessageStep, WaitStep

if TYPE_CHECKING:
    from wfkit.engine.context import RunOptions
    from wfkit.engine.frame import Frame

MAX_WAIT_SECONDS = 86_400.0


@handles(UserMessageStep)
async def run_user_message(step: UserMessageStep, frame: Frame) -> Any:
    """Show a message; the result is its text."""
    text = str(frame.eval(step, "message"))
    frame.run.message(step.level, text, step.step_id)
    return text


@handles(UserInputStep)
async def run_user_input(step: UserInputStep, frame: Frame) -> Any:
    """Ask for a value: from the answers given to the run, else the terminal."""
    options = frame.run.options
    prompt = str(frame.eval(step, "prompt"))
    choices = frame.eval(step, "choices") if step.choices is not None else None
    default = frame.eval(step, "default") if step.default is not None else None
    answer = NOT_ANSWERED
    if step.step_id in options.answers:
        answer = options.answers[step.step_id]
    elif options.elicit is not None:
        question = Question(step.step_id, prompt, choices, default, _answer_type(step, frame))
        answer = await options.elicit(question)
    if answer is NOT_ANSWERED:
        answer = await _unanswered(step, options, prompt, choices, default)
    if choices is not None and answer not in choices:
        raise UserError(f"answer {answer!r} to {step.step_id!r} is not one of {choices!r}")
    return answer


async def _unanswered(
    step: UserInputStep, options: RunOptions, prompt: str, choices: Any, default: Any
) -> Any:
    """The answer of the terminal, else the run waits (or fails, with no way to wait)."""
    if options.ask is not None:
        return await _in_daemon_thread(options.ask, prompt, choices, default)
    if options.pause_for_input:
        raise InputRequiredError(
            f"user_input {step.step_id!r} waits for an answer: {prompt}",
            prompt=prompt,
            choices=choices,
            step_id=step.step_id,
        )
    raise UserError(
        f"user_input {step.step_id!r} needs an answer ({prompt!r}): run it in a terminal, "
        f"or pass --answers FILE with a value for {step.step_id!r}"
    )


_RESULT = re.compile(r"\A\{\{\s*result\s*\}\}\Z")


def _answer_type(step: UserInputStep, frame: Frame) -> str:
    """The declared type of the ``raw`` field the answer itself is set to (``value:
    "{{ result }}"``); ``string`` when the step writes it through an expression, or none."""
    for update in step.updates():
        parts = update.path.split(".")
        value = update.value
        if (
            len(parts) == 2
            and parts[0] == "raw"
            and update.operation == "set"
            and isinstance(value, str)
            and _RESULT.match(value.strip())
        ):
            declared = frame.state.plan.raw_types.get(parts[1], "any")
            return "string" if declared == "any" else declared
    return "string"


@handles(WaitStep)
async def run_wait(step: WaitStep, frame: Frame) -> Any:
    """Sleep (through the run's clock, so tests can skip the time)."""
    seconds = frame.eval(step, "seconds")
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        raise ExpressionError(
            f"seconds of {step.step_id!r} must be a number, got {seconds!r}"
        ) from None
    if not 0 <= seconds <= MAX_WAIT_SECONDS or math.isnan(seconds):
        raise ExpressionError(
            f"seconds of {step.step_id!r} must be between 0 and {MAX_WAIT_SECONDS:.0f}"
        )
    await frame.run.options.sleep(seconds)
    return seconds


@handles(ErrorStep)
async def run_error(step: ErrorStep, frame: Frame) -> Any:
    """Fail with :class:`UserError` (the step's ``cleanup`` runs first, like any failure)."""
    error = UserError(str(frame.eval(step, "message")), step_id=step.step_id)
    if step.error_type:
        error.kind = step.error_type
    raise error


async def _in_daemon_thread(work: Callable[..., Any], *args: Any) -> Any:
    """``work(*args)`` in a daemon thread: a blocking terminal read cannot starve the event
    loop, so a timeout or SIGINT/SIGTERM still ends the run (the abandoned read dies with the
    process instead of holding it open, as an executor thread would)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def target() -> None:
        try:
            result = work(*args)
        except BaseException as exc:  # handed to the awaiting step, whatever it is
            error = exc
            with contextlib.suppress(RuntimeError):  # the run ended and closed its loop
                loop.call_soon_threadsafe(settle, lambda: future.set_exception(error))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, lambda: future.set_result(result))

    threading.Thread(target=target, name="wfkit-ask", daemon=True).start()
    return await future
