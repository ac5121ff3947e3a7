"""``wfkit bench``: figures are printed, never asserted on speed; structure and logic are."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import EXAMPLES
from wfkit.cli.app import app
from wfkit.commands.bench import BenchError, bench_workflow


def test_bench_report(tmp_path: Path) -> None:
    profile = tmp_path / "profile.html"
    report = bench_workflow(EXAMPLES / "hello.yaml", runs=3, warmup=1, profile=profile)
    assert report.runs == 3
    wall = report.wall_ms
    assert wall.min <= wall.median <= wall.p95 <= wall.max
    assert report.steps_per_run == 6  # foreach + 3 state_updates + shell + message
    assert set(report.step_median_ms) == {"greet_each", "state_update_1", "say", "user_message_1"}
    assert set(report.transform_median_ms) == {"computed.count"}
    assert report.peak_rss_mb > 0
    assert "<html" in profile.read_text().lower()
    speedscope = tmp_path / "profile.json"
    bench_workflow(EXAMPLES / "hello.yaml", runs=1, warmup=0, profile=speedscope)
    assert "speedscope" in json.loads(speedscope.read_text())["$schema"]


def test_compare_against_a_saved_report(tmp_path: Path) -> None:
    saved = tmp_path / "base.json"
    saved.write_text(json.dumps({"wall_ms": {"median": 1e9}}))  # a much slower baseline
    faster = bench_workflow(
        EXAMPLES / "hello.yaml", runs=1, warmup=0, compare=saved, max_regression=0
    )
    assert faster.regression_percent is not None
    assert faster.regression_percent < 0
    assert not faster.regressed
    saved.write_text(json.dumps({"wall_ms": {"median": 1e-6}}))  # an impossible baseline
    slower = bench_workflow(
        EXAMPLES / "hello.yaml", runs=1, warmup=0, compare=saved, max_regression=10
    )
    assert slower.regressed
    saved.write_text("not json")
    with pytest.raises(BenchError, match="cannot read baseline"):
        bench_workflow(EXAMPLES / "hello.yaml", runs=1, warmup=0, compare=saved)


def test_bench_refuses_failing_runs_and_bad_counts(write) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BenchError, match="failed"):
        bench_workflow(write("name: f\nsteps:\n  - {type: error, message: x}\n"), runs=1)
    with pytest.raises(BenchError, match="at least 1"):
        bench_workflow(EXAMPLES / "hello.yaml", runs=0)


def test_cli_bench(tmp_path: Path) -> None:
    runner = CliRunner()
    saved = tmp_path / "bench.json"
    result = runner.invoke(
        app,
        ["bench", str(EXAMPLES / "hello.yaml"), "-n", "2", "--warmup", "0", "--save", str(saved)],
        env={"NO_COLOR": "1"},
    )
    assert result.exit_code == 0, result.stderr
    assert "steps/s" in result.stdout
    assert json.loads(saved.read_text())["runs"] == 2
    impossible = tmp_path / "fast.json"
    impossible.write_text(json.dumps({"wall_ms": {"median": 1e-6}}))
    regressed = runner.invoke(
        app,
        [
            "bench",
            str(EXAMPLES / "hello.yaml"),
            "-n",
            "1",
            "--warmup",
            "0",
            "--compare",
            str(impossible),
            "--max-regression",
            "5",
            "--json",
        ],
    )
    assert regressed.exit_code == 1
    assert json.loads(regressed.stdout)["regressed"] is True
    assert runner.invoke(app, ["bench", "absent.yaml"]).exit_code == 2


def test_bench_under_injected_failure(write: Callable[..., Path]) -> None:
    flow = write(
        """
        name: flaky
        steps:
          - {id: fetch, type: shell_command, command: "true", on_error: retry, retry_count: 1,
             retry_delay: 1}
        """
    )
    from wfkit.engine.inject import parse_fault

    fault = parse_fault("step=fetch error=ToolError rate=0.5")
    report = bench_workflow(flow, runs=12, warmup=0, faults=[fault], inject_seed="x")
    again = bench_workflow(flow, runs=12, warmup=0, faults=[fault], inject_seed="x")
    assert (report.runs_hit, report.failed_runs) == (again.runs_hit, again.failed_runs)
    assert 0 < report.runs_hit <= 12
    assert report.failed_runs > 0  # both attempts hit in some runs: the run fails, bench goes on
    assert report.recovered_share == (report.runs_hit - report.failed_runs) / report.runs_hit
    assert report.injected == ["step=fetch error=ToolError rate=0.5"]
    done = CliRunner().invoke(
        app,
        ["bench", str(flow), "-n", "4", "--warmup", "0", "--inject", "step=fetch error=ToolError"],
    )
    assert done.exit_code == 0, done.output
    assert "4 of 4 runs hit, 0% recovered, 4 failed" in " ".join(done.output.split())
    bad = CliRunner().invoke(app, ["bench", str(flow), "--inject", "step=fetch rate=2"])
    assert bad.exit_code == 2
