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
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from wfkit.engine.processes import TAIL_CHARS, last_lines, spawn, terminate_group
from wfkit.errors import (
    AgentError,
    AgentResponseError,
    AgentUnavailableError,
    StateSizeLimitError,
    StepError,
    WfkitError,
)

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
    cancellation), as a ``shell_command``'s is; a non-zero exit is an
    :class:`~wfkit.errors.AgentError` carrying the tail of its stderr."""

    command: str | tuple[str, ...]

    async def perform(self, request: AgentRequest, io: AttemptIO) -> AgentReply:
        argv = (
            ["/bin/sh", "-c", self.command] if isinstance(self.command, str) else list(self.command)
        )
        shown = self.command if isinstance(self.command, str) else " ".join(self.command)
        env = dict(os.environ)
        env["WFKIT_RUN_ID"] = request.run_id
        try:
            proc = await spawn(argv, None, env, shown, stdin=True)
        except WfkitError as exc:  # the spawn's own error, said as the agent's
            raise AgentError(exc.message, step_id=request.step_id) from None
        stdin, stdout, stderr_pipe = proc.stdin, proc.stdout, proc.stderr
        assert stdin is not None
        assert stdout is not None
        assert stderr_pipe is not None
        payload = (json.dumps(request.as_dict(), ensure_ascii=False) + "\n").encode()
        out = bytearray()
        err = bytearray()

        async def feed() -> None:
            try:
                stdin.write(payload)
                await stdin.drain()
            except (BrokenPipeError, ConnectionResetError):  # it answered without reading
                pass
            finally:
                stdin.close()

        async def read_out() -> None:
            while chunk := await stdout.read(_CHUNK):
                out.extend(chunk)
                if len(out) > io.max_bytes:
                    raise StateSizeLimitError(
                        f"the agent's response is longer than max_state_bytes="
                        f"{io.max_bytes:,} allows any value to be",
                        step_id=request.step_id,
                    )

        async def read_err() -> None:
            while chunk := await stderr_pipe.read(_CHUNK):
                if io.log is not None:
                    io.log(chunk)
                err.extend(chunk)
                del err[: max(0, len(err) - TAIL_CHARS * 4)]  # only its tail is ever shown

        try:
            await asyncio.gather(feed(), read_out(), read_err())
            code = await proc.wait()
        except BaseException:
            await terminate_group(proc, io.grace)
            raise
        stderr = err.decode("utf-8", "replace")
        if code != 0:
            tail = last_lines(stderr)
            last = tail.splitlines()[-1:] or [""]
            message = f"the agent command exited with {code}" + (f": {last[0]}" if last[0] else "")
            if tail:
                message += "\nstderr:\n" + "\n".join("  " + line for line in tail.splitlines())
            raise AgentError(message, step_id=request.step_id)
        return AgentReply(text=out.decode("utf-8", "replace"))


def read_reply(reply: AgentReply, schema: dict[str, Any] | None, step_id: str) -> Any:
    """The response as the step's result: parsed and checked against ``schema``.

    Text is JSON, except that with no schema a text that is not JSON is the result as it
    is, and with ``type: string`` the text itself is the string (one trailing newline off).
    """
    if reply.text is None:
        value = reply.value
    else:
        text = reply.text[:-1] if reply.text.endswith("\n") else reply.text
        wants_text = schema is None or schema.get("type") == "string"
        try:
            value = json.loads(text)
        except ValueError as exc:
            if not wants_text:
                raise AgentResponseError(
                    f"the response of {step_id!r} is not JSON ({exc}): {_short(text)}",
                    rule="json",
                    step_id=step_id,
                ) from None
            value = text
        else:
            if schema is not None and schema.get("type") == "string" and not isinstance(value, str):
                value = text  # a string answer that happens to look like JSON (`42`)
    if schema is not None:
        check(value, schema, step_id)
    return value


def check(value: Any, schema: dict[str, Any], step_id: str) -> None:
    """Raise :class:`~wfkit.errors.AgentResponseError` naming the JSON path and the rule
    the value breaks (the most relevant error when there are several)."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    error = jsonschema.exceptions.best_match(cls(schema).iter_errors(value))
    if error is None:
        return
    path = error.json_path
    raise AgentResponseError(
        f"the response of {step_id!r} does not match response_schema at {path}: "
        f"{error.message} (rule {error.validator!r})",
        path=path,
        rule=str(error.validator),
        step_id=step_id,
    )


def _short(text: str, limit: int = 200) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
