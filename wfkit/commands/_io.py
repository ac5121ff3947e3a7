"""Reading what commands accept as text: inputs, answers, JSON arguments, injected faults."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wfkit.errors import InputError, LoadError
from wfkit.language.stateplan import TextInput
from wfkit.language.yamlsrc import parse, read_source

if TYPE_CHECKING:
    from wfkit.engine.inject import Fault
    from wfkit.language.models import Workflow


def agent_command(workflow: Workflow, given: str | None = None) -> str | tuple[str, ...] | None:
    """The command that performs agent steps: ``given`` (``--agent-command``), else
    ``WFKIT_AGENT_COMMAND``, else the workflow's ``config.agent.command``, else None."""
    command = given or os.environ.get("WFKIT_AGENT_COMMAND") or None
    if command:
        return command
    configured = workflow.config.agent
    if configured is None:
        return None
    return configured.command if isinstance(configured.command, str) else tuple(configured.command)


def parse_assignments(pairs: list[str] | None) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}`` as :class:`TextInput` values, which the
    declared input types turn into values (a ``string`` keeps ``"1"``, an ``integer`` is 1)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InputError(f"input {pair!r} should look like name=value")
        out[name.strip()] = TextInput(value)
    return out


def json_argument(text: str | None, option: str, mapping: bool = False) -> Any:
    """A JSON option value; ``@FILE`` reads a JSON or YAML file."""
    if text is None:
        return None
    if text.startswith("@"):
        value: Any = read_mapping(text[1:], option.lstrip("-")) if mapping else None
        if not mapping:
            value = parse(read_source(text[1:], f"{option} file"), text[1:]).data
    else:
        try:
            value = json.loads(text)
        except RecursionError:
            raise InputError(f"{option} is nested too deeply to read") from None
        except ValueError as exc:
            raise InputError(f"{option} is not valid JSON: {exc}") from None
    if mapping and not isinstance(value, dict):
        raise InputError(f"{option} must be a JSON object")
    return value


def read_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML or JSON file holding a mapping."""
    file = str(path)
    data = parse(read_source(path, f"{what} file"), file).data
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LoadError(f"the {what} file must hold a mapping", file=file, line=1, column=1)
    return data


def parse_faults(texts: list[str] | None) -> list[Fault]:
    """``--inject`` texts as faults (an InputError names a malformed one)."""
    from wfkit.engine.inject import parse_fault

    return [parse_fault(text) for text in texts or []]
