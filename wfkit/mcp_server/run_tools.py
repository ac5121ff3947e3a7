"""The MCP tools over one recorded run: its logs, its report, cancelling and replaying it.

Each calls the same command function as the CLI (``wfkit logs --json``, ``wfkit report
--json``, ``wfkit cancel --json``) and returns its pydantic result, so the SDK publishes the
output schema. Logs and the report read only: a ``--read-only`` server serves them, opening
the store read-only.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from wfkit.commands.logs import LogsResult
from wfkit.commands.manage import CancelResult
from wfkit.commands.replay import ReplayResult
from wfkit.commands.report import RunPage
from wfkit.mcp_server.arguments import RunId, check_path_text
from wfkit.mcp_server.tools import Scope, apart

CANCEL_WAIT_SECONDS = 60.0
"""How long ``workflow_cancel`` waits for the run to end (its ``finally`` steps included)
before it answers with the status the run has then."""


async def workflow_logs(
    scope: Scope,
    run_id: RunId,
    step: Annotated[
        str | None,
        Field(description="Only this step's output, by step id (an item's step: 'fan/fetch')."),
    ] = None,
    attempt: Annotated[
        int | None, Field(description="Only this attempt (1 is the first).", ge=1)
    ] = None,
    item: Annotated[
        int | None, Field(description="Only this parallel item (0 is the first).", ge=0)
    ] = None,
) -> LogsResult:
    """The captured output of a run's steps, per execution and attempt: stdout and stderr
    (bounded as captured: a head and a tail with the dropped bytes counted), exit code, times
    and the output as it arrived. A succeeded step's output is here, not in the run result."""
    from wfkit.commands.logs import run_logs

    check_path_text(run_id, "run_id")
    return await apart(
        lambda: run_logs(
            run_id,
            step,
            attempt=attempt,
            item=item,
            store=scope.store,
            read_only=scope.read_only,
        )
    )


async def workflow_report(scope: Scope, run_id: RunId) -> RunPage:
    """A run's report as data (what `wfkit report` draws): its steps with attempts, errors
    and durations, the state changes, parallel items and the timeline."""
    from wfkit.commands.report import report_run

    check_path_text(run_id, "run_id")
    return await apart(lambda: report_run(run_id, store=scope.store, read_only=scope.read_only))


async def workflow_cancel(scope: Scope, run_id: RunId) -> CancelResult:
    """Cancel a running run, as `wfkit cancel` does: its current step ends (its process
    group too), its `finally` steps run, and it ends `cancelled` (resumable). Waits for the
    run to end, up to a minute; an interrupted run is marked cancelled. The request goes
    through the store only: no process is signalled (a run's process may be a server)."""
    from wfkit.commands.manage import cancel_run

    check_path_text(run_id, "run_id")
    return await apart(
        lambda: cancel_run(run_id, scope.store, wait=CANCEL_WAIT_SECONDS, signal_fallback=False)
    )


async def workflow_replay(
    scope: Scope,
    run_id: RunId,
    workflow: Annotated[
        str | None,
        Field(description="An edited copy of the workflow to replay instead (under the root)."),
    ] = None,
    live: Annotated[
        list[str] | None,
        Field(description="Steps whose commands run for real (new steps the record lacks)."),
    ] = None,
) -> ReplayResult:
    """Run a recorded run again with every side effect answered from its record (nothing
    outside runs, except the `live` steps), as `wfkit replay` does: whether it reproduced
    the record, and each divergence, first one first. With `workflow`: what the edit would
    have changed in that run. The replay is a run of its own, `replay of RUN_ID`."""
    from wfkit.commands.replay import replay_run
    from wfkit.mcp_server.arguments import confine

    check_path_text(run_id, "run_id")
    path = confine(scope.root, workflow) if workflow else None
    return await apart(lambda: replay_run(run_id, store=scope.store, workflow=path, live=live))


TOOLS = (workflow_logs, workflow_report, workflow_cancel, workflow_replay)
