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
        case = Case.model_validate(recorded_case(run_store, row))
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
    tools = MockTools(case.mocks.tools)
    mocks = case.mocks
    report = run_workflow(
        loaded.file,
        case.inputs,
        loaded=loaded,
        store=store,
        answers=mocks.answers,
        tools=tools,
        agent=MockAgents(mocks.agents, tools.calls),
        shell=MockShell(mocks.shell, False, frozenset(live or ()), ReplayGapError),
        sleep=clock.sleep,
        clock=clock.time,
        stored_breakers=False,
        wrap_children=lambda real: MockChildren(mocks.workflows, tools.calls, real),
        note=f"replay of {row.run_id}",
    )
    gap = next((e for e in report.errors if e.error_type == "ReplayGapError"), None)
    divergences = _compare(recorded, _executions_of(report), row, report)
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


def _executions(history: list[dict[str, Any]]) -> list[tuple[str, int | None, str, int]]:
    """Each step execution as ``(step id, item, status, attempts)``, items in item order."""
    rows = [(h["step_id"], h.get("item"), h["status"], h["attempts"]) for h in history]
    return _ordered(rows)


def _executions_of(report: RunReport) -> list[tuple[str, int | None, str, int]]:
    with open_store(report.store, create=False, read_only=True) as run_store:
        return _executions(run_store.step_history(report.run_id))


def _ordered(
    rows: list[tuple[str, int | None, str, int]],
) -> list[tuple[str, int | None, str, int]]:
    """Parallel items finish in any order: compare them by item, in the order of their
    first record (the main steps keep theirs)."""
    return sorted(rows, key=lambda r: (r[1] is not None, r[1] if r[1] is not None else 0))


def _compare(
    recorded: list[tuple[str, int | None, str, int]],
    replayed: list[tuple[str, int | None, str, int]],
    row: Any,
    report: RunReport,
) -> list[Divergence]:
    found: list[Divergence] = []
    for was, now in zip(recorded, replayed, strict=False):
        where = was[0] + (f"[{was[1]}]" if was[1] is not None else "")
        if was[0] != now[0] or was[1] != now[1]:
            found.append(
                Divergence(
                    step_id=was[0],
                    what="only_recorded",
                    recorded=was[0],
                    replayed=now[0],
                    detail=f"the record ran {where} here, the replay {now[0]}",
                )
            )
            return found  # the paths parted: what follows does not line up
        if was[2] != now[2]:
            found.append(
                Divergence(
                    step_id=was[0],
                    what="status",
                    recorded=was[2],
                    replayed=now[2],
                    detail=f"{where} {was[2]} in the record, {now[2]} in the replay",
                )
            )
        elif was[3] != now[3]:
            found.append(
                Divergence(
                    step_id=was[0],
                    what="attempts",
                    recorded=was[3],
                    replayed=now[3],
                    detail=f"{where} took {was[3]} attempt(s) in the record, {now[3]} now",
                )
            )
    for extra, what in (
        (recorded[len(replayed) :], "only_recorded"),
        (replayed[len(recorded) :], "only_replayed"),
    ):
        for r in extra:
            side = "the record" if what == "only_recorded" else "the replay"
            found.append(Divergence(step_id=r[0], what=what, detail=f"{r[0]} ran only in {side}"))
    if report.status != row.status:
        found.append(
            Divergence(
                step_id=None,
                what="status",
                recorded=row.status,
                replayed=report.status,
                detail=f"the run {row.status} in the record, {report.status} in the replay",
            )
        )
    before = (row.state or {}).get("raw", {})
    after = report.state.raw
    for name in sorted(before.keys() | after.keys()):
        if before.get(name) != after.get(name):
            found.append(
                Divergence(
                    step_id=None,
                    what="state",
                    recorded=before.get(name),
                    replayed=after.get(name),
                    detail=f"raw.{name} differs at the end",
                )
            )
    return found
