"""The installed ``wfkit`` entry point in real subprocesses, and what it imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES


def wfkit(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    default_store: bool = False,
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("wfkit")
    argv = [exe] if exe else [sys.executable, "-m", "wfkit"]
    environ = {**os.environ, **(env or {})}
    if default_store:
        environ.pop("WFKIT_STORE", None)
    return subprocess.run(
        [*argv, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=120,
        check=False,
    )


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['wfkit', '--help']\n"
        "from wfkit.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('mcp', 'jinja2', 'prometheus_client', 'pyinstrument', 'rich',"
        " 'wfkit.language', 'wfkit.engine', 'psycopg') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out


def test_core_never_imports_presentation_or_protocol_layers() -> None:
    code = (
        "import sys\n"
        "import wfkit.engine.runtime, wfkit.language.loader, wfkit.store.sqlite, wfkit.commands\n"
        "bad = [m for m in ('typer', 'click', 'rich', 'mcp', 'wfkit.cli.app',"
        " 'wfkit.cli.views.common', 'psycopg') if m in sys.modules]\n"
        "print('BAD', bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "BAD []" in out


def test_engine_never_imports_a_store_or_sqlite() -> None:
    """The engine talks to stores through events and callbacks only."""
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"  # coverage's start-up hook may have loaded sqlite3
        "import wfkit.engine.runtime, wfkit.language.loader, wfkit.engine.steps\n"
        "import wfkit.engine.steps.parallel, wfkit.engine.steps.shell, wfkit.engine.steps.tool\n"
        "bad = [m for m in set(sys.modules) - before if m.startswith(('wfkit.store', "
        "'wfkit.executors', 'wfkit.otel')) or m in "
        "('sqlite3', 'psycopg', 'distributed', 'opentelemetry', 'wfkit.commands')]\n"
        "print('BAD', bad)\n"
    )
    # without coverage's subprocess measurement, which keeps its data in sqlite3
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert "BAD []" in out


def test_entry_point_runs_an_example_and_lists_it(tmp_path: Path) -> None:
    result = wfkit(
        "run",
        str(EXAMPLES / "hello.yaml"),
        "--json",
        cwd=tmp_path,
        env={"WFKIT_STORE": str(tmp_path / "s")},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["state"]["computed"]["count"] == 3
    listed = wfkit("runs", "--json", cwd=tmp_path, env={"WFKIT_STORE": str(tmp_path / "s")})
    assert json.loads(listed.stdout)[0]["run_id"] == report["run_id"]


def test_entry_point_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps: 3\n")
    assert wfkit("run", str(bad), cwd=tmp_path).returncode == 2
    failing = tmp_path / "fail.yaml"
    failing.write_text("name: x\nsteps:\n  - {type: error, message: no way}\n")
    result = wfkit("run", str(failing), "--json", cwd=tmp_path, default_store=True)
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["message"] == "no way"
    assert wfkit("run", cwd=tmp_path).returncode == 2
    assert (tmp_path / ".wfkit" / "runs.db").exists()


@pytest.mark.parametrize("answer", ["blue"])
def test_answers_file_through_the_entry_point(tmp_path: Path, answer: str) -> None:
    flow = tmp_path / "ask.yaml"
    flow.write_text(
        "name: x\nsteps:\n  - {id: colour, type: user_input, prompt: Colour?}\n"
        "  - {type: user_message, message: 'got {{ steps.colour.output }}'}\n"
    )
    answers = tmp_path / "answers.yaml"
    answers.write_text(f"colour: {answer}\n")
    result = wfkit("run", str(flow), "--answers", str(answers), "--json", cwd=tmp_path)
    assert json.loads(result.stdout)["messages"][0]["text"] == f"got {answer}"


def test_user_input_is_answered_at_a_terminal(tmp_path: Path) -> None:
    import pty
    import select

    flow = tmp_path / "ask.yaml"
    flow.write_text(
        "name: x\nsteps:\n  - {id: pick, type: user_input, prompt: Colour?, choices: [red, blue]}\n"
        "  - {type: user_message, message: 'picked {{ steps.pick.output }}'}\n"
    )
    master, slave = pty.openpty()
    exe = shutil.which("wfkit")
    argv = [exe] if exe else [sys.executable, "-m", "wfkit"]
    proc = subprocess.Popen(
        [*argv, "run", str(flow)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=tmp_path,
        env={**os.environ, "TERM": "dumb", "COLUMNS": "80"},
    )
    os.close(slave)
    seen = b""
    answered = False
    while proc.poll() is None or select.select([master], [], [], 0.1)[0]:
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if not answered and b"Colour?" in seen:
            os.write(master, b"blue\n")
            answered = True
    proc.wait(timeout=60)
    os.close(master)
    assert answered, seen.decode(errors="replace")
    assert proc.returncode == 0, seen.decode(errors="replace")
    assert b"picked blue" in seen
