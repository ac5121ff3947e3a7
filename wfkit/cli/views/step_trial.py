"""Rich view of ``test-step``: every value from the workflow or the step is plain Text."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.text import Text

if TYPE_CHECKING:
    from wfkit.commands.step_trial import StepTrialResult

_BRANCH_STYLE = {
    "succeed": "green",
    "skip": "dim",
    "retry": "yellow",
    "fallback": "cyan",
    "continue": "cyan",
    "fail": "red",
}


def _json(value: Any) -> str:
    return json.dumps(value, default=repr)


def _stage(name: str, *parts: str | tuple[str, str] | Text) -> Text:
    return Text.assemble((f"{name:<10}", "bold"), " ", *parts)


def step_trial_view(r: StepTrialResult) -> Group:
    """The stages in the order the engine goes through them."""
    lines = [
        Text.assemble((r.step_id, "bold"), f" ({r.step_type}), attempt {r.attempt} of {r.attempts}")
    ]
    if r.condition is not None:
        operands = ", ".join(f"{k} = {_json(v)}" for k, v in r.condition["operands"].items())
        verdict = "true" if r.condition["outcome"] else "false"
        lines.append(
            _stage("condition", f"{r.condition['expression']} -> {verdict}", f" ({operands})")
        )
    if r.ran:
        for name, value in r.rendered.items():
            lines.append(_stage("rendered", f"{name}: {_json(value)}"))
        if r.render_error is not None:
            lines.append(_stage("rendered", (_json(r.render_error), "red")))
        mocked = f" (mocked {r.mocked})" if r.mocked else ""
        if r.error is not None:
            lines.append(
                _stage("error", (f"{r.error['type']}: {r.error['message']}", "red"), mocked)
            )
        else:
            lines.append(_stage("result", _json(r.result), mocked))
        for w in r.writes:
            lines.append(_stage("writes", f"{w.path}: {_json(w.before)} -> {_json(w.after)}"))
    branch = Text.assemble(
        (r.branch, _BRANCH_STYLE.get(r.branch, "")), f": {r.reason}" if r.reason else ""
    )
    if r.delay_ms is not None:
        branch.append(f"; attempt {r.attempt + 1} after {r.delay_ms:.0f} ms")
    if r.branch == "fallback":
        branch.append(f"; result {_json(r.fallback)}")
    if r.cleanup:
        branch.append(f"; cleanup runs: {', '.join(r.cleanup)}")
    lines.append(_stage("policy", branch))
    return Group(*lines)
