"""Circuit breakers: stop calling a dependency that keeps failing.

A breaker is *closed* (calls go through; consecutive failures are counted), *open* (calls fail
fast with :class:`CircuitOpenError` until ``reset_timeout`` has passed) or *half-open* (one
probe call goes through: success closes the breaker, failure opens it again). Every step and
parallel item naming a breaker shares it; its state is kept in the run store between runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wfkit.errors import CircuitOpenError
from wfkit.language.models import CircuitBreakerSpec


@dataclass
class Breaker:
    """One named breaker's state."""

    name: str
    spec: CircuitBreakerSpec
    state: str = "closed"
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False

    def snapshot(self) -> dict[str, object]:
        """The state as stored."""
        return {"state": self.state, "failures": self.failures, "opened_at": self.opened_at}

    def before_call(self, now: float, step_id: str) -> bool:
        """Let a call through (True when its state changed) or raise CircuitOpenError."""
        changed = False
        if self.state == "open":
            remaining = self.opened_at + self.spec.reset_timeout - now
            if remaining > 0:
                raise CircuitOpenError(
                    f"circuit breaker {self.name!r} is open after {self.failures} failures; "
                    f"next probe in {remaining:.1f} s",
                    step_id=step_id,
                )
            self.state, self.probing, changed = "half_open", False, True
        if self.state == "half_open":
            if self.probing:
                raise CircuitOpenError(
                    f"circuit breaker {self.name!r} is half-open and its probe is in flight",
                    step_id=step_id,
                )
            self.probing = True
        return changed

    def record(self, ok: bool, now: float) -> bool:
        """Count a call's outcome; True when the breaker's state changed."""
        before = (self.state, self.failures)
        self.probing = False
        if ok:
            self.state, self.failures = "closed", 0
        elif self.state == "half_open":
            self.state, self.opened_at = "open", now
        else:
            self.failures += 1
            if self.failures >= self.spec.failure_threshold:
                self.state, self.opened_at = "open", now
        return (self.state, self.failures) != before


class Breakers:
    """The breakers of one run, created from the workflow's config and stored state."""

    def __init__(
        self,
        specs: dict[str, CircuitBreakerSpec],
        stored: dict[str, dict[str, object]],
        clock: Callable[[], float],
        on_change: Callable[[Breaker], None],
    ) -> None:
        self.clock = clock
        self.on_change = on_change
        self.items: dict[str, Breaker] = {}
        for name, spec in specs.items():
            breaker = Breaker(name, spec)
            saved = stored.get(name)
            if saved:
                breaker.state = str(saved.get("state", "closed"))
                breaker.failures = int(saved.get("failures", 0))  # type: ignore[call-overload]
                breaker.opened_at = float(saved.get("opened_at", 0.0))  # type: ignore[arg-type]
                if breaker.state == "half_open":  # a probe of an ended run is not in flight
                    breaker.state = "open"
            self.items[name] = breaker

    def before_call(self, name: str, step_id: str) -> None:
        """Raise CircuitOpenError unless the named breaker lets a call through."""
        breaker = self.items[name]
        if breaker.before_call(self.clock(), step_id):
            self.on_change(breaker)

    def record(self, name: str, ok: bool) -> None:
        """Count one call's outcome."""
        breaker = self.items[name]
        if breaker.record(ok, self.clock()):
            self.on_change(breaker)
