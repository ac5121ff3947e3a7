"""``why``: why a step of a run ran, was skipped, was not retried, fell back or was cancelled.

The answer comes only from what the run recorded: its step history, its errors and its
decisions (condition operands, retry verdicts, recoveries, ``fail_fast`` triggers and breaker
states, recorded by every run, traced or not; see :class:`wfkit.engine.tracing.DecisionLog`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wfkit.commands._base import StrictModel
from wfkit.errors import InputError
from wfkit.store import open_store


class WhyReason(StrictModel):
    """One recorded fact behind the answer."""

    kind: (
        str  # condition | retry | injected | recovered | fail_fast | breaker | error | order | run
    )
    text: str
    details: dict[str, Any] = {}


class WhyResult(StrictModel):
    """``wfkit why --json``."""

    run_id: str
    step_id: str
    run_status: str
    status: str  # the step's last execution: succeeded | failed | skipped | cancelled | ...
    executions: int
    attempts: int
    answer: str
    reasons: list[WhyReason]
    breaker: dict[str, Any] | None = None


def _operands(operands: dict[str, Any]) -> str:
    return ", ".join(
        f"{name} = {json.dumps(value, default=repr)}" for name, value in operands.items()
    )


def why_step(
    run_id: str, step_id: str, *, store: str | Path | None = None, read_only: bool = False
) -> WhyResult:
    """Explain the last execution of ``step_id`` in run ``run_id`` from its records."""
    from wfkit.commands._runs import effective_status

    with open_store(store, create=False, read_only=read_only) as run_store:
        row = run_store.get_run(run_id)
        history = [h for h in run_store.step_history(row.run_id) if h["step_id"] == step_id]
        errors = [e for e in run_store.errors(row.run_id) if e.step_id == step_id]
        decisions = run_store.decisions(row.run_id)
        stored_breakers = run_store.breakers(row.workflow)
    run_status = effective_status(row)
    mine = [d for d in decisions if d.get("step_id") == step_id]
    known = {entry.split(" ")[1] for entry in row.structure or [] if " " in entry}
    if not history and not mine and step_id.rsplit("/", 1)[-1] not in known:
        raise InputError(
            f"run {row.run_id} has no step {step_id!r}"
            + (f" (its steps: {', '.join(sorted(known))})" if known else "")
        )
    reasons: list[WhyReason] = []
    status = history[-1]["status"] if history else "not reached"
    attempts = int(history[-1]["attempts"]) if history else 0

    condition = next((d for d in reversed(mine) if d["decision"] == "condition"), None)
    if condition is not None:
        verdict = "true" if condition["outcome"] else "false"
        reasons.append(
            WhyReason(
                kind="condition",
                text=f"{condition['role']}: {condition['expression']!r} was {verdict}"
                + (f" ({_operands(condition['operands'])})" if condition["operands"] else ""),
                details={k: condition[k] for k in ("role", "expression", "operands", "outcome")},
            )
        )
    retries = [d for d in mine if d["decision"] == "retry"]
    for d in retries:
        delay = f", next attempt after {d['delay_ms']:.0f} ms" if d["retried"] else ""
        shown = d.get("retry_on") and d["retry_on"] not in d["reason"]
        retry_on = f"; retry_on: {d['retry_on']}" if shown else ""
        reasons.append(
            WhyReason(
                kind="retry",
                text=f"attempt {d['attempt']} failed with {d['error_type']}: "
                f"{'retried' if d['retried'] else 'not retried'} because {d['reason']}"
                f"{retry_on}{delay}",
                details={
                    k: d.get(k)
                    for k in ("attempt", "error_type", "retried", "reason", "delay_ms", "retry_on")
                },
            )
        )
    for d in mine:
        if d["decision"] == "injected":
            reasons.append(
                WhyReason(
                    kind="injected",
                    text=f"attempt {d['attempt']} was hit by an injected fault: {d['fault']}",
                    details={"attempt": d["attempt"], "fault": d["fault"]},
                )
            )
    recovered = next((d for d in reversed(mine) if d["decision"] == "recovered"), None)
    if recovered is not None:
        took = "took its fallback_value" if recovered["fallback"] else "continued without a result"
        reasons.append(
            WhyReason(
                kind="recovered",
                text=f"its final {recovered['error_type']} did not fail the run: the step "
                f"{took} (on_error: {recovered['strategy']})",
                details={k: recovered[k] for k in ("strategy", "error_type", "fallback")},
            )
        )
    trigger = None
    if status == "cancelled":
        trigger = next(
            (
                d
                for d in reversed(decisions)
                if d["decision"] == "fail_fast" and step_id.startswith(f"{d['step_id']}/")
            ),
            None,
        )
        if trigger is not None:
            reasons.append(
                WhyReason(
                    kind="fail_fast",
                    text=f"cancelled by fail_fast of {trigger['step_id']!r}: "
                    f"{_failed_part(trigger)} failed with {trigger['error_type']}: "
                    f"{trigger['message']}",
                    details={k: trigger[k] for k in ("step_id", "item", "error_type", "message")},
                )
            )
        else:
            reasons.append(
                WhyReason(
                    kind="run", text=f"the run was cancelled while the step ran ({run_status})"
                )
            )
    if errors:
        last = errors[-1]
        reasons.append(
            WhyReason(
                kind="error",
                text=f"last error: {last.error_type}: {last.message}"
                + (" (recovered)" if last.recovered else ""),
                details={"error_type": last.error_type, "message": last.message},
            )
        )
    if condition is None and status not in ("not reached", "skipped"):
        reasons.insert(
            0, WhyReason(kind="order", text="it has no condition: it ran when its turn came")
        )
    breaker = None
    seen = next((d for d in reversed(mine) if d["decision"] == "breaker"), None)
    if seen is not None:
        breaker = {
            "name": seen["name"],
            "state_at_step": seen["state"],
            "failures_at_step": seen["failures"],
            "state_now": stored_breakers.get(seen["name"], {}).get("state"),
        }
        reasons.append(
            WhyReason(
                kind="breaker",
                text=f"circuit breaker {seen['name']!r} was {seen['state']} after "
                f"{seen['failures']} failure(s) at the step's last failed attempt",
                details=breaker,
            )
        )
    return WhyResult(
        run_id=row.run_id,
        step_id=step_id,
        run_status=run_status,
        status=status,
        executions=len(history),
        attempts=attempts,
        answer=_answer(status, condition, retries, recovered, trigger, errors, run_status)
        + _item_policy(row.file, step_id, status),
        reasons=reasons,
        breaker=breaker,
    )


def _failed_part(trigger: dict[str, Any]) -> str:
    """``item 3`` of a ``parallel_foreach``, ``branch 'lint'`` of a ``parallel`` step."""
    if trigger.get("branch") is not None:
        return f"branch {trigger['branch']!r}"
    return f"item {trigger['item']}"


def _item_policy(file: str, step_id: str, status: str) -> str:
    """For a failed ``parallel_foreach`` step or a step of its items: the items' own retry
    policy (``item_retry_count``), which the step's policy does not show."""
    if status != "failed":
        return ""
    from wfkit.errors import WfkitError
    from wfkit.language.loader import load_file
    from wfkit.language.models import ParallelForeachStep

    try:
        loaded = load_file(file)
    except (WfkitError, OSError):
        return ""
    top = step_id.split("/", 1)[0].split("[", 1)[0]
    step = loaded.main.by_id.get(top)
    if not isinstance(step, ParallelForeachStep):
        return ""
    count = step.item_retry_count
    if not count:
        return f" (items of {top!r} are not retried: item_retry_count is 0)"
    return f" (each failed item of {top!r} is rerun up to {count} time(s): item_retry_count)"


def _answer(
    status: str,
    condition: dict[str, Any] | None,
    retries: list[dict[str, Any]],
    recovered: dict[str, Any] | None,
    trigger: dict[str, Any] | None,
    errors: list[Any],
    run_status: str,
) -> str:
    """The headline: the one decision that explains the step's last outcome."""
    if status == "not reached":
        return f"the step never ran: the run ended ({run_status}) before reaching it"
    if status == "skipped" and condition is not None:
        return f"skipped: its condition {condition['expression']!r} was false"
    if status == "cancelled":
        if trigger is not None:
            parent = trigger["step_id"]
            return f"cancelled: fail_fast after {_failed_part(trigger)} of {parent!r} failed"
        return "cancelled: the run was cancelled"
    if recovered is not None:
        if recovered["fallback"]:
            return f"took its fallback after {recovered['error_type']}"
        return f"failed with {recovered['error_type']} and the run continued"
    if status == "failed":
        last = next((d for d in reversed(retries) if not d["retried"]), None)
        if last is not None:
            return f"not retried: {last['reason']}"
        kind = errors[-1].error_type if errors else "an error"
        return f"failed with {kind}; its policy makes no retries"
    if condition is not None:
        return f"ran: its condition {condition['expression']!r} was true"
    return f"{status}: it ran when its turn came"
