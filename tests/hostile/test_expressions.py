"""The hostile corpus against expressions: test-transform, conditions and transforms."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.hostile.corpus import BIG_VALUES, ESCAPES, HANG, HANGS, MUTATIONS, NOT_JSON
from wfkit.commands import RunReport
from wfkit.commands.transform import evaluate_transform

Runner = Callable[..., RunReport]

CONTEXT = {"raw": {"n": 1, "blob": [1]}, "inputs": {"limit": 3}}

HANG_S = 120  # seconds: a bound that turns a hang into a failure, never a measure of speed


def _transform(expression: str) -> tuple[Any, float]:
    context = json.loads(json.dumps(CONTEXT))
    started = time.perf_counter()
    result = evaluate_transform(expression, input={"a": 5}, context=context)
    assert context == CONTEXT, "the expression changed its context"
    return result, time.perf_counter() - started


@pytest.mark.parametrize("expression", ESCAPES)
def test_escapes_are_refused(expression: str) -> None:
    result, _ = _transform(expression)
    assert result.error is not None
    assert result.error.type in {"ExpressionError", "UndefinedVariableError"}


@pytest.mark.parametrize("expression", HANGS)
def test_work_without_end_stops_within_the_bound(expression: str) -> None:
    result, elapsed = _transform(expression)
    assert elapsed < HANG_S  # the bound is 2 s; only a hang fails this
    if "for" in expression or "macro" in expression:
        assert result.error is not None
        assert result.error.type == "ExpressionError"


def test_nested_loops_are_refused_for_their_work() -> None:
    result, _ = _transform(HANG)
    assert result.error is not None
    # whichever bound comes first: 1,000,000 steps (~0.3 s alone) or 2 s (a loaded machine)
    assert "steps of work" in result.error.message or "longer than 2.0 s" in result.error.message


@pytest.mark.parametrize("expression", BIG_VALUES)
def test_big_values_are_refused(expression: str) -> None:
    result, elapsed = _transform(expression)
    assert result.error is not None, result.output
    assert result.error.type == "ExpressionError"
    assert "refused by the sandbox" in result.error.message
    assert elapsed < HANG_S


@pytest.mark.parametrize("expression", MUTATIONS)
def test_mutations_are_refused(expression: str) -> None:
    result, _ = _transform(expression)  # asserts the context is unchanged
    assert result.error is not None
    assert result.error.type == "ExpressionError"


@pytest.mark.parametrize(("expression", "kind"), NOT_JSON.items())
def test_non_json_results_name_their_type(expression: str, kind: str) -> None:
    result, _ = _transform(expression)
    assert result.error is not None
    assert result.error.type == "ExpressionError"
    assert f"is a {kind}" in result.error.message
    assert "0x" not in result.error.message  # no memory address


def test_json_like_results_become_lists() -> None:
    assert _transform("range(3)")[0].output == [0, 1, 2]
    assert _transform("(1, 2)")[0].output == [1, 2]
    assert _transform("{'a': 1}.keys()")[0].output == ["a"]


def test_unsupported_regex_is_a_clear_error() -> None:
    result, _ = _transform("'aa' | regex_search('(a)\\\\1')")
    assert result.error is not None
    assert "RE2" in result.error.message
    assert "backreferences" in result.error.message


def test_regex_filters_still_work() -> None:
    assert _transform("'v1.25' | regex_search('v(\\\\d+)')")[0].output == "1"
    assert _transform("'Ab' | regex_search('a', ignorecase=true)")[0].output == "A"
    assert _transform("'a-b' | regex_replace('(\\\\w)', '<\\\\1>')")[0].output == "<a>-<b>"
    assert _transform("'aaa' | regex_replace('a', 'b', count=2)")[0].output == "bba"


def test_legitimate_large_work_is_allowed() -> None:
    assert _transform("range(20000)|map('string')|list|length")[0].output == 20000
    assert _transform("('a' * 999999)|length")[0].output == 999999
    assert _transform("([[1] * 1000] * 1000)|sum(start=[])|length")[0].output == 10**6


def test_a_hanging_condition_fails_the_step_within_the_bound(run_yaml: Runner) -> None:
    started = time.perf_counter()
    report = run_yaml(
        f"""
        name: hang
        config: {{timeout: 3}}
        steps:
          - type: conditional
            timeout: 2
            condition: "{HANG}"
            then: [{{type: user_message, message: never}}]
        """
    )
    assert time.perf_counter() - started < HANG_S
    assert report.status in {"failed", "timed_out"}
    # refused by its CPU-time bound, or stopped by the step's timeout when the machine is so
    # busy that 2 s of wall time pass before 2 s of CPU time: either ends it, in bound
    assert report.errors[0].error_type in {"ExpressionError", "StepTimeoutError"}


@pytest.mark.parametrize("expression", MUTATIONS[:6])
def test_state_and_inputs_are_read_only_in_a_run(run_yaml: Runner, expression: str) -> None:
    report = run_yaml(
        f"""
        name: mutate
        inputs:
          limit: {{type: integer, default: 3}}
        state_schema:
          raw: {{n: integer, blob: array}}
          computed:
            double: {{from: raw.n, transform: "input * 2"}}
        default_state:
          raw: {{n: 1, blob: [1]}}
        steps:
          - type: state_update
            path: raw.other
            value: "{{{{ {expression} }}}}"
            on_error: continue
        """
    )
    assert report.errors[0].error_type == "ExpressionError"
    assert report.state.raw == {"n": 1, "blob": [1]}
    assert report.state.inputs == {"limit": 3}
    assert report.state.computed == {"double": 2}


_PEAK_CHILD = """
import atexit, sys
def peak():
    with open("/proc/self/status") as status:  # VmHWM: this process's own peak (not the
        for line in status:                     # parent's, which ru_maxrss carries over exec)
            if line.startswith("VmHWM:"):
                print("PEAK", line.split()[1], file=sys.stderr)
atexit.register(peak)
from wfkit.cli.app import main
sys.argv = ["wfkit", *sys.argv[1:]]
main()
"""


def peak_kib(*args: str) -> tuple[str, int, str]:
    """Run ``wfkit ARGS`` in a child; its stdout, its own peak RSS in KiB, its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_CHILD, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    peaks = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("PEAK ")]
    assert peaks, done.stderr
    return done.stdout, int(peaks[-1]), done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("expression", [e for e in BIG_VALUES if "10**" not in e][:12])
def test_big_values_stay_under_100_mib_in_test_transform(expression: str) -> None:
    out, peak, _ = peak_kib("test-transform", expression, "--json")
    assert json.loads(out)["error"]["type"] == "ExpressionError"
    assert peak < 100 * 1024


@pytest.mark.slow
def test_a_replacement_is_charged_before_it_is_built() -> None:
    expression = "{{ ('a' * 100000) | regex_replace('.+', '\\\\g<0>' * 2000) | length }}"
    out, peak, _ = peak_kib("test-transform", expression, "--json")
    error = json.loads(out)["error"]
    assert error["type"] == "ExpressionError"
    assert "regex_replace result would be 200010000 characters long" in error["message"]
    assert peak < 100 * 1024  # KiB; it was 238 MiB: the replacement was built, then checked


def test_replacement_references_still_expand() -> None:
    template = "{{ 'abcabc' | regex_replace('(b)(c)', '\\\\2\\\\1') }}|"
    named = "{{ 'abc' | regex_replace('(?P<x>b)', '[\\\\g<x>]') }}"
    result, _ = _transform(template + named)
    assert (result.error, result.output) == (None, "acbacb|a[b]c")
