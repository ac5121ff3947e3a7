"""``wfkit mcp`` driven by an independent client: the MCP Inspector CLI (Node.js).

Runs where Node.js and npm are present; the Inspector is installed once into a cache folder.
It is pinned: on Node 20 an unpinned install resolves an old Inspector whose CLI exits 0 on
tool errors, so the JSON it prints is what these tests read.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cached_install import cached
from tests.conftest import EXAMPLES

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"


@pytest.fixture(scope="module")
def inspector() -> Path:
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        pytest.skip("Node.js is not installed")
    bin_path = "node_modules/.bin/mcp-inspector"

    def install(folder: Path) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", INSPECTOR],
            capture_output=True,
            timeout=600,
            check=False,
        )

    return cached("wfkit-inspector-2.12.0", bin_path, install) / bin_path


def inspect(exe: Path, tmp_path: Path, *args: str) -> Any:
    command = [
        str(exe),
        "--cli",
        sys.executable,
        "-m",
        "wfkit",
        "mcp",
        "--root",
        str(EXAMPLES),
        "--store",
        str(tmp_path / "store"),
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    return json.loads(done.stdout[: done.stdout.rindex("}") + 1].split('\n{"error"')[0])


def test_inspector_lists_and_calls_tools(inspector: Path, tmp_path: Path) -> None:
    listed = inspect(inspector, tmp_path, "--method", "tools/list")
    names = {tool["name"] for tool in listed["tools"]}
    assert names == {
        "workflow_run",
        "workflow_resume",
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
        "workflow_cancel",
        "workflow_replay",
        "workflow_start",
        "workflow_next_task",
        "workflow_complete_task",
    }
    plan = inspect(
        inspector,
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "workflow_explain_plan",
        "--tool-arg",
        "workflow=seed-error-handling.yaml",
    )
    assert plan.get("isError") is not True
    data = plan.get("structuredContent") or json.loads(plan["content"][0]["text"])
    assert any("'max_attempts'" in w["message"] for w in data["warnings"])
    run = inspect(
        inspector,
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "workflow_run",
        "--tool-arg",
        "workflow=hello.yaml",
    )
    report = run.get("structuredContent") or json.loads(run["content"][0]["text"])
    assert report["status"] == "succeeded"


def test_inspector_sees_tool_errors(inspector: Path, tmp_path: Path) -> None:
    failed = inspect(
        inspector,
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "workflow_debug_info",
        "--tool-arg",
        "run_id=nope",
    )
    assert failed["isError"] is True
    assert "RunNotFoundError: no run 'nope'" in failed["content"][0]["text"]
