"""OpenTelemetry export of a run: whether it is asked for, where to, and starting it.

A run is exported as one trace when ``--otlp URL`` is given or the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (and
``OTEL_SDK_DISABLED`` is not ``true``). The export is an event sink (:mod:`wfkit.otel.spans`)
beside the run store; when nothing asks for it, no sink is installed and opentelemetry is
never imported. This module imports none of it either: the SDK loads in :func:`start_export`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from wfkit.errors import InputError, MissingExtraError

if TYPE_CHECKING:
    from wfkit.otel.export import TraceExport

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""The variables that turn the export on, the more specific first (as the SDK reads them)."""
TRACES_PATH = "/v1/traces"
FLUSH_TIMEOUT_S = 5.0
"""The longest a run's end waits for its last spans to reach the collector."""
INSTALL_HINT = "pip install 'wfkit[otel]'"


def requested(otlp: str | None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the run is to be exported: ``--otlp`` given, or an endpoint variable set."""
    env = os.environ if environ is None else environ
    if otlp is not None:
        return True
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(env.get(name, "").strip() for name in ENDPOINT_VARS)


def traces_url(otlp: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The OTLP/HTTP traces URL the spans go to; :class:`InputError` for a bad URL.

    ``--otlp`` and ``OTEL_EXPORTER_OTLP_ENDPOINT`` are base URLs (``/v1/traces`` is added
    unless already there); ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is used as given, as the
    OpenTelemetry specification says.
    """
    env = os.environ if environ is None else environ
    if otlp is not None:
        return _signal_url(check_url(otlp, "--otlp"))
    traces = env.get(ENDPOINT_VARS[0], "").strip()
    if traces:
        return check_url(traces, ENDPOINT_VARS[0])
    return _signal_url(check_url(env.get(ENDPOINT_VARS[1], "").strip(), ENDPOINT_VARS[1]))


def shown_url(url: str) -> str:
    """``url`` as messages show it: without the user:password of its authority."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    return f"{head}://{authority.rpartition('@')[2]}{slash}{path}"


def check_url(url: str, where: str) -> str:
    """``url`` if it is an http(s) URL with a host (and a valid port), else InputError."""
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        if valid:
            parts.port  # noqa: B018 -- raises ValueError for a port out of range or not a number
    except ValueError:
        valid = False
    if not valid:
        raise InputError(
            f"{where}: {shown_url(url)!r} is not an http(s) URL of an OTLP/HTTP endpoint "
            "(e.g. http://localhost:4318)"
        )
    return url


def _signal_url(base: str) -> str:
    stripped = base.rstrip("/")
    return stripped if stripped.endswith(TRACES_PATH) else stripped + TRACES_PATH


def start_export(
    otlp: str | None, environ: Mapping[str, str] | None = None
) -> tuple[TraceExport | None, str | None]:
    """The trace export of a run about to start, or None when not asked for; and a warning.

    ``--otlp`` without the extra is :class:`MissingExtraError`; an endpoint variable without
    it is a warning, and the run goes on unexported. A bad URL is :class:`InputError`.
    """
    env = os.environ if environ is None else environ
    if not requested(otlp, env):
        return None, None
    url = traces_url(otlp, env)
    try:
        from wfkit.otel.export import TraceExport
    except ImportError:
        if otlp is not None:
            raise MissingExtraError(f"--otlp needs the OpenTelemetry SDK: {INSTALL_HINT}") from None
        variable = next(name for name in ENDPOINT_VARS if env.get(name, "").strip())
        return None, (
            f"{variable} is set but the OpenTelemetry SDK is not installed; "
            f"the run is not exported ({INSTALL_HINT})"
        )
    return TraceExport(url, explicit=otlp is not None), None
