"""``mcp_call``: call a tool through the run's tool provider."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from wfkit.engine.capture import OutputCapture
from wfkit.engine.steps.registry import handles
from wfkit.engine.steps.shell import output_limit
from wfkit.errors import StateSizeLimitError, ToolError, WfkitError
from wfkit.language.models import McpCallStep
from wfkit.language.values import dumps

if TYPE_CHECKING:
    from wfkit.engine.frame import Frame


@handles(McpCallStep)
async def run_mcp_call(step: McpCallStep, frame: Frame) -> Any:
    """Call the tool with the rendered parameters; the result is what the tool returned.

    The result's text (or the tool's error) is kept with the attempt like shell output.
    """
    arguments = frame.eval(step, "parameters")
    if not isinstance(arguments, dict):
        raise ToolError(f"parameters of {step.step_id!r} must be a mapping")
    capture = OutputCapture(frame, step.step_id, "tool", output_limit(frame.run))
    try:
        result = await frame.run.options.tools.call(step.server, step.tool_name, arguments)
    except BaseException as exc:
        if isinstance(exc, WfkitError):  # the tool's own report of the failure
            capture.streams["stderr"].feed(exc.message.encode())
        capture.finish("cancelled" if isinstance(exc, asyncio.CancelledError) else "failed")
        raise
    text = result if isinstance(result, str) else dumps(result)
    limit = frame.run.loaded.workflow.config.max_state_bytes
    if len(text) > limit:  # no part of the state could hold it: drop it now, not later
        capture.streams["stdout"].feed(text[:limit].encode())  # kept bounded like any output
        capture.finish("failed")
        raise StateSizeLimitError(
            f"tool {step.tool_name!r} returned {len(text):,} characters, more than "
            f"max_state_bytes={limit:,} allows any value to be"
        )
    capture.streams["stdout"].feed(text.encode())
    capture.finish("succeeded")
    return result
