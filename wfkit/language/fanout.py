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
from wfkit.language.plan import references_in, under

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


def _spent(value: Any, count: int) -> list[int] | None:
    """Steps, bytes and output characters one value costs over ``count`` minimal entries;
    None when it cannot be evaluated without the run (it reads what only the run has) or
    the budget does not take them."""
    scope = {"result": _entries(count)}
    try:
        with metered() as meter:
            value.render(scope)
    except Exception:
        return None
    return meter


def _capacity(value: Any) -> tuple[int, float] | None:
    """The most items one value's evaluation takes within its budget, and its steps per
    item (``_spent`` over no entries and over the largest sample the budget takes)."""
    none = _spent(value, 0)
    sample, many = next(
        ((n, spent) for n in (SAMPLE, SAMPLE // 10, SAMPLE // 100) if (spent := _spent(value, n))),
        (0, None),
    )
    if none is None or many is None:
        return None
    per = [(many[k] - none[k]) / sample for k in range(3)]
    bounds = (LIMITS.max_steps, LIMITS.max_bytes, LIMITS.max_chars)
    most = min(
        bound / cost if cost > 0 else float("inf") for bound, cost in zip(bounds, per, strict=True)
    )
    return (int(most), per[0]) if most < LIMITS.max_items else None


def result_capacity(loaded: LoadedWorkflow, step: StepBase) -> tuple[int, float] | None:
    """The most items whose result the step's own state writes can read as a whole within
    an expression's budget (each write has its own), and the steps of work each item costs
    the write that takes the fewest; None when they do not read it, cannot be measured, or
    take more items than a list may hold. Measured once per step."""
    key = ("result_capacity", id(step))
    if key in loaded.memo:
        return loaded.memo[key]  # type: ignore[no-any-return]
    plan = loaded.plans.get(id(step))
    values = [
        part
        for update in (plan.compiled.get("updates", []) if plan is not None else [])
        for part in (update.path, update.value, update.by)
        if any(under(ref, "result") for ref in references_in(part))
    ]
    found = [c for c in map(_capacity, values) if c is not None]
    loaded.memo[key] = min(found) if found else None
    return loaded.memo[key]  # type: ignore[no-any-return]


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
        f" expression's budget ({LIMITS.max_steps:,} steps of work, its memory and output)"
        f" takes at most about {most:,} items ({steps:.1f} steps each, fewer items the larger"
        " their state);"
        " beyond that the step fails after every item ran. Count inside the items, or leave"
        " `result` unread (the coordinator then keeps counts only)"
    )
