"""Runs and workflow files served as MCP resources: ``wfkit://runs``, ``wfkit://runs/{run_id}``
and ``wfkit://workflows/{path}`` (each workflow file under the root listed, up to a bound)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from wfkit.controls import encodable
from wfkit.errors import InputError, WfkitError
from wfkit.mcp_server.arguments import check_path_text, confine

#: workflow files listed as resources (the rest stay readable through the template)
MAX_LISTED_FILES = 500
_SKIPPED_DIRS = {"node_modules", "__pycache__", "venv"}
MAX_FILE_BYTES = 5_000_000  # as the loader: a resource is never bigger than a loadable file


def workflow_files(root: Path) -> list[Path]:
    """YAML files under ``root`` (hidden and tool folders skipped), at most a bounded count."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for name in sorted(files):
            path = Path(folder) / name
            try:
                workflow_file(root, path.relative_to(root).as_posix())
            except InputError:
                continue  # not served: a link leading out, a FIFO, a hidden or huge file
            found.append(path)
            if len(found) >= MAX_LISTED_FILES:
                return found
    return found


def workflow_file(root: Path, path: str) -> Path:
    """A workflow file the resources serve: a regular ``.yaml``/``.yml`` file inside the root,
    not hidden, and small enough to load; anything else is refused."""
    full = confine(root, path)
    if full.suffix not in (".yaml", ".yml"):
        raise InputError(f"{path!r} is not a workflow file (.yaml or .yml)")
    if any(part.startswith(".") for part in full.relative_to(root).parts):
        raise InputError(f"{path!r} is hidden: not served")
    if not full.is_file():  # a folder, a FIFO, a device, or nothing
        raise InputError(f"{path!r} is not a regular file")
    if full.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"{path!r} is larger than {MAX_FILE_BYTES} bytes")
    return full


def add_resources(server: Any, base: Path, store: str | Path | None, read_only: bool) -> None:
    def runs() -> str:
        """Recorded runs, newest first (JSON)."""
        from wfkit.commands import list_runs

        runs = list_runs(store, 100, read_only=read_only)
        return json.dumps([r.model_dump(mode="json") for r in runs], indent=2)

    def run(run_id: str) -> str:
        """Everything recorded about one run, as workflow_debug_info returns it (JSON)."""
        from wfkit.commands.debug import debug_run

        check_path_text(run_id, "run_id")
        info = debug_run(run_id, store=store, read_only=read_only).model_dump(mode="json")
        return encodable(json.dumps(info, indent=2, ensure_ascii=False))

    def workflow(path: str) -> str:
        """A workflow file under the root."""
        from wfkit.language.yamlsrc import read_source

        return read_source(workflow_file(base, path), limit=MAX_FILE_BYTES)

    json_type = "application/json"
    server.resource("wfkit://runs", name="runs", mime_type=json_type)(_clean(runs))
    server.resource("wfkit://runs/{run_id}", name="run", mime_type=json_type)(_clean(run))
    server.resource("wfkit://workflows/{+path}", name="workflow", mime_type="application/yaml")(
        _clean(workflow)
    )
    for file in workflow_files(base):
        relative = file.relative_to(base).as_posix()

        def read(relative: str = relative) -> str:
            return workflow(relative)

        server.resource(
            f"wfkit://workflows/{relative}",
            name=relative,
            description=f"The workflow file {relative}",
            mime_type="application/yaml",
        )(_clean(_static(read)))


def _clean(read: Callable[..., str]) -> Callable[..., str]:
    """A resource function whose errors reach the client as their type and message."""
    from mcp.server.mcpserver.exceptions import ResourceError

    @wraps(read)
    def reader(*args: Any, **kwargs: Any) -> str:
        try:
            return read(*args, **kwargs)
        except WfkitError as exc:
            raise ResourceError(f"{exc.type_name}: {exc}") from None

    return reader


def _static(read: Callable[[], str]) -> Callable[[], str]:
    """A resource function without parameters (the SDK checks the signature)."""

    def static() -> str:
        return read()

    return static
