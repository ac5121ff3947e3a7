"""``python -m wfkit``."""

from wfkit.cli.entry import main

main()
