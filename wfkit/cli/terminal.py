"""Human output that what it shows cannot take over the terminal.

Workflow names, step ids, messages, values, test-case names and captured command output
reach the terminal through rich. Rich drops a few control characters (BEL, backspace, CR,
VT, FF) but passes ESC through, so text such as ``\\x1b]0;title\\x07`` or ``\\x1b[2J`` would
retitle or clear the user's terminal (or, with OSC 52, write their clipboard). Every
console of the CLI shows such characters as visible symbols instead (``␛`` for ESC, the
Unicode control pictures for the rest of C0 and DEL, ``�`` for C1: :mod:`wfkit.controls`);
rich's own styling is untouched, and a hyperlink's target is cleaned too. ``--json``
output carries the text unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment

from wfkit.controls import CONTROL, visible


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
                yield segment if segment.control else _cleaned(segment)
        finally:
            self._outer.active = False


def _cleaned(segment: Segment) -> Segment:
    """``segment`` with no control character in its text or in a hyperlink's target (an
    OSC 8 link, from text written under a live display, reaches the terminal as it is)."""
    text, style, _ = segment
    if style is not None and style.link and CONTROL.search(style.link):
        style = style.update_link(visible(style.link))
    elif not CONTROL.search(text):
        return segment
    return Segment(visible(text), style)
