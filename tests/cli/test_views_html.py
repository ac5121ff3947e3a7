"""The HTML pages in a real headless Chromium: what a user sees, and nothing fetched or run.

Needs Debian's ``chromium`` and the ``playwright`` package (see tests/browser.py); without
them the tests skip with the reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from tests import browser as chrome
from tests.commands.test_report import FLOW
from wfkit.cli.app import app
from wfkit.cli.views.html import COLLAPSE_AFTER
from wfkit.commands import run_workflow

if TYPE_CHECKING:
    from playwright.sync_api import Browser

HANG_GUARD_MS = 60_000  # generous: a page that never draws fails instead of hanging


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A browser per test, started after the test's runs: Playwright's sync API keeps an
    event loop running in this thread, where a run (``asyncio.run``) could not start."""
    reason = chrome.missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run under CI=true: {reason}")
        pytest.skip(reason)
    with chrome.chromium() as b:
        yield b


def _report(run_id: str, tmp_path: Path) -> Path:
    out = tmp_path / f"{run_id}.html"
    result = CliRunner().invoke(app, ["report", run_id, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _open(browser: Browser, path: Path) -> chrome.Watched:
    seen = chrome.watched_page(browser)
    seen.page.goto(path.as_uri())
    seen.page.wait_for_selector("body[data-ready=true]", state="attached", timeout=HANG_GUARD_MS)
    return seen


@pytest.fixture
def failed_run(write: Callable[..., Path], tmp_path: Path) -> str:
    report = run_workflow(write(FLOW), {"marker": str(tmp_path / "marker")})
    assert report.status == "failed"
    return report.run_id


@pytest.fixture
def failed_page(failed_run: str, tmp_path: Path) -> Path:
    return _report(failed_run, tmp_path)


def test_run_page_shows_every_step_the_failure_and_the_error(
    failed_page: Path, browser: Browser
) -> None:
    seen = _open(browser, failed_page)
    page = seen.page
    for step_id in ("note", "fetch", "api", "deploy", "deploy/push"):
        assert page.locator(f'.row[data-step="{step_id}"]').first.is_visible(), step_id
    assert page.locator('.row[data-step="deploy/push"]').count() == 3
    failing = page.locator('.row[data-step="deploy/push"][data-status="failed"]')
    assert failing.count() == 1
    assert "st-failed" in (failing.get_attribute("class") or "")
    assert "✗" in failing.inner_text()
    assert page.locator('.row[data-step="deploy"][data-status="failed"]').count() == 1
    chain = page.locator("#error .chain li")
    assert chain.count() == 2
    assert "SubAgentError" in chain.nth(0).inner_text()
    assert "quota </script> exceeded" in chain.nth(1).inner_text()
    assert page.locator(".fan .lane.st-failed").get_attribute("data-lane") == "deploy [item 2]"
    assert page.locator(".row.crit").count() >= 3
    assert seen.problems() == []
    assert seen.requests == [page.url]


def test_script_in_state_and_output_is_text_and_never_runs(
    failed_page: Path, browser: Browser
) -> None:
    seen = _open(browser, failed_page)
    page = seen.page
    raw = page.locator('#state-view .tier[data-tier="raw"]')
    assert "<script>alert('state')</script>" in raw.inner_text()
    page.locator('.row[data-step="fetch"]').click()
    details = page.locator("#details")
    assert "<script>alert('out')</script>" in details.inner_text()
    assert details.locator(".attempt").count() == 2
    assert "503 busy" in details.locator('.attempt[data-attempt="1"]').inner_text()
    assert "retry planned in 1.0 ms" in details.inner_text()
    # only the page's two script elements exist; nothing from the data became one
    assert page.evaluate("document.querySelectorAll('script').length") == 2
    assert page.evaluate("typeof window.alert") == "function"
    assert seen.dialogs == []
    assert seen.problems() == []


def test_selecting_a_step_shows_the_state_after_its_top_level_step(
    failed_page: Path, browser: Browser
) -> None:
    page = _open(browser, failed_page).page
    page.locator('.row[data-step="note"]').click()
    assert page.locator("#state-at").input_value() == "0"
    raw = page.locator('#state-view .tier[data-tier="raw"]').inner_text()
    assert "note" in raw
    assert "fetched" not in raw  # written by the next top-level step
    page.select_option("#state-at", "end")
    assert "fetched" in page.locator('#state-view .tier[data-tier="raw"]').inner_text()


def test_an_item_shows_its_own_state_and_the_breakers_their_state(
    failed_page: Path, browser: Browser
) -> None:
    seen = _open(browser, failed_page)
    page = seen.page
    page.locator('.lane[data-lane="deploy [item 0]"] .row').click()
    own = page.locator("#details .item-state")
    assert "State of deploy [item 0] at its end" in own.inner_text()
    assert '"eu"' in own.locator('.tier[data-tier="inputs"]').inner_text()
    page.locator('.lane[data-lane="deploy [item 2]"] .row').click()
    assert "Not available" in page.locator("#details .item-state").inner_text()
    breakers = page.locator("#breakers").inner_text()
    assert "api" in breakers
    assert "open" in breakers
    assert seen.problems() == []


def test_lanes_collapse_and_expand_by_clicking(failed_page: Path, browser: Browser) -> None:
    page = _open(browser, failed_page).page
    lane = page.locator('.lane[data-lane="deploy [item 0]"]')
    row = lane.locator(".row")
    assert row.is_visible()  # few items: open
    lane.locator(".lane-head").click()
    assert not row.is_visible()
    assert lane.locator(".lane-head").get_attribute("aria-expanded") == "false"
    lane.locator(".lane-head").click()
    assert row.is_visible()


REGIONS = [f"r{i}" for i in range(COLLAPSE_AFTER + 2)] + ["ap"]


@pytest.fixture
def many_items_page(write: Callable[..., Path], tmp_path: Path) -> Path:
    report = run_workflow(write(FLOW), {"marker": str(tmp_path / "m"), "regions": REGIONS})
    return _report(report.run_id, tmp_path)


def test_many_items_start_collapsed_except_the_failed_one(
    many_items_page: Path, browser: Browser
) -> None:
    regions = REGIONS
    seen = _open(browser, many_items_page)
    page = seen.page
    lanes = page.locator(".fan .lane")
    assert lanes.count() == len(regions)
    closed = page.locator('.fan .lane-head[aria-expanded="false"]')
    assert closed.count() == len(regions) - 1
    failed = page.locator(".fan .lane.st-failed")
    assert failed.locator(".row").is_visible()
    first = page.locator('.lane[data-lane="deploy [item 0]"]')
    assert first.locator(".row").count() == 0  # drawn when first opened
    first.locator(".lane-head").click()
    assert first.locator('.row[data-step="deploy/push"]').is_visible()
    page.locator(".fan .expand-all").click()
    assert closed.count() == 0
    page.locator(".fan .collapse-all").click()
    assert closed.count() == len(regions)
    assert seen.problems() == []


@pytest.fixture
def suite_page(write: Callable[..., Path], tmp_path: Path) -> Path:
    write(
        """
        name: greet
        inputs: {names: {type: array}}
        state_schema: {raw: {greeted: array}}
        steps:
          - id: each
            type: foreach
            items: "{{ names }}"
            body:
              - {id: add, type: state_update, path: raw.greeted, operation: append,
                 value: "Hello, {{ loop.item }}!"}
          - {id: last, type: user_message, message: "{{ greeted[-1] }}"}
        """,
        "greet.yaml",
    )
    write(
        """
        workflow: greet.yaml
        cases:
          - name: greets <script>alert(1)</script>
            inputs: {names: [Ada]}
            expect: {status: succeeded, state: {greeted: ["Hello, Ada!"]}}
          - name: an empty list
            inputs: {names: []}
            expect: {status: succeeded}
        """,
        "greet.wftest.yaml",
    )
    out = tmp_path / "suite.html"
    result = CliRunner().invoke(
        app, ["test", str(tmp_path / "greet.wftest.yaml"), "--html", str(out)]
    )
    assert result.exit_code == 1
    assert str(out) in result.stderr
    return out


def test_suite_page_shows_cases_failures_and_coverage(suite_page: Path, browser: Browser) -> None:
    seen = _open(browser, suite_page)
    page = seen.page
    cases = page.locator("tr.case")
    assert cases.count() == 2
    assert page.locator("tr.case.st-passed").get_attribute("data-case") == (
        "greets <script>alert(1)</script>"
    )
    assert "greets <script>alert(1)</script>" in page.locator("tr.case.st-passed").inner_text()
    why = page.locator("tr.why")
    assert why.count() == 1
    assert "UndefinedVariableError" in why.inner_text()
    assert "expected" in why.inner_text()
    coverage = page.locator("#coverage")
    assert "greet.yaml" in coverage.inner_text()
    assert page.locator("#coverage tr.cov-covered").count() >= 3
    assert page.evaluate("document.querySelectorAll('script').length") == 0
    assert seen.dialogs == []
    assert seen.problems() == []
    assert seen.requests == [page.url]


@pytest.fixture
def big_page(write: Callable[..., Path], tmp_path: Path) -> Path:
    steps = "\n".join(
        f"      - {{id: s{i}, type: state_update, path: raw.n, value: {i}}}" for i in range(5)
    )
    flow = write(
        "name: big\nstate_schema:\n  raw: {count: integer}\nsteps:\n"
        "  - id: loop\n    type: foreach\n    items: '{{ range(5000) | list }}'\n"
        "    body:\n      - {id: tick, type: state_update, path: raw.count, operation: increment}\n"
        "  - id: fan\n    type: parallel_foreach\n    items: '{{ range(1000) | list }}'\n"
        "    sub_agent_task: work\n    max_parallel: 8\n"
        f"sub_agent_tasks:\n  work:\n    state_schema:\n      raw: {{n: integer}}\n    steps:\n"
        f"{steps}\n"
    )
    report = run_workflow(flow)
    assert report.status == "succeeded"
    return _report(report.run_id, tmp_path)


def test_a_page_of_10000_executions_loads(big_page: Path, browser: Browser) -> None:
    seen = _open(browser, big_page)
    page = seen.page
    assert page.locator(".fan .lane").count() == 1000
    assert page.locator('.fan .lane-head[aria-expanded="false"]').count() == 1000
    assert page.locator(".lane").first.locator(".more").is_visible()  # 5,002 rows: in parts
    assert "10002 step execution(s)" in page.locator("header").inner_text()
    assert seen.problems() == []


RECOVERING = """
name: rec
steps:
  - id: fan
    type: parallel_foreach
    items: [1, 2, 3, 4, 5, 6, 7]
    sub_agent_task: t
    on_item_error: continue
sub_agent_tasks:
  t:
    inputs: {item: {type: integer}}
    steps:
      - {id: x, type: shell_command, command: "test {{ item }} -eq 1"}
"""


@pytest.fixture
def recovering_page(write: Callable[..., Path], tmp_path: Path) -> Path:
    report = run_workflow(write(RECOVERING))
    assert report.status == "succeeded"
    return _report(report.run_id, tmp_path)


def test_a_succeeded_run_with_recovered_failures_is_green_and_lists_them(
    recovering_page: Path, browser: Browser
) -> None:
    seen = _open(browser, recovering_page)
    page = seen.page
    workflow_lane = page.locator('.lane[data-lane="workflow"]')
    assert "st-succeeded" in (workflow_lane.get_attribute("class") or "")
    listed = page.locator("section#recovered")
    assert listed.is_visible()  # on the page without a click
    assert "Recovered errors (6)" in listed.inner_text()
    assert "ShellCommandError in fan/x (6 times)" in listed.inner_text()
    assert seen.problems() == []


@pytest.fixture
def linked_pages(write: Callable[..., Path], tmp_path: Path) -> tuple[str, Path, str, Path]:
    """A caller whose ``parallel`` branch calls a child, and both pages."""
    write("name: child\nsteps: [{type: user_message, message: hi}]\n", "child.yaml")
    caller = write(
        """
        name: caller
        steps:
          - id: checks
            type: parallel
            branches:
              lint: [{type: user_message, message: lint}]
              docs: [{id: docs, type: workflow, file: child.yaml}]
        """,
        "caller.yaml",
    )
    report = run_workflow(caller)
    assert report.status == "succeeded", report.error
    child = _child_of(report.run_id)
    return report.run_id, _report(report.run_id, tmp_path), child, _report(child, tmp_path)


def _child_of(run_id: str) -> str:
    from wfkit.commands.debug import debug_run

    [child] = debug_run(run_id).child_run_ids
    return child


def test_a_callers_page_links_its_child_runs_and_draws_branch_lanes(
    linked_pages: tuple[str, Path, str, Path], browser: Browser
) -> None:
    caller, caller_page, child, child_page = linked_pages
    page = _open(browser, caller_page).page
    assert page.locator("#child-runs a").inner_text() == child
    assert page.locator("#child-runs a").get_attribute("href") == f"wfkit-report-{child}.html"
    assert page.locator('.lane[data-lane="checks [branch docs]"]').count() == 1
    other = _open(browser, child_page).page
    assert other.locator("#parent-run a").inner_text() == caller
