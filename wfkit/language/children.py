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


def workflow_steps(steps: list[m.Step], base: Path) -> Iterator[tuple[m.WorkflowStep, Path]]:
    """Every ``workflow`` step of ``steps``, nested ones included, with its path."""
    from wfkit.language.compile import walk

    for step, where in walk(steps, base):
        if isinstance(step, m.WorkflowStep):
            yield step, where


def load_children(
    source: Source,
    file: str,
    calls: list[tuple[m.WorkflowStep, Path]],
    workflow: m.Workflow,
    load: Callable[[str], LoadedWorkflow],
) -> dict[str, LoadedWorkflow]:
    """The loaded children of ``calls``, by ``file:`` entry; problems are recorded (see
    :func:`~wfkit.language.diagnostics.problem`), the child left out."""
    chain = CHAIN.get() or (FilePath(file).resolve(),)
    top = not CHAIN.get()
    limit = workflow.config.max_workflow_depth if top else DEPTH.get()
    children: dict[str, LoadedWorkflow] = {}
    for step, where in calls:
        if step.file not in children:
            child = _child(source, file, step, where, chain, limit, load)
            if child is None:
                continue
            children[step.file] = child
        _check_inputs(source, step, where, children[step.file])
    return children


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
    chained = CHAIN.set((*chain, path))
    depth = DEPTH.set(limit)
    try:
        shown = str(FilePath(file).parent / step.file)
        return load(shown if FilePath(shown).exists() else str(path))
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
