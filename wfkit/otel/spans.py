"""Engine events to OpenTelemetry spans: one trace per run.

The trace's root span is the run; under it one span per step execution, and under that one
span per attempt. A container's child steps are children of its running attempt; a
``parallel_foreach`` item is a span under its step's attempt, with the item's steps under it.

Nesting comes from the events alone, never from where the events are emitted: each
``StepStarted``/``StepFinished`` names its frame (``main``, ``main/fan[3]``), and within one
frame steps run one at a time, so a stack per frame says what contains what; an item's frame
key names the item and, through its parent frame, the step that runs it. Events of items run
elsewhere (another process, another machine) and emitted here therefore nest the same way.
Span times are the events' recorded times, not the time of export.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import Span, Status, StatusCode

from wfkit.engine.events import (
    ErrorRecorded,
    Event,
    FrameDropped,
    RetryScheduled,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
)

KIND = "wfkit.kind"  # run | step | attempt | item
STEP_ID = "wfkit.step.id"
STEP_TYPE = "wfkit.step.type"
ATTEMPT = "wfkit.attempt"
ITEM = "wfkit.item.index"
ERROR_TYPE = "error.type"  # the OpenTelemetry semantic convention's name
ERROR_MESSAGE = "wfkit.error.message"
RETRY_DELAY = "wfkit.retry.delay_ms"
INJECTED = "wfkit.injected"
_FAILED_RUN = ("failed", "timed_out")
_IGNORED_DURING = ("retry_on", "error_state_update")
"""Errors recorded against a step that are not its attempt's own failure."""


def trace_id_of(run_id: str) -> int:
    """The trace id of a run: derived from its id, so a resumed run joins the same trace."""
    value = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:16], "big")
    return value or 1


class RunIds(IdGenerator):
    """Span ids at random; the trace id of the run being exported."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self.trace_id: int | None = None

    def generate_span_id(self) -> int:
        return self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        return self.trace_id if self.trace_id is not None else self._random.generate_trace_id()


def _ns(timestamp: float) -> int:
    return int(timestamp * 1e9)


@dataclass(slots=True)
class _Item:
    """A parallel_foreach item's span, ended when its step finishes."""

    span: Span
    frame: str
    last: int  # the latest end of anything in it (ns)
    succeeded: bool = False
    cancelled: bool = False
    failed: bool = False


@dataclass(slots=True)
class _Execution:
    """An open step execution: its span, its running attempt's span, the items it runs."""

    step_id: str
    span: Span
    attempt: Span | None = None
    attempt_no: int = 0
    attempt_failed: bool = False
    items: list[_Item] = field(default_factory=list)


class SpanBuilder:
    """An event sink that turns one run's events into spans of ``tracer``."""

    def __init__(self, tracer: trace.Tracer, ids: RunIds) -> None:
        self._tracer = tracer
        self._ids = ids
        self._root: Span | None = None
        self._root_context: Context | None = None
        self._frames: dict[str, list[_Execution]] = {}
        self._items: dict[str, _Item] = {}
        self._handlers: dict[type[Any], Any] = {
            RunStarted: self._run_started,
            StepStarted: self._step_started,
            ErrorRecorded: self._error_recorded,
            RetryScheduled: self._retry_scheduled,
            StepFinished: self._step_finished,
            FrameDropped: self._frame_dropped,
            RunFinished: self._run_finished,
        }

    def __call__(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None and (self._root is not None or isinstance(event, RunStarted)):
            handler(event)

    # the run -----------------------------------------------------------------------------

    def _run_started(self, event: RunStarted) -> None:
        self._ids.trace_id = trace_id_of(event.run_id)
        self._root = self._tracer.start_span(
            f"run {event.workflow}",
            context=Context(),  # a root: never under a span current where the run is called
            start_time=_ns(event.started_at),
            attributes={
                KIND: "run",
                "wfkit.workflow": event.workflow,
                "wfkit.run.id": event.run_id,
                "wfkit.run.file": event.file,
                "wfkit.run.resumed": event.resumed,
            },
        )
        self._root_context = trace.set_span_in_context(self._root)

    def _run_finished(self, event: RunFinished) -> None:
        self.end_open(event.finished_at)
        root = self._root
        assert root is not None
        root.set_attribute("wfkit.run.status", event.status)
        if event.status in _FAILED_RUN:  # cancelled and waiting runs did not fail
            error = event.error or {}
            message = str(error.get("message") or event.status)
            if error.get("type"):
                root.set_attribute(ERROR_TYPE, str(error["type"]))
            root.set_attribute(ERROR_MESSAGE, message)
            root.set_status(Status(StatusCode.ERROR, message))
        root.end(_ns(event.finished_at))
        self._root = None

    def end_open(self, timestamp: float) -> None:
        """End whatever is still open (a run that ended without its steps' ends)."""
        end = _ns(timestamp)
        for stack in self._frames.values():
            while stack:
                execution = stack.pop()
                execution.span.set_attribute("wfkit.step.status", "interrupted")
                self._end_execution(execution, end)
        for item in list(self._items.values()):
            self._end_item(item)

    def abandon(self, timestamp: float) -> None:
        """End the run's spans when the run ended without ``RunFinished`` (an exception)."""
        if self._root is None:
            return
        self.end_open(timestamp)
        self._root.set_attribute("wfkit.run.status", "interrupted")
        self._root.end(_ns(timestamp))
        self._root = None

    # steps ---------------------------------------------------------------------------------

    def _step_started(self, event: StepStarted) -> None:
        start = _ns(event.timestamp)
        stack = self._frames.setdefault(event.frame, [])
        top = stack[-1] if stack else None
        if top is not None and top.step_id == event.step_id and event.attempt > top.attempt_no:
            execution = top  # the next attempt of the running execution
            if execution.attempt is not None:  # no retry was announced: end it here
                execution.attempt.end(start)
        else:
            parent = self._parent(event.frame, event.step_id, start)
            attributes: dict[str, Any] = {
                KIND: "step",
                STEP_ID: event.step_id,
                STEP_TYPE: event.step_type,
                "wfkit.step.path": event.path,
            }
            if event.item is not None:
                attributes[ITEM] = event.item
            span = self._tracer.start_span(
                event.step_id, context=parent, start_time=start, attributes=attributes
            )
            execution = _Execution(event.step_id, span)
            stack.append(execution)
        attempt: dict[str, Any] = {
            KIND: "attempt",
            STEP_ID: event.step_id,
            STEP_TYPE: event.step_type,
            ATTEMPT: event.attempt,
        }
        if event.item is not None:
            attempt[ITEM] = event.item
        execution.attempt = self._tracer.start_span(
            f"{event.step_id} attempt {event.attempt}",
            context=trace.set_span_in_context(execution.span),
            start_time=start,
            attributes=attempt,
        )
        execution.attempt_no = event.attempt
        execution.attempt_failed = False
        item = self._items.get(event.frame)
        if item is not None:
            item.succeeded = False  # a retried item starts over

    def _error_recorded(self, event: ErrorRecorded) -> None:
        error = event.error
        if event.frame is None or error.details.get("during") in _IGNORED_DURING:
            return
        execution = self._find(event.frame, error.step_id)
        if execution is None or execution.attempt is None or execution.attempt_failed:
            return
        _fail(execution.attempt, error.error_type, error.message, _ns(error.timestamp))
        if error.details.get("injected"):
            execution.attempt.set_attribute(INJECTED, True)
        execution.attempt_failed = True

    def _retry_scheduled(self, event: RetryScheduled) -> None:
        execution = self._find(event.frame, event.step_id)
        if execution is None or execution.attempt is None:
            return
        attempt = execution.attempt
        end = _ns(event.timestamp)
        if not execution.attempt_failed:
            _fail(attempt, event.error_type, event.message, end)
        attempt.set_attribute(RETRY_DELAY, event.delay_ms)
        attempt.end(end)
        execution.attempt = None

    def _step_finished(self, event: StepFinished) -> None:
        end = _ns(event.timestamp)
        execution = self._pop(event.frame, event.step_id, end)
        if execution is None:  # it never started an attempt: skipped, or failed before one
            start = _ns(event.timestamp - event.duration_ms / 1000)
            attributes: dict[str, Any] = {
                KIND: "step",
                STEP_ID: event.step_id,
                STEP_TYPE: event.step_type,
            }
            if event.item is not None:
                attributes[ITEM] = event.item
            span = self._tracer.start_span(
                event.step_id,
                context=self._parent(event.frame, event.step_id, start),
                start_time=start,
                attributes=attributes,
            )
            execution = _Execution(event.step_id, span)
        span = execution.span
        span.set_attribute("wfkit.step.status", event.status)
        span.set_attribute("wfkit.step.attempts", event.attempts)
        if event.outcome is not None:
            span.set_attribute("wfkit.step.outcome", event.outcome)
        if event.injected:
            span.set_attribute(INJECTED, True)
        failed = event.status == "failed"
        if failed:
            message = event.error_message or "failed"
            if event.error_type is not None:
                span.set_attribute(ERROR_TYPE, event.error_type)
            span.set_status(Status(StatusCode.ERROR, message))
        attempt = execution.attempt
        if attempt is not None and failed and not execution.attempt_failed:
            _fail(attempt, event.error_type or "StepError", event.error_message or "failed", end)
        item = self._items.get(event.frame)
        if item is not None:
            item.last = max(item.last, end)
            item.cancelled = item.cancelled or event.status == "cancelled"
            item.failed = item.failed or (failed and event.error_type is not None)
        self._end_execution(execution, end)

    def _frame_dropped(self, event: FrameDropped) -> None:
        item = self._items.get(event.frame)
        if item is not None:  # dropped after its steps: the item succeeded
            item.succeeded = True

    # nesting -------------------------------------------------------------------------------

    def _end_execution(self, execution: _Execution, end: int) -> None:
        if execution.attempt is not None:
            execution.attempt.end(end)
            execution.attempt = None
        for item in execution.items:
            self._end_item(item)
        execution.span.end(end)

    def _end_item(self, item: _Item) -> None:
        self._items.pop(item.frame, None)  # a retry of its step runs the item anew
        if item.succeeded:
            status = "succeeded"
        elif item.cancelled and not item.failed:
            status = "cancelled"
        else:
            status = "failed"
            item.span.set_status(Status(StatusCode.ERROR, "item failed"))
        item.span.set_attribute("wfkit.item.status", status)
        item.span.end(item.last)

    def _find(self, frame: str, step_id: str) -> _Execution | None:
        for execution in reversed(self._frames.get(frame, ())):
            if execution.step_id == step_id:
                return execution
        return None

    def _pop(self, frame: str, step_id: str, end: int) -> _Execution | None:
        """Take the open execution of ``step_id`` off its frame's stack (ending any left
        open above it)."""
        stack = self._frames.get(frame)
        if not stack or self._find(frame, step_id) is None:
            return None
        while stack[-1].step_id != step_id:
            self._end_execution(stack.pop(), end)
        execution = stack.pop()
        if not stack and frame != "main":  # an item's frame: there are many, each used once
            del self._frames[frame]
        return execution

    def _parent(self, frame: str, step_id: str, start: int) -> Context | None:
        """Where a new step execution of ``frame`` goes: the running attempt of the innermost
        open step there; for the first step of a parallel item, the item's span."""
        stack = self._frames.get(frame)
        if stack:
            top = stack[-1]
            return trace.set_span_in_context(top.attempt or top.span)
        if "/" not in frame:
            return self._root_context
        item = self._item(frame, step_id, start)
        return trace.set_span_in_context(item.span) if item is not None else self._root_context

    def _item(self, frame: str, step_id: str, start: int) -> _Item | None:
        """The span of the parallel item run in ``frame`` (``<parent>/<step>[<index>]``)."""
        item = self._items.get(frame)
        if item is not None:
            return item
        parent_frame, _, last = frame.rpartition("/")
        name, _, rest = last.partition("[")
        try:
            index = int(rest.rstrip("]"))
        except ValueError:
            return None
        owner_id = step_id.rsplit("/", 1)[0] if "/" in step_id else name
        owner = self._find(parent_frame, owner_id)
        context: Context | None
        if owner is not None:
            context = trace.set_span_in_context(owner.attempt or owner.span)
        else:  # its step's start was not seen: under whatever runs there
            context = self._parent(parent_frame, owner_id, start)
        span = self._tracer.start_span(
            f"{owner_id} item {index}",
            context=context,
            start_time=start,
            attributes={KIND: "item", STEP_ID: owner_id, ITEM: index},
        )
        item = self._items[frame] = _Item(span, frame, start)
        if owner is not None:
            owner.items.append(item)
        return item


def _fail(span: Span, error_type: str, message: str, timestamp: int) -> None:
    """Mark an attempt failed: status, error attributes and an ``exception`` event."""
    span.set_status(Status(StatusCode.ERROR, message))
    span.set_attribute(ERROR_TYPE, error_type)
    span.set_attribute(ERROR_MESSAGE, message)
    span.add_event(
        "exception",
        {"exception.type": error_type, "exception.message": message},
        timestamp=timestamp,
    )
