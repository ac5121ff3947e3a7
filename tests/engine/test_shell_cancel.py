"""A shell step cancelled while its output is being read leaves nothing for asyncio to
complain about later (its readers' cancellation is taken, not left to the garbage collector)."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable

import pytest

from wfkit.commands import RunReport


def test_a_cancelled_shell_step_leaves_no_unretrieved_future(
    run_yaml: Callable[..., RunReport], caplog: pytest.LogCaptureFixture
) -> None:
    text = """
        name: cancel-mid-read
        steps:
          - id: fan
            type: parallel_foreach
            items: [0, 1]
            sub_agent_task: t
        sub_agent_tasks:
          t:
            inputs: {item: {type: integer}}
            steps:
              - id: x
                type: shell_command
                command: "if [ {{ item }} = 1 ]; then exit 3; fi; sleep 30"
    """
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        report = run_yaml(text)
        gc.collect()
    assert report.status == "failed"
    statuses = {s.id: s.status for s in report.steps}
    assert statuses["fan/x"] in ("cancelled", "failed")
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
