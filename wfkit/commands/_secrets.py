"""What a run reads when it starts, beside its inputs: its ``secrets:`` and its ``env_file``.

Both are read here, in the commands layer (the engine does no I/O of its own), each problem
a start error naming the workflow file, line and field (exit 2): a missing variable or file
says which, a malformed line of the env file gives its number.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from wfkit.errors import InputError, LoadError
from wfkit.language.loader import LoadedWorkflow


def _error(loaded: LoadedWorkflow, message: str, *path: str | int) -> LoadError:
    return loaded.source.error(message, path)


def read_secrets(loaded: LoadedWorkflow) -> dict[str, str]:
    """The value of each declared secret, from its variable or its file."""
    values: dict[str, str] = {}
    folder = Path(loaded.source_path).parent
    for name, spec in loaded.workflow.secrets.items():
        if spec.env is not None:
            value = os.environ.get(spec.env)
            if value is None and spec.required:
                raise _error(
                    loaded,
                    f"secret {name!r} reads the environment variable {spec.env}, which is not"
                    " set (set it, or mark the secret `required: false`)",
                    "secrets",
                    name,
                    "env",
                )
        else:
            assert spec.file is not None
            path = folder / spec.file
            try:
                value = path.read_text(encoding="utf-8").removesuffix("\n")
            except (OSError, UnicodeDecodeError) as exc:
                if spec.required:
                    reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8"
                    raise _error(
                        loaded,
                        f"secret {name!r} reads the file {path}: {reason}",
                        "secrets",
                        name,
                        "file",
                    ) from None
                value = None
        values[name] = value or ""
    return values


def read_env_file(loaded: LoadedWorkflow) -> dict[str, str]:
    """The variables of the workflow's ``env_file`` (dotenv syntax)."""
    name = loaded.workflow.env_file
    if name is None:
        return {}
    from dotenv.parser import parse_stream

    path = Path(loaded.source_path).parent / name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8"
        raise _error(loaded, f"env_file {path}: {reason}", "env_file") from None
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise _error(
                loaded,
                f"env_file {path}, line {binding.original.line}: not a NAME=value line:"
                f" {binding.original.string.strip()[:60]!r}",
                "env_file",
            )
        if binding.key is not None:
            values[binding.key] = binding.value or ""
    return values


def secret_inputs(loaded: LoadedWorkflow) -> list[str]:
    """The names of the workflow's ``secret: true`` inputs."""
    return [name for name, spec in loaded.workflow.inputs.items() if spec.secret]


def require_secret_inputs(loaded: LoadedWorkflow, given: dict[str, Any], run_id: str) -> None:
    """A resume needs every secret input given again: the store kept only ``***``."""
    missing = [name for name in secret_inputs(loaded) if name not in given]
    if missing:
        flags = " ".join(f"-i {name}=..." for name in missing)
        raise InputError(
            f"resuming {run_id} needs the secret input{'s' if len(missing) > 1 else ''}"
            f" {', '.join(map(repr, missing))} again (secrets are never stored): {flags}"
        )
