"""Shared fixtures: an isolated run store per test, and helpers to run YAML text."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wfkit.commands import RunReport, run_workflow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# A suite started in the background of a non-interactive shell (`nohup ... &`, some CI
# runners) inherits SIGINT ignored, and every process it starts would too: Ctrl-C tests
# would send a signal nobody hears. The suite and its processes take Ctrl-C as a terminal
# user's would (a Python handler here becomes the default disposition across exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own store (``WFKIT_STORE``) and working directory."""
    store = tmp_path / "store"
    monkeypatch.setenv("WFKIT_STORE", str(store))
    monkeypatch.chdir(tmp_path)
    return store


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """Write dedented YAML text to a file in the test's folder."""

    def writer(text: str, name: str = "flow.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return writer


@pytest.fixture
def run_yaml(write: Callable[..., Path]) -> Callable[..., RunReport]:
    """Write a workflow and run it through the command layer."""

    def runner(text: str, inputs: dict[str, Any] | None = None, **kw: Any) -> RunReport:
        return run_workflow(write(text), inputs, **kw)

    return runner


pytest_plugins = ["pytester"]


def measured() -> dict[str, str]:
    """The variables that let coverage measure a subprocess (its patched ``subprocess``)."""
    return {k: v for k, v in os.environ.items() if k.startswith("COVERAGE_")}


def wfkit_cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``wfkit ARGS`` in ``cwd`` with its store there (``cwd/store``), only ``PATH`` and
    ``env`` of the environment, measured by coverage."""
    return subprocess.run(
        [sys.executable, "-m", "wfkit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "WFKIT_STORE": str(cwd / "store"), **measured(), **env},
        timeout=300,
        check=False,
    )


def started_run_id(proc: subprocess.Popen[str], hang: float = 60) -> str:
    """The run id, as ``wfkit run`` prints it on stderr when the run starts."""
    assert proc.stderr is not None
    deadline = time.monotonic() + hang
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line.startswith("run ") and line.rstrip().endswith(" started"):
            return line.split()[1]
        if not line and proc.poll() is not None:
            break
    raise AssertionError("the run never printed its id")


def wait_until(check: Callable[[], bool], what: str, hang: float = 60) -> None:
    """Poll ``check`` until it holds; ``hang`` seconds turn a hang into a failure."""
    deadline = time.monotonic() + hang
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
