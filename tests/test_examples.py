"""Every example loads, and runs as documented."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from wfkit.commands import run_workflow
from wfkit.language.loader import load_file

WORKFLOWS = sorted(EXAMPLES.glob("*.yaml"))


@pytest.fixture
def flaky_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", f"{EXAMPLES / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FLAKY_STATE_FILE", str(tmp_path / "flaky-count"))


def test_there_are_examples() -> None:
    assert len(WORKFLOWS) >= 4


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_example_loads(path: Path) -> None:
    assert load_file(path).name


def test_hello() -> None:
    report = run_workflow(EXAMPLES / "hello.yaml")
    assert report.status == "succeeded"
    assert report.messages[-1].text == "3 greetings, the last was Hello, Barbara!"


def test_build_project() -> None:
    report = run_workflow(EXAMPLES / "build-project.yaml")
    assert report.status == "succeeded", report.errors
    assert report.state.computed["checked_count"] == 2
    assert report.state.raw["test_runs"] == 1
    artifact = Path(report.state.raw["artifact"])
    assert artifact.name == "sample.tar.gz"
    assert not artifact.parent.exists(), "finally removes the artifact's folder"
    assert report.messages[-1].text == "build finished: succeeded"


def test_parallel_review() -> None:
    report = run_workflow(EXAMPLES / "parallel-review.yaml")
    assert report.status == "succeeded", report.errors
    files = [r["file"] for r in report.state.raw["reports"]]
    assert files == ["hello.yaml", "build-project.yaml", "parallel-review.yaml"]
    expected = sum(len((EXAMPLES / f).read_text().splitlines()) for f in files)
    assert report.state.computed["total_lines"] == expected


def test_flaky_command_fails_then_succeeds(flaky_on_path: None) -> None:
    # the seed example itself runs in tests/core/test_errors.py (it needs virtual time)
    import subprocess

    codes = [
        subprocess.run(["flaky-command.sh"], capture_output=True, check=False).returncode
        for _ in range(3)
    ]
    assert codes == [75, 75, 0]


def test_report_demo_retries_once_and_fails_on_its_last_item(tmp_path: Path) -> None:
    report = run_workflow(EXAMPLES / "report-demo.yaml", {"workdir": str(tmp_path)})
    assert report.status == "failed"
    steps = {s.id: s for s in report.steps}
    assert (steps["fetch"].status, steps["fetch"].attempts) == ("succeeded", 2)
    assert steps["deploy"].status == "failed"
    assert report.error is not None
    assert report.error["cause"]["step_id"] == "deploy/push"
