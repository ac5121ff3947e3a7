"""``mcp_call``: call a tool through the run's tool provider."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wfkit.core.models import McpCallStep
from wfkit.core.steps import handles
from wfkit.errors import ToolError

if TYPE_CHECKING:
    from wfkit.core.frame import Frame


@handles(McpCallStep)
async def run_mcp_call(step: McpCallStep, frame: Frame) -> Any:
    """Call the tool with the rendered parameters; the result is what the tool returned."""
    arguments = frame.eval(step, "parameters")
    if not isinstance(arguments, dict):
        raise ToolError(f"parameters of {step.step_id!r} must be a mapping")
    return await frame.run.options.tools.call(step.server, step.tool_name, arguments)
