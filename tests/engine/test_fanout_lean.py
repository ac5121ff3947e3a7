"""A fan-out whose result nothing reads keeps counts, not every item's entry: its result is
``{items, succeeded, failed}``, the report still shows the items' own states (the store kept
their entries), a resume runs only the unfinished items, and a workflow that reads the result
(in the step's own fields or as ``steps.<id>`` anywhere) gets every entry as before."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from wfkit.commands import RunReport, resume_workflow, run_workflow
from wfkit.commands.report import report_run
from wfkit.language.loader import load_text
from wfkit.store import open_store

TASK = """
sub_agent_tasks:
  job:
    inputs: {n: {type: integer}}
    state_schema:
      raw: {double: integer}
    steps:
      - {id: work, type: state_update, path: raw.double, value: "{{ n * 2 }}"}
      - {id: check, type: shell_command, command: "test {{ n }} -ne FAILING"}
"""


def _flow(extra: str = "", after: str = "", failing: int = -1) -> str:
    return (
        "name: lean\nstate_schema:\n  raw: {seen: integer}\nsteps:\n"
        "  - id: fan\n    type: parallel_foreach\n    items: [1, 2, 3, 4, 5]\n"
        "    sub_agent_task: job\n    with: {n: '{{ loop.item }}'}\n"
        f"    on_item_error: continue\n{extra}{after}" + TASK.replace("FAILING", str(failing))
    )


def _fan_output(run_id: str) -> object:
    """The fan-out step's output as its last checkpoint recorded it."""
    with open_store(None, create=False) as run_store:
        log = run_store.checkpoint_log(run_id)
    texts = [top["steps/fan"] for row in log for top in row.values() if top.get("steps/fan")]
    return json.loads(texts[-1])["output"]


def test_an_unread_result_is_counts(run_yaml: Callable[..., RunReport]) -> None:
    report = run_yaml(_flow(failing=4))
    assert report.status == "succeeded"
    output = _fan_output(report.run_id)
    assert isinstance(output, dict)
    assert output | {"failed_items": None} == {
        "items": 5,
        "succeeded": 4,
        "failed": 1,
        "failed_items": None,
    }
    [failed] = output["failed_items"]
    assert (failed["index"], failed["status"], failed["state"]["raw"]) == (
        3,
        "failed",
        {"double": 8},
    )
    [fan] = [s for s in report.steps if s.id == "fan"]
    assert fan.items == {"succeeded": 4, "failed": 1}
    # the store kept each item's entry: the report shows the items' own states
    page = report_run(report.run_id)
    states = [lane.state for lane in page.lanes if lane.state is not None]
    assert {s["raw"]["double"] for s in states} >= {"2", "4", "6", "10"}


@pytest.mark.parametrize(
    ("extra", "after"),
    [
        ("    state_update: {path: raw.seen, value: '{{ result | length }}'}\n", ""),
        (
            "",
            "  - {id: after, type: state_update, path: raw.seen,"
            " value: '{{ steps.fan.output | length }}'}\n",
        ),
    ],
    ids=["own", "steps"],
)
def test_a_read_result_has_every_entry(
    run_yaml: Callable[..., RunReport], extra: str, after: str
) -> None:
    report = run_yaml(_flow(extra, after))
    assert report.status == "succeeded"
    output = _fan_output(report.run_id)
    assert isinstance(output, list)
    assert [entry["state"]["raw"]["double"] for entry in output] == [2, 4, 6, 8, 10]
    assert report.state.raw["seen"] == 5


def test_result_read_is_found_statically() -> None:
    def reads(text: str) -> bool:
        loaded = load_text(text)
        return loaded.result_read(loaded.workflow.steps[0])

    assert not reads(_flow())
    assert reads(_flow("    state_update: {path: raw.seen, value: '{{ result[0].index }}'}\n"))
    after = (
        "  - {type: state_update, path: raw.seen, value: '{{ steps[\"fan\"].output | length }}'}\n"
    )
    assert reads(_flow("", after))
    # steps reached by a computed key, a method or as a whole may be this one's
    for reader in ("steps[inputs.k].output", "steps.get('fan')", "steps.values() | list"):
        line = f'  - {{type: state_update, path: raw.seen, value: "{{{{ {reader} }}}}"}}\n'
        assert reads(_flow("", line)), reader
    assert reads(_flow("    on_error: fallback\n    fallback_value: '{{ steps.fan.status }}'\n"))
    # another step's own result, or a name that only starts like the step's, is not this one's
    other = "  - {id: fanout, type: shell_command, command: 'echo {{ steps.fanout.output }}'}\n"
    assert not reads(_flow("", other))


def test_a_lean_fan_out_resumes_only_its_unfinished_items(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    text = _flow(failing=3).replace(
        '"test {{ n }} -ne 3"', f'"echo {{{{ n }}}} >> {marker}; test {{{{ n }}}} -ne 3"'
    )
    text = text.replace("on_item_error: continue", "on_item_error: fail_fast\n    max_parallel: 1")
    flow = write(text)
    failed = run_workflow(flow)
    assert failed.status == "failed"
    assert marker.read_text().split() == ["1", "2", "3"]
    flow.write_text(text.replace("test {{ n }} -ne 3", "true"))
    resumed = resume_workflow(failed.run_id, force=True)
    assert resumed.status == "succeeded"
    assert marker.read_text().split() == ["1", "2", "3", "3", "4", "5"]
    assert _fan_output(resumed.run_id) == {
        "items": 5,
        "succeeded": 5,
        "failed": 0,
        "failed_items": [],
    }


COUNTING = (
    "    state_update: {path: raw.seen, value:"
    " \"{{ result | selectattr('status', 'equalto', 'succeeded') | list | length }}\"}\n"
)


def test_what_reading_result_costs_is_known_before_the_items_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The measured capacity holds: the counting expression over minimal entries passes just
    under it and fails on the budget just over it (real entries, heavier, fail sooner). A
    budget of 50,000 steps keeps each evaluation short on any machine."""
    from wfkit.errors import ExpressionError
    from wfkit.language import budget, fanout

    small = budget.Limits(max_steps=50_000, max_seconds=600.0)
    monkeypatch.setattr(budget, "LIMITS", small)
    monkeypatch.setattr(fanout, "LIMITS", small)
    loaded = load_text(_flow(COUNTING))
    step = loaded.workflow.steps[0]
    found = fanout.result_capacity(loaded, step)
    assert found is not None
    most, steps = found
    assert 5_000 < most < 50_000
    assert steps > 1
    [update] = loaded.plans[id(step)].compiled["updates"]
    under, over = int(most * 0.98), int(most * 1.02)
    assert update.value.render({"result": fanout._entries(under)}) == under
    with pytest.raises(ExpressionError, match="work"):
        update.value.render({"result": fanout._entries(over)})
    assert fanout.result_warning(loaded, step, under) is None
    assert f"at most about {most:,} items" in (fanout.result_warning(loaded, step, over) or "")
    # a result read only by its length costs nothing per item: no bound to tell
    plain = load_text(
        _flow(COUNTING.replace("selectattr('status', 'equalto', 'succeeded') | list | ", ""))
    )
    assert plain.result_read(plain.workflow.steps[0])
    assert fanout.result_capacity(plain, plain.workflow.steps[0]) is None


def test_explain_and_the_run_warn_before_the_items_run(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    import subprocess

    from tests.store.test_contract import ARGV

    heavy = (
        '    state_update: {path: raw.seen, value: "{% for r in result %}'
        '{% for x in range(2000) %}{% endfor %}{% endfor %}{{ result | length }}"}\n'
    )
    text = _flow(heavy).replace("items: [1, 2, 3, 4, 5]", "items: '{{ range(1500) | list }}'")
    flow = write(text)
    explained = subprocess.run(
        [*ARGV, "explain", str(flow), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    warnings = json.loads(explained.stdout)["warnings"]
    [note] = [w for w in warnings if w["kind"] == "result_budget"]
    assert note["step_id"] == "fan"
    assert "takes at most about 499 items" in note["message"]
    report = run_workflow(flow)
    assert report.status == "failed"
    assert any(
        "fan: its state_update reads `result` as a whole (one entry per item): it has 1,500 items"
        in w
        for w in report.warnings
    )


def test_a_lean_fan_out_retried_as_a_step_skips_its_succeeded_items(
    run_yaml: Callable[..., RunReport], tmp_path: Path
) -> None:
    marker, once = tmp_path / "ran", tmp_path / "once"
    text = _flow(failing=3).replace(
        '"test {{ n }} -ne 3"',
        f'"echo {{{{ n }}}} >> {marker}; test {{{{ n }}}} -ne 3 || test -e {once}'
        f' || (touch {once}; false)"',
    )
    text = text.replace(
        "on_item_error: continue",
        "on_item_error: fail_fast\n    max_parallel: 1\n    on_error: retry\n    retry_count: 1\n"
        "    retry_delay: 0",
    )
    report = run_yaml(text)
    assert report.status == "succeeded"
    assert marker.read_text().split() == ["1", "2", "3", "3", "4", "5"]


def test_two_writes_over_result_each_have_their_own_budget() -> None:
    from wfkit.language import fanout

    one = load_text(_flow(COUNTING))
    counting = "{{ result | selectattr('status', 'equalto', 'succeeded') | list | length }}"
    both = (
        f'    state_updates:\n      - {{path: raw.seen, value: "{counting}"}}\n'
        f'      - {{path: raw.again, value: "{counting}"}}\n'
    )
    two = load_text(_flow(both))
    single = fanout.result_capacity(one, one.workflow.steps[0])
    double = fanout.result_capacity(two, two.workflow.steps[0])
    assert single is not None
    assert double == single
