"""The engine's memory (its RSS, what a checkpoint costs), and how a shell step's
``memory_limit_mb`` is enforced: a cgroup v2 ``memory.max`` where the
machine lets wfkit create one, else ``RLIMIT_AS``.

Both are set by a small ``/bin/sh`` wrapper that then ``exec``s the command, so no
``preexec_fn`` runs in a threaded engine and the limit is inherited by the command's children.
``RLIMIT_DATA`` is not used: shared mappings (``mmap`` of 500 MB) escape it. ``RLIMIT_AS``
counts every mapping, thread stacks included, so a threaded program needs some headroom.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

CGROUP = "cgroup v2 memory.max"

CHECKPOINT_COPIES = 6
"""Bytes allocated while a checkpointed value is stored, per byte of it: its JSON text, the
text's UTF-8 bytes, SQLite's copies and pages (measured: a state of one list growing 1 MB a
step peaks at 5.5 times the list's size above the engine's RSS before the checkpoint)."""


def rss_bytes() -> int:
    """The engine's resident memory now (Linux ``/proc``), else its peak."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


RLIMIT = "RLIMIT_AS"
_ROOT = Path("/sys/fs/cgroup")


@functools.cache
def _own_cgroup() -> Path | None:
    """This process's cgroup v2 directory when it can hold child groups with a memory limit."""
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="ascii").splitlines()
        controllers = (_ROOT / "cgroup.controllers").read_text(encoding="ascii").split()
    except OSError:
        return None
    unified = [line.split(":", 2)[2] for line in lines if line.startswith("0::")]
    if not unified or "memory" not in controllers:
        return None
    own = _ROOT / unified[0].lstrip("/")
    if not os.access(own, os.W_OK):
        return None
    return own  # pragma: no cover - needs a writable cgroup v2 hierarchy (not on CI here)


def mechanism() -> str:
    """Which mechanism limits shell memory on this machine."""
    return CGROUP if _own_cgroup() is not None else RLIMIT


def limited_argv(argv: list[str], limit_mb: int, name: str) -> tuple[list[str], str]:
    """``argv`` wrapped so that it runs under ``limit_mb``; and the mechanism used."""
    group = _own_cgroup()
    if group is not None:  # pragma: no cover - needs a writable cgroup v2 hierarchy
        path = group / f"wfkit-{name}-{os.getpid()}"
        try:
            path.mkdir(exist_ok=True)
            (path / "memory.max").write_text(str(limit_mb * 1024 * 1024), encoding="ascii")
            (path / "memory.swap.max").write_text("0", encoding="ascii")
        except OSError:
            pass
        else:
            script = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
            return ["/bin/sh", "-c", script, str(path), *argv], CGROUP
    script = 'ulimit -v "$0" && exec "$@"'
    return ["/bin/sh", "-c", script, str(limit_mb * 1024), *argv], RLIMIT
