"""Where a run's trace goes: whether an export is asked for, its URL (checked, and shown
without credentials), and how long a run's end waits for its last spans."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from wfkit.errors import InputError

if TYPE_CHECKING:
    pass


ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""The variables that turn the export on, the more specific first (as the SDK reads them)."""


TRACES_PATH = "/v1/traces"


FLUSH_TIMEOUT_S = 5.0
"""The longest a run's end waits for its last spans to reach the collector."""


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
