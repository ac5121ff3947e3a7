"""Pruning old runs from the store: which runs go, deleting all they own, reclaiming space."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wfkit.language.durations import parse_duration

if TYPE_CHECKING:
    from wfkit.store.base import RunRow, Store


@dataclass(frozen=True)
class PrunePolicy:
    """Runs to delete: finished before ``older_than`` seconds ago, beyond the newest
    ``keep``, with one of ``statuses``; a run still running is never deleted."""

    older_than: float | None = None
    keep: int | None = None
    statuses: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> PrunePolicy:
        """``WFKIT_RETENTION``: ``30d``, ``keep=100`` or ``older_than=30d,keep=100``."""
        older: float | None = None
        keep: int | None = None
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.rpartition("=")
            if name in ("", "older_than"):
                older = parse_duration(value)
            elif name == "keep" and value.isdigit():
                keep = int(value)
            else:
                raise ValueError(
                    f"retention {text!r}: expected 30d, keep=N or older_than=30d,keep=N"
                )
        return cls(older, keep)


def select_runs(
    store: Store,
    policy: PrunePolicy,
    status_of: Callable[[RunRow], str],
    now: float | None = None,
) -> list[RunRow]:
    """The runs the policy deletes, newest first (``status_of`` tells live runs apart). The
    policy counts and ages the runs that no other run started; a run it deletes takes the
    child runs its ``workflow`` steps started with it (a child is never kept or dropped
    apart from its caller)."""
    now = time.time() if now is None else now
    rows = store.list_runs(limit=-1)
    known = {r.run_id for r in rows}
    children: dict[str, list[RunRow]] = {}
    for row in rows:
        if row.parent in known:
            children.setdefault(str(row.parent), []).append(row)
    tops = [r for r in rows if r.parent not in known]
    finished = [r for r in tops if status_of(r) != "running"]
    chosen: list[RunRow] = []
    for position, row in enumerate(finished):
        if policy.statuses and status_of(row) not in policy.statuses:
            continue
        if policy.keep is not None and position < policy.keep:
            continue
        if policy.older_than is not None and row.started_at > now - policy.older_than:
            continue
        if policy.keep is None and policy.older_than is None and not policy.statuses:
            continue  # an empty policy deletes nothing
        chosen.append(row)
    return [*chosen, *_descendants(chosen, children)]


def _descendants(rows: list[RunRow], children: dict[str, list[RunRow]]) -> list[RunRow]:
    found: list[RunRow] = []
    todo = [c for r in rows for c in children.get(r.run_id, [])]
    while todo:
        row = todo.pop()
        found.append(row)
        todo += children.get(row.run_id, [])
    return found


def delete_runs(store: Store, run_ids: list[str], *, vacuum: bool = True) -> None:
    """Delete the runs and every row they own in one transaction, then reclaim the space."""
    store.delete_runs(run_ids)
    if vacuum and run_ids:
        store.reclaim()
