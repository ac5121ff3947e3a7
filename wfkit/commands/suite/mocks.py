"""What a test case runs against: mocked tools and shell, and virtual time."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from wfkit.commands.suite.models import (
    AgentMock,
    AgentMockReply,
    ShellMock,
    ShellReply,
    ToolMock,
    ToolReply,
    WorkflowMock,
)
from wfkit.engine.agents import AgentReply, AgentRequest, AttemptIO
from wfkit.engine.context import ChildCall, ChildEnded, ChildRunner
from wfkit.engine.steps.shell import SHELL_STEP
from wfkit.errors import (
    ERROR_TYPES,
    StepError,
    ToolError,
    ToolNotFoundError,
)

if TYPE_CHECKING:
    from wfkit.language.loader import LoadedWorkflow


class MockError(StepError):
    """The workflow did something the test case does not mock."""

    permanent = True
    fatal = True


class ReplayGapError(MockError):
    """A replayed step the record cannot answer (new, or given other arguments): the
    replay stops there, whatever the step's error policy says."""


class VirtualClock:
    """Time that passes only when the run sleeps."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept = 0.0

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds
        await asyncio.sleep(0)

    def time(self) -> float:
        return self.now


_ERROR_DEFAULTS: dict[str, dict[str, Any]] = {
    "ShellCommandError": {"exit_code": 1, "stderr": ""},
    "SubAgentError": {"index": 0},
    "BranchError": {"branch": None},
    "UndefinedVariableError": {"name": "mocked"},
}


def make_error(type_name: str, message: str) -> StepError:
    """A step error of the named type, as a mock raises it."""
    cls = ERROR_TYPES.get(type_name)
    if cls is None or not issubclass(cls, StepError):
        return ToolError(f"{message} (unknown error type {type_name!r} in the mock)")
    return cls(message, **_ERROR_DEFAULTS.get(type_name, {}))


class MockTools:
    """A tool provider answering from a case's mocks, counting calls and arguments."""

    def __init__(self, mocks: dict[str, ToolMock], gap: type[MockError] | None = None) -> None:
        self.mocks = mocks
        self.calls: dict[str, list[dict[str, Any]]] = {}
        self.gap = gap  # a replay's: a tool the record never called stops it

    async def call(self, server: str | None, tool: str, arguments: dict[str, Any]) -> Any:
        mock = self.mocks.get(tool)
        if mock is None and self.gap is not None:
            raise self.gap(f"tool {tool!r} was never called in the record: it cannot answer it")
        if mock is None:  # as in a run where no server offers it
            raise ToolNotFoundError(f"no tool {tool!r}: the case mocks none by that name")
        made = self.calls.setdefault(tool, [])
        made.append(arguments)
        reply: ToolReply = mock
        if mock.sequence:
            reply = mock.sequence[min(len(made), len(mock.sequence)) - 1]
        if reply.raises is not None:
            raise make_error(reply.raises.type, reply.raises.message)
        return reply.returns

    async def aclose(self) -> None:
        return None


class MockAgents:
    """An agent performer answering from a case's ``mocks.agents`` by step id; each request
    is counted with the tools' calls (``expect.calls.STEP``), its fields as the arguments."""

    def __init__(
        self,
        mocks: dict[str, AgentMock],
        calls: dict[str, list[dict[str, Any]]],
        gap: type[MockError] | None = None,
    ):
        self.mocks = mocks
        self.calls = calls
        self.gap = gap  # a replay's: an agent step the record never ran stops it

    async def perform(self, request: AgentRequest, io: AttemptIO) -> AgentReply:
        mock = self.mocks.get(request.step_id)
        if mock is None and self.gap is not None:
            raise self.gap(
                f"agent_task {request.step_id!r} was never performed in the record: it cannot"
                " answer it",
                step_id=request.step_id,
            )
        if mock is None:
            raise MockError(
                f"no agent mock for agent_task {request.step_id!r} (add one under "
                "mocks.agents, or an answer under mocks.answers)",
                step_id=request.step_id,
            )
        made = self.calls.setdefault(request.step_id, [])
        made.append(request.as_dict())
        reply: AgentMockReply = mock
        if mock.sequence:
            reply = mock.sequence[min(len(made), len(mock.sequence)) - 1]
        if reply.raises is not None:
            raise make_error(reply.raises.type, reply.raises.message)
        return AgentReply(value=reply.returns)


class MockChildren:
    """``workflow`` steps named in a case's ``mocks.workflows`` (by step id) answered from the
    mock, without a child run; the others run for real (``real``). Each call is counted with
    the tools' calls (``expect.calls.STEP``), the child's inputs as the arguments."""

    def __init__(
        self,
        mocks: dict[str, WorkflowMock],
        calls: dict[str, list[dict[str, Any]]],
        real: ChildRunner,
        gap: type[MockError] | None = None,
    ) -> None:
        self.mocks = mocks
        self.calls = calls
        self.real = real
        self.gap = gap  # a replay's: a child the record does not answer never runs

    async def __call__(
        self,
        loaded: LoadedWorkflow,
        inputs: dict[str, Any],
        parent: str,
        secrets: dict[str, str],
        call: ChildCall,
    ) -> ChildEnded:
        key = call.step_id if call.step_id in self.mocks else call.step_id.rsplit("/", 1)[-1]
        mock = self.mocks.get(key)
        if mock is None and self.gap is not None:
            raise self.gap(
                f"workflow step {call.step_id!r}: the record has no result of its child run to"
                " answer it with (a child called inside a loop or a parallel item is not kept)",
                step_id=call.step_id,
            )
        if mock is None:
            return await self.real(loaded, inputs, parent, secrets, call)
        for name in {key, call.step_id}:  # expect.calls names it either way
            self.calls.setdefault(name, []).append(dict(inputs))
        if mock.raises is not None:
            error = {"type": mock.raises.type, "message": mock.raises.message}
            return ChildEnded("mocked", "failed", error, None)
        return ChildEnded("mocked", "succeeded", None, dict(mock.returns))


class MockShell:
    """Answers shell commands from a case's mocks; unmatched commands run only if allowed."""

    def __init__(
        self,
        mocks: list[ShellMock],
        allow_real: bool,
        live: frozenset[str] = frozenset(),
        gap: type[MockError] | None = None,
    ) -> None:
        self.mocks = mocks
        self.allow_real = allow_real
        self.live = live  # steps whose commands run for real (replay --live)
        self.gap = gap  # a replay's: a command the record cannot answer stops it
        self.calls: list[str] = []
        self._uses: dict[int, int] = {}

    def __call__(self, command: str | list[str]) -> dict[str, Any] | None:
        text = command if isinstance(command, str) else " ".join(command)
        self.calls.append(text)
        step_id, item = SHELL_STEP.get()
        if self.live and (step_id in self.live or step_id.rsplit("/", 1)[-1] in self.live):
            return None
        # a mock naming the recorded id wins over one naming the step's own id
        exact = any(m.step == step_id for m in self.mocks if m.match is None)
        for i, mock in enumerate(self.mocks):
            pattern = mock.match
            if pattern is None:
                named = step_id if exact else step_id.rsplit("/", 1)[-1]
                hit = mock.step in (step_id, named) and (mock.item is None or mock.item == item)
            else:
                regex = pattern.startswith("re:")
                hit = re.search(pattern[3:], text) is not None if regex else pattern in text
            if hit:
                uses = self._uses[i] = self._uses.get(i, 0) + 1
                reply: ShellReply = mock
                if mock.sequence:
                    reply = mock.sequence[min(uses, len(mock.sequence)) - 1]
                return reply.model_dump()
        if self.allow_real:
            return None
        if self.gap is not None:
            raise self.gap(
                f"step {step_id!r} ran a command the record cannot answer: {text!r} (a new "
                f"step, or other arguments; --live {step_id.rsplit('/', 1)[-1]} runs it)",
                step_id=step_id,
            )
        raise MockError(
            f"no shell mock matches {text!r} (add one under mocks.shell, or set "
            "allow_real_shell: true)"
        )
