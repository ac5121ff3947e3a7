"""A real Dask cluster for the executor tests: a scheduler and two workers, each its own
process on 127.0.0.1 (``dask scheduler``, ``dask worker``), started once and killed at the end.

Without ``distributed`` the tests skip, saying why; under ``CI=true`` they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent


def _require_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        message = "distributed is not installed: pip install 'wfkit[dask]'"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    address: str
    processes: list[subprocess.Popen[bytes]]
    logs: Path

    def worker_pids(self, count: int = 2) -> set[int]:
        """The worker processes' pids (waiting until ``count`` workers are up)."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(count, timeout=60)
            return set(client.run(os.getpid).values())


@contextlib.contextmanager
def running_cluster(
    logs: Path, port: int | None = None, nthreads: int = 1, worker_args: tuple[str, ...] = ()
) -> Iterator[Cluster]:
    """A scheduler on ``port`` (a free one when None) and two workers (``worker_args`` added
    to their command), each its own process group; stopped (workers first) at the end."""
    dask = shutil.which("dask", path=str(VENV_BIN)) or shutil.which("dask")
    assert dask is not None, "the dask command comes with distributed"
    port = port or free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> None:
        with (logs / f"{name}.log").open("ab") as out:
            processes.append(
                subprocess.Popen(
                    [dask, *args],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=logs,
                    start_new_session=True,  # its own group: killed whole at the end
                )
            )

    start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
    for n in (1, 2):
        start(
            f"worker{n}",
            "worker",
            address,
            "--host",
            "127.0.0.1",
            "--nworkers",
            "1",
            "--nthreads",
            str(nthreads),
            "--no-dashboard",
            *worker_args,
        )
    cluster = Cluster(address, processes, logs)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                cluster.worker_pids(2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield cluster
    finally:
        for process in reversed(processes):  # workers first, then the scheduler
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)  # a clean exit keeps their coverage
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _require_distributed()
    with running_cluster(tmp_path_factory.mktemp("dask")) as cluster:
        yield cluster
