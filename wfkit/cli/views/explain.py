"""Views of plans and expressions: ``wfkit explain`` and ``wfkit test-transform``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.text import Text

from wfkit.cli.views.common import add_row, short, titled_table

if TYPE_CHECKING:
    from wfkit.commands.explanation import Explanation, StepPlanView
    from wfkit.commands.transform import TransformResult


def explanation_tree(plan: Explanation, limit: int | None = None) -> Group:
    """``wfkit explain``: inputs, the step tree with policies, computed fields, warnings.

    With ``limit``, the tree shows the first ``limit`` steps (in file order, at any depth) and
    one line counting the rest, and as many warnings: rendering costs ~0.1-0.2 ms a line, so a
    2000-step file would spend most of its time drawing rows nobody reads.
    """
    from rich.tree import Tree

    parts: list[Any] = [
        Text.assemble(("plan ", "bold"), (plan.workflow, "bold cyan"), f"  {plan.file}")
    ]
    if plan.inputs:
        table = titled_table("inputs", "name", "type", "status", "value")
        for item in plan.inputs:
            style = "red" if item.status == "missing" else ""
            add_row(table, item.name, item.type, Text(item.status, style=style), short(item.value))
        parts.append(table)
    root = Tree(Text("steps", style="bold"))
    branches: dict[tuple[str, int], Tree] = {}
    shown = plan.steps if limit is None else plan.steps[:limit]
    for step in shown:
        parent = root if step.depth == 0 else branches.get((step.scope, step.depth - 1), root)
        if step.depth == 0 and step.scope != "workflow":  # finally, sub-agent tasks
            if (step.scope, -1) not in branches:
                branches[(step.scope, -1)] = root.add(Text(step.scope, style="bold magenta"))
            parent = branches[(step.scope, -1)]
        branches[(step.scope, step.depth)] = parent.add(_step_label(step))
    parts.append(root)
    if len(shown) < len(plan.steps):
        rest, first = len(plan.steps) - len(shown), plan.steps[len(shown)]
        where = f" (line {first.line})" if first.line is not None else ""
        parts.append(
            Text(
                f"… and {rest:,} more step{'s' if rest != 1 else ''}, from {first.id}{where} on "
                "(--steps all shows every one)",
                style="dim",
            )
        )
    if plan.computed:
        table = titled_table("computed fields (evaluation order)", "field", "from", "transform")
        for c in plan.computed:
            add_row(table, c.name, ", ".join(c.sources), c.transform)
        parts.append(table)
    total = "unbounded" if plan.worst_case_ms is None else f"{plan.worst_case_ms / 1000:g} s"
    parts.append(Text(f"worst-case duration: {total}", style="dim"))
    warnings = plan.warnings if limit is None else plan.warnings[:limit]
    for warning in warnings:
        where = f"line {warning.line} " if warning.line else ""
        owner = f"{warning.step_id}: " if warning.step_id else ""
        parts.append(Text(f"! {where}{owner}{warning.message}", style="yellow"))
    if len(warnings) < len(plan.warnings):
        rest = len(plan.warnings) - len(warnings)
        parts.append(
            Text(
                f"! … and {rest:,} more warning{'s' if rest != 1 else ''} "
                "(--steps all or --json shows every one)",
                style="yellow",
            )
        )
    if not plan.warnings:
        parts.append(Text("no warnings", style="green"))
    return Group(*parts)


_SCHEMA_CHARS = 160
"""How much of an agent step's response_schema its line shows (``--json`` has all of it)."""


def _step_label(step: StepPlanView) -> Text:
    where = f"  line {step.line}" + (f" of {step.file}" if step.file else "")
    text = Text.assemble((step.id, "bold"), f" {step.type}", (where, "dim"))
    if step.branch is not None:
        text = Text.assemble((f"{step.branch} ▸ ", "magenta"), text)
    if step.condition is not None:
        decided = "" if step.condition_value is None else f" -> {step.condition_value}"
        text.append(f"  if {step.condition}{decided}", style="cyan")
    policy = step.policy
    if policy.strategy != "fail" or policy.attempts > 1:
        delays = ", ".join(f"{d:g}" for d in policy.delays_ms)
        text.append(f"  on_error={policy.strategy}", style="yellow")
        if policy.attempts > 1:
            text.append(f" attempts={policy.attempts} waits=[{delays}] ms", style="yellow")
    if step.timeout is not None:
        text.append(f"  timeout={step.timeout:g}s", style="magenta")
    if step.reads:
        text.append(f"  reads {', '.join(step.reads)}", style="dim")
    if step.writes:
        text.append(f"  writes {', '.join(step.writes)}", style="green")
    if step.shell is not None:
        text.append(f"  runs: {step.shell}", style="dim")
    if step.response_schema is not None:
        schema = json.dumps(step.response_schema, separators=(",", ":"), ensure_ascii=False)
        cut = "…" if len(schema) > _SCHEMA_CHARS else ""
        text.append(f"  response: {schema[:_SCHEMA_CHARS]}{cut}", style="dim")
    if not step.reachable:
        text.append("  UNREACHABLE", style="bold red")
    elif step.dead:
        text.append("  (dead: the inputs decide against it)", style="dim red")
    return text


def transform_result(result: TransformResult) -> Group:
    """``wfkit test-transform``."""
    parts: list[Any] = [Text.assemble(("expression ", "dim"), result.expression)]
    if result.dependencies:
        parts.append(Text(f"from {', '.join(result.dependencies)}", style="dim"))
        parts.append(Text.assemble(("input ", "dim"), short(result.input, 200)))
    if result.error is not None:
        parts.append(Text(f"{result.error.type}: {result.error.message}", style="bold red"))
    else:
        parts.append(
            Text.assemble(
                ("output ", "bold"),
                short(result.output, 400),
                (f"  ({result.type})", "dim"),
            )
        )
    parts.append(
        Text(
            f"references: {', '.join(result.references) or 'none'}  {result.duration_ms:.3f} ms",
            style="dim",
        )
    )
    return Group(*parts)
