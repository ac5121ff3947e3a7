"""Rich view of ``why``: every value from a run is plain Text, never markup."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text

from wfkit.cli.views.common import status_text

if TYPE_CHECKING:
    from wfkit.commands.why import WhyResult

_KIND_STYLE = {
    "condition": "cyan",
    "retry": "yellow",
    "injected": "magenta",
    "recovered": "green",
    "fail_fast": "red",
    "breaker": "magenta",
    "error": "red",
    "order": "dim",
    "run": "red",
}


def why_view(result: WhyResult) -> Group:
    """The answer first, then each recorded fact behind it."""
    head = Text.assemble(
        (result.step_id, "bold"),
        " in run ",
        result.run_id,
        " (",
        status_text(result.status),
        f", {result.executions} execution(s), {result.attempts} attempt(s))",
    )
    lines = [head, Text.assemble(("why: ", "bold"), result.answer)]
    for reason in result.reasons:
        lines.append(
            Text.assemble(
                "  ", (f"{reason.kind:<10}", _KIND_STYLE.get(reason.kind, "")), " ", reason.text
            )
        )
    return Group(*lines)
