"""Compiling a workflow's steps: every template and expression field compiled once, step
ids, choices and state writes checked, each problem reported at its YAML position."""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from wfkit.errors import ERROR_TYPES, ExpressionError, StateError
from wfkit.language import models as m
from wfkit.language.diagnostics import problem, suggest
from wfkit.language.expressions import Expr, Value, compile_expr
from wfkit.language.plan import CompiledUpdate
from wfkit.language.policy import policy_of
from wfkit.language.stateplan import StatePlan
from wfkit.language.values import writable_path
from wfkit.language.yamlsrc import Path as NodePath
from wfkit.language.yamlsrc import Source, format_path


@dataclass(frozen=True)
class Body:
    """The steps of the workflow or of one sub-agent task, with their state plan."""

    name: str
    steps: list[m.Step]
    finally_steps: list[m.Step]
    state: StatePlan
    by_id: dict[str, m.StepBase] = field(default_factory=dict)
    #: whose ``parallel`` branches this body's steps find (``branch_name``): None for the
    #: main workflow, the task's name for a task and for the branches in it
    owner: str | None = None


def walk(steps: list[m.Step], path: NodePath = ()) -> Iterator[tuple[m.StepBase, NodePath]]:
    """Every step at every depth (pre-order: a step, then its nested lists)."""
    for i, step in enumerate(steps):
        here = (*path, i)
        yield step, here
        for label, children in step.children():
            yield from walk(children, (*here, *label_path(label)))


def label_path(label: str) -> tuple[str, ...]:
    """The field path of a nested step list's label: ``branches.lint`` is two parts."""
    return tuple(label.split(".", 1))


def prepare_body(source: Source, body: Body, base: NodePath, workflow: m.Workflow) -> None:
    counters: dict[str, int] = {}
    seen: dict[str, NodePath] = {}
    lists: list[tuple[list[m.Step], NodePath]] = [
        (body.steps, (*base, "steps")),
        (body.finally_steps, (*base, "finally")),
    ]
    # ids first, in document order, so "did you mean" and references see all of them
    for steps, path in lists:
        for step, where in walk(steps, path):
            if step.id is None:
                counters[step.step_type] = counters.get(step.step_type, 0) + 1
                step.id = f"{step.step_type}_{counters[step.step_type]}"
                while step.id in seen:
                    counters[step.step_type] += 1
                    step.id = f"{step.step_type}_{counters[step.step_type]}"
            elif step.id in seen:
                line = source.position(seen[step.id])[0]
                problem(
                    source.error(
                        f"duplicate step id {step.id!r} (first used on line {line})",
                        (*where, "id"),
                    )
                )
            seen.setdefault(step.id, where)
            step._line = source.position(where)[0]
            step._path = format_path(where)
            body.by_id[step.id] = step
    for steps, path in lists:
        _check_steps(source, steps, path, workflow, loop_depth=0)


def _check_steps(
    source: Source, steps: list[m.Step], path: NodePath, workflow: m.Workflow, loop_depth: int
) -> None:
    for i, step in enumerate(steps):
        where = (*path, i)
        _compile_step(source, step, where)
        if isinstance(step, m.UserInputStep):
            _check_choices(source, step, where)
        if isinstance(step, m.AgentTaskStep) and step.response_schema is not None:
            _check_response_schema(source, step.response_schema, (*where, "response_schema"))
        if isinstance(step, (m.BreakStep, m.ContinueStep)) and loop_depth == 0:
            problem(source.error(f"`{step.step_type}` outside a while_loop or foreach", where))
        if step.circuit_breaker and step.circuit_breaker not in workflow.config.circuit_breakers:
            name = step.circuit_breaker
            hint = suggest(name, list(workflow.config.circuit_breakers))
            problem(
                source.error(
                    f"unknown circuit breaker {name!r}{hint} "
                    "(declare it in config.circuit_breakers)",
                    (*where, "circuit_breaker"),
                )
            )
        if isinstance(step, m.ParallelForeachStep) and step.sub_agent_task not in (
            workflow.sub_agent_tasks
        ):
            known = list(workflow.sub_agent_tasks)
            problem(
                source.error(
                    f"unknown sub_agent_task {step.sub_agent_task!r}"
                    f"{suggest(step.sub_agent_task, known)}",
                    (*where, "sub_agent_task"),
                )
            )
        if isinstance(step, m.ParallelStep) and (step.min_success or 0) > len(step.branches):
            problem(
                source.error(
                    f"min_success={step.min_success} but {step.step_id!r} has "
                    f"{len(step.branches)} branch(es)",
                    (*where, "min_success"),
                )
            )
        is_loop = isinstance(step, (m.WhileLoopStep, m.ForeachStep))
        for label, children in step.children():
            depth = loop_depth + 1 if is_loop and label == "body" else loop_depth
            # cleanup runs outside the step's loop iteration: break there has no loop
            _check_steps(
                source,
                children,
                (*where, *label_path(label)),
                workflow,
                0 if label == "cleanup" or label.startswith("branches.") else depth,
            )


def _check_choices(source: Source, step: m.UserInputStep, where: NodePath) -> None:
    """``choices: [yes, no]`` reads as booleans in YAML 1.1: the prompt would offer
    True/False. Unquoted yes/no/on/off in a choice or default is refused."""
    for field_name in ("choices", "default"):
        for path, word in source.word_booleans.items():
            if path[: len(where) + 1] == (*where, field_name):
                problem(
                    source.error(
                        f"{word!r} in {field_name} is read by YAML 1.1 as the boolean "
                        f"{word.lower() in ('yes', 'y', 'on')}; quote it ('{word}') for the "
                        f"answer {word!r}",
                        path,
                    )
                )


def _check_response_schema(source: Source, schema: dict[str, Any], where: NodePath) -> None:
    """A ``response_schema`` must be a usable JSON Schema: refused at load, at the keyword."""
    from wfkit.language.response_schema import schema_problems

    for at, message in schema_problems(schema):
        problem(source.error(message, (*where, *at)))


def _compile_step(source: Source, step: m.StepBase, where: NodePath) -> None:
    compiled: dict[str, Any] = {}
    for name, mode in step.expr_fields.items():
        value = getattr(step, name)
        if value is None:
            continue
        alias = type(step).model_fields[name].alias or name
        compiled[name] = compile_field(source, value, mode, (*where, alias))
    if isinstance(step.retry_on, str):
        compiled["retry_on"] = compile_field(source, step.retry_on, "bare", (*where, "retry_on"))
    for i, name in enumerate(step.retry_on if isinstance(step.retry_on, list) else []):
        if name not in ERROR_TYPES:
            problem(
                source.error(
                    f"unknown error type {name!r} in retry_on{suggest(name, list(ERROR_TYPES))}",
                    (*where, "retry_on", i),
                )
            )
    compiled["policy"] = policy_of(step, compiled.get("retry_on"))
    compiled["updates"] = _compile_updates(source, step.updates(), where, "state_update")
    error_updates = step.error_state_update
    if isinstance(error_updates, m.StateUpdateSpec):
        error_updates = [error_updates]
    compiled["error_updates"] = _compile_updates(
        source, list(error_updates or []), where, "error_state_update"
    )
    if isinstance(step, m.StateUpdateStep):
        compiled["writes"] = _compile_updates(source, step.writes(), where, "path")
    step._compiled = compiled


DECLARED: ContextVar[dict[str, list[str]] | None] = ContextVar("declared", default=None)
"""While a workflow compiles: its ``secrets`` and ``env`` names (``env`` is absent when an
``env_file`` may declare more, read only when the run starts)."""


def compile_field(source: Source, value: Any, mode: str, where: NodePath) -> Expr | Value:
    try:
        if mode == "bare":
            compiled: Expr | Value = compile_expr(value, bare=True)
        elif mode == "text":
            compiled = compile_expr(value)
        else:
            compiled = Value(value, shell=mode == "shell" and isinstance(value, str))
    except ExpressionError as exc:
        problem(source.error(exc.message, where))
        return compile_expr("", bare=False) if mode != "value" else Value(None)
    _check_declared(source, compiled, where)
    return compiled


def _check_declared(source: Source, compiled: Expr | Value, where: NodePath) -> None:
    """``secrets.X`` and ``env.X`` must name what the workflow declares."""
    declared = DECLARED.get()
    if declared is None:
        return
    for ref in getattr(compiled, "references", ()):
        root, _, rest = ref.partition(".")
        names = declared.get(root)
        name = rest.split(".", 1)[0]
        if names is None or not name or name in names:
            continue
        kind = "secret" if root == "secrets" else "env variable"
        top = "secrets:" if root == "secrets" else "env: or env_file:"
        problem(
            source.error(
                f"{root}.{name}: no {kind} {name!r} is declared{suggest(name, names)}"
                f" (declare it under {top})",
                where,
            )
        )


def _compile_updates(
    source: Source, specs: list[m.StateUpdateSpec], where: NodePath, label: str
) -> list[CompiledUpdate]:
    out = []
    for spec in specs:
        at = (*where, label)
        path_expr = compile_field(source, spec.path, "text", at)
        assert isinstance(path_expr, Expr)
        static = spec.path.split("{{", 1)[0].split("{%", 1)[0]
        try:
            if path_expr.is_literal:
                writable_path(spec.path)
            elif static and not static.startswith("raw."):
                writable_path(static.rstrip(".[") or static)
        except StateError as exc:
            problem(source.error(exc.message, at))
        value = compile_field(source, spec.value, "value", at)
        by = compile_field(source, spec.by, "value", at)
        assert isinstance(value, Value)
        assert isinstance(by, Value)
        out.append(CompiledUpdate(path_expr, spec.operation, value, by))
    return out
