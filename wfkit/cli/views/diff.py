"""Rich view of ``diff``: every value from a run is plain Text, never markup."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text

from wfkit.cli.views.common import status_text, titled_table

if TYPE_CHECKING:
    from wfkit.commands.diff import DiffResult, StepSide


def _side(name: str, side: StepSide | None) -> list[Text]:
    if side is None:
        return [Text.assemble(f"    {name} ", ("did not run", "dim"))]
    lines = [
        Text.assemble(
            f"    {name} ", status_text(side.status), f" x{side.attempts} {side.duration_ms:.0f} ms"
        )
    ]
    if side.error:
        lines.append(Text.assemble(f"    {name} ", (side.error, "red")))
    return lines


def diff_view(result: DiffResult) -> Group:
    """The first divergence on top, then inputs, steps and state that differ."""
    first = result.first_divergence or "none: the runs did the same"
    parts: list[object] = [
        Text.assemble(
            ("A ", "bold"),
            result.run_a,
            " (",
            status_text(result.status_a),
            ")  ",
            ("B ", "bold"),
            result.run_b,
            " (",
            status_text(result.status_b),
            ")",
        ),
        Text.assemble(("first divergence: ", "bold yellow"), first),
    ]
    if result.inputs:
        table = titled_table("inputs", "path", "A", "B")
        for d in result.inputs:
            table.add_row(Text(d.path), _value(d.a, d.only == "b"), _value(d.b, d.only == "a"))
        parts.append(table)
    if result.steps:
        parts.append(Text("steps that differ", style="italic"))
        for step in result.steps:
            where = step.step_id + (
                f" [branch {step.branch}]"
                if step.branch is not None
                else f" [item {step.item}]"
                if step.item is not None
                else ""
            )
            what = ", ".join(step.changes)
            if step.slower_by_ms is not None:
                what += f" (+{step.slower_by_ms:.0f} ms)"
            parts.append(Text.assemble("  ", (f"{where} #{step.execution}", "bold"), f": {what}"))
            parts += _side("A", step.a) + _side("B", step.b)
    parts.append(Text(f"{result.identical_steps} step execution(s) the same", style="dim"))
    if result.state:
        table = titled_table("state", "path", "A", "B")
        for d in result.state:
            table.add_row(Text(d.path), _value(d.a, d.only == "b"), _value(d.b, d.only == "a"))
        parts.append(table)
    return Group(*parts)  # type: ignore[arg-type]


def _value(value: object, absent: bool) -> Text:
    if absent:
        return Text("absent", style="dim")
    return Text(json.dumps(value, default=repr))
