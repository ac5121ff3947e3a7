"""``test-transform``: evaluate one expression, or one computed field, in isolation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from wfkit.engine.state import State, json_type
from wfkit.errors import ExpressionError, InputError, LoadError, StepError
from wfkit.language.expressions import compile_expr, make_scope
from wfkit.language.loader import load_file


class TransformError(BaseModel):
    """Why an expression failed, and where."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str
    name: str | None = None  # the undefined name, for UndefinedVariableError
    line: int | None = None  # within the expression, for syntax errors


class TransformResult(BaseModel):
    """The result of ``wfkit test-transform`` (SPEC section 6)."""

    model_config = ConfigDict(frozen=True)

    expression: str
    output: Any = None
    type: str | None = None
    duration_ms: float
    references: list[str]
    dependencies: list[str] = []
    input: Any = None
    error: TransformError | None = None

    @property
    def ok(self) -> bool:
        """True when the expression evaluated."""
        return self.error is None


def evaluate_transform(
    expression: str | None = None,
    input: Any = None,
    context: dict[str, Any] | None = None,
    *,
    workflow: str | Path | None = None,
    field: str | None = None,
    state: dict[str, Any] | None = None,
) -> TransformResult:
    """Evaluate ``expression`` (a bare expression or a template) with ``input`` and
    ``context`` readable, in the same sandbox as runs; nothing else is touched.

    With ``workflow`` and ``field``, evaluate that computed field's transform the way a run
    would: its ``input`` read from its ``from`` paths in a state built from the workflow's
    defaults, overlaid with ``state`` (``{"inputs": {...}, "raw": {...}}``).
    """
    if workflow is not None:
        return _computed_field(workflow, field, state or {})
    if expression is None:
        raise InputError("give an expression, or --workflow with --field")
    scope = {**(context or {}), "input": input}
    return _evaluate(expression, scope, input, [])


def _evaluate(
    source: str, scope: dict[str, Any], argument: Any, dependencies: list[str]
) -> TransformResult:
    started = time.perf_counter()
    try:
        expr = compile_expr(source, bare=True)
    except ExpressionError as exc:
        return TransformResult(
            expression=source,
            duration_ms=(time.perf_counter() - started) * 1000,
            references=[],
            dependencies=dependencies,
            input=argument,
            error=TransformError(type=exc.type_name, message=exc.message, line=_syntax_line(exc)),
        )
    references = sorted(expr.references)
    started = time.perf_counter()
    try:
        output = expr.evaluate(make_scope(scope))
    except StepError as exc:
        return TransformResult(
            expression=source,
            duration_ms=(time.perf_counter() - started) * 1000,
            references=references,
            dependencies=dependencies,
            input=argument,
            error=TransformError(
                type=exc.type_name, message=exc.message, name=getattr(exc, "name", None)
            ),
        )
    return TransformResult(
        expression=source,
        output=output,
        type=json_type(output),
        duration_ms=(time.perf_counter() - started) * 1000,
        references=references,
        dependencies=dependencies,
        input=argument,
    )


def _syntax_line(error: ExpressionError) -> int | None:
    cause = error.__cause__ or error.__context__
    return getattr(cause, "lineno", None)


def _computed_field(
    workflow: str | Path, field: str | None, overlay: dict[str, Any]
) -> TransformResult:
    loaded = load_file(workflow)
    plan = loaded.main.state
    fields = {c.name: c for c in plan.computed}
    name = (field or "").removeprefix("computed.")
    if name not in fields:
        known = ", ".join(fields) or "none"
        raise LoadError(f"no computed field {field!r} (fields: {known})", file=loaded.file)
    unknown = set(overlay) - {"inputs", "raw"}
    if unknown:
        raise InputError(f"--state takes 'inputs' and 'raw', not {sorted(unknown)}")
    computed = fields[name]
    try:
        state = State(plan, plan.resolve_inputs(overlay.get("inputs", {})))
        for key, value in overlay.get("raw", {}).items():
            state.write(f"raw.{key}", "set", value)
    except StepError as exc:  # another field (or this one) failed while building the state
        return TransformResult(
            expression=computed.spec.transform,
            duration_ms=0.0,
            references=sorted(computed.transform.references),
            dependencies=list(computed.sources),
            error=TransformError(
                type=exc.type_name, message=exc.message, name=getattr(exc, "name", None)
            ),
        )
    values = [state.read(source) for source in computed.sources]
    argument = values if isinstance(computed.spec.from_, list) else values[0]
    scope = {**state.flat, "input": argument}
    return _evaluate(computed.spec.transform, scope, argument, list(computed.sources))
