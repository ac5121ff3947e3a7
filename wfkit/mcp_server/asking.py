"""``user_input`` steps asked through the calling client (``elicitation/create``).

A run started by ``workflow_run`` or ``workflow_resume`` from a client that declares the
``elicitation`` capability asks each unanswered ``user_input`` as one form: the prompt as the
message, one field ``answer`` typed like the ``raw`` field the step writes (``choices`` as an
enum, ``default`` as its default). ``accept`` continues the run with the answer; ``decline``,
``cancel``, a failed request or one the client never answers leave the run ``waiting``, as
without the capability, resumable with an answer.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from wfkit.engine.context import NOT_ANSWERED, Question

LOGGER = logging.getLogger("wfkit.mcp")

_PRIMITIVE = {"string", "number", "integer", "boolean"}


def answer_schema(question: Question) -> dict[str, Any]:
    """The form of one question: a single field, ``answer``."""
    field: dict[str, Any] = {"title": question.step_id, "description": question.prompt}
    if question.choices is not None:
        field["type"] = "string"
        field["enum"] = [_text(c) for c in question.choices]
    else:
        field["type"] = question.kind if question.kind in _PRIMITIVE else "string"
    default = question.default
    if default is not None:
        if question.choices is not None:
            if _text(default) in field["enum"]:  # a default outside the enum: none
                field["default"] = _text(default)
        elif _fits(default, field["type"]):
            field["default"] = default
    return {"type": "object", "properties": {"answer": field}, "required": ["answer"]}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _fits(value: Any, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def answer_of(result: Any, question: Question) -> Any:
    """The answer in a client's elicitation result, or :data:`NOT_ANSWERED`."""
    action = getattr(result, "action", None)
    content = getattr(result, "content", None)
    if isinstance(result, dict):
        action, content = result.get("action"), result.get("content")
    if action != "accept" or not isinstance(content, dict) or "answer" not in content:
        LOGGER.info("user_input %s not answered: %s", question.step_id, action)
        return NOT_ANSWERED
    answer = _checked(content["answer"], question)
    if answer is NOT_ANSWERED:  # the client did not keep to the form: the run waits
        LOGGER.info("user_input %s: the answer does not fit the form", question.step_id)
    return answer


def _checked(answer: Any, question: Question) -> Any:
    """The answer as the form asked for it (a choice, or a value of its type, text that
    reads as one too), or :data:`NOT_ANSWERED`."""
    if question.choices is not None:  # the choice the text stands for
        return {_text(c): c for c in question.choices}.get(_text(answer), NOT_ANSWERED)
    kind = question.kind if question.kind in _PRIMITIVE else "string"
    if isinstance(answer, str) and kind != "string":
        answer = _parsed(answer.strip(), kind)
    return answer if _fits(answer, kind) else NOT_ANSWERED


def _parsed(text: str, kind: str) -> Any:
    if kind == "boolean":
        return {"true": True, "false": False}.get(text.lower(), NOT_ANSWERED)
    try:
        number = int(text) if kind == "integer" else float(text)
    except ValueError:
        return NOT_ANSWERED
    return number if math.isfinite(number) else NOT_ANSWERED


def form_params(question: Question) -> Any:
    """The ``elicitation/create`` parameters of one question."""
    from mcp_types import ElicitRequestFormParams

    return ElicitRequestFormParams(
        message=question.prompt, requested_schema=answer_schema(question)
    )


def elicits(context: Any) -> bool:
    """Whether the client of this call declared the ``elicitation`` capability."""
    if context is None:
        return False
    from mcp_types import ClientCapabilities, ElicitationCapability

    return bool(
        context.session.check_client_capability(
            ClientCapabilities(elicitation=ElicitationCapability())
        )
    )


class DirectAsk:
    """Asks the client with an ``elicitation/create`` request of the server's own (on a
    handshake-era protocol, which allows such requests)."""

    def __init__(self, context: Any) -> None:
        self.context = context

    async def __call__(self, question: Question) -> Any:
        params = form_params(question)
        try:
            result = await self.context.session.elicit_form(
                message=params.message,
                requested_schema=params.requested_schema,
                related_request_id=self.context.request_id,
            )
        except Exception as exc:  # the client refused or failed the request: the run waits
            LOGGER.info("user_input %s: elicitation failed: %s", question.step_id, exc)
            return NOT_ANSWERED
        return answer_of(result, question)


class RoundsAsk:
    """Asks through the rounds of a :class:`~wfkit.mcp_server.agents.LiveRun` (protocol
    2026-07-28: the question goes back in the call's ``InputRequiredResult``)."""

    def __init__(self) -> None:
        self.live: Any = None

    async def __call__(self, question: Question) -> Any:
        from mcp_types import ElicitRequest

        assert self.live is not None, "set when the run starts"
        try:
            result = await self.live.ask(
                ElicitRequest(params=form_params(question)), question.step_id
            )
        except Exception as exc:  # the client never came back: the run waits
            LOGGER.info("user_input %s: no answer: %s", question.step_id, exc)
            return NOT_ANSWERED
        return answer_of(result, question)
