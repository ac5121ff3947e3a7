"""Metrics (Prometheus text exposition), health checks and structured logs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from tests.conftest import EXAMPLES
from wfkit.cli.app import app
from wfkit.commands import run_workflow
from wfkit.commands.debug import debug_run
from wfkit.commands.health import check_health
from wfkit.commands.metrics import run_metrics, write_prometheus
from wfkit.errors import MissingExtraError

FLOW = """
name: measured
config:
  circuit_breakers: {api: {failure_threshold: 1, reset_timeout: 60}}
state_schema:
  raw: {n: integer}
  computed:
    double: {from: raw.n, transform: input * 2}
steps:
  - {id: inc, type: state_update, path: raw.n, operation: increment}
  - {id: flaky, type: shell_command, command: "exit 3", on_error: retry, retry_count: 2,
     retry_delay: 1, fallback_value: x}
  - {id: api, type: mcp_call, tool: api, circuit_breaker: api, on_error: continue}
  - {id: skip, type: user_message, message: no way, if: "false"}
"""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_file_matches_debug(write: Callable[..., Path], tmp_path: Path) -> None:
    report = run_workflow(write(FLOW), trace=True)
    metrics = run_metrics(report.run_id)
    assert metrics.steps == {
        "state_update": {"succeeded": 1},
        "shell_command": {"handled": 1},  # failed, but its fallback took over
        "mcp_call": {"handled": 1},  # failed, and `continue` took over
        "user_message": {"skipped": 1},
    }
    assert metrics.retries == 2
    assert metrics.errors == {"ShellCommandError": 3, "ToolNotFoundError": 1}
    assert set(metrics.transform_durations_ms) == {"computed.double"}
    assert metrics.state_bytes == len(json.dumps(report.state.model_dump(), separators=(",", ":")))
    assert debug_run(report.run_id).metrics == metrics
    path = tmp_path / "run.prom"
    write_prometheus(metrics, "measured", path)
    found = samples(path.read_text())
    wf = ("workflow", "measured")
    assert found[("wfkit_steps_total", (("status", "handled"), ("type", "shell_command"), wf))] == 1
    assert found[("wfkit_retries_total", (wf,))] == 2
    assert found[("wfkit_errors_total", (("type", "ShellCommandError"), wf))] == 3
    assert found[("wfkit_state_bytes", (wf,))] == metrics.state_bytes
    assert found[("wfkit_step_duration_seconds_count", (("type", "state_update"), wf))] == 1
    assert (
        found[("wfkit_transform_duration_seconds_count", (("field", "computed.double"), wf))] == 2
    )
    assert not any(name.endswith("_created") for name, _ in found)
    assert found[("wfkit_run_status", (("status", "succeeded"), wf))] == 1
    assert found[("wfkit_run_status", (("status", "failed"), wf))] == 0
    finished = debug_run(report.run_id).finished_at
    assert finished is not None
    last = found[("wfkit_run_last_success_timestamp_seconds", (wf,))]
    assert last == pytest.approx(datetime.fromisoformat(finished).timestamp(), abs=0.01)


def test_a_failed_run_keeps_the_last_success_and_promtool_accepts_it(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    flow = write(
        "name: flip\ninputs: {code: {type: integer}}\nsteps:\n"
        "  - {type: shell_command, command: 'exit {{ code }}'}\n"
    )
    good = run_workflow(flow, {"code": 0})
    bad = run_workflow(flow, {"code": 1})
    path = tmp_path / "bad.prom"
    write_prometheus(run_metrics(bad.run_id), "flip", path)
    found = samples(path.read_text())
    wf = ("workflow", "flip")
    assert found[("wfkit_run_status", (("status", "failed"), wf))] == 1
    assert found[("wfkit_steps_total", (("status", "failed"), ("type", "shell_command"), wf))] == 1
    good_at = debug_run(good.run_id).finished_at
    assert good_at is not None
    assert found[("wfkit_run_last_success_timestamp_seconds", (wf,))] == pytest.approx(
        datetime.fromisoformat(good_at).timestamp(), abs=0.01
    )
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool (Debian package prometheus) must be installed in CI")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=path.read_text(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "", checked.stdout  # no lint complaints
    assert not list(tmp_path.glob("*.tmp*")), "write_to_textfile renames atomically"


def test_cli_run_metrics(write: Callable[..., Path], tmp_path: Path) -> None:
    path = tmp_path / "out.prom"
    result = CliRunner().invoke(app, ["run", str(write(FLOW)), "--metrics", str(path), "--json"])
    assert result.exit_code == 0
    assert "wfkit_steps_total" in path.read_text()
    blocked = CliRunner().invoke(
        app, ["run", str(write(FLOW)), "--metrics", str(tmp_path / "no" / "dir" / "x.prom")]
    )
    assert blocked.exit_code == 0  # the run succeeded; the metrics problem is reported
    assert "cannot write metrics" in blocked.stderr


def test_metrics_without_prometheus_client_says_how_to_install(
    write: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    report = run_workflow(write(FLOW))
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'wfkit\[metrics\]'"):
        write_prometheus(run_metrics(report.run_id), "x", tmp_path / "m.prom")
    flow = write(FLOW)
    result = CliRunner().invoke(app, ["run", str(flow), "--metrics", str(tmp_path / "m.prom")])
    assert result.exit_code == 2, "refused before the run, not exit 0 without a file"
    assert "pip install 'wfkit[metrics]'" in " ".join(result.stderr.split())
    assert not (tmp_path / "m.prom").exists()


def test_health_checks(write: Callable[..., Path]) -> None:
    report = check_health(workflow=EXAMPLES / "hello.yaml")
    assert report.ok
    names = [c.name for c in report.checks]
    assert names == ["store", "disk", "memory", "dependencies", "workflow"]
    assert report.versions["pydantic"]
    server = write("name: s\nmcp_servers:\n  notes: {command: no-such-server-binary}\n")
    broken = check_health(workflow=server)
    assert not broken.ok
    assert broken.checks[-1].name == "mcp server notes"
    assert "could not start" in broken.checks[-1].detail
    working = check_health(workflow=EXAMPLES / "notes.yaml")
    assert working.ok
    assert "offers add_note, concurrent, crash, flaky" in working.checks[-1].detail
    assert not check_health(workflow=write("name: x\nstepz: 1\n", "bad.yaml")).ok


def test_health_of_an_unusable_store(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    report = check_health(store=blocker / "sub" / "runs.db")
    assert not report.ok
    assert report.checks[0].name == "store"


def test_cli_health_exit_codes(write: Callable[..., Path]) -> None:
    runner = CliRunner()
    good = runner.invoke(app, ["health", "--json"])
    assert good.exit_code == 0
    assert json.loads(good.stdout)["ok"] is True
    bad = runner.invoke(
        app, ["health", "--workflow", str(write("name: x\nstepz: 1\n"))], env={"NO_COLOR": "1"}
    )
    assert bad.exit_code == 1
    assert "unhealthy" in bad.stdout


def test_json_logs_carry_structured_fields(write: Callable[..., Path], tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    result = CliRunner().invoke(
        app, ["--log-format", "json", "--log-file", str(log), "run", str(write(FLOW)), "--json"]
    )
    assert result.exit_code == 0
    json.loads(result.stdout)  # stdout still holds exactly one document
    records = [json.loads(line) for line in log.read_text().splitlines()]
    failed = [r for r in records if r["level"] == "warning"]
    assert failed[0]["step_id"] == "flaky"
    assert (failed[0]["attempt"], failed[0]["error_type"]) == (1, "ShellCommandError")
    assert {r["run_id"] for r in records} == {json.loads(result.stdout)["run_id"]}
    retry = next(r for r in records if "retries in" in r["message"])
    assert retry["delay_ms"] >= 1
    text = CliRunner().invoke(app, ["--log-format", "text", "run", str(write(FLOW))])
    assert "INFO wfkit.run run succeeded" in text.stderr
    assert CliRunner().invoke(app, ["--log-format", "xml", "runs"]).exit_code == 2
    from wfkit.cli.eventlog import configure

    configure(None, None)  # back to quiet for the rest of the suite
