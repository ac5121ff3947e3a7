"""What a user sees: one JSON document on every failure, user data never read as markup, and
the CLI conventions (version, completion, checked option choices, NO_COLOR / FORCE_COLOR)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from wfkit import __version__
from wfkit.cli.app import app
from wfkit.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from wfkit.cli.views import common, debug, explain, health
from wfkit.cli.views import run as run_view
from wfkit.controls import CONTROL

ERROR_KEYS = {"type", "message", "file", "line", "column", "field"}


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def one_error(result: Any) -> dict[str, Any]:
    """The ``error`` object of the single JSON document on stdout."""
    error = json.loads(result.stdout)["error"]
    assert set(error) >= ERROR_KEYS
    return error  # type: ignore[no-any-return]


SEED = """
name: seed
inputs:
  who: {type: string, default: world}
steps:
  - {id: hi, type: user_message, message: "hi {{ who }}"}
"""


# -- 1. --json always yields one JSON document --------------------------------------------


def test_json_failure_of_a_missing_workflow_file(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", "typo.yaml", "--json")
    assert result.exit_code == EXIT_USAGE
    error = one_error(result)
    assert (error["type"], error["file"]) == ("LoadError", "typo.yaml")
    assert "no such file" in error["message"]


def test_json_failure_of_an_unknown_input(cli, write) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", str(write(SEED)), "-i", "x=1", "--json")
    assert result.exit_code == EXIT_USAGE
    error = one_error(result)
    assert error["type"] == "InputError"
    assert "unknown input(s): x" in error["message"]


def test_json_failure_of_a_load_error_names_line_column_and_field(cli, write) -> None:  # type: ignore[no-untyped-def]
    bad = write("name: b\nsteps:\n  - type: shel\n", "bad.yaml")
    error = one_error(cli("explain", str(bad), "--json"))
    assert error["type"] == "LoadError"
    assert (error["file"], error["line"], error["column"]) == (str(bad), 3, 5)


def test_json_failure_of_an_unknown_run(cli) -> None:  # type: ignore[no-untyped-def]
    for command in ("debug", "trace", "logs", "resume"):
        result = cli(command, "nonexist", "--json")
        assert result.exit_code == EXIT_USAGE, command
        assert one_error(result)["type"] in ("RunNotFoundError", "StoreError"), command


def test_json_failure_of_bench(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("bench", "out.yaml", "--json")
    assert result.exit_code == EXIT_USAGE
    assert one_error(result)["file"] == "out.yaml"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--json"], "Missing argument 'file'"),
        (["run", "x.yaml", "--bogus", "--json"], "No such option: --bogus"),
        (["trace", "r1", "--format", "svg", "--json"], "'svg' is not one of"),
        (["--log-level", "loud", "runs", "--json"], "'loud' is not one of"),
        (["run", "x.yaml", "--steps", "some", "--json"], "'some' is not one of"),
        (["prune", "--json"], "prune needs --older-than"),
    ],
)
def test_json_usage_errors_of_the_command_line(cli, args, message) -> None:  # type: ignore[no-untyped-def]
    result = cli(*args)
    assert result.exit_code == EXIT_USAGE
    error = one_error(result)
    assert message in error["message"]


def test_json_usage_error_through_the_installed_entry_point(tmp_path: Path) -> None:
    wfkit = Path(sys.executable).with_name("wfkit")
    done = subprocess.run(
        [str(wfkit), "run", "--json"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == EXIT_USAGE
    assert json.loads(done.stdout)["error"]["type"] == "UsageError"


def test_metrics_without_the_extra_is_exit_2_with_the_install_hint(  # type: ignore[no-untyped-def]
    cli, write, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # the extra is not installed
    prom = tmp_path / "m.prom"
    result = cli("run", str(write(SEED)), "--metrics", str(prom), "--json")
    assert result.exit_code == EXIT_USAGE
    assert one_error(result)["message"] == (
        "--metrics needs prometheus-client: pip install 'wfkit[metrics]'"
    )
    human = cli("run", str(write(SEED)), "--metrics", str(prom))
    assert "pip install 'wfkit[metrics]'" in human.stderr
    assert not prom.exists()


# -- 2. user data is never read as rich markup ---------------------------------------------

HOSTILE = "[/] :fire: [red]x"
HOSTILE_FLOW = """
name: "m:smile: [bold]w"
inputs:
  who: {type: string, default: "[/] :fire: [red]x"}
state_schema:
  raw: {said: string}
  computed:
    shout: {from: raw.said, transform: "input ~ ' [b]:fire:'"}
config: {trace: true}
steps:
  - {id: say, type: state_update, path: raw.said, value: "{{ who }}"}
  - {id: bad, type: error, message: "[red]boom :fire: [/]"}
"""


def rendered(renderable: Any) -> str:
    """As a user's terminal gets it: rich's defaults (markup and emoji codes on)."""
    out = StringIO()
    Console(width=200, color_system=None, file=out).print(renderable)
    return out.getvalue()


def test_hostile_strings_show_exactly_in_every_view(write) -> None:  # type: ignore[no-untyped-def]
    from wfkit.commands import list_runs, run_workflow
    from wfkit.commands.debug import debug_run
    from wfkit.commands.explain import explain_workflow
    from wfkit.commands.health import check_health
    from wfkit.commands.trace import trace_run
    from wfkit.commands.transform import evaluate_transform
    from wfkit.errors import LoadError

    flow = write(HOSTILE_FLOW)
    report = run_workflow(flow)
    views = {
        "run": run_view.run_report(report, True),
        "explain": explain.explanation_tree(explain_workflow(flow)),
        "debug": debug.debug_view(debug_run(report.run_id)),
        "trace": debug.trace_view(trace_run(report.run_id)),
        "runs": debug.runs_table(list_runs()),
        "health": health.health_view(check_health(workflow=flow)),
        "transform": explain.transform_result(
            evaluate_transform("input ~ ' :fire: [b]'", HOSTILE, None)
        ),
        "error": common.error_view(LoadError(f"bad {HOSTILE}", file="[x].yaml")),
    }
    texts = {name: rendered(view) for name, view in views.items()}
    for name in ("run", "debug", "trace", "runs", "health", "explain"):
        assert "m:smile: [bold]w" in texts[name], (name, texts[name])
    for name in ("run", "debug", "explain"):
        assert HOSTILE in texts[name], (name, texts[name])
    assert "[red]boom :fire: [/]" in texts["run"]
    assert "[red]boom :fire: [/]" in texts["debug"]
    assert f"{HOSTILE} :fire: [b]" in texts["transform"]
    assert "[x].yaml: bad [/] :fire: [red]x" in texts["error"]
    assert "input ~ ' [b]:fire:'" in texts["explain"]
    for text in texts.values():
        assert "🔥" not in text
        assert "😄" not in text
        assert "\\[" not in text


def test_hostile_strings_show_exactly_through_the_cli(cli, write) -> None:  # type: ignore[no-untyped-def]
    flow = write(HOSTILE_FLOW)
    result = cli("run", str(flow))
    assert result.exit_code == EXIT_FAILED
    assert "m:smile: [bold]w" in result.stdout
    assert '"[/] :fire: [red]x"' in result.stdout
    runs = cli("runs")
    assert "m:smile: [bold]w" in runs.stdout


def test_a_warning_keeps_its_brackets() -> None:
    from wfkit.cli.common import error_view_text

    text = rendered(error_view_text(ValueError("pip install 'wfkit[metrics]'")))
    assert text == "warning: pip install 'wfkit[metrics]'\n"


def test_a_prompt_from_the_workflow_is_shown_as_written() -> None:
    out = StringIO()
    console = Console(width=100, color_system=None, file=out, force_terminal=False)
    reporter = run_view.LiveReporter(console)
    console.file = out
    sys_stdin = sys.stdin
    try:
        sys.stdin = StringIO("yes\n")
        answer = reporter.ask("Deploy [prod] :rocket:?", ["yes", "no"], None)
    finally:
        sys.stdin = sys_stdin
    assert answer == "yes"
    assert "Deploy [prod] :rocket:? [yes/no]" in out.getvalue()


# -- 4. --version, completion, option choices, colour --------------------------------------


def test_version_option_and_command(cli) -> None:  # type: ignore[no-untyped-def]
    for args in (["--version"], ["version"]):
        result = cli(*args)
        assert result.exit_code == EXIT_OK
        assert result.stdout == f"wfkit {__version__}\n"


def test_version_through_the_entry_point_also_with_other_options() -> None:
    wfkit = Path(sys.executable).with_name("wfkit")
    done = subprocess.run(
        [str(wfkit), "--log-level", "debug", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, f"wfkit {__version__}\n")


def test_shell_completion_is_offered(cli) -> None:  # type: ignore[no-untyped-def]
    helptext = cli("--help").stdout
    assert "--install-completion" in helptext
    assert "--show-completion" in helptext
    env = {**os.environ, "_WFKIT_COMPLETE": "complete_bash", "COMP_WORDS": "wfkit ru"}
    env["COMP_CWORD"] = "1"
    wfkit = Path(sys.executable).with_name("wfkit")
    done = subprocess.run(
        [str(wfkit)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0
    assert {"run", "runs"} <= set(done.stdout.split())


def test_log_level_is_checked_against_its_choices(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("--log-level", "loud", "runs")
    assert result.exit_code == EXIT_USAGE
    assert "'loud' is not one of 'debug', 'info', 'warning', 'error'" in result.stderr
    assert cli("--log-level", "warning", "runs").exit_code == EXIT_OK


def _run_colour(env_extra: dict[str, str], flow: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(env_extra)
    wfkit = Path(sys.executable).with_name("wfkit")
    done = subprocess.run(
        [str(wfkit), "run", str(flow)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_force_color_and_no_color_are_honoured(write) -> None:  # type: ignore[no-untyped-def]
    flow = write(SEED)
    assert "\x1b[32msucceeded" in _run_colour({"FORCE_COLOR": "1"}, flow)
    plain = _run_colour({}, flow)  # a pipe: no colour
    assert "\x1b[" not in plain
    no_colour = _run_colour({"FORCE_COLOR": "1", "NO_COLOR": "1"}, flow)
    assert "\x1b[32m" not in no_colour
    assert "succeeded" in no_colour


# -- 4b. text never drives the terminal ---------------------------------------------------

# ESC sequences that clear the screen, set the window title, write the clipboard (OSC 52)
# and hide what follows; in a workflow's name, a message, a command's output, a case name
TERMINAL_FLOW = r"""
name: "w\e[2J"
steps:
  - {id: say, type: user_message, message: "hi \e]0;pwned\a there \e[8m hidden"}
  - id: bad
    type: shell_command
    command: |
      printf '\033]52;c;cHduZWQ=\007 oops\302\233 31m\n' >&2; exit 3
"""
TERMINAL_SUITE = r"""
workflow: flow.yaml
cases:
  - name: "case \e]0;title\a \x9b2J \x7f"
    expect: {status: failed}
"""


def _wfkit(*args: str, colour: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    if colour:
        env["FORCE_COLOR"] = "1"
    return subprocess.run(
        [str(Path(sys.executable).with_name("wfkit")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _no_sequence_from_content(text: str) -> None:
    for sequence in ("\x1b]", "\x1b[2J", "\x1b[8m", "\x9b", "\x7f", "\x07"):
        assert sequence not in text, (sequence, text)


def test_control_characters_in_what_is_shown_are_shown_not_obeyed(write) -> None:  # type: ignore[no-untyped-def]
    flow = write(TERMINAL_FLOW)
    suite = write(TERMINAL_SUITE, "flow.wftest.yaml")
    store = str(flow.parent / "store")
    ran = _wfkit("run", str(flow), "--store", store)
    assert ran.returncode == EXIT_FAILED, ran.stderr
    shown = ran.stdout + ran.stderr
    _no_sequence_from_content(shown)
    assert "\x1b[31m" in shown  # wfkit's own colours still reach the terminal
    assert "w␛[2J" in shown
    assert "hi ␛]0;pwned there ␛[8m hidden" in shown  # rich drops BEL itself
    assert "␛]52;c;cHduZWQ=" in shown
    assert "oops� 31m" in shown  # a C1 control (8-bit CSI)
    run_id = json.loads(_wfkit("runs", "--store", store, "--json").stdout)[0]["run_id"]
    logs = _wfkit("logs", run_id, "--store", store)
    assert logs.returncode == 0, logs.stderr
    _no_sequence_from_content(logs.stdout)
    assert "␛]52;c;cHduZWQ=" in logs.stdout
    tested = _wfkit("test", str(suite), colour=False)
    _no_sequence_from_content(tested.stdout + tested.stderr)
    assert "\x1b" not in tested.stdout + tested.stderr
    assert "case ␛]0;title �2J ␡" in tested.stderr
    # --json carries the text as it is
    document = json.loads(_wfkit("run", str(flow), "--store", store, "--json").stdout)
    assert document["messages"][0]["text"] == "hi \x1b]0;pwned\x07 there \x1b[8m hidden"
    # so do the HTML pages, escaped in their data and shown as symbols in their markup
    page = _wfkit("report", document["run_id"], "--store", store, "-o", "-").stdout
    assert "\\u001b]0;pwned\\u0007" in page
    assert "\\u009b" in page  # the command's 8-bit CSI, in its captured output
    suite_page = _wfkit("test", str(suite), "--html", "-", colour=False).stdout
    assert "case ␛]0;title␇ �2J ␡" in suite_page
    for html_text in (page, suite_page):
        assert not CONTROL.search(html_text.replace("\n", "")), CONTROL.findall(html_text)


def test_text_logs_and_a_servers_echoed_stderr_show_control_characters(write) -> None:  # type: ignore[no-untyped-def]
    flow = write(TERMINAL_FLOW)
    store = str(flow.parent / "store")
    logged = _wfkit("--log-format", "text", "run", str(flow), "--store", store, colour=False)
    assert "wfkit.run" in logged.stderr, logged.stderr
    assert "\x1b" not in logged.stderr
    assert "␛]0;pwned" in logged.stderr
    notes = Path(__file__).parents[2] / "examples" / "servers" / "notes.py"
    noisy = write(
        "name: noisy\nmcp_servers:\n  notes:\n    command: sh\n    args:\n      - -c\n"
        '      - printf \'srv \\033]0;PWNED\\007 \\302\\233 up\\n\' >&2; exec "$0" "$1"\n'
        f"      - {sys.executable}\n      - {notes}\n"
        "steps:\n  - {type: mcp_call, server: notes, tool: add_note,"
        " parameters: {title: t, body: b}}\n",
        "noisy.yaml",
    )
    echoed = _wfkit("--verbose", "run", str(noisy), "--store", store, colour=False)
    assert echoed.returncode == EXIT_OK, echoed.stderr
    assert "srv ␛]0;PWNED␇ � up" in echoed.stderr
    assert "\x1b" not in echoed.stderr
    assert "\x9b" not in echoed.stderr


def test_a_hyperlink_target_is_cleaned_and_styling_kept() -> None:
    from rich.style import Style
    from rich.text import Text

    from wfkit.cli.terminal import SafeConsole

    out = StringIO()
    console = SafeConsole(file=out, force_terminal=True, color_system="standard", width=80)
    console.print(Text("click", style=Style(link="http://x\x1b[2J\x1b]0;t\x07", bold=True)))
    shown = out.getvalue()
    assert "\x1b[1m" in shown  # bold, from rich itself
    assert "\x1b]8;" in shown  # the link, from rich itself
    assert "http://x␛[2J␛]0;t␇" in shown
    assert "\x1b[2J" not in shown
    assert "\x07" not in shown


def test_visible_keeps_tab_newline_and_printable_text() -> None:
    from wfkit.cli.terminal import visible

    assert visible("a\tb\nc ✓ é") == "a\tb\nc ✓ é"
    assert visible("\x00\x1b\x1f\x7f\x80\x9f") == "␀␛␟␡��"


# -- 5. load errors: every problem at once, sorted by line ---------------------------------

MANY_PROBLEMS = """\
name: x
steps:
  - {id: a, type: foreach, items: 5, body: []}
  - {id: b, type: shell_command, comand: ls}
config: {bogus: 1}
"""


def test_every_load_problem_in_text_and_json(cli, write) -> None:  # type: ignore[no-untyped-def]
    flow = write(MANY_PROBLEMS)
    human = cli("explain", str(flow))
    assert human.exit_code == EXIT_USAGE
    text = " ".join(human.stderr.split())
    assert f"4 problems in {flow}" in text
    order = [text.index(f"{flow}:{n}:") for n in (3, 4, 5)]
    assert order == sorted(order)
    assert "items must be a list, a mapping or an expression, got 5" in text
    error = one_error(cli("explain", str(flow), "--json"))
    assert [(e["line"], e["field"]) for e in error["errors"]] == [
        (3, "steps[0].items"),
        (4, "steps[1]"),
        (4, "steps[1].comand"),
        (5, "config.bogus"),
    ]
