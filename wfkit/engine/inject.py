"""Fault injection: ``--inject 'step=ID|tool=NAME error=TYPE|exit_code=N|latency=D rate=P'``.

A fault applies to every attempt of the step (or every call of the tool) it names, with
probability ``rate``. Whether attempt n of a target is hit is drawn from a generator seeded by
``(seed, fault, target, n)``, so a run with the same ``--inject-seed`` is hit at the same
attempts. Injected errors carry ``injected: true`` in their details, hence in the run's
error records, and the step records of the executions they hit are marked ``injected``.
"""

from __future__ import annotations

import hashlib
import inspect
import random
from dataclasses import dataclass
from typing import Any

from wfkit.errors import ERROR_TYPES, InputError, ShellCommandError, StepError, ToolError
from wfkit.language.durations import parse_duration

_KEYS = ("step", "tool", "error", "exit_code", "latency", "rate")


@dataclass(frozen=True)
class Fault:
    """One ``--inject`` rule."""

    text: str
    step: str | None = None
    tool: str | None = None
    error: str | None = None
    exit_code: int | None = None
    latency_s: float = 0.0
    rate: float = 1.0


def parse_fault(text: str) -> Fault:
    """A fault from its ``key=value`` words; InputError naming the bad word otherwise."""
    values: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if not sep or key not in _KEYS or not value:
            raise InputError(
                f"--inject {text!r}: {word!r} is not one of {', '.join(k + '=' for k in _KEYS)}"
            )
        if key in values:
            raise InputError(f"--inject {text!r}: {key}= is given twice")
        values[key] = value
    if ("step" in values) == ("tool" in values):
        raise InputError(f"--inject {text!r}: give step=ID or tool=NAME (one of them)")
    if not {"error", "exit_code", "latency"} & set(values):
        raise InputError(f"--inject {text!r}: give error=TYPE, exit_code=N or latency=D")
    if "error" in values and "exit_code" in values:
        raise InputError(f"--inject {text!r}: give error= or exit_code=, not both")
    error = values.get("error")
    if error is not None:
        kind = ERROR_TYPES.get(error)
        if kind is None or not issubclass(kind, StepError):
            names = ", ".join(n for n, t in ERROR_TYPES.items() if issubclass(t, StepError))
            raise InputError(f"--inject {text!r}: error={error} is not a step error ({names})")
    if "exit_code" in values and "tool" in values:
        raise InputError(f"--inject {text!r}: exit_code= applies to a step, not a tool")
    try:
        exit_code = int(values["exit_code"]) if "exit_code" in values else None
        latency = parse_duration(values["latency"]) if "latency" in values else 0.0
        rate = float(values.get("rate", "1"))
    except ValueError as exc:
        raise InputError(f"--inject {text!r}: {exc}") from None
    if not 0.0 <= rate <= 1.0:
        raise InputError(f"--inject {text!r}: rate={rate} is not between 0 and 1")
    return Fault(text, values.get("step"), values.get("tool"), error, exit_code, latency, rate)


def make_error(fault: Fault, target: str, step_id: str | None) -> StepError:
    """The error a fault raises, marked as injected."""
    message = f"injected fault ({fault.text})"
    error: StepError
    if fault.exit_code is not None:
        error = ShellCommandError(
            f"{message}: exit code {fault.exit_code}",
            exit_code=fault.exit_code,
            stderr="",
            step_id=step_id,
        )
    else:
        kind = ERROR_TYPES[fault.error or "ToolError"]
        assert issubclass(kind, StepError)  # parse_fault admits step errors only
        needed: dict[str, Any] = {
            "exit_code": 1,
            "stderr": "",
            "name": target,
            "index": 0,
            "prompt": "",
            "choices": None,
        }
        params = inspect.signature(kind.__init__).parameters
        error = kind(message, step_id=step_id, **{k: v for k, v in needed.items() if k in params})
    error.injected = True
    return error


class Injector:
    """The faults of one run and their deterministic draws."""

    def __init__(self, faults: list[Fault], seed: str) -> None:
        self.faults = faults
        self.seed = seed
        self._counts: dict[tuple[int, str], int] = {}

    def _hit(self, index: int, target: str, fault: Fault) -> bool:
        key = (index, target)
        n = self._counts[key] = self._counts.get(key, 0) + 1
        if fault.rate >= 1.0:
            return True
        digest = hashlib.blake2b(f"{self.seed}/{index}/{target}/{n}".encode(), digest_size=8)
        return random.Random(digest.digest()).random() < fault.rate

    def for_step(self, step_id: str) -> Fault | None:
        """The fault hitting this attempt of the step (its id as written or with its
        parallel prefix), or None."""
        base = step_id.rsplit("/", 1)[-1]
        for i, fault in enumerate(self.faults):
            if fault.step in (step_id, base) and self._hit(i, step_id, fault):
                return fault
        return None

    def for_tool(self, server: str | None, tool: str) -> Fault | None:
        """The fault hitting this call of the tool (``NAME`` or ``SERVER.NAME``), or None."""
        names = {tool, f"{server}.{tool}"} if server else {tool}
        for i, fault in enumerate(self.faults):
            if fault.tool in names and self._hit(i, f"tool:{fault.tool}", fault):
                return fault
        return None


def tool_error(fault: Fault, tool: str) -> StepError:
    """A tool fault's error (ToolError unless error= says otherwise)."""
    if fault.error is None:
        error: StepError = ToolError(f"injected fault ({fault.text})")
        error.injected = True
        return error
    return make_error(fault, tool, None)


class InjectingTools:
    """A tool provider that hits the calls named by ``tool=`` faults, then calls through."""

    def __init__(self, inner: Any, injector: Injector, sleep: Any) -> None:
        self.inner = inner
        self.injector = injector
        self.sleep = sleep
        self.hits = 0

    async def call(self, server: str | None, tool: str, arguments: dict[str, Any]) -> Any:
        fault = self.injector.for_tool(server, tool)
        if fault is not None:
            self.hits += 1
            if fault.latency_s:
                await self.sleep(fault.latency_s)
            if fault.error is not None:
                raise tool_error(fault, tool)
        return await self.inner.call(server, tool, arguments)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:  # logs() and whatever else the provider offers
        return getattr(self.inner, name)
