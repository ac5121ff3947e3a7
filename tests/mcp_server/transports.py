"""The MCP server as a client meets it: ``wfkit mcp`` over stdio, ``wfkit mcp --http`` on a
free port of 127.0.0.1 (a real uvicorn server), or in process (for coverage)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from tests.conftest import measured

TOKEN = "t0ken-for-the-tests"
HANG = 120  # a hang becomes a failure, never a measure of speed


def server_env(root: Path, **extra: str) -> dict[str, str]:
    return {"WFKIT_STORE": str(root / "store"), "PATH": os.environ["PATH"], **measured(), **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def http_server(
    root: Path, *extra: str, token: str | None = TOKEN, bind: str = "127.0.0.1"
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``wfkit mcp --http 127.0.0.1:PORT`` (with ``--token-file`` when ``token``): its URL
    once it answers, and its process; SIGTERM at the end."""
    import httpx2

    port = free_port()
    argv = [sys.executable, "-m", "wfkit", "mcp", "--root", str(root)]
    argv += ["--http", f"{bind}:{port}", *extra]
    if token is not None:
        (root.parent / "token").write_text(token + "\n")
        argv += ["--token-file", str(root.parent / "token")]
    proc = subprocess.Popen(argv, env=server_env(root), cwd=root, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/mcp"
    deadline = time.monotonic() + HANG
    while True:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            httpx2.get(url, timeout=5)
            break
        except httpx2.TransportError:
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.05)
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=HANG)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@asynccontextmanager
async def http_client(url: str, token: str | None = TOKEN, **client: Any) -> AsyncIterator[Client]:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=HANG)
    async with http, Client(streamable_http_client(url, http_client=http), **client) as connected:
        yield connected


@asynccontextmanager
async def connect(transport: str, root: Path, **client: Any) -> AsyncIterator[Client]:
    """A client of a server with ``root`` as its root and ``root/store`` as its store."""
    if transport == "in-process":
        from wfkit.mcp_server.server import build_server

        async with Client(build_server(root, store=root / "store"), **client) as connected:
            yield connected
    elif transport == "stdio":
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "wfkit", "mcp", "--root", str(root)],
            env=server_env(root),
            cwd=str(root),
        )
        async with Client(params, **client) as connected:
            yield connected
    else:
        with http_server(root) as (url, _):
            async with http_client(url, **client) as connected:
                yield connected
