"""A case's expectations checked against its run's report."""

from __future__ import annotations

import re
from typing import Any

from wfkit.commands.results import RunReport
from wfkit.commands.suite.mocks import MockTools
from wfkit.commands.suite.models import MATCHERS, CallExpectation, ErrorExpectation, Expect, Failure
from wfkit.engine.state import json_type
from wfkit.errors import (
    StateError,
)
from wfkit.language.values import child, parse_path

# --- expectations ----------------------------------------------------------------------


def matches(expected: Any, actual: Any) -> tuple[bool, str]:
    """Whether ``actual`` satisfies ``expected`` (a value, or a one-key matcher)."""
    if isinstance(expected, dict) and len(expected) == 1 and next(iter(expected)) in MATCHERS:
        ((kind, arg),) = expected.items()
        try:
            if kind == "equals":  # the value as it is, even one shaped like a matcher
                return arg == actual, f"== {arg!r}"
            if kind == "matches":
                return bool(re.search(str(arg), str(actual))), f"matches {arg!r}"
            if kind == "contains":
                return arg in actual, f"contains {arg!r}"
            if kind == "type":
                return json_type(actual) == arg or (
                    arg == "number" and json_type(actual) in ("integer", "number")
                ), f"is {arg}"
            if kind == "len":
                return len(actual) == arg, f"has length {arg}"
            ops = {
                "gt": lambda a, b: a > b,
                "ge": lambda a, b: a >= b,
                "lt": lambda a, b: a < b,
                "le": lambda a, b: a <= b,
            }
            return bool(ops[kind](actual, arg)), f"{kind} {arg}"
        except TypeError:
            return False, f"{kind} {arg!r} (not applicable to {json_type(actual)})"
    return expected == actual, f"== {expected!r}"


def read_state(report: RunReport, path: str) -> Any:
    """A state path as runs read it: ``raw.x``/``computed.y``/``inputs.z`` or a flat name,
    with ``.key`` and ``[n]``; None where nothing is (or the path is not a state path)."""
    state = report.state.model_dump()
    names = {**state["inputs"], **state["raw"], **state["computed"], **state}
    try:
        head, *rest = parse_path(path)
    except StateError:
        return None
    current = names.get(str(head))
    for part in rest:
        current = child(current, part)
    return current


def check(expect: Expect, report: RunReport, tools: MockTools) -> list[Failure]:
    """Every expectation that does not hold."""
    failures: list[Failure] = []

    def verify(path: str, expected: Any, actual: Any) -> None:
        ok, described = matches(expected, actual)
        if not ok:
            failures.append(
                Failure(
                    path=path,
                    expected=expected,
                    actual=actual,
                    message=f"{path}: expected {described}, got {actual!r}",
                )
            )

    if expect.status is not None:
        verify("status", expect.status, report.status)
    for path, expected in expect.state.items():
        verify(f"state.{path}", expected, read_state(report, path))
    steps = {s.id: s for s in report.steps}
    for step_id, wanted in expect.steps.items():
        step = steps.get(step_id)
        for attr in ("status", "attempts", "executions"):
            value = getattr(wanted, attr)
            if value is not None:
                verify(
                    f"steps.{step_id}.{attr}", value, getattr(step, attr) if step else "never ran"
                )
    if isinstance(expect.errors, int):
        verify("errors", expect.errors, len(report.errors))
    elif expect.errors is not None:
        remaining = list(report.errors)
        for i, wanted_error in enumerate(expect.errors):
            found = next((e for e in remaining if _error_matches(wanted_error, e)), None)
            if found is None:
                failures.append(
                    Failure(
                        path=f"errors[{i}]",
                        expected=wanted_error.model_dump(exclude_none=True),
                        actual=[f"{e.step_id}: {e.error_type}: {e.message}" for e in remaining],
                        message=f"errors[{i}]: no recorded error matches "
                        f"{wanted_error.model_dump(exclude_none=True)}",
                    )
                )
            else:
                remaining = remaining[remaining.index(found) + 1 :]
    for tool, wanted_calls in expect.calls.items():
        made = tools.calls.get(tool, [])
        spec = (
            wanted_calls
            if isinstance(wanted_calls, CallExpectation)
            else CallExpectation(count=wanted_calls)
        )
        if spec.count is not None:
            verify(f"calls.{tool}", spec.count, len(made))
        for i, arguments in enumerate(spec.arguments or []):
            actual = made[i] if i < len(made) else None
            if isinstance(arguments, dict) and isinstance(actual, dict):
                for key, value in arguments.items():
                    verify(f"calls.{tool}[{i}].{key}", value, actual.get(key))
            else:
                verify(f"calls.{tool}[{i}]", arguments, actual)
    if expect.messages is not None:
        texts = [m.text for m in report.messages]
        for i, wanted_text in enumerate(expect.messages):
            verify(f"messages[{i}]", wanted_text, texts[i] if i < len(texts) else None)
    return failures


def _error_matches(wanted: ErrorExpectation, actual: Any) -> bool:
    if wanted.type is not None and wanted.type != actual.error_type:
        return False
    if wanted.step_id is not None and wanted.step_id != actual.step_id:
        return False
    if wanted.recovered is not None and wanted.recovered != actual.recovered:
        return False
    return wanted.message is None or matches(wanted.message, actual.message)[0]
