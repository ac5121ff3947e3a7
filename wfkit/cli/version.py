"""What ``wfkit --version`` and ``wfkit version`` print, without importing the CLI."""

from __future__ import annotations

VERSION_ARGS = (["--version"], ["version"])


def version_text() -> str:
    """``wfkit <version>``: what ``--version`` and ``wfkit version`` print."""
    from wfkit import __version__

    return f"wfkit {__version__}\n"
