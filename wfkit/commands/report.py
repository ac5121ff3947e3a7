"""``report``: everything one HTML page of a run shows, read from the run store.

The page (``wfkit/cli/views/html.py``) is a view of :class:`RunPage`: the run's status and
inputs, its step executions and attempts on one time axis (parallel items as lanes, the
critical path marked), the error chain, the state per tier at the end and after each
top-level step (from the checkpoint log), computed-field traces, captured output and breaker
states. What does not fit the page's bounds is cut, and :attr:`RunPage.notes` says what.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from wfkit.commands._base import StrictModel
from wfkit.commands._runs import iso
from wfkit.commands.debug import debug_run
from wfkit.commands.logs import log_attempt
from wfkit.commands.report_timeline import (
    ReportAttempt,
    ReportExecution,
    ReportLane,
    Timeline,
    unfinished,
)
from wfkit.store import open_store
from wfkit.store.base import Store

#: characters of one output stream of one attempt the page keeps (half head, half tail)
STREAM_CHARS = 8_000
#: characters of captured output the whole page keeps; later attempts show none
OUTPUT_BUDGET = 1_000_000
#: characters of one value's JSON (state, inputs, trace output) the page shows
VALUE_CHARS = 2_000
#: characters of one error message
MESSAGE_CHARS = 4_000
#: computed-field trace records shown
TRACES_SHOWN = 2_000
#: state changes of the checkpoint log shown (the state after each top-level step)
STATE_CHANGES_SHOWN = 20_000
#: parallel items whose own final state the page shows
ITEM_STATES_SHOWN = 1_000

_TOP = re.compile(r"^steps\[(\d+)\] (\S+) ")
_SHOWN_TIERS = ("raw", "computed")


class ChainLink(StrictModel):
    """One error of a chain: a sub-agent error, then the item's error that caused it."""

    error_type: str
    step_id: str | None
    message: str
    item: int | None = None
    attempt: int | None = None


class ReportError(StrictModel):
    """One failed attempt of the run, with the chain of errors it carries."""

    step_id: str
    error_type: str
    message: str
    timestamp: str
    retry_count: int
    recovered: bool
    injected: bool
    chain: list[ChainLink]


class StateChange(StrictModel):
    """One checkpointed value: its JSON text (``None``: deleted), shortened when long."""

    tier: str
    name: str
    value: str | None
    cut_chars: int = 0


class TopStep(StrictModel):
    """A top-level step and the state changes checkpointed while it ran."""

    index: int
    step_id: str
    changes: list[StateChange]


class TraceRow(StrictModel):
    field: str
    step_id: str | None
    trigger: str
    start_ms: float
    duration_ms: float
    input: str
    output: str
    error: str | None


class RunPage(StrictModel):
    """The result of ``wfkit report``: what the HTML page of a run shows."""

    run_id: str
    workflow: str
    file: str
    status: str
    started_at: str
    finished_at: str | None
    duration_ms: float | None
    span_ms: float  # the time axis: the run's duration, or its last recorded step's end
    inputs: dict[str, str]
    #: the run whose ``workflow`` step started this one, and the runs this one's started
    parent_run_id: str | None = None
    child_run_ids: list[str] = []
    failed_step: str | None
    error_chain: list[ChainLink]
    errors: list[ReportError]
    errors_dropped: int
    executions: list[ReportExecution]
    lanes: list[ReportLane]
    critical_ms: float
    state_source: str  # final | checkpoint | none
    state: dict[str, dict[str, str]]
    top_steps: list[TopStep]
    #: what the page can say about the state at a selected step (shown beside it)
    state_note: str
    traced: bool
    traces: list[TraceRow]
    breakers: dict[str, dict[str, Any]]
    warnings: list[str]
    messages: list[str]
    #: what the page leaves out, in words
    notes: list[str]
    limits: dict[str, int]


def _json_text(value: Any, limit: int = VALUE_CHARS) -> tuple[str, int]:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return _shorten(text, limit)


def _shorten(text: str, limit: int) -> tuple[str, int]:
    """``text`` cut to its head and tail within ``limit`` characters, and how many were cut."""
    if len(text) <= limit:
        return text, 0
    half = limit // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[report: {cut} characters cut here]\n{text[-half:]}", cut


def chain_of(details: dict[str, Any]) -> list[ChainLink]:
    """An error's details and the ``cause`` each one carries, outermost first."""
    links: list[ChainLink] = []
    current: Any = details
    while isinstance(current, dict) and len(links) < 20:
        links.append(
            ChainLink(
                error_type=str(current.get("type", "Error")),
                step_id=current.get("step_id"),
                message=_shorten(str(current.get("message", "")), MESSAGE_CHARS)[0],
                item=current.get("index"),
                attempt=current.get("attempt"),
            )
        )
        current = current.get("cause")
    return links


def _top_steps(structure: list[str] | None) -> list[tuple[int, str]]:
    tops = []
    for entry in structure or []:
        match = _TOP.match(entry)
        if match is not None:
            tops.append((int(match[1]), match[2]))
    return tops


def _top_of(structure: list[str] | None) -> dict[str, int]:
    """Step id -> index of the top-level step it is in (nested steps and items too)."""
    owner: dict[str, int] = {}
    for entry in structure or []:
        path, _, rest = entry.partition(" ")
        match = re.match(r"^steps\[(\d+)\]", path)
        if match is not None and rest:
            owner.setdefault(rest.split(" ", 1)[0], int(match[1]))
    return owner


def _state_changes(
    log: list[dict[str, dict[str, str | None]]], budget: int
) -> tuple[dict[int, list[StateChange]], int]:
    """Checkpointed changes per top-level index (raw and computed), and how many were left out."""
    per_top: dict[int, list[StateChange]] = {}
    left_out = 0
    shown = 0
    for row in log:
        for top, values in row.items():
            for key, text in values.items():
                tier, _, name = key.partition("/")
                if tier not in _SHOWN_TIERS:
                    continue
                if shown >= budget:
                    left_out += 1
                    continue
                shown += 1
                value, cut = (None, 0) if text is None else _shorten(text, VALUE_CHARS)
                per_top.setdefault(int(top), []).append(
                    StateChange(tier=tier, name=name, value=value, cut_chars=cut)
                )
    return per_top, left_out


def report_run(run_id: str, *, store: str | Path | None = None, read_only: bool = False) -> RunPage:
    """Everything the HTML page of a run shows, bounded (see the module's constants)."""
    from wfkit.commands._runs import effective_status

    info = debug_run(run_id, store=store, read_only=read_only)
    with open_store(store, create=False, read_only=read_only) as run_store:
        row = run_store.get_run(info.run_id)
        history = run_store.step_history(row.run_id)
        stored_errors = run_store.errors(row.run_id)
        decisions = run_store.decisions(row.run_id)
        traces = run_store.traces(row.run_id)
        outputs = run_store.outputs(row.run_id)
        status = effective_status(row)
        tries, notes = _attempts(run_store, row.run_id, row.started_at, status, outputs)
        log = run_store.checkpoint_log(row.run_id)
        messages = [
            _shorten(m.text, MESSAGE_CHARS)[0]
            for m in run_store.messages(row.run_id)
            if m.level != "warning"
        ]
    history = history + unfinished(history, outputs, status)
    timeline = Timeline(history, row.started_at)
    errors = [
        ReportError(
            step_id=e.step_id,
            error_type=e.error_type,
            message=_shorten(e.message, MESSAGE_CHARS)[0],
            timestamp=iso(e.timestamp),
            retry_count=e.retry_count,
            recovered=e.recovered,
            injected=bool(e.details.get("injected")),
            chain=chain_of(e.details),
        )
        for e in stored_errors
    ]
    executions = timeline.executions(
        tries,
        [e.timestamp for e in stored_errors],
        [e.step_id for e in stored_errors],
        decisions,
        _top_of(row.structure),
    )
    state, tops, state_notes = _states(info.state, log, row.structure)
    item_states, items_left_out = _item_states(log)
    if items_left_out:
        notes.append(
            f"the own state of {items_left_out} parallel item(s) past the first "
            f"{ITEM_STATES_SHOWN} is not on the page"
        )
    trace_rows, trace_notes = _trace_rows(traces, row.started_at, row.run_id)
    notes += state_notes + trace_notes
    if info.errors_dropped:
        notes.append(f"the run kept its first failed attempts only: {info.errors_dropped} not kept")
    return RunPage(
        run_id=row.run_id,
        workflow=row.workflow,
        file=row.file,
        status=status,
        started_at=info.started_at,
        finished_at=info.finished_at,
        duration_ms=row.duration_ms,
        span_ms=round(max([row.duration_ms or 0.0, *(e * 1000 for e in timeline.ends)]) or 1.0, 3),
        inputs={name: _json_text(value)[0] for name, value in row.inputs.items()},
        parent_run_id=info.parent_run_id,
        child_run_ids=info.child_run_ids,
        failed_step=info.failed_step,
        error_chain=chain_of(row.error) if row.error and status != "succeeded" else [],
        errors=errors,
        errors_dropped=info.errors_dropped,
        executions=executions,
        lanes=timeline.lanes(executions, item_states, status, row.structure),
        critical_ms=round(sum(e.duration_ms for e in executions if e.critical), 3),
        state_source=info.state_source,
        state=state,
        top_steps=tops,
        state_note=_state_note(bool(log), bool(row.structure)),
        traced=bool(traces),
        traces=trace_rows,
        breakers=info.breakers,
        warnings=info.warnings,
        messages=messages,
        notes=notes,
        limits={
            "stream_chars": STREAM_CHARS,
            "output_budget": OUTPUT_BUDGET,
            "value_chars": VALUE_CHARS,
            "traces_shown": TRACES_SHOWN,
        },
    )


_ITEM_KEYS = frozenset({"index", "item", "status", "state"})


def _item_states(
    log: list[dict[str, dict[str, str | None]]],
) -> tuple[dict[tuple[str, int], dict[str, dict[str, str]]], int]:
    """The state of each parallel item of the main workflow at its end, as checkpointed:
    the step's result once it ended (``steps/STEP``), or the item's own note while the step
    ran (``memory/item:STEP:INDEX``); and how many were left out."""
    found: dict[tuple[str, int], dict[str, dict[str, str]]] = {}
    left_out: set[tuple[str, int]] = set()

    def keep(fan: str, result: Any) -> None:
        if not isinstance(result, dict) or not result.keys() >= _ITEM_KEYS:
            return
        key = (fan, result["index"])
        if key in found or not isinstance(result["index"], int):
            return
        if len(found) >= ITEM_STATES_SHOWN:
            left_out.add(key)
            return
        found[key] = {
            tier: {name: _json_text(value)[0] for name, value in values.items()}
            for tier, values in (result["state"] or {}).items()
            if isinstance(values, dict)
        }

    for row in log:
        for values in row.values():
            for key, text in values.items():
                if text is None or '"state"' not in text:
                    continue
                tier, _, name = key.partition("/")
                if tier == "memory" and name.startswith("item:"):
                    keep(name[len("item:") :].rpartition(":")[0], json.loads(text))
                elif tier == "steps":
                    output = json.loads(text).get("output")
                    if isinstance(output, dict):  # a fan-out whose result nobody read
                        output = output.get("failed_items")
                    for result in output if isinstance(output, list) else []:
                        keep(name, result)
    return found, len(left_out)


def _states(
    final: dict[str, Any], log: list[dict[str, dict[str, str | None]]], structure: list[str] | None
) -> tuple[dict[str, dict[str, str]], list[TopStep], list[str]]:
    """The state at the end (JSON text per value) and the changes of each top-level step."""
    notes = []
    changes, left_out = _state_changes(log, STATE_CHANGES_SHOWN)
    tops = [
        TopStep(index=index, step_id=step_id, changes=changes.get(index, []))
        for index, step_id in _top_steps(structure)
    ]
    if left_out:
        notes.append(
            f"{left_out} checkpointed state change(s) past the first {STATE_CHANGES_SHOWN} "
            "are not on the page: the state at a late step may be incomplete"
        )
    state: dict[str, dict[str, str]] = {}
    shortened = 0
    for tier, view in final.items():
        state[tier] = {}
        for name, value in view.values.items():
            state[tier][name], cut = _json_text(value)
            shortened += bool(cut)
    if shortened:
        notes.append(
            f"{shortened} state value(s) over {VALUE_CHARS} characters of JSON are shortened "
            "(their head and tail are shown)"
        )
    return state, tops, notes


def _trace_rows(
    traces: list[dict[str, Any]], t0: float, run_id: str
) -> tuple[list[TraceRow], list[str]]:
    transforms = [r for r in traces if r.get("kind") == "transform"]
    notes = []
    if len(transforms) > TRACES_SHOWN:
        notes.append(
            f"{len(transforms) - TRACES_SHOWN} computed-field trace record(s) past the first "
            f"{TRACES_SHOWN} are not on the page (wfkit trace {run_id} shows them)"
        )
    rows = [
        TraceRow(
            field=str(r.get("field")),
            step_id=r.get("step_id"),
            trigger=str(r.get("trigger", "")),
            start_ms=round((float(r.get("timestamp", t0)) - t0) * 1000, 3),
            duration_ms=float(r.get("duration_ms", 0.0)),
            input=_json_text(r.get("input"), VALUE_CHARS // 2)[0],
            output=_json_text(r.get("output"), VALUE_CHARS // 2)[0],
            error=None if r.get("error") is None else str(r.get("error")),
        )
        for r in transforms[:TRACES_SHOWN]
    ]
    return rows, notes


def _state_note(logged: bool, structured: bool) -> str:
    if not structured:
        return (
            "This run was recorded without its step structure (an older wfkit): the state "
            "at a step is not available, only the state at the end."
        )
    if not logged:
        return (
            "No checkpoint values were recorded for this run: the state at a step is not available."
        )
    return (
        "The state at a step is the state checkpointed when its top-level step ended (or, for "
        "a step that did not end, its last checkpoint). A step inside a loop or a parallel "
        "item shows the state after its whole top-level step: the values between iterations "
        "are not recorded. A parallel item's own state is shown at its end when it succeeded; "
        "a failed item's own state is not kept."
    )


def _attempts(
    run_store: Store, run_id: str, t0: float, status: str, outputs: list[Any]
) -> tuple[list[tuple[tuple[str, int | None, float], ReportAttempt]], list[str]]:
    """Each attempt with output, bounded per stream and over the page."""
    budget = OUTPUT_BUDGET
    result = []
    cut_attempts = omitted = 0
    for out in outputs:
        kept = budget > 0
        if kept:
            entry = log_attempt(out, run_store.chunks(run_id, out.key), status)
            stdout, cut_out = _shorten(entry.stdout, STREAM_CHARS)
            stderr, cut_err = _shorten(entry.stderr, STREAM_CHARS)
            budget -= len(stdout) + len(stderr)
            cut_attempts += bool(cut_out or cut_err)
            attempt_status = entry.status
        else:
            stdout = stderr = ""
            cut_out = cut_err = 0
            omitted += 1
            attempt_status = out.status
        result.append(
            (
                (out.step_id, out.item, out.started_at),
                ReportAttempt(
                    attempt=out.attempt,
                    status=attempt_status,
                    exit_code=out.exit_code,
                    start_ms=round((out.started_at - t0) * 1000, 3),
                    end_ms=None
                    if out.finished_at is None
                    else round((out.finished_at - t0) * 1000, 3),
                    stdout=stdout,
                    stderr=stderr,
                    stdout_bytes=out.stdout_bytes,
                    stderr_bytes=out.stderr_bytes,
                    dropped_bytes=max(out.stdout_dropped, 0) + max(out.stderr_dropped, 0),
                    cut_chars=cut_out + cut_err,
                    omitted=not kept,
                ),
            )
        )
    notes = []
    if cut_attempts:
        notes.append(
            f"{cut_attempts} attempt(s) have more output than the page keeps "
            f"({STREAM_CHARS} characters per stream: head and tail); wfkit logs {run_id} "
            "shows all that was stored"
        )
    if omitted:
        notes.append(
            f"the output of {omitted} later attempt(s) is not on the page (it keeps "
            f"{OUTPUT_BUDGET} characters of output in all); wfkit logs {run_id} shows it"
        )
    return result, notes
