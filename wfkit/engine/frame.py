"""Where steps execute: a :class:`Frame` (state plus local names) and per-step plans."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wfkit.engine.state import MISSING, State
from wfkit.errors import StepError
from wfkit.language.compile import Body
from wfkit.language.expressions import Expr, Scope, make_scope, truthy
from wfkit.language.models import StepBase
from wfkit.language.plan import CompiledUpdate
from wfkit.language.shellquote import render_command

if TYPE_CHECKING:
    from wfkit.engine.context import RunContext


@dataclass
class StepRecord:
    """The last execution of a step id, and how many executions it had."""

    id: str
    type: str
    status: str = "running"
    attempts: int = 0
    executions: int = 0
    duration_ms: float = 0.0
    injected: bool = False  # an injected fault hit an attempt of one of its executions
    #: a parallel_foreach step's items of its last execution by status ({"succeeded": 43, ...})
    items: dict[str, int] | None = None
    #: every execution's status, counted (``status`` is the last one's): what a summary shows,
    #: the same whatever order parallel executions finished in
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Level:
    """Where a frame is in one step list: the index, whether that step is done, and notes
    the step (a container) keeps to continue after a resume (branch, loop iteration)."""

    index: int = 0
    done: bool = False
    note: dict[str, Any] = field(default_factory=dict)
    size: int = 0  # steps in the list (not stored)

    def dump(self) -> dict[str, Any]:
        """As stored in a checkpoint."""
        return {"i": self.index, "done": self.done, "note": self.note}


@dataclass(frozen=True)
class FrameCheckpoint:
    """A frame as stored: its cursor and every value written since it started."""

    cursor: list[dict[str, Any]]
    raw: dict[str, Any]
    computed: dict[str, Any]
    steps: dict[str, Any]
    memory: dict[str, Any]


class Frame:
    """Where steps execute: a state, local names, the chain of active steps, and a cursor.

    The cursor has one :class:`Level` per nested step list being executed. After each
    completed step (outside ``cleanup`` and ``finally``) the run checkpoints the frame: the
    cursor plus the values changed since the last checkpoint. A resumed frame re-enters the
    containers along its saved cursor and continues after the last completed step.
    """

    __slots__ = (
        "_changed_memory",
        "_changed_steps",
        "_scope",
        "active",
        "attempt",
        "body",
        "cursor",
        "during",
        "ends_with_parent",
        "item",
        "key",
        "locals",
        "memory",
        "prefix",
        "previous_error",
        "reentry",
        "resume",
        "run",
        "state",
        "steps_view",
    )

    def __init__(
        self,
        run: RunContext,
        body: Body,
        state: State,
        prefix: str = "",
        active: tuple[str, ...] = (),
        key: str = "main",
    ) -> None:
        self.run = run
        self.body = body
        self.state = state
        self.prefix = prefix
        self.key = key
        self.steps_view: dict[str, dict[str, Any]] = {}
        self.locals: dict[str, Any] = {"steps": self.steps_view}
        self.active: list[str] = list(active)
        self.during: str | None = None  # "cleanup" or "finally" while those run
        self.item: int | None = None  # the parallel_foreach item this frame runs
        self.attempt = 1  # of the step attempt starting now (its output is filed under it)
        #: the error of the attempt before this one of the same execution (type, message...)
        self.previous_error: dict[str, Any] | None = None
        self.cursor: list[Level] = []
        self.resume: list[dict[str, Any]] | None = None
        self.reentry: dict[str, Any] | None = None  # the note of a container being re-entered
        self.memory: dict[str, Any] = {}  # what containers keep for a resume (loop items...)
        #: the parent checkpoints this frame's result as soon as its last step completes, with
        #: nothing awaited in between: that last checkpoint of its own would be dropped unused
        self.ends_with_parent = False
        self._changed_steps: set[str] = set()
        self._changed_memory: set[str] = set()
        self._scope = make_scope(self.locals, state.flat, run.names)

    def restore(self, checkpoint: FrameCheckpoint) -> None:
        """Continue from a stored checkpoint."""
        self.state.restore(checkpoint.raw, checkpoint.computed)
        self.steps_view.update(checkpoint.steps)
        self.memory.update(checkpoint.memory)
        self.resume = checkpoint.cursor or None

    # values kept for a resume ----------------------------------------------------------

    def record_step(self, step_id: str, status: str, output: Any) -> None:
        """Set ``steps.<id>`` (status and output) for later expressions."""
        self.steps_view[step_id] = {"status": status, "output": output}
        self._changed_steps.add(step_id)

    def remember(self, key: str, value: Any) -> None:
        """Keep a value with the frame's checkpoints."""
        self.memory[key] = value
        self._changed_memory.add(key)

    def let_go(self, key: str, mark: Any) -> None:
        """Hold only ``mark`` for a remembered value that reached a checkpoint: the store
        keeps the value (a later checkpoint does not write the mark), so a step that runs
        again in this process still knows it."""
        self.memory[key] = mark

    def forget(self, key: str) -> None:
        """Drop a remembered value."""
        if self.memory.pop(key, MISSING) is not MISSING:
            self._changed_memory.add(key)

    def note(self, **values: Any) -> None:
        """Notes of the running container, kept in its level of the cursor."""
        self.cursor[-1].note.update(values)

    def take_reentry(self) -> dict[str, Any] | None:
        """The saved notes when the running container is being re-entered by a resume."""
        note, self.reentry = self.reentry, None
        return note

    def needs_checkpoint(self, effectful: bool = False) -> bool:
        """False inside cleanup/finally, and for the redundant last step of a parallel item:
        unless that step acted outside the run (``effectful``), whose completion must be
        durable when its report commits, before the parent's checkpoint of the item."""
        if self.during is not None:
            return False
        level = self.cursor[-1]
        return effectful or not (
            self.ends_with_parent and len(self.cursor) == 1 and level.index == level.size - 1
        )

    def checkpoint(self) -> tuple[list[dict[str, Any]], dict[tuple[str, str], Any]]:
        """The cursor and the values changed since the last checkpoint."""
        changes = self.state.take_changes()
        for step_id in self._changed_steps:
            changes[("steps", step_id)] = self.steps_view.get(step_id, MISSING)
        for key in self._changed_memory:
            changes[("memory", key)] = self.memory.get(key, MISSING)
        self._changed_steps.clear()
        self._changed_memory.clear()
        return [level.dump() for level in self.cursor], changes

    # evaluation --------------------------------------------------------------------------

    def view(self, extra: Mapping[str, Any] | None = None) -> Scope:
        """What expressions of the current step see (``extra`` names first)."""
        return self._scope.new_child(dict(extra)) if extra else self._scope

    def eval(self, step: StepBase, name: str, extra: Mapping[str, Any] | None = None) -> Any:
        """Evaluate a compiled field of ``step`` in this frame (a command string as a
        :class:`~wfkit.language.shellquote.ShellCommand`: its values as data)."""
        compiled = self.run.plan(step).compiled[name]
        if getattr(compiled, "shell", False):
            scope = self.view(extra)
            return render_command(lambda: compiled.render(scope))
        return compiled.render(self.view(extra))

    def test(self, expr: Expr, step_id: str, role: str) -> bool:
        """A condition's truth (traced, with its operands, when the run is traced)."""
        scope = self.view()
        tracer = self.run.tracer
        if tracer is None:
            outcome = truthy(expr.render(scope))
            self.run.decisions.condition(self.prefix + step_id, role, expr, scope, outcome)
            return outcome
        started = time.perf_counter()
        outcome = truthy(expr.render(scope))
        tracer.condition(
            self.prefix + step_id,
            role,
            expr,
            scope,
            outcome,
            (time.perf_counter() - started) * 1000,
        )
        self.run.decisions.condition(self.prefix + step_id, role, expr, scope, outcome)
        return outcome

    def apply(self, updates: list[CompiledUpdate], extra: Mapping[str, Any] | None = None) -> None:
        """Perform compiled state writes in order."""
        if not updates:
            return
        scope = self.view(extra)
        if len(updates) == 1:
            self._write(updates[0], scope)
            return
        with self.state.atomic():  # a step's list of writes is all or nothing
            for update in updates:
                self._write(update, scope)

    def _write(self, update: CompiledUpdate, scope: Scope) -> None:
        self.state.write(
            str(update.path.render(scope)),
            update.operation,
            update.value.render(scope),
            update.by.render(scope),
        )

    async def run_each(self, steps: list[Any]) -> StepError | None:
        """Run every step (``finally``, ``cleanup``) even when an earlier one fails; each
        failure is recorded where it arose. Returns the first failure."""
        first: StepError | None = None
        for step in steps:
            try:
                await self.run_steps([step])
            except StepError as error:
                first = first or error
        return first

    async def run_steps(self, steps: list[Any]) -> None:
        """Execute a list of steps in order (continuing a saved cursor when resuming)."""
        execute = self.run.execute_step
        level = Level(size=len(steps))
        start = 0
        resume = self.resume
        if resume is not None:
            depth = len(self.cursor)
            saved = resume[depth]
            start = saved["i"]
            if depth == len(resume) - 1:  # the deepest saved level: resuming ends here
                self.resume = None
            if depth == len(resume) - 1 and saved["done"]:
                start += 1
            else:  # the step at `start` is a container that stopped midway
                level.note = dict(saved["note"])
                self.reentry = dict(saved["note"])
        self.cursor.append(level)
        try:
            for index in range(start, len(steps)):
                if index != start:
                    level.note = {}
                level.index = index
                level.done = False
                await execute(steps[index], self)
        finally:
            self.cursor.pop()
