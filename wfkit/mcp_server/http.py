"""``wfkit mcp --http HOST:PORT``: the same tools over streamable HTTP, for a team.

The SDK's streamable HTTP transport on uvicorn, at ``/mcp``. With a token (``--token-file``
or ``WFKIT_MCP_TOKEN``) every request must carry ``Authorization: Bearer TOKEN``: the SDK's
bearer middleware answers any other with 401 before the request is read (nothing of its body
is logged). A server that listens beyond the loopback interface without a token is refused
at start. The Host and Origin headers are checked against DNS rebinding (the SDK's transport
security settings): a browser page of another origin is answered 403.

SIGTERM, SIGINT or SIGHUP ends the server cleanly: no new run starts, every run it runs (calls
in flight, ``workflow_start`` runs) is cancelled as ``wfkit cancel`` would (it ends
``cancelled`` after its ``finally`` steps, and its call is answered), then the server stops
taking requests and exits 0. A second signal stops it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOGGER = logging.getLogger("wfkit.mcp")

TOKEN_ENV = "WFKIT_MCP_TOKEN"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

PATH = "/mcp"
STOP_SECONDS = 60.0
"""How long a SIGTERM waits for the runs it cancelled to end (their ``finally`` steps)."""
GRACE_SECONDS = 10
"""Then, how long calls still in flight have to end before they are cancelled."""


@dataclass(frozen=True)
class Listen:
    """Where an HTTP server listens and the token its clients must show."""

    host: str
    port: int
    token: str | None
    #: more names clients may reach the server by (``--allow-host``)
    names: tuple[str, ...] = ()

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{PATH}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_on(address: str, token_file: str | Path | None, names: tuple[str, ...] = ()) -> Listen:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) and the token, checked; a ValueError says
    what is wrong. ``WFKIT_MCP_TOKEN`` is taken out of the environment once read: the
    commands the server runs never see it."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise ValueError(f"--http {address!r}: give HOST:PORT, e.g. 127.0.0.1:8765")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise ValueError(f"--http {address!r}: the port must be a number from 1 to 65535")
    token = _token(token_file)
    if token is None and not is_loopback(host):
        raise ValueError(
            f"--http {address!r} listens beyond this machine without a token: anyone who "
            f"reaches it could run commands. Give --token-file FILE or {TOKEN_ENV}, or "
            "listen on 127.0.0.1"
        )
    return Listen(host, port, token, names)


def _token(token_file: str | Path | None) -> str | None:
    if token_file is not None:
        try:
            text = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"--token-file {token_file}: cannot read it: {exc}") from None
        if not text:
            raise ValueError(f"--token-file {token_file} is empty")
        return text
    text = os.environ.pop(TOKEN_ENV, "").strip()
    return text or None


class StaticToken:
    """The SDK's ``TokenVerifier`` for one shared token (compared in constant time)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> Any:
        from mcp.server.auth.provider import AccessToken

        if hmac.compare_digest(token.encode(), self._token):
            return AccessToken(token="***", client_id="wfkit", scopes=[])
        return None


def auth_of(listen: Listen) -> dict[str, Any]:
    """The ``MCPServer`` arguments that require the token, or none without one."""
    if listen.token is None:
        return {}
    from mcp.server.auth.settings import AuthSettings

    return {
        "token_verifier": StaticToken(listen.token),
        # no OAuth: no resource metadata that would send clients to an authorization
        # server there is none of (the issuer is required by the settings, never served)
        "auth": AuthSettings(issuer_url=listen.url.removesuffix(PATH), resource_server_url=None),
    }


def host_names(listen: Listen) -> list[str]:
    """The names clients may reach the server by (the Host header it accepts): the loopback
    names, the bound address, and beyond loopback this machine's names and addresses (every
    address of a wildcard bind), and the ``--allow-host`` names."""
    import socket

    names = ["127.0.0.1", "localhost", "::1", listen.host, *listen.names]
    if not listen.loopback:
        names += [socket.gethostname(), socket.getfqdn()]
        if ipaddress.ip_address(_wildcard(listen.host)).is_unspecified:
            with contextlib.suppress(OSError):
                names += [str(a[4][0]) for a in socket.getaddrinfo(socket.gethostname(), None)]
    return [f"[{n}]" if ":" in n else n for n in dict.fromkeys(n for n in names if n)]


def _wildcard(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "127.0.0.1"  # a name: not a wildcard


def _security(listen: Listen) -> Any:
    from mcp.server.transport_security import TransportSecuritySettings

    names = host_names(listen)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*names, *(f"{name}:*" for name in names)],
        allowed_origins=[
            f"{scheme}://{name}{port}"
            for name in names
            for scheme in ("http", "https")
            for port in ("", ":*")
        ],
    )


def serve_http(server: Any, listen: Listen, store: str | Path | None) -> None:
    """Serve ``server`` (built with :func:`auth_of`) over streamable HTTP until SIGTERM."""
    import uvicorn

    app = server.streamable_http_app(
        streamable_http_path=PATH, transport_security=_security(listen), host=listen.host
    )
    config = uvicorn.Config(
        app,
        host=listen.host,
        port=listen.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACE_SECONDS,
        lifespan="on",
    )
    asyncio.run(_stopping_server(uvicorn.Server)(config, store, listen).serve())


def _stopping_server(base: type) -> type:
    """uvicorn's server, stopped by SIGTERM or SIGINT after the runs it serves end."""

    class StoppingServer(base):  # type: ignore[misc]
        def __init__(self, config: Any, store: str | Path | None, listen: Listen) -> None:
            super().__init__(config)
            self.store = store
            self.listen = listen
            self.stopping: asyncio.Future[None] | None = None
            self.now = threading.Event()  # a second signal: stop waiting for runs

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:  # bound: say where (not before, when the bind may fail)
                print(f"wfkit mcp: serving {self.listen.url}", file=sys.stderr, flush=True)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            loop = asyncio.get_running_loop()
            for sig in STOP_SIGNALS:
                loop.add_signal_handler(sig, self.signalled)
            try:
                yield
            finally:
                for sig in STOP_SIGNALS:
                    loop.remove_signal_handler(sig)
            print("wfkit mcp: stopped", file=sys.stderr, flush=True)

        def signalled(self) -> None:
            if self.stopping is not None:  # a second signal: stop now
                self.now.set()
                self.should_exit = self.force_exit = True
                return
            from wfkit.mcp_server.tools import STOPPING

            STOPPING.set()  # no new run starts (tools that run refuse)
            self.stopping = asyncio.ensure_future(self.stop())

        async def stop(self) -> None:
            """Cancel the runs in flight (their calls answer with the cancelled run), then
            stop taking requests."""
            from wfkit.commands.manage import cancel_own_runs

            print("wfkit mcp: stopping", file=sys.stderr, flush=True)
            try:
                await asyncio.to_thread(cancel_own_runs, self.store, STOP_SECONDS, self.now)
            except Exception as exc:  # a store gone: stop anyway
                LOGGER.warning("runs not cancelled: %s", exc)
            finally:
                self.should_exit = True

    return StoppingServer
