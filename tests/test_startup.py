"""Start-up cost: what each entry path imports, and that the fast paths answer the same."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests.test_e2e import wfkit
from wfkit import __version__
from wfkit.cli import app


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
        "from wfkit.entry import main\n"
        "main()\n"
        "heavy = [m for m in ('typer', 'rich', 'pydantic', 'yaml', 'jinja2', 'wfkit.cli',"
        " 'wfkit.core') if m in sys.modules]\n"
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
        "from wfkit.core import models as m\n"
        "print('AT IMPORT', m.Workflow.__pydantic_complete__,"
        " m.ShellCommandStep.__pydantic_complete__)\n"
        "wf = m.Workflow.model_validate({'name': 'x', 'steps': [{'type': 'break'}]})\n"
        "print('AFTER', m.Workflow.__pydantic_complete__, type(wf.steps[0]).__name__)\n"
    )
    assert out.splitlines() == ["AT IMPORT False False", "AFTER True BreakStep"]
