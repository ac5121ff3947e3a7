"""Executing one step under its error policy: attempts, retries, breakers, fallbacks, cleanup.

Retries go through stamina with a backoff hook: stamina decides whether another attempt
follows (and fires its hooks), the policy's deterministic schedule decides how long to wait,
and the wait goes through the run's clock so tests can skip it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wfkit.engine.events import RetryScheduled, StepFinished, StepStarted
from wfkit.engine.frame import Frame, StepRecord
from wfkit.engine.inject import InjectingTools, make_error
from wfkit.engine.interrupts import deadline_in, evaluated, guarded
from wfkit.engine.state import to_state_value
from wfkit.engine.steps.registry import HANDLERS, LoopSignal
from wfkit.errors import (
    AgentTimeoutError,
    CancelledRunError,
    CircuitOpenError,
    ExpressionError,
    InputRequiredError,
    StepError,
    StepTimeoutError,
    WfkitError,
)
from wfkit.language.models import StepBase
from wfkit.language.plan import StepPlan
from wfkit.language.policy import RetryPolicy, retry_verdict

if TYPE_CHECKING:
    from wfkit.engine.context import RunContext


_ATTEMPTS = "attempts:"
"""Frame memory key prefix: attempts of a retrying step, checkpointed before each wait."""


@dataclass(slots=True)
class Attempts:
    """Attempts of one execution of a step."""

    count: int = 0
    injected: bool = False  # an injected fault hit one of them
    last_error: dict[str, Any] | None = None  # the previous attempt's, as the next one sees it


class StepRunner:
    """Runs steps for one :class:`~wfkit.engine.runtime.Run`."""

    def __init__(self, run: RunContext) -> None:
        self.run = run

    def _record(self, step_id: str, step_type: str) -> StepRecord:
        record = self.run.records.get(step_id)
        if record is None:
            record = self.run.records[step_id] = StepRecord(step_id, step_type)
        return record

    async def execute_step(self, step: StepBase, frame: Frame) -> None:
        """Run one step: condition, attempts under its error policy, records and events."""
        plan = self.run.plan(step)
        sid = frame.prefix + plan.step_id
        record = self._record(sid, plan.step_type)
        tries = Attempts()  # per execution: parallel items share their steps' records
        started = time.perf_counter()
        frame.active.append(f"{plan.where} ({sid})")
        reentered = frame.reentry is not None  # a resume continues this container midway
        try:
            await self.run.pause_point()
            self.run.check_memory(sid)
            if self.run.tracer is not None:
                self.run.tracer.step_id = sid
            if (
                not reentered
                and plan.condition is not None
                and not await self._condition(plan, frame, sid)
            ):
                self._finish(record, plan, frame, "skipped", started, None, None, completed=True)
                return
            if not reentered or record.executions == 0:
                record.executions += 1
            record.status = "running"
            if reentered:  # attempts made before a kill count against the retry budget
                tries.count = frame.memory.get(_ATTEMPTS + sid, 0)
            status, result = await self._run_policy(plan, step, frame, tries, sid)
            if frame.reentry is not None:  # the step kept no notes: nothing to continue
                frame.reentry = frame.resume = None
            frame.forget(_ATTEMPTS + sid)
            self._finish(record, plan, frame, status, started, result, tries, completed=True)
        except LoopSignal:
            self._finish(record, plan, frame, "succeeded", started, None, tries)
            raise
        except StepError as error:
            if _ATTEMPTS + sid in frame.memory:  # a resume of a failed step gets a new budget
                frame.forget(_ATTEMPTS + sid)
                if frame.needs_checkpoint():
                    self.run.checkpoint(frame)
            waits = isinstance(error, InputRequiredError)  # a question, not a failure
            self._finish(
                record,
                plan,
                frame,
                "waiting" if waits else "failed",
                started,
                None,
                tries,
                error.type_name,
                error.message,
            )
            if step.cleanup:
                await self._cleanup(step, frame, error)
            raise
        except asyncio.CancelledError:
            self._finish(record, plan, frame, "cancelled", started, None, tries)
            if step.cleanup:  # a cancelled step (fail_fast, Ctrl-C) still cleans up
                await self._cleanup(step, frame, CancelledRunError("cancelled", step_id=sid))
            raise
        finally:
            frame.active.pop()

    async def _condition(self, plan: StepPlan, frame: Frame, sid: str) -> bool:
        """The step's ``if``; an error in it is recorded against the step, where it stands."""
        assert plan.condition is not None
        try:
            return await evaluated(
                functools.partial(frame.test, plan.condition, plan.step_id, "if")
            )
        except ExpressionError as error:
            located(error, plan, sid)
            self.run.record_error(error, sid, frame.active, 0, frame=frame.key)
            error.recorded = True
            raise

    async def _run_policy(
        self, plan: StepPlan, step: StepBase, frame: Frame, tries: Attempts, sid: str
    ) -> tuple[str, Any]:
        """Attempt the step as its policy says; return (status, result) or raise the error."""
        policy = plan.policy
        try:
            if policy.retry is None:
                return "succeeded", await self._attempt_once(plan, step, frame, tries, sid)
            return "succeeded", await self._retrying(plan, step, frame, tries, sid)
        except StepError as error:
            if not policy.recovers or error.fatal:
                raise
            self.run.mark_recovered(error)
            self.run.decisions.recovered(
                sid, policy.strategy, error.type_name, policy.fallback is not None
            )
            if policy.fallback is None:  # continue without fallback_value: no result
                return "failed", None
            scope = frame.view({"error": error.details()})
            result = to_state_value(policy.fallback.render(scope), f"{sid}.fallback_value")
            frame.apply(plan.updates, {"result": result})
            return "failed", result

    async def _retrying(
        self, plan: StepPlan, step: StepBase, frame: Frame, tries: Attempts, sid: str
    ) -> Any:
        """Attempts through stamina; waits come from the policy's deterministic schedule."""
        import stamina

        _quiet_stamina()
        retry = plan.policy.retry
        assert retry is not None
        wait_ms = 0.0
        failed: list[StepError] = []

        def decide(exc: BaseException) -> bool | float:
            nonlocal wait_ms
            if not isinstance(exc, StepError):
                return False  # cancellation, loop signals and bugs are never retried
            failed.append(exc)
            retry_on = _retry_on_text(retry)

            def verdict(retried: bool, reason: str, delay_ms: float | None) -> None:
                _record_retry(
                    self.run, sid, tries.count, exc.type_name, retried, reason, delay_ms, retry_on
                )

            if tries.count >= retry.attempts:
                verdict(False, f"all {retry.attempts} attempts used", None)
                return False
            scope = frame.view({"error": exc.details()})
            try:
                retried, reason = retry_verdict(exc, retry, scope)
            except StepError as problem:  # a broken retry_on: record it, stop retrying
                self.run.record_error(
                    problem, sid, frame.active, tries.count, during="retry_on", frame=frame.key
                )
                return False
            if not retried:
                verdict(False, reason, None)
                return False
            wait_ms = retry.delay_ms_for(tries.count, self.run.seed, sid)
            verdict(True, reason, wait_ms)
            if frame.needs_checkpoint():  # the attempts made survive a kill during the wait
                frame.remember(_ATTEMPTS + sid, tries.count)
                self.run.checkpoint(frame)
            self.run.emit(
                RetryScheduled(
                    self.run.run_id,
                    sid,
                    tries.count,
                    wait_ms,
                    exc.type_name,
                    time.time(),
                    frame.key,
                    exc.message,
                )
            )
            return 0.0  # retry now: the wait happens through the run's clock, below

        try:
            async for attempt in stamina.retry_context(
                on=decide,
                attempts=max(1, retry.attempts - tries.count),
                timeout=None,
                wait_initial=0.0,
                wait_max=0.0,
                wait_jitter=0.0,
            ):
                with attempt:
                    if wait_ms:
                        await self.run.options.sleep(wait_ms / 1000)
                        wait_ms = 0.0
                    result = await self._attempt_once(plan, step, frame, tries, sid)
                    for error in failed:  # earlier attempts did not fail the run
                        self.run.mark_recovered(error)
                    return result
        except StepError as final:  # every attempt's entry belongs to the final failure
            for earlier in failed:
                final.record_indexes.extend(
                    i for i in earlier.record_indexes if i not in final.record_indexes
                )
            raise
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    async def _attempt_once(
        self, plan: StepPlan, step: StepBase, frame: Frame, tries: Attempts, sid: str
    ) -> Any:
        """One attempt: breaker, handler (bounded by the step's timeout), state updates.

        A failure is recorded (once: a nested step's error is recorded where it arose),
        counted by the breaker, and followed by the step's ``error_state_update``.
        """
        tries.count += 1
        frame.attempt = tries.count
        frame.previous_error = tries.last_error
        self.run.emit(
            StepStarted(
                self.run.run_id,
                sid,
                plan.step_type,
                plan.path,
                tries.count,
                time.time(),
                plan.effectful,
                frame.key,
                frame.item,
            )
        )
        breaker = plan.breaker
        try:
            if breaker is not None:
                self.run.breakers.before_call(breaker, sid)
            try:
                if plan.timeout is not None:
                    async with asyncio.timeout(plan.timeout):
                        with deadline_in(plan.timeout):
                            result = await guarded(self._handle(plan, step, frame, tries, sid))
                else:
                    result = await guarded(self._handle(plan, step, frame, tries, sid))
            except TimeoutError:
                timed_out = (
                    AgentTimeoutError if plan.step_type == "agent_task" else StepTimeoutError
                )
                raise timed_out(
                    f"step {sid!r} timed out after {plan.timeout} s", step_id=sid
                ) from None
            await evaluated(functools.partial(frame.apply, plan.updates, {"result": result}))
        except WfkitError as exc:
            error = _as_step_error(exc, sid)
            if isinstance(error, ExpressionError):
                located(error, plan, sid)
            error.attempt = tries.count
            tries.last_error = error.feedback()
            if breaker is not None and not isinstance(error, CircuitOpenError):
                self.run.breakers.record(breaker, ok=False)
            if breaker is not None:  # why a step failed or was refused: its breaker then
                state = self.run.breakers.items[breaker]
                self.run.decisions.breaker(sid, breaker, state.state, state.failures)
            if not error.recorded:
                self.run.record_error(
                    error, sid, frame.active, tries.count - 1, during=frame.during, frame=frame.key
                )
                error.recorded = True
            await self._error_updates(plan, frame, error, sid, tries.count)
            if error is exc:
                raise
            raise error from exc
        except (LoopSignal, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug in wfkit: still recorded against the step
            error = StepError(f"internal error: {type(exc).__name__}: {exc}", step_id=sid)
            error.__cause__ = exc
            self.run.record_error(error, sid, frame.active, tries.count - 1, frame=frame.key)
            error.recorded = True
            raise error from exc
        if breaker is not None:
            self.run.breakers.record(breaker, ok=True)
        return result

    async def _handle(
        self, plan: StepPlan, step: StepBase, frame: Frame, tries: Attempts, sid: str
    ) -> Any:
        """The step's handler, after the injected fault that hits this attempt (if any)."""
        injector = self.run.injector
        fault = injector.for_step(sid) if injector is not None else None
        if fault is not None:
            tries.injected = True
            self.run.decisions.injected(sid, tries.count, fault.text)
            if fault.latency_s:
                await self.run.options.sleep(fault.latency_s)
            if fault.error is not None or fault.exit_code is not None:
                raise make_error(fault, sid, sid)
        tools = self.run.options.tools
        hits = tools.hits if isinstance(tools, InjectingTools) else 0
        try:
            return await HANDLERS[plan.model](step, frame)
        finally:  # a tool= fault hit a call of this attempt
            if isinstance(tools, InjectingTools) and tools.hits != hits:
                tries.injected = True
                self.run.decisions.injected(sid, tries.count, "tool fault")

    async def _error_updates(
        self, plan: StepPlan, frame: Frame, error: StepError, sid: str, attempt: int
    ) -> None:
        """``error_state_update`` and ``error_handler.error_state_path`` after a failed attempt.

        A failure here is recorded and never replaces the step's own error.
        """
        updates = plan.compiled["error_updates"]
        path = plan.policy.error_state_path
        if not updates and path is None:
            return
        details = {**error.details(), "attempt": attempt}
        try:
            frame.apply(updates, {"error": details})
            if path is not None:
                frame.state.write(path, "set", details)
        except StepError as problem:
            self.run.record_error(
                problem,
                sid,
                frame.active,
                attempt - 1,
                during="error_state_update",
                frame=frame.key,
            )

    async def _cleanup(self, step: StepBase, frame: Frame, error: StepError) -> None:
        """Run a failed step's cleanup; a failure there is recorded, never raised."""
        saved, saved_during = frame.locals.get("error"), frame.during
        frame.locals["error"] = error.details()
        frame.during = "cleanup"
        try:
            await frame.run_each(step.cleanup)  # failures recorded; the original error wins
        finally:
            frame.during = saved_during
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
        tries: Attempts | None,
        error_type: str | None = None,
        error_message: str | None = None,
        completed: bool = False,
    ) -> None:
        """Record the step's outcome; a completed step is checkpointed before it is reported
        finished, so whatever commits the report also commits the checkpoint."""
        duration = (time.perf_counter() - started) * 1000
        record.status = status
        record.statuses[status] = record.statuses.get(status, 0) + 1
        record.duration_ms = duration
        if tries is not None:  # a skipped step keeps its last execution's attempts
            record.attempts = tries.count
            record.injected = record.injected or tries.injected
        if plan.step_type == "parallel" and isinstance(output, dict):
            output_list: Any = list(output.values())
        else:
            output_list = output
        if plan.step_type in ("parallel_foreach", "parallel") and isinstance(output_list, list):
            items: dict[str, int] = {}
            for item in output_list:
                if isinstance(item, dict) and "status" in item:
                    items[str(item["status"])] = items.get(str(item["status"]), 0) + 1
            record.items = items
        elif plan.step_type == "parallel_foreach" and isinstance(output, dict):
            counts = {k: output.get(k) for k in ("succeeded", "failed")}  # a lean fan-out's
            record.items = {k: v for k, v in counts.items() if isinstance(v, int) and v}
        frame.record_step(plan.step_id, status, output)
        if completed and frame.needs_checkpoint(plan.effectful):
            frame.cursor[-1].done = True
            self.run.checkpoint(frame)
        # what a container did, from the notes it keeps in its cursor level (set before its
        # children run, so a failing branch still counts as taken): for test coverage
        note = frame.cursor[-1].note if frame.cursor else {}
        outcome = note.get("branch")
        if outcome is None and ("iteration" in note or "index" in note):
            outcome = "entered"
        elif outcome is None and isinstance(output, dict) and output.get("iterations") == 0:
            outcome = "not entered"
        self.run.emit(
            StepFinished(
                self.run.run_id,
                record.id,
                record.type,
                status,
                tries.count if tries is not None else 0,
                duration,
                time.time(),
                error_type,
                plan.effectful,
                outcome,
                frame.item,
                tries.injected if tries is not None else False,
                frame.key,
                error_message,
            )
        )


def _record_retry(
    run: RunContext,
    step_id: str,
    attempt: int,
    error_type: str,
    retried: bool,
    reason: str,
    delay_ms: float | None,
    retry_on: str | None,
) -> None:
    """One retry verdict, recorded once: in the run's decisions (``why``) and, when the run
    is traced, in its trace."""
    run.decisions.retry(step_id, attempt, error_type, retried, reason, delay_ms, retry_on)
    if run.tracer is not None:
        run.tracer.retry(step_id, attempt, error_type, retried, reason, delay_ms)


def _retry_on_text(retry: RetryPolicy) -> str | None:
    """A step's ``retry_on`` as written (a list of types or an expression)."""
    if retry.retry_on_types is not None:
        return ", ".join(t.__name__ for t in retry.retry_on_types)
    if retry.retry_on_expr is not None:
        return retry.retry_on_expr.source
    return None


@functools.cache
def _quiet_stamina() -> None:
    """Retries are reported as engine events; stamina's default hooks would log at WARNING
    and write to the global Prometheus registry."""
    import stamina.instrumentation

    stamina.instrumentation.set_on_retry_hooks([])


def located(error: ExpressionError, plan: StepPlan, step_id: str) -> None:
    """An expression's error says where the expression is: the file, line and field of its
    step (as load errors do), once."""
    if error.step_id is None:
        error.step_id = step_id
    where = f" (at {plan.where})"
    if not error.message.endswith(where):
        error.message += where
        error.args = (error.message,)


def _as_step_error(exc: WfkitError, step_id: str) -> StepError:
    if isinstance(exc, StepError):
        if exc.step_id is None:
            exc.step_id = step_id
        return exc
    return StepError(exc.message, step_id=step_id, cause=exc)
