"""Human output that what it shows cannot take over the terminal.

Workflow names, step ids, messages, values, test-case names and captured command output
reach the terminal through rich. Rich drops a few control characters (BEL, backspace, CR,
VT, FF) but passes ESC through, so text such as ``\\x1b]0;title\\x07`` or ``\\x1b[2J`` would
retitle or clear the user's terminal (or, with OSC 52, write their clipboard). Every
console of the CLI shows such characters as visible symbols instead (``␛`` for ESC, the
Unicode control pictures for the rest of C0 and DEL, ``�`` for C1); rich's own styling is
untouched. ``--json`` output carries the text unchanged (JSON escapes it).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment

#: C0 controls but tab and newline, DEL, C1
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_PICTURES = {
    **{code: 0x2400 + code for code in range(0x20)},
    0x7F: 0x2421,
    **dict.fromkeys(range(0x80, 0xA0), 0xFFFD),
}


def visible(text: str) -> str:
    """``text`` with its control characters (but tab and newline) as visible symbols."""
    return text.translate(_PICTURES) if CONTROL.search(text) else text


class SafeConsole(Console):
    """A rich console whose printed content never carries terminal control sequences.

    Rich renders a renderable's parts through :meth:`render` too; only the outermost call
    (per thread: a live display refreshes from its own) cleans the segments.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._outer = threading.local()

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterator[Segment]:
        if getattr(self._outer, "active", False):  # a part of what is cleaned below
            yield from super().render(renderable, options)
            return
        self._outer.active = True
        try:
            for segment in super().render(renderable, options):
                if segment.control or not CONTROL.search(segment.text):
                    yield segment
                else:
                    yield Segment(segment.text.translate(_PICTURES), segment.style)
        finally:
            self._outer.active = False
