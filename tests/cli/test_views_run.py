"""The human run report: bounded whatever the run's size, complete with ``--steps all``."""

from __future__ import annotations

import json
from collections.abc import Callable
from io import StringIO
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from wfkit.cli.app import app
from wfkit.cli.common import EXIT_OK, EXIT_USAGE
from wfkit.cli.views.run import aligned_rows, run_report
from wfkit.commands import RunReport
from wfkit.commands.results import ErrorEntry, RunState, StepSummary

Runner = Callable[..., RunReport]


def printed(renderable: object) -> str:
    out = StringIO()
    Console(width=100, color_system=None, file=out).print(renderable)
    return out.getvalue()


def many_steps(n: int) -> str:
    steps = "\n".join(
        f"  - {{id: s{i}, type: state_update, path: raw.n, value: '{{{{ n + 1 }}}}'}}"
        for i in range(n)
    )
    return (
        "name: big\nstate_schema:\n  raw: {n: integer}\nsteps:\n"
        f"{steps}\n"
        "  - {id: flaky, type: shell_command, command: 'exit 1', on_error: continue,"
        " retry_count: 1, retry_delay: 0, retry_jitter: 0}\n"
        "  - {id: broken, type: shell_command, command: 'exit 2'}\n"
    )


def synthetic(steps: int, errors: int = 0, values: int = 1) -> RunReport:
    """A report of ``steps`` step ids (what the renderer reads; no run needed for size)."""
    return RunReport(
        run_id="r1",
        workflow="w",
        file="w.yaml",
        status="failed",
        state=RunState(inputs={}, raw={f"v{i}": i for i in range(values)}, computed={}),
        steps=[
            StepSummary(
                id=f"s{i}",
                type="state_update",
                status="failed" if i == steps - 1 else "succeeded",
                attempts=1,
                executions=1,
                duration_ms=float(i % 7),
            )
            for i in range(steps)
        ],
        errors=[
            ErrorEntry(
                step_id=f"s{steps - 1}",
                error_type="ShellCommandError",
                message=f"attempt {i}",
                stack_trace=None,
                timestamp="t",
                retry_count=i,
                recovered=False,
            )
            for i in range(errors)
        ],
        warnings=[],
        messages=[],
        error=None,
        duration_ms=1.0,
        store="s",
    )


def test_report_of_a_big_run_shows_counts_and_the_steps_worth_a_look(run_yaml: Runner) -> None:
    report = run_yaml(many_steps(60))
    text = printed(run_report(report))
    assert "62 steps: 60 succeeded, 2 failed; 62 executions, 63 attempts" in text
    lines = text.splitlines()
    flaky = next(line for line in lines if line.startswith("flaky "))
    broken = next(line for line in lines if line.startswith("broken "))
    assert flaky.split()[2:4] == ["failed", "2"]
    assert broken.split()[2] == "failed"
    shown = [line.split()[0] for line in lines if line.startswith("s") and " state_update " in line]
    assert len(shown) <= 5  # only the slowest of the ordinary steps
    assert f"… {62 - 2 - len(shown)} more steps (--steps all lists every one)" in text
    assert "✗ broken: ShellCommandError" in text


def test_full_report_lists_every_step(run_yaml: Runner) -> None:
    report = run_yaml(many_steps(60))
    text = printed(run_report(report, full=True))
    ids = {line.split()[0] for line in text.splitlines()[3:] if " state_update " in line}
    assert ids == {f"s{i}" for i in range(60)}
    assert "more steps" not in text


def test_report_size_does_not_grow_with_the_run() -> None:
    small = printed(run_report(synthetic(200, errors=40, values=50)))
    big = printed(run_report(synthetic(20_000, errors=1000, values=5000)))
    assert len(big.splitlines()) == len(small.splitlines())
    assert "… 19994 more steps" in big  # 1 failed + the 5 slowest shown
    assert "… 990 more failed attempts" in big
    assert "attempt 999" in big  # the last failed attempt (the one that ended the run)
    assert "… 4980 more values" in big
    full = printed(run_report(synthetic(2_000, errors=30, values=30), full=True))
    assert "s1999 " in full
    assert "attempt 15" in full
    assert "raw.v29" in full


def test_small_runs_show_every_step() -> None:
    text = printed(run_report(synthetic(10)))
    assert all(f"s{i} " in text for i in range(10))
    assert "more steps" not in text


def test_report_cells_are_text_not_markup() -> None:
    hostile = "[bold red]boom[/] :smile: [link=x]y[/link]"
    report = synthetic(3, errors=1).model_copy(
        update={"state": RunState(inputs={}, raw={"v": hostile}, computed={})}
    )
    text = printed(run_report(report))
    assert json.dumps(hostile) in text


def test_aligned_rows_pads_like_a_table() -> None:
    text = printed(
        aligned_rows(("a", "status", "n"), [("xx", "failed", "1"), ("y", "ok", "10")], right=(2,))
    )
    assert text.splitlines() == ["a   status   n", "xx  failed   1", "y   ok      10"]


def test_cli_steps_option(write: Callable[..., Path], tmp_path: Path) -> None:
    flow = write(
        many_steps(30).replace("  - {id: broken, type: shell_command, command: 'exit 2'}\n", "")
    )
    runner = CliRunner()
    env = {"NO_COLOR": "1", "COLUMNS": "100"}
    summary = runner.invoke(app, ["run", str(flow)], env=env)
    assert summary.exit_code == EXIT_OK
    assert "more steps (--steps all lists every one)" in summary.stdout
    full = runner.invoke(app, ["run", str(flow), "--steps", "all"], env=env)
    assert all(f"s{i} " in full.stdout for i in range(30))
    as_json = json.loads(runner.invoke(app, ["run", str(flow), "--json"], env=env).stdout)
    assert len(as_json["steps"]) == 31
    bad = runner.invoke(app, ["run", str(flow), "--steps", "some"], env=env)
    assert bad.exit_code == EXIT_USAGE
    assert "'some' is not one of 'summary', 'all'" in bad.stderr
    resumed = runner.invoke(app, ["resume", as_json["run_id"], "--steps", "all"], env=env)
    assert resumed.exit_code == EXIT_USAGE  # a succeeded run has nothing to resume


def test_warnings_are_capped_unless_full() -> None:
    report = synthetic(3).model_copy(update={"warnings": [f"w{i}" for i in range(25)]})
    text = printed(run_report(report))
    assert "! w9" in text
    assert "! w10" not in text
    assert "… 15 more warnings" in text
    assert "! w24" in printed(run_report(report, full=True))


def test_aligned_rows_without_a_status_column() -> None:
    text = printed(aligned_rows(("k", "v"), [("a", "1"), ("bb", "22")]))
    assert text.splitlines() == ["k   v", "a   1", "bb  22"]


def test_live_reporter_spins_only_on_a_terminal() -> None:
    from wfkit.cli.views.run import LiveReporter
    from wfkit.engine.events import Message, StepFinished, StepStarted

    events = [
        StepStarted("r", "a", "state_update", "steps[0]", 1, 0.0),
        StepFinished("r", "a", "state_update", "succeeded", 1, 0.1, 0.0),
        Message("r", "a", "warning", "[red]literal[/]", 0.0),
    ]
    for terminal in (True, False):
        out = StringIO()
        console = Console(file=out, width=100, color_system=None, force_terminal=terminal)
        with LiveReporter(console) as live:
            for event in events:
                live(event)
        assert (live.progress is not None) is terminal
        assert live.done == 1
        assert "[red]literal[/]" in out.getvalue()
