"""An item run elsewhere: what it needs of its run as data, running it in a run of its own,
and taking what it did back into the coordinating run.

A worker (``wfkit/executors/``) calls :func:`run_detached` with the :class:`ItemContext` the
coordinating run sent (:func:`context_of`); the coordinating run :func:`adopt` s the
:class:`ItemReport` that comes back, as if the item had run in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from wfkit.engine.breakers import Breakers
from wfkit.engine.events import (
    BreakerChanged,
    ErrorRecorded,
    ErrorsRecovered,
    Event,
    Message,
    OutputStarted,
)
from wfkit.engine.inject import Fault
from wfkit.engine.items import ItemJob, run_item
from wfkit.engine.secrets import Masker
from wfkit.errors import CircuitOpenError, StepError, WfkitError

if TYPE_CHECKING:
    from wfkit.engine.agents import AgentPerformer
    from wfkit.engine.context import RunContext
    from wfkit.engine.frame import StepRecord
    from wfkit.engine.tools import ToolProvider
    from wfkit.language.loader import LoadedWorkflow


@dataclass(frozen=True, slots=True)
class ItemContext:
    """What an item run elsewhere needs of its run, as plain picklable data."""

    run_id: str
    seed: str
    trace: bool
    answers: dict[str, Any]
    max_output_bytes: int | None
    kill_grace_seconds: float
    faults: list[Fault]
    inject_seed: str | None
    #: the coordinating run's breakers when the item is sent (state, failures, opened_at,
    #: probing): its state decides whether the item's calls go through
    breakers: dict[str, tuple[str, int, float, bool]]
    trace_step: str | None = None  # the step the run's tracer files records under now
    #: the coordinator's working folder: the item's shell steps run there on the worker
    cwd: str | None = None
    #: the run's agent performer (picklable: a command, pulled work, or none)
    agent: AgentPerformer | None = None
    #: the run's secrets (name -> value) as its masker knows them: the item masks them too,
    #: in what it writes itself (a pulled agent task) as in what it reports
    secrets: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ItemReport:
    """What an item that ran elsewhere did: its entry and every record it made."""

    entry: dict[str, Any] | None  # None when it was cancelled
    error: WfkitError | None
    events: list[Event] = field(default_factory=list)  # in order, breaker changes left out
    records: list[StepRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors_dropped: int = 0
    traces: list[dict[str, Any]] = field(default_factory=list)
    traces_dropped: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    decisions_dropped: int = 0
    #: the item's breaker calls in order: ("before", name, step id) or ("record", name, ok)
    breaker_calls: list[tuple[str, str, str | bool]] = field(default_factory=list)
    worker: str = ""  # host:pid where it ran
    trace_step: str | None = None  # the tracer's step when the item ended


def context_of(run: RunContext) -> ItemContext:
    """The context to send with an item of ``run`` now."""
    options = run.options
    return ItemContext(
        run_id=run.run_id,
        seed=run.seed,
        trace=options.trace,
        answers=dict(options.answers),
        max_output_bytes=options.max_output_bytes,
        kill_grace_seconds=options.kill_grace_seconds,
        faults=list(options.faults),
        inject_seed=options.inject_seed,
        breakers={
            name: (b.state, b.failures, b.opened_at, b.probing)
            for name, b in run.breakers.items.items()
        },
        trace_step=run.tracer.step_id if run.tracer is not None else None,
        cwd=options.cwd or os.getcwd(),
        agent=options.agent,
        secrets=dict(run.masker.secrets),
    )


class _ReportingBreakers(Breakers):
    """Breakers that also note every call, for the coordinating run to count."""

    calls: list[tuple[str, str, str | bool]]

    def before_call(self, name: str, step_id: str) -> None:
        self.calls.append(("before", name, step_id))
        super().before_call(name, step_id)

    def record(self, name: str, ok: bool) -> None:
        self.calls.append(("record", name, ok))
        super().record(name, ok)


async def run_detached(
    loaded: LoadedWorkflow, context: ItemContext, job: ItemJob, tools: ToolProvider
) -> ItemReport:
    """Run one item in a run of its own that only collects, and report what it did.

    Cancelling the task running this ends the item as it would end in its run (cleanup and
    ``finally`` steps included) and reports it with ``entry`` None.
    """
    import socket

    from wfkit.engine.context import RunOptions
    from wfkit.engine.runtime import Run

    events: list[Event] = []

    def collect(event: Event) -> None:
        if not isinstance(event, BreakerChanged):  # the coordinating run's breakers report
            events.append(event)

    options = RunOptions(
        answers=context.answers,
        tools=tools,
        sinks=[collect],
        max_output_bytes=context.max_output_bytes,
        kill_grace_seconds=context.kill_grace_seconds,
        seed=context.seed,
        trace=context.trace,
        faults=context.faults,
        inject_seed=context.inject_seed,
        cwd=context.cwd,
    )
    if context.agent is not None:
        options.agent = context.agent
    run = Run(loaded, context.run_id, {}, options)
    if context.secrets:
        run.masker = Masker(context.secrets)
    breakers = _ReportingBreakers(
        loaded.workflow.config.circuit_breakers, {}, options.clock, lambda _: None
    )
    breakers.calls = []
    for name, (state, failures, opened_at, probing) in context.breakers.items():
        if name in breakers.items:
            breaker = breakers.items[name]
            breaker.state, breaker.failures = state, failures
            breaker.opened_at, breaker.probing = opened_at, probing
    run.breakers = breakers
    if run.tracer is not None:
        run.tracer.step_id = context.trace_step
    entry: dict[str, Any] | None
    try:
        entry, error = await run_item(run, job)
    except asyncio.CancelledError:
        entry, error = None, None
    finally:
        close = getattr(options.agent, "close", None)  # a performer holding a connection
        if close is not None:
            close()
    tracer = run.tracer
    return ItemReport(
        entry=entry,
        error=error,
        events=events,
        records=list(run.records.values()),
        warnings=list(run.warnings),
        errors_dropped=run.errors_dropped,
        traces=list(tracer.records) if tracer is not None else [],
        traces_dropped=tracer.dropped if tracer is not None else 0,
        decisions=list(run.decisions.records),
        decisions_dropped=run.decisions.dropped,
        breaker_calls=breakers.calls,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        trace_step=tracer.step_id if tracer is not None else None,
    )


def adopt(run: RunContext, report: ItemReport) -> None:
    """Take an item's records into ``run`` as if the item had run in it: events go to its
    sinks, errors into its history (with their new indexes), step records, messages,
    traces and decisions into its own, breaker calls counted by its breakers."""
    indexes: dict[int, int] = {}
    for event in report.events:
        if isinstance(event, ErrorRecorded):
            indexes[event.index] = run.keep_error(event.error, event.frame)
        elif isinstance(event, ErrorsRecovered):
            mine = tuple(i for i in (indexes.get(j, -1) for j in event.indexes) if i >= 0)
            for i in mine:
                run.errors[i] = replace(run.errors[i], recovered=True)
            if mine:
                run.emit(ErrorsRecovered(run.run_id, mine))
        elif isinstance(event, OutputStarted):  # executions count over the whole run
            before = run.records.get(event.step_id)
            offset = before.executions if before is not None else 0
            run.emit(replace(event, execution=event.execution + offset))
        elif isinstance(event, Message):
            if event.level == "warning" and event.text in report.warnings:
                run.warn(event.text, event.step_id)
            else:
                run.messages.append(event)
                run.emit(event)
        else:
            run.emit(event)
    run.errors_dropped += report.errors_dropped
    for record in report.records:
        mine_record = run.records.get(record.id)
        if mine_record is None:
            run.records[record.id] = record
            continue
        mine_record.status, mine_record.duration_ms = record.status, record.duration_ms
        if record.executions:  # a step only skipped there keeps its last execution's attempts
            mine_record.executions += record.executions
            mine_record.attempts = record.attempts
        mine_record.injected = mine_record.injected or record.injected
        if record.items is not None:
            mine_record.items = record.items
    if run.tracer is not None:
        run.tracer.merge(report.traces, report.traces_dropped)
        run.tracer.step_id = report.trace_step
    run.decisions.merge(report.decisions, report.decisions_dropped)
    for kind, name, value in report.breaker_calls:
        if kind == "record":
            run.breakers.record(name, bool(value))
            continue
        with contextlib.suppress(CircuitOpenError):  # refused there too: nothing to count
            run.breakers.before_call(name, str(value))
    error: WfkitError | None = report.error
    while isinstance(error, StepError):  # the chain's history entries, by their new indexes
        error.record_indexes = [
            i for i in (indexes.get(j, -1) for j in error.record_indexes) if i >= 0
        ]
        error = error.cause
