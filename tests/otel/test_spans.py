"""Spans from events the engine rarely sends in that order (a killed run, a step whose start
was not seen), built by the real SDK into its in-memory exporter; and the export's settings."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest

if os.environ.get("CI") != "true":  # under CI the extra is installed, or the tests fail
    pytest.importorskip("opentelemetry.sdk", reason="needs the otel extra")
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from wfkit.engine.events import (
    ErrorRecord,
    ErrorRecorded,
    FrameDropped,
    Message,
    RetryScheduled,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
)
from wfkit.errors import InputError
from wfkit.otel import requested, start_export, traces_url
from wfkit.otel.export import TraceExport, flush_timeout, resource
from wfkit.otel.spans import RunIds, SpanBuilder, trace_id_of

T0 = 1_700_000_000.0


class Built:
    """A span builder over an in-memory exporter."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider(id_generator=(ids := RunIds()), shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.builder = SpanBuilder(provider.get_tracer("test"), ids)
        self.builder(RunStarted("r1", "w", "f.yaml", "d", {}, T0))

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        (span,) = [s for s in self.spans() if s.name == name]
        return span

    def parent_name(self, span: ReadableSpan) -> str | None:
        if span.parent is None:
            return None
        (parent,) = [s for s in self.spans() if s.context.span_id == span.parent.span_id]
        return parent.name

    def finish(self, status: str = "succeeded", error: dict[str, str] | None = None) -> None:
        self.builder(RunFinished("r1", status, {}, 1.0, T0 + 10, error))


@pytest.fixture
def built() -> Built:
    return Built()


def started(step: str, attempt: int = 1, at: float = 1, frame: str = "main") -> StepStarted:
    return StepStarted("r1", step, "shell_command", "steps[0]", attempt, T0 + at, False, frame)


def finished(
    step: str, status: str = "succeeded", at: float = 2, frame: str = "main", **kw: object
) -> StepFinished:
    return StepFinished("r1", step, "shell_command", status, 1, 500.0, T0 + at, frame=frame, **kw)  # type: ignore[arg-type]


def test_the_trace_id_is_the_run_ids(built: Built) -> None:
    built.finish()
    assert built.named("run w").context.trace_id == trace_id_of("r1")
    assert trace_id_of("r1") != trace_id_of("r2")


def test_the_run_span_is_a_root_even_under_a_current_span() -> None:
    outer = TracerProvider(shutdown_on_exit=False).get_tracer("caller")
    with outer.start_as_current_span("caller's work"):
        inside = Built()
    inside.finish()
    root = inside.named("run w")
    assert root.parent is None
    assert root.context.trace_id == trace_id_of("r1")


def test_a_run_that_ends_without_its_steps_ends_them_interrupted(built: Built) -> None:
    built.builder(started("a"))
    built.builder.abandon(T0 + 5)
    step = built.named("a")
    assert step.attributes is not None
    assert step.attributes["wfkit.step.status"] == "interrupted"
    assert step.end_time == int((T0 + 5) * 1e9)
    root = built.named("run w")
    assert root.attributes is not None
    assert root.attributes["wfkit.run.status"] == "interrupted"
    built.builder.abandon(T0 + 6)  # once only
    assert len(built.spans()) == 3


def test_a_next_attempt_without_a_retry_announced_ends_the_one_before(built: Built) -> None:
    built.builder(started("a", 1, at=1))
    built.builder(started("a", 2, at=3))
    built.builder(finished("a", at=4))
    assert built.named("a attempt 1").end_time == int((T0 + 3) * 1e9)
    assert built.parent_name(built.named("a attempt 2")) == "a"


def test_a_step_that_never_started_an_attempt_still_has_its_span(built: Built) -> None:
    built.builder(finished("a", status="skipped", at=2))
    built.finish()
    step = built.named("a")
    assert step.start_time == int((T0 + 1.5) * 1e9)  # its duration before its end
    assert step.attributes is not None
    assert step.attributes["wfkit.step.status"] == "skipped"
    assert built.parent_name(step) == "run w"


def test_an_item_whose_step_was_not_seen_goes_under_the_run(built: Built) -> None:
    built.builder(started("fan/x", frame="main/fan[4]"))
    built.builder(finished("fan/x", status="cancelled", frame="main/fan[4]"))
    built.finish()
    item = built.named("fan item 4")
    assert built.parent_name(item) == "run w"
    assert item.attributes is not None
    assert item.attributes["wfkit.item.status"] == "cancelled"
    assert built.parent_name(built.named("fan/x")) == "fan item 4"


def test_an_unreadable_frame_key_goes_under_the_run(built: Built) -> None:
    built.builder(started("x", frame="main/odd"))
    built.builder(finished("x", frame="main/odd"))
    built.finish()
    assert built.parent_name(built.named("x")) == "run w"


def test_a_retried_item_is_one_span_and_fails_if_its_last_try_fails(built: Built) -> None:
    built.builder(started("fan"))
    for at in (1.1, 1.3):
        if at > 1.1:
            built.builder(FrameDropped("r1", "main/fan[0]"))  # a retry starts from scratch
        built.builder(started("fan/x", at=at, frame="main/fan[0]"))
        built.builder(
            finished(
                "fan/x", status="failed", at=at + 0.1, frame="main/fan[0]", error_type="StepError"
            )
        )
    built.builder(finished("fan", status="failed", at=2, error_type="SubAgentError"))
    built.finish()
    item = built.named("fan item 0")
    assert item.attributes is not None
    assert item.attributes["wfkit.item.status"] == "failed"
    assert item.status.status_code is StatusCode.ERROR
    assert len([s for s in built.spans() if s.name == "fan/x"]) == 2


def test_errors_not_of_an_attempt_are_left_out(built: Built) -> None:
    built.builder(started("a"))

    def record(step: str, frame: str | None, **details: object) -> ErrorRecorded:
        error = ErrorRecord(step, "StepError", "m", None, T0 + 1.5, 0, False, details)
        return ErrorRecorded("r1", 0, error, frame)

    built.builder(record("a", None))  # the workflow's own
    built.builder(record("a", "main", during="retry_on"))  # its retry_on failed
    built.builder(record("zz", "main"))  # no such step open
    built.builder(RetryScheduled("r1", "zz", 1, 10.0, "StepError", T0 + 1.6))
    built.builder(Message("r1", None, "info", "hi", T0))  # not a span
    built.builder(finished("a"))
    assert built.named("a attempt 1").status.status_code is StatusCode.UNSET


def test_a_failed_run_without_an_error_record_says_its_status(built: Built) -> None:
    built.finish(status="timed_out")
    root = built.named("run w")
    assert root.status.status_code is StatusCode.ERROR
    assert root.status.description == "timed_out"


def test_a_cancelled_run_is_not_an_error(built: Built) -> None:
    built.finish(status="cancelled")
    root = built.named("run w")
    assert root.status.status_code is StatusCode.UNSET
    assert root.attributes is not None
    assert root.attributes["wfkit.run.status"] == "cancelled"


def test_events_before_the_run_starts_are_ignored() -> None:
    fresh = Built.__new__(Built)
    fresh.exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(fresh.exporter))
    fresh.builder = SpanBuilder(provider.get_tracer("t"), RunIds())
    fresh.builder(started("a"))
    assert fresh.spans() == []


def test_the_service_name_defaults_to_wfkit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert resource().attributes["service.name"] == "wfkit"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "pipelines")
    assert resource().attributes["service.name"] == "pipelines"


def test_endpoint_settings() -> None:
    assert not requested(None, {})
    assert not requested(
        None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_SDK_DISABLED": "true"}
    )
    assert requested(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"})
    assert start_export(None, {}) == (None, None)
    assert traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"
    traces = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c/otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "x",
    }
    assert traces_url(None, traces) == "https://c/otlp"  # as given, the more specific first
    with pytest.raises(InputError, match="--otlp"):
        traces_url("http://[::1")
    assert flush_timeout({}) == 5.0
    assert flush_timeout({"OTEL_BSP_EXPORT_TIMEOUT": "250"}) == 0.25
    assert flush_timeout({"OTEL_BSP_EXPORT_TIMEOUT": "soon"}) == 5.0
    assert flush_timeout({"OTEL_BSP_EXPORT_TIMEOUT": "0"}) == 5.0


@pytest.fixture
def silent_collector() -> Iterator[str]:
    """A TCP server that takes requests and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/v1/traces"
    finally:
        stop.set()
        thread.join(10)
        for conn in held:
            conn.close()
        server.close()


def test_a_collector_that_never_answers_bounds_the_wait(silent_collector: str) -> None:
    export = TraceExport(silent_collector)
    export(RunStarted("r1", "w", "f.yaml", "d", {}, T0))
    export(RunFinished("r1", "succeeded", {}, 1.0, T0 + 1))
    warning = export.close(timeout=0.3)
    assert warning == (
        f"the run's trace was not (fully) exported to {silent_collector}: no answer within 0.3 s"
    )


def test_a_failure_in_the_export_turns_it_off_not_the_run(silent_collector: str) -> None:
    export = TraceExport(silent_collector)
    export(RunStarted("r1", "w", "f.yaml", "d", {}, T0))
    export(StepFinished("r1", "a", "t", "skipped", 0, None, T0))  # type: ignore[arg-type]
    export(started("b"))  # ignored from now on
    warning = export.close(timeout=0.3)
    assert warning is not None
    assert "internal error: TypeError" in warning


def test_a_retry_announced_without_an_error_record_fails_the_attempt(built: Built) -> None:
    built.builder(started("loop"))  # a container: its child's error is recorded on the child
    built.builder(RetryScheduled("r1", "loop", 1, 25.0, "StepError", T0 + 1.5, "main", "child"))
    built.builder(started("loop", 2, at=1.6))
    built.builder(finished("loop", at=2))
    first = built.named("loop attempt 1")
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes is not None
    assert first.attributes["error.type"] == "StepError"
    assert first.attributes["wfkit.retry.delay_ms"] == 25.0
    assert first.end_time == int((T0 + 1.5) * 1e9)


def test_a_step_that_failed_and_let_the_run_go_on_is_an_error(built: Built) -> None:
    built.builder(started("a"))
    built.builder(finished("a", status="failed"))  # on_error: continue reports no error type
    step, attempt = built.named("a"), built.named("a attempt 1")
    assert step.status.status_code is StatusCode.ERROR
    assert attempt.status.status_code is StatusCode.ERROR
    assert attempt.attributes is not None
    assert attempt.attributes["error.type"] == "StepError"


def test_a_skipped_step_in_an_item_keeps_its_index(built: Built) -> None:
    built.builder(started("fan"))
    built.builder(finished("fan/x", status="skipped", frame="main/fan[3]", item=3))
    built.builder(FrameDropped("r1", "main/fan[3]"))
    built.builder(FrameDropped("r1", "main/elsewhere[1]"))  # no span of it: nothing to mark
    built.builder(finished("fan", at=2.5))
    step = built.named("fan/x")
    assert step.attributes is not None
    assert step.attributes["wfkit.item.index"] == 3
    assert built.parent_name(step) == "fan item 3"
    assert built.parent_name(built.named("fan item 3")) == "fan attempt 1"


def test_a_step_finishing_ends_what_was_left_open_inside_it(built: Built) -> None:
    built.builder(started("outer"))
    built.builder(started("inner", at=1.2))  # its end never came
    built.builder(finished("outer", at=3))
    assert built.named("inner").end_time == int((T0 + 3) * 1e9)
    assert built.parent_name(built.named("inner")) == "outer attempt 1"


def test_spans_the_full_queue_dropped_are_reported(silent_collector: str) -> None:
    import logging

    export = TraceExport(silent_collector)
    logging.getLogger("opentelemetry.sdk._shared_internal").warning("Queue full, dropping Span.")
    warning = export.close(timeout=0.3)
    assert warning is not None
    assert warning.endswith("1 spans dropped: the queue was full (OTEL_BSP_MAX_QUEUE_SIZE)")


def test_the_gist_of_an_sdk_log_line() -> None:
    from wfkit.otel.export import _reason

    refused = "Transient error HTTPConnectionPool(...): [Errno 111] Connection refused')) x"
    assert _reason(refused) == "[Errno 111] Connection refused"
    assert _reason("Failed to export spans batch code: 400, reason: Bad Request") == (
        "Failed to export spans batch code: 400, reason: Bad Request"
    )
    assert _reason("") == "the collector refused the spans"
    assert _reason("x" * 300).endswith("...")
