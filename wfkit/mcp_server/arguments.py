"""The arguments of the MCP tools: their types as the SDK publishes them, paths confined to the
server's root, object arguments also given as JSON text, and one-sentence argument errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from wfkit.errors import InputError

#: longest path argument accepted (Linux PATH_MAX); longer ones are refused before any I/O
MAX_PATH_CHARS = 4096
#: longest file name in a path argument (Linux NAME_MAX)
MAX_NAME_CHARS = 255


class RootEscapeError(InputError):
    """A workflow path points outside the server's root."""


def confine(root: Path, path: str) -> Path:
    """``path`` resolved inside ``root`` (symlinks followed); anything else is refused."""
    check_path_text(path, "workflow")
    candidate = Path(path)
    try:
        full = (candidate if candidate.is_absolute() else root / candidate).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
        raise InputError(f"workflow path {path[:200]!r} cannot be resolved: {exc}") from None
    if not full.is_relative_to(root):
        raise RootEscapeError(
            f"{path!r} is outside the server's root {str(root)!r}; give a path inside it"
        )
    return full


def check_path_text(text: str, name: str) -> None:
    """Refuse a NUL byte or an over-long path before it reaches the file system."""
    if "\0" in text:
        raise InputError(f"argument {name!r} contains a NUL byte")
    if len(text) > MAX_PATH_CHARS:
        raise InputError(
            f"argument {name!r} is {len(text)} characters long; paths are at most {MAX_PATH_CHARS}"
        )
    longest = max((len(part) for part in text.split("/")), default=0)
    if longest > MAX_NAME_CHARS:
        raise InputError(
            f"argument {name!r} has a name of {longest} characters; file names are at most "
            f"{MAX_NAME_CHARS}"
        )


def json_arg(value: Any, name: str, kind: type = dict) -> Any:
    """An object or list argument, also accepted as JSON text (agents often send strings)."""
    if value is None or isinstance(value, kind):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise InputError(f"{name} is neither dict nor JSON text: {exc}") from None
        if isinstance(parsed, kind):
            return parsed
    raise InputError(f"{name} must be a JSON {'object' if kind is dict else 'array'}")


Workflow = Annotated[
    str,
    Field(
        description="Path of a workflow YAML file, relative to the server's root (or an "
        "absolute path inside it), e.g. 'flows/build.yaml'."
    ),
]
OptionalWorkflow = Annotated[
    str | None,
    Field(
        description="Path of a workflow YAML file inside the server's root; omit it for "
        "checks that need no workflow."
    ),
]
RunId = Annotated[
    str,
    Field(description="A run id as returned by workflow_run or workflow_list_runs."),
]
Inputs = Annotated[
    dict[str, Any] | str | None,
    Field(
        description="Workflow inputs by name, as an object or as JSON text, e.g. "
        '{"max_attempts": 3}; declared defaults fill the rest.'
    ),
]
Answers = Annotated[
    dict[str, Any] | str | None,
    Field(
        description="Answers to user_input steps by step id, as an object or JSON text, "
        'e.g. {"confirm": "yes"}.'
    ),
]


def argument_error(tool: str, error: Any) -> str:
    """One sentence for a pydantic validation error of a tool's arguments."""
    problems = []
    for item in error.errors(include_url=False):
        name = ".".join(str(part) for part in item["loc"]) or "arguments"
        if item["type"] == "missing":
            problems.append(f"argument {name!r} is required")
        else:
            problems.append(f"argument {name!r}: {item['msg']}")
    return f"{tool}: " + "; ".join(dict.fromkeys(problems))
