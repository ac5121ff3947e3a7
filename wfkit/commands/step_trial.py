"""``test-step``: run one step of a workflow in isolation and show each stage."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from wfkit.commands._base import StrictModel
from wfkit.engine.context import RunOptions
from wfkit.engine.isolate import _MISSING, trial
from wfkit.errors import InputError
from wfkit.language.loader import load_file


class StateWrite(StrictModel):
    """A state value the step changed."""

    path: str
    before: Any = None
    after: Any = None


class StepTrialResult(StrictModel):
    """``wfkit test-step --json``: the stages of one attempt of one step."""

    file: str
    step_id: str
    step_type: str
    attempt: int
    attempts: int
    condition: dict[str, Any] | None
    ran: bool
    rendered: dict[str, Any]
    render_error: dict[str, Any] | None
    mocked: str | None
    result: Any = None
    error: dict[str, Any] | None
    writes: list[StateWrite]
    branch: str  # succeed | skip | retry | fallback | continue | fail
    reason: str
    delay_ms: float | None
    fallback: Any = None
    cleanup: list[str]


async def _no_wait(_seconds: float) -> None:
    """A retry's wait is reported, never slept: one attempt runs."""


def run_one_step(
    file: str | Path,
    step_id: str,
    *,
    state: dict[str, Any] | None = None,
    attempt: int = 1,
    mock_result: Any = _MISSING,
    mock_error: str | None = None,
) -> StepTrialResult:
    """Run ``step_id`` of ``file`` once, as attempt ``attempt``, over ``state``."""
    from wfkit.commands._runs import default_agent, default_tools
    from wfkit.engine.tools import NoTools

    if attempt < 1:
        raise InputError(f"--attempt must be 1 or more, not {attempt}")
    if mock_error is not None and mock_result is not _MISSING:
        raise InputError("give --mock-result or --mock-error, not both")
    from wfkit.commands._secrets import read_env_file, read_secrets
    from wfkit.engine.secrets import Masker

    loaded = load_file(file)
    mocked = mock_error is not None or mock_result is not _MISSING
    secrets = read_secrets(loaded)
    options = RunOptions(
        tools=NoTools() if mocked else default_tools(loaded),
        agent=default_agent(loaded),
        sleep=_no_wait,
        secrets=secrets,
        env_file=read_env_file(loaded),
    )
    out = asyncio.run(
        trial(loaded, step_id, state or {}, attempt, options, mock_result, mock_error)
    )
    given = (state or {}).get("inputs") or {}
    masker = Masker(  # what the step printed or wrote shows its secrets as ***, as in a run
        {
            **{f"secrets.{k}": v for k, v in secrets.items()},
            **{
                f"inputs.{name}": str(given[name])
                for name, spec in loaded.workflow.inputs.items()
                if spec.secret and given.get(name) is not None
            },
        }
    )
    data = masker.value(dict(vars(out)))
    data["writes"] = [StateWrite(**w) for w in data["writes"]]
    return StepTrialResult(file=str(file), **data)
