"""Agent steps performed by the MCP client, by sampling (``sampling/createMessage``).

A run started through ``workflow_run`` or ``workflow_resume`` by a client that declares the
``sampling`` capability sends each agent attempt to that client as one sampling request: the
prompt, the context as JSON and (on a retry) why the previous answer was refused as the user
message; the response schema as the required reply format in the system prompt. The reply's
text is read and checked like any performer's (:func:`wfkit.engine.agents.read_reply`).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import logging
import math
import os
import re
import secrets
import warnings
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import anyio

from wfkit.engine.agents import AgentReply, AgentRequest, AttemptIO
from wfkit.errors import AgentError, AgentTimeoutError, InputError

T = TypeVar("T")
LOGGER = logging.getLogger("wfkit.mcp")

SAMPLING_MAX_TOKENS = 4096
"""The ``maxTokens`` of each sampling request."""

CALLER: contextvars.ContextVar[Any] = contextvars.ContextVar("wfkit_mcp_caller", default=None)
"""The request context (the SDK's ``Context``) of the tool call being served."""

_FENCE = re.compile(r"\A\s*```[A-Za-z0-9_-]*\n(.*?)\n?```\s*\Z", re.DOTALL)


async def to_the_end(run: Coroutine[Any, Any, T]) -> T:
    """Await a run in its own task. When the call is cancelled (the client cancelled it,
    went away, or the server is ending), the run is cancelled once, as Ctrl-C cancels a CLI
    run, and awaited shielded: it ends ``cancelled`` after its ``finally`` steps, and its
    record says so. (The server's cancel scope would otherwise cancel every await of the
    ``finally`` steps too, and the server would exit with the run still ``running``.)"""
    task = asyncio.ensure_future(run)
    try:
        return await asyncio.shield(task)
    except BaseException:
        task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait({task})
        if not task.cancelled() and task.exception() is None:
            LOGGER.info("a run ended %s after its call was cancelled", task.result())
        raise


def system_prompt(request: AgentRequest) -> str:
    """What the client's model is told about the reply it must give."""
    head = f"You perform step {request.step_id!r} of a workflow run by wfkit."
    schema = request.response_schema
    if schema is None:
        return f"{head} Reply with the answer only: JSON, or plain text."
    if schema.get("type") == "string":
        return f"{head} Reply with the answer only, as plain text, matching: {json.dumps(schema)}"
    return (
        f"{head} Reply with JSON only (no prose, no code fence) matching this JSON Schema:\n"
        + json.dumps(schema, ensure_ascii=False)
    )


def user_message(request: AgentRequest) -> str:
    """The prompt, the context and the previous attempt's refusal, as one message."""
    parts = [request.prompt]
    if request.context is not None:
        parts.append("Context (JSON):\n" + json.dumps(request.context, ensure_ascii=False))
    if request.previous_error is not None:
        parts.append(
            "Your previous answer was refused: "
            f"{request.previous_error.get('message', '')}\nAnswer again, correcting it."
        )
    return "\n\n".join(parts)


def _reply_text(result: Any, step_id: str) -> AgentReply:
    """The text of a sampling result (a model's code fence around JSON taken off)."""
    content = getattr(result, "content", None)
    if content is None:  # not a sampling result at all (a client answering another request)
        raise AgentError(
            f"the client answered the sampling request with a {type(result).__name__}",
            step_id=step_id,
        )
    if isinstance(content, list):  # the array-content form: its text blocks, joined
        texts = [c.text for c in content if getattr(c, "type", None) == "text"]
        if not texts:
            raise AgentError("the client's model answered without text", step_id=step_id)
        text = "\n".join(texts)
    elif getattr(content, "type", None) == "text":
        text = content.text
    else:
        raise AgentError(
            f"the client's model answered with {getattr(content, 'type', '?')} content, not text",
            step_id=step_id,
        )
    fenced = _FENCE.match(text)
    return AgentReply(text=fenced.group(1) if fenced else text)


def _params(request: AgentRequest) -> Any:
    """The ``sampling/createMessage`` parameters of one agent attempt."""
    from mcp_types import CreateMessageRequestParams, SamplingMessage, TextContent

    return CreateMessageRequestParams(
        messages=[
            SamplingMessage(
                role="user", content=TextContent(type="text", text=user_message(request))
            )
        ],
        max_tokens=SAMPLING_MAX_TOKENS,
        system_prompt=system_prompt(request),
        metadata={"wfkit": {"run_id": request.run_id, "step_id": request.step_id}},
    )


def _quiet_sampling_warning() -> None:
    """Protocol 2026-07-28 deprecates sampling (SEP-2577), yet clients still offer it: the
    SDK's warning on each request says nothing a run's user could act on."""
    from mcp.shared.exceptions import MCPDeprecationWarning

    warnings.filterwarnings(
        "ignore", message="The sampling capability is deprecated", category=MCPDeprecationWarning
    )


class SamplingAgent:
    """Asks the calling client's model directly (``sampling/createMessage`` as a request from
    the server): for clients on a handshake-era protocol, which allows such requests."""

    def __init__(self, context: Any) -> None:
        self.context = context
        _quiet_sampling_warning()

    async def perform(self, request: AgentRequest, io: AttemptIO) -> AgentReply:
        params = _params(request)
        try:
            result = await self.context.session.create_message(
                params.messages,
                max_tokens=params.max_tokens,
                system_prompt=params.system_prompt,
                metadata=params.metadata,
            )
        except Exception as exc:  # the client refused or failed the request
            raise AgentError(
                f"the client's sampling failed: {exc}", step_id=request.step_id
            ) from None
        return _reply_text(result, request.step_id)


def _input_wait() -> float:
    """``WFKIT_MCP_INPUT_WAIT`` (seconds, 1 to 600: the SDK's sealed request_state lasts 600 s),
    300 when unset or unreadable."""
    try:
        wanted = float(os.environ.get("WFKIT_MCP_INPUT_WAIT", "300"))
    except ValueError:
        LOGGER.warning("WFKIT_MCP_INPUT_WAIT is not a number of seconds: 300 s is used")
        return 300.0
    return min(max(wanted, 1.0), 600.0) if not math.isnan(wanted) else 300.0


INPUT_WAIT_SECONDS = _input_wait()
"""How long a run waits for a client to come back with the answers it was asked for (an
``InputRequiredResult`` round) before its pending agent attempts fail."""

BATCH_SECONDS = 0.05
"""After a first request, how long a round waits for the items running beside it to ask too
(a fan-out's requests go to the client in one round)."""

LIVE: dict[str, LiveRun] = {}
"""Runs waiting between rounds, by the ``request_state`` their client echoes."""


class LiveRun:
    """A run carried over several rounds of one tool call (protocol 2026-07-28, where the
    server sends no requests of its own): each round returns the sampling requests the run
    waits on as an ``InputRequiredResult``; the client's retry brings the answers, and the
    run goes on, in the server, until it ends or asks again."""

    def __init__(self, work: Coroutine[Any, Any, Any]) -> None:
        self.token = secrets.token_urlsafe(24)
        self.pending: dict[str, tuple[Any, asyncio.Future[Any]]] = {}
        self.changed = asyncio.Event()
        self.orphaned = False
        self._keys = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self.callers = 0  # tool calls waiting on next_stop now
        self.progress: Any = None  # the run's progress sink (wfkit.mcp_server.progress)
        self.task = asyncio.ensure_future(work)
        self.task.add_done_callback(lambda _: self.changed.set())
        LIVE[self.token] = self

    async def ask(self, request: Any, step_id: str) -> Any:
        """One request (sampling, elicitation), answered in the client's next round."""
        if self.orphaned:
            raise AgentError(
                "the client stopped answering sampling requests (no round within "
                f"{INPUT_WAIT_SECONDS:g} s)",
                step_id=step_id,
            )
        key = f"ask-{next(self._keys)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[key] = (request, future)
        self.changed.set()
        try:
            return await future
        finally:
            self.pending.pop(key, None)

    def answer(self, responses: dict[str, Any]) -> None:
        """The client's answers of the round it retries with."""
        if self._timer is not None:
            self._timer.cancel()
        for key, response in responses.items():
            entry = self.pending.get(key)
            if entry is not None and not entry[1].done():
                entry[1].set_result(response)

    async def next_stop(self) -> Any:
        """The run's report when it ends, or the round of requests it waits on."""
        from mcp_types import InputRequiredResult

        self.callers += 1
        try:
            while True:
                if self.task.done():
                    LIVE.pop(self.token, None)
                    return self.task.result()
                if self._waiting():
                    await asyncio.sleep(BATCH_SECONDS)
                    asked = self._waiting()
                    if asked and not self.task.done():
                        if self._timer is not None:  # a duplicate call's round: one timer
                            self._timer.cancel()
                        self._timer = asyncio.get_running_loop().call_later(
                            INPUT_WAIT_SECONDS, self._orphan
                        )
                        return InputRequiredResult(input_requests=asked, request_state=self.token)
                    continue
                self.changed.clear()
                await self.changed.wait()
        except BaseException:  # the call was cancelled: so is the run, as to_the_end does,
            # unless another call (a client's duplicate retry) still waits for it
            if self.callers == 1 and not self.task.done():
                self.task.cancel()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait({self.task})
                LIVE.pop(self.token, None)
            raise
        finally:
            self.callers -= 1

    def _waiting(self) -> dict[str, Any]:
        return {k: p for k, (p, f) in self.pending.items() if not f.done()}

    def _orphan(self) -> None:
        """The client never came back: what the run waits on fails, and so will what it asks."""
        self.orphaned = True
        for _, future in list(self.pending.values()):
            if not future.done():
                future.set_exception(
                    AgentTimeoutError(
                        f"the client did not answer a sampling request within "
                        f"{INPUT_WAIT_SECONDS:g} s"
                    )
                )
        self.task.add_done_callback(lambda _: LIVE.pop(self.token, None))


class RoundsAgent:
    """Performs agent steps through the rounds of a :class:`LiveRun`."""

    def __init__(self) -> None:
        self.live: LiveRun | None = None
        _quiet_sampling_warning()

    async def perform(self, request: AgentRequest, io: AttemptIO) -> AgentReply:
        from mcp_types import CreateMessageRequest

        assert self.live is not None, "set when the run starts"
        result = await self.live.ask(CreateMessageRequest(params=_params(request)), request.step_id)
        return _reply_text(result, request.step_id)


async def performed(
    start: Callable[[Any, Any], Coroutine[Any, Any, T]], progress: Any = None
) -> T | Any:
    """Run ``start(agent, elicit)`` for the tool call being served, with the client's model
    as the agent when it samples, and the client's user asked for ``user_input`` answers when
    it elicits (:mod:`wfkit.mcp_server.asking`): directly on a handshake-era protocol, else in
    rounds. The result is the run's report, or the ``InputRequiredResult`` of a round."""
    from wfkit.mcp_server.asking import DirectAsk, RoundsAsk, elicits

    context = CALLER.get()
    token = context.request_state if context is not None else None
    if token is not None:  # a round's retry: the run waits in the server
        live = LIVE.get(token)
        if live is None:
            raise InputError(
                "this request_state names no run waiting for answers (it ended, or the "
                "server restarted): call the tool again without it"
            )
        live.answer(dict(context.input_responses or {}))
        if live.progress is None:
            return await live.next_stop()
        live.progress.context = context  # the run reports to the call that now waits on it
        try:
            return await live.next_stop()
        finally:
            await live.progress.flush()
    samples, asks = _samples(context), elicits(context)
    if not (samples or asks):
        return await to_the_end(start(None, None))
    if context.session.can_send_request:
        return await to_the_end(
            start(SamplingAgent(context) if samples else None, DirectAsk(context) if asks else None)
        )
    agent, ask = RoundsAgent() if samples else None, RoundsAsk() if asks else None
    live = LiveRun(start(agent, ask))
    live.progress = progress
    for asker in (agent, ask):
        if asker is not None:
            asker.live = live
    return await live.next_stop()


def _samples(context: Any) -> bool:
    """Whether the client of this call declared the ``sampling`` capability."""
    if context is None:
        return False
    from mcp_types import ClientCapabilities, SamplingCapability

    return bool(
        context.session.check_client_capability(ClientCapabilities(sampling=SamplingCapability()))
    )


BACKGROUND: set[asyncio.Task[Any]] = set()
"""Runs started by ``workflow_start`` (or ``wait: false``) still running in this server."""


async def in_background(
    store: str | Path | None,
    start: Callable[[Any, Callable[[Any], None]], Coroutine[Any, Any, Any]],
) -> Any:
    """Start ``start(agent, on_event)`` as a run that outlives this call, its agent steps
    pulled through the store (:class:`~wfkit.commands.agent_work.PulledAgent`). Returns once
    the run is recorded (its ``RunStarted``): its id, or the report of a run that ended
    first; an error before the run starts (a bad file, inputs) is raised here."""
    from wfkit.commands.agent_work import PulledAgent
    from wfkit.engine.events import RunStarted

    agent = PulledAgent(store)
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_event(event: Any) -> None:
        if isinstance(event, RunStarted) and not started.done():
            started.set_result(event.run_id)

    async def whole() -> Any:
        try:
            return await start(agent, on_event)
        finally:
            agent.close()

    task = asyncio.ensure_future(whole())
    BACKGROUND.add(task)
    task.add_done_callback(_finished)
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if started.done():
        from wfkit.store import open_store

        with open_store(store) as run_store:  # its resumes pull too
            run_store.mark_pulled(started.result())
        return started.result()
    started.cancel()
    return task.result()  # the report, or the error that kept the run from starting


def _finished(task: asyncio.Task[Any]) -> None:
    """A background run ended: forget it, and say so when it ended in an error of wfkit's."""
    BACKGROUND.discard(task)
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        LOGGER.warning("a background run ended with %s: %s", type(error).__name__, error)
