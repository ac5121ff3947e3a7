"""Items run in a run of their own and adopted back (what the Dask executor does, here in
one process): every record matches the same items run in the coordinating run."""

from __future__ import annotations

import asyncio
import pickle
import textwrap
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from tests.executors.test_dask import shape
from wfkit.commands import RunReport, run_workflow
from wfkit.engine import events
from wfkit.engine.detached import ItemReport, adopt, context_of, run_detached
from wfkit.engine.frame import FrameCheckpoint
from wfkit.engine.items import ItemJob, ItemOutcome
from wfkit.engine.runtime import Run
from wfkit.engine.state import MISSING
from wfkit.engine.tools import NoTools
from wfkit.errors import LoadError, ShellCommandError, SubAgentError
from wfkit.executors import local as local_executor


class Elsewhere:
    """Runs each item in a detached run, through pickles, and adopts its report."""

    def __init__(self) -> None:
        self.reports: list[ItemReport] = []
        self.closed: list[str] = []

    async def run_item(self, run: Run, job: ItemJob) -> ItemOutcome:
        context, job = pickle.loads(pickle.dumps((context_of(run), job)))
        task = asyncio.ensure_future(run_detached(run.loaded, context, job, NoTools()))
        try:
            report = await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            late: ItemReport = pickle.loads(pickle.dumps(await task))
            assert late.entry is None
            adopt(run, late)
            raise
        report = pickle.loads(pickle.dumps(report))
        self.reports.append(report)
        adopt(run, report)
        assert report.entry is not None
        return report.entry, report.error

    async def close_run(self, run: Run) -> None:
        self.closed.append(run.run_id)


def compare(
    tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> tuple[RunReport, RunReport, Elsewhere]:
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    local = run_workflow(path, store=tmp_path / "local", **kw)
    elsewhere = Elsewhere()
    monkeypatch.setattr(local_executor, "LocalExecutor", lambda: elsewhere)
    remote = run_workflow(path, store=tmp_path / "remote", **kw)
    return local, remote, elsewhere


FLOW = """
name: flow
config:
  max_error_records: 4
  state_warn_bytes: 60
  circuit_breakers: {svc: {failure_threshold: 3, reset_timeout: 600}}
state_schema: {raw: {results: array}}
steps:
  - id: fan
    type: parallel_foreach
    items: [0, 1, 2, 3, 4]
    sub_agent_task: t
    max_parallel: 1
    on_item_error: continue
sub_agent_tasks:
  t:
    inputs: {item: {type: integer}}
    state_schema: {raw: {big: string}}
    steps:
      - id: warn
        type: state_update
        path: raw.big
        value: "{{ 'x' * 80 }}"
      - id: flaky
        type: shell_command
        command: "exit 1"
        on_error: retry
        retry_count: 1
        retry_delay: 0
        circuit_breaker: svc
        if: "{{ item < 2 }}"
      - id: soft
        type: error
        message: "item {{ item }} shrugs"
        on_error: continue
        if: "{{ item == 2 }}"
      - id: boom
        type: error
        message: "item {{ item }} refuses"
        if: "{{ item >= 3 }}"
"""


def test_records_match_the_local_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local, remote, elsewhere = compare(tmp_path, FLOW, monkeypatch)
    assert local.errors_dropped > 0  # the bounded history drops errors made elsewhere too
    assert local.warnings
    assert any(e.recovered for e in local.errors)
    assert shape(remote) == shape(local)
    assert len(elsewhere.reports) == 5
    assert elsewhere.closed == [remote.run_id]


def test_a_cancelled_item_reports_its_finally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = """
        name: cancel
        steps:
          - id: fan
            type: parallel_foreach
            items: [0, 1]
            sub_agent_task: t
            max_parallel: 2
        sub_agent_tasks:
          t:
            inputs: {item: {type: integer}}
            steps:
              - id: sh
                type: shell_command
                command: "if [ {{ item }} = 0 ]; then sleep 0.5; exit 4; fi; sleep 30"
            finally:
              - type: user_message
                message: "item {{ item }} ended {{ workflow.status }}"
    """
    local, remote, _ = compare(tmp_path, text, monkeypatch)
    assert local.status == "failed"
    assert ("info", "item 1 ended cancelled") in shape(local)["messages"]
    assert shape(remote) == shape(local)


def test_events_and_errors_survive_pickling() -> None:
    checkpoint = events.Checkpoint("r", "main", [{"i": 0}], {("raw", "gone"): MISSING})
    assert pickle.loads(pickle.dumps(checkpoint)).changes[("raw", "gone")] is MISSING
    for cls in events.Event.__args__:  # type: ignore[attr-defined]
        values = {f.name: _sample(f.type) for f in fields(cls)}
        event = cls(**values)
        assert pickle.loads(pickle.dumps(event)) == event
    cause = ShellCommandError("boom", exit_code=3, stderr="e", step_id="s", attempt=2)
    cause.record_indexes = [4]
    error = SubAgentError("item 1 failed", index=1, cause=cause)
    back = pickle.loads(pickle.dumps(error))
    assert back.details() == error.details()
    assert isinstance(back.cause, ShellCommandError)
    assert back.cause.record_indexes == [4]
    problem = LoadError("bad", file="f.yaml", line=3)
    again = pickle.loads(pickle.dumps(problem))
    assert (str(again), again.problems[0] is again) == ("f.yaml:3: bad", True)
    saved = FrameCheckpoint([{"i": 1}], {"a": MISSING}, {}, {}, {})
    assert pickle.loads(pickle.dumps(saved)).raw["a"] is MISSING
    assert repr(MISSING) == "MISSING"


def _sample(annotation: Any) -> Any:
    text = str(annotation)
    if text.startswith("int"):
        return 1
    if text.startswith("float"):
        return 1.5
    if text.startswith("bool"):
        return True
    if text.startswith("bytes"):
        return b"x"
    if text.startswith("dict"):
        return {"k": [1]}
    if text.startswith("list"):
        return [{"k": 1}]
    if text.startswith("tuple"):
        return (1, 2)
    if text.startswith("ErrorRecord"):
        return events.ErrorRecord("s", "StepError", "m", None, 1.0, 0, False)
    return "text"


def test_an_item_whose_inputs_fail_is_failed_without_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = """
        name: inputs
        steps:
          - id: fan
            type: parallel_foreach
            items: [1]
            sub_agent_task: t
            with: {item: "{{ item }}", x: "{{ nothing.here }}"}
            on_item_error: continue
        sub_agent_tasks:
          t:
            inputs: {item: {type: integer}, x: {type: any}}
            steps:
              - {id: s, type: state_update, path: raw.n, value: 1}
    """
    local, remote, _ = compare(tmp_path, text, monkeypatch)
    assert local.status == "succeeded"
    assert shape(remote) == shape(local)
