"""Rich view of ``replay``: reproduced or not, then each difference, first one first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text

from wfkit.cli.views.common import status_text

if TYPE_CHECKING:
    from wfkit.commands.replay import ReplayResult


def replay_view(result: ReplayResult) -> Group:
    """The headline, the replay's run, and the divergences."""
    parts: list[Text] = [
        Text.assemble(
            ("replay ", "bold"),
            result.run.run_id,
            " of ",
            result.replay_of,
            "  ",
            status_text(result.run.status),
            f"  {result.workflow}" + ("  (edited)" if result.edited else ""),
        )
    ]
    if result.reproduced:
        parts.append(
            Text(
                "reproduced the record exactly: same steps, attempts and state", style="bold green"
            )
        )
    elif result.edited:
        parts.append(Text(f"first divergence: {result.first_divergence}", style="bold yellow"))
    else:
        parts.append(
            Text(
                f"determinism problem: {result.first_divergence} (the recorded workflow did "
                "not reproduce its record: an expression reading the clock or chance?)",
                style="bold red",
            )
        )
    if result.stopped_at is not None:
        parts.append(
            Text(f"stopped at {result.stopped_at}: the record cannot answer it", style="red")
        )
    for d in result.divergences:
        parts.append(Text(f"  {d.what:<14} {d.detail}"))
    return Group(*parts)
