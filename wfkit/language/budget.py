"""The budget of one expression evaluation: work, time, memory, and the size of what it builds.

Work is charged by the size of what an operation touches, not by the number of operations:
comparing, hashing, sorting, parsing or stringifying a value costs one step per
:data:`UNITS_PER_STEP` characters of it (a container's items weigh :data:`ITEM_UNITS` each, and
its items are weighed in turn), so a single C-level operation on a huge operand pays for its
size before it runs. Each iteration of ``{% for %}`` and each item a lazy filter yields costs a
step too. What an operation allocates is charged to a byte allowance *before* it is built where
the size can be known (repetition, padding, joins, formatting, case-folded sort keys), and
right after for results whose size only the operation knows.

Exceeding any bound raises Jinja2's ``SecurityError``, which the expression layer turns into an
:class:`~wfkit.errors.ExpressionError`. Every :data:`CLOCK_EVERY` spends the evaluation also
looks at the clock and at what the engine asked from outside: a signal (SIGINT, SIGTERM,
SIGHUP) or a passed step or run deadline raises :class:`Interrupted`, which the engine turns
into the cancellation or timeout it stands for. Since every operation is charged before it
runs, no operation runs long between two looks.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import time
from collections.abc import Collection, Iterator, Mapping, Set
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
    max_bytes: int = 64 * 1024 * 1024
    """Most bytes one evaluation may allocate (counted as it allocates, never given back)."""


LIMITS = Limits()

CLOCK_EVERY = 32
"""Spends between two looks at the clock (a look costs about a microsecond)."""

UNITS_PER_STEP = 256
"""Characters an operation may touch for one step: C code compares, hashes or copies a few
hundred characters in the time the interpreter takes for one step of template code."""

ITEM_UNITS = 16
"""What one item of a container weighs, beside its own weight: visiting it in C costs about
as much as touching sixteen characters."""

ITEM_BYTES = 40
"""Bytes charged for each item of a list an operation builds: its slot and a small object."""

WALK_CLOCK_EVERY = 4096
"""Items weighed between two looks at the clock while weighing a large value."""


class Interrupted(BaseException):
    """The engine asked the evaluation in progress to stop: a signal arrived, or a step or
    run deadline passed. A ``BaseException`` (like ``KeyboardInterrupt``), so no handler for
    ordinary errors inside a template or a filter swallows it."""


class Deadline:
    """A wall-clock time (``time.monotonic``) after which evaluations inside its scope stop;
    it fires once, as an asyncio timeout cancels once, so ``finally`` and cleanup still run."""

    __slots__ = ("at", "outer")

    def __init__(self, at: float, outer: Deadline | None) -> None:
        self.at = at
        self.outer = outer

    def passed(self, now: float) -> bool:
        deadline: Deadline | None = self
        while deadline is not None:
            if now >= deadline.at:
                deadline.at = math.inf
                return True
            deadline = deadline.outer
        return False


_deadline: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "wfkit_deadline", default=None
)
_allowance: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "wfkit_allowance", default=None
)


def memory_allowance(size: int) -> None:
    """Let evaluations from here on allocate at most ``size`` bytes (less than their own
    bound): the engine passes what is left under ``max_memory_mb`` before each step."""
    _allowance.set(max(size, 0))


_signals = [0]
"""Signals received so far (the engine's handler counts them): an evaluation that began before
the latest one stops; one that begins after it (``finally``, cleanup) runs."""


def interrupt() -> None:
    """Stop every evaluation in progress at its next look at the clock (signal-handler safe)."""
    _signals[0] += 1


@contextlib.contextmanager
def deadline_in(seconds: float | None) -> Iterator[None]:
    """Evaluations inside the block stop once ``seconds`` have passed (None: no deadline)."""
    if seconds is None:
        yield
        return
    token = _deadline.set(Deadline(time.monotonic() + seconds, _deadline.get()))
    try:
        yield
    finally:
        _deadline.reset(token)


class Budget:
    """What is left of one evaluation's steps, time and memory."""

    __slots__ = ("allowed", "bytes", "chars", "deadline", "signals", "steps", "until_clock", "wall")

    def __init__(self, limits: Limits | None = None) -> None:
        limits = limits or LIMITS
        self.steps = limits.max_steps
        self.chars = limits.max_chars
        allowance = _allowance.get()
        self.bytes = limits.max_bytes if allowance is None else min(limits.max_bytes, allowance)
        self.allowed = self.bytes
        # CPU time of this thread: the bound is on the work an expression does, so a busy
        # machine does not fail a legitimate expression that a quiet one runs in time
        self.deadline = time.thread_time() + limits.max_seconds
        self.until_clock = CLOCK_EVERY
        self.signals = _signals[0]
        self.wall = _deadline.get()

    def spend(self, steps: int = 1) -> None:
        """Charge ``steps`` units of work; refuse once steps or time run out."""
        self.steps -= steps
        if self.steps < 0:
            raise SecurityError(f"expression did more than {LIMITS.max_steps} steps of work")
        self.until_clock -= 1
        if self.until_clock <= 0:
            self.look()

    def look(self) -> None:
        """Look at the clock and at what the engine asked: refuse past the CPU-time bound,
        stop on a signal or a passed deadline."""
        self.until_clock = CLOCK_EVERY
        if self.signals != _signals[0]:
            self.signals = _signals[0]
            raise Interrupted("a signal arrived")
        if self.wall is not None and self.wall.passed(time.monotonic()):
            raise Interrupted("a deadline passed")
        if time.thread_time() > self.deadline:
            raise SecurityError(f"expression took longer than {LIMITS.max_seconds} s of CPU time")

    def allocate(self, size: int, what: str) -> None:
        """Charge ``size`` bytes about to be allocated; refuse past the allowance."""
        self.bytes -= size
        if self.bytes < 0:
            whose = "its" if self.allowed == LIMITS.max_bytes else "what max_memory_mb leaves,"
            raise SecurityError(
                f"{what} would take the expression past {whose} {self.allowed // 1024} KiB"
                " of memory"
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


#: steps and bytes spent by the evaluations inside a ``metered`` block, when one is open
_meter: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "wfkit_meter", default=None
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
        meter = _meter.get()
        if meter is not None:
            meter[0] += LIMITS.max_steps - budget.steps
            meter[1] += budget.allowed - budget.bytes
            meter[2] += LIMITS.max_chars - budget.chars


@contextlib.contextmanager
def metered() -> Iterator[list[int]]:
    """``[steps, bytes, chars]`` that the evaluations inside the block spent (to measure
    what an expression costs per item of its operand)."""
    meter = [0, 0, 0]
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)


def spend(steps: int = 1) -> None:
    """Charge the current evaluation; outside any evaluation only sizes are bounded."""
    budget = _current.get()
    if budget is not None:
        budget.spend(steps)


def allocate(size: int, what: str) -> None:
    """Charge the current evaluation ``size`` bytes it is about to allocate."""
    budget = _current.get()
    if budget is not None:
        budget.allocate(size, what)


def weight(value: Any, limit: int) -> int:
    """What touching all of ``value`` costs, in characters (see :data:`UNITS_PER_STEP`).

    Strings weigh their length, integers their bytes, containers :data:`ITEM_UNITS` per item
    plus their items' weights, ranges their length times :data:`ITEM_UNITS`. Shared items are
    weighed each time they appear, as C code touches them each time. The walk is iterative,
    stops once the weight passes ``limit``, and looks at the clock as it goes, so weighing
    costs at most the bound it protects.
    """
    kind = type(value)
    if kind is str:
        return len(value)
    if kind is int or kind is bool:
        bits: int = value.bit_length()
        return bits // 8 + 1
    if kind is float or value is None:
        return 1
    total = 0
    stack = [value]
    walked = 0
    budget = _current.get()
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bytes:
            total += len(item) + 1
        elif kind is dict:
            total += ITEM_UNITS * len(item) + 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            total += ITEM_UNITS * len(item) + 1
            stack.extend(item)
        elif kind is int or kind is bool:
            total += item.bit_length() // 8 + 1
        elif kind is float or item is None:
            total += 1
        elif isinstance(item, (str, bytes)):
            total += len(item) + 1
        elif isinstance(item, int):
            total += item.bit_length() // 8 + 1
        elif isinstance(item, Mapping):
            total += ITEM_UNITS * len(item) + 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, range):
            total += ITEM_UNITS * len(item) + 1
        elif isinstance(item, Collection):  # sets, tuples, dict views: every item counts
            total += ITEM_UNITS * len(item) + 1
            stack.extend(item)
        else:
            total += ITEM_UNITS
        if total > limit:
            return total
        walked += 1
        if budget is not None and walked % WALK_CLOCK_EVERY == 0:
            budget.look()
    return total


def charge(*values: Any) -> None:
    """Charge the current evaluation for an operation that touches all of ``values``: one
    step, and one more per :data:`UNITS_PER_STEP` characters of their weight."""
    budget = _current.get()
    if budget is None:
        return
    limit = max(budget.steps, 0) * UNITS_PER_STEP
    units = 0
    for value in values:
        units += weight(value, limit - units)
        if units > limit:
            _too_heavy(units)
    budget.spend(1 + units // UNITS_PER_STEP)


def _too_heavy(units: int) -> None:
    raise SecurityError(
        f"an operation would touch operands of over {units} characters (each item counted),"
        " more work than the expression has left"
    )


def charge_sort(value: Any) -> None:
    """Charge sorting (or grouping) ``value``: its weight once per level of the comparison
    tree (n log n comparisons, each touching at most both items)."""
    count = len(value) if isinstance(value, (list, tuple, Mapping, Set, range)) else 1
    levels = max(1, count.bit_length())
    budget = _current.get()
    if budget is None:
        return
    limit = max(budget.steps, 0) * UNITS_PER_STEP // levels
    units = weight(value, limit + 1)
    if units > limit:
        _too_heavy(units)
    budget.spend(1 + units * levels // UNITS_PER_STEP)


def folded_bytes(value: Any) -> int:
    """Bytes of the case-folded copies of the strings among ``value``'s items (what a
    case-insensitive sort, ``unique``, ``min``/``max`` or ``groupby`` builds as keys)."""
    items = value.values() if isinstance(value, Mapping) else value
    if not isinstance(items, (list, tuple, Set, type({}.values()))):
        return 0
    total = 0
    for item in items:
        if isinstance(item, str):
            total += len(item) + 49
        elif isinstance(item, (list, tuple)):  # dictsort's (key, value) pairs
            total += sum(len(part) + 49 for part in item if isinstance(part, str))
    return total


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
    """Refuse a sequence of ``size`` items before it is built, and charge its memory."""
    limit_items(size, what)
    allocate(8 * size, what)


def limit_items(size: int, what: str) -> None:
    """Refuse a sequence that would hold ``size`` items (a growing one: no memory charged)."""
    if size > LIMITS.max_items:
        raise SecurityError(f"{what} would hold {size} items (limit {LIMITS.max_items})")


def check_chars(size: int, what: str) -> None:
    """Refuse a string of ``size`` characters before it is built, and charge its memory."""
    limit_chars(size, what)
    allocate(size, what)


def limit_chars(size: int, what: str) -> None:
    """Refuse a string of ``size`` characters (one that exists already: no memory charged)."""
    if size > LIMITS.max_chars:
        raise SecurityError(f"{what} would be {size} characters long (limit {LIMITS.max_chars})")


def sized(value: Any) -> int:
    """The length of a string, bytes, container or range, else 0."""
    return len(value) if isinstance(value, (str, list, tuple, dict, bytes, range)) else 0


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
        elif isinstance(item, Collection) and not isinstance(item, range):  # views too
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
    """Refuse to turn ``value`` into text when the text could pass the character cap; charge
    the text's memory."""
    size = text_weight(value)
    if size > LIMITS.max_chars:
        raise SecurityError(
            f"{what} of a value this large is refused (over {LIMITS.max_chars} characters)"
        )
    allocate(size, what)
