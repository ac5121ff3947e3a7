from __future__ import annotations

import pytest

from wfkit.errors import LoadError
from wfkit.language.yamlsrc import format_path, parse


def test_positions_are_recorded_for_keys_and_items() -> None:
    source = parse("name: x\nsteps:\n  - type: wait\n    seconds: 1\n", "f.yaml")
    assert source.data == {"name": "x", "steps": [{"type": "wait", "seconds": 1}]}
    assert source.positions[("steps",)] == (2, 1)
    assert source.positions[("steps", 0)] == (3, 5)
    assert source.positions[("steps", 0, "seconds")] == (4, 5)


def test_position_falls_back_to_nearest_known_ancestor() -> None:
    source = parse("a:\n  b: 1\n", "f.yaml")
    assert source.position(("a", "b", "missing", 3)) == (2, 3)


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    with pytest.raises(LoadError) as info:
        parse("name: a\nsteps: []\nname: b\n", "f.yaml")
    assert info.value.line == 3
    assert "duplicate key 'name' (first defined on line 1)" in str(info.value)


@pytest.mark.parametrize("key", ["on", "yes", "no", "off", "true", "False"])
def test_yaml11_boolean_keys_are_refused(key: str) -> None:
    with pytest.raises(LoadError) as info:
        parse(f"{key}: push\n", "f.yaml")
    assert "boolean" in info.value.message
    assert f'"{key}"' in info.value.message


def test_quoted_boolean_words_are_plain_keys() -> None:
    assert parse('"on": push\n', "f.yaml").data == {"on": "push"}


def test_malformed_yaml_names_line_and_column() -> None:
    with pytest.raises(LoadError) as info:
        parse("name: x\nsteps: [\n  - a\n", "bad.yaml")
    assert info.value.file == "bad.yaml"
    assert info.value.line is not None
    assert str(info.value).startswith("bad.yaml:")
    assert "malformed YAML" in info.value.message


def test_alias_expansion_is_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(10))}]" for i in range(1, 8)]
    with pytest.raises(LoadError, match="too large"):
        parse("\n".join(lines) + "\n", "bomb.yaml")


def test_merge_keys_are_supported() -> None:
    data = parse("base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  y: 3\n", "f.yaml").data
    assert data["child"] == {"x": 1, "y": 3}


def test_empty_document_is_none() -> None:
    assert parse("", "f.yaml").data is None


def test_non_scalar_keys_are_refused() -> None:
    with pytest.raises(LoadError, match="plain strings"):
        parse("? [a, b]\n: 1\n", "f.yaml")


def test_format_path() -> None:
    assert format_path(("steps", 0, "then", 2, "command")) == "steps[0].then[2].command"
    assert format_path(()) == ""


def test_aliases_are_charged_at_every_use(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "a: &a [xxxxxxxxxx, yyyyyyyyyy]\nb: [*a, *a, *a]\n"  # 20 characters, used 4 times
    monkeypatch.setenv("WFKIT_MAX_YAML_BYTES", "80")
    assert parse(text, "f.yaml").data["b"][2] == ["xxxxxxxxxx", "yyyyyyyyyy"]
    monkeypatch.setenv("WFKIT_MAX_YAML_BYTES", "79")
    with pytest.raises(LoadError, match="more than 79 characters once its aliases") as info:
        parse(text, "f.yaml")
    assert (info.value.line, info.value.field) == (1, "b[2][1]")
