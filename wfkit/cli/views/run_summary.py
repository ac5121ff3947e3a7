"""What the human run report shows of a run of any size: counts, and the steps worth a look.

A run's report lists one entry per step id, which can be tens of thousands; a table of all of
them takes seconds to draw and nobody reads it. The report instead shows a summary line, the
failed, retried and slowest steps (a bounded number of each), and how many it left out;
``--steps all`` asks for every row. Picking the rows is one pass over the steps; drawing them
costs the same whatever the run's size. Plain Python: :mod:`wfkit.cli.views.run` draws the
result.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wfkit.commands.results import StepSummary

FAILED = ("failed", "timed_out", "cancelled")
STATUS_ORDER = ("succeeded", "failed", "timed_out", "cancelled", "skipped", "running", "waiting")
ALL_ROWS_UP_TO = 10
"""A run with this many step ids or fewer shows them all: there is nothing to leave out."""
FAILED_ROWS = 5
RETRIED_ROWS = 5
SLOWEST_ROWS = 5
ERRORS_HEAD = 5
ERRORS_TAIL = 5
STATE_ROWS = 20
WARNING_ROWS = 10


@dataclass(frozen=True)
class StepDigest:
    """The rows to show, in run order, and what the rest add up to."""

    rows: list[StepSummary]
    total: int
    statuses: Counter[str]
    executions: int
    attempts: int

    @property
    def left_out(self) -> int:
        """Step ids not shown."""
        return self.total - len(self.rows)

    def summary_line(self) -> str:
        """``12 steps: 10 succeeded, 1 failed, 1 skipped; 40 executions, 42 attempts``."""
        known = [s for s in STATUS_ORDER if self.statuses.get(s)]
        other = sorted(s for s in self.statuses if s not in STATUS_ORDER)
        counts = ", ".join(f"{self.statuses[s]} {s}" for s in (*known, *other))
        return (
            f"{_count(self.total, 'step')}: {counts or 'none ran'}; "
            f"{_count(self.executions, 'execution')}, {_count(self.attempts, 'attempt')}"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def digest_steps(steps: Sequence[StepSummary], full: bool = False) -> StepDigest:
    """The failed, retried and slowest steps (all of them when ``full`` or few), counted."""
    statuses: Counter[str] = Counter()
    executions = attempts = 0
    failed: list[int] = []
    retried: list[int] = []
    for index, step in enumerate(steps):
        outcome = step.outcome  # the same whatever order its executions finished in
        statuses[outcome] += 1
        executions += step.executions
        attempts += step.attempts
        if outcome in FAILED and len(failed) < FAILED_ROWS:
            failed.append(index)
        elif step.attempts > 1 and len(retried) < RETRIED_ROWS:
            retried.append(index)
    if full or len(steps) <= ALL_ROWS_UP_TO:
        rows = list(steps)
    else:
        slowest = heapq.nlargest(
            SLOWEST_ROWS, range(len(steps)), key=lambda i: steps[i].duration_ms
        )
        rows = [steps[i] for i in sorted({*failed, *retried, *slowest})]
    return StepDigest(rows, len(steps), statuses, executions, attempts)


def head_and_tail(count: int, full: bool = False) -> tuple[range, range]:
    """Indices of the failed attempts to list: the first and the last (the one that ended it)."""
    if full or count <= ERRORS_HEAD + ERRORS_TAIL:
        return range(count), range(0)
    return range(ERRORS_HEAD), range(count - ERRORS_TAIL, count)
