"""Run management through the command layer and the CLI: cancel, prune, retention, filters."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from wfkit.cli.app import app
from wfkit.cli.common import EXIT_USAGE
from wfkit.commands import RunReport, list_runs
from wfkit.commands._runs import retention_policy
from wfkit.commands.manage import cancel_run, prune_runs
from wfkit.language.fingerprint import structure_change
from wfkit.language.models import Retention
from wfkit.store.pending import process_identity
from wfkit.store.retention import PrunePolicy
from wfkit.store.sqlite import RunStore

QUICK = "name: quick\nsteps:\n  - {id: say, type: shell_command, command: 'echo hello'}\n"


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "100"})


def mark_running(store: Path, run_id: str, pid: int) -> None:
    with RunStore(store) as run_store:
        run_store.db.execute(  # the process stands in for the run's: its identity too
            "UPDATE runs SET status = 'running', pid = ?, process = ? WHERE run_id = ?",
            (pid, process_identity(pid), run_id),
        )


def test_cancelling_an_interrupted_run_marks_it_cancelled(
    run_yaml: Callable[..., RunReport], isolated_store: Path
) -> None:
    run = run_yaml(QUICK)
    mark_running(isolated_store, run.run_id, 2**22 + 12345)  # no such process
    assert [r.status for r in list_runs()] == ["interrupted"]
    result = cancel_run(run.run_id)
    assert (result.status, result.signalled) == ("cancelled", False)
    assert [r.status for r in list_runs(statuses=["cancelled"])] == ["cancelled"]


def test_cancel_falls_back_to_sigterm_when_the_run_does_not_answer(
    run_yaml: Callable[..., RunReport], isolated_store: Path
) -> None:
    run = run_yaml(QUICK)
    with subprocess.Popen(["sleep", "60"]) as deaf:  # stands in for a process that never polls
        mark_running(isolated_store, run.run_id, deaf.pid)
        result = cancel_run(run.run_id, wait=0.3)
        assert deaf.wait(timeout=30) == -15  # it got SIGTERM
    assert result.signalled


def test_prune_by_status_and_age(run_yaml: Callable[..., RunReport]) -> None:
    ok = run_yaml(QUICK)
    bad = run_yaml("name: bad\nsteps:\n  - {type: shell_command, command: 'exit 1'}\n")
    assert prune_runs(older_than="1h").runs == []  # both are younger
    chosen = prune_runs(statuses=["failed"], dry_run=True)
    assert [r.run_id for r in chosen.runs] == [bad.run_id]
    assert len(list_runs()) == 2
    assert [r.run_id for r in prune_runs(statuses=["failed"]).runs] == [bad.run_id]
    assert [r.run_id for r in list_runs()] == [ok.run_id]
    assert prune_runs(store=Path("nowhere")).runs == []


def test_prune_needs_a_criterion_and_checks_durations() -> None:
    result = cli("prune")
    assert result.exit_code == EXIT_USAGE
    assert "--older-than" in result.stderr
    assert cli("prune", "--older-than", "soon").exit_code == EXIT_USAGE


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("30d", PrunePolicy(30 * 86400)),
        ("keep=5", PrunePolicy(None, 5)),
        ("older_than=2h, keep=3", PrunePolicy(7200, 3)),
    ],
)
def test_retention_policies_parse(text: str, policy: PrunePolicy) -> None:
    assert PrunePolicy.parse(text) == policy


def test_a_bad_retention_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="retention"):
        PrunePolicy.parse("keep=lots")
    assert retention_policy(Retention(older_than="1d", keep=2)) == PrunePolicy(86400, 2)
    assert retention_policy("12h") == PrunePolicy(43200)
    assert retention_policy(None) is None


def test_runs_filters(run_yaml: Callable[..., RunReport]) -> None:
    first = run_yaml(QUICK)
    other = run_yaml("name: other\nsteps: []\n")
    time.sleep(0.01)
    assert [r.run_id for r in list_runs(workflow="quick")] == [first.run_id]
    assert [r.run_id for r in list_runs(since="1h")] == [other.run_id, first.run_id]
    assert [r.run_id for r in list_runs(limit=1)] == [other.run_id]
    listed = json.loads(cli("runs", "--workflow", "other", "--json").stdout)
    assert [r["run_id"] for r in listed] == [other.run_id]
    assert cli("runs", "--since", "yesterday").exit_code == EXIT_USAGE


def test_live_output_follows_quiet_and_stream(write: Callable[..., Path]) -> None:
    flow = str(write(QUICK))
    shown = cli("run", flow)
    assert "say | hello" in shown.stderr
    assert "say | hello" not in cli("run", flow, "--quiet").stderr
    quiet_json = cli("run", flow, "--json")
    assert "say | hello" not in quiet_json.stderr
    streamed = cli("run", flow, "--json", "--stream")
    assert "say | hello" in streamed.stderr
    assert json.loads(streamed.stdout)["status"] == "succeeded"


def test_structure_changes_are_named() -> None:
    old = ["steps[0] a shell_command", "steps[1] b shell_command", "steps[2] c shell_command"]
    cursor = [{"i": 1, "done": False, "note": {}}]
    assert structure_change(old, [*old, "steps[3] d wait"], cursor) is None
    assert structure_change(old, old[:2], cursor) is None  # after the position
    assert structure_change(old, old[:1], cursor) == "step steps[1] was removed"
    assert structure_change(old[:1], old, cursor) == "step steps[1] was added"
    renamed = ["steps[0] x shell_command", *old[1:]]
    assert structure_change(old, renamed, cursor) == (
        "step steps[0] was 'a shell_command', is now 'x shell_command'"
    )


def test_a_bad_retention_variable_is_a_usage_error(
    write: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WFKIT_RETENTION", "whenever")
    result = cli("run", str(write(QUICK)))
    assert result.exit_code == EXIT_USAGE
    assert "WFKIT_RETENTION" in result.stderr
    assert "say | hello" not in result.stderr  # refused before anything ran


def test_runs_never_cut_the_run_id(run_yaml: Callable[..., RunReport]) -> None:
    run = run_yaml(QUICK)
    narrow = CliRunner().invoke(app, ["runs"], env={"NO_COLOR": "1", "COLUMNS": "30"})
    assert run.run_id in narrow.stdout
