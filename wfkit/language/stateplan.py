"""The state a workflow declares, compiled: input types and defaults, raw tiers, computed fields.

:class:`StatePlan` is fixed at load; the engine's :class:`wfkit.engine.state.State` holds the
values of one run against it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wfkit.errors import InputError, StateError
from wfkit.language.diagnostics import suggest
from wfkit.language.expressions import Expr
from wfkit.language.models import ComputedField, FieldType, InputSpec
from wfkit.language.values import json_type, matches_type, to_state_value, zero_value


@dataclass(frozen=True)
class ComputedPlan:
    """A computed field, compiled: its qualified sources and the top-level keys it reads."""

    name: str
    spec: ComputedField
    sources: tuple[str, ...]
    transform: Expr
    dependencies: frozenset[str]


@dataclass(frozen=True)
class StatePlan:
    """Everything about a state that is fixed at load: types, defaults, computed order."""

    inputs: dict[str, InputSpec]
    raw_types: dict[str, FieldType]
    raw_defaults: dict[str, Any]
    computed: tuple[ComputedPlan, ...] = ()
    #: top-level key ("raw.x", "inputs.y", "computed.z") -> computed fields reading it
    dependents: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def resolve_inputs(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Given inputs plus defaults, checked against their specs."""
        problems: list[str] = []
        unknown = sorted(set(given) - set(self.inputs))
        if unknown:
            hints = "".join(suggest(name, list(self.inputs)) for name in unknown[:1])
            problems.append(f"unknown input(s): {', '.join(unknown)}{hints}")
        out: dict[str, Any] = {}
        for name, spec in self.inputs.items():
            if name in given:
                value = given[name]
                if isinstance(value, TextInput):
                    value = value.as_type(spec.type)
                if value is None and not _nullable(spec):
                    problems.append(
                        f"input {name!r} is a {spec.type} and cannot be null "
                        "(declare `default: null` to allow it)"
                    )
                    continue
            elif spec.has_default:
                value = spec.default
            elif spec.is_required:
                problems.append(f"missing required input {name!r} (for example -i {name}=...)")
                continue
            else:
                value = zero_value(spec.type)
            if value is not None and not matches_type(value, spec.type):
                if spec.type == "number" and isinstance(value, str):
                    problems.append(f"input {name!r} should be a number, got {value!r}")
                    continue
                problems.append(
                    f"input {name!r} should be {spec.type}, got {json_type(value)} {value!r}"
                )
                continue
            if _has_nul(value):
                problems.append(f"input {name!r} contains a NUL byte, which no command can take")
                continue
            try:
                out[name] = to_state_value(value, f"input {name!r}")
            except StateError as exc:  # an input is the caller's mistake, not a step's
                problems.append(exc.message)
        if problems:
            raise InputError("; ".join(problems))
        return out


class TextInput(str):
    """An input value typed as text (``-i name=value``): its declared type decides what it
    is. A ``string`` input takes the text as given (``1.0`` stays ``"1.0"``; ``null`` is
    null); any other type parses it as JSON when it can (``3``, ``true``, ``[1, 2]``)."""

    def as_type(self, declared: str) -> Any:
        """The value for an input of type ``declared``."""
        text = str(self)
        if declared == "string":
            return None if text == "null" else text
        try:
            return json.loads(text)
        except RecursionError:
            raise InputError("an input value is nested too deeply to read") from None
        except ValueError:
            return text


def _has_nul(value: Any) -> bool:
    """Whether a NUL byte is in any string of ``value`` (keys included)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\0" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _nullable(spec: Any) -> bool:
    """An input may be given null when it is untyped or its declared default is null."""
    return bool(spec.type == "any" or (spec.has_default and spec.default is None))
