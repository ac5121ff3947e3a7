"""What every view shares: tables, status styles, short values, and the error view.

Everything here reads result models or engine events; nothing here changes a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from wfkit.errors import WfkitError

STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "timed_out": "red",
    "cancelled": "yellow",
    "skipped": "dim",
    "running": "cyan",
    "waiting": "yellow",
}
LEVEL_STYLE = {"info": "", "warning": "yellow", "error": "red", "success": "green"}


def titled_table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    """A plain table with a left-aligned title; ``right`` columns are right-aligned."""
    table = Table(title=title, box=None, pad_edge=False, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    return table


def add_row(table: Table, *cells: str | Text) -> None:
    """Add a row whose strings show as they are: never read as markup or emoji codes.

    Table cells given as ``str`` go through rich's markup parser; values from workflow files,
    state, tools and commands must not (``[red]`` or ``:fire:`` in a value is text).
    """
    table.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in cells))


def status_text(status: str) -> Text:
    """A status word in its colour."""
    return Text(status, style=STATUS_STYLE.get(status, ""))


def error_view(error: WfkitError) -> Group:
    """A load or input error, with the offending lines of the file when known; a file with
    several problems shows each, in line order."""
    from wfkit.errors import LoadError

    if not isinstance(error, LoadError) or len(error.problems) < 2:
        return Group(*_error_body(error, str(error)))
    body: list[Any] = [
        Text(f"{len(error.problems)} problems in {error.file or '<workflow>'}:", style="bold red")
    ]
    for problem in error.problems[:MAX_SHOWN_PROBLEMS]:
        body.extend(_error_body(problem, str(problem)))
    if len(error.problems) > MAX_SHOWN_PROBLEMS:
        body.append(Text(f"… {len(error.problems) - MAX_SHOWN_PROBLEMS} more", style="red"))
    return Group(*body)


MAX_SHOWN_PROBLEMS = 20


def _error_body(error: WfkitError, message: str) -> list[Any]:
    from rich.syntax import Syntax  # pygments: only when there is a file to show

    from wfkit.errors import LoadError

    body: list[Any] = [Text.assemble((f"{error.type_name}: ", "bold red"), message)]
    if isinstance(error, LoadError) and error.file and error.line:
        first = max(1, error.line - 2)
        snippet = _snippet(error.file, first, error.line + 2)
        if snippet:
            body.append(
                Syntax(
                    snippet,
                    "yaml",
                    line_numbers=True,
                    start_line=first,
                    highlight_lines={error.line},
                    theme="ansi_dark",
                )
            )
    return body


def _snippet(file: str, first: int, last: int, width: int = 300) -> str:
    """Lines ``first..last`` of a file, each cut to ``width``: only these are highlighted, so a
    huge file (or one long line) is reported as fast as a small one; never a decode error."""
    from wfkit.language.yamlsrc import MAX_FILE_BYTES

    try:
        with open(file, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES)
    except OSError:
        return ""
    lines = raw.decode("utf-8", errors="replace").splitlines()[first - 1 : last]
    return "\n".join(line[:width] + (" …" if len(line) > width else "") for line in lines)


def short(value: Any, limit: int = 80) -> str:
    import json

    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
