"""The ``wfkit`` console script: answers ``--version`` at once, hands the rest to the CLI.

``wfkit.cli`` builds the typer app at import (typer, and through it pydantic, ~60 ms before
any command runs); the version needs none of that, so it is printed from here without
importing typer, rich, pydantic or the engine. The text is the one ``wfkit version`` prints.
"""

from __future__ import annotations

import sys

VERSION_ARGS = (["--version"], ["version"])


def version_text() -> str:
    """``wfkit <version>``: what ``--version`` and ``wfkit version`` print."""
    from wfkit import __version__

    return f"wfkit {__version__}\n"


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:] in VERSION_ARGS:
        sys.stdout.write(version_text())
        return
    from wfkit.cli import main as cli_main

    cli_main()
