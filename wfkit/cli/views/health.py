"""The view of ``wfkit health``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text

from wfkit.cli.views.common import (
    add_row,
)

if TYPE_CHECKING:
    from wfkit.commands.health import HealthReport


def health_view(report: HealthReport) -> Group:
    """``wfkit health``."""
    table = Table(box=None, pad_edge=False, show_header=False)
    for check in report.checks:
        mark = Text("ok  ", style="green") if check.ok else Text("FAIL", style="bold red")
        add_row(table, mark, check.name, check.detail)
    verdict = (
        Text("healthy", style="bold green") if report.ok else Text("unhealthy", style="bold red")
    )
    return Group(table, verdict)
