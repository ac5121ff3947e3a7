"""Workflow state: read-only inputs, writable raw values and derived computed fields.

Reads are flattened (``attempts`` is ``raw.attempts``) through one dict kept in step with
every write. Writes go through :meth:`State.write`, which type-checks against the schema, keeps
an undo log so a failed write (or a failed recomputation) leaves the state exactly as it was,
and recomputes only the computed fields downstream of what changed, in dependency order.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from wfkit.errors import StateError, StateSizeLimitError, WfkitError
from wfkit.language.expressions import Scope, make_scope
from wfkit.language.stateplan import ComputedPlan, StatePlan
from wfkit.language.values import (
    MISSING,
    TIER_OVERHEAD,
    ZERO_VALUES,
    Undo,
    a_type,
    apply_write,
    child,
    entry_size,
    json_type,
    matches_type,
    parse_path,
    to_state_value,
    writable_path,
    zero_value,
)

__all__ = [
    "MISSING",
    "ZERO_VALUES",
    "SizeLimits",
    "State",
    "TransformRecord",
    "json_type",
    "matches_type",
    "parse_path",
    "to_state_value",
    "writable_path",
    "zero_value",
]

_MISSING = MISSING


@dataclass(frozen=True)
class TransformRecord:
    """One evaluation of a computed field (the shape ``trace`` shows)."""

    field: str
    trigger: str
    input: Any
    output: Any
    duration_ms: float
    dependencies: tuple[str, ...]
    error: str | None = None


@dataclass(frozen=True)
class SizeLimits:
    """``config.max_state_bytes`` and ``config.state_warn_bytes`` (JSON size of the state)."""

    max_bytes: int | None = None
    warn_bytes: int | None = None


class State:
    """The live state of one run (or one parallel item)."""

    def __init__(
        self,
        plan: StatePlan,
        inputs: dict[str, Any],
        raw: dict[str, Any] | None = None,
        computed: dict[str, Any] | None = None,
        limits: SizeLimits | None = None,
        on_warning: Callable[[str], None] | None = None,
        on_transform: Callable[[TransformRecord], None] | None = None,
    ) -> None:
        self.plan = plan
        self.limits = limits or SizeLimits()
        self.on_warning = on_warning
        self._warned = False
        self._sizes: dict[tuple[str, str], int] = {}
        self.size = 0
        self.inputs = inputs
        self.raw: dict[str, Any] = (
            raw if raw is not None else to_state_value(plan.raw_defaults, "default_state")
        )
        self.computed: dict[str, Any] = dict(computed or {})
        self.on_transform = on_transform
        #: (tier, top-level name) written since the last checkpoint took them
        self.changed: set[tuple[str, str]] = set()
        #: undo steps of the writes of an open :meth:`atomic` block
        self._journal: list[tuple[Undo, str]] | None = None
        self.flat: dict[str, Any] = {}
        self._rebuild_flat()
        self._scope = make_scope(self.flat)
        if computed is None:
            self._recompute({c.name for c in plan.computed}, "initial state")
        self._measure_all()

    def _measure_all(self) -> None:
        """JSON size of every top-level value; raises when over ``max_bytes``."""
        self._sizes = {
            (tier, name): entry_size(name, value)
            for tier, values in (
                ("inputs", self.inputs),
                ("raw", self.raw),
                ("computed", self.computed),
            )
            for name, value in values.items()
        }
        self.size = TIER_OVERHEAD + sum(self._sizes.values())
        self._check_size(self.size, "the initial state")

    def _check_size(self, total: int, what: str) -> None:
        limits = self.limits
        if limits.max_bytes is not None and total > limits.max_bytes:
            raise StateSizeLimitError(
                f"{what} would make the state {total} bytes, over max_state_bytes="
                f"{limits.max_bytes}"
            )
        if limits.warn_bytes is not None and total > limits.warn_bytes and not self._warned:
            self._warned = True
            if self.on_warning is not None:
                self.on_warning(
                    f"state is {total} bytes, over state_warn_bytes={limits.warn_bytes}"
                )

    def _rebuild_flat(self) -> None:
        flat = self.flat  # in place: scopes built on it keep seeing it
        flat.clear()
        flat.update(self.inputs)
        flat.update(self.raw)
        flat.update(self.computed)
        flat["inputs"] = self.inputs
        flat["raw"] = self.raw
        flat["computed"] = self.computed

    def scope(self, local: Mapping[str, Any] | None = None) -> Scope:
        """What expressions see: the flattened state, under ``local`` names if given."""
        return self._scope.new_child(dict(local)) if local else self._scope

    def snapshot(self) -> dict[str, Any]:
        """The three tiers (shared, not copied: serialize before the next write)."""
        return {"inputs": self.inputs, "raw": self.raw, "computed": self.computed}

    def restore(self, raw: dict[str, Any], computed: dict[str, Any]) -> None:
        """Overlay checkpointed values (``MISSING`` deletes) on the initial state."""
        for values, target in ((raw, self.raw), (computed, self.computed)):
            for name, value in values.items():
                if value is MISSING:
                    target.pop(name, None)
                else:
                    target[name] = value
        self._rebuild_flat()
        self.changed.clear()
        self._measure_all()

    def refresh_inputs(self, names: list[str]) -> None:
        """Recompute the fields that read these inputs (a resume changed them)."""
        seeds = {c for name in names for c in self.plan.dependents.get(f"inputs.{name}", ())}
        if seeds:
            self._recompute(seeds, "inputs changed on resume")

    def changed_bytes(self) -> int:
        """Bytes of the values the next checkpoint encodes (their measured JSON sizes)."""
        return sum(self._sizes.get(key, 0) for key in self.changed)

    def take_changes(self) -> dict[tuple[str, str], Any]:
        """Values written since the last call (``MISSING`` for deleted names)."""
        changes = {}
        for tier, name in self.changed:
            values = self.raw if tier == "raw" else self.computed
            changes[(tier, name)] = values.get(name, MISSING)
        self.changed.clear()
        return changes

    def read(self, path: str) -> Any:
        """The value at a qualified or flattened path; ``None`` below a missing key."""
        parts = parse_path(path)
        head = parts[0]
        if head in ("inputs", "raw", "computed"):
            current: Any = self.flat[head]
            rest = parts[1:]
        else:
            current, rest = self.flat.get(str(head)), parts[1:]
        for part in rest:
            current = child(current, part)
        return current

    # writing ---------------------------------------------------------------------------

    def write(self, path: str, operation: str = "set", value: Any = None, by: Any = None) -> None:
        """Apply one operation at a ``raw.`` path, all or nothing."""
        parts = writable_path(path)
        undo: Undo = []
        top = str(parts[1])
        touched: list[tuple[str, str]] = [("raw", top)]
        try:
            delta = apply_write(self.raw, parts[1:], operation, value, by, path, undo)
            declared = self.plan.raw_types.get(top)
            if declared and top in self.raw and not matches_type(self.raw[top], declared):
                raise StateError(
                    f"cannot write {path!r}: raw.{top} is declared {declared}, "
                    f"the write would make it {a_type(self.raw[top])}"
                )
            self._sync_flat(top)
            affected = self.plan.dependents.get(f"raw.{top}")
            if affected:
                self._recompute(set(affected), f"raw.{top} update", undo, touched)
            self._resize(touched, delta, path)
            self.changed.update(touched)
            if self._journal is not None:
                self._journal.append((undo, top))
        except BaseException:
            for step in reversed(undo):
                step()
            self._sync_flat(top)
            raise

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Several writes as one: when one fails, none of them stays applied."""
        if self._journal is not None:  # nested: the outer block decides
            yield
            return
        journal: list[tuple[Undo, str]] = []
        self._journal = journal
        sizes, size = dict(self._sizes), self.size
        try:
            yield
        except BaseException:
            for undo, top in reversed(journal):
                for step in reversed(undo):
                    step()
                self._sync_flat(top)
            self._sizes, self.size = sizes, size
            raise
        finally:
            self._journal = None

    def _sync_flat(self, top: str) -> None:
        if top in self.raw:
            self.flat[top] = self.raw[top]
        elif top not in self.inputs and top not in self.computed:
            self.flat.pop(top, None)

    def _resize(self, touched: list[tuple[str, str]], delta: int | None, path: str) -> None:
        """New sizes of the touched values; refuses a total over ``max_bytes``."""
        sizes: dict[tuple[str, str], int] = {}
        for key in touched:
            tier, name = key
            values = self.raw if tier == "raw" else self.computed
            if name not in values:
                sizes[key] = 0
            elif key == touched[0] and delta is not None and key in self._sizes:
                sizes[key] = self._sizes[key] + delta  # an append: no need to re-encode
            else:
                sizes[key] = entry_size(name, values[name])
        total = self.size + sum(size - self._sizes.get(key, 0) for key, size in sizes.items())
        self._check_size(total, f"writing {path!r}")
        self._sizes.update(sizes)
        self.size = total

    def _recompute(
        self,
        seeds: set[str],
        trigger: str,
        undo: Undo | None = None,
        touched: list[tuple[str, str]] | None = None,
    ) -> None:
        dirty = set(seeds)
        for plan in self.plan.computed:
            if plan.name not in dirty:
                continue
            old = self.computed.get(plan.name, _MISSING)
            new = self._evaluate(plan, trigger, old)
            if old is not _MISSING and new == old:
                continue
            self.computed[plan.name] = new
            self.flat[plan.name] = new
            self.changed.add(("computed", plan.name))
            if touched is not None:
                touched.append(("computed", plan.name))
            if undo is not None:
                undo.append(_restore_computed(self, plan.name, old))
            dirty.update(self.plan.dependents.get(f"computed.{plan.name}", ()))

    def _evaluate(self, plan: ComputedPlan, trigger: str, old: Any) -> Any:
        values = [self.read(source) for source in plan.sources]
        argument = values if isinstance(plan.spec.from_, list) else values[0]
        started = time.perf_counter()
        error: WfkitError | None = None
        try:
            output = to_state_value(
                plan.transform.evaluate(self._scope.new_child({"input": argument})),
                f"computed.{plan.name}",
            )
        except WfkitError as exc:
            error = exc
            if plan.spec.on_error == "propagate":
                exc.message = f"computed.{plan.name}: {exc.message}"
                exc.args = (exc.message,)
                self._record(plan, trigger, argument, None, started, exc)
                raise
            output = (
                to_state_value(plan.spec.fallback)
                if plan.spec.on_error == "use_fallback"
                else (None if old is _MISSING else old)
            )
        self._record(plan, trigger, argument, output, started, error)
        return output

    def _record(
        self,
        plan: ComputedPlan,
        trigger: str,
        argument: Any,
        output: Any,
        started: float,
        error: WfkitError | None,
    ) -> None:
        if self.on_transform is None:
            return
        self.on_transform(
            TransformRecord(
                field=f"computed.{plan.name}",
                trigger=trigger,
                input=argument,
                output=output,
                duration_ms=(time.perf_counter() - started) * 1000,
                dependencies=plan.sources,
                error=None if error is None else error.message,
            )
        )


def _restore_computed(state: State, name: str, old: Any) -> Callable[[], None]:
    def undo() -> None:
        if old is _MISSING:
            state.computed.pop(name, None)
            state.flat.pop(name, None)
        else:
            state.computed[name] = old
            state.flat[name] = old

    return undo
