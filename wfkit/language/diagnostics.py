"""What the loader says about a file: problems gathered per file, pydantic's validation
errors in the workflow's own words at their YAML positions, and "did you mean" suggestions."""

from __future__ import annotations

import difflib
import re
from contextvars import ContextVar
from typing import Any

from pydantic import ValidationError

from wfkit.errors import LoadError
from wfkit.language import models as m
from wfkit.language.yamlsrc import Path as NodePath
from wfkit.language.yamlsrc import Source

#: problems of the file being compiled (see :func:`_problem`); ``None``: raise at once
FOUND: ContextVar[list[LoadError] | None] = ContextVar("found", default=None)


def problem(error: LoadError) -> None:
    """Report a problem of the file: kept while a whole file is checked, so the user sees
    every problem at once, else raised. The caller goes on as if the part were absent."""
    found = FOUND.get()
    if found is None:
        raise error
    found.append(error)


_VOCABULARY = sorted(
    {
        (f.alias or name)
        for model in (
            m.Workflow,
            m.Config,
            m.InputSpec,
            m.ComputedField,
            m.StateSchema,
            m.DefaultState,
            m.McpServerSpec,
            m.StateUpdateSpec,
            m.ErrorHandler,
            m.SubAgentTask,
            m.CircuitBreakerSpec,
            m.ExecutorConfig,
            m.AgentConfig,
            m.StateUpdateStep,
            m.ShellCommandStep,
            m.McpCallStep,
            m.ConditionalStep,
            m.WhileLoopStep,
            m.ForeachStep,
            m.UserMessageStep,
            m.UserInputStep,
            m.AgentTaskStep,
            m.WaitStep,
            m.ErrorStep,
            m.ParallelForeachStep,
            m.ParallelStep,
        )
        for name, f in model.model_fields.items()
    }
)


def suggest(word: str, options: list[str] | tuple[str, ...]) -> str:
    """``; did you mean 'x'?`` for the closest of ``options``, or nothing."""
    close = difflib.get_close_matches(word, [o for o in options if o != word], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def translate_validation_error(
    exc: ValidationError, source: Source, vocabulary: list[str] | None = None
) -> LoadError:
    """Every pydantic error as one :class:`LoadError` at its YAML position, sorted by line:
    the error's own fields are the first problem's, ``problems`` holds them all. Unknown fields
    get a "did you mean" from ``vocabulary`` (the workflow format's field names by default)."""
    grouped: dict[NodePath, list[tuple[str, str]]] = {}
    for error in exc.errors(include_url=False):
        path, message = _locate(error, source.data, vocabulary or _VOCABULARY)
        grouped.setdefault(path, []).append((str(error["type"]), message))
    problems = [
        source.error(_one_message(path, found, source.data), path)
        for path, found in grouped.items()
    ]
    return combine_problems(problems)


def combine_problems(problems: list[LoadError]) -> LoadError:
    """Problems as one :class:`LoadError`, sorted by line: its own fields are the first's."""
    problems = sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
    first = problems[0]
    if len(problems) == 1:
        return first
    more = len(problems) - 1
    return LoadError(
        f"{first.message} (and {more} more problem{'s' if more > 1 else ''})",
        file=first.file,
        line=first.line,
        column=first.column,
        field=first.field,
        problems=problems,
    )


_TYPE_WORDS = {
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
}
_EXPRESSION_FIELDS = ("items", "condition", "if", "transform", "retry_on")


def _one_message(path: NodePath, found: list[tuple[str, str]], data: Any) -> str:
    """One message per place: the branches of a union (``str | list``) read as one rule."""
    kinds = [kind for kind, _ in found]
    if len(found) < 2 or not all(kind in _TYPE_WORDS for kind in kinds):
        return found[0][1]
    name = str(path[-1]) if path and isinstance(path[-1], str) else "the value"
    words = [_TYPE_WORDS[kind] for kind in kinds if kind != "string_type"]
    if "string_type" in kinds:
        words.append("an expression" if name in _EXPRESSION_FIELDS else "a string")
    value: Any = data
    for part in path:
        value = value[part]
    rule = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    return f"{name} must be {rule}, got {_short(value)}"


def _locate(error: Any, data: Any, vocabulary: list[str]) -> tuple[NodePath, str]:
    """Map a pydantic ``loc`` onto the document, skipping union tags and type labels."""
    path: list[str | int] = []
    current = data
    loc = list(error["loc"])
    kind = error["type"]
    for i, part in enumerate(loc):
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and part < len(current)
        if in_dict or in_list:
            path.append(part)
            current = current[part]
        elif kind == "missing" and i == len(loc) - 1:
            return tuple(path), f"missing required field {part!r}"
    if kind == "extra_forbidden":
        name = str(path[-1])
        if len(path) == 1 and name in m.Config.model_fields:  # a setting at the top
            return tuple(path), f"unknown field {name!r}; did you mean 'config.{name}'?"
        return tuple(path), f"unknown field {name!r}{suggest(name, vocabulary)}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = error.get("ctx", {}).get("tag")
        if tag is None:
            return tuple(path), f"a step needs a `type` (one of: {', '.join(m.STEP_TYPES)})"
        return (*path, "type"), f"unknown step type {tag!r}{suggest(str(tag), m.STEP_TYPES)}"
    message = str(error["msg"]).removeprefix("Value error, ")
    field = str(path[-1]) if path and isinstance(path[-1], str) else "the value"
    message = _in_own_words(kind, field, message, error)
    if kind not in ("value_error", "assertion_error") and "input" in error:
        value = error["input"]
        message += f", got {_short(value)}"
        if kind == "string_type" and isinstance(value, bool):
            message += " (YAML reads yes/no/on/off/true/false as booleans: quote the value)"
        if isinstance(value, str) and "{{" in value and kind in _NUMBER_KINDS:
            message += f" ({field} takes a number written in the file, not an expression)"
        elif isinstance(value, str) and kind in _NUMBER_KINDS and value[:1].isdigit():
            message += " (write the number alone: durations are seconds, 10 or 2.5)"
        if kind in ("literal_error", "enum"):
            options = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
            message += suggest(str(value), options)
    return tuple(path), message


_NUMBER_KINDS = frozenset(
    {"int_parsing", "int_type", "int_from_float", "float_parsing", "float_type"}
)
_OWN_WORDS = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "dict_type": "a mapping (name: value)",
    "model_type": "a mapping (name: value)",
    "model_attributes_type": "a mapping (name: value)",
    "list_type": "a list",
    "string_type": "a string",
}


def _in_own_words(kind: str, field: str, message: str, error: Any) -> str:
    """pydantic's sentence in the workflow's words: the field by its name, never "Input
    should be" or a class name."""
    if kind in _OWN_WORDS:
        return f"{field} must be {_OWN_WORDS[kind]}"
    if kind in ("literal_error", "enum"):
        expected = str(error.get("ctx", {}).get("expected", ""))
        return f"{field} must be one of {expected}"
    return message.replace("Input should be", f"{field} must be").replace(
        "Input should have", f"{field} must have"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
