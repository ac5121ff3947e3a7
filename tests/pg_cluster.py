"""A throwaway PostgreSQL cluster for tests and benchmarks (never used by wfkit itself).

``initdb`` and ``pg_ctl`` from the newest ``/usr/lib/postgresql/<major>/bin`` (else from
``PATH``) create a cluster in a temporary folder that listens on 127.0.0.1 on a free port,
with its unix socket in the same folder. PostgreSQL refuses to run as root: as root the
cluster is created and run as the ``postgres`` user (``runuser``), which then owns the folder.
Clients connect as the superuser ``wfkit`` with a random password made for the cluster
(scram-sha-256), so no other local user can connect to it.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "wfkit"
RUN_AS = "postgres"  # the unprivileged user the cluster runs as when this process is root


class ClusterUnavailableError(RuntimeError):
    """No PostgreSQL binaries here (or no unprivileged user to run them as root)."""


def find_binaries() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: the newest Debian-style install first."""
    installs = []
    for candidate in Path("/usr/lib/postgresql").glob("*/bin"):
        if (candidate / "initdb").exists() and re.fullmatch(r"\d+", candidate.parent.name):
            installs.append((int(candidate.parent.name), candidate))
    if installs:
        return max(installs)[1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Cluster:
    """A running throwaway cluster."""

    root: Path
    bin: Path
    port: int
    run_as: str | None
    #: the superuser's password (scram-sha-256: other local users cannot connect)
    password: str = ""

    def url(self, dbname: str = "postgres") -> str:
        """A URL of one database of the cluster."""
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create an empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _cmd(self, *argv: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else list(argv)

    def pg_ctl(self, *args: str) -> None:
        """``pg_ctl -D DATA ARGS`` as the cluster's owner, waiting for it to finish (a server
        it starts logs to the cluster's log, never to the pipes this process reads)."""
        data, log = str(self.root / "data"), str(self.root / "log")
        _run(self._cmd(str(self.bin / "pg_ctl"), "-D", data, "-l", log, "-w", *args))

    def stop(self) -> None:
        """Stop the server at once and remove its folder."""
        subprocess.run(
            self._cmd(
                str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"
            ),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(settings: dict[str, str] | None = None) -> Cluster:
    """Create and start a cluster; :meth:`Cluster.stop` removes it.

    ``settings`` are server parameters (``fsync=off`` for tests, say). Raises
    :class:`ClusterUnavailableError` when there are no binaries, RuntimeError when the
    cluster does not start.
    """
    binaries = find_binaries()
    if binaries is None:
        raise ClusterUnavailableError(
            "no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or on"
            " PATH: install Debian's postgresql package"
        )
    run_as = None
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        try:
            import pwd

            owner = pwd.getpwnam(RUN_AS)
        except KeyError:
            raise ClusterUnavailableError(
                f"running as root and there is no {RUN_AS!r} user to run PostgreSQL as"
            ) from None
        run_as = RUN_AS
    root = Path(tempfile.mkdtemp(prefix="wfkit-pg-"))
    if run_as:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    cluster = Cluster(root, binaries, free_port(), run_as, secrets.token_hex(16))
    pwfile = root / "pwfile"
    pwfile.write_text(cluster.password, encoding="ascii")
    if run_as:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    try:
        _run(
            cluster._cmd(
                str(binaries / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                SUPERUSER,
                "-A",
                "scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            )
        )
        pwfile.unlink()
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(cluster.port),
            "unix_socket_directories": str(root),
            "max_connections": "100",
            "shared_buffers": "32MB",
            **(settings or {}),
        }
        _run(
            cluster._cmd(
                str(binaries / "pg_ctl"),
                "-D",
                str(root / "data"),
                "-l",
                str(root / "log"),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(f"-c {k}={v}" for k, v in options.items()),
                "start",
            )
        )
    except BaseException:
        log = root / "log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        cluster.stop()
        if detail:
            raise RuntimeError(f"PostgreSQL did not start: {detail}") from None
        raise
    return cluster


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd="/")
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} ... failed ({done.returncode}): {done.stderr[-2000:]}")
