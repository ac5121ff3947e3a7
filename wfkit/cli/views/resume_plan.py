"""Rich view of ``resume --plan``: each change, safe or not, and why."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text

if TYPE_CHECKING:
    from wfkit.commands.resume_plan import ResumePlan


def resume_plan_view(plan: ResumePlan) -> Group:
    """The verdict on top, then one line per change (the unsafe ones with their override)."""
    where = plan.continues_at or "the end of the main steps"
    verdict = (
        Text("a plain resume goes ahead", style="bold green")
        if plan.safe
        else Text("a plain resume is refused: unsafe changes below", style="bold red")
    )
    parts: list[Text] = [
        Text.assemble(("resume plan ", "bold"), plan.run_id, "  ", plan.file),
        Text(f"continues at {where}", style="dim"),
        verdict,
    ]
    if not plan.changed:
        parts.append(Text("the file is the one the run started with", style="dim"))
    for change in plan.changes:
        mark, style = ("safe  ", "green") if change.safe else ("UNSAFE", "red")
        line = Text.assemble((mark, f"bold {style}"), f" {change.detail}: ", change.reason)
        if change.override:
            line.append(f"  (override: {change.override})", style="yellow")
        parts.append(line)
    for name, value in plan.new_defaults.items():
        parts.append(Text(f"input {name} took its default: now {json.dumps(value)}", style="cyan"))
    return Group(*parts)
