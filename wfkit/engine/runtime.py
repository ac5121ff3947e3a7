"""The engine: runs a loaded workflow's steps, records what happened, emits events.

One :class:`Run` per run. Steps execute inside a :class:`Frame` (a state plus local names such
as ``loop`` and ``steps``); the main workflow has one frame and each ``parallel_foreach`` item
gets its own. Step behaviour lives in :mod:`wfkit.engine.steps`, found through a registry, so the
loop here knows no step type by name.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from dataclasses import dataclass, replace
from typing import Any

import wfkit.engine.steps  # noqa: F401  (registers every step type's handler)
from wfkit.engine.breakers import Breaker, Breakers
from wfkit.engine.context import RunOptions
from wfkit.engine.events import (
    BreakerChanged,
    Checkpoint,
    ErrorRecord,
    ErrorRecorded,
    ErrorsRecovered,
    Event,
    Message,
    RunFinished,
    RunStarted,
    ToolServerLog,
    TracesCollected,
)
from wfkit.engine.frame import Frame, FrameCheckpoint, StepRecord
from wfkit.engine.inject import InjectingTools, Injector
from wfkit.engine.interrupts import deadline_in, guarded
from wfkit.engine.memlimit import CHECKPOINT_COPIES, rss_bytes
from wfkit.engine.secrets import Masker
from wfkit.engine.state import SizeLimits, State
from wfkit.engine.step_runner import StepRunner
from wfkit.engine.steps.workflow import finish
from wfkit.engine.tracing import DecisionLog, Tracer
from wfkit.errors import (
    CancelledRunError,
    InputRequiredError,
    MemoryLimitError,
    StepError,
    WfkitError,
    WorkflowTimeoutError,
)
from wfkit.language.budget import memory_allowance
from wfkit.language.expressions import compile_expr, make_scope
from wfkit.language.fingerprint import step_structure
from wfkit.language.loader import LoadedWorkflow
from wfkit.language.models import StepBase, TraceConfig
from wfkit.language.plan import StepPlan
from wfkit.language.stateplan import StatePlan

YIELD_SECONDS = 0.01
"""Steps that never wait (state updates, loops of them) still give the event loop a turn every
10 ms, so a timeout or a signal (SIGINT/SIGTERM) is never starved by a busy run."""


def _tracer(config: bool | TraceConfig, forced: bool) -> Tracer | None:
    if isinstance(config, TraceConfig):
        return Tracer(config) if config.enabled or forced else None
    return Tracer(TraceConfig()) if config or forced else None


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
    errors_dropped: int = 0
    outputs: dict[str, Any] | None = None  # its ``outputs:`` when it succeeded


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
        self.errors_dropped = 0
        self._sinks = list(self.options.sinks)
        self.seed = self.options.seed or run_id
        self._yielded = time.perf_counter()
        self.tracer = _tracer(loaded.workflow.config.trace, self.options.trace)
        self._stepping: str | None = None  # the step last started (for a checkpoint refusal)
        self._inherited = 0  # errors carried over from the segments before a resume
        self.decisions = DecisionLog()
        self.injector = (
            Injector(self.options.faults, self.options.inject_seed or self.seed)
            if self.options.faults
            else None
        )
        if self.injector is not None and any(f.tool for f in self.options.faults):
            tools = InjectingTools(self.options.tools, self.injector, self.options.sleep)
            self.options = replace(self.options, tools=tools)
        workflow = loaded.workflow
        self.masker = Masker(
            {
                **{
                    f"inputs.{name}": str(inputs[name])
                    for name, spec in workflow.inputs.items()
                    if spec.secret and inputs.get(name) is not None
                },
                **{f"secrets.{name}": value for name, value in self.options.secrets.items()},
                **{f"parent.{k}": v for k, v in self.options.inherited_secrets.items()},
            }
        )
        #: names expressions read beside state: ``secrets.NAME`` and the declared ``env.NAME``
        self.names: dict[str, Any] = {
            "secrets": dict(self.options.secrets),
            "env": dict(self.options.env_file),
        }
        self.env: dict[str, str] = dict(self.options.env_file)
        self.runner = StepRunner(self)
        self.execute_step = self.runner.execute_step
        self.breakers = Breakers(
            loaded.workflow.config.circuit_breakers,
            self.options.breaker_state,
            self.options.clock,
            self._breaker_changed,
        )

    def _breaker_changed(self, breaker: Breaker) -> None:
        self.emit(
            BreakerChanged(
                self.run_id,
                self.loaded.name,
                breaker.name,
                breaker.state,
                breaker.failures,
                breaker.opened_at,
            )
        )

    def plan(self, step: StepBase) -> StepPlan:
        """The compiled :class:`StepPlan` of a step of this run's workflow."""
        return self.loaded.plans[id(step)]

    # events ----------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Send an event to every sink, its secrets masked first (a checkpoint's, as
        references a resume restores)."""
        if self.masker:
            if isinstance(event, Checkpoint):
                event = self.masker.value(event, self.masker.referenced)
            else:
                event = self.masker.value(event)
        for sink in self._sinks:
            sink(event)

    def render_env(self, state: State) -> State:
        """The workflow's ``env:`` (templates over inputs, secrets, the ``env_file`` and the
        initial state), after the ``env_file``'s variables; expressions read it as ``env``."""
        declared = self.loaded.workflow.env
        if not declared and not self.env:
            return state
        scope = make_scope(self.names, state.flat)
        for name, template in declared.items():
            try:
                self.env[name] = str(compile_expr(template).render(scope))
            except WfkitError as exc:
                raise StepError(f"env {name}: {exc.message}", step_id="workflow") from exc
        self.names["env"] = dict(self.env)
        use_env = getattr(self.options.tools, "use_env", None)
        if use_env is not None:  # MCP servers get the workflow's environment too
            use_env(self.env)
        return state

    def new_state(self, plan: StatePlan, inputs: dict[str, Any], **tiers: Any) -> State:
        """A state with the workflow's size limits, warning through this run (``raw`` and
        ``computed`` given: a copy of another state's)."""
        config = self.loaded.workflow.config
        return State(
            plan,
            inputs,
            **tiers,
            limits=SizeLimits(config.max_state_bytes, config.state_warn_bytes),
            on_warning=self.warn,
            on_transform=self.tracer.transform if self.tracer else None,
        )

    async def pause_point(self) -> None:
        """Give the event loop a turn when the run has not waited for ``YIELD_SECONDS``."""
        now = time.perf_counter()
        if now - self._yielded >= YIELD_SECONDS:
            self._yielded = now
            await asyncio.sleep(0)

    def check_memory(self, step_id: str | None, upcoming: int = 0) -> None:
        """Before every step and every checkpoint (about 12 µs, only when a limit is set):
        fail the run when the engine's RSS, with the ``upcoming`` bytes it is about to
        allocate, would exceed ``max_memory_mb``; else give the step's expressions what is
        left as their memory allowance."""
        limit = self.loaded.workflow.config.max_memory_mb
        if limit is None:
            return
        if step_id is not None:
            self._stepping = step_id
        rss = rss_bytes()
        if rss + upcoming > limit * 1024 * 1024:
            more = f" (and would take {upcoming // (1024 * 1024)} MiB more)" if upcoming else ""
            raise MemoryLimitError(
                f"the engine uses {rss // (1024 * 1024)} MiB{more}, over max_memory_mb={limit}",
                step_id=step_id,
            )
        memory_allowance(limit * 1024 * 1024 - rss)

    def continue_from(
        self, records: list[StepRecord], errors: list[ErrorRecord], messages: list[Message]
    ) -> None:
        """Carry an interrupted run's history into this (resumed) run."""
        self.records = {r.id: r for r in records}
        self.errors = list(errors)
        self._inherited = len(self.errors)
        self.messages = list(messages)

    def checkpoint(self, frame: Frame, durable: bool = False) -> None:
        """Store where ``frame`` is and what it changed (``durable``: committed at once);
        under ``max_memory_mb``, refused before encoding when its copies would cross it."""
        upcoming = CHECKPOINT_COPIES * frame.state.changed_bytes()
        if upcoming:
            self.check_memory(self._stepping, upcoming)
        cursor, changes = frame.checkpoint()
        self.emit(Checkpoint(self.run_id, frame.key, cursor, changes, durable))

    def load_frame(self, key: str) -> FrameCheckpoint | None:
        """A stored frame to continue (resumed runs only), its secret references restored
        from this run's secrets."""
        if self.options.resume is None:
            return None
        saved = self.options.resume(key)
        return self.masker.restore(saved) if saved is not None else None

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

    async def _release(self) -> None:
        """Close the run's tools, here and wherever its items ran; keep their logs."""
        await self.options.tools.aclose()
        if self.options.executor is not None:
            await self.options.executor.close_run(self)
        self._record_tool_logs()

    def _record_tool_logs(self) -> None:
        """Keep what the tools' servers wrote to stderr (a provider may offer ``logs()``)."""
        logs = getattr(self.options.tools, "logs", None)
        if logs is None:
            return
        for server, text in logs().items():
            self.emit(ToolServerLog(self.run_id, server, text, time.time()))

    def record_error(
        self,
        exc: WfkitError,
        step_id: str,
        stack: list[str],
        retry: int,
        recovered: bool = False,
        during: str | None = None,
        frame: str | None = None,
    ) -> int:
        """Record one failed attempt; return its index in the run's error history."""
        trace = "\n".join(stack)
        if exc.__cause__ is not None and not isinstance(exc.__cause__, WfkitError):
            trace += "\n" + "".join(traceback.format_exception(exc))
        details = exc.details()
        if exc.injected:
            details["injected"] = True
        if during is not None:
            details["during"] = during
        record = ErrorRecord(
            step_id=step_id,
            error_type=exc.type_name,
            message=exc.message,
            stack_trace=trace,
            timestamp=time.time(),
            retry_count=retry,
            recovered=recovered,
            details=details,
        )
        index = self.keep_error(record, frame)
        if index >= 0 and isinstance(exc, StepError):
            exc.record_indexes.append(index)
        return index

    def keep_error(self, record: ErrorRecord, frame: str | None = None) -> int:
        """Add a failed attempt to the (bounded) history; its index, or -1 when dropped."""
        if len(self.errors) >= self.loaded.workflow.config.max_error_records:
            self.errors_dropped += 1  # the history is bounded; the first errors are kept
            return -1
        index = len(self.errors)
        self.errors.append(record)
        self.emit(ErrorRecorded(self.run_id, index, record, frame))
        return index

    def mark_recovered(self, error: StepError) -> None:
        """The error (and the nested errors that caused it) did not fail the run."""
        indexes: list[int] = []
        current: StepError | None = error
        while current is not None:
            indexes.extend(i for i in current.record_indexes if not self.errors[i].recovered)
            current = current.cause if isinstance(current.cause, StepError) else None
        for i in indexes:
            self.errors[i] = replace(self.errors[i], recovered=True)
        if indexes:
            self.emit(ErrorsRecovered(self.run_id, tuple(indexes)))

    def _ended(self, status: str, started: float) -> float:
        """The run's duration (a resumed run's: the total of its segments, said in a message),
        after marking what its earlier segments' failures came to."""
        self._recover_inherited(status)
        segment = (time.perf_counter() - started) * 1000
        duration = self.options.prior_ms + segment
        if self.options.prior_ms:
            self.message(
                "info",
                f"this segment took {segment:,.0f} ms; the run {duration:,.0f} ms in all "
                f"({self.options.prior_ms:,.0f} ms before it)",
            )
        return duration

    def _recover_inherited(self, status: str) -> None:
        """Failures of earlier segments that this one got past (the run succeeded, or their
        step succeeded now) did not fail the run: a waiting question answered, a failed step
        that succeeded on resume."""
        indexes = [
            i
            for i, error in enumerate(self.errors[: self._inherited])
            if not error.recovered
            and (
                status == "succeeded"
                or (
                    (record := self.records.get(error.step_id)) is not None
                    and record.status == "succeeded"
                )
            )
        ]
        for i in indexes:
            self.errors[i] = replace(self.errors[i], recovered=True)
        if indexes:
            self.emit(ErrorsRecovered(self.run_id, tuple(indexes)))

    # the run ---------------------------------------------------------------------------

    async def execute(self) -> RunOutcome:
        """Run the workflow to the end and report."""
        loaded = self.loaded
        started_wall = time.time()
        started = time.perf_counter()
        resumed = self.options.resume is not None
        self.emit(
            RunStarted(
                self.run_id,
                loaded.name,
                loaded.source_path,
                loaded.digest,
                self.inputs,
                started_wall,
                resumed,
                step_structure(loaded),
                self.options.parent_run_id,
            )
        )
        status, outputs = "succeeded", None
        error: StepError | None = None
        state: State | None = None
        try:
            state = self.render_env(self.new_state(loaded.main.state, self.inputs))
            frame = Frame(self, loaded.main, state)
            saved = self.load_frame(frame.key)
            if saved is not None:
                frame.restore(saved)
                state.refresh_inputs(self.options.changed_inputs)
            else:
                for name, value in self.options.initial_raw.items():
                    state.write(f"raw.{name}", "set", value)
            try:
                async with asyncio.timeout(loaded.workflow.config.timeout):
                    with deadline_in(loaded.workflow.config.timeout):
                        await guarded(frame.run_steps(loaded.main.steps))
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
            except InputRequiredError as exc:
                status, error = "waiting", exc
            except StepError as exc:
                status, error = "failed", exc
            outputs, status, error = await finish(self, frame, state, status, error)
        except StepError as exc:  # the initial computed fields failed
            status, error = "failed", exc
            self.record_error(exc, "workflow", [], 0, recovered=False)
        finally:
            await self._release()
        snapshot = (
            state.snapshot()
            if state is not None
            else {"inputs": self.inputs, "raw": {}, "computed": {}}
        )
        duration = self._ended(status, started)
        details = error.details() if error is not None else None
        self._emit_traces()
        # a run stopped by max_memory_mb keeps its state in its checkpoint only: encoding it
        # once more for the record would take as much memory again as the state itself
        final = None if isinstance(error, MemoryLimitError) else snapshot
        self.emit(
            RunFinished(
                self.run_id, status, final, duration, time.time(), details, self.errors_dropped
            )
        )
        return self._masked(
            RunOutcome(
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
                errors_dropped=self.errors_dropped,
                outputs=outputs,
            )
        )

    def _emit_traces(self) -> None:
        if self.tracer is not None:
            self.emit(TracesCollected(self.run_id, list(self.tracer.records), self.tracer.dropped))
        if self.decisions.records:
            self.emit(TracesCollected(self.run_id, self.decisions.stored(), 0))

    def _masked(self, outcome: RunOutcome) -> RunOutcome:
        """The outcome the caller shows or returns: its secrets masked too."""
        masked: RunOutcome = self.masker.value(outcome)
        return masked

    async def run_finally(
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
        frame.during = "finally"
        try:
            failure = await frame.run_each(steps)  # every finally step runs
        finally:
            frame.during = None
        if failure is not None and error is None:  # a failing finally fails a run that had not
            return "failed", failure
        return status, error
