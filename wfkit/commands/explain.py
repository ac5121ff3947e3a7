"""``explain``: the plan of a workflow and its mistakes, before anything runs.

A static walk of every step at every depth. Nothing is executed: conditions are evaluated only
when the given inputs and defaults alone decide them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wfkit.commands._io import agent_command
from wfkit.commands.explanation import (
    ComputedPlanView,
    Explanation,
    InputPlan,
    PlanWarning,
    RetryPlan,
    StepPlanView,
    ToolNeed,
    shell_view,
    undeclared_reads,
    worst_case,
)
from wfkit.engine.secrets import MASK, Masker
from wfkit.engine.state import State, parse_path
from wfkit.errors import InputError, StepError
from wfkit.language import models as m
from wfkit.language.compile import Body, walk
from wfkit.language.diagnostics import suggest
from wfkit.language.expressions import SHELL_ENV, Expr, Value, truthy
from wfkit.language.fanout import result_warning
from wfkit.language.loader import LoadedWorkflow, load_file
from wfkit.language.plan import references_in
from wfkit.language.shellquote import place_values, unneeded_quotes

RESULT_FIELDS = {"shell_command": ("stdout", "stderr", "exit_code")}


@dataclass
class _Context:
    """What a step's expressions may read besides state: depends on where the step sits."""

    in_loop: bool = False
    in_cleanup: bool = False
    in_finally: bool = False
    dead: bool = False
    scope: str = "workflow"
    extra: frozenset[str] = frozenset()
    branch: str | None = None  # the ``parallel`` branch whose list holds the steps


@dataclass
class _Walker:
    loaded: LoadedWorkflow
    body: Body
    state: State | None
    names: dict[str, str]  # flattened name -> tier
    steps: list[StepPlanView] = field(default_factory=list)
    warnings: list[PlanWarning] = field(default_factory=list)
    step_ids: set[str] = field(default_factory=set)
    #: levels of ``workflow`` steps whose child plans are nested (None: all)
    nest: int | None = 1

    def nest_child(self, step: m.WorkflowStep, ctx: _Context, depth: int) -> None:
        """The child's plan under its ``workflow`` step, and its warnings."""
        child = self.loaded.children.get(id(step))
        if child is None or self.nest == 0:
            return
        inner = _explained(child, {}, None if self.nest is None else self.nest - 1)
        where = child.file
        for view in inner.steps:
            if view.scope != "workflow":
                continue
            self.steps.append(
                view.model_copy(
                    update={
                        "depth": depth + 1 + view.depth,
                        "scope": ctx.scope,
                        "file": view.file or where,
                        "dead": view.dead or ctx.dead,
                    }
                )
            )
        for warning in inner.warnings:
            if warning.kind == "inputs":  # the caller gives them when it runs
                continue
            self.warnings.append(
                warning.model_copy(update={"message": f"{where}: {warning.message}"})
            )

    def warn(self, kind: str, message: str, step: m.StepBase | None = None) -> None:
        self.warnings.append(
            PlanWarning(
                kind=kind,
                message=message,
                step_id=step.id if step else None,
                line=step.line if step else None,
            )
        )

    # names -------------------------------------------------------------------------------

    def check_reference(self, ref: str, step: m.StepBase, allowed: set[str]) -> None:
        root, _, rest = ref.partition(".")
        if root in allowed:
            if root == "steps" and rest:
                target = rest.split(".", 1)[0]
                if target not in self.step_ids:
                    hint = suggest(target, sorted(self.step_ids))
                    self.warn("unknown_step", f"steps.{target} names no step{hint}", step)
            return
        if root in ("inputs", "raw", "computed"):
            name = rest.split(".", 1)[0]
            if not name or self.names.get(name) == root:
                return
            known = sorted(n for n, t in self.names.items() if t == root)
            self.warn("undefined_name", f"{root}.{name} is not defined{suggest(name, known)}", step)
            return
        if root in self.names:
            return
        candidates = sorted({*self.names, *allowed} - {"input"})
        self.warn(
            "undefined_name",
            f"undefined name {root!r}{suggest(root, candidates)}: the step will fail with "
            "UndefinedVariableError",
            step,
        )

    def reads_of(self, step: m.StepBase, ctx: _Context) -> list[str]:
        compiled = step._compiled
        base = {"steps", *ctx.extra}
        if ctx.in_loop:
            base.add("loop")
        if ctx.in_cleanup:
            base.add("error")
        if ctx.in_finally:
            base.add("workflow")
        sites: list[tuple[Any, set[str]]] = []
        for name, value in compiled.items():
            if name in ("updates", "error_updates", "writes", "policy"):
                continue
            allowed = set(base)
            if name in {"fallback_value", "retry_on"}:
                allowed.add("error")
            if name == "with_":
                allowed |= {"loop", "item"}
            sites.append((value, allowed))
        for update in compiled["updates"]:
            sites.append((update, {*base, "result"}))
        for update in compiled["error_updates"]:
            sites.append((update, {*base, "error"}))
        for update in compiled.get("writes", []):
            sites.append((update, set(base)))
        reads: set[str] = set()
        for value, allowed in sites:
            for ref in references_in(value):
                self.check_reference(ref, step, allowed)
                reads.add(self.qualify(ref))
        return sorted(reads)

    def qualify(self, ref: str) -> str:
        root = ref.split(".", 1)[0]
        tier = self.names.get(root)
        return f"{tier}.{ref}" if tier and root not in ("inputs", "raw", "computed") else ref

    def writes_of(self, step: m.StepBase) -> list[str]:
        compiled = step._compiled
        out = []
        for update in [
            *compiled.get("writes", []),
            *compiled["updates"],
            *compiled["error_updates"],
        ]:
            path = update.path.source
            out.append(path)
            if update.path.is_literal:
                top = str(parse_path(path)[1])
                plan = self.body.state
                if top not in plan.raw_types and top not in plan.raw_defaults:
                    self.warn(
                        "undeclared_write",
                        f"writes raw.{top}, which state_schema.raw does not declare "
                        "(it will be untyped)",
                        step,
                    )
            for literal in _literals(update.value):
                if literal in self.names or literal in RESULT_FIELDS.get(step.step_type, ()):
                    self.warn(
                        "literal_looks_like_reference",
                        f"value {literal!r} is a literal string; did you mean "
                        f"'{{{{ {literal} }}}}'?",
                        step,
                    )
        return out

    # conditions --------------------------------------------------------------------------

    def decide(self, expr: Any, step: m.StepBase) -> bool | None:
        """The condition's value when the inputs alone decide it, else None."""
        known, value = self.by_inputs(expr, constant=False)
        return truthy(value) if known else None

    def by_inputs(self, expr: Any, constant: bool = True) -> tuple[bool, Any]:
        """``(True, value)`` when the inputs alone decide the expression's value (one that
        reads nothing counts only when ``constant``), else ``(False, None)``."""
        if self.state is None or not isinstance(expr, Expr):
            return False, None
        if expr.is_literal:
            return True, expr.source
        tiers = {self.names.get(r.split(".", 1)[0], r.split(".", 1)[0]) for r in expr.references}
        if not (tiers or constant) or not tiers <= {"inputs"}:
            return False, None
        try:
            return True, expr.render(self.state.scope())
        except StepError:
            return False, None

    def result_note(self, step: m.ParallelForeachStep) -> str | None:
        """A fan-out whose items the inputs decide, more than its reads of ``result`` take."""
        known, items = self.by_inputs(step._compiled.get("items"))
        if isinstance(step.items, list) or (known and isinstance(items, (list, dict))):
            count = len(step.items if isinstance(step.items, list) else items)
            return result_warning(self.loaded, step, count)
        return None

    # the walk ----------------------------------------------------------------------------

    def walk(self, steps: list[m.Step], ctx: _Context, depth: int) -> None:
        reachable = True
        for step in steps:
            self.visit(step, ctx, depth, reachable)
            unconditional = step.if_ is None
            if unconditional and isinstance(step, (m.ErrorStep, m.BreakStep, m.ContinueStep)):
                if reachable and step is not steps[-1]:
                    nxt = steps[steps.index(step) + 1]
                    self.warn(
                        "unreachable",
                        f"steps after {step.id!r} never run ({step.step_type} always leaves "
                        f"this list); first unreachable: {nxt.id!r}",
                        nxt,
                    )
                reachable = False

    def visit(self, step: m.StepBase, ctx: _Context, depth: int, reachable: bool) -> None:
        compiled = step._compiled
        condition_source, condition_value = None, None
        condition = compiled.get("condition")
        if isinstance(step, (m.ConditionalStep, m.WhileLoopStep)):
            condition_source = str(step.condition)
            condition_value = self.decide(condition, step)
        gate = compiled.get("if_")
        gate_value = self.decide(gate, step) if gate is not None else None
        policy = RetryPlan.of(compiled["policy"])
        timeout = step.timeout
        view = StepPlanView(
            id=step.step_id,
            type=step.step_type,
            path=step.field_path,
            line=step.line,
            depth=depth,
            scope=ctx.scope,
            branch=ctx.branch,
            condition=condition_source or (str(step.if_) if step.if_ is not None else None),
            condition_value=condition_value if condition_source else gate_value,
            reads=self.reads_of(step, ctx),
            writes=self.writes_of(step),
            policy=policy,
            timeout=timeout,
            worst_case_ms=worst_case(step, policy),
            tools=self.tools_of(step),
            reachable=reachable,
            dead=ctx.dead or gate_value is False,
            shell=shell_view(step),
            response_schema=getattr(step, "response_schema", None),
        )
        self.steps.append(view)
        if isinstance(step, m.WorkflowStep):
            self.nest_child(step, ctx, depth)
        self.check_budget(step, policy)
        self.check_shell(step)
        if isinstance(step, m.ParallelForeachStep) and (note := self.result_note(step)):
            self.warn("result_budget", note, step)
        for label, children in step.children():
            child = _Context(
                in_loop=ctx.in_loop or (label == "body"),
                in_cleanup=ctx.in_cleanup or label == "cleanup",
                in_finally=ctx.in_finally,
                dead=view.dead
                or (label == "then" and condition_value is False)
                or (label == "else" and condition_value is True)
                or (label == "body" and condition_value is False),
                scope=ctx.scope,
                extra=ctx.extra,
                branch=label.partition(".")[2] if label.startswith("branches.") else None,
            )
            self.walk(children, child, depth + 1)

    def tools_of(self, step: m.StepBase) -> list[ToolNeed]:
        if not isinstance(step, m.McpCallStep):
            return []
        servers = self.loaded.workflow.mcp_servers
        if step.server is not None and step.server not in servers:
            self.warn(
                "unknown_server",
                f"server {step.server!r} is not in mcp_servers"
                f"{suggest(step.server, list(servers))}",
                step,
            )
            available: bool | None = False
        elif not servers:
            self.warn(
                "tool_unavailable",
                f"tool {step.tool_name!r}: no MCP server is declared, so the call fails with "
                "ToolNotFoundError",
                step,
            )
            available = False
        else:
            available = None
        return [ToolNeed(tool=step.tool_name, server=step.server, available=available)]

    def check_shell(self, step: m.StepBase) -> None:
        if not isinstance(step, m.ShellCommandStep):
            return
        if isinstance(step.command, str):
            for note in unneeded_quotes(place_values(step.command, SHELL_ENV.parse)):
                self.warn("shell_quotes", note, step)
        if step.memory_limit_mb is not None:
            from wfkit.engine.memlimit import RLIMIT, mechanism

            how = mechanism()
            extra = " (address space: thread stacks count too)" if how == RLIMIT else ""
            self.warn(
                "memory_limit",
                f"memory_limit_mb={step.memory_limit_mb} is enforced by {how}{extra}",
                step,
            )

    def check_budget(self, step: m.StepBase, policy: RetryPlan) -> None:
        if policy.attempts <= 1:
            return
        budget_ms = policy.worst_case_wait_ms
        if step.timeout is not None:
            budget_ms += policy.attempts * step.timeout * 1000
        workflow_timeout = self.loaded.workflow.config.timeout
        if workflow_timeout is not None and budget_ms > workflow_timeout * 1000:
            self.warn(
                "retry_budget",
                f"worst-case retry budget {budget_ms / 1000:.1f} s ({policy.attempts} attempts) "
                f"exceeds the workflow timeout of {workflow_timeout:g} s",
                step,
            )


def _literals(value: Value) -> list[str]:
    """Plain strings (no braces) inside a value."""
    out: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, str):
            if "{{" not in node and "{%" not in node:
                out.append(node)
        elif isinstance(node, dict):
            for item in node.values():
                collect(item)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(value.source)
    return out


def _tier_names(body: Body) -> dict[str, str]:
    plan = body.state
    names = dict.fromkeys(plan.inputs, "inputs")
    names.update(dict.fromkeys((*plan.raw_types, *plan.raw_defaults), "raw"))
    names.update({c.name: "computed" for c in plan.computed})
    for steps in (body.steps, body.finally_steps):  # fields written anywhere exist later
        for step, _ in walk(steps):
            for update in [*step._compiled.get("writes", []), *step._compiled["updates"]]:
                if update.path.is_literal:
                    names.setdefault(str(parse_path(update.path.source)[1]), "raw")
    return names


def explain_workflow(
    file: str | Path,
    inputs: dict[str, Any] | None = None,
    cache: Path | None = None,
    agent: str | None = None,
    nest: int | None = 1,
) -> Explanation:
    """The plan of a workflow file with the given inputs; never runs anything.

    ``cache`` is a compile-cache directory (:mod:`wfkit.language.compile_cache`) to load through;
    ``agent`` the ``--agent-command`` a run would be given; ``nest`` how many levels of
    ``workflow`` steps show their child's plan (None: all).
    """
    loaded = load_file(file, cache)
    given = dict(inputs or {})
    secret = {n for n, spec in loaded.workflow.inputs.items() if spec.secret and n in given}
    explained = _explained(loaded, given, nest)
    agents = [s for s in explained.steps if s.type == "agent_task"]
    if agents and agent_command(loaded.workflow, agent) is None:
        explained.warnings.append(
            PlanWarning(
                kind="agent_unavailable",
                message=f"{len(agents)} agent_task step(s) ({', '.join(s.id for s in agents)}) "
                "and no performer: pass --agent-command CMD, set WFKIT_AGENT_COMMAND or "
                "config.agent.command, give --answers, or run under `wfkit mcp`; otherwise "
                "each fails with AgentUnavailableError",
            )
        )
    if not secret:
        return explained
    masker = Masker({n: str(given[n]) for n in secret})
    return Explanation.model_validate(masker.value(explained.model_dump(by_alias=True)))


def _explained(loaded: LoadedWorkflow, given: dict[str, Any], nest: int | None) -> Explanation:
    plan = loaded.main.state
    input_views = []
    for name, spec in plan.inputs.items():
        if name in given and loaded.workflow.inputs[name].secret:
            status, value = "given", MASK  # a secret is never shown
        elif name in given:  # text from the command line as plain text (a str subclass
            # holding an undecodable byte does not serialise)
            value = given[name]
            status, value = "given", str(value) if isinstance(value, str) else value
        elif spec.has_default:
            status, value = "default", spec.default
        else:
            status, value = ("missing" if spec.is_required else "optional"), None
        input_views.append(
            InputPlan(
                name=name,
                type=spec.type,
                required=spec.is_required,
                status=status,
                value=value,
                description=spec.description,
            )
        )
    state: State | None = None
    warnings: list[PlanWarning] = []
    try:
        state = State(plan, plan.resolve_inputs(given))
    except InputError as exc:
        warnings.append(PlanWarning(kind="inputs", message=exc.message))
    except StepError as exc:
        warnings.append(PlanWarning(kind="initial_state", message=exc.message))
    walker = _Walker(
        loaded, loaded.main, state, _tier_names(loaded.main), warnings=warnings, nest=nest
    )
    walker.step_ids = set(loaded.main.by_id)
    walker.walk(loaded.main.steps, _Context(), 0)
    walker.walk(loaded.main.finally_steps, _Context(in_finally=True, scope="finally"), 0)
    for name, body in loaded.tasks.items():
        task_walker = _Walker(loaded, body, None, _tier_names(body), nest=nest)
        task_walker.step_ids = set(body.by_id)
        task_walker.walk(body.steps, _Context(scope=name), 0)
        task_walker.walk(body.finally_steps, _Context(in_finally=True, scope=name), 0)
        walker.steps.extend(task_walker.steps)
        walker.warnings.extend(task_walker.warnings)
    for body in (loaded.main, *loaded.tasks.values()):
        walker.warnings.extend(undeclared_reads(body))
    computed = [
        ComputedPlanView(
            name=c.name,
            sources=list(c.sources),
            transform=c.spec.transform,
            dependencies=sorted(c.dependencies),
            on_error=c.spec.on_error,
        )
        for c in plan.computed
    ]
    main_steps = [s for s in walker.steps if s.scope == "workflow" and s.depth == 0]
    known = [s.worst_case_ms for s in main_steps]
    total = None if any(v is None for v in known) else sum(v or 0.0 for v in known)
    timeout = loaded.workflow.config.timeout
    if timeout is not None:
        total = min(total, timeout * 1000) if total is not None else timeout * 1000
    return Explanation(
        workflow=loaded.name,
        file=loaded.file,
        inputs=input_views,
        steps=walker.steps,
        computed=computed,
        warnings=walker.warnings,
        worst_case_ms=total,
        timeout=timeout,
    )
