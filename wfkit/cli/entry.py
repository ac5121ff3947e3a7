"""The ``wfkit`` console script: answers ``--version`` at once, hands the rest to the CLI.

``wfkit.cli.app`` builds the typer app at import (typer, and through it pydantic, ~60 ms before
any command runs); the version needs none of that, so it is printed from here without
importing typer, rich, pydantic or the engine. The text is the one ``wfkit version`` prints.
"""

from __future__ import annotations

import sys

from wfkit.cli.version import VERSION_ARGS, version_text


def main() -> None:
    """Console-script entry point."""
    if sys.argv[1:] in VERSION_ARGS:
        sys.stdout.write(version_text())
        return
    from wfkit.cli.app import main as cli_main

    cli_main()
