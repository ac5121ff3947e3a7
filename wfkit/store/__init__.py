"""Run stores: where runs, step executions, errors, checkpoints, breakers and output live.

The engine never imports this package: it emits events (``wfkit.engine.events``) and reads
stored frames and breaker states through callbacks in its options. The commands open a store
with :func:`open_store` and pass it those. A store is a path (SQLite, the default) or a
``postgresql://`` URL (the ``postgres`` extra); both implement :class:`wfkit.store.base.Store`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from wfkit.errors import StoreError

if TYPE_CHECKING:
    from wfkit.store.base import Store

#: URL schemes of a PostgreSQL store
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
INSTALL_HINT = "pip install 'wfkit[postgres]'"


def store_spec(store: str | Path | None) -> str | Path:
    """The store asked for: ``store``, else ``$WFKIT_STORE``, else the default path; a URL
    stays a string, anything else is a path."""
    if store is None:
        store = os.environ.get("WFKIT_STORE") or None
    if isinstance(store, str) and _URL.match(store):
        return store
    from wfkit.store.sqlite import resolve_store_path

    return resolve_store_path(store)


def is_url(store: str | Path | None) -> bool:
    """Whether the store asked for is a server (a URL) rather than a file."""
    return isinstance(store_spec(store), str)


def local_dir(store: str | Path | None) -> Path:
    """The folder for this machine's files beside the store (compile cache, test runs): the
    store file's folder, or ``.wfkit/`` for a server."""
    spec = store_spec(store)
    if isinstance(spec, str):
        from wfkit.store.sqlite import DEFAULT_DIR

        return Path(DEFAULT_DIR)
    return spec.parent


def open_store(
    store: str | Path | None = None, *, create: bool = True, read_only: bool = False
) -> Store:
    """Open the run store at a path or ``postgresql://`` URL (see :func:`store_spec`).

    ``create=False`` and ``read_only`` never create a store or its tables: a missing one
    reads as empty. Raises :class:`StoreError` when it cannot be opened (exit 2).
    """
    spec = store_spec(store)
    if isinstance(spec, str):
        if not spec.startswith(POSTGRES_SCHEMES):
            scheme = spec.split(":", 1)[0]
            raise StoreError(
                f"unsupported run store URL scheme {scheme!r}: use a path (SQLite) or a"
                " postgresql:// URL"
            )
        try:
            from wfkit.store.postgres import PostgresStore
        except ImportError as exc:
            if not (exc.name or "").startswith("psycopg"):
                raise
            raise StoreError(f"a PostgreSQL run store needs psycopg: {INSTALL_HINT}") from None
        return PostgresStore(spec, create=create, read_only=read_only)
    from wfkit.store.sqlite import RunStore

    return RunStore(spec, create=create, read_only=read_only)
