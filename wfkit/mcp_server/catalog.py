"""Every tool the server offers, in the order it lists them, and those a read-only server
serves."""

from __future__ import annotations

from wfkit.mcp_server.agent_tools import TOOLS as AGENT_TOOLS
from wfkit.mcp_server.run_tools import TOOLS as RUN_TOOLS
from wfkit.mcp_server.tools import (
    workflow_debug_info,
    workflow_diff,
    workflow_explain_plan,
    workflow_health,
    workflow_list_runs,
    workflow_resume,
    workflow_run,
    workflow_test_transformation,
    workflow_trace_transformations,
    workflow_why,
)

RUNNING = (workflow_run, workflow_resume)

TOOLS = (
    *RUNNING,
    workflow_explain_plan,
    workflow_trace_transformations,
    workflow_debug_info,
    workflow_test_transformation,
    workflow_list_runs,
    workflow_health,
    workflow_why,
    workflow_diff,
    *RUN_TOOLS,
    *AGENT_TOOLS,
)
"""Every tool, in the order the server lists them."""

READ_ONLY = (
    "workflow_explain_plan",
    "workflow_trace_transformations",
    "workflow_debug_info",
    "workflow_test_transformation",
    "workflow_list_runs",
    "workflow_health",
    "workflow_why",
    "workflow_diff",
    "workflow_logs",
    "workflow_report",
)
"""The tools a ``--read-only`` server serves: they execute, start and write nothing."""
