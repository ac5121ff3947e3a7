"""The step structure of a workflow, stored with each run so ``resume`` can tell whether an
edited file still matches the saved position (a cursor is a list of indexes into it)."""

from __future__ import annotations

import re
from typing import Any

from wfkit.language.loader import LoadedWorkflow

_TOP = re.compile(r"^steps\[(\d+)\]")


def step_structure(loaded: LoadedWorkflow) -> list[str]:
    """Every step as ``path id type``, in document order (sub-agent tasks included)."""
    return [f"{plan.path} {plan.step_id} {plan.step_type}" for plan in loaded.plans.values()]


def structure_change(
    old: list[str], new: list[str], cursor: list[dict[str, Any]] | None
) -> str | None:
    """What moved under the saved position, or None when resuming lands where it stopped.

    Every step up to and including the top-level step the run stopped in (with all its
    nested steps) must be the same, in the same place; steps after it may change freely.
    Sub-agent tasks must be unchanged too: a parallel_foreach's items resume inside them.
    """
    top = cursor[0]["i"] if cursor else -1

    def before(entries: list[str]) -> list[str]:
        kept = []
        for entry in entries:
            match = _TOP.match(entry)
            if (match is not None and int(match[1]) <= top) or entry.startswith("sub_agent"):
                kept.append(entry)
        return kept

    old_part, new_part = before(old), before(new)
    if old_part == new_part:
        return None
    for was, now in zip(old_part, new_part, strict=False):
        if was != now:
            old_step, new_step = was.split(" ", 1)[1], now.split(" ", 1)[1]
            return f"step {was.split()[0]} was {old_step!r}, is now {new_step!r}"
    longer, verb = (
        (old_part, "was removed") if len(old_part) > len(new_part) else (new_part, "was added")
    )
    return f"step {longer[min(len(old_part), len(new_part))].split()[0]} {verb}"
