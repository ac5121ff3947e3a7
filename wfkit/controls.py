"""Terminal control characters shown, never obeyed (see :mod:`wfkit.cli.terminal`).

Text from workflows, values, tools and commands may hold ESC sequences that clear the
screen, retitle the window or write the clipboard (OSC 52). Wherever wfkit writes such text
for a person to read (the console, text logs) it passes through :func:`visible`: ``␛`` for
ESC, the Unicode control pictures for the rest of C0 and DEL, ``�`` for C1; tab and newline
stay. Free of rich, so the logging set-up can use it without importing a console.
"""

from __future__ import annotations

import re

#: C0 controls but tab and newline, DEL, C1
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
PICTURES = {
    **{code: 0x2400 + code for code in range(0x20)},
    0x7F: 0x2421,
    **dict.fromkeys(range(0x80, 0xA0), 0xFFFD),
}


def visible(text: str) -> str:
    """``text`` with its control characters (but tab and newline) as visible symbols."""
    return text.translate(PICTURES) if CONTROL.search(text) else text
