"""``wfkit report`` on a run of 10,000 step executions: build time, file size, browser load.

Prints figures; asserts nothing. The run has a ``foreach`` of 5,000 iterations, a
``parallel_foreach`` of 1,000 items of 5 steps each and a shell step with a large output.
The browser figure needs Chromium (``/usr/bin/chromium``) and the ``playwright`` package.

    python benchmarks/report.py            # 10,000 executions
    python benchmarks/report.py --quick    # 1,000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def big_workflow(loop: int, items: int) -> str:
    """A workflow of about ``loop + 5 * items`` step executions."""
    steps = "\n".join(
        f"      - {{id: s{i}, type: state_update, path: raw.n, value: '{{{{ n + {i} }}}}'}}"
        for i in range(5)
    )
    return (
        "name: report-bench\nstate_schema:\n  raw: {count: integer, results: array}\n"
        "steps:\n"
        "  - id: noisy\n    type: shell_command\n    command: 'seq 1 100000'\n"
        f"  - id: loop\n    type: foreach\n    items: '{{{{ range({loop}) | list }}}}'\n"
        "    body:\n      - {id: tick, type: state_update, path: raw.count, operation: increment}\n"
        f"  - id: fan\n    type: parallel_foreach\n    items: '{{{{ range({items}) | list }}}}'\n"
        "    sub_agent_task: work\n    max_parallel: 8\n"
        "sub_agent_tasks:\n  work:\n    state_schema:\n      raw: {n: integer}\n    steps:\n"
        f"{steps}\n"
    )


def browser_load_seconds(path: Path, rounds: int) -> list[float]:
    """Seconds from navigation until the page's script has drawn it, per round."""
    from tests import browser as chrome

    times = []
    with chrome.chromium() as browser:
        for _ in range(rounds):
            seen = chrome.watched_page(browser)
            start = time.perf_counter()
            seen.page.goto(path.as_uri())
            seen.page.wait_for_selector("body[data-ready=true]", state="attached", timeout=120_000)
            times.append(time.perf_counter() - start)
            if seen.problems():
                print(f"  the page reported problems: {seen.problems()[:3]}")
            seen.page.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 executions")
    args = parser.parse_args()
    loop, items = (500, 100) if args.quick else (5_000, 1_000)
    from wfkit.cli.views.html import run_page_html
    from wfkit.commands import run_workflow
    from wfkit.commands.report import report_run

    with tempfile.TemporaryDirectory() as tmp:
        flow = Path(tmp) / "big.yaml"
        flow.write_text(big_workflow(loop, items))
        store = Path(tmp) / "runs.db"
        os.environ["WFKIT_COMPILE_CACHE"] = "0"
        run = run_workflow(flow, store=store)
        start = time.perf_counter()
        page = report_run(run.run_id, store=store)
        built = time.perf_counter() - start
        start = time.perf_counter()
        html = run_page_html(page)
        rendered = time.perf_counter() - start
        out = Path(tmp) / "report.html"
        out.write_text(html, encoding="utf-8")
        print(f"report of {len(page.executions):,} step executions ({run.status})")
        print(f"  reading the store: {built * 1000:.0f} ms, rendering: {rendered * 1000:.0f} ms")
        cut = "; ".join(page.notes) or "nothing"
        print(f"  file: {out.stat().st_size / 1e6:.2f} MB; cut: {cut}")
        sys.path.insert(0, str(ROOT))
        from tests import browser as chrome

        reason = chrome.missing()
        if reason is not None:
            print(f"  browser load: skipped ({reason})")
            return
        times = browser_load_seconds(out, 3 if args.quick else 5)
        print(
            f"  browser load (navigation to drawn): median {statistics.median(times) * 1000:.0f}"
            f" ms, max {max(times) * 1000:.0f} ms over {len(times)} rounds (target < 2,000 ms)"
        )


if __name__ == "__main__":
    main()
