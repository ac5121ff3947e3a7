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

from wfkit.errors import MissingExtraError
from wfkit.otel.settings import ENDPOINT_VARS, requested, traces_url

if TYPE_CHECKING:
    from wfkit.otel.export import TraceExport

INSTALL_HINT = "pip install 'wfkit[otel]'"


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
