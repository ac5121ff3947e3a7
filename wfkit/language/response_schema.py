"""An ``agent_task``'s ``response_schema``: checked at load, and a response checked against it
with a cost bounded by the response's size.

JSON Schema (draft 2020-12 unless ``$schema`` names another draft jsonschema knows), through
``jsonschema``, with three keywords replaced so that no response costs more than linear time
in its size: ``pattern`` and ``patternProperties`` run on RE2 (no backtracking), and
``uniqueItems`` compares canonical forms in a set (jsonschema's own falls back to comparing
every pair). ``$ref`` resolves only inside the schema: nothing is fetched or read.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

from wfkit.language.filters import linear_pattern

Problem = tuple[tuple[str | int, ...], str]
"""Where in the schema (keys and indexes), and what is wrong."""


def schema_problems(schema: dict[str, Any]) -> list[Problem]:
    """What keeps ``schema`` from being used: empty when it is fine."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = tuple(p for p in exc.path if isinstance(p, (str, int)))
        return [(where, f"not a valid JSON Schema: {exc.message}")]
    except RecursionError:
        return [((), "not a valid JSON Schema: it is nested too deeply to check")]
    problems: list[Problem] = []
    resolver = _registry(schema).resolver(base_uri=_ROOT)
    for parent, key, value in _keywords(schema):
        where = (*parent, key)  # the keyword itself: its line in the file
        if key == "$ref":
            if not isinstance(value, str) or not value.startswith("#"):
                problems.append(
                    (
                        where,
                        f"$ref {value!r} points outside the schema: only refs inside it "
                        "('#/$defs/name') are resolved, nothing is fetched or read",
                    )
                )
                continue
            try:
                resolver.lookup(value)
            except Exception:  # referencing's Unresolvable and its pointer errors
                problems.append((where, f"$ref {value!r} names nothing in the schema"))
        elif key in ("$dynamicRef", "$recursiveRef") and not str(value).startswith("#"):
            problems.append((where, f"{key} {value!r} points outside the schema"))
        elif key == "pattern" and isinstance(value, str):
            problems.extend(_pattern_problem(where, value))
        elif key == "patternProperties" and isinstance(value, dict):
            for name in value:
                problems.extend(_pattern_problem((*where, name), name))  # at the key
    return problems


def violation(value: Any, schema: dict[str, Any]) -> tuple[str, str, str] | None:
    """The most relevant way ``value`` breaks ``schema``: (JSON path, message, rule)."""
    import jsonschema

    try:
        error = jsonschema.exceptions.best_match(_validator(json.dumps(schema)).iter_errors(value))
    except RecursionError:
        return "$", "the response (or the schema's $refs) nests too deeply to check", "depth"
    if error is None:
        return None
    message = error.message
    if len(message) > MESSAGE_CHARS:  # the value in full would be too long: never a cut of
        # it (a secret across the cut would show half)
        kind = type(error.instance).__name__
        message = f"the {kind} value breaks {error.validator!r}: {str(error.validator_value)[:80]}"
    return error.json_path, message, str(error.validator)


MESSAGE_CHARS = 300
"""The longest message quoting the response's value; longer ones describe it instead."""


_ROOT = "urn:wfkit:response-schema"


def _registry(schema: dict[str, Any]) -> Any:
    """A registry holding only the schema itself: no retrieval of anything else."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resource = Resource.from_contents(schema, default_specification=DRAFT202012)
    return Registry().with_resource(_ROOT, resource)


@functools.lru_cache(maxsize=256)
def _validator(text: str) -> Any:
    import jsonschema

    schema = json.loads(text)
    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        base,
        validators={
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "uniqueItems": _unique_items,
        },
    )
    return cls(schema, registry=_registry(schema))


def _keywords(node: Any, where: tuple[str | int, ...] = ()) -> Iterator[tuple[Any, str, Any]]:
    """Every (path, key, value) of the schema's mappings, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield where, key, value
            yield from _keywords(value, (*where, key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _keywords(item, (*where, i))


def _pattern_problem(where: tuple[str | int, ...], pattern: str) -> list[Problem]:
    try:
        linear_pattern(pattern)
    except ValueError as exc:
        return [(where, str(exc))]
    return []


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema import ValidationError

    if validator.is_type(instance, "string") and linear_pattern(pattern).search(instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        compiled = linear_pattern(pattern)
        for key, value in instance.items():
            if compiled.search(key) is not None:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _unique_items(validator: Any, unique: bool, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema import ValidationError

    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[str] = set()
    for index, item in enumerate(instance):
        form = json.dumps(_canonical(item), sort_keys=True)
        if form in seen:
            yield ValidationError(f"item {index} repeats an earlier item (uniqueItems)")
            return
        seen.add(form)


def _canonical(value: Any) -> Any:
    """A form equal for values JSON Schema calls equal (1 and 1.0; not true and 1)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return value
