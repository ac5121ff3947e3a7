"""``wfkit report``: what the page of a run holds, and the command that writes it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wfkit.cli.app import app
from wfkit.cli.views.html import json_for_script, run_page_html, suite_page_html
from wfkit.commands import report as report_module
from wfkit.commands import run_workflow
from wfkit.commands.report import _state_note, chain_of, report_run
from wfkit.commands.report_timeline import critical_path, execution_at
from wfkit.commands.suite.runner import run_tests

FLOW = """
name: reportflow
config:
  circuit_breakers: {api: {failure_threshold: 1, reset_timeout: 600}}
inputs:
  regions: {type: array, default: ["eu", "us", "ap"]}
  marker: {type: string}
state_schema:
  raw: {note: string, fetched: string, done: array}
  computed:
    done_count: {from: raw.done, transform: "input | length"}
steps:
  - id: note
    type: state_update
    path: raw.note
    value: "<script>alert('state')</script>"
  - id: fetch
    type: shell_command
    command: >-
      echo "<script>alert('out')</script>";
      if [ ! -e {{ marker }} ]; then touch {{ marker }}; echo "503 busy" >&2; exit 75; fi;
      echo ok
    on_error: retry
    retry_count: 2
    retry_delay: 1
    retry_jitter: 0
    state_update: {path: raw.fetched, value: "{{ result.stdout | trim }}"}
  - id: api
    type: mcp_call
    tool: api
    circuit_breaker: api
    on_error: continue
  - id: deploy
    type: parallel_foreach
    items: "{{ regions }}"
    sub_agent_task: push_region
    max_parallel: 1
    with: {region: "{{ loop.item }}"}
sub_agent_tasks:
  push_region:
    inputs: {region: {type: string}}
    steps:
      - id: push
        type: shell_command
        command: >-
          echo "pushing {{ region }}";
          if [ "{{ region }}" = "ap" ]; then echo "quota </script> exceeded" >&2; exit 3; fi
"""


@pytest.fixture
def run_id(write: Callable[..., Path], tmp_path: Path) -> str:
    report = run_workflow(write(FLOW), {"marker": str(tmp_path / "marker")})
    assert report.status == "failed"
    return report.run_id


def test_page_holds_status_inputs_and_every_execution(run_id: str) -> None:
    page = report_run(run_id)
    assert (page.status, page.workflow, page.failed_step) == ("failed", "reportflow", "deploy")
    assert json.loads(page.inputs["regions"]) == ["eu", "us", "ap"]
    ids = [e.step_id for e in page.executions]
    assert ids.count("deploy/push") == 3
    assert {"note", "fetch", "api", "deploy"} <= set(ids)
    assert page.duration_ms is not None
    assert page.span_ms >= max(e.start_ms + e.duration_ms for e in page.executions) - 1


def test_retry_has_both_attempts_with_output_and_its_planned_wait(run_id: str) -> None:
    fetch = next(e for e in report_run(run_id).executions if e.step_id == "fetch")
    assert fetch.attempts == 2
    assert [a.attempt for a in fetch.tries] == [1, 2]
    first, second = fetch.tries
    assert (first.status, first.exit_code, second.status) == ("failed", 75, "succeeded")
    assert first.stderr == "503 busy"
    assert "<script>alert('out')</script>" in first.stdout
    assert first.end_ms is not None
    assert second.start_ms >= first.end_ms
    assert fetch.waits == [(1, 1.0)]
    assert len(fetch.errors) == 1


def test_items_are_lanes_and_the_error_chain_reaches_the_item(run_id: str) -> None:
    page = report_run(run_id)
    lanes = {lane.name: lane for lane in page.lanes}
    assert set(lanes) == {"workflow", "deploy [item 0]", "deploy [item 1]", "deploy [item 2]"}
    assert lanes["deploy [item 2]"].status == "failed"
    assert lanes["deploy [item 0]"].status == "succeeded"
    chain = page.error_chain
    assert [link.error_type for link in chain] == ["SubAgentError", "ShellCommandError"]
    assert (chain[0].step_id, chain[0].item) == ("deploy", 2)
    assert chain[1].step_id == "deploy/push"
    assert "quota </script> exceeded" in chain[1].message
    failed_item = next(e for e in page.executions if e.item == 2)
    assert failed_item.status == "failed"
    assert page.errors[failed_item.errors[0]].error_type == "ShellCommandError"


def test_critical_path_runs_through_the_items_one_after_another(run_id: str) -> None:
    page = report_run(run_id)
    critical = {(e.step_id, e.item) for e in page.executions if e.critical}
    # max_parallel 1: each item waited on the one before it
    expected = {("deploy/push", 0), ("deploy/push", 1), ("deploy/push", 2), ("fetch", None)}
    assert expected <= critical, [
        (e.step_id, e.item, e.start_ms, e.duration_ms, e.critical) for e in page.executions
    ]
    assert not any(e.critical for e in page.executions if e.step_type == "parallel_foreach")
    assert 0 < page.critical_ms <= page.span_ms


def test_critical_path_takes_the_slower_of_two_parallel_branches() -> None:
    # 0: 0-1, then 1: 1-5 and 2: 1-3 in parallel, then 3: 5-6 (after the slower, 1)
    starts, ends = [0.0, 1.0, 1.0, 5.0], [1.0, 5.0, 3.0, 6.0]
    assert critical_path(starts, ends, [0, 1, 2, 3]) == {0, 1, 3}
    assert critical_path([], [], []) == set()


def test_state_at_the_end_and_after_each_top_level_step(run_id: str) -> None:
    page = report_run(run_id)
    assert page.state_source == "final"
    assert json.loads(page.state["raw"]["note"]) == "<script>alert('state')</script>"
    assert [t.step_id for t in page.top_steps] == ["note", "fetch", "api", "deploy"]
    first = {(c.tier, c.name): c.value for c in page.top_steps[0].changes}
    assert json.loads(first[("raw", "note")] or "null") == "<script>alert('state')</script>"
    assert ("raw", "fetched") not in first
    second = {(c.tier, c.name) for c in page.top_steps[1].changes}
    assert ("raw", "fetched") in second
    assert "top-level step" in page.state_note


def test_breakers_and_untraced(run_id: str) -> None:
    page = report_run(run_id)
    assert page.breakers["api"]["state"] == "open"
    assert page.traced is False
    assert page.traces == []


def test_traced_run_has_its_computed_field_records(write: Callable[..., Path]) -> None:
    flow = write(
        """
        name: traced
        state_schema:
          raw: {done: array}
          computed: {count: {from: raw.done, transform: "input | length"}}
        steps:
          - {id: add, type: state_update, path: raw.done, operation: append, value: 1}
        """
    )
    page = report_run(run_workflow(flow, trace=True).run_id)
    assert page.traced
    rows = [(r.field, r.step_id, r.output) for r in page.traces]
    assert ("computed.count", "add", "1") in rows


def test_output_beyond_the_bounds_is_cut_and_said(
    write: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = write(
        """
        name: noisy
        steps:
          - {id: loud, type: shell_command, command: "seq 1 20000"}
          - {id: later, type: shell_command, command: "echo later"}
        """
    )
    run_id = run_workflow(flow).run_id
    monkeypatch.setattr(report_module, "OUTPUT_BUDGET", report_module.STREAM_CHARS)
    page = report_run(run_id)
    loud, later = (e.tries[0] for e in page.executions)
    assert loud.cut_chars > 0
    assert "characters cut here" in loud.stdout
    assert len(loud.stdout) < report_module.STREAM_CHARS + 100
    assert loud.stdout.startswith("1\n2\n")
    assert loud.stdout.endswith("20000")
    assert later.omitted
    assert later.stdout == ""
    assert any("have more output than the page keeps" in n for n in page.notes)
    assert any("output of 1 later attempt(s) is not on the page" in n for n in page.notes)


def test_long_state_values_and_many_records_are_bounded(
    write: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = write(
        """
        name: big
        state_schema:
          raw: {blob: string, n: integer}
          computed: {twice: {from: raw.n, transform: "input * 2"}}
        steps:
          - {id: blob, type: state_update, path: raw.blob, value: "{{ 'x' * 5000 }}"}
          - id: loop
            type: foreach
            items: "{{ range(5) | list }}"
            body:
              - {id: bump, type: state_update, path: raw.n, operation: increment}
        """
    )
    run_id = run_workflow(flow, trace=True).run_id
    monkeypatch.setattr(report_module, "TRACES_SHOWN", 2)
    monkeypatch.setattr(report_module, "STATE_CHANGES_SHOWN", 2)
    page = report_run(run_id)
    assert len(page.state["raw"]["blob"]) < 2 * report_module.VALUE_CHARS
    assert len(page.traces) == 2
    notes = " ".join(page.notes)
    assert "state value(s) over" in notes
    assert "computed-field trace record(s) past the first 2" in notes
    assert "checkpointed state change(s) past the first 2" in notes
    blob = next(c for c in page.top_steps[0].changes if c.name == "blob")
    assert blob.cut_chars > 0
    assert blob.value is not None
    assert len(blob.value) < 2 * report_module.VALUE_CHARS


def test_chain_of_follows_causes_and_stops() -> None:
    links = chain_of({"type": "A", "message": "a", "cause": {"type": "B", "message": "b"}})
    assert [link.error_type for link in links] == ["A", "B"]
    looped: dict[str, object] = {"type": "L", "message": "x"}
    looped["cause"] = looped
    assert len(chain_of(looped)) == 20


def test_json_for_script_cannot_close_the_element() -> None:
    text = json_for_script({"v": "</script><!-- & \u2028"})
    assert "<" not in text
    assert ">" not in text
    assert "&" not in text
    assert "\u2028" not in text
    assert json.loads(text) == {"v": "</script><!-- & \u2028"}


def test_the_page_is_one_file_without_outside_references(run_id: str) -> None:
    html = run_page_html(report_run(run_id))
    assert "default-src 'none'" in html
    for outside in ("http://", "https://", "src=", "@import", "url("):
        assert outside not in html.split('id="wfkit-data"')[0], outside
    data = html.split('id="wfkit-data">', 1)[1].split("</script>", 1)[0]
    assert "<script>alert" not in data  # the embedded JSON is escaped
    assert html.count("<script") == 2  # the data element and the page's own script


def test_cli_writes_the_default_file_and_names_it(run_id: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", run_id[:15]])
    assert result.exit_code == 0, result.output
    path = Path(f"wfkit-report-{run_id}.html")
    assert result.stderr.strip() == str(path)
    assert (tmp_path / path).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_cli_writes_to_stdout_and_to_a_named_file(run_id: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", run_id, "-o", "-"])
    assert result.exit_code == 0
    assert result.stdout.startswith("<!DOCTYPE html>")
    assert result.stderr == ""
    result = CliRunner().invoke(app, ["report", run_id, "-o", str(tmp_path / "run.html")])
    assert result.exit_code == 0
    assert (tmp_path / "run.html").exists()


def test_cli_json_is_the_page_model(run_id: str) -> None:
    result = CliRunner().invoke(app, ["report", run_id, "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["error_chain"][0]["error_type"] == "SubAgentError"


def test_cli_bad_run_and_unwritable_file_exit_2(run_id: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", "nope"])
    assert result.exit_code == 2
    assert "no run 'nope'" in result.stderr
    assert "Traceback" not in result.output
    result = CliRunner().invoke(app, ["report", run_id, "-o", str(tmp_path / "no" / "x.html")])
    assert result.exit_code == 2
    assert "cannot write" in result.stderr
    assert "Traceback" not in result.output


def test_dropped_error_records_are_said(write: Callable[..., Path]) -> None:
    flow = write(
        """
        name: storm
        config: {max_error_records: 1}
        steps:
          - {id: boom, type: shell_command, command: "exit 75", on_error: retry,
             retry_count: 3, retry_delay: 1, retry_jitter: 0}
        """
    )
    page = report_run(run_workflow(flow).run_id)
    assert page.errors_dropped == 3
    assert len(page.errors) == 1
    assert any("3 not kept" in note for note in page.notes)


def test_state_note_says_what_is_not_available() -> None:
    assert "older wfkit" in _state_note(logged=True, structured=False)
    assert "No checkpoint values" in _state_note(logged=False, structured=True)
    assert "top-level step" in _state_note(logged=True, structured=True)


def test_execution_at_picks_the_execution_running_then() -> None:
    starts, ends = [0.0, 0.5, 2.0, 3.0], [1.0, 1.5, 3.0, 4.0]
    assert execution_at([], starts, ends, 0.2) is None
    assert execution_at([0, 1, 2], starts, ends, 9.0) is None
    assert execution_at([0, 1], starts, ends, 0.7) == 1  # both hold it: the later start
    assert execution_at([0, 1], starts, ends, 0.7, [True, False]) == 0  # the plausible one
    assert execution_at([0, 2], starts, ends, 1.7) == 2  # between two: the next to end
    assert execution_at([2, 3], starts, ends, 3.0) == 3  # a loop's next iteration


def test_suite_page_without_coverage_escapes_names_and_shows_errors(
    write: Callable[..., Path],
) -> None:
    write(
        """
        workflow: missing.yaml
        cases:
          - {name: "<script>alert(1)</script>", expect: {status: succeeded}}
        """,
        "broken.wftest.yaml",
    )
    report = run_tests([Path("broken.wftest.yaml")])
    assert report.errors == 1
    html = suite_page_html(report, "suite <b>x</b>")
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "suite &lt;b&gt;x&lt;/b&gt;" in html
    assert "<pre class='err'>" in html
    assert "id='coverage'" not in html


def test_a_killed_run_shows_the_step_it_was_in(write: Callable[..., Path]) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from wfkit.store import open_store

    flow = write(
        """
        name: sleepy
        steps:
          - {id: first, type: shell_command, command: "echo one"}
          - {id: nap, type: shell_command, command: "echo napping; sleep 60"}
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfkit", "run", str(flow)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stderr is not None
        run_id = proc.stderr.readline().split()[1]
        deadline = time.monotonic() + 60  # hang guard
        while time.monotonic() < deadline:
            with open_store(create=False) as store:
                if any(o.step_id == "nap" for o in store.outputs(run_id)):
                    break
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        if proc.stderr is not None:
            proc.stderr.close()
    page = report_run(run_id)
    assert page.status == "interrupted"
    nap = next(e for e in page.executions if e.step_id == "nap")
    assert (nap.status, nap.step_type, nap.attempts) == ("interrupted", "shell_command", 1)
    assert nap.tries[0].status == "interrupted"
    assert page.state_source == "checkpoint"


def test_an_attempt_still_running_lasts_until_now() -> None:
    import time

    from wfkit.commands.report_timeline import unfinished
    from wfkit.store.base import OutputRow

    started = time.time() - 5
    out = OutputRow("k", "fan/work", 3, 1, 2, "tool", started, None, "running", None, 0, 0, 0, 0)
    (row,) = unfinished([], [out], "running")
    assert (row["step_id"], row["item"], row["status"]) == ("fan/work", 3, "running")
    assert (row["step_type"], row["attempts"]) == ("mcp_call", 2)
    assert row["duration_ms"] >= 5000


def test_critical_path_hands_over_despite_a_late_recorded_end() -> None:
    # 1 recorded its end 1 ms after 2 started (bookkeeping); 0 ran beside them, ended earlier
    starts, ends = [0.0, 0.0, 1.0], [0.5, 1.001, 2.0]
    assert critical_path(starts, ends, [0, 1, 2]) == {1, 2}
    # many tiny sequential steps: every one is on the path
    tiny = 0.00001
    starts = [i * tiny for i in range(2000)]
    ends = [(i + 1) * tiny for i in range(2000)]
    assert critical_path(starts, ends, list(range(2000))) == set(range(2000))


def test_a_succeeded_item_has_its_own_state_and_a_failed_one_none(
    write: Callable[..., Path],
) -> None:
    flow = write(
        """
        name: items
        inputs: {names: {type: array, default: [a, "<b>", c]}}
        steps:
          - id: fan
            type: parallel_foreach
            items: "{{ names }}"
            sub_agent_task: one
            max_parallel: 1  # in order: the failing last item cancels none in flight
            with: {name: "{{ loop.item }}"}
        sub_agent_tasks:
          one:
            inputs: {name: {type: string}}
            state_schema: {raw: {seen: string}}
            steps:
              - {id: keep, type: state_update, path: raw.seen, value: "saw {{ name }}"}
              - {id: check, type: shell_command, command: "test '{{ name }}' != c"}
        """
    )
    page = report_run(run_workflow(flow).run_id)
    lanes = {lane.item: lane for lane in page.lanes if lane.fan == "fan"}
    assert lanes[1].state is not None
    assert json.loads(lanes[1].state["raw"]["seen"]) == "saw <b>"
    assert json.loads(lanes[1].state["inputs"]["name"]) == "<b>"
    assert lanes[2].state is None  # failed: its state is not kept
    assert "a failed item's own state is not kept" in page.state_note


def test_item_states_beyond_the_bound_are_said(
    write: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = write(
        """
        name: items
        steps:
          - {id: fan, type: parallel_foreach, items: "{{ range(3) | list }}", sub_agent_task: one}
        sub_agent_tasks:
          one:
            steps:
              - {id: hi, type: shell_command, command: "true"}
        """
    )
    run_id = run_workflow(flow).run_id
    monkeypatch.setattr(report_module, "ITEM_STATES_SHOWN", 1)
    page = report_run(run_id)
    assert sum(lane.state is not None for lane in page.lanes) == 1
    assert any("own state of 2 parallel item(s)" in note for note in page.notes)


def test_cli_test_html_writes_the_suite_page(write: Callable[..., Path], tmp_path: Path) -> None:
    write("name: one\nsteps:\n  - {id: hi, type: user_message, message: hi}\n", "one.yaml")
    write(
        "workflow: one.yaml\ncases:\n  - {name: says hi, expect: {status: succeeded}}\n",
        "one.wftest.yaml",
    )
    out = tmp_path / "suite.html"
    result = CliRunner().invoke(app, ["test", "one.wftest.yaml", "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().endswith(str(out))
    html = out.read_text(encoding="utf-8")
    assert "says hi" in html
    assert "id='coverage'" in html  # --html measures coverage
    assert "Workflow coverage" not in result.stdout  # the text report stays as asked


def test_attempts_of_recorded_executions_are_not_taken_for_open_ones() -> None:
    from wfkit.commands.report_timeline import unfinished
    from wfkit.store.base import OutputRow

    history = [
        {
            "step_id": "s",
            "item": None,
            "finished_at": 10.0,
            "duration_ms": 1000.0,
            "status": "succeeded",
            "attempts": 1,
        }
    ]

    def out(started: float, finished: float | None) -> OutputRow:
        return OutputRow("k", "s", None, 1, 1, "shell", started, finished, "x", 0, 0, 0, 0, 0)

    # an ended attempt whose recorded start is a little before its execution's (clocks)
    assert unfinished(history, [out(8.99, 9.9)], "succeeded") == []
    # an attempt still open inside a recorded execution (its row was not updated)
    assert unfinished(history, [out(9.5, None)], "interrupted") == []
    # one that began after every recorded execution ended is open
    (row,) = unfinished(history, [out(10.5, None)], "interrupted")
    assert row["status"] == "interrupted"


ITEM_FIXED_ON_RESUME = """
name: fixed
inputs: {marker: {type: string}}
steps:
  - id: fan
    type: parallel_foreach
    items: [0, 1, 2]
    max_parallel: 1
    sub_agent_task: t
    with: {item: "{{ loop.item }}", marker: "{{ marker }}"}
sub_agent_tasks:
  t:
    inputs: {item: {type: integer}, marker: {type: string}}
    steps:
      - {id: x, type: shell_command, command: "test {{ item }} -ne 1 || test -e {{ marker }}"}
"""


def test_an_item_that_failed_then_succeeded_on_resume_is_green_and_counts_the_failure(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    from wfkit.commands import resume_workflow

    marker = tmp_path / "fixed"
    failed = run_workflow(write(ITEM_FIXED_ON_RESUME), {"marker": str(marker)})
    assert failed.status == "failed"
    marker.touch()
    resumed = resume_workflow(failed.run_id)
    assert resumed.status == "succeeded"
    page = report_run(failed.run_id)
    lanes = {lane.name: lane for lane in page.lanes}
    item = lanes["fan [item 1]"]
    assert item.status == "succeeded"  # coloured by its outcome: the execution on resume
    assert item.recovered == 1  # the failure it got past, marked as such
    assert lanes["workflow"].status == "succeeded"
    assert all(lane.status == "succeeded" for lane in page.lanes)
    # the item's failure and the step's, both got past on resume
    assert {(e.error_type, e.step_id) for e in page.errors} == {
        ("ShellCommandError", "fan/x"),
        ("SubAgentError", "fan"),
    }
    assert all(e.recovered for e in page.errors)
