"""Who performs ``agent_task`` steps: the performer protocol, the command performer, and the
check of a response against the step's ``response_schema``.

A run gets one performer (:attr:`wfkit.engine.context.RunOptions.agent`); the step hands it
one :class:`AgentRequest` per attempt and gets an :class:`AgentReply` back, or an
:class:`~wfkit.errors.AgentError`. What the reply means (JSON or text, valid or not) is
decided here, the same for every performer.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from wfkit.engine.processes import (
    TAIL_CHARS,
    drain,
    kill_leftovers,
    last_lines,
    process_exit,
    retrieve,
    spawn,
    terminate_group,
)
from wfkit.errors import (
    AgentError,
    AgentResponseError,
    AgentUnavailableError,
    StateSizeLimitError,
    StepError,
    WfkitError,
)
from wfkit.language.response_schema import violation

_CHUNK = 65_536


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """One attempt's work, as every performer receives it."""

    run_id: str
    step_id: str
    item: int | None
    attempt: int
    prompt: str
    context: Any
    response_schema: dict[str, Any] | None
    previous_error: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AgentReply:
    """What a performer answered: text to be read (``text``), or a value as it is."""

    text: str | None = None
    value: Any = None


class AgentPerformer(Protocol):
    """Performs agent steps for a run; raises :class:`~wfkit.errors.AgentError` on failure."""

    async def perform(self, request: AgentRequest, io: AttemptIO) -> AgentReply: ...


@dataclass(frozen=True, slots=True)
class AttemptIO:
    """What one attempt may use: ``max_bytes`` of response, ``grace`` seconds to end a
    process, and ``log`` for what the performer says on the side (a command's stderr), kept
    with the attempt's output, bounded."""

    max_bytes: int
    grace: float = 2.0
    log: Callable[[bytes], None] | None = None
    #: where the command runs, and the variables it gets beside the process's own
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: the request as a record may keep it: the run's secrets as ***
    masked: Callable[[dict[str, Any]], dict[str, Any]] = lambda request: request
    #: whether the step's policy would retry this attempt failing with the given error
    retried: Callable[[StepError], bool] = lambda error: False


class NoAgent:
    """The performer of a run that was given none: every agent step is refused."""

    async def perform(self, request: AgentRequest, io: AttemptIO) -> AgentReply:
        raise AgentUnavailableError(
            f"agent_task {request.step_id!r} has no performer: pass --agent-command CMD (or "
            "set WFKIT_AGENT_COMMAND or config.agent.command), answer it with --answers FILE, "
            "or run it under `wfkit mcp`",
            step_id=request.step_id,
        )


@dataclass(frozen=True, slots=True)
class CommandAgent:
    """Starts ``command`` per attempt: the request as one JSON line on its stdin, the
    response read from its stdout. Its process group is ended with the attempt (timeout,
    cancellation) and whatever it leaves running is killed, as for a ``shell_command``; a
    non-zero exit is an :class:`~wfkit.errors.AgentError` carrying the tail of its stderr."""

    command: str | tuple[str, ...]

    async def perform(self, request: AgentRequest, io: AttemptIO) -> AgentReply:
        argv = (
            ["/bin/sh", "-c", self.command] if isinstance(self.command, str) else list(self.command)
        )
        shown = self.command if isinstance(self.command, str) else " ".join(self.command)
        env = {**os.environ, **io.env, "WFKIT_RUN_ID": request.run_id}
        try:
            proc = await spawn(argv, io.cwd, env, shown, stdin=True)
        except WfkitError as exc:  # the spawn's own error, said as the agent's
            raise AgentError(exc.message, step_id=request.step_id) from None
        payload = (json.dumps(request.as_dict(), ensure_ascii=False) + "\n").encode()
        exchange = _Exchange(proc, io, request.step_id)
        try:
            code = await exchange.run(payload)
        except BaseException:
            exchange.readers.cancel()
            exchange.readers.add_done_callback(retrieve)
            await terminate_group(proc, io.grace)
            raise
        kill_leftovers(proc.pid)
        if code != 0:
            tail = last_lines(exchange.err.decode("utf-8", "replace"))
            last = tail.splitlines()[-1:] or [""]
            message = f"the agent command exited with {code}" + (f": {last[0]}" if last[0] else "")
            if tail:
                message += "\nstderr:\n" + "\n".join("  " + line for line in tail.splitlines())
            raise AgentError(message, step_id=request.step_id)
        return AgentReply(text=exchange.out.decode("utf-8", "replace"))


class _Exchange:
    """One attempt's conversation with the agent command: the request in, stdout (bounded by
    ``max_bytes``) and stderr (its tail, and each chunk to ``io.log``) out."""

    def __init__(self, proc: asyncio.subprocess.Process, io: AttemptIO, step_id: str) -> None:
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        self.proc, self.io, self.step_id = proc, io, step_id
        self.out = bytearray()
        self.err = bytearray()
        self.readers = asyncio.gather(self._read_out(proc.stdout), self._read_err(proc.stderr))

    async def run(self, payload: bytes) -> int:
        """The exit code, once the command exited and its pipes are read (a background child
        it left holding them gets DRAIN_SECONDS, then its group is killed, as for a shell
        step); a reader's error (a response too long) ends the attempt at once."""
        await self._feed(payload)
        exited: asyncio.Future[int] = asyncio.ensure_future(process_exit(self.proc))
        waiting: set[asyncio.Future[Any]] = {exited, self.readers}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        self._raise_reader_error(exited)
        code = await exited
        await drain(self.proc.pid, self.readers)
        self._raise_reader_error(exited)
        return code

    def _raise_reader_error(self, exited: asyncio.Future[int]) -> None:
        if self.readers.done() and not self.readers.cancelled():
            error = self.readers.exception()
            if error is not None:
                exited.cancel()
                raise error

    async def _feed(self, payload: bytes) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(payload)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):  # it answered without reading
            pass
        finally:
            stdin.close()

    async def _read_out(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(_CHUNK):
            self.out.extend(chunk)
            if len(self.out) > self.io.max_bytes:
                raise StateSizeLimitError(
                    f"the agent's response is longer than max_state_bytes="
                    f"{self.io.max_bytes:,} allows any value to be",
                    step_id=self.step_id,
                )

    async def _read_err(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(_CHUNK):
            if self.io.log is not None:
                self.io.log(chunk)
            self.err.extend(chunk)
            del self.err[: max(0, len(self.err) - TAIL_CHARS * 4)]  # only its tail is shown


def read_reply(reply: AgentReply, schema: dict[str, Any] | None, step_id: str) -> Any:
    """The response as the step's result: parsed and checked against ``schema``.

    Text is JSON, except that with ``type: string`` the text itself is the string, and with no
    schema a text that is not JSON is the result as it is (one trailing newline off).
    """
    if reply.text is None:
        value = reply.value
    else:
        text = reply.text[:-1] if reply.text.endswith("\n") else reply.text
        if schema is not None and schema.get("type") == "string":
            value = text
        else:
            try:
                value = json.loads(text)
            except (ValueError, RecursionError) as exc:
                if schema is not None:
                    reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
                    raise AgentResponseError(
                        f"the response of {step_id!r} is not JSON ({reason})",
                        rule="json",
                        step_id=step_id,
                    ) from None
                value = text
    if schema is not None:
        check(value, schema, step_id)
    return value


def check(value: Any, schema: dict[str, Any], step_id: str) -> None:
    """Raise :class:`~wfkit.errors.AgentResponseError` naming the JSON path and the rule
    the value breaks (the most relevant error when there are several)."""
    found = violation(value, schema)
    if found is None:
        return
    path, message, rule = found
    raise AgentResponseError(
        f"the response of {step_id!r} does not match response_schema at {path}: "
        f"{message} (rule {rule!r})",
        path=path,
        rule=rule,
        step_id=step_id,
    )
