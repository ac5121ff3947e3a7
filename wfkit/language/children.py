"""The workflows a file calls with ``workflow`` steps, loaded and checked with it.

Each ``file:`` is relative to the calling file and loaded once per distinct entry. Checked at
load, each problem naming the calling file, its line and the step's field: a file that cannot
be read or does not load (its own error names its own line), a cycle of calls (the chain of
files), a call deeper than the top file's ``config.max_workflow_depth`` (16), an input the
child does not declare, and (under ``wfkit mcp --root``) a file outside the root.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from pathlib import Path as FilePath
from typing import Any

from wfkit.errors import LoadError
from wfkit.language import models as m
from wfkit.language.diagnostics import problem, suggest
from wfkit.language.task_files import CONFINED
from wfkit.language.yamlsrc import Path, Source

LoadedWorkflow = Any  # wfkit.language.loader.LoadedWorkflow (which imports this module)

#: the files being loaded, outermost first (resolved): a call back into one is a cycle
CHAIN: contextvars.ContextVar[tuple[FilePath, ...]] = contextvars.ContextVar(
    "wfkit_call_chain", default=()
)
#: the top file's bound on the depth of calls
DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("wfkit_call_depth", default=16)
#: the files loaded so far under the top file, by resolved path: a file called from several
#: places (a diamond) is loaded once
LOADED: contextvars.ContextVar[dict[FilePath, Any] | None] = contextvars.ContextVar(
    "wfkit_loaded_children", default=None
)
#: false where the children are not needed (a Dask worker runs items, which run none)
WANTED: contextvars.ContextVar[bool] = contextvars.ContextVar("wfkit_children", default=True)


def workflow_steps(steps: list[m.Step], base: Path) -> Iterator[tuple[m.WorkflowStep, Path]]:
    """Every ``workflow`` step of ``steps``, nested ones included, with its path."""
    from wfkit.language.compile import walk

    for step, where in walk(steps, base):
        if isinstance(step, m.WorkflowStep):
            yield step, where


def load_children(
    calls: list[tuple[Source, str, m.WorkflowStep, Path]],
    top_file: str,
    workflow: m.Workflow,
    load: Callable[[str], LoadedWorkflow],
) -> dict[int, LoadedWorkflow]:
    """The loaded child of each call (its source, its file, the step, its path), by ``id()``
    of the step; problems are recorded (see :func:`~wfkit.language.diagnostics.problem`), the
    child left out."""
    if not WANTED.get():
        return {}
    top = not CHAIN.get()
    chain = CHAIN.get() or (FilePath(top_file).resolve(),)
    limit = workflow.config.max_workflow_depth if top else DEPTH.get()
    loaded = LOADED.get()
    token = LOADED.set({}) if loaded is None else None
    try:
        children: dict[int, LoadedWorkflow] = {}
        for source, file, step, where in calls:
            child = _child(source, file, step, where, chain, limit, load)
            if child is not None:
                children[id(step)] = child
                _check_inputs(source, step, where, child)
        return children
    finally:
        if token is not None:
            LOADED.reset(token)


def _child(
    source: Source,
    file: str,
    step: m.WorkflowStep,
    where: Path,
    chain: tuple[FilePath, ...],
    limit: int,
    load: Callable[[str], LoadedWorkflow],
) -> LoadedWorkflow | None:
    at: Path = (*where, "file")
    path = (FilePath(file).resolve().parent / step.file).resolve()
    root = CONFINED.get()
    if root is not None and not path.is_relative_to(root):
        problem(source.error(f"{step.file!r} lies outside the server's root {root}", at))
        return None
    if path in chain:
        names = " -> ".join(p.name for p in (*chain, path))
        problem(source.error(f"workflow {step.file!r} calls back into itself: {names}", at))
        return None
    if len(chain) >= limit:
        problem(
            source.error(
                f"calling {step.file!r} goes {len(chain) + 1} workflows deep, beyond "
                f"config.max_workflow_depth ({limit}) of the first file",
                at,
            )
        )
        return None
    seen = LOADED.get()
    if seen is not None and path in seen:  # loaded already, its calls checked then
        return seen[path]
    chained = CHAIN.set((*chain, path))
    depth = DEPTH.set(limit)
    try:
        shown = str(FilePath(file).parent / step.file)
        child = load(shown if FilePath(shown).exists() else str(path))
        if seen is not None:
            seen[path] = child
        return child
    except LoadError as exc:
        if exc.file is None or exc.line is None:  # the file itself could not be read
            problem(source.error(f"workflow {step.file!r}: {exc.message}", at))
            return None
        raise  # the child's own error names its file and line
    finally:
        DEPTH.reset(depth)
        CHAIN.reset(chained)


def _check_inputs(source: Source, step: m.WorkflowStep, where: Path, child: Any) -> None:
    declared = list(child.workflow.inputs)
    for name in step.inputs:
        if name in declared:
            continue
        if declared:
            hint = suggest(name, declared) or f"; its inputs: {', '.join(declared)}"
        else:
            hint = "; it declares none"
        problem(
            source.error(f"{step.file} declares no input {name!r}{hint}", (*where, "inputs", name))
        )
