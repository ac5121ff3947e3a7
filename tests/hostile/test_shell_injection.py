"""Injection payloads per quoting context: the command receives the exact value, always."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfkit.commands import RunReport
from wfkit.commands.explain import explain_workflow
from wfkit.commands.logs import run_logs
from wfkit.errors import ExpressionError, InputError, LoadError
from wfkit.language.expressions import Value
from wfkit.language.loader import load_text
from wfkit.language.shellquote import render_command

Runner = Callable[..., RunReport]

PAYLOADS = [
    "x=$(touch CANARY)",
    "'$(touch CANARY)'",
    "'; touch CANARY; '",
    '"; touch CANARY; "',
    "`touch CANARY`",
    "\\'$(touch CANARY)\\'",
    '\\"$(touch CANARY)\\"',
    "a\ntouch CANARY\n",
    "$(touch CANARY)",
    "'\"`touch CANARY`\"'",
    "${IFS}$(touch${IFS}CANARY)",
    "' && touch CANARY #",
    '" && touch CANARY #',
    "\\",
    "'",
    '"',
    "",
    "-n",
    "*",
    "~",
    "é — ✓ 🚀",
]

# (template, how the printed text relates to the value)
CONTEXTS: list[tuple[str, Callable[[str], str]]] = [
    ("printf %s {{ v }}", lambda v: v),
    ("printf %s '{{ v }}'", lambda v: v),
    ('printf %s "{{ v }}"', lambda v: v),
    ("printf %s pre'{{ v }}'post", lambda v: f"pre{v}post"),
    ('printf %s "pre{{ v }}post"', lambda v: f"pre{v}post"),
    ("printf %s --opt={{ v }}", lambda v: f"--opt={v}"),
    ('printf %s "$(printf %s {{ v }})"', lambda v: v.rstrip("\n")),
    ("printf %s {{ v }} # and {{ v }}", lambda v: v),
    ("{% if v %}printf %s '{{ v }}'{% else %}printf %s ''{% endif %}", lambda v: v),
    ("cat <<'EOF'\nhi\nEOF\nprintf %s {{ v }}", lambda v: "hi\n" + v),
    ('printf %s "a\\"b{{ v }}"', lambda v: 'a"b' + v),
    ("printf %s \\'{{ v }}", lambda v: "'" + v),
    ("printf %s \"$(printf %s '(' )\"{{ v }}", lambda v: "(" + v),
    ("(printf %s {{ v }})", lambda v: v),
    ("printf %s $( (printf %s x) ){{ v }}", lambda v: "x" + v),
]


def _run(template: str, value: str, cwd: Path, shell: str = "/bin/sh") -> bytes:
    compiled = Value(template, shell=True)
    command = render_command(lambda: compiled.render({"v": value}))
    if value:  # the text the shell reads is the same whatever the value: none of its bytes
        assert command.text == render_command(lambda: compiled.render({"v": "V"})).text
    done = subprocess.run(
        [shell, "-c", command.text],
        cwd=cwd,
        env={**os.environ, **command.env},
        capture_output=True,
        timeout=10,
        check=False,
    )
    return done.stdout


@pytest.mark.parametrize(("template", "expected"), CONTEXTS)
@pytest.mark.parametrize("payload", PAYLOADS)
def test_payloads_reach_the_command_exactly(
    template: str, expected: Callable[[str], str], payload: str, tmp_path: Path
) -> None:
    assert _run(template, payload, tmp_path) == expected(payload).encode()
    assert not (tmp_path / "CANARY").exists()


VALUES = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("'\"`$()\\\n\t ;&|<>#*?~!{}[]-=")),
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
    ),
    max_size=24,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=VALUES, context=st.sampled_from(CONTEXTS))
def test_random_values_reach_the_command_exactly(
    value: str, context: tuple[str, Callable[[str], str]], tmp_path: Path
) -> None:
    template, expected = context
    assert _run(template, value, tmp_path) == expected(value).encode()
    assert not (tmp_path / "CANARY").exists()


def test_the_issue_payload_in_a_run_creates_nothing(run_yaml: Runner, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x=$(touch PWNED)\nother\n")
    report = run_yaml(
        """
        name: grep
        inputs: {x: {type: string}}
        steps:
          - id: count
            type: shell_command
            command: "grep -c '{{ x }}' f"
            working_directory: .
        """,
        {"x": "x=$(touch PWNED)"},
    )
    assert report.status == "succeeded", report.error
    assert report.steps[0].id == "count"
    assert not (tmp_path / "PWNED").exists()


def test_a_nul_in_a_value_is_an_input_error() -> None:
    compiled = Value("echo {{ v }}", shell=True)
    with pytest.raises(InputError, match="NUL"):
        render_command(lambda: compiled.render({"v": "a\0b"}))


@pytest.mark.parametrize(
    ("command", "why"),
    [
        ("cat <<'EOF'\n{{ v }}\nEOF", "here-document whose delimiter is quoted"),
        ("echo `echo {{ v }}`", "backticks"),
        ('echo "C:\\{{ v }}"', "after a backslash"),
        ("echo \\{{ v }}", "after a backslash"),
        ('echo "${U:-{{ v }}}"', "parameter expansion"),
        ("echo $(( {{ v }} ))", "arithmetic"),
        ("echo ${{ v }}", "after a `\\$`"),
        ("echo $'{{ v }}'", "\\$'...' quotes"),
        ("{% filter upper %}echo {{ v }}{% endfilter %}", "rewrites the text"),
        ("{% set c %}echo {{ v }}{% endset %}{{ c }}", "rewrites the text"),
    ],
)
def test_contexts_without_exact_quoting_are_load_errors(command: str, why: str) -> None:
    text = f"name: q\nsteps:\n  - type: shell_command\n    command: {json.dumps(command)}\n"
    with pytest.raises(LoadError, match=why) as info:
        load_text(text, "q.yaml")
    assert info.value.line is not None


def test_explain_notes_unnecessary_quotes(write: Callable[..., Path]) -> None:
    flow = write(
        """
        name: q
        inputs: {x: {type: string, default: a}}
        steps:
          - {id: quoted, type: shell_command, command: "grep -c '{{ x }}' f"}
          - {id: plain, type: shell_command, command: "grep -c {{ x }} f"}
        """
    )
    notes = [w for w in explain_workflow(flow).warnings if w.kind == "shell_quotes"]
    assert [n.step_id for n in notes] == ["quoted"]
    assert "single-quoted quotes around {{ x }} are unnecessary" in notes[0].message


def test_a_background_child_does_not_hold_the_step_open(run_yaml: Runner) -> None:
    started = time.perf_counter()
    report = run_yaml(
        """
        name: bg
        steps:
          - {id: bg, type: shell_command, command: "sleep 600 & echo started"}
          - {id: forever, type: shell_command, command: "sleep 987611 &"}
        """
    )
    assert time.perf_counter() - started < 120  # was 600 s, and forever for the second
    assert report.status == "succeeded"
    assert report.steps[0].status == "succeeded"
    gone = subprocess.run(["pgrep", "-f", "sleep 987611"], capture_output=True, check=False)
    assert gone.stdout == b""  # what the shell left in its group was ended


def test_explain_says_how_the_memory_limit_is_enforced(write: Callable[..., Path]) -> None:
    flow = write(
        "name: m\nsteps:\n  - {id: s, type: shell_command, command: 'true', memory_limit_mb: 64}\n"
    )
    notes = [w for w in explain_workflow(flow).warnings if w.kind == "memory_limit"]
    assert len(notes) == 1
    assert notes[0].message.startswith("memory_limit_mb=64 is enforced by ")
    assert "RLIMIT_AS" in notes[0].message or "cgroup v2" in notes[0].message


# The shapes an outside review ran injected commands (or inexact values) with, under the
# per-context escaping that came before values were passed as data.
RAN_BEFORE = [
    ('echo "$(case a in a) echo {{ x }};; esac)"', "a; touch PWNED", "a; touch PWNED"),
    ("cat <<%%\n{{ x }}\n%%", "$(touch PWNED)", "$(touch PWNED)"),
    ("cat <<EOF\n{{ x }}\n  EOF\nEOF \nEOF", "$(touch PWNED)", "$(touch PWNED)\n  EOF\nEOF "),
    ("echo {% if false %}'{% endif %}{{ x }}", "x; touch PWNED", "x; touch PWNED"),
    ("echo a {%- if true %}{% endif %}#{{ x }}", "x; touch PWNED", "a#x; touch PWNED"),
]
REFUSED_AT_LOAD = [
    ('echo "C:\\{{ x }}"', "after a backslash"),
    ("echo \\{{ x }}", "after a backslash"),
    ('echo "${U:-{{ x }}}"', "parameter expansion"),
    ("echo $(( {{ x }} ))", "arithmetic"),
    ("echo ${{ x }}", "after a `\\$`"),
]


def _flow(command: str) -> str:
    return (
        "name: shape\ninputs: {x: {type: string}}\nsteps:\n"
        f"  - {{id: s, type: shell_command, command: {json.dumps(command)}}}\n"
    )


@pytest.mark.parametrize(("command", "value", "printed"), RAN_BEFORE)
def test_shapes_that_ran_injected_commands_give_the_exact_value(
    command: str, value: str, printed: str, run_yaml: Runner, tmp_path: Path
) -> None:
    report = run_yaml(_flow(command), {"x": value})
    assert report.status == "succeeded", report.error
    assert report.state.inputs == {"x": value}
    assert not (tmp_path / "PWNED").exists()
    logs = run_logs(report.run_id, "s", store=report.store)
    assert logs.attempts[0].stdout.removesuffix("\n") == printed


@pytest.mark.parametrize(("command", "why"), REFUSED_AT_LOAD)
def test_shapes_without_an_exact_reference_are_load_errors(command: str, why: str) -> None:
    with pytest.raises(LoadError, match=why) as info:
        load_text(_flow(command), "shape.yaml")
    assert (info.value.file, info.value.line, info.value.field) == (
        "shape.yaml",
        4,
        "steps[0].command",
    )
    assert 'pass the value in `env:` and write "$NAME"' in info.value.message


# Shapes a red-team review of the by-construction mechanism tried: each is refused, or both
# shells print exactly the value; no canary in either case.
PROBES: list[tuple[str, Callable[[str], str] | None]] = [
    ("{% raw %}len=${#name}{% endraw %}\nprintf %s {{ v }}\n{# it #}", lambda v: v),
    ('{% set a = "%}{#" %}printf %s {{ v }}{# c #}', lambda v: v),
    ('{%+ filter replace("X", v) %}echo X{% endfilter %}', None),
    ('{% filter replace("%", v) %}echo %{% endfilter %}', None),
    ("cat <<EOF\n$((\n{{ v }} ))\nEOF", None),
    ("echo $(true)#$(( {{ v }} ))", None),
    ('echo "$(true)"#$(( {{ v }} ))', None),
    ("echo $\\\n(( {{ v }} ))", None),
    ("cat <\\\n<EOF\n{{ v }}\nEOF", None),
    ("cat <<EOF\na\\\nEOF\n# $(( {{ v }} ))\nEOF", None),
    ('echo "$\\\n{{ v }}"', None),
    ("(( {{ v }} ))", None),
    ("[[ {{ v }} -eq 1 ]]", None),
    ("echo $[{{ v }}]", None),
    ("let x={{ v }}", None),
    ('printf %s ${x:-"}"}{{ v }}', lambda v: "}" + v),
    ("printf %s ${x:-'}'}{{ v }}", lambda v: "}" + v),
    ("printf %s \\\n  {{ v }}", lambda v: v),
    ("cat <<EOF\nx {{ v }} y\nEOF", lambda v: f"x {v} y\n"),
]


@pytest.mark.parametrize(("template", "expected"), PROBES)
@pytest.mark.parametrize("payload", ["a[$(touch CANARY)]", "x; touch CANARY", "a   *", "1+1"])
def test_probes_are_refused_or_exact_in_dash_and_bash(
    template: str, expected: Callable[[str], str] | None, payload: str, tmp_path: Path
) -> None:
    if expected is None:
        with pytest.raises(ExpressionError):
            _run(template, payload, tmp_path)
        assert not (tmp_path / "CANARY").exists()
        return
    for shell in ("/bin/dash", "/bin/bash"):
        assert _run(template, payload, tmp_path, shell).decode() == expected(payload), shell
        assert not (tmp_path / "CANARY").exists()


def test_a_commands_values_are_charged_as_template_output() -> None:
    compiled = Value('echo {{ "x" * 900000 }} {{ "y" * 900000 }}', shell=True)
    with pytest.raises(ExpressionError, match="output more than 1000000 characters"):
        render_command(lambda: compiled.render({}))
