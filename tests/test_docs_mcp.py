"""docs/mcp.md's tool reference is generated from the server: it must be current."""

from __future__ import annotations

import importlib.util
import sys

from tests.conftest import ROOT


def test_mcp_page_is_current() -> None:
    spec = importlib.util.spec_from_file_location("generate_mcp", ROOT / "docs" / "generate_mcp.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["generate_mcp"] = module
    spec.loader.exec_module(module)
    page = (ROOT / "docs" / "mcp.md").read_text(encoding="utf-8")
    assert module.generate() == page, "docs/mcp.md is stale: run python docs/generate_mcp.py"
    assert "### `workflow_run` (destructive, open world)" in page
    assert "### `workflow_debug_info` (read-only, idempotent)" in page
    assert "| `limit` | integer |  | `20` | Most runs to list. |" in page
