"""Tracing: what each computed field, condition and retry decision saw and decided.

Off unless a run asks for it (``--trace`` or ``config.trace``). Records go to a bounded ring
buffer (the oldest are dropped and counted) with an optional sampling rate for transform
evaluations, and are stored with the run when it ends.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from wfkit.engine.state import TransformRecord, to_state_value
from wfkit.errors import WfkitError
from wfkit.language.expressions import Expr
from wfkit.language.models import TraceConfig
from wfkit.language.values import child


def _plain(value: Any) -> Any:
    """A JSON-safe copy (traces must not alias live state)."""
    try:
        return to_state_value(value)
    except WfkitError:
        return repr(value)


class Tracer:
    """Collects trace records of one run."""

    def __init__(self, config: TraceConfig) -> None:
        self.config = config
        self.records: deque[dict[str, Any]] = deque(maxlen=config.max_records)
        self.dropped = 0
        self.step_id: str | None = None
        self._seen = 0
        self._kept = 0

    def _keep(self, record: dict[str, Any]) -> None:
        if len(self.records) == self.records.maxlen:
            self.dropped += 1
        self.records.append(record)

    def merge(self, records: list[dict[str, Any]], dropped: int) -> None:
        """Add records a parallel item collected where it ran."""
        for record in records:
            self._keep(record)
        self.dropped += dropped

    def transform(self, record: TransformRecord) -> None:
        """A computed field evaluation (sampled at ``sample_rate``)."""
        self._seen += 1
        if self._kept >= self._seen * self.config.sample_rate:
            return  # sampling keeps an even share of evaluations
        self._kept += 1
        self._keep(
            {
                "kind": "transform",
                "field": record.field,
                "timestamp": time.time(),
                "trigger": record.trigger,
                "step_id": self.step_id,
                "input": _plain(record.input),
                "output": _plain(record.output),
                "duration_ms": round(record.duration_ms, 4),
                "dependencies": list(record.dependencies),
                "error": record.error,
            }
        )

    def condition(
        self,
        step_id: str,
        role: str,
        expr: Expr,
        scope: Mapping[str, Any],
        outcome: bool,
        duration_ms: float,
    ) -> None:
        """A condition (``if``, ``condition``, ``retry_on``) with its operands and outcome."""
        self._keep(
            {
                "kind": "condition",
                "step_id": step_id,
                "role": role,
                "expression": expr.source,
                "operands": {ref: _plain(_lookup(scope, ref)) for ref in sorted(expr.references)},
                "outcome": outcome,
                "timestamp": time.time(),
                "duration_ms": round(duration_ms, 4),
            }
        )

    def retry(
        self,
        step_id: str,
        attempt: int,
        error_type: str,
        retried: bool,
        reason: str,
        delay_ms: float | None,
    ) -> None:
        """Whether a failed attempt was retried, and why (or why not)."""
        self._keep(
            {
                "kind": "retry",
                "step_id": step_id,
                "attempt": attempt,
                "error_type": error_type,
                "retried": retried,
                "reason": reason,
                "delay_ms": delay_ms,
                "timestamp": time.time(),
            }
        )


def _lookup(scope: Mapping[str, Any], path: str) -> Any:
    head, *rest = path.split(".")
    value = scope.get(head)
    for part in rest:
        value = child(value, part)
    return value


DECISION_RECORDS = 10_000
"""Decisions kept per run (the latest: ``why`` asks about a step's last execution)."""

OPERAND_CHARS = 500
"""An operand whose JSON is longer is kept as a shortened text: decisions stay small."""


def _small(value: Any) -> Any:
    """A JSON-safe, bounded copy of an operand."""
    plain = _plain(value)
    text = json.dumps(plain, default=repr)
    if len(text) <= OPERAND_CHARS:
        return plain
    return {"truncated": text[:OPERAND_CHARS], "chars": len(text)}


class DecisionLog:
    """Why steps ran, were skipped, retried or not, recovered or were cancelled.

    Always on (unlike :class:`Tracer`): each record is a few operands and a verdict, and the
    log keeps the latest :data:`DECISION_RECORDS`. Stored with the run as trace rows of
    kind ``decision`` (``wfkit why`` reads them; traces and metrics do not).
    """

    def __init__(self, limit: int = DECISION_RECORDS) -> None:
        self.records: deque[dict[str, Any]] = deque(maxlen=limit)
        self.dropped = 0

    def _keep(self, decision: str, step_id: str, **fields: Any) -> None:
        if len(self.records) == self.records.maxlen:
            self.dropped += 1
        self.records.append(
            {
                "kind": "decision",
                "decision": decision,
                "step_id": step_id,
                "timestamp": time.time(),
                **fields,
            }
        )

    def condition(
        self, step_id: str, role: str, expr: Expr, scope: Mapping[str, Any], outcome: bool
    ) -> None:
        """A condition with its operand values and outcome."""
        operands: dict[str, Any] = {}
        for ref in sorted(expr.references):
            try:
                operands[ref] = _small(_lookup(scope, ref))
            except WfkitError:  # pragma: no cover - a reference the render just resolved
                operands[ref] = None
        self._keep(
            "condition",
            step_id,
            role=role,
            expression=expr.source,
            operands=operands,
            outcome=outcome,
        )

    def retry(
        self,
        step_id: str,
        attempt: int,
        error_type: str,
        retried: bool,
        reason: str,
        delay_ms: float | None,
        retry_on: str | None,
    ) -> None:
        """The retry verdict after a failed attempt."""
        self._keep(
            "retry",
            step_id,
            attempt=attempt,
            error_type=error_type,
            retried=retried,
            reason=reason,
            delay_ms=delay_ms,
            retry_on=retry_on,
        )

    def recovered(self, step_id: str, strategy: str, error_type: str, fallback: bool) -> None:
        """A final failure the step's policy turned into a result (fallback or continue)."""
        self._keep(
            "recovered", step_id, strategy=strategy, error_type=error_type, fallback=fallback
        )

    def fail_fast(
        self, step_id: str, item: int, error_type: str, message: str, branch: str | None = None
    ) -> None:
        """A ``fail_fast`` parallel step cancelled its items (or branches) in flight after
        item's failure (for a ``parallel`` step, the item is the branch at that position)."""
        extra = {"branch": branch} if branch is not None else {}
        self._keep("fail_fast", step_id, item=item, error_type=error_type, message=message, **extra)

    def breaker(self, step_id: str, name: str, state: str, failures: int) -> None:
        """A step's circuit breaker, as it stood when an attempt of the step was decided."""
        self._keep("breaker", step_id, name=name, state=state, failures=failures)

    def injected(self, step_id: str, attempt: int, fault: str) -> None:
        """An injected fault hit an attempt of the step (or a tool call inside it)."""
        self._keep("injected", step_id, attempt=attempt, fault=fault)

    def merge(self, records: list[dict[str, Any]], dropped: int) -> None:
        """Add decisions a parallel item recorded where it ran."""
        for record in records:
            if len(self.records) == self.records.maxlen:
                self.dropped += 1
            self.records.append(record)
        self.dropped += dropped

    def stored(self) -> list[dict[str, Any]]:
        """The records to store (a note of the dropped ones first)."""
        head = [{"kind": "decision", "decision": "dropped", "step_id": None, "count": self.dropped}]
        return (head if self.dropped else []) + list(self.records)
