"""docs/debugging.md shows real output: regenerating it gives the same page."""

from __future__ import annotations

import importlib.util
import sys

from tests.conftest import ROOT


def test_debugging_page_matches_fresh_output() -> None:
    spec = importlib.util.spec_from_file_location(
        "generate_debugging", ROOT / "docs" / "generate_debugging.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["generate_debugging"] = module
    spec.loader.exec_module(module)
    fresh = module.generate()
    page = (ROOT / "docs" / "debugging.md").read_text(encoding="utf-8")
    assert module.normalize(fresh) == module.normalize(page), (
        "docs/debugging.md is stale: run python docs/generate_debugging.py"
    )
    assert "undefined name 'max_attempts'" in page
    assert "condition: progress == 100" in page
