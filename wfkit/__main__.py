"""``python -m wfkit``."""

from wfkit.cli import main

main()
