"""Load a workflow file: YAML -> models -> compiled, checked :class:`LoadedWorkflow`.

Every problem found here is a :class:`~wfkit.errors.LoadError` naming file, line, column and
field. Expressions are compiled once here; the engine only evaluates them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from wfkit.errors import LoadError
from wfkit.language import compile_cache
from wfkit.language import models as m
from wfkit.language.children import load_children, workflow_steps
from wfkit.language.compile import DECLARED, Body, compile_field, prepare_body, walk
from wfkit.language.diagnostics import (
    FOUND,
    combine_problems,
    problem,
    translate_validation_error,
)
from wfkit.language.expressions import Expr, Value, precompiled, recording
from wfkit.language.plan import StepPlan, expressions_in, references_in, under
from wfkit.language.state_schema import build_state_plan, raw_writes
from wfkit.language.task_files import SHIPPED, include_task
from wfkit.language.yamlsrc import Path as NodePath
from wfkit.language.yamlsrc import Source, parse, read_source

MAX_FILE_BYTES = 5_000_000
#: ``steps`` reached by a computed key or through a filter: any step's result may be read
_COMPUTED_STEPS = re.compile(r"\bsteps\s*(\[|\||\)|,|\}|%|~|$)")


def _reads_steps(found: Expr | Value, step_id: str, ids: set[str]) -> bool:
    """Whether an expression may read ``step_id``'s result through ``steps``: by its id, as a
    whole, by a method (a name that is no step's id) or by a computed key."""
    for ref in found.references:
        root, _, rest = ref.partition(".")
        name = rest.split(".")[0]
        if root == "steps" and (name in (step_id, "") or name not in ids):
            return True
    return _COMPUTED_STEPS.search(str(found.source)) is not None


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
    #: the texts of the task files it names, by entry (``tasks/review.yaml``): shipped too
    included: dict[str, str] = field(default_factory=dict)
    #: the workflow each ``workflow`` step calls, by ``id()`` of the step (language/children)
    children: dict[int, LoadedWorkflow] = field(default_factory=dict)
    #: ``outputs:`` compiled: the run's result when a ``workflow`` step runs it
    outputs: dict[str, Any] = field(default_factory=dict)
    #: the branches of every ``parallel`` step, by :func:`branch_name`
    branches: dict[str, Body] = field(default_factory=dict)
    #: facts about this workflow found once when asked (``result_read``,
    #: ``wfkit.language.fanout``)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def result_read(self, step: m.StepBase) -> bool:
        """Whether anything may read ``step``'s result: its own fields (``result``), or any
        expression of the workflow through ``steps``: ``steps.<id>``, ``steps`` as a whole,
        by a computed key (``steps[k]``) or a method (``steps.get``). A fan-out whose
        result nobody reads keeps counts instead of every item's entry."""
        key = ("result_read", id(step))
        if key not in self.memo:
            own = self.plans.get(id(step))
            ids = {plan.step_id for plan in self.plans.values()}
            self.memo[key] = (
                own is None
                or any(under(ref, "result") for ref in references_in(own.compiled))
                or any(
                    _reads_steps(found, step.step_id, ids)
                    for plan in self.plans.values()
                    for found in expressions_in(plan.compiled)
                )
            )
        return bool(self.memo[key])

    def body(self, name: str, branch: bool = False) -> Body:
        """A sub-agent task, or a ``parallel`` branch, by name (what an item runs)."""
        return self.branches[name] if branch else self.tasks[name]

    @property
    def fingerprint(self) -> str:
        """The digest of the text and of every task file it includes."""
        if not self.included:
            return self.digest
        whole = hashlib.sha256(self.digest.encode())
        for entry, text in sorted(self.included.items()):
            whole.update(b"\0" + entry.encode() + b"\0" + text.encode())
        return whole.hexdigest()

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
    text = read_source(path, limit=MAX_FILE_BYTES, regular=True)
    return load_text(text, str(path), cache)


def load_text(
    text: str,
    file: str = "<string>",
    cache: Path | None = None,
    included: dict[str, str] | None = None,
) -> LoadedWorkflow:
    """Load a workflow from YAML text; ``file`` names it in errors; ``included`` holds the
    texts of its task files by entry (as :attr:`LoadedWorkflow.included`), read from disk
    when not given.

    With ``cache`` (a directory, see :mod:`wfkit.language.compile_cache`), a text loaded before
    skips parsing and validation, and its expressions are rebuilt from their generated code
    instead of compiled; the checks and step plans run as always.
    """
    token = SHIPPED.set(included)
    try:
        return _load_text(text, file, cache)
    finally:
        SHIPPED.reset(token)


def _load_text(text: str, file: str, cache: Path | None) -> LoadedWorkflow:
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
    token = FOUND.set(found)
    try:
        loaded = _compile_checked(text, file, source, workflow)
    finally:
        FOUND.reset(token)
    if found:
        unique = {(p.line, p.column, p.message): p for p in found}
        raise combine_problems(list(unique.values()))
    return loaded


def _compile_checked(text: str, file: str, source: Source, workflow: m.Workflow) -> LoadedWorkflow:
    # an input or state field of the same name shadows ``secrets``/``env``: not checked then
    shadowing = {*workflow.inputs, *workflow.state_schema.raw, *workflow.state_schema.computed}
    declared = {"secrets": sorted(workflow.secrets)} if "secrets" not in shadowing else {}
    if workflow.env_file is None and "env" not in shadowing:
        declared["env"] = sorted(workflow.env)
    token = DECLARED.set(declared)
    try:
        return _compile_declared(text, file, source, workflow)
    finally:
        DECLARED.reset(token)


def _check_environment(source: Source, workflow: m.Workflow) -> None:
    """Secret inputs have no default; the workflow's ``env:`` values compile."""
    for name, spec in workflow.inputs.items():
        if spec.secret and spec.has_default:
            problem(
                source.error(
                    f"input {name!r} is secret: it cannot have a default (a default is written"
                    " in the workflow file; give it with -i, or read it from `secrets:`)",
                    ("inputs", name, "default"),
                )
            )
    for name, template in workflow.env.items():
        compile_field(source, template, "text", ("env", name))


def _compile_declared(text: str, file: str, source: Source, workflow: m.Workflow) -> LoadedWorkflow:
    digest = hashlib.sha256(text.encode()).hexdigest()
    _check_environment(source, workflow)
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
    prepare_body(source, main, (), workflow)
    tasks: dict[str, Body] = {}
    included: dict[str, str] = {}
    files: dict[str, str] = {}  # the file of each included task's steps
    sources: dict[str, Source] = {}  # and its positions
    for name, entry in list(workflow.sub_agent_tasks.items()):
        base: NodePath = ("sub_agent_tasks", name)
        task_source = source
        if isinstance(entry, str):
            task, task_source = include_task(source, file, name, entry, included)
            workflow.sub_agent_tasks[name] = task
            files[name] = task_source.file
            sources[name] = task_source
        else:
            task = entry
        plan = build_state_plan(
            task_source,
            (*base, "state_schema"),
            task.inputs,
            task.state_schema,
            task.default_state,
            raw_writes(task.steps, task.finally_),
        )
        tasks[name] = Body(name, task.steps, task.finally_, plan, owner=name)
        prepare_body(task_source, tasks[name], base, workflow)
    located: list[tuple[Body, NodePath, Source, str]] = [(main, (), source, file)]
    located += [
        (body, ("sub_agent_tasks", name), sources.get(name, source), files.get(name, file))
        for name, body in tasks.items()
    ]
    calls = [
        (body_source, body_file, step, where)
        for body, base, body_source, body_file in located
        for steps, part in ((body.steps, "steps"), (body.finally_steps, "finally"))
        for step, where in workflow_steps(steps, (*base, part))
    ]
    children = load_children(calls, file, workflow, load_file) if calls else {}
    outputs = {
        name: compile_field(source, value, "value", ("outputs", name))
        for name, value in workflow.outputs.items()
    }
    plans = {
        id(step): StepPlan.of(step, body_file, step._compiled)
        for body, body_file in ((main, file), *((t, files.get(n, file)) for n, t in tasks.items()))
        for steps in (body.steps, body.finally_steps)
        for step, _ in walk(steps)
    }
    branches = {
        branch_name(body.owner, step.step_id, name): Body(
            branch_name(body.owner, step.step_id, name), steps, [], body.state, owner=body.owner
        )
        for body in (main, *tasks.values())
        for step, _ in walk([*body.steps, *body.finally_steps])
        if isinstance(step, m.ParallelStep)
        for name, steps in step.branches.items()
    }
    for branch in branches.values():
        branch.by_id.update((step.step_id, step) for step, _ in walk(branch.steps))
    return LoadedWorkflow(
        workflow,
        source,
        digest,
        main,
        tasks,
        plans,
        text,
        included,
        children=children,
        outputs=outputs,
        branches=branches,
    )


def branch_name(owner: str | None, step_id: str, branch: str) -> str:
    """The name a ``parallel`` branch runs under (``LoadedWorkflow.branches``): its step's
    id and its name, in the main workflow (``owner`` None) or in the task ``owner``."""
    return json.dumps([owner, step_id, branch])
