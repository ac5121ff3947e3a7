"""Compiling a file's ``state_schema`` (and a task's) into a :class:`StatePlan`: tiers,
defaults checked against their types, computed fields with their sources and order."""

from __future__ import annotations

from typing import Any

from wfkit.language import models as m
from wfkit.language.compile import compile_field, walk
from wfkit.language.diagnostics import problem, suggest
from wfkit.language.expressions import Expr
from wfkit.language.stateplan import ComputedPlan, StatePlan
from wfkit.language.values import matches_type, zero_value
from wfkit.language.yamlsrc import Path as NodePath
from wfkit.language.yamlsrc import Source


def raw_writes(*bodies: list[m.Step]) -> frozenset[str]:
    """The top-level raw names the steps write (declared in the schema or not)."""
    tops: set[str] = set()
    for steps in bodies:
        for step, _ in walk(steps):
            specs: list[m.StateUpdateSpec] = list(step.state_updates)
            if step.state_update is not None:
                specs.append(step.state_update)
            if isinstance(step.error_state_update, list):
                specs.extend(step.error_state_update)
            elif step.error_state_update is not None:
                specs.append(step.error_state_update)
            paths = [spec.path for spec in specs]
            if isinstance(step, m.StateUpdateStep) and step.path:
                paths.append(step.path)
            for path in paths:
                head, _, rest = path.partition(".")
                if head == "raw" and rest:
                    tops.add(rest.split(".", 1)[0].split("[", 1)[0])
    return frozenset(tops)


def build_state_plan(
    source: Source,
    where: NodePath,
    inputs: dict[str, m.InputSpec],
    schema: m.StateSchema,
    defaults: m.DefaultState,
    written: frozenset[str] = frozenset(),
) -> StatePlan:
    """Check the tiers against each other and order the computed fields."""
    owner = where[:-1]
    tiers: dict[str, str] = {}
    for tier, names, at in (
        ("inputs", inputs, (*owner, "inputs")),
        ("raw", schema.raw, (*where, "raw")),
        ("raw", defaults.raw, (*owner, "default_state", "raw")),
        ("computed", schema.computed, (*where, "computed")),
    ):
        for name in names:
            if name in (
                "inputs",
                "raw",
                "computed",
                "loop",
                "steps",
                "error",
                "result",
                "workflow",
                "input",
            ):
                problem(source.error(f"{name!r} is a reserved name", (*at, name)))
                continue
            if tiers.get(name, tier) != tier:
                problem(
                    source.error(
                        f"{name!r} is defined in both {tiers[name]} and {tier}; "
                        "flattened reads would be ambiguous",
                        (*at, name),
                    )
                )
                continue
            tiers[name] = tier
    raw_defaults: dict[str, Any] = {k: zero_value(t) for k, t in schema.raw.items()}
    for name, value in defaults.raw.items():
        declared = schema.raw.get(name)
        if declared and value is not None and not matches_type(value, declared):
            problem(
                source.error(
                    f"default for {name!r} should be {declared}, got {value!r}",
                    (*owner, "default_state", "raw", name),
                )
            )
        raw_defaults[name] = value
    for name, spec in inputs.items():
        if (
            spec.has_default
            and spec.default is not None
            and not matches_type(spec.default, spec.type)
        ):
            problem(
                source.error(
                    f"default of input {name!r} should be {spec.type}, got {spec.default!r}",
                    (*owner, "inputs", name, "default"),
                )
            )
    computed = _plan_computed(source, (*where, "computed"), schema.computed, tiers, written)
    dependents: dict[str, list[str]] = {}
    for plan in computed:
        for dep in plan.dependencies:
            dependents.setdefault(dep, []).append(plan.name)
    return StatePlan(
        inputs=dict(inputs),
        raw_types=dict(schema.raw),
        raw_defaults=raw_defaults,
        computed=tuple(computed),
        dependents={k: tuple(v) for k, v in dependents.items()},
    )


def _qualify(name: str, tiers: dict[str, str]) -> str | None:
    head, _, rest = name.partition(".")
    if head in ("inputs", "raw", "computed"):
        top = rest.split(".", 1)[0].split("[", 1)[0]
        return name if tiers.get(top) == head else None
    top = head.split("[", 1)[0]
    tier = tiers.get(top)
    return f"{tier}.{name}" if tier else None


def _top(qualified: str) -> str:
    tier, _, rest = qualified.partition(".")
    return f"{tier}.{rest.split('.', 1)[0].split('[', 1)[0]}"


def _plan_computed(
    source: Source,
    where: NodePath,
    fields: dict[str, m.ComputedField],
    tiers: dict[str, str],
    written: frozenset[str] = frozenset(),
) -> list[ComputedPlan]:
    plans: dict[str, ComputedPlan] = {}
    known = sorted(tiers)
    for name, spec in fields.items():
        at = (*where, name)
        sources = []
        for src in spec.sources:
            qualified = _qualify(src, tiers)
            if qualified is None and _readable_undeclared(src, spec, written):
                qualified = src  # a raw path a step writes undeclared (explain warns), or one
                # nothing writes, read by a field that falls back when it is missing
            if qualified is None:
                problem(
                    source.error(
                        f"computed field {name!r} reads {src!r}, which is not an input, raw or "
                        f"computed field{suggest(src, known)}",
                        (*at, "from"),
                    )
                )
                continue
            sources.append(qualified)
        transform = compile_field(source, spec.transform, "bare", (*at, "transform"))
        assert isinstance(transform, Expr)
        deps = {_top(s) for s in sources}
        for ref in transform.references:
            if ref == "input" or ref.startswith("input."):
                continue
            qualified = _qualify(ref, tiers)
            if qualified is None:
                problem(
                    source.error(
                        f"transform of {name!r} reads undefined name {ref!r}{suggest(ref, known)}",
                        (*at, "transform"),
                    )
                )
                continue
            deps.add(_top(qualified))
        plans[name] = ComputedPlan(name, spec, tuple(sources), transform, frozenset(deps))
    return [plans[n] for n in _topological(source, where, plans)]


def _readable_undeclared(src: str, spec: m.ComputedField, written: frozenset[str]) -> bool:
    """Undeclared raw writes are allowed, so a computed field may read one: ``raw.X`` when a
    step writes ``raw.X``, or any ``raw.`` path when the field falls back on its errors."""
    head, _, rest = src.partition(".")
    if head != "raw" or not rest:
        return False
    top = rest.split(".", 1)[0].split("[", 1)[0]
    return top in written or spec.on_error in ("use_fallback", "ignore")


def _topological(source: Source, where: NodePath, plans: dict[str, ComputedPlan]) -> list[str]:
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            cycle = [*trail[trail.index(name) :], name]
            problem(
                source.error(
                    f"computed fields form a cycle: {' -> '.join(cycle)}",
                    (*where, cycle[0], "from"),
                )
            )
            return
        state[name] = "active"
        for dep in sorted(plans[name].dependencies):
            if dep.startswith("computed."):
                visit(dep.removeprefix("computed."), [*trail, name])
        state[name] = "done"
        order.append(name)

    for name in plans:
        visit(name, [])
    return order
