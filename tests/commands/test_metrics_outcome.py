"""Run outcome metrics: alerting can tell a failed run from a succeeded one, and a step failed
but handled by ``continue`` from a failure; ``promtool check metrics`` accepts the file."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from wfkit.commands import run_workflow
from wfkit.commands.metrics import run_metrics, write_prometheus
from wfkit.core.store import RunStore

FLOW = """
name: outcome
inputs:
  fail: {type: boolean, default: false}
steps:
  - {id: flaky, type: shell_command, command: "exit 3", on_error: continue}
  - id: gate
    type: conditional
    condition: "fail"
    then: [{id: stop, type: error, message: "stop"}]
"""


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = path.read_text(encoding="utf-8")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_run_status_and_last_success_series(write: Callable[..., Path], tmp_path: Path) -> None:
    flow = write(FLOW)
    good = run_workflow(flow)
    bad = run_workflow(flow, {"fail": True})
    assert (good.status, bad.status) == ("succeeded", "failed")
    out = tmp_path / "bad.prom"
    write_prometheus(run_metrics(bad.run_id), "outcome", out)
    found = samples(out)
    status = {
        dict(labels)["status"]: value
        for (name, labels), value in found.items()
        if name == "wfkit_run_status"
    }
    assert status == {
        "succeeded": 0.0,
        "failed": 1.0,
        "timed_out": 0.0,
        "cancelled": 0.0,
        "waiting": 0.0,
        "running": 0.0,
    }
    with RunStore() as store:
        finished = store.get_run(good.run_id).finished_at
    last = found[("wfkit_run_last_success_timestamp_seconds", (("workflow", "outcome"),))]
    assert last == finished


def test_a_step_handled_by_continue_is_labelled_apart(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    report = run_workflow(write(FLOW))
    out = tmp_path / "m.prom"
    write_prometheus(run_metrics(report.run_id), "outcome", out)
    found = samples(out)
    key = (
        "wfkit_steps_total",
        (("status", "failed_handled"), ("type", "shell_command"), ("workflow", "outcome")),
    )
    assert found[key] == 1.0
    assert not any(
        name == "wfkit_steps_total" and dict(labels)["status"] == "failed" for name, labels in found
    )


def test_promtool_accepts_the_metrics_file(write: Callable[..., Path], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is required under CI (apt-get install prometheus)")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    flow = write(FLOW)
    run_workflow(flow)
    report = run_workflow(flow, {"fail": True})
    out = tmp_path / "m.prom"
    write_prometheus(run_metrics(report.run_id), "outcome", out)
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=out.read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
