"""One step in isolation (``wfkit test-step``): each stage the engine goes through for it.

The step runs inside a real :class:`~wfkit.engine.runtime.Run` and
:class:`~wfkit.engine.frame.Frame` with the given state: its condition through ``Frame.test``,
its fields rendered through ``Frame.eval``, its handler (or a mocked result or error), its
state writes through ``Frame.apply``, and the policy branch at attempt N from the step's
:class:`~wfkit.language.policy.ErrorPolicy` and :func:`~wfkit.language.policy.retry_verdict`.
Nothing is stored.
"""

from __future__ import annotations

import copy
import inspect
import json
from dataclasses import dataclass, field
from typing import Any

from wfkit.engine.context import RunOptions
from wfkit.engine.frame import Frame, Level
from wfkit.engine.runtime import Run
from wfkit.engine.state import to_state_value
from wfkit.engine.steps.registry import HANDLERS
from wfkit.errors import ERROR_TYPES, InputError, StepError, WfkitError
from wfkit.language.loader import LoadedWorkflow
from wfkit.language.models import StepBase
from wfkit.language.policy import retry_verdict
from wfkit.language.shellquote import ShellCommand

_MISSING = object()


@dataclass
class Trial:
    """What one step did at one attempt."""

    step_id: str
    step_type: str
    attempt: int
    attempts: int
    condition: dict[str, Any] | None = None
    ran: bool = True
    rendered: dict[str, Any] = field(default_factory=dict)
    render_error: dict[str, Any] | None = None
    mocked: str | None = None  # "result" | "error"
    result: Any = None
    error: dict[str, Any] | None = None
    writes: list[dict[str, Any]] = field(default_factory=list)
    branch: str = "succeed"  # succeed | skip | retry | fallback | continue | fail
    reason: str = ""
    delay_ms: float | None = None
    fallback: Any = None
    cleanup: list[str] = field(default_factory=list)


def find_step(loaded: LoadedWorkflow, step_id: str) -> tuple[StepBase, str]:
    """The step with this id and the body (workflow or sub-agent task) it is in."""
    for body in (loaded.main, *loaded.tasks.values()):
        step = body.by_id.get(step_id)
        if step is not None:
            return step, body.name
    known = sorted(p.step_id for p in loaded.plans.values())
    raise InputError(f"no step {step_id!r} in {loaded.file} (its steps: {', '.join(known)})")


def _changes(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for tier in ("raw", "computed"):
        old, new = before.get(tier, {}), after.get(tier, {})
        for name in sorted(set(old) | set(new)):
            if old.get(name, _MISSING) != new.get(name, _MISSING):
                out.append(
                    {"path": f"{tier}.{name}", "before": old.get(name), "after": new.get(name)}
                )
    return out


def mock_error(spec: str, step_id: str) -> StepError:
    """An instance of the error type ``spec`` names, as a mocked step would raise it.

    ``spec`` is a type name, optionally with details (``ShellCommandError exit_code=75
    stderr=boom``, values read as JSON when they parse), or a JSON object
    (``{"type": "ShellCommandError", "exit_code": 75}``): what ``retry_on`` and
    ``error_state_update`` read as ``error.<name>``.
    """
    given = _error_spec(spec)
    type_name = str(given.pop("type", ""))
    kind = ERROR_TYPES.get(type_name)
    if kind is None or not issubclass(kind, StepError):
        raise InputError(
            f"--mock-error takes a step error type, not {type_name!r} "
            f"(one of: {', '.join(n for n, t in ERROR_TYPES.items() if issubclass(t, StepError))})"
        )
    # the details some types require, as a plain failure of that kind would carry them
    required: dict[str, Any] = {
        "exit_code": 1,
        "stderr": "",
        "name": "mocked",
        "index": 0,
        "prompt": "",
        "choices": None,
    }
    params = inspect.signature(kind.__init__).parameters
    message = str(given.pop("message", f"mocked {type_name}"))
    unknown = sorted(k for k in given if k not in params or k in ("self", "message", "step_id"))
    if unknown:
        known = sorted(k for k in params if k not in ("self", "message", "step_id", "args"))
        raise InputError(
            f"--mock-error: {type_name} has no detail {', '.join(map(repr, unknown))}"
            f" (its details: {', '.join(known) or 'none'})"
        )
    extra = {k: v for k, v in {**required, **given}.items() if k in params}
    error: StepError = kind(message, step_id=step_id, **extra)
    return error


def _error_spec(spec: str) -> dict[str, Any]:
    """``TYPE key=value ...`` or a JSON object, as a mapping with ``type``."""
    text = spec.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise InputError(f"--mock-error: not a JSON object: {exc}") from None
        if not isinstance(parsed, dict):
            raise InputError("--mock-error: give a JSON object with a `type`")
        return dict(parsed)
    head, *pairs = text.split()
    data: dict[str, Any] = {"type": head}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise InputError(f"--mock-error: {pair!r} is not name=value")
        try:
            data[key] = json.loads(raw)
        except ValueError:
            data[key] = raw
    return data


async def trial(
    loaded: LoadedWorkflow,
    step_id: str,
    state: dict[str, Any],
    attempt: int,
    options: RunOptions,
    mock_result: Any = _MISSING,
    mock_error_type: str | None = None,
) -> Trial:
    """Run ``step_id`` once, as attempt ``attempt``, over ``state`` (``{inputs, raw}``)."""
    step, body_name = find_step(loaded, step_id)
    body = loaded.main if body_name == "workflow" else loaded.tasks[body_name]
    run = Run(loaded, "test-step", {}, options)
    plan = run.plan(step)
    unknown = set(state) - {"inputs", "raw"}
    if unknown:
        raise InputError(f"--state takes 'inputs' and 'raw', not {sorted(unknown)}")
    live = run.new_state(body.state, body.state.resolve_inputs(state.get("inputs", {})))
    for key, value in state.get("raw", {}).items():
        live.write(f"raw.{key}", "set", value)
    run.render_env(live)  # the workflow's env:, as a run has it
    frame = Frame(run, body, live)
    frame.cursor.append(Level(size=1))  # a container keeps its notes here, as when it runs
    frame.attempt = attempt
    out = Trial(step_id, plan.step_type, attempt, plan.policy.attempts)
    if plan.condition is not None:
        outcome = frame.test(plan.condition, plan.step_id, "if")
        decision = run.decisions.records[-1]
        out.condition = {k: decision[k] for k in ("expression", "operands", "outcome")}
        if not outcome:
            out.ran, out.branch, out.reason = False, "skip", "its condition is false"
            return out
    try:
        _render_fields(step, plan.compiled, frame, out.rendered)
    except WfkitError as exc:
        out.render_error = exc.details()
    before = copy.deepcopy(live.snapshot())
    error: StepError | None = None
    try:
        if mock_error_type is not None:
            out.mocked = "error"
            raise mock_error(mock_error_type, step_id)
        if mock_result is not _MISSING:
            out.mocked = "result"
            result = mock_result
        else:
            result = await HANDLERS[plan.model](step, frame)
        out.result = to_state_value(result)
        frame.apply(plan.updates, {"result": result})
    except StepError as exc:
        error = exc
        # the engine's own error_state_update / error_state_path writes, as after any attempt
        await run.runner._error_updates(plan, frame, exc, step_id, attempt)
    finally:
        await options.tools.aclose()
    out.writes = _changes(before, live.snapshot())
    if error is None:
        out.reason = "the attempt succeeded"
        return out
    out.error = error.details()
    _branch(out, run, frame, step, error)
    return out


def _branch(out: Trial, run: Run, frame: Frame, step: StepBase, error: StepError) -> None:
    """What the step's policy does after this failed attempt (the executor's order)."""
    plan = run.plan(step)
    policy = plan.policy
    scope = frame.view({"error": error.details()})
    retry = policy.retry
    if retry is not None and out.attempt < retry.attempts:
        retried, reason = retry_verdict(error, retry, scope)
        if retried:
            out.branch, out.reason = "retry", reason
            out.delay_ms = retry.delay_ms_for(out.attempt, run.seed, plan.step_id)
            return
        out.reason = reason
    elif retry is not None:
        out.reason = f"all {retry.attempts} attempts used"
    else:
        out.reason = "its policy makes no retries"
    if policy.recovers and not error.fatal:
        if policy.fallback is None:
            out.branch = "continue"
        else:
            out.branch = "fallback"
            out.fallback = to_state_value(policy.fallback.render(scope))
        return
    out.branch = "fail"
    out.cleanup = [f"{s.step_id} ({s.step_type})" for s in step.cleanup]


def _render_fields(
    step: StepBase, compiled: dict[str, Any], frame: Frame, rendered: dict[str, Any]
) -> None:
    """The step's fields as they render in ``frame`` (a command with its values quoted in
    place, as shown), into ``rendered`` by their names in the file."""
    for name in step.expr_fields:
        if name in ("if_", "retry_on", "fallback_value") or name not in compiled:
            continue
        value = frame.eval(step, name)
        if isinstance(value, ShellCommand):
            value = value.shown
        rendered[type(step).model_fields[name].alias or name] = to_state_value(value)
