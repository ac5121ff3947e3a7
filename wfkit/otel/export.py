"""Sending a run's spans to an OTLP/HTTP collector without slowing or failing the run.

Spans go through a ``BatchSpanProcessor`` (a background thread sends them); the run's end
waits at most :data:`~wfkit.otel.FLUSH_TIMEOUT_S` for the last ones. The SDK reads the
standard variables (``OTEL_EXPORTER_OTLP_HEADERS``, ``..._TIMEOUT``, ``..._COMPRESSION``,
``..._CERTIFICATE``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``). A collector that cannot be reached, and any failure
in here, cost the run one warning line, never its result: the SDK's own log lines are
collected instead of printed, and summed up in that warning.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence

from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from wfkit import __version__
from wfkit.engine.events import Event
from wfkit.otel import FLUSH_TIMEOUT_S, shown_url
from wfkit.otel.spans import RunIds, SpanBuilder

_SDK_LOGGER = "opentelemetry"


class _Collected(logging.Handler):
    """Keeps the SDK's warnings and errors (the first few) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.new = threading.Event()  # set on each one

        self.dropped = 0  # spans the full queue had no room for

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Queue full"):
            self.dropped += 1
        elif len(self.messages) < 10:
            self.messages.append(message)
        self.new.set()


class _CountingExporter(SpanExporter):
    """The OTLP exporter, counting spans that did not get through."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.failed = 0
        self.sent = 0
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.sent += len(spans)
        else:
            self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        if not self._closed:
            self._closed = True
            self.inner.shutdown()  # also ends the waits between retries of an export


def resource() -> Resource:
    """The SDK's resource from the environment; ``service.name`` is ``wfkit`` unless set."""
    found = Resource.create({SERVICE_VERSION: __version__})
    name = str(found.attributes.get(SERVICE_NAME, ""))
    if not name or name.startswith("unknown_service"):
        found = found.merge(Resource({SERVICE_NAME: "wfkit"}))
    return found


class TraceExport:
    """An event sink exporting one run as a trace to ``url``; :meth:`close` at the run's end."""

    def __init__(self, url: str, *, explicit: bool = False) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        self.url = url
        self.explicit = explicit  # --otlp, rather than an environment variable
        self._problem: str | None = None
        self._log = _Collected()
        logger = logging.getLogger(_SDK_LOGGER)
        self._saved = (logger.propagate, logger.level)
        logger.addHandler(self._log)
        logger.propagate = False
        logger.setLevel(logging.WARNING)
        self._exporter = _CountingExporter(OTLPSpanExporter(endpoint=url))
        self._ids = RunIds()
        self._provider = TracerProvider(
            resource=resource(), id_generator=self._ids, shutdown_on_exit=False
        )
        self._provider.add_span_processor(BatchSpanProcessor(self._exporter))
        self._builder = SpanBuilder(self._provider.get_tracer("wfkit", __version__), self._ids)

    def __call__(self, event: Event) -> None:
        """Take one engine event; a failure here turns the export off, never the run."""
        if self._problem is not None:
            return
        try:
            self._builder(event)
        except Exception as exc:
            self._problem = f"internal error: {type(exc).__name__}: {exc}"

    def close(self, timeout: float | None = None) -> str | None:
        """Send what is left and stop; return a one-line warning when spans did not reach
        the collector. The wait is ``timeout`` seconds at most: by default
        ``OTEL_BSP_EXPORT_TIMEOUT`` (milliseconds) when set, else 5 s."""
        if timeout is None:
            timeout = flush_timeout()
        try:
            self._builder.abandon(time.time())
        except Exception as exc:
            self._problem = self._problem or f"internal error: {type(exc).__name__}: {exc}"
        done = threading.Event()

        def shut_down() -> None:
            try:
                self._provider.shutdown()
            finally:
                done.set()

        self._log.new.clear()
        threading.Thread(target=shut_down, name="wfkit-otel-close", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                self._problem = self._problem or f"no answer within {timeout:g} s"
                break
            # a collector never reached during the run that fails now is not there: the
            # SDK's retries would only make the user wait
            if self._log.new.wait(min(left, 0.05)) and not self._exporter.sent:
                break
        if not done.is_set():
            self._exporter.shutdown()  # stop retrying; the batch still in flight is dropped
            done.wait(0.5)
        logger = logging.getLogger(_SDK_LOGGER)
        logger.removeHandler(self._log)
        logger.propagate, level = self._saved
        logger.setLevel(level)
        return self._warning()

    def _warning(self) -> str | None:
        if self._problem is not None:
            reason = self._problem
        elif self._exporter.failed:
            reason = _reason(self._log.messages[0] if self._log.messages else "")
        elif self._log.dropped:
            reason = (
                f"{self._log.dropped} spans dropped: the queue was full (OTEL_BSP_MAX_QUEUE_SIZE)"
            )
        else:
            return None
        return f"the run's trace was not (fully) exported to {shown_url(self.url)}: {reason}"


def flush_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds the run's end waits for its spans: ``OTEL_BSP_EXPORT_TIMEOUT`` (ms), or 5."""
    text = (os.environ if environ is None else environ).get("OTEL_BSP_EXPORT_TIMEOUT", "")
    try:
        value = float(text) / 1000
    except ValueError:
        return FLUSH_TIMEOUT_S
    return value if value > 0 else FLUSH_TIMEOUT_S


def _reason(message: str) -> str:
    """The gist of an SDK log line: the OS error when there is one, else the line, cut."""
    found = _OS_ERROR.search(message)
    if found:
        return found.group(0).rstrip(" .")
    text = " ".join(message.split()) or "the collector refused the spans"
    return text if len(text) <= 160 else text[:157] + "..."


_OS_ERROR = re.compile(r"\[Errno -?\d+\][^'\")\]]*")
