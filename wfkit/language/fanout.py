"""What a fan-out's result costs the expressions that read it as a whole, known before any
item runs.

A ``parallel_foreach`` result holds one entry per item (``index``, ``item``, ``status``, the
item's ``state``, ``error``). An expression over all of it (``result | selectattr(...) |
list | length``) is charged by the size of what it touches (:mod:`wfkit.language.budget`),
so its cost grows with the number of items: a run of 500,000 items would do all the work and
*then* fail on the budget. The cost per item is measured here by evaluating the step's
expressions over two samples of minimal entries; the difference, divided by the number of
entries, is what one item costs at least, so the number of items an expression's budget
takes is at most the budget divided by it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wfkit.language.budget import LIMITS, metered
from wfkit.language.plan import references_in

if TYPE_CHECKING:
    from wfkit.language.loader import LoadedWorkflow
    from wfkit.language.models import StepBase

#: the entries of the larger sample (the smaller has none; a tenth, a hundredth of it when
#: the budget does not take it)
SAMPLE = 1000


def _entries(count: int) -> list[dict[str, Any]]:
    empty: dict[str, Any] = {"inputs": {}, "raw": {}, "computed": {}}
    return [
        {"index": i, "item": i, "status": "succeeded", "state": empty, "error": None}
        for i in range(count)
    ]


def _spent(values: list[Any], count: int) -> tuple[int, int] | None:
    """Steps and bytes the values cost over ``count`` minimal entries; None when they cannot
    be evaluated without the run (they read what only the run has)."""
    scope = {"result": _entries(count)}
    try:
        with metered() as meter:
            for value in values:
                value.render(scope)
    except Exception:
        return None
    return meter[0], meter[1]


def result_capacity(loaded: LoadedWorkflow, step: StepBase) -> tuple[int, float] | None:
    """The most items whose result the step's own state writes can read as a whole within
    one expression's budget, and the steps of work each item costs them at least; None when
    they do not read it, cannot be measured, or take more items than a list may hold."""
    plan = loaded.plans.get(id(step))
    if plan is None:
        return None
    values = [
        part
        for update in plan.compiled.get("updates", [])
        for part in (update.path, update.value, update.by)
        if any(ref == "result" or ref.startswith("result.") for ref in references_in(part))
    ]
    if not values:
        return None
    none = _spent(values, 0)
    # the largest sample the budget takes (a costly expression cannot read 1,000 entries)
    sample, many = next(
        ((n, spent) for n in (SAMPLE, SAMPLE // 10, SAMPLE // 100) if (spent := _spent(values, n))),
        (0, None),
    )
    if none is None or many is None:
        return None
    steps = (many[0] - none[0]) / sample
    size = (many[1] - none[1]) / sample
    most = min(
        LIMITS.max_steps / steps if steps > 0 else float("inf"),
        LIMITS.max_bytes / size if size > 0 else float("inf"),
    )
    if most >= LIMITS.max_items:
        return None
    return int(most), steps


def result_warning(loaded: LoadedWorkflow, step: StepBase, items: int) -> str | None:
    """The warning of a fan-out of ``items`` whose state writes over ``result`` cannot
    take them all."""
    found = result_capacity(loaded, step)
    if found is None or items <= found[0]:
        return None
    most, steps = found
    return (
        f"its state_update reads `result` as a whole (one entry per item): it has"
        f" {items:,} items, but an"
        f" expression's budget ({LIMITS.max_steps:,} steps of work) takes at most about"
        f" {most:,} items ({steps:.1f} steps each, fewer items the larger their state);"
        " beyond that the step fails after every item ran. Count inside the items, or leave"
        " `result` unread (the coordinator then keeps counts only)"
    )
