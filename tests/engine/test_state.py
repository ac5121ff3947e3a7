from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wfkit.engine.state import State, TransformRecord, parse_path, to_state_value
from wfkit.errors import ExpressionError, InputError, StateError
from wfkit.language.loader import load_text
from wfkit.language.models import InputSpec
from wfkit.language.stateplan import StatePlan


def make_state(text: str, inputs: dict[str, Any] | None = None) -> State:
    plan = load_text("name: s\n" + text).main.state
    return State(plan, plan.resolve_inputs(inputs or {}))


SCHEMA = """
inputs:
  limit: {type: integer, default: 3}
state_schema:
  raw: {n: number, items: array, meta: object, name: string, flag: boolean, any_value: any}
  computed:
    double: {from: n, transform: input * 2}
    under: {from: [n, inputs.limit], transform: "input[0] < input[1]"}
    count: {from: raw.items, transform: input | length}
"""


def test_declared_fields_start_at_zero_values_and_computed_are_evaluated() -> None:
    state = make_state(SCHEMA)
    assert state.raw == {
        "n": 0,
        "items": [],
        "meta": {},
        "name": "",
        "flag": False,
        "any_value": None,
    }
    assert state.computed == {"double": 0, "under": True, "count": 0}
    assert state.inputs == {"limit": 3}


def test_reads_are_flattened_and_namespaced() -> None:
    state = make_state(SCHEMA)
    state.write("raw.n", "set", 2)
    assert state.read("n") == 2
    assert state.read("raw.n") == 2
    assert state.read("double") == 4
    assert state.read("computed.double") == 4
    assert state.read("limit") == 3
    assert state.flat["n"] == 2
    assert state.read("meta.absent.deeper") is None


@pytest.mark.parametrize(
    ("path", "operation", "value", "by", "expected_path", "expected"),
    [
        ("raw.n", "set", 5, None, "raw.n", 5),
        ("raw.n", "increment", None, None, "raw.n", 1),
        ("raw.n", "increment", None, 2.5, "raw.n", 2.5),
        ("raw.n", "decrement", 4, None, "raw.n", -4),
        ("raw.n", "multiply", None, 3, "raw.n", 0),
        ("raw.items", "append", {"a": 1}, None, "raw.items", [{"a": 1}]),
        ("raw.items", "extend", [1, 2], None, "raw.items", [1, 2]),
        ("raw.meta", "merge", {"a": 1}, None, "raw.meta", {"a": 1}),
        ("raw.meta.deep.er", "set", 1, None, "raw.meta", {"deep": {"er": 1}}),
        ("raw.new_field", "set", "x", None, "raw.new_field", "x"),
        ("raw.counter", "increment", None, None, "raw.counter", 1),
        ("raw.list", "append", 1, None, "raw.list", [1]),
        ("raw.meta.x", "delete", None, None, "raw.meta", {}),
    ],
)
def test_operations(
    path: str, operation: str, value: Any, by: Any, expected_path: str, expected: Any
) -> None:
    state = make_state(SCHEMA)
    state.write(path, operation, value, by)
    assert state.read(expected_path) == expected


def test_indexed_paths() -> None:
    state = make_state(SCHEMA)
    state.write("raw.items", "set", [{"v": 1}, {"v": 2}])
    state.write("raw.items[1].v", "set", 20)
    state.write("raw.items[-1].w", "set", 3)
    state.write("raw.items[2]", "set", "appended")
    assert state.raw["items"] == [{"v": 1}, {"v": 20, "w": 3}, "appended"]
    state.write("raw.items[0]", "delete")
    assert state.raw["items"] == [{"v": 20, "w": 3}, "appended"]
    assert state.computed["count"] == 2


@pytest.mark.parametrize(
    ("path", "operation", "value", "message"),
    [
        ("raw.n", "set", "text", "declared number"),
        ("raw.n", "set", True, "declared number"),
        ("raw.flag", "set", 1, "declared boolean"),
        ("raw.name", "increment", None, "must be a number"),
        ("raw.n", "increment", "x", "must be a number"),
        ("raw.n", "append", 1, "cannot append"),
        ("raw.items", "extend", 3, "cannot extend"),
        ("raw.items", "merge", {}, "both sides must be objects"),
        ("raw.n", "multiply", None, "needs `by`"),
        ("raw.items[5]", "set", 1, "out of range"),
        ("raw.n.x", "set", 1, "inside an integer"),
        ("raw.meta[0]", "set", 1, "indexes an object"),
        ("inputs.limit", "set", 1, "read-only"),
        ("computed.double", "set", 1, "read-only"),
        ("n", "set", 1, "must start with 'raw.<field>'"),
        ("raw", "set", 1, "must start with 'raw.<field>'"),
        ("raw.bad path", "set", 1, "bad segment"),
        ("raw.any_value", "set", float("nan"), "not valid JSON"),
        ("raw.any_value", "set", {1, 2}, "cannot be stored"),
        ("raw.any_value", "set", {(1, 2): 1}, "key cannot be stored"),
    ],
)
def test_invalid_writes_leave_state_unchanged(
    path: str, operation: str, value: Any, message: str
) -> None:
    state = make_state(SCHEMA)
    state.write("raw.items", "set", [1])
    before = to_state_value(state.snapshot())
    with pytest.raises(StateError, match=message):
        state.write(path, operation, value)
    assert state.snapshot() == before


def test_failed_nested_write_rolls_back_created_containers() -> None:
    state = make_state(SCHEMA)
    with pytest.raises(StateError, match="out of range"):
        state.write("raw.meta.a.b[3]", "set", 1)
    assert state.raw["meta"] == {}
    with pytest.raises(StateError, match="declared number"):
        state.write("raw.n", "set", "x")
    assert state.raw["n"] == 0


def test_propagating_transform_error_rolls_back_the_write() -> None:
    text = SCHEMA.replace("input * 2", "10 / (input - 1)")
    state = make_state(text)
    before = to_state_value(state.snapshot())
    with pytest.raises(ExpressionError, match=r"computed\.double"):
        state.write("raw.n", "set", 1)
    assert state.snapshot() == before
    assert state.flat["n"] == 0


def test_on_error_fallback_and_ignore() -> None:
    state = make_state(
        """
state_schema:
  raw: {n: number}
  computed:
    safe: {from: n, transform: "10 / input", on_error: use_fallback, fallback: -1}
    keep: {from: n, transform: "10 / input", on_error: ignore}
"""
    )
    assert state.computed == {"safe": -1, "keep": None}
    state.write("raw.n", "set", 2)
    assert state.computed == {"safe": 5.0, "keep": 5.0}
    state.write("raw.n", "set", 0)
    assert state.computed == {"safe": -1, "keep": 5.0}


def test_only_affected_computed_fields_recompute_once_in_order() -> None:
    state = make_state(
        """
state_schema:
  raw: {a: number, b: number}
  computed:
    from_a: {from: a, transform: input + 1}
    from_b: {from: b, transform: input + 1}
    both: {from: [computed.from_a, computed.from_b], transform: "input[0] + input[1]"}
    from_both: {from: computed.both, transform: input * 10}
"""
    )
    seen: list[TransformRecord] = []
    state.on_transform = seen.append
    state.write("raw.a", "set", 5)
    assert [r.field for r in seen] == ["computed.from_a", "computed.both", "computed.from_both"]
    assert seen[0].trigger == "raw.a update"
    assert seen[1].input == [6, 1]
    assert seen[2].output == 70
    seen.clear()
    state.write("raw.a", "set", 5)  # same value: from_a unchanged, nothing downstream
    assert [r.field for r in seen] == ["computed.from_a"]


def test_transform_can_read_other_state_names() -> None:
    state = make_state(
        "state_schema:\n  raw: {a: number, b: number}\n  computed:\n"
        "    s: {from: a, transform: input + b}\n"
    )
    state.write("raw.b", "set", 4)
    assert state.computed["s"] == 4


def test_values_are_copied_into_state() -> None:
    state = make_state(SCHEMA)
    shared = [1, 2]
    state.write("raw.items", "set", shared)
    shared.append(3)
    state.write("raw.any_value", "set", state.raw["items"])
    state.write("raw.items", "append", 9)
    assert state.raw["any_value"] == [1, 2]
    assert state.raw["items"] == [1, 2, 9]


def test_inputs_are_checked() -> None:
    plan = load_text(
        "name: s\ninputs:\n  n: {type: integer}\n  opt: {type: string, required: false}\n"
        "  d: {type: number, default: 1.5}\n"
    ).main.state
    assert plan.resolve_inputs({"n": 2}) == {"n": 2, "opt": "", "d": 1.5}
    with pytest.raises(InputError, match="missing required input 'n'"):
        plan.resolve_inputs({})
    with pytest.raises(InputError, match="input 'n' should be integer, got string 'x'"):
        plan.resolve_inputs({"n": "x"})
    with pytest.raises(InputError, match=r"unknown input\(s\): zz"):
        plan.resolve_inputs({"n": 1, "zz": 1})
    with pytest.raises(InputError, match="should be a number"):
        plan.resolve_inputs({"n": 1, "d": "many"})


@given(
    st.lists(st.sampled_from(["a", "b_c", "x1"]), min_size=1, max_size=4),
    st.lists(st.integers(-3, 30), max_size=3),
)
def test_path_parsing_round_trips(names: list[str], indexes: list[int]) -> None:
    text = "raw." + ".".join(names) + "".join(f"[{i}]" for i in indexes)
    assert parse_path(text) == ("raw", *names, *indexes)


def test_input_mistakes_say_what_to_write() -> None:
    plan = StatePlan(inputs={"count": InputSpec(type="integer")}, raw_types={}, raw_defaults={})
    missing = r"missing required input 'count' \(for example -i count=\.\.\.\)"
    with pytest.raises(InputError, match=missing):
        plan.resolve_inputs({})
    with pytest.raises(InputError, match="unknown input\\(s\\): cuont; did you mean 'count'\\?"):
        plan.resolve_inputs({"count": 1, "cuont": 2})
