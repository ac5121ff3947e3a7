"""Structured logs: engine events as stdlib ``logging`` records with fields.

``wfkit --log-format json`` writes one JSON object per line (to stderr, or ``--log-file``),
ready for a log shipper; ``text`` is a plain line. Nothing is ever logged to stdout.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from wfkit.controls import visible
from wfkit.engine.events import (
    ErrorRecorded,
    Event,
    Message,
    RetryScheduled,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
)

LOGGER = logging.getLogger("wfkit.run")
FIELDS = (
    "run_id",
    "workflow",
    "step_id",
    "step_type",
    "attempt",
    "status",
    "error_type",
    "duration_ms",
    "delay_ms",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, message and the structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if hasattr(record, name):
                data[name] = getattr(record, name)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger message``, with control characters of the message shown, never
    obeyed by the terminal that reads the log (:mod:`wfkit.controls`)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record))


def configure(fmt: str | None, file: str | None, level: str = "info") -> None:
    """Send wfkit's logs to stderr or a file; without a format or file, keep them quiet."""
    logger = logging.getLogger("wfkit")
    for old in logger.handlers:
        old.close()
    logger.handlers.clear()
    logger.propagate = False
    if fmt is None and file is None:
        logger.addHandler(logging.NullHandler())
        return
    handler: logging.Handler = (
        logging.FileHandler(file, encoding="utf-8") if file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())


def log_event(event: Event) -> None:
    """An engine event sink that logs with structured fields."""
    if isinstance(event, StepStarted):
        LOGGER.debug(
            "step %s started (attempt %d)",
            event.step_id,
            event.attempt,
            extra={
                "run_id": event.run_id,
                "step_id": event.step_id,
                "step_type": event.step_type,
                "attempt": event.attempt,
            },
        )
    elif isinstance(event, StepFinished):
        LOGGER.info(
            "step %s %s",
            event.step_id,
            event.status,
            extra={
                "run_id": event.run_id,
                "step_id": event.step_id,
                "step_type": event.step_type,
                "attempt": event.attempts,
                "status": event.status,
                "error_type": event.error_type,
                "duration_ms": round(event.duration_ms, 3),
            },
        )
    elif isinstance(event, ErrorRecorded):
        e = event.error
        LOGGER.warning(
            "step %s attempt %d failed: %s: %s",
            e.step_id,
            e.retry_count + 1,
            e.error_type,
            e.message,
            extra={
                "run_id": event.run_id,
                "step_id": e.step_id,
                "attempt": e.retry_count + 1,
                "error_type": e.error_type,
            },
        )
    elif isinstance(event, RetryScheduled):
        LOGGER.info(
            "step %s retries in %.0f ms",
            event.step_id,
            event.delay_ms,
            extra={
                "run_id": event.run_id,
                "step_id": event.step_id,
                "attempt": event.attempt,
                "error_type": event.error_type,
                "delay_ms": round(event.delay_ms, 1),
            },
        )
    elif isinstance(event, Message):
        LOGGER.info("%s", event.text, extra={"run_id": event.run_id, "step_id": event.step_id})
    elif isinstance(event, RunStarted):
        LOGGER.info("run started", extra={"run_id": event.run_id, "workflow": event.workflow})
    elif isinstance(event, RunFinished):
        LOGGER.info(
            "run %s",
            event.status,
            extra={
                "run_id": event.run_id,
                "status": event.status,
                "duration_ms": round(event.duration_ms, 3),
            },
        )
