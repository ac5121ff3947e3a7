"""Write docs/images/report.png: the ``wfkit report`` page of a real run, in headless Chromium.

    python docs/generate_report_screenshot.py

Runs ``examples/report-demo.yaml`` (a retried step, a failing parallel item) in a temporary
store, writes its page and photographs it with the browser setup of the page tests
(tests/browser.py: Debian's chromium driven by Playwright), the failing item selected.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images" / "report.png"


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from tests import browser as chrome
    from wfkit.cli.views.html import run_page_html
    from wfkit.commands import run_workflow
    from wfkit.commands.report import report_run

    reason = chrome.missing()
    if reason is not None:
        raise SystemExit(f"cannot take the screenshot: {reason}")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "runs.db"
        cwd = os.getcwd()
        os.chdir(ROOT)  # the page names the file as given: relative to the repository
        try:
            run = run_workflow("examples/report-demo.yaml", store=store)
        finally:
            os.chdir(cwd)
        page_file = Path(tmp) / "run.html"
        page_file.write_text(run_page_html(report_run(run.run_id, store=store)), encoding="utf-8")
        with chrome.chromium() as browser:
            seen = chrome.watched_page(browser, width=1280, height=900)
            page = seen.page
            page.goto(page_file.as_uri())
            page.wait_for_selector("body[data-ready=true]", state="attached", timeout=60_000)
            page.locator('.row[data-step="deploy/push"][data-status="failed"]').click()
            # the header, the error chain, the timeline and the selected step's details
            height = page.evaluate(
                "document.querySelector('#details').getBoundingClientRect().bottom"
                " + window.scrollY + 16"
            )
            page.screenshot(
                path=str(OUT),
                full_page=True,
                clip={"x": 0, "y": 0, "width": 1280, "height": height},
            )
            if seen.problems():
                raise SystemExit(f"the page reported problems: {seen.problems()}")
    print(f"wrote {OUT.relative_to(ROOT)} (run {run.run_id}, {run.status})")


if __name__ == "__main__":
    main()
