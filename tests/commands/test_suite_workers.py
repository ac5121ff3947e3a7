"""``wfkit test --workers N``: cases spread over processes, results as a serial run gives."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.conftest import EXAMPLES

SUITE = """
workflow: pid.yaml
cases:
{cases}
"""

FLOW = """
name: pid
steps:
  - id: who
    type: shell_command
    command: "echo $PPID >> pids.txt"
"""


def wfkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wfkit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def _stable(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The cases of a JSON test report without what differs between any two runs."""
    keep = ("file", "workflow", "name", "status", "failures", "error", "errors_seen", "events")
    return [{k: case.get(k) for k in keep} for case in report["cases"]]


def test_workers_give_the_serial_results_junit_and_coverage(tmp_path: Path) -> None:
    outs = {}
    for workers in ("1", "2"):
        done = wfkit(
            "test",
            str(EXAMPLES / "tests"),
            "--workers",
            workers,
            "--junit-xml",
            str(tmp_path / f"junit{workers}.xml"),
            "--lcov",
            str(tmp_path / f"cov{workers}.lcov"),
            "--json",
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        outs[workers] = json.loads(done.stdout)
    assert len(outs["1"]["cases"]) >= 4
    assert _stable(outs["1"]) == _stable(outs["2"])
    assert outs["1"]["coverage"] == outs["2"]["coverage"]
    assert (tmp_path / "cov1.lcov").read_text() == (tmp_path / "cov2.lcov").read_text()

    def junit(name: str) -> str:
        text = (tmp_path / name).read_text()
        return re.sub(r'(time|timestamp|hostname)="[^"]*"', r'\1=""', text)

    assert junit("junit1.xml") == junit("junit2.xml")


def test_cases_run_in_worker_processes(tmp_path: Path) -> None:
    (tmp_path / "pid.yaml").write_text(textwrap.dedent(FLOW))
    cases = "\n".join(
        f"  - name: case {i}\n    allow_real_shell: true\n    expect: {{status: succeeded}}"
        for i in range(4)
    )
    (tmp_path / "pid.wftest.yaml").write_text(SUITE.format(cases=cases))
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfkit", "test", "pid.wftest.yaml", "--workers", "2", "--json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    report = json.loads(stdout)
    pids = set((tmp_path / "pids.txt").read_text().split())
    assert [c["name"] for c in report["cases"]] == [f"case {i}" for i in range(4)]
    assert str(proc.pid) not in pids  # none ran in the coordinating process
    assert 1 <= len(pids) <= 2
    assert all(p.isdigit() for p in pids)


def test_a_worker_that_dies_errors_the_unfinished_cases_and_the_suite_ends(
    tmp_path: Path,
) -> None:
    killer = textwrap.dedent(FLOW).replace("echo $PPID >> pids.txt", "kill -9 $PPID")
    (tmp_path / "pid.yaml").write_text(killer)
    cases = "\n".join(
        f"  - name: case {i}\n    allow_real_shell: true\n    expect: {{status: succeeded}}"
        for i in range(3)
    )
    (tmp_path / "pid.wftest.yaml").write_text(SUITE.format(cases=cases))
    done = wfkit("test", "pid.wftest.yaml", "--workers", "2", "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["errors"] == 3
    assert all("worker process" in c["error"] for c in report["cases"])


def test_workers_below_one_are_a_usage_error(tmp_path: Path) -> None:
    done = wfkit("test", str(EXAMPLES / "tests"), "--workers", "0", cwd=tmp_path)
    assert done.returncode == 2
    assert "--workers" in done.stderr
    assert "Traceback" not in done.stderr
