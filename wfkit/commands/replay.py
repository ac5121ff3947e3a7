"""``wfkit replay RUN_ID``: a recorded run executed again without touching anything outside.

Every side-effecting step answers, attempt by attempt, what it answered in the record (the
mocks of :func:`wfkit.commands.suite.from_run.recorded_case`): shell commands by step, tools
by name, agents by step, answers, child runs; waits take no time. Conditions, expressions,
retries, fallbacks and state updates are evaluated again over those facts. The replay is a
run of its own in the store, its first message ``replay of RUN_ID``.

With the recorded workflow, the replay must reproduce the record; a difference is a
determinism problem (an expression reading the clock or chance). With ``--workflow FILE``
(an edit), the differences say what the edit would have changed, first one first. A step
the record cannot answer (new, or run with other arguments) stops the replay there, unless
it is named with ``--live``, which runs its commands for real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wfkit.commands._base import StrictModel
from wfkit.commands.results import RunReport
from wfkit.commands.run import run_workflow
from wfkit.commands.suite.from_run import recorded_case
from wfkit.commands.suite.mocks import (
    MockAgents,
    MockChildren,
    MockShell,
    MockTools,
    ReplayGapError,
    VirtualClock,
)
from wfkit.commands.suite.models import Case
from wfkit.language.loader import load_file, load_text
from wfkit.store import open_store


class Divergence(StrictModel):
    """One way the replay differs from the record."""

    step_id: str | None  # None: the run as a whole (its status, its state)
    what: str  # status | attempts | only_recorded | only_replayed | state | unanswered
    recorded: Any = None
    replayed: Any = None
    detail: str


class ReplayResult(StrictModel):
    """The result of ``wfkit replay`` (``--json``)."""

    replay_of: str
    workflow: str  # the file replayed (the recorded text's file, or --workflow)
    edited: bool  # replayed with another workflow than the recorded one
    run: RunReport  # the replay's own run
    reproduced: bool  # no divergence
    first_divergence: str | None
    divergences: list[Divergence]
    stopped_at: str | None = None  # the step the record could not answer


def replay_run(
    run_id: str,
    *,
    store: str | Path | None = None,
    workflow: str | Path | None = None,
    live: list[str] | None = None,
) -> ReplayResult:
    """Replay ``run_id`` (module docstring)."""
    with open_store(store, create=False, read_only=True) as run_store:
        row = run_store.get_run(run_id)
        case = Case.model_validate(recorded_case(run_store, row, "replayed"))
        text = run_store.source(row.digest)
        recorded = _executions(run_store.step_history(row.run_id))
    if workflow is not None:
        loaded = load_file(workflow)
    elif text is not None:
        loaded = load_text(text, file=row.file)
    else:
        loaded = load_file(row.file)
    edited = loaded.digest != row.digest
    clock = VirtualClock()
    tools = MockTools(case.mocks.tools, ReplayGapError)
    mocks = case.mocks
    report = run_workflow(
        loaded.file,
        case.inputs,
        loaded=loaded,
        store=store,
        answers=mocks.answers,
        tools=tools,
        agent=MockAgents(mocks.agents, tools.calls, ReplayGapError),
        shell=MockShell(mocks.shell, False, frozenset(live or ()), ReplayGapError),
        sleep=clock.sleep,
        clock=clock.time,
        stored_breakers=False,
        wrap_children=lambda real: MockChildren(mocks.workflows, tools.calls, real, ReplayGapError),
        note=f"replay of {row.run_id}",
    )
    gap = next((e for e in report.errors if e.error_type == "ReplayGapError"), None)
    raw = (row.state or {}).get("raw", {})
    divergences = _compare(recorded, _executions_of(report), row.status, raw, report)
    if gap is not None:
        divergences.insert(
            0,
            Divergence(step_id=gap.step_id, what="unanswered", detail=gap.message),
        )
    first = divergences[0] if divergences else None
    return ReplayResult(
        replay_of=row.run_id,
        workflow=loaded.file,
        edited=edited,
        run=report,
        reproduced=not divergences,
        first_divergence=(
            None
            if first is None
            else f"{first.step_id}: {first.detail}"
            if first.step_id
            else first.detail
        ),
        divergences=divergences,
        stopped_at=gap.step_id if gap is not None else None,
    )


Execution = tuple[str, int | None, str, int]
"""A step execution: ``(step id, item, status, attempts)``."""


def _executions(history: list[dict[str, Any]]) -> list[Execution]:
    return [(h["step_id"], h.get("item"), h["status"], h["attempts"]) for h in history]


def _executions_of(report: RunReport) -> list[Execution]:
    with open_store(report.store, create=False, read_only=True) as run_store:
        return _executions(run_store.step_history(report.run_id))


def _by_key(rows: list[Execution]) -> dict[tuple[str, int | None], list[tuple[str, int]]]:
    """Each step (in each parallel item) with its executions in order: items finish in any
    order, so the comparison is per step and item, in the order the record first ran them."""
    found: dict[tuple[str, int | None], list[tuple[str, int]]] = {}
    for step_id, item, status, attempts in rows:
        found.setdefault((step_id, item), []).append((status, attempts))
    return found


def _compare(
    recorded: list[Execution],
    replayed: list[Execution],
    status: str,
    raw: dict[str, Any],
    report: RunReport,
) -> list[Divergence]:
    found: list[Divergence] = []
    before, after = _by_key(recorded), _by_key(replayed)
    for key in [*before, *(k for k in after if k not in before)]:
        was, now = before.get(key, []), after.get(key, [])
        where = key[0] + (f"[{key[1]}]" if key[1] is not None else "")
        if not now or not was:
            what = "only_recorded" if not now else "only_replayed"
            side = "the record" if not now else "the replay"
            found.append(
                Divergence(step_id=key[0], what=what, detail=f"{where} ran only in {side}")
            )
            continue
        for n, (a, b) in enumerate(zip(was, now, strict=False), start=1):
            if a[0] != b[0]:
                found.append(
                    Divergence(
                        step_id=key[0],
                        what="status",
                        recorded=a[0],
                        replayed=b[0],
                        detail=f"{where} (execution {n}) {a[0]} in the record, {b[0]} in"
                        " the replay",
                    )
                )
                break
            if a[1] != b[1]:
                found.append(
                    Divergence(
                        step_id=key[0],
                        what="attempts",
                        recorded=a[1],
                        replayed=b[1],
                        detail=f"{where} (execution {n}) took {a[1]} attempt(s) in the record,"
                        f" {b[1]} in the replay",
                    )
                )
                break
        else:
            if len(was) != len(now):
                found.append(
                    Divergence(
                        step_id=key[0],
                        what="executions",
                        recorded=len(was),
                        replayed=len(now),
                        detail=f"{where} ran {len(was)} time(s) in the record, {len(now)} in the"
                        " replay",
                    )
                )
    if report.status != status:
        found.append(
            Divergence(
                step_id=None,
                what="status",
                recorded=status,
                replayed=report.status,
                detail=f"the run {status} in the record, {report.status} in the replay",
            )
        )
    after_raw = report.state.raw
    for name in sorted(raw.keys() | after_raw.keys()):
        if raw.get(name) != after_raw.get(name):
            found.append(
                Divergence(
                    step_id=None,
                    what="state",
                    recorded=raw.get(name),
                    replayed=after_raw.get(name),
                    detail=f"raw.{name} differs at the end",
                )
            )
    return found
