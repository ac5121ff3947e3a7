"""Error policy as data: what a step does when an attempt fails.

A step's inline fields and its ``error_handler:`` block are merged once, at load, into an
:class:`ErrorPolicy`. :func:`retry_verdict` is the one place that classifies an error as worth
another attempt (and says why), and :meth:`RetryPolicy.delay_ms` the one formula for waits
(``explain`` shows the same schedule).

Delay before retry ``n`` (1-based), in milliseconds::

    min(retry_delay * retry_backoff ** (n - 1), retry_max_delay) + jitter(n)

where ``jitter(n)`` is uniform in ``[0, retry_jitter]``, drawn from a generator seeded by
``(seed, step id, n)`` so a run, its resume and its tests see the same delays.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wfkit.errors import ERROR_TYPES, ExpressionError, StepError, WfkitError
from wfkit.language.expressions import Expr, Value, truthy
from wfkit.language.models import StepBase

DEFAULT_RETRY_COUNT = 3
DEFAULT_RETRY_DELAY_MS = 1000


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, how long between them, and which errors qualify."""

    attempts: int
    delay_ms: int
    backoff: float
    max_delay_ms: int
    jitter_ms: int
    retry_on_types: tuple[type[WfkitError], ...] | None = None
    retry_on_expr: Expr | None = None

    def base_delay_ms(self, retry: int) -> float:
        """The delay before retry ``retry`` (1-based), without jitter."""
        try:
            delay = self.delay_ms * self.backoff ** (retry - 1)
        except OverflowError:
            return float(self.max_delay_ms)
        return float(min(delay, self.max_delay_ms))

    def delay_ms_for(self, retry: int, seed: str, step_id: str) -> float:
        """The delay before retry ``retry``, with its deterministic jitter."""
        jitter = 0.0
        if self.jitter_ms:
            digest = hashlib.blake2b(f"{seed}/{step_id}/{retry}".encode(), digest_size=8)
            jitter = random.Random(digest.digest()).uniform(0, self.jitter_ms)
        return self.base_delay_ms(retry) + jitter

    def schedule_ms(self) -> list[float]:
        """Delays before each retry, without jitter (``explain``'s retry schedule)."""
        return [self.base_delay_ms(n) for n in range(1, self.attempts)]

    def worst_case_wait_ms(self) -> float:
        """All waits at their largest jitter."""
        return sum(self.schedule_ms()) + self.jitter_ms * (self.attempts - 1)


@dataclass(frozen=True)
class ErrorPolicy:
    """What to do when the step fails (SPEC section 3, common fields)."""

    strategy: str  # fail | continue | retry | fallback
    retry: RetryPolicy | None
    fallback: Value | None
    error_state_path: str | None

    @property
    def attempts(self) -> int:
        """Attempts in all (1 without retries)."""
        return self.retry.attempts if self.retry else 1

    @property
    def recovers(self) -> bool:
        """Whether a final failure becomes a result instead of failing the run."""
        return self.strategy in ("continue", "fallback") or self.fallback is not None


FAIL = ErrorPolicy("fail", None, None, None)


def policy_of(step: StepBase, retry_on: Expr | None) -> ErrorPolicy:
    """Merge a step's inline error fields over its ``error_handler`` block.

    Retries happen under ``retry``, or under ``continue``/``fallback`` when a
    ``retry_count`` is given. ``fallback_value`` (when given) is the result of a step that
    finally failed under any strategy but ``fail``.
    """
    block = step.error_handler
    set_fields = step.model_fields_set
    strategy = step.on_error or (block.strategy if block else "fail")
    count = (
        step.retry_count
        if "retry_count" in set_fields
        else (block.retry_count if block and block.retry_count is not None else None)
    )
    delay = (
        step.retry_delay
        if "retry_delay" in set_fields
        else (block.retry_delay if block and block.retry_delay is not None else None)
    )
    has_fallback = "fallback_value" in set_fields or (
        block is not None and "fallback_value" in block.model_fields_set
    )
    fallback_source = (
        step.fallback_value
        if "fallback_value" in set_fields
        else (block.fallback_value if block is not None else None)
    )
    retries = count if count is not None else (DEFAULT_RETRY_COUNT if strategy == "retry" else 0)
    if strategy == "fail":
        retries = 0
    retry = None
    if retries > 0:
        delay_ms = delay if delay is not None else DEFAULT_RETRY_DELAY_MS
        types, expr = None, None
        if isinstance(step.retry_on, list):
            types = tuple(ERROR_TYPES[name] for name in step.retry_on)
        elif retry_on is not None:
            expr = retry_on
        retry = RetryPolicy(
            attempts=retries + 1,
            delay_ms=delay_ms,
            backoff=step.retry_backoff,
            max_delay_ms=step.retry_max_delay,
            jitter_ms=step.retry_jitter if step.retry_jitter is not None else delay_ms // 10,
            retry_on_types=types,
            retry_on_expr=expr,
        )
    fallback = Value(fallback_source) if has_fallback and strategy != "fail" else None
    if strategy == "fallback" and fallback is None:
        fallback = Value(None)
    return ErrorPolicy(
        strategy=strategy,
        retry=retry,
        fallback=fallback,
        error_state_path=block.error_state_path if block else None,
    )


def retry_verdict(
    error: StepError, policy: RetryPolicy, scope: Mapping[str, Any]
) -> tuple[bool, str]:
    """The one classification: is ``error`` worth another attempt under ``policy``, and why.

    Fatal errors never are. An explicit ``retry_on`` decides (types match subclasses; an
    expression sees ``error``); otherwise every error that is not permanent is retried.
    """
    if error.fatal:
        return False, f"{error.type_name} is fatal"
    if policy.retry_on_types is not None:
        names = ", ".join(t.__name__ for t in policy.retry_on_types)
        named = [t for t in policy.retry_on_types if isinstance(error, t)]
        # a permanent error is retried only when retry_on names it or a permanent ancestor:
        # `retry_on: [ToolError]` asks for transient tool failures, not refused arguments
        if any(not error.permanent or t.permanent for t in named):
            return True, f"{error.type_name} is in retry_on ({names})"
        if named:
            return False, f"{error.type_name} is permanent; retry_on names only its ancestor"
        return False, f"{error.type_name} is not in retry_on ({names})"
    if policy.retry_on_expr is not None:
        source = policy.retry_on_expr.source
        try:
            verdict = truthy(policy.retry_on_expr.render(scope))
        except ExpressionError as exc:  # the step fails with its own error, and says why
            return False, f"retry_on {source!r} could not be evaluated: {exc.message}"
        if verdict:
            return True, f"retry_on {source!r} is true"
        return False, f"retry_on {source!r} is false"
    if error.permanent:
        return False, f"{error.type_name} is permanent"
    return True, f"{error.type_name} is transient"
