"""A cache of loaded workflow files, under the run store (``.wfkit/cache/``).

Parsing YAML with positions, validating the models (building the validator alone costs
~30 ms per process) and compiling the expressions (~0.25 ms each: jinja2 parses, generates
Python and Python compiles it) are most of a load; a file that has not changed since the
last run needs none of them. An entry is keyed by the file's bytes and by the versions that
shape the result (wfkit and its engine's files, Python, pydantic, jinja2, this format), so
an edited file or another build never reads a stale entry: it is simply another key. The
entry holds the parsed :class:`Source` and the validated :class:`Workflow` *before* the
loader compiles them, and the code jinja2 generated for each expression (``marshal``); the
loader's checks and step plans still run on every load. Only a file that loaded without
problems gets an entry.

Safety: entries are pickles, so only files owned by this user in a directory nobody else can
write are read (the same user can run any workflow anyway); anything unreadable, truncated
or foreign is a miss. Writers write a temporary file and rename it, so concurrent runs see a
whole entry or none. ``WFKIT_COMPILE_CACHE=0`` turns the cache off.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
import stat
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
import pydantic

import wfkit

if TYPE_CHECKING:
    from wfkit.language.expressions import Compiled
    from wfkit.language.models import Workflow
    from wfkit.language.yamlsrc import Source

FORMAT = 2
MAX_ENTRIES = 64
"""Entries kept per cache directory; the least recently written go first."""


def engine_digest(root: Path) -> str:
    """A digest of the Python files under ``root`` (each one's name, size and modification
    time): it changes when any of them is edited or replaced."""
    files = sorted(
        f"{path.relative_to(root)}:{info.st_size}:{info.st_mtime_ns}"
        for path in root.rglob("*.py")
        for info in (path.stat(),)
    )
    return hashlib.sha256("|".join(files).encode()).hexdigest()


@functools.cache
def _salt() -> str:
    """What an entry's key covers besides the text: the versions, and wfkit's engine as it
    is on disk (``wfkit/language``: the models, the loader and the sandbox whose code an entry
    keeps), so a changed build never reads entries written by another with the same version
    number."""
    return (
        f"wfkit {wfkit.__version__}|{engine_digest(Path(__file__).parent)}|{sys.version}"
        f"|pydantic {pydantic.VERSION}|jinja2 {jinja2.__version__}|{FORMAT}|"
    )


def enabled() -> bool:
    """False when ``WFKIT_COMPILE_CACHE=0``."""
    return os.environ.get("WFKIT_COMPILE_CACHE", "1") not in ("0", "false", "no", "off")


def entry_path(directory: Path, text: str) -> Path:
    """Where the entry for ``text`` lives."""
    digest = hashlib.sha256((_salt() + text).encode()).hexdigest()
    return directory / f"{digest}.pickle"


def _trusted(path: Path) -> bool:
    """Owned by this user and writable by nobody else (the file and its directory)."""
    for item in (path.parent, path):
        info = item.stat()
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
    return True


def lookup(
    directory: Path, text: str, file: str
) -> tuple[Source, Workflow, Mapping[tuple[str, bool, bool], Compiled]] | None:
    """The cached parse of ``text`` (named ``file`` in errors) and its compiled expressions
    (see :func:`wfkit.language.expressions.precompiled`), or None."""
    from wfkit.language.models import Workflow
    from wfkit.language.yamlsrc import Source

    path = entry_path(directory, text)
    try:
        if not _trusted(path):
            return None
        parsed, expressions = pickle.loads(path.read_bytes())
        source, workflow = pickle.loads(parsed)
    except Exception:  # a miss: absent, partial, foreign or from an incompatible build
        return None
    if (
        not isinstance(source, Source)
        or not isinstance(workflow, Workflow)
        or not isinstance(expressions, dict)
    ):
        return None
    return replace(source, file=file), workflow, expressions


def freeze(source: Source, workflow: Workflow) -> bytes | None:
    """The parse as an entry keeps it, taken before the loader compiles it (None: it cannot
    be kept)."""
    try:
        return pickle.dumps((source, workflow), protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


def store(
    directory: Path,
    text: str,
    parsed: bytes | None,
    expressions: Mapping[tuple[str, bool, bool], Compiled],
) -> None:
    """Keep the parse of ``text`` (from :func:`freeze`) and its compiled expressions; a cache
    that cannot be written is no error."""
    if parsed is None:
        return
    tmp: str | None = None
    try:
        blob = pickle.dumps((parsed, dict(expressions)), protocol=pickle.HIGHEST_PROTOCOL)
        if not directory.parent.exists():  # the store's folder: private like the store
            directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.mkdir(mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
        os.replace(tmp, entry_path(directory, text))
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return
    _trim(directory)


def _trim(directory: Path) -> None:
    try:
        entries = sorted(directory.glob("*.pickle"), key=lambda p: p.stat().st_mtime)
        for old in entries[:-MAX_ENTRIES]:
            old.unlink()
    except OSError:  # another process trimmed it first
        return
