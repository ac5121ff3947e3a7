"""Item errors of ``parallel_foreach`` under ``on_item_error: continue``."""

from __future__ import annotations

from collections.abc import Callable

from wfkit.commands import RunReport
from wfkit.commands.debug import debug_run

FAN = """
name: fan
sub_agent_tasks:
  job:
    inputs: {{n: {{type: integer}}}}
    steps:
      - {{id: work, type: shell_command, command: "test {{{{ n }}}} -lt 3"}}
steps:
  - id: fan
    type: parallel_foreach
    items: [1, 2, 3, 4]
    sub_agent_task: job
    with: {{n: "{{{{ loop.item }}}}"}}
    on_item_error: continue
    {extra}
"""


def test_item_errors_of_a_succeeded_run_are_recovered(run_yaml: Callable[..., RunReport]) -> None:
    report = run_yaml(FAN.format(extra=""))
    assert report.status == "succeeded"
    assert [(e.step_id, e.recovered) for e in report.errors] == [
        ("fan/work", True),
        ("fan/work", True),
    ]
    assert [e.recovered for e in debug_run(report.run_id).errors] == [True, True]


def test_item_errors_below_min_success_fail_the_run(run_yaml: Callable[..., RunReport]) -> None:
    report = run_yaml(FAN.format(extra="min_success: 3"))
    assert report.status == "failed"
    items = [e for e in report.errors if e.step_id == "fan/work"]
    assert [e.recovered for e in items] == [False, False]


SLOW_FAN = """
name: slowfan
sub_agent_tasks:
  job:
    steps:
      - {id: nap, type: shell_command, command: "sleep 0.2"}
steps:
  - {id: fan, type: parallel_foreach, items: [1, 2, 3, 4, 5, 6], sub_agent_task: job,
     max_parallel: 6}
"""


def test_bottleneck_shares_of_parallel_work_never_exceed_100_percent(
    run_yaml: Callable[..., RunReport],
) -> None:
    info = debug_run(run_yaml(SLOW_FAN).run_id)
    nap = next(b for b in info.bottlenecks if b.name == "fan/nap")
    assert nap.parallel
    assert nap.total_ms > info.duration_ms  # type: ignore[operator]  # six overlapping naps
    assert all(0 <= b.share <= 1 for b in info.bottlenecks)


def test_the_parallel_step_row_counts_its_items(run_yaml: Callable[..., RunReport]) -> None:
    from io import StringIO

    from rich.console import Console

    from wfkit.cli.views.run import run_report

    report = run_yaml(FAN.format(extra=""))
    fan = next(s for s in report.steps if s.id == "fan")
    assert (fan.status, fan.items) == ("succeeded", {"succeeded": 2, "failed": 2})
    out = StringIO()
    Console(width=120, color_system=None, file=out).print(run_report(report))
    row = next(line for line in out.getvalue().splitlines() if line.startswith("fan "))
    assert "2 ok / 2 failed" in row
