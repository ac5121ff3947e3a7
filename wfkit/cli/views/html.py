"""Self-contained HTML pages: a run (``wfkit report``) and a test suite (``wfkit test --html``).

One file each, with inline CSS and JavaScript and nothing else: no fonts, images or scripts
from anywhere, and a Content-Security-Policy that forbids fetching any (``default-src
'none'``) and runs only the page's own script (by its hash). The run page embeds its data as
JSON in a ``<script type="application/json">`` element (``<``, ``>`` and ``&`` escaped, so no
value can end the element) and builds the DOM with ``textContent``: user data is never parsed
as HTML. The suite page is rendered here with every value through :func:`html.escape`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wfkit.controls import visible

if TYPE_CHECKING:
    from wfkit.commands.report import RunPage
    from wfkit.commands.suite.models import TestReport

#: lanes beyond this count start collapsed (failed ones stay open)
COLLAPSE_AFTER = 10
#: rows of a lane drawn at first; a button draws the rest in steps of this size
ROWS_AT_ONCE = 500

_EXEC_KEYS = (
    "seq",
    "step_id",
    "step_type",
    "status",
    "attempts",
    "start_ms",
    "duration_ms",
    "error_type",
    "item",
    "injected",
    "lane",
    "top",
    "critical",
    "tries",
    "waits",
    "errors",
)


#: DEL and C1: JSON leaves them as they are (C0 it escapes already)
_C1 = re.compile("[\x7f-\x9f]")


def escape(text: str) -> str:
    """``text`` as HTML text or attribute value, its control characters shown as symbols
    (:mod:`wfkit.controls`): raw ones are invalid in HTML and reach a terminal that shows
    the page's source."""
    return html.escape(visible(text))


def _asset(name: str) -> str:
    return resources.files("wfkit.cli").joinpath("assets", name).read_text(encoding="utf-8")


def json_for_script(data: Any) -> str:
    """JSON that cannot end a ``<script>`` element or open a comment inside one, with no raw
    control character (the values decode exactly as they were)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
    return _C1.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def _csp(script: str | None) -> str:
    policy = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'"
    if script is not None:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        policy += f"; script-src 'sha256-{digest}'"
    return policy


def _page(title: str, body: str, script: str | None = None, data: str | None = None) -> str:
    parts = [
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>",
        # the policy is built here from constants and a hash: nothing in it needs escaping
        f'<meta http-equiv="Content-Security-Policy" content="{_csp(script)}">',
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{escape(title)}</title><style>{_asset('report.css')}</style></head>",
        # a page without a script is ready as it arrives; the run page's script marks itself
        "<body>" if script is not None else "<body data-ready='true'>",
        body,
    ]
    if data is not None:
        parts.append(f'<script type="application/json" id="wfkit-data">{data}</script>')
    if script is not None:
        parts.append(f"<script>{script}</script>")
    parts.append("</body></html>\n")
    return "".join(parts)


def _compact(page: RunPage) -> dict[str, Any]:
    """The page's data, executions as rows under one key list (a 10,000-step run stays small)."""
    data = page.model_dump(mode="json", exclude={"executions"})
    data["exec_keys"] = list(_EXEC_KEYS)
    data["executions"] = [
        [
            getattr(e, key) if key != "tries" else [t.model_dump() for t in e.tries]
            for key in _EXEC_KEYS
        ]
        for e in page.executions
    ]
    data["ui"] = {"collapse_after": COLLAPSE_AFTER, "rows_at_once": ROWS_AT_ONCE}
    return data


def run_page_html(page: RunPage) -> str:
    """The HTML page of one run."""
    body = (
        "<noscript><p class='note'>This page draws its timeline with JavaScript; "
        f"run <code>wfkit debug {escape(page.run_id)}</code> for the same facts as text."
        "</p></noscript><main id='app'></main>"
    )
    script = _asset("report.js")
    return _page(
        f"wfkit run {page.run_id} ({page.status})",
        body,
        script=script,
        data=json_for_script(_compact(page)),
    )


def _badge(status: str) -> str:
    return f"<span class='badge st-{escape(status)}'>{escape(status)}</span>"


def suite_page_html(report: TestReport, title: str = "wfkit test") -> str:
    """The HTML page of a test suite run: cases, failures with their first error, coverage."""
    status = "passed" if report.ok else "failed"
    out = [
        f"<header><h1>{escape(title)} {_badge(status)}</h1>",
        f"<p class='meta'>{report.passed} passed, {report.failed} failed, {report.errors} error(s)"
        f" in {len(report.cases)} case(s), {report.duration_ms:.0f} ms</p></header>",
        "<section id='cases'><h2>Cases</h2><table class='grid'><thead><tr><th>status</th>"
        "<th>workflow</th><th>case</th><th>ms</th></tr></thead><tbody>",
    ]
    for i, case in enumerate(report.cases):
        out.append(
            f"<tr class='case st-{escape(case.status)}' data-case='{escape(case.name)}'>"
            f"<td>{_badge(case.status)}</td><td>{escape(Path(case.file).name)}</td>"
            f"<td>{escape(case.name)}</td><td class='num'>{case.duration_ms:.0f}</td></tr>"
        )
        if case.status != "passed":
            out.append(
                f"<tr class='why'><td></td><td colspan='3'>{_case_failure(case, i)}</td></tr>"
            )
    out.append("</tbody></table></section>")
    if report.coverage is not None:
        out.append(_coverage_html(report))
    return _page(f"{title}: {status}", "<main>" + "".join(out) + "</main>")


def _case_failure(case: Any, index: int) -> str:
    parts = []
    if case.error:
        parts.append(f"<pre class='err'>{escape(case.error)}</pre>")
    if case.failures:
        parts.append("<ul class='failures'>")
        for failure in case.failures:
            parts.append(
                f"<li><code>{escape(failure.path)}</code>: {escape(failure.message)}"
                f"<div class='dim'>expected <code>{escape(_short(failure.expected))}</code>, "
                f"got <code>{escape(_short(failure.actual))}</code></div></li>"
            )
        parts.append("</ul>")
    if case.first_error is not None:
        e = case.first_error
        parts.append(
            f"<div class='first-error' id='first-error-{index}'><b>first error</b>: "
            f"<code>{escape(e.step_id)}</code>: {escape(e.error_type)}"
            f"<pre class='err'>{escape(e.message)}</pre></div>"
        )
    if case.run_id and case.store:
        parts.append(
            f"<div class='dim'>run kept: <code>wfkit report {escape(case.run_id)} "
            f"--store {escape(case.store)}</code></div>"
        )
    return "".join(parts)


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _coverage_html(report: TestReport) -> str:
    assert report.coverage is not None
    out = [
        "<section id='coverage'><h2>Workflow coverage"
        + (f" {report.coverage_percent:.1f}%" if report.coverage_percent is not None else "")
        + "</h2>"
    ]
    for workflow in report.coverage:
        covered = sum(i.covered for i in workflow.items)
        out.append(
            f"<h3>{escape(Path(workflow.workflow).name)} <span class='dim'>{covered}/"
            f"{len(workflow.items)} ({workflow.percent:.1f}%)</span></h3>"
            "<table class='grid cov'><thead><tr><th></th><th>kind</th><th>step</th>"
            "<th>line</th><th>what</th></tr></thead><tbody>"
        )
        for item in workflow.items:
            mark = "covered" if item.covered else "reached" if item.reached else "missed"
            out.append(
                f"<tr class='cov-{mark}'><td>{'✓' if item.covered else '✗'}</td>"
                f"<td>{escape(item.kind)}</td><td><code>{escape(item.step_id)}</code></td>"
                f"<td class='num'>{'' if item.line is None else item.line}</td>"
                f"<td>{escape(item.what)}"
                + (
                    ""
                    if item.covered or not item.reached
                    else " <span class='dim'>(step ran)</span>"
                )
                + "</td></tr>"
            )
        out.append("</tbody></table>")
    out.append("</section>")
    return "".join(out)
