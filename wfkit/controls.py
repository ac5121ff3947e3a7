"""Terminal control characters shown, never obeyed (see :mod:`wfkit.cli.terminal`).

Text from workflows, values, tools and commands may hold ESC sequences that clear the
screen, retitle the window or write the clipboard (OSC 52). Wherever wfkit writes such text
for a person to read (the console, text logs) it passes through :func:`visible`: ``␛`` for
ESC, the Unicode control pictures for the rest of C0 and DEL, ``�`` for C1 and for lone
surrogates (text a command line or ``from_json`` can produce, which UTF-8 cannot hold); tab
and newline stay. Output meant for programs (JSON, HTML) keeps every character and writes a
lone surrogate as its escape instead (:func:`encodable`). Free of rich, so the logging set-up
can use it without importing a console.
"""

from __future__ import annotations

import re

#: C0 controls but tab and newline, DEL, C1, and lone surrogates (no UTF-8 output holds them)
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
PICTURES = {
    **{code: 0x2400 + code for code in range(0x20)},
    0x7F: 0x2421,
    **dict.fromkeys(range(0x80, 0xA0), 0xFFFD),
    **dict.fromkeys(range(0xD800, 0xE000), 0xFFFD),
}
SURROGATE = re.compile("[\ud800-\udfff]")


def visible(text: str) -> str:
    """``text`` with its control characters (but tab and newline) as visible symbols."""
    return text.translate(PICTURES) if CONTROL.search(text) else text


def encodable(text: str) -> str:
    """``text`` as UTF-8 can hold it: each lone surrogate as the escape ``\\udXXX`` (in JSON
    and in a script's JSON data that escape reads back as the same character)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)
    return text
