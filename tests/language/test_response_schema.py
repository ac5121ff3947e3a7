"""``response_schema``: what is refused at load, and checks whose cost follows the response."""

from __future__ import annotations

from typing import Any

import pytest

from wfkit.language.response_schema import schema_problems, violation


@pytest.mark.parametrize(
    ("schema", "where", "says"),
    [
        ({"type": "objekt"}, ("type",), "not a valid JSON Schema"),
        ({"$ref": "https://example.com/s.json"}, ("$ref",), "points outside the schema"),
        ({"$defs": {"a": {}}, "$ref": "#/$defs/b"}, ("$ref",), "names nothing"),
        ({"items": {"$dynamicRef": "https://x/y"}}, ("items", "$dynamicRef"), "points outside"),
        ({"properties": {"s": {"pattern": "a(?=b)"}}}, ("properties", "s", "pattern"), "RE2"),
        ({"patternProperties": {"(x)\\1": {}}}, ("patternProperties", "(x)\\1"), "RE2"),
    ],
)
def test_what_is_refused_at_load(schema: dict[str, Any], where: tuple[Any, ...], says: str) -> None:
    [(at, message)] = schema_problems(schema)
    assert at == where
    assert says in message


def test_a_schema_nested_too_deeply_is_refused_not_raised() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(3000):
        schema = {"not": schema}
    [(at, message)] = schema_problems(schema)
    assert (at, "nested too deeply" in message) == ((), True)


def test_a_fine_schema_with_local_refs() -> None:
    schema = {"$defs": {"n": {"type": "integer"}}, "items": {"$ref": "#/$defs/n"}}
    assert schema_problems(schema) == []
    assert violation([1, 2], schema) is None
    assert violation([1, "x"], schema) == ("$[1]", "'x' is not of type 'integer'", "type")


def test_pattern_properties_and_patterns_run_on_re2() -> None:
    schema = {
        "patternProperties": {"^n_": {"type": "integer"}},
        "properties": {"s": {"pattern": "^a+$"}},
    }
    assert violation({"n_1": 1, "other": "x", "s": "aaa"}, schema) is None
    assert violation({"n_1": "one"}, schema) == ("$.n_1", "'one' is not of type 'integer'", "type")
    path, message, rule = violation({"s": "a" * 10_000 + "!"}, schema) or ("", "", "")
    assert (path, rule) == ("$.s", "pattern")
    assert "a" * 400 not in message  # the value is described, never cut (a secret across the cut)


@pytest.mark.parametrize(
    ("items", "unique"),
    [
        ([1, 1.0], False),
        ([True, 1], True),
        ([{"a": [1, 2.0]}, {"a": [1.0, 2]}], False),
        ([{"a": 1, "b": 2}, {"b": 2, "a": 1}], False),
        ([None, "None", 0, False], True),
    ],
)
def test_unique_items_compares_as_json_schema_does(items: list[Any], unique: bool) -> None:
    found = violation(items, {"uniqueItems": True})
    assert (found is None) is unique


def test_a_response_nested_too_deeply_is_a_violation_not_an_error() -> None:
    value: Any = 1
    for _ in range(3000):
        value = [value]
    schema = {"$defs": {"a": {"items": {"$ref": "#/$defs/a"}}}, "$ref": "#/$defs/a"}
    assert violation(value, schema) == (
        "$",
        "the response (or the schema's $refs) nests too deeply to check",
        "depth",
    )
