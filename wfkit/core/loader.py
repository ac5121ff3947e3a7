"""Load a workflow file: YAML -> models -> compiled, checked :class:`LoadedWorkflow`.

Every problem found here is a :class:`~wfkit.errors.LoadError` naming file, line, column and
field. Expressions are compiled once here; the engine only evaluates them.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from wfkit.core import compile_cache
from wfkit.core import models as m
from wfkit.core.expressions import Expr, Value, compile_expr, precompiled, recording
from wfkit.core.plan import CompiledUpdate, StepPlan
from wfkit.core.policy import policy_of
from wfkit.core.state import ComputedPlan, StatePlan, matches_type, writable_path, zero_value
from wfkit.core.yamlsrc import Path as NodePath
from wfkit.core.yamlsrc import Source, format_path, parse, read_source
from wfkit.errors import ERROR_TYPES, ExpressionError, LoadError, StateError

MAX_FILE_BYTES = 5_000_000

#: problems of the file being compiled (see :func:`_problem`); ``None``: raise at once
_FOUND: ContextVar[list[LoadError] | None] = ContextVar("found", default=None)


def _problem(error: LoadError) -> None:
    """Report a problem of the file: kept while a whole file is checked, so the user sees
    every problem at once, else raised. The caller goes on as if the part were absent."""
    found = _FOUND.get()
    if found is None:
        raise error
    found.append(error)


@dataclass(frozen=True)
class Body:
    """The steps of the workflow or of one sub-agent task, with their state plan."""

    name: str
    steps: list[m.Step]
    finally_steps: list[m.Step]
    state: StatePlan
    by_id: dict[str, m.StepBase] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedWorkflow:
    """A validated workflow with compiled expressions and state plans."""

    workflow: m.Workflow
    source: Source
    digest: str
    main: Body
    tasks: dict[str, Body]
    #: the compiled plan of every step, by ``id()`` of its model (kept alive by ``workflow``)
    plans: dict[int, StepPlan] = field(default_factory=dict)
    #: the file's text (shipped with items that run on other machines)
    text: str = ""

    @property
    def file(self) -> str:
        """The file the workflow came from, as given."""
        return self.source.file

    @property
    def name(self) -> str:
        """The workflow's ``name``."""
        return self.workflow.name

    @property
    def source_path(self) -> str:
        """The file as an absolute path (what the run store keeps, for ``resume``)."""
        return str(Path(self.file).resolve())


def load_file(path: str | Path, cache: Path | None = None) -> LoadedWorkflow:
    """Read and load a workflow file; ``cache`` is a compile-cache directory to use."""
    return load_text(read_source(path, limit=MAX_FILE_BYTES), str(path), cache)


def load_text(text: str, file: str = "<string>", cache: Path | None = None) -> LoadedWorkflow:
    """Load a workflow from YAML text; ``file`` names it in errors.

    With ``cache`` (a directory, see :mod:`wfkit.core.compile_cache`), a text loaded before
    skips parsing and validation, and its expressions are rebuilt from their generated code
    instead of compiled; the checks and step plans run as always.
    """
    cached = compile_cache.lookup(cache, text, file) if cache is not None else None
    if cached is not None:
        source, workflow, expressions = cached
        with precompiled(expressions):
            return _compile_workflow(text, file, source, workflow)
    source, workflow = _parse_and_validate(text, file)
    if cache is None:
        return _compile_workflow(text, file, source, workflow)
    parsed = compile_cache.freeze(source, workflow)  # before compiling fills in the steps
    with recording() as compiled:
        loaded = _compile_workflow(text, file, source, workflow)
    compile_cache.store(cache, text, parsed, compiled)  # only a file that loads is kept
    return loaded


def _parse_and_validate(text: str, file: str) -> tuple[Source, m.Workflow]:
    source = parse(text, file)
    if not isinstance(source.data, dict):
        raise LoadError(
            "a workflow file must be a YAML mapping (name:, steps:, ...)",
            file=file,
            line=1,
            column=1,
        )
    try:
        workflow = m.Workflow.model_validate(source.data)
    except ValidationError as exc:
        raise translate_validation_error(exc, source) from None
    return source, workflow


def _compile_workflow(text: str, file: str, source: Source, workflow: m.Workflow) -> LoadedWorkflow:
    """Check and compile everything; every problem found is reported in one error."""
    found: list[LoadError] = []
    token = _FOUND.set(found)
    try:
        loaded = _compile_checked(text, file, source, workflow)
    finally:
        _FOUND.reset(token)
    if found:
        unique = {(p.line, p.column, p.message): p for p in found}
        raise combine_problems(list(unique.values()))
    return loaded


def _compile_checked(text: str, file: str, source: Source, workflow: m.Workflow) -> LoadedWorkflow:
    digest = hashlib.sha256(text.encode()).hexdigest()
    written = raw_writes(workflow.steps, workflow.finally_)
    main_plan = build_state_plan(
        source,
        ("state_schema",),
        workflow.inputs,
        workflow.state_schema,
        workflow.default_state,
        written,
    )
    main = Body("workflow", workflow.steps, workflow.finally_, main_plan)
    _prepare(source, main, (), workflow)
    tasks: dict[str, Body] = {}
    for name, task in workflow.sub_agent_tasks.items():
        base: NodePath = ("sub_agent_tasks", name)
        plan = build_state_plan(
            source,
            (*base, "state_schema"),
            task.inputs,
            task.state_schema,
            task.default_state,
            raw_writes(task.steps, task.finally_),
        )
        tasks[name] = Body(name, task.steps, task.finally_, plan)
        _prepare(source, tasks[name], base, workflow)
    plans = {
        id(step): StepPlan.of(step, file, step._compiled)
        for body in (main, *tasks.values())
        for steps in (body.steps, body.finally_steps)
        for step, _ in walk(steps)
    }
    return LoadedWorkflow(workflow, source, digest, main, tasks, plans, text)


# --- validation errors -------------------------------------------------------------------

_VOCABULARY = sorted(
    {
        (f.alias or name)
        for model in (
            m.Workflow,
            m.Config,
            m.InputSpec,
            m.ComputedField,
            m.StateSchema,
            m.DefaultState,
            m.McpServerSpec,
            m.StateUpdateSpec,
            m.ErrorHandler,
            m.SubAgentTask,
            m.CircuitBreakerSpec,
            m.ExecutorConfig,
            m.StateUpdateStep,
            m.ShellCommandStep,
            m.McpCallStep,
            m.ConditionalStep,
            m.WhileLoopStep,
            m.ForeachStep,
            m.UserMessageStep,
            m.UserInputStep,
            m.WaitStep,
            m.ErrorStep,
            m.ParallelForeachStep,
        )
        for name, f in model.model_fields.items()
    }
)


def suggest(word: str, options: list[str] | tuple[str, ...]) -> str:
    """``; did you mean 'x'?`` for the closest of ``options``, or nothing."""
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def translate_validation_error(
    exc: ValidationError, source: Source, vocabulary: list[str] | None = None
) -> LoadError:
    """Every pydantic error as one :class:`LoadError` at its YAML position, sorted by line:
    the error's own fields are the first problem's, ``problems`` holds them all. Unknown fields
    get a "did you mean" from ``vocabulary`` (the workflow format's field names by default)."""
    grouped: dict[NodePath, list[tuple[str, str]]] = {}
    for error in exc.errors(include_url=False):
        path, message = _locate(error, source.data, vocabulary or _VOCABULARY)
        grouped.setdefault(path, []).append((str(error["type"]), message))
    problems = [
        source.error(_one_message(path, found, source.data), path)
        for path, found in grouped.items()
    ]
    return combine_problems(problems)


def combine_problems(problems: list[LoadError]) -> LoadError:
    """Problems as one :class:`LoadError`, sorted by line: its own fields are the first's."""
    problems = sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
    first = problems[0]
    if len(problems) == 1:
        return first
    more = len(problems) - 1
    return LoadError(
        f"{first.message} (and {more} more problem{'s' if more > 1 else ''})",
        file=first.file,
        line=first.line,
        column=first.column,
        field=first.field,
        problems=problems,
    )


_TYPE_WORDS = {
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
}
_EXPRESSION_FIELDS = ("items", "condition", "if", "transform", "retry_on")


def _one_message(path: NodePath, found: list[tuple[str, str]], data: Any) -> str:
    """One message per place: the branches of a union (``str | list``) read as one rule."""
    kinds = [kind for kind, _ in found]
    if len(found) < 2 or not all(kind in _TYPE_WORDS for kind in kinds):
        return found[0][1]
    name = str(path[-1]) if path and isinstance(path[-1], str) else "the value"
    words = [_TYPE_WORDS[kind] for kind in kinds if kind != "string_type"]
    if "string_type" in kinds:
        words.append("an expression" if name in _EXPRESSION_FIELDS else "a string")
    value: Any = data
    for part in path:
        value = value[part]
    rule = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    return f"{name} must be {rule}, got {_short(value)}"


def _locate(error: Any, data: Any, vocabulary: list[str]) -> tuple[NodePath, str]:
    """Map a pydantic ``loc`` onto the document, skipping union tags and type labels."""
    path: list[str | int] = []
    current = data
    loc = list(error["loc"])
    kind = error["type"]
    for i, part in enumerate(loc):
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and part < len(current)
        if in_dict or in_list:
            path.append(part)
            current = current[part]
        elif kind == "missing" and i == len(loc) - 1:
            return tuple(path), f"missing required field {part!r}"
    if kind == "extra_forbidden":
        return tuple(path), f"unknown field {path[-1]!r}{suggest(str(path[-1]), vocabulary)}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = error.get("ctx", {}).get("tag")
        if tag is None:
            return tuple(path), f"a step needs a `type` (one of: {', '.join(m.STEP_TYPES)})"
        return (*path, "type"), f"unknown step type {tag!r}{suggest(str(tag), m.STEP_TYPES)}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind not in ("value_error", "assertion_error") and "input" in error:
        message += f", got {_short(error['input'])}"
        if kind == "string_type" and isinstance(error["input"], bool):
            message += " (YAML reads yes/no/on/off/true/false as booleans: quote the value)"
    return tuple(path), message


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- steps ---------------------------------------------------------------------------------


def walk(steps: list[m.Step], path: NodePath = ()) -> Iterator[tuple[m.StepBase, NodePath]]:
    """Every step at every depth (pre-order: a step, then its nested lists)."""
    for i, step in enumerate(steps):
        here = (*path, i)
        yield step, here
        for label, children in step.children():
            yield from walk(children, (*here, "else" if label == "else" else label))


def _prepare(source: Source, body: Body, base: NodePath, workflow: m.Workflow) -> None:
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
                _problem(
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
        if isinstance(step, (m.BreakStep, m.ContinueStep)) and loop_depth == 0:
            _problem(source.error(f"`{step.step_type}` outside a while_loop or foreach", where))
        if step.circuit_breaker and step.circuit_breaker not in workflow.config.circuit_breakers:
            name = step.circuit_breaker
            hint = suggest(name, list(workflow.config.circuit_breakers))
            _problem(
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
            _problem(
                source.error(
                    f"unknown sub_agent_task {step.sub_agent_task!r}"
                    f"{suggest(step.sub_agent_task, known)}",
                    (*where, "sub_agent_task"),
                )
            )
        is_loop = isinstance(step, (m.WhileLoopStep, m.ForeachStep))
        for label, children in step.children():
            depth = loop_depth + 1 if is_loop and label == "body" else loop_depth
            # cleanup runs outside the step's loop iteration: break there has no loop
            _check_steps(
                source, children, (*where, label), workflow, 0 if label == "cleanup" else depth
            )


def _check_choices(source: Source, step: m.UserInputStep, where: NodePath) -> None:
    """``choices: [yes, no]`` reads as booleans in YAML 1.1: the prompt would offer
    True/False. Unquoted yes/no/on/off in a choice or default is refused."""
    for field_name in ("choices", "default"):
        for path, word in source.word_booleans.items():
            if path[: len(where) + 1] == (*where, field_name):
                _problem(
                    source.error(
                        f"{word!r} in {field_name} is read by YAML 1.1 as the boolean "
                        f"{word.lower() in ('yes', 'y', 'on')}; quote it ('{word}') for the "
                        f"answer {word!r}",
                        path,
                    )
                )


def _compile_step(source: Source, step: m.StepBase, where: NodePath) -> None:
    compiled: dict[str, Any] = {}
    for name, mode in step.expr_fields.items():
        value = getattr(step, name)
        if value is None:
            continue
        alias = type(step).model_fields[name].alias or name
        compiled[name] = _compile(source, value, mode, (*where, alias))
    if isinstance(step.retry_on, str):
        compiled["retry_on"] = _compile(source, step.retry_on, "bare", (*where, "retry_on"))
    for i, name in enumerate(step.retry_on if isinstance(step.retry_on, list) else []):
        if name not in ERROR_TYPES:
            _problem(
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


def _compile(source: Source, value: Any, mode: str, where: NodePath) -> Expr | Value:
    try:
        if mode == "bare":
            return compile_expr(value, bare=True)
        if mode == "text":
            return compile_expr(value)
        return Value(value, shell=mode == "shell" and isinstance(value, str))
    except ExpressionError as exc:
        _problem(source.error(exc.message, where))
        return compile_expr("", bare=False) if mode != "value" else Value(None)


def _compile_updates(
    source: Source, specs: list[m.StateUpdateSpec], where: NodePath, label: str
) -> list[CompiledUpdate]:
    out = []
    for spec in specs:
        at = (*where, label)
        path_expr = _compile(source, spec.path, "text", at)
        assert isinstance(path_expr, Expr)
        static = spec.path.split("{{", 1)[0].split("{%", 1)[0]
        try:
            if path_expr.is_literal:
                writable_path(spec.path)
            elif static and not static.startswith("raw."):
                writable_path(static.rstrip(".[") or static)
        except StateError as exc:
            _problem(source.error(exc.message, at))
        value = _compile(source, spec.value, "value", at)
        by = _compile(source, spec.by, "value", at)
        assert isinstance(value, Value)
        assert isinstance(by, Value)
        out.append(CompiledUpdate(path_expr, spec.operation, value, by))
    return out


# --- state plans -------------------------------------------------------------------------


def raw_writes(*bodies: list[m.Step]) -> frozenset[str]:
    """The top-level raw names the steps write (declared in the schema or not)."""
    tops: set[str] = set()
    for steps in bodies:
        for step, _ in walk(steps):
            specs: list[m.StateUpdateSpec] = list(step.state_updates)
            if step.state_update is not None:
                specs.append(step.state_update)
            if isinstance(step.error_state_update, list):
                specs.extend(step.error_state_update)
            elif step.error_state_update is not None:
                specs.append(step.error_state_update)
            paths = [spec.path for spec in specs]
            if isinstance(step, m.StateUpdateStep) and step.path:
                paths.append(step.path)
            for path in paths:
                head, _, rest = path.partition(".")
                if head == "raw" and rest:
                    tops.add(rest.split(".", 1)[0].split("[", 1)[0])
    return frozenset(tops)


def build_state_plan(
    source: Source,
    where: NodePath,
    inputs: dict[str, m.InputSpec],
    schema: m.StateSchema,
    defaults: m.DefaultState,
    written: frozenset[str] = frozenset(),
) -> StatePlan:
    """Check the tiers against each other and order the computed fields."""
    owner = where[:-1]
    tiers: dict[str, str] = {}
    for tier, names, at in (
        ("inputs", inputs, (*owner, "inputs")),
        ("raw", schema.raw, (*where, "raw")),
        ("raw", defaults.raw, (*owner, "default_state", "raw")),
        ("computed", schema.computed, (*where, "computed")),
    ):
        for name in names:
            if name in (
                "inputs",
                "raw",
                "computed",
                "loop",
                "steps",
                "error",
                "result",
                "workflow",
                "input",
            ):
                _problem(source.error(f"{name!r} is a reserved name", (*at, name)))
                continue
            if tiers.get(name, tier) != tier:
                _problem(
                    source.error(
                        f"{name!r} is defined in both {tiers[name]} and {tier}; "
                        "flattened reads would be ambiguous",
                        (*at, name),
                    )
                )
                continue
            tiers[name] = tier
    raw_defaults: dict[str, Any] = {k: zero_value(t) for k, t in schema.raw.items()}
    for name, value in defaults.raw.items():
        declared = schema.raw.get(name)
        if declared and value is not None and not matches_type(value, declared):
            _problem(
                source.error(
                    f"default for {name!r} should be {declared}, got {value!r}",
                    (*owner, "default_state", "raw", name),
                )
            )
        raw_defaults[name] = value
    for name, spec in inputs.items():
        if (
            spec.has_default
            and spec.default is not None
            and not matches_type(spec.default, spec.type)
        ):
            _problem(
                source.error(
                    f"default of input {name!r} should be {spec.type}, got {spec.default!r}",
                    (*owner, "inputs", name, "default"),
                )
            )
    computed = _plan_computed(source, (*where, "computed"), schema.computed, tiers, written)
    dependents: dict[str, list[str]] = {}
    for plan in computed:
        for dep in plan.dependencies:
            dependents.setdefault(dep, []).append(plan.name)
    return StatePlan(
        inputs=dict(inputs),
        raw_types=dict(schema.raw),
        raw_defaults=raw_defaults,
        computed=tuple(computed),
        dependents={k: tuple(v) for k, v in dependents.items()},
    )


def _qualify(name: str, tiers: dict[str, str]) -> str | None:
    head, _, rest = name.partition(".")
    if head in ("inputs", "raw", "computed"):
        top = rest.split(".", 1)[0].split("[", 1)[0]
        return name if tiers.get(top) == head else None
    top = head.split("[", 1)[0]
    tier = tiers.get(top)
    return f"{tier}.{name}" if tier else None


def _top(qualified: str) -> str:
    tier, _, rest = qualified.partition(".")
    return f"{tier}.{rest.split('.', 1)[0].split('[', 1)[0]}"


def _plan_computed(
    source: Source,
    where: NodePath,
    fields: dict[str, m.ComputedField],
    tiers: dict[str, str],
    written: frozenset[str] = frozenset(),
) -> list[ComputedPlan]:
    plans: dict[str, ComputedPlan] = {}
    known = sorted(tiers)
    for name, spec in fields.items():
        at = (*where, name)
        sources = []
        for src in spec.sources:
            qualified = _qualify(src, tiers)
            if qualified is None and _readable_undeclared(src, spec, written):
                qualified = src  # a raw path a step writes undeclared (explain warns), or one
                # nothing writes, read by a field that falls back when it is missing
            if qualified is None:
                _problem(
                    source.error(
                        f"computed field {name!r} reads {src!r}, which is not an input, raw or "
                        f"computed field{suggest(src, known)}",
                        (*at, "from"),
                    )
                )
                continue
            sources.append(qualified)
        transform = _compile(source, spec.transform, "bare", (*at, "transform"))
        assert isinstance(transform, Expr)
        deps = {_top(s) for s in sources}
        for ref in transform.references:
            if ref == "input" or ref.startswith("input."):
                continue
            qualified = _qualify(ref, tiers)
            if qualified is None:
                _problem(
                    source.error(
                        f"transform of {name!r} reads undefined name {ref!r}{suggest(ref, known)}",
                        (*at, "transform"),
                    )
                )
                continue
            deps.add(_top(qualified))
        plans[name] = ComputedPlan(name, spec, tuple(sources), transform, frozenset(deps))
    return [plans[n] for n in _topological(source, where, plans)]


def _readable_undeclared(src: str, spec: m.ComputedField, written: frozenset[str]) -> bool:
    """Undeclared raw writes are allowed, so a computed field may read one: ``raw.X`` when a
    step writes ``raw.X``, or any ``raw.`` path when the field falls back on its errors."""
    head, _, rest = src.partition(".")
    if head != "raw" or not rest:
        return False
    top = rest.split(".", 1)[0].split("[", 1)[0]
    return top in written or spec.on_error in ("use_fallback", "ignore")


def _topological(source: Source, where: NodePath, plans: dict[str, ComputedPlan]) -> list[str]:
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            cycle = [*trail[trail.index(name) :], name]
            _problem(
                source.error(
                    f"computed fields form a cycle: {' -> '.join(cycle)}",
                    (*where, cycle[0], "from"),
                )
            )
            return
        state[name] = "active"
        for dep in sorted(plans[name].dependencies):
            if dep.startswith("computed."):
                visit(dep.removeprefix("computed."), [*trail, name])
        state[name] = "done"
        order.append(name)

    for name in plans:
        visit(name, [])
    return order
