"""Start-up cost: what each entry path imports, and that the fast paths answer the same."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.main import get_command_name
from typer.testing import CliRunner

from tests.test_e2e import wfkit
from wfkit import __version__
from wfkit.cli.app import app, app_for, invoked_command


def fresh(code: str) -> str:
    """stdout of ``code`` in a new interpreter (nothing imported yet)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout


@pytest.mark.parametrize("argv", [["--version"], ["version"]])
def test_version_imports_neither_the_cli_nor_the_engine(argv: list[str]) -> None:
    out = fresh(
        "import sys\n"
        f"sys.argv = ['wfkit', *{argv!r}]\n"
        "from wfkit.cli.entry import main\n"
        "main()\n"
        "heavy = [m for m in ('typer', 'rich', 'pydantic', 'yaml', 'jinja2', 'wfkit.cli.app',"
        " 'wfkit.language', 'wfkit.engine') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    assert out.splitlines() == [f"wfkit {__version__}", "HEAVY []"]


def test_version_fast_path_prints_what_the_typer_command_prints() -> None:
    entry = wfkit("--version")
    typer_version = CliRunner().invoke(app, ["version"])
    assert entry.returncode == 0, entry.stderr
    assert entry.stdout == typer_version.stdout == f"wfkit {__version__}\n"


def test_other_arguments_go_to_the_cli() -> None:
    result = wfkit("version", "--help")
    assert result.returncode == 0
    assert "Print wfkit's version." in result.stdout


def test_file_format_models_are_built_on_first_use_not_at_import() -> None:
    out = fresh(
        "from wfkit.language import models as m\n"
        "print('AT IMPORT', m.Workflow.__pydantic_complete__,"
        " m.ShellCommandStep.__pydantic_complete__)\n"
        "wf = m.Workflow.model_validate({'name': 'x', 'steps': [{'type': 'break'}]})\n"
        "print('AFTER', m.Workflow.__pydantic_complete__, type(wf.steps[0]).__name__)\n"
    )
    assert out.splitlines() == ["AT IMPORT False False", "AFTER True BreakStep"]


def command_names(lean: typer.Typer) -> list[str]:
    return [
        info.name or get_command_name(info.callback.__name__) for info in lean.registered_commands
    ]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["run", "flow.yaml"], "run"),
        (["--log-level", "debug", "--verbose", "run", "flow.yaml"], "run"),
        (["--log-format=json", "explain", "flow.yaml"], "explain"),
        (["test-transform", "--help"], "test-transform"),
    ],
)
def test_a_command_line_that_names_one_command_builds_only_that_one(
    argv: list[str], named: str
) -> None:
    assert invoked_command(argv) == named
    assert command_names(app_for(argv)) == [named]
    assert len(app.registered_commands) > 10  # the app itself keeps every command


@pytest.mark.parametrize(
    "argv", [[], ["--help"], ["--help", "run"], ["rn", "flow.yaml"], ["--", "run"]]
)
def test_help_and_unknown_names_get_the_whole_command_tree(argv: list[str]) -> None:
    assert app_for(argv) is app


def test_shell_completion_gets_the_whole_command_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_WFKIT_COMPLETE", "complete_bash")
    assert app_for(["run", "flow.yaml"]) is app


def test_group_options_before_a_lean_command_still_apply(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text("name: f\nsteps:\n  - {type: state_update, path: raw.n, value: 1}\n")
    result = wfkit(
        "--log-format",
        "json",
        "--log-level",
        "debug",
        "run",
        str(flow),
        "--store",
        str(tmp_path / "st"),
    )
    assert result.returncode == 0, result.stderr
    assert '"message": "run succeeded"' in result.stderr  # the group's --log-format applied


def test_an_unknown_command_still_suggests_the_near_ones() -> None:
    result = wfkit("rn")
    assert result.returncode == 2
    assert "Did you mean 'run'" in result.stderr


def test_a_finished_run_is_not_formatted_by_the_event_loop_at_its_end(tmp_path: Path) -> None:
    """An asyncio runner ends by formatting ``repr`` of its main task's result (through
    ``signal.getsignal``); a run report's repr grows with its steps, so none is made."""
    code = (
        "import asyncio, sys\n"
        "from wfkit.commands.results import RunReport\n"
        "from wfkit.commands._runs import run_to_end\n"
        "from wfkit.commands.run import run_workflow_async\n"
        "made = []\n"
        "RunReport.__repr__ = lambda self: made.append(1) or 'report'\n"
        f"flow, store = {str(tmp_path / 'flow.yaml')!r}, {str(tmp_path / 'store')!r}\n"
        "run_to_end(run_workflow_async(flow, store=store))\n"
        "print(len(made))\n"
        "asyncio.run(run_workflow_async(flow, store=store))\n"
        "print(len(made))\n"
    )
    (tmp_path / "flow.yaml").write_text(
        "name: n\nsteps:\n  - {type: state_update, path: raw.n, value: 1}\n"
    )
    mine, plain = fresh(code).split()
    assert mine == "0"
    assert int(plain) > 0  # what it avoids: the plain asyncio.run formats it


def test_the_pytest_plugin_loads_neither_the_engine_nor_jinja2() -> None:
    out = fresh(
        "import sys\n"
        "import wfkit.testing.pytest_plugin\n"
        "heavy = [m for m in ('wfkit.engine', 'wfkit.commands', 'wfkit.language', 'jinja2')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    assert out.splitlines() == ["HEAVY []"]


def test_the_testing_helpers_load_on_first_use() -> None:
    out = fresh(
        "from wfkit.testing import RunReport, assert_state, matches, run_with_mocks\n"
        "print(RunReport.__name__, matches({'ge': 1}, 2)[0], callable(run_with_mocks))\n"
    )
    assert out.splitlines() == ["RunReport True True"]
