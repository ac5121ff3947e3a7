"""``python -m wfkit``."""

from wfkit.entry import main

main()
