"""Real consumers fetched from a package registry once, into a folder under ``~/.cache``."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


def unavailable(reason: str) -> None:
    """Skip with the reason; under ``CI=true`` the consumer must be there, so fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def cached(
    name: str, done: str, install: Callable[[Path], subprocess.CompletedProcess[bytes]]
) -> Path:
    """The folder ``~/.cache/<name>`` once ``install(folder)`` has made ``<folder>/<done>``.

    Checkouts testing at once take turns, and a half-done install is never seen as done: it
    goes to a fresh folder renamed into place when the install succeeds.
    """
    cache = Path.home() / ".cache" / name
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.with_name(cache.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cache / done).exists():
            staging = cache.with_name(f"{cache.name}.{os.getpid()}")
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
            staging.mkdir()
            result = install(staging)
            if result.returncode != 0 or not (staging / done).exists():
                shutil.rmtree(staging, ignore_errors=True)
                unavailable(f"cannot install {name}: {result.stderr.decode()[-300:]}")
            staging.rename(cache)
    return cache
