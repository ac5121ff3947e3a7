"""User-facing operations as plain functions returning pydantic results.

The CLI renders these results and the MCP shim serializes them; neither adds behaviour.
"""

from wfkit.commands.results import RunReport, RunSummary
from wfkit.commands.resume import resume_workflow, resume_workflow_async
from wfkit.commands.run import list_runs, run_workflow, run_workflow_async

__all__ = [
    "RunReport",
    "RunSummary",
    "list_runs",
    "resume_workflow",
    "resume_workflow_async",
    "run_workflow",
    "run_workflow_async",
]
