"""Task files: a ``sub_agent_tasks`` entry given as a path (``review: tasks/review.yaml``).

The path is relative to the file that names it. The task file holds one task (``inputs``,
``default_state``, ``state_schema``, ``steps``, ``finally``) and gets the checks of a task
written inline; a problem in it names the task file, its line and its field. Its steps keep
the paths of an inline task (``sub_agent_tasks.review.steps[0]``), so a run's structure, its
records and ``resume`` treat both alike.

The texts of the task files a workflow includes travel with it (:attr:`LoadedWorkflow.included
<wfkit.language.loader.LoadedWorkflow>`): a Dask worker loads the workflow from them, never
from its own disk. Under ``wfkit mcp --root`` (:data:`CONFINED`) a task file outside the root
is refused, symlinks followed.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

from pydantic import ValidationError

from wfkit.errors import LoadError
from wfkit.language import models as m
from wfkit.language.diagnostics import translate_validation_error
from wfkit.language.yamlsrc import Path, Source, format_path, parse, read_source

MAX_TASK_FILE_BYTES = 5_000_000

CONFINED: contextvars.ContextVar[FilePath | None] = contextvars.ContextVar(
    "wfkit_confined_root", default=None
)
"""The folder every file a workflow includes must lie in (the MCP server's root)."""

SHIPPED: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "wfkit_shipped_task_files", default=None
)
"""Task file texts by entry, given with the workflow's text (a worker loads from these)."""


@dataclass(frozen=True)
class IncludedSource(Source):
    """A task file's positions under the path of the entry naming it: the checks of an
    inline task apply as they are, and their errors name the task file and its own field."""

    prefix: Path = ()

    def error(self, message: str, path: Path) -> LoadError:
        line, column = self.position(path)
        own = path[len(self.prefix) :] if path[: len(self.prefix)] == self.prefix else path
        return LoadError(
            message, file=self.file, line=line, column=column, field=format_path(own) or None
        )


def include_task(
    source: Source, file: str, name: str, entry: str, included: dict[str, str]
) -> tuple[m.SubAgentTask, Source]:
    """The task of entry ``name`` given as the path ``entry``, and its positions; its text is
    added to ``included``. Raises :class:`LoadError` naming the calling file and field when
    the task file cannot be read, or the task file's own line and field when it is wrong."""
    where: Path = ("sub_agent_tasks", name)
    shown = str(FilePath(file).parent / entry)
    shipped = SHIPPED.get()
    if shipped is not None and entry in shipped:
        text = shipped[entry]
    else:
        path = (FilePath(file).resolve().parent / entry).resolve()
        root = CONFINED.get()
        if root is not None and not path.is_relative_to(root):
            raise source.error(
                f"task file {entry!r} of {name!r} lies outside the server's root {root}", where
            )
        try:
            text = read_source(path, "task file", MAX_TASK_FILE_BYTES, regular=True)
        except LoadError as exc:
            raise source.error(f"task file {entry!r} of {name!r}: {exc.message}", where) from None
    own = parse(text, shown)
    if not isinstance(own.data, dict):
        raise LoadError(
            "a task file must be a YAML mapping (inputs:, steps:, ...)", file=shown, line=1
        )
    try:
        task = m.SubAgentTask.model_validate(own.data)
    except ValidationError as exc:
        raise translate_validation_error(exc, own) from None
    included[entry] = text
    return task, _rooted(own, where)


def _rooted(own: Source, prefix: Path) -> IncludedSource:
    def under(positions: dict[Path, Any]) -> dict[Path, Any]:
        return {(*prefix, *path): value for path, value in positions.items()}

    return IncludedSource(
        file=own.file,
        data=own.data,
        positions=under(own.positions),
        word_booleans=under(own.word_booleans),
        prefix=prefix,
    )
