"""Reports of test suites: workflow coverage (steps, branches, error handlers), LCOV, JUnit XML."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from wfkit.commands.suite.models import CoverageItem, WorkflowCoverage

if TYPE_CHECKING:
    from wfkit.commands.suite.models import CaseResult, TestReport


def measure_coverage(results: list[CaseResult]) -> list[WorkflowCoverage]:
    """Steps executed, branches taken and error handlers used, per workflow file."""
    from wfkit.language import models as m
    from wfkit.language.compile import walk
    from wfkit.language.loader import load_file

    by_workflow: dict[str, list[CaseResult]] = {}
    for result in results:
        by_workflow.setdefault(result.workflow, []).append(result)
    report = []
    for workflow, cases in by_workflow.items():
        loaded = load_file(workflow)
        events = [e for c in cases for e in c.events]
        ran = {e["step_id"].rsplit("/", 1)[-1] for e in events if e["status"] != "skipped"}
        outcomes = {(e["step_id"].rsplit("/", 1)[-1], e["outcome"]) for e in events}
        retried = {e["step_id"].rsplit("/", 1)[-1] for e in events if e["attempts"] > 1}
        failed_on = {e["step_id"].rsplit("/", 1)[-1] for e in events if e["status"] == "failed"}
        errors = {(sid.rsplit("/", 1)[-1], kind) for c in cases for sid, kind, _ in c.errors_seen}
        items: list[CoverageItem] = []

        def add(
            kind: str,
            step: m.StepBase,
            what: str,
            covered: bool,
            items: list[CoverageItem] = items,
            ran: set[str] = ran,
        ) -> None:
            items.append(
                CoverageItem(
                    kind=kind,
                    step_id=step.step_id,
                    line=step.line,
                    what=what,
                    covered=covered,
                    reached=step.step_id in ran,
                )
            )

        for body in (loaded.main, *loaded.tasks.values()):
            for steps in (body.steps, body.finally_steps):
                for step, _ in walk(steps):
                    sid = step.step_id
                    add("step", step, "executed", sid in ran)
                    if isinstance(step, m.ConditionalStep):
                        add("branch", step, "then", (sid, "then") in outcomes)
                        add("branch", step, "else", (sid, "else") in outcomes)
                    if isinstance(step, (m.WhileLoopStep, m.ForeachStep)):
                        add("branch", step, "loop entered", (sid, "entered") in outcomes)
                        add("branch", step, "loop not entered", (sid, "not entered") in outcomes)
                    policy = loaded.plans[id(step)].policy
                    if policy.attempts > 1:
                        add("error_handler", step, "retry", sid in retried)
                    if policy.recovers:
                        add(
                            "error_handler",
                            step,
                            policy.strategy
                            if policy.strategy in ("continue", "fallback")
                            else "fallback",
                            sid in failed_on,
                        )
                    if step.cleanup:
                        add(
                            "error_handler",
                            step,
                            "cleanup",
                            any(c.step_id in ran for c in step.cleanup),
                        )
                    if step.circuit_breaker:
                        add(
                            "error_handler",
                            step,
                            "circuit breaker open",
                            (sid, "CircuitOpenError") in errors,
                        )
        report.append(WorkflowCoverage(workflow=workflow, items=items))
    return report


def write_lcov(coverage: list[WorkflowCoverage], path: str | Path) -> None:
    """LCOV mapping steps to lines (DA) and branches and error handlers to BRDA records."""
    lines: list[str] = []
    for workflow in coverage:
        lines += ["TN:wfkit", f"SF:{workflow.workflow}"]
        steps = [i for i in workflow.items if i.kind == "step"]
        branches = [i for i in workflow.items if i.kind != "step"]
        for number, item in enumerate(branches):
            # LCOV: a count when the branch's step ran (0: reached, not taken), "-" when not
            taken = 1 if item.covered else 0 if item.reached else "-"
            lines.append(f"BRDA:{item.line or 0},0,{number},{taken}")
        lines += [f"BRF:{len(branches)}", f"BRH:{sum(i.covered for i in branches)}"]
        for item in steps:
            lines.append(f"DA:{item.line or 0},{1 if item.covered else 0}")
        lines += [f"LF:{len(steps)}", f"LH:{sum(i.covered for i in steps)}", "end_of_record"]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


#: characters XML 1.0 cannot hold, even escaped (terminal colour codes in a tool's output)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """``text`` with each character XML cannot hold written as ``#xNN``, as pytest does."""
    return _NOT_XML.sub(lambda found: f"#x{ord(found[0]):02X}", text)


def write_junit(report: TestReport, path: str | Path) -> None:
    """JUnit XML: a testsuite per suite file, a testcase per case."""
    import xml.etree.ElementTree as ET

    root = ET.Element(
        "testsuites",
        tests=str(len(report.cases)),
        failures=str(report.failed),
        errors=str(report.errors),
        time=f"{report.duration_ms / 1000:.3f}",
    )
    by_file: dict[str, list[CaseResult]] = {}
    for case in report.cases:
        by_file.setdefault(case.file, []).append(case)
    for file, cases in by_file.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_xml_text(file),
            tests=str(len(cases)),
            failures=str(sum(c.status == "failed" for c in cases)),
            errors=str(sum(c.status == "error" for c in cases)),
            time=f"{sum(c.duration_ms for c in cases) / 1000:.3f}",
        )
        for case in cases:
            element = ET.SubElement(
                suite,
                "testcase",
                classname=_xml_text(Path(case.workflow).name),
                name=_xml_text(case.name),
                time=f"{case.duration_ms / 1000:.3f}",
            )
            if case.status == "failed":
                message = _xml_text(case.failures[0].message)
                failure = ET.SubElement(
                    element, "failure", message=message, type="ExpectationFailed"
                )
                text = "\n".join([*(f.message for f in case.failures), *case.why()])
                failure.text = _xml_text(text)
            elif case.status == "error":
                message = _xml_text(case.error or "")
                error = ET.SubElement(element, "error", message=message, type="CaseError")
                error.text = message
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
