"""The engine: runs a loaded workflow's steps, records what happened, emits events.

One :class:`Run` per run. Steps execute inside a :class:`Frame` (a state plus local names such
as ``loop`` and ``steps``); the main workflow has one frame and each ``parallel_foreach`` item
gets its own. Step behaviour lives in :mod:`wfkit.core.steps`, found through a registry, so the
loop here knows no step type by name.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wfkit.core.events import (
    ErrorRecord,
    ErrorRecorded,
    Event,
    Message,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
)
from wfkit.core.expressions import Scope, make_scope
from wfkit.core.loader import Body, CompiledUpdate, LoadedWorkflow
from wfkit.core.models import StepBase
from wfkit.core.state import State
from wfkit.core.steps import HANDLERS, Handler, LoopSignal
from wfkit.core.tools import NoTools, ToolProvider
from wfkit.errors import (
    CancelledRunError,
    StepError,
    StepTimeoutError,
    WfkitError,
    WorkflowTimeoutError,
)

Ask = Callable[[str, list[Any] | None, Any], Any]


@dataclass
class RunOptions:
    """How to run: where answers and tools come from, how to sleep, who listens."""

    answers: dict[str, Any] = field(default_factory=dict)
    ask: Ask | None = None
    tools: ToolProvider = field(default_factory=NoTools)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    sinks: list[Callable[[Event], None]] = field(default_factory=list)
    max_output_bytes: int = 1_000_000
    kill_grace_seconds: float = 2.0


@dataclass
class StepRecord:
    """The last execution of a step id, and how many executions it had."""

    id: str
    type: str
    status: str = "running"
    attempts: int = 0
    executions: int = 0
    duration_ms: float = 0.0


@dataclass
class RunOutcome:
    """Everything a finished run reports."""

    run_id: str
    workflow: str
    status: str
    state: dict[str, Any]
    steps: list[StepRecord]
    errors: list[ErrorRecord]
    warnings: list[str]
    messages: list[Message]
    duration_ms: float
    error: dict[str, Any] | None


def truthy(value: Any) -> bool:
    """Condition truth: Python's, except that the strings "false", "no", "0" are false."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "0", "none", "null")
    return bool(value)


@dataclass(frozen=True, slots=True)
class StepPlan:
    """What the engine needs of a step on every execution, looked up once per step."""

    step_id: str
    step_type: str
    where: str
    path: str
    compiled: dict[str, Any]
    condition: Any
    updates: list[CompiledUpdate]
    timeout: float | None
    effectful: bool
    handler: Handler

    @classmethod
    def of(cls, step: StepBase, file: str) -> StepPlan:
        """The plan of ``step`` (reads its pydantic fields and private attributes once)."""
        compiled = step._compiled
        return cls(
            step_id=step.step_id,
            step_type=step.step_type,
            where=f"{file}:{step.line} {step.field_path}",
            path=step.field_path,
            compiled=compiled,
            condition=compiled.get("if_"),
            updates=compiled["updates"],
            timeout=step.timeout,
            effectful=type(step).effectful,
            handler=HANDLERS[type(step)],
        )


class Frame:
    """Where steps execute: a state, local names, and the chain of active steps."""

    __slots__ = ("_scope", "active", "body", "locals", "prefix", "run", "state", "steps_view")

    def __init__(
        self,
        run: Run,
        body: Body,
        state: State,
        prefix: str = "",
        active: tuple[str, ...] = (),
    ) -> None:
        self.run = run
        self.body = body
        self.state = state
        self.prefix = prefix
        self.steps_view: dict[str, dict[str, Any]] = {}
        self.locals: dict[str, Any] = {"steps": self.steps_view}
        self.active: list[str] = list(active)
        self._scope = make_scope(self.locals, state.flat)

    def view(self, extra: Mapping[str, Any] | None = None) -> Scope:
        """What expressions of the current step see (``extra`` names first)."""
        return self._scope.new_child(dict(extra)) if extra else self._scope

    def eval(self, step: StepBase, name: str, extra: Mapping[str, Any] | None = None) -> Any:
        """Evaluate a compiled field of ``step`` in this frame."""
        return self.run.plan(step).compiled[name].render(self.view(extra))

    def apply(self, updates: list[CompiledUpdate], extra: Mapping[str, Any] | None = None) -> None:
        """Perform compiled state writes in order."""
        if not updates:
            return
        scope = self.view(extra)
        for update in updates:
            self.state.write(
                str(update.path.render(scope)),
                update.operation,
                update.value.render(scope),
                update.by.render(scope),
            )

    async def run_steps(self, steps: list[Any]) -> None:
        """Execute a list of steps in order."""
        execute = self.run.execute_step
        for step in steps:
            await execute(step, self)


class Run:
    """One execution of a loaded workflow."""

    def __init__(
        self,
        loaded: LoadedWorkflow,
        run_id: str,
        inputs: dict[str, Any],
        options: RunOptions | None = None,
    ) -> None:
        self.loaded = loaded
        self.run_id = run_id
        self.options = options or RunOptions()
        self.inputs = inputs
        self.records: dict[str, StepRecord] = {}
        self.errors: list[ErrorRecord] = []
        self.warnings: list[str] = []
        self.messages: list[Message] = []
        self._sinks = list(self.options.sinks)
        self._plans: dict[int, StepPlan] = {}

    def plan(self, step: StepBase) -> StepPlan:
        """The cached :class:`StepPlan` of a step of this run's workflow."""
        plan = self._plans.get(id(step))
        if plan is None:  # the loaded workflow keeps every step alive, so ids are stable
            plan = self._plans[id(step)] = StepPlan.of(step, self.loaded.file)
        return plan

    # events ----------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Send an event to every sink."""
        for sink in self._sinks:
            sink(event)

    def warn(self, text: str, step_id: str | None = None) -> None:
        """Record a warning (once per distinct text)."""
        if text in self.warnings:
            return
        self.warnings.append(text)
        self.message("warning", text, step_id)

    def message(self, level: str, text: str, step_id: str | None = None) -> None:
        """Record and emit a message."""
        event = Message(self.run_id, step_id, level, text, time.time())
        self.messages.append(event)
        self.emit(event)

    def record_error(
        self, exc: WfkitError, step_id: str, stack: list[str], retry: int, recovered: bool
    ) -> ErrorRecord:
        """Record one failed attempt."""
        trace = "\n".join(stack)
        if not isinstance(exc, WfkitError) or (
            exc.__cause__ is not None and not isinstance(exc.__cause__, WfkitError)
        ):
            trace += "\n" + "".join(traceback.format_exception(exc))
        record = ErrorRecord(
            step_id=step_id,
            error_type=exc.type_name,
            message=exc.message,
            stack_trace=trace,
            timestamp=time.time(),
            retry_count=retry,
            recovered=recovered,
            details=exc.details(),
        )
        self.errors.append(record)
        self.emit(ErrorRecorded(self.run_id, record))
        return record

    # steps -----------------------------------------------------------------------------

    def _record(self, step_id: str, step_type: str) -> StepRecord:
        record = self.records.get(step_id)
        if record is None:
            record = self.records[step_id] = StepRecord(step_id, step_type)
        return record

    async def execute_step(self, step: StepBase, frame: Frame) -> None:
        """Run one step: condition, handler, state updates, records and events."""
        plan = self.plan(step)
        sid = frame.prefix + plan.step_id
        record = self._record(sid, plan.step_type)
        started = time.perf_counter()
        frame.active.append(f"{plan.where} ({sid})")
        try:
            if plan.condition is not None and not truthy(plan.condition.render(frame.view())):
                self._finish(record, plan, frame, "skipped", started, None)
                return
            record.executions += 1
            record.attempts = 1
            record.status = "running"
            self.emit(
                StepStarted(
                    self.run_id, sid, plan.step_type, plan.path, 1, time.time(), plan.effectful
                )
            )
            result = await self._attempt(plan, frame, step, sid)
            self._finish(record, plan, frame, "succeeded", started, result)
        except LoopSignal:
            self._finish(record, plan, frame, "succeeded", started, None)
            raise
        except WfkitError as exc:
            error = _as_step_error(exc, sid)
            if not error.recorded:  # a nested step's error is recorded once, where it arose
                self.record_error(error, sid, frame.active, 0, recovered=False)
                error.recorded = True
            self._finish(record, plan, frame, "failed", started, None, error.type_name)
            if step.cleanup:
                await self._cleanup(step, frame, error)
            if error is exc:
                raise
            raise error from exc
        except asyncio.CancelledError:
            self._finish(record, plan, frame, "cancelled", started, None)
            raise
        except Exception as exc:  # a bug in wfkit: still recorded against the step
            error = StepError(f"internal error: {type(exc).__name__}: {exc}", step_id=sid)
            error.__cause__ = exc
            self.record_error(error, sid, frame.active, 0, recovered=False)
            error.recorded = True
            self._finish(record, plan, frame, "failed", started, None, error.type_name)
            raise error from exc
        finally:
            frame.active.pop()

    async def _attempt(self, plan: StepPlan, frame: Frame, step: StepBase, sid: str) -> Any:
        """One attempt: the handler (bounded by the step's timeout), then its state updates."""
        try:
            if plan.timeout is not None:
                async with asyncio.timeout(plan.timeout):
                    result = await plan.handler(step, frame)
            else:
                result = await plan.handler(step, frame)
        except TimeoutError:
            raise StepTimeoutError(
                f"step {sid!r} timed out after {plan.timeout} s", step_id=sid
            ) from None
        frame.apply(plan.updates, {"result": result})
        return result

    async def _cleanup(self, step: StepBase, frame: Frame, error: StepError) -> None:
        """Run a failed step's cleanup; a failure there is recorded, never raised."""
        saved = frame.locals.get("error")
        frame.locals["error"] = error.details()
        try:
            await frame.run_steps(step.cleanup)
        except StepError:
            pass  # already recorded by execute_step; the original error wins
        finally:
            if saved is None:
                frame.locals.pop("error", None)
            else:
                frame.locals["error"] = saved

    def _finish(
        self,
        record: StepRecord,
        plan: StepPlan,
        frame: Frame,
        status: str,
        started: float,
        output: Any,
        error_type: str | None = None,
    ) -> None:
        duration = (time.perf_counter() - started) * 1000
        record.status = status
        record.duration_ms = duration
        frame.steps_view[plan.step_id] = {"status": status, "output": output}
        self.emit(
            StepFinished(
                self.run_id,
                record.id,
                record.type,
                status,
                record.attempts,
                duration,
                time.time(),
                error_type,
                plan.effectful,
            )
        )

    # the run ---------------------------------------------------------------------------

    async def execute(self) -> RunOutcome:
        """Run the workflow to the end and report."""
        loaded = self.loaded
        started_wall = time.time()
        started = time.perf_counter()
        self.emit(
            RunStarted(
                self.run_id, loaded.name, loaded.file, loaded.digest, self.inputs, started_wall
            )
        )
        status = "succeeded"
        error: StepError | None = None
        state: State | None = None
        try:
            state = State(loaded.main.state, self.inputs)
            frame = Frame(self, loaded.main, state)
            try:
                async with asyncio.timeout(loaded.workflow.config.timeout):
                    await frame.run_steps(loaded.main.steps)
            except TimeoutError:
                status = "timed_out"
                error = WorkflowTimeoutError(
                    f"the run exceeded its timeout of {loaded.workflow.config.timeout} s",
                    step_id=frame.active[-1] if frame.active else None,
                )
                self.record_error(error, "workflow", frame.active, 0, recovered=False)
            except asyncio.CancelledError:
                status = "cancelled"
                error = CancelledRunError("the run was cancelled")
            except StepError as exc:
                status, error = "failed", exc
            status, error = await self._finally(frame, status, error)
        except StepError as exc:  # the initial computed fields failed
            status, error = "failed", exc
            self.record_error(exc, "workflow", [], 0, recovered=False)
        finally:
            await self.options.tools.aclose()
        snapshot = (
            state.snapshot()
            if state is not None
            else {"inputs": self.inputs, "raw": {}, "computed": {}}
        )
        duration = (time.perf_counter() - started) * 1000
        details = error.details() if error is not None else None
        self.emit(RunFinished(self.run_id, status, snapshot, duration, time.time(), details))
        return RunOutcome(
            run_id=self.run_id,
            workflow=loaded.name,
            status=status,
            state=snapshot,
            steps=list(self.records.values()),
            errors=list(self.errors),
            warnings=list(self.warnings),
            messages=list(self.messages),
            duration_ms=duration,
            error=details,
        )

    async def _finally(
        self, frame: Frame, status: str, error: StepError | None
    ) -> tuple[str, StepError | None]:
        steps = self.loaded.main.finally_steps
        if not steps:
            return status, error
        frame.locals["workflow"] = {
            "status": status,
            "run_id": self.run_id,
            "name": self.loaded.name,
            "error": error.details() if error is not None else None,
        }
        try:
            await frame.run_steps(steps)
        except StepError as exc:
            if error is None:  # a failing finally fails a run that had not failed
                return "failed", exc
        return status, error


def _as_step_error(exc: WfkitError, step_id: str) -> StepError:
    if isinstance(exc, StepError):
        if exc.step_id is None:
            exc.step_id = step_id
        return exc
    return StepError(exc.message, step_id=step_id, cause=exc)
