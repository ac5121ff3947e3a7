"""A real OTLP/HTTP trace receiver for tests: a small HTTP server on 127.0.0.1 that accepts
``POST /v1/traces`` and decodes the protobuf body as a collector does
(``ExportTraceServiceRequest``), and helpers to read the spans it received."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

HANG = 60  # seconds: a bound that turns a hang into a failure, never a speed assert


@dataclass
class SpanView:
    """One received span, decoded."""

    name: str
    trace_id: str
    span_id: str
    parent: str
    start: int
    end: int
    attrs: dict[str, Any]
    status: int  # 0 unset, 1 ok, 2 error
    message: str
    events: list[str]
    resource: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.attrs.get("wfkit.kind"))


def _value(value: AnyValue) -> Any:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


class Receiver(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver on 127.0.0.1."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = 200  # what it answers
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spans(self) -> list[SpanView]:
        found = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        found.append(
                            SpanView(
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent=span.parent_span_id.hex(),
                                start=span.start_time_unix_nano,
                                end=span.end_time_unix_nano,
                                attrs={a.key: _value(a.value) for a in span.attributes},
                                status=span.status.code,
                                message=span.status.message,
                                events=[e.name for e in span.events],
                                resource=resource,
                            )
                        )
        return found


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.paths.append(self.path)
        self.server.headers.append({k.lower(): v for k, v in self.headers.items()})
        if self.path != "/v1/traces" or self.server.status != 200:
            self.send_response(404 if self.path != "/v1/traces" else self.server.status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.requests.append(request)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver serving in a thread until the block ends."""
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(HANG)


def by_id(spans: list[SpanView]) -> dict[str, SpanView]:
    return {s.span_id: s for s in spans}


def children(spans: list[SpanView], parent: SpanView) -> list[SpanView]:
    return sorted((s for s in spans if s.parent == parent.span_id), key=lambda s: s.start)


def the(spans: list[SpanView], kind: str, step: str | None = None) -> list[SpanView]:
    return [
        s
        for s in spans
        if s.kind == kind and (step is None or s.attrs.get("wfkit.step.id") == step)
    ]


def tree(spans: list[SpanView]) -> str:
    """The trace as an indented list of span names (items in index order), errors marked."""
    lines: list[str] = []

    def walk(span: SpanView, depth: int) -> None:
        mark = f"  ERROR {span.attrs.get('error.type', '')}".rstrip() if span.status == 2 else ""
        lines.append("  " * depth + span.name + mark)
        below = [s for s in spans if s.parent == span.span_id]
        for child in sorted(below, key=lambda s: (s.attrs.get("wfkit.item.index", -1), s.start)):
            walk(child, depth + 1)

    (root,) = [s for s in spans if not s.parent]
    walk(root, 0)
    return "\n".join(lines)
