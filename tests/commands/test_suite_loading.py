"""A suite loads its workflow once for all its cases, and again only when the file changes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wfkit.commands.suite import runner as suite_module
from wfkit.commands.suite.runner import run_tests

FLOW = (
    "name: once\ninputs:\n  n: {type: integer, default: 1}\nstate_schema:\n  raw: {m: integer}\n"
    "steps:\n  - {id: set, type: state_update, path: raw.m, value: '{{ n * 2 }}'}\n"
)
CASES = "".join(
    f"  - name: c{i}\n    inputs: {{n: {i}}}\n    expect:\n      state: {{raw.m: {2 * i}}}\n"
    for i in range(5)
)


def test_cases_share_one_load_and_an_edit_reloads(
    write: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = write(FLOW, "once.yaml")
    tests = write(f"workflow: once.yaml\ncases:\n{CASES}", "once.wftest.yaml")
    loads: list[str] = []
    real = suite_module.load_file

    def counting(path: Any, *args: Any) -> Any:
        loads.append(str(path))
        return real(path, *args)

    monkeypatch.setattr(suite_module, "load_file", counting)
    first = run_tests([str(tests)])
    assert first.ok, [c.failures for c in first.cases]
    assert len(first.cases) == 5
    assert loads == [str(flow.resolve())]
    flow.write_text(FLOW.replace("n * 2", "n * 3"))
    stat = flow.stat()
    os.utime(flow, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = run_tests([str(tests)])
    assert len(loads) == 2
    assert not second.ok  # the expectations were for `n * 2`


def test_a_missing_workflow_is_still_a_case_error(write: Callable[..., Path]) -> None:
    tests = write(f"workflow: absent.yaml\ncases:\n{CASES}", "absent.wftest.yaml")
    result = run_tests([str(tests)])
    assert {c.status for c in result.cases} == {"error"}
    assert "no such file" in (result.cases[0].error or "")
