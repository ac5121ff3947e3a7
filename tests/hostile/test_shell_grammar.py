"""Commands generated from a grammar of shell contexts, run by real dash and bash.

Each command is ``printf '%s|'`` and words drawn from the grammar, each holding the value
``{{ v }}`` in one context. For every command and value: either wfkit refuses it (at load,
or when the command is bound, naming the context), or each shell prints exactly what the
context makes of the value and no injected command ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfkit.errors import ExpressionError
from wfkit.language.expressions import Value
from wfkit.language.shellquote import ShellCommand, render_command

SHELLS = [shell for shell in ("/bin/dash", "/bin/bash") if Path(shell).exists()]

Expected = Callable[[str, str], str] | None  # (value, delimiter) -> printed; None: refused

# (word template, what printf prints for it); ``D`` is replaced by a here-document delimiter
WORDS: list[tuple[str, Expected]] = [
    ("{{ v }}", lambda v, d: v),
    ("pre{{ v }}post", lambda v, d: f"pre{v}post"),
    ("'{{ v }}'", lambda v, d: v),
    ("'a b'{{ v }}'c'", lambda v, d: f"a b{v}c"),
    ('"{{ v }}"', lambda v, d: v),
    ('"x $HOME {{ v }}"', lambda v, d: f"x {os.environ['HOME']} {v}"),
    ('"\\\\{{ v }}"', lambda v, d: "\\" + v),
    ('"$(printf %s {{ v }})"', lambda v, d: v.rstrip("\n")),
    ('"$(printf %s "{{ v }}")"', lambda v, d: v.rstrip("\n")),
    ("\"$(printf %s '{{ v }}')\"", lambda v, d: v.rstrip("\n")),
    ('"$(case a in a) printf %s {{ v }};; esac)"', lambda v, d: v.rstrip("\n")),
    ('"$(case a in (a) printf %s {{ v }};; esac)"', lambda v, d: v.rstrip("\n")),
    ('"$( (printf %s {{ v }}) )"', lambda v, d: v.rstrip("\n")),
    ('"$(cat <<D\n{{ v }}\nD\n)"', lambda v, d: v.rstrip("\n")),
    ('"$(cat <<-D\n\t{{ v }}\n\tD\n)"', lambda v, d: v.rstrip("\n")),
    ('"$(cat <<D\n  D\nD \n{{ v }}\nD\n)"', lambda v, d: (f"  {d}\n{d} \n" + v).rstrip("\n")),
    ("{% if true %}'{% endif %}{{ v }}{% if true %}'{% endif %}", lambda v, d: v),
    ('{% for i in [1] %}"{{ v }}"{% endfor %}', lambda v, d: v),
    ("\"$(cat <<'D'\n{{ v }}\nD\n)\"", None),
    ('"$(cat <<"D"\n{{ v }}\nD\n)"', None),
    ('"$(cat <<\\D\n{{ v }}\nD\n)"', None),
    ("`printf %s {{ v }}`", None),
    ('"`printf %s {{ v }}`"', None),
    ("$(( {{ v }} ))", None),
    ('"${U:-{{ v }}}"', None),
    ("${{ v }}", None),
    ("\\{{ v }}", None),
    ('"C:\\{{ v }}"', None),
    ("$'{{ v }}'", None),
    ("{% filter upper %}{{ v }}{% endfilter %}", None),
    ('"$\\\n{{ v }}"', None),
    ("$[{{ v }}]", None),
    ('"x \\\n{{ v }}"', lambda v, d: f"x {v}"),
    ('${x:-"}"}{{ v }}', lambda v, d: "}" + v),
    ("{% raw %}${#x}{% endraw %}{{ v }}{# c #}", lambda v, d: "0" + v),
]
DELIMITERS = ["EOF", "%%", "E-O.F", "_9", "end:"]


def _command(words: list[int], delimiter: str, commented: bool) -> tuple[str, list[Expected]]:
    chosen = [WORDS[i] for i in words]
    template = "printf '%s|' " + " ".join(w.replace("D", delimiter) for w, _ in chosen)
    if commented:  # a comment ends the line: a value there is inert
        template += " # {{ v }} $(touch CANARY)"
    return template, [expected for _, expected in chosen]


@pytest.mark.skipif(not SHELLS, reason="neither dash nor bash is installed")
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    words=st.lists(st.integers(0, len(WORDS) - 1), min_size=1, max_size=4),
    delimiter=st.sampled_from(DELIMITERS),
    commented=st.booleans(),
    value=st.lists(
        st.one_of(
            st.sampled_from(list("'\"`$()\\\n\t ;&|<>#*?~!{}[]-=%")),
            st.sampled_from(["$(touch CANARY)", "`touch CANARY`", "EOF", "%%", "\nEOF\n"]),
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
        ),
        max_size=10,
    ).map("".join),
)
def test_a_value_is_refused_or_reaches_the_command_exactly(
    words: list[int], delimiter: str, commented: bool, value: str, tmp_path: Path
) -> None:
    template, expected = _command(words, delimiter, commented)
    refusal = None
    try:
        compiled = Value(template, shell=True)
        command = render_command(lambda: compiled.render({"v": value}))
    except ExpressionError as refused:
        refusal = refused.message
    if refusal is not None:
        assert None in expected, refusal  # only a refused context is refused
        assert "cannot be passed as data" in refusal or "rewrites the text" in refusal
        return
    assert None not in expected, f"{template!r} was not refused"
    assert isinstance(command, ShellCommand)
    want = "".join(f"{e(value, delimiter)}|" for e in expected if e is not None)
    for shell in SHELLS:
        done = subprocess.run(
            [shell, "-c", command.text],
            cwd=tmp_path,
            env={**os.environ, **command.env},
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert (shell, done.stdout.decode(errors="surrogateescape")) == (shell, want), (
            template,
            command.text,
            done.stderr,
        )
        assert not (tmp_path / "CANARY").exists()


def test_the_grammar_covers_every_refused_context() -> None:
    refused = [w for w, e in WORDS if e is None]
    assert len(refused) == 14
    assert shutil.which("dash") or shutil.which("bash")
