"""Secrets never leave the engine as text: every event and the run's outcome are masked.

A run's secrets are its ``secret: true`` inputs and the values of its ``secrets:`` map. The
:class:`Masker` replaces each of them, in every form a program commonly turns it into (as it
is, JSON-escaped, URL-encoded, base64), by ``***`` inside any string or bytes, however deep in
a value. The engine masks each event in :meth:`~wfkit.engine.runtime.Run.emit`, before any
sink (the store, the live display, OpenTelemetry, metrics) sees it, and the outcome it
returns, so no surface built from either can show a secret: masking is done once, where
everything leaves, not per surface.

Checkpointed state is the one exception to ``***``: a value that held a secret is stored with
a *reference* in its place (``\\ue000NAME|FORM\\ue001``, private-use characters), so that a
resume, given the secret again, restores the value; everything that shows stored state turns
references into ``***`` (:func:`shown`).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import re
import urllib.parse
from collections.abc import Callable, Hashable, Mapping
from typing import Any, cast

MASK = "***"
_OPEN, _CLOSE = "\ue000", "\ue001"
_REFERENCE = re.compile(f"{_OPEN}([^{_CLOSE}|]*)\\|(\\d+){_CLOSE}")


def forms(value: str) -> list[str]:
    """The texts a secret commonly becomes: itself, JSON-escaped (ASCII or not),
    URL-encoded, base64 (standard and URL-safe, with and without padding)."""
    raw = value.encode("utf-8", "surrogatepass")
    b64 = base64.b64encode(raw).decode()
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    found = [
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value),
        b64,
        b64.rstrip("="),
        urlsafe,
        urlsafe.rstrip("="),
    ]
    unique: list[str] = []
    for form in found:
        if form and form not in unique:
            unique.append(form)
    return unique


class Masker:
    """Replaces the secrets of one run, in all their forms, wherever they appear."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        #: name -> value, for the references a resume restores
        self.secrets = {name: value for name, value in secrets.items() if value}
        pairs = [
            (form, name, index)
            for name, value in self.secrets.items()
            for index, form in enumerate(forms(value))
        ]
        pairs.sort(key=lambda pair: -len(pair[0]))  # the longest form wins at a position
        self._names = {form: (name, index) for form, name, index in reversed(pairs)}
        self._text: re.Pattern[str] | None = None
        self._bytes: re.Pattern[bytes] | None = None
        if pairs:
            self._text = re.compile("|".join(re.escape(form) for form, _, _ in pairs))
            self._bytes = re.compile(
                b"|".join(re.escape(form.encode("utf-8", "surrogatepass")) for form, _, _ in pairs)
            )

    def __bool__(self) -> bool:
        return self._text is not None

    def text(self, text: str) -> str:
        """``text`` with every secret form replaced by ``***``."""
        if self._text is None or self._text.search(text) is None:
            return text
        return self._text.sub(MASK, text)

    def referenced(self, text: str) -> str:
        """``text`` with every secret form replaced by a reference a resume can restore."""
        if self._text is None or self._text.search(text) is None:
            return text

        def reference(match: re.Match[str]) -> str:
            name, index = self._names[match.group(0)]
            return f"{_OPEN}{name}|{index}{_CLOSE}"

        return self._text.sub(reference, text)

    def value(self, value: Any, text: Callable[[str], str] | None = None) -> Any:
        """``value`` with secrets masked in every string and bytes, at any depth (containers
        and dataclasses are copied only where something changed)."""
        if self._text is None:
            return value
        return _walk(value, text or self.text, self._mask_bytes)

    def _mask_bytes(self, data: bytes) -> bytes:
        assert self._bytes is not None
        if self._bytes.search(data) is None:
            return data
        return self._bytes.sub(MASK.encode(), data)

    def restore(self, value: Any) -> Any:
        """``value`` with each reference replaced by the secret it names, in its form (a
        secret this run does not have stays masked)."""

        def text(item: str) -> str:
            if _OPEN not in item:
                return item

            def secret(match: re.Match[str]) -> str:
                known = self.secrets.get(match.group(1))
                if known is None:
                    return MASK
                return forms(known)[int(match.group(2))]

            return _REFERENCE.sub(secret, item)

        return _walk(value, text, lambda data: data)


def shown(value: Any) -> Any:
    """A stored value as it is shown: every secret reference as ``***``."""
    return _walk(
        value,
        lambda text: _REFERENCE.sub(MASK, text) if _OPEN in text else text,
        lambda data: data,
    )


def references(value: Any) -> set[str]:
    """The secret names referenced inside a stored value."""
    found: set[str] = set()

    def text(item: str) -> str:
        if _OPEN in item:
            found.update(match.group(1) for match in _REFERENCE.finditer(item))
        return item

    _walk(value, text, lambda data: data)
    return found


_ATOMS = frozenset({int, float, bool, type(None)})

_NAMES = frozenset(
    {"run_id", "step_id", "step_type", "path", "frame", "workflow", "file", "digest"}
    | {"status", "outcome", "error_type", "stream", "key", "level", "breaker"}
)
"""Fields of the engine's records that hold names the workflow file or the engine chose
(ids, types, statuses), never a value: a secret cannot be there (secret inputs have no
default, so the file holds none), and they are not walked."""


@functools.cache
def _init_fields(kind: Any) -> tuple[str, ...]:
    """The fields a dataclass is built from, but those that only hold names."""
    if dataclasses.is_dataclass(kind):
        return tuple(f.name for f in dataclasses.fields(kind) if f.init and f.name not in _NAMES)
    return ()


def _walk(value: Any, text: Callable[[str], str], data: Callable[[bytes], bytes]) -> Any:
    kind = type(value)
    if kind is str:
        return text(value)
    if kind in _ATOMS:
        return value
    if isinstance(value, str):
        return text(value)
    if isinstance(value, (bytes, bytearray)):
        return data(bytes(value))
    if isinstance(value, dict):
        changed = False
        out = {}
        for key, item in value.items():
            new_key = _walk(key, text, data) if isinstance(key, (str, tuple)) else key
            new_item = _walk(item, text, data)
            changed = changed or new_key is not key or new_item is not item
            out[new_key] = new_item
        return out if changed else value
    if isinstance(value, (list, tuple)):
        items = [_walk(item, text, data) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return type(value)(items) if isinstance(value, list) else tuple(items)
    names = _init_fields(cast(Hashable, kind))
    if names:
        changes = _changed_fields(value, names, text, data)
        return dataclasses.replace(value, **changes) if changes else value
    return value


def _changed_fields(
    value: Any, names: tuple[str, ...], text: Callable[[str], str], data: Callable[[bytes], bytes]
) -> dict[str, Any]:
    changes = {}
    for name in names:
        old = getattr(value, name)
        new = _walk(old, text, data)
        if new is not old:
            changes[name] = new
    return changes
