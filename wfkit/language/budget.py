"""The budget of one expression evaluation: steps of work, time, and the size of what it builds.

Every place where a template can loop or build a value charges the budget of the evaluation
in progress: each iteration of ``{% for %}``, each item a filter walks, each call and operator.
Exceeding any bound raises Jinja2's ``SecurityError``, which the expression layer turns into an
:class:`~wfkit.errors.ExpressionError`. Sizes are checked *before* the allocation where the
size can be known in advance (repetition, padding, joins, stringification), so a refused
expression never holds the memory it asked for.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2.exceptions import SecurityError


@dataclass(frozen=True)
class Limits:
    """Bounds on what a single expression evaluation may build or spend."""

    max_items: int = 1_000_000
    """Most items a list (or tuple) built by an expression may hold."""
    max_chars: int = 1_000_000
    """Most characters of a string built by an expression (the 1 MB result cap)."""
    max_int_bits: int = 10_000
    max_range: int = 100_000
    """Longest ``range``; also the most slices ``slice`` may make."""
    max_steps: int = 1_000_000
    """Steps of work: loop iterations, items walked by filters, calls and operators."""
    max_seconds: float = 2.0
    max_json_indent: int = 16


LIMITS = Limits()

CLOCK_EVERY = 32
"""Spends between two looks at the clock (a look costs about a microsecond)."""


class Budget:
    """What is left of one evaluation's steps and time."""

    __slots__ = ("chars", "deadline", "steps", "until_clock")

    def __init__(self, limits: Limits = LIMITS) -> None:
        self.steps = limits.max_steps
        self.chars = limits.max_chars
        # CPU time of this thread: the bound is on the work an expression does, so a busy
        # machine does not fail a legitimate expression that a quiet one runs in time
        self.deadline = time.thread_time() + limits.max_seconds
        self.until_clock = CLOCK_EVERY

    def spend(self, steps: int = 1) -> None:
        """Charge ``steps`` units of work; refuse once steps or time run out."""
        self.steps -= steps
        if self.steps < 0:
            raise SecurityError(f"expression did more than {LIMITS.max_steps} steps of work")
        self.until_clock -= 1
        if self.until_clock <= 0:
            self.until_clock = CLOCK_EVERY
            if time.thread_time() > self.deadline:
                raise SecurityError(
                    f"expression took longer than {LIMITS.max_seconds} s of CPU time"
                )


def emit(chars: int) -> None:
    """Charge the text one ``{{ }}`` outputs: all the output of one evaluation, kept in a
    block (``{% set %}``, a macro) or not, is at most the character cap."""
    budget = _current.get()
    if budget is not None:
        budget.chars -= chars
        if budget.chars < 0:
            raise SecurityError(f"expression output more than {LIMITS.max_chars} characters")


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "wfkit_budget", default=None
)


@contextlib.contextmanager
def budgeted() -> Iterator[Budget]:
    """A fresh budget for the evaluation (or compilation) inside the block."""
    budget = Budget()
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def spend(steps: int = 1) -> None:
    """Charge the current evaluation; outside any evaluation only sizes are bounded."""
    budget = _current.get()
    if budget is not None:
        budget.spend(steps)


class BudgetIterator:
    """An iterator that charges one step per item: loops and lazy filters cannot run free."""

    __slots__ = ("_it",)

    def __init__(self, iterable: Any) -> None:
        self._it = iter(iterable)

    def __iter__(self) -> BudgetIterator:
        return self

    def __next__(self) -> Any:
        spend()
        return next(self._it)


def check_items(size: int, what: str) -> None:
    """Refuse a sequence of ``size`` items before it is built."""
    if size > LIMITS.max_items:
        raise SecurityError(f"{what} would hold {size} items (limit {LIMITS.max_items})")


def check_chars(size: int, what: str) -> None:
    """Refuse a string of ``size`` characters before it is built."""
    if size > LIMITS.max_chars:
        raise SecurityError(f"{what} would be {size} characters long (limit {LIMITS.max_chars})")


def sized(value: Any) -> int:
    """The length of a string, bytes or container, else 0."""
    return len(value) if isinstance(value, (str, list, tuple, dict, bytes)) else 0


def text_weight(value: Any, limit: int | None = None) -> int:
    """An upper estimate of the characters ``str(value)`` or JSON of ``value`` would take.

    The walk stops as soon as the estimate passes ``limit`` (default: the character cap), so it
    costs at most that many steps even for a list holding the same huge string a thousand
    times; it is iterative, so deep nesting cannot exhaust the stack.
    """
    bound = LIMITS.max_chars if limit is None else limit
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item) + 2  # escapes can add a few times more: a bounded factor
        elif isinstance(item, Mapping):
            total += 2 + 4 * len(item)
            for key, child in item.items():
                stack.append(key)
                stack.append(child)
                if len(stack) > bound:
                    return bound + 1
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + 2 * len(item)
            stack.extend(item)
            if len(stack) > bound:
                return bound + 1
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 2
        else:
            total += 24
        if total > bound:
            return total
    return total


def check_text_weight(value: Any, what: str) -> None:
    """Refuse to turn ``value`` into text when the text could pass the character cap."""
    weight = text_weight(value)
    if weight > LIMITS.max_chars:
        raise SecurityError(
            f"{what} of a value this large is refused (over {LIMITS.max_chars} characters)"
        )
