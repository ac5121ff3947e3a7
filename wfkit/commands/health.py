"""``health``: is this machine ready to run workflows (and this workflow, if given)?"""

from __future__ import annotations

import asyncio
import shutil
import sys
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from wfkit.errors import LoadError, StoreError, ToolConnectionError
from wfkit.language.loader import LoadedWorkflow, load_file
from wfkit.store import open_store

MIN_FREE_DISK_MB = 100
MIN_FREE_MEMORY_MB = 100
PACKAGES = ("pydantic", "pyyaml", "jinja2", "stamina", "typer", "rich")
OPTIONAL = ("prometheus-client", "mcp", "pyinstrument")


class Check(BaseModel):
    """One health check."""

    model_config = ConfigDict(frozen=True)

    name: str
    ok: bool
    detail: str


class HealthReport(BaseModel):
    """The result of ``wfkit health``: ok when every check is."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    checks: list[Check]
    versions: dict[str, str | None]


def _store_check(store: str | Path | None, read_only: bool) -> tuple[Check, Path | None]:
    try:
        with open_store(store, create=False, read_only=read_only) as run_store:
            where, path = run_store.location, run_store.path
            if run_store.missing:  # health creates none: the first run will
                return Check(name="store", ok=True, detail=f"{where}: no runs yet"), path
            result = run_store.integrity()
            runs = len(run_store.list_runs(limit=-1))
    except StoreError as exc:
        return Check(name="store", ok=False, detail=str(exc)), None
    ok = result == "ok"
    return Check(name="store", ok=ok, detail=f"{where}: {runs} runs, integrity {result}"), path


def _privacy_check(path: Path) -> list[Check]:
    """A store readable by other users exposes every run's state and output."""
    exposed = [
        p
        for p in (path.parent, path, Path(f"{path}-wal"), Path(f"{path}-shm"))
        if p.exists() and p.stat().st_mode & 0o077
    ]
    if not exposed:
        return [] if not path.exists() else [Check(name="store privacy", ok=True, detail="private")]
    folder = [str(p) for p in exposed if p.is_dir()]
    files = [str(p) for p in exposed if not p.is_dir()]
    fix = " && ".join(
        part
        for part in (
            f"chmod 700 {' '.join(folder)}" if folder else "",
            f"chmod 600 {' '.join(files)}" if files else "",
        )
        if part
    )
    return [
        Check(
            name="store privacy",
            ok=False,
            detail=f"readable by other users: {', '.join(map(str, exposed))}; run: {fix}",
        )
    ]


def _memory_available_mb() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except OSError:  # pragma: no cover - not Linux
        return None
    return None  # pragma: no cover


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


async def _server_checks(loaded: LoadedWorkflow, start: bool) -> list[Check]:
    """Start each MCP server of the workflow, list its tools, stop it (unless not ``start``)."""
    if not loaded.workflow.mcp_servers:
        return []
    if not start:
        return [
            Check(name=f"mcp server {name}", ok=True, detail="not checked in read-only mode")
            for name in loaded.workflow.mcp_servers
        ]
    from wfkit.mcp_client.tools import McpTools

    tools = McpTools(loaded.workflow.mcp_servers, Path(loaded.source_path).parent)
    checks = []
    try:
        for name in loaded.workflow.mcp_servers:
            try:
                connection = await tools.connect(name)
            except ToolConnectionError as exc:
                checks.append(Check(name=f"mcp server {name}", ok=False, detail=exc.message))
            else:
                offered = ", ".join(sorted(connection.tools)) or "no tools"
                checks.append(
                    Check(name=f"mcp server {name}", ok=True, detail=f"started; offers {offered}")
                )
    finally:
        await tools.aclose()
    return checks


def check_health(
    store: str | Path | None = None,
    workflow: str | Path | None = None,
    *,
    read_only: bool = False,
) -> HealthReport:
    """Synchronous :func:`check_health_async`."""
    return asyncio.run(check_health_async(store, workflow, read_only=read_only))


async def check_health_async(
    store: str | Path | None = None,
    workflow: str | Path | None = None,
    *,
    read_only: bool = False,
) -> HealthReport:
    """Store reachable and consistent, disk and memory headroom, dependency versions, and for
    ``workflow``: that it loads and that its MCP servers start (and which tools they offer).

    No store is created (a missing one is reported); with ``read_only`` the store is opened
    read-only and nothing is started: the servers are "not checked in read-only mode".
    """
    store_check, path = _store_check(store, read_only)
    checks = [store_check]
    if path is not None:
        checks.extend(_privacy_check(path))
    where = path.parent if path else Path.cwd()
    while not where.exists() and where != where.parent:  # a store not created yet
        where = where.parent
    usage = shutil.disk_usage(where)
    free_mb = usage.free // (1024 * 1024)
    checks.append(
        Check(
            name="disk",
            ok=free_mb >= MIN_FREE_DISK_MB,
            detail=f"{free_mb} MiB free (needs {MIN_FREE_DISK_MB})",
        )
    )
    memory = _memory_available_mb()
    checks.append(
        Check(
            name="memory",
            ok=memory is None or memory >= MIN_FREE_MEMORY_MB,
            detail="unknown" if memory is None else f"{memory} MiB available",
        )
    )
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    versions.update({p: _version(p) for p in (*PACKAGES, *OPTIONAL)})
    missing = [p for p in PACKAGES if versions[p] is None]
    checks.append(
        Check(
            name="dependencies",
            ok=not missing,
            detail=f"missing: {', '.join(missing)}"
            if missing
            else ", ".join(f"{p} {versions[p]}" for p in PACKAGES),
        )
    )
    if workflow is not None:
        try:
            loaded = load_file(workflow)
        except LoadError as exc:
            checks.append(Check(name="workflow", ok=False, detail=str(exc)))
        else:
            checks.append(
                Check(name="workflow", ok=True, detail=f"{loaded.name}: {len(loaded.plans)} steps")
            )
            checks.extend(await _server_checks(loaded, start=not read_only))
    return HealthReport(ok=all(c.ok for c in checks), checks=checks, versions=versions)
