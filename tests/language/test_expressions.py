from __future__ import annotations

import shlex
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError

from wfkit.errors import ExpressionError, UndefinedVariableError
from wfkit.language.expressions import Value, compile_expr
from wfkit.language.shellquote import ShellCommand, render_command


def ev(source: Any, scope: dict[str, Any] | None = None, **kw: Any) -> Any:
    return compile_expr(source, **kw).evaluate(scope or {})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 1 + 2 }}", 3),
        ("{{ [1, 2] }}", [1, 2]),
        ("{{ {'a': 1} }}", {"a": 1}),
        ("{{ true }}", True),
        ("  {{ 'x' }}  ", "x"),
        ("a {{ 1 + 1 }} b", "a 2 b"),
        ("{{ 1 }}{{ 2 }}", "12"),
        ("plain text", "plain text"),
        (7, 7),
        (None, None),
    ],
)
def test_three_forms(source: Any, expected: Any) -> None:
    assert ev(source) == expected


def test_bare_expressions_for_conditions() -> None:
    assert ev("x < y", {"x": 1, "y": 2}, bare=True) is True
    assert ev("{{ x < y }}", {"x": 3, "y": 2}, bare=True) is False


def test_custom_filters() -> None:
    assert ev("{{ '{\"a\": [1]}' | from_json }}") == {"a": [1]}
    assert ev("{{ d | to_json }}", {"d": {"a": 1}}) == '{"a": 1}'
    assert ev("{{ 'v1.22.3' | regex_search('\\\\d+\\\\.(\\\\d+)') }}") == "22"
    assert ev("{{ 'abc' | regex_search('z') }}") is None
    assert ev("{{ 'abc' | regex_search('B', ignorecase=true) }}") == "b"
    assert ev("{{ 'a-b-c' | regex_replace('-', '+') }}") == "a+b+c"
    assert ev("{{ range(3) | join(',') }}") == "0,1,2"
    assert ev("{{ 'aXa' | replace('a', 'b') }}") == "bXb"


def test_from_json_error_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="from_json"):
        ev("{{ 'nope' | from_json }}")


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("{{ missing }}", "missing"),
        ("{{ missing + 1 }}", "missing"),
        ("{{ raw.nothing }}", "raw.nothing"),
        ("{{ a.b.c }}", "a.b.c"),
        ("{{ 1 if missing else 2 }}", "missing"),
        ("before {{ missing }} after", "missing"),
    ],
)
def test_undefined_names_raise_with_the_name(source: str, name: str) -> None:
    scope = {"raw": {}, "a": {"b": {}}}
    with pytest.raises(UndefinedVariableError) as info:
        ev(source, scope)
    assert info.value.name == name
    assert info.value.expression == source


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 10**8 }}",
        "{{ [1] * 10000000 }}",
        "{{ 10000000 * [1] }}",
        "{{ 2 ** 100000 }}",
        "{{ 2.0 ** 100000 }}",
        "{{ (10**5000) * (10**5000) }}",
        "{{ range(10**7) | list }}",
        "{{ 'x'.ljust(10**9) }}",
        "{{ 'x'.center(10**9) }}",
        "{{ '\\t'.expandtabs(10**9) }}",
        "{{ ('a' * 1000000) + ('b' * 10) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ ('a' * 100000) | replace('a', 'aaaaaaaaaaaaaaaaaaaa') }}",
        "{{ ('a' * 100000).replace('a', 'aaaaaaaaaaaaaaaaaaaa') }}",
        "{{ (range(100000) | list) | join('x' * 100) }}",
        "{{ ','.join(range(100000) | map('string') | map('center', 5) | list) }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler }}",
        "{{ lipsum() }}",
        "{{ x.append(1) }}",
        "{{ d.update({'a': 1}) }}",
        "{{ 'a' | center(10**9) }}",
        "{{ 'a' | format(1) }}",
    ],
)
def test_hostile_expressions_are_refused(source: str) -> None:
    with pytest.raises(ExpressionError):
        ev(source, {"x": [], "d": {}})


def test_sizes_under_the_limits_are_fine() -> None:
    assert len(ev("{{ 'a' * 1000 }}")) == 1000
    assert ev("{{ 2 ** 64 }}") == 2**64
    assert len(ev("{{ range(1000) | list }}")) == 1000


def test_runtime_errors_become_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="ZeroDivisionError"):
        ev("{{ 1 / 0 }}")


def test_syntax_errors_are_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="invalid expression"):
        compile_expr("{{ 1 + }}")
    with pytest.raises(ExpressionError, match="invalid expression"):
        compile_expr("a b c", bare=True)


def test_references_are_the_longest_static_paths() -> None:
    expr = compile_expr("{{ raw.items[0] + inputs.limit + x | length + range(3) | sum }}")
    assert expr.references == {"raw.items", "inputs.limit", "x"}
    assert compile_expr("{{ d['key'].sub }}").references == {"d.key.sub"}


def test_shell_templates_pass_every_value_as_data() -> None:
    hostile = "a'; rm -rf / #$(reboot)`id`"

    def command(template: str, scope: dict[str, Any]) -> ShellCommand:
        compiled = Value(template, shell=True)
        return cast(ShellCommand, render_command(lambda: compiled.render(scope)))

    both = command("echo {{ v }} {{ n }}", {"v": hostile, "n": 3})
    assert both.text == 'echo "${WFKIT_V1}" "${WFKIT_V2}"'
    assert both.env == {"WFKIT_V1": hostile, "WFKIT_V2": "3"}
    assert shlex.split(both.shown) == ["echo", hostile, "3"]
    assert command("echo {{ v }}", {"v": None}).env == {"WFKIT_V1": ""}
    assert command("echo {{ v }}", {"v": {"a": 1}}).env == {"WFKIT_V1": '{"a": 1}'}


def test_a_shell_template_renders_only_as_a_command() -> None:
    with pytest.raises(ExpressionError, match="rendered only as a command"):
        Value("echo {{ v }}", shell=True).render({"v": 1})


def test_value_trees_render_only_templated_parts() -> None:
    value = Value({"a": "{{ x }}", "b": ["{{ x + 1 }}", "lit"], "c": 3})
    assert value.render({"x": 1}) == {"a": 1, "b": [2, "lit"], "c": 3}
    assert value.references == {"x"}
    literal = Value({"a": [1, "b"]})
    assert literal.literal
    assert literal.render({}) == {"a": [1, "b"]}


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**6), 10**6), st.integers(-(10**6), 10**6))
def test_arithmetic_matches_python(a: int, b: int) -> None:
    scope = {"a": a, "b": b}
    assert ev("{{ a + b }}", scope) == a + b
    assert ev("{{ a * b }}", scope) == a * b
    assert ev("{{ a < b }}", scope) == (a < b)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_compiles_or_fails_cleanly(text: str) -> None:
    try:
        expr = compile_expr(text, bare=True)
        expr.evaluate({})
    except ExpressionError:
        pass


def test_the_time_budget_counts_work_not_waiting() -> None:
    """Time the evaluating thread spends off the CPU (a loaded machine) is not charged."""
    import time

    from wfkit.language.budget import CLOCK_EVERY, Budget, Limits

    budget = Budget(Limits(max_seconds=0.2))
    time.sleep(0.3)
    for _ in range(CLOCK_EVERY * 2):
        budget.spend()  # no error: the thread did no work while it slept
    busy_until = time.thread_time() + 0.3
    while time.thread_time() < busy_until:
        pass
    budget.until_clock = 1  # the next spend looks at the clock
    with pytest.raises(SecurityError, match="CPU time"):
        budget.spend()
