"""``wfkit explain`` at scale: a bounded tree by default, every step on request, the store's
compile cache used but no store created."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from wfkit.cli.app import app
from wfkit.cli.common import EXPLAIN_TREE_STEPS


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Any]:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def steps_file(tmp_path: Path, n: int, declared: bool = True) -> Path:
    lines = [f"  - {{type: state_update, path: raw.n, value: {i}, id: s{i}}}" for i in range(n)]
    schema = "state_schema:\n  raw: {n: integer}\n" if declared else ""
    path = tmp_path / "big.yaml"
    path.write_text(f"name: big\n{schema}steps:\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def tree_ids(out: str) -> list[str]:
    return [line.split()[1] for line in out.splitlines() if line.startswith(("├── ", "└── "))]


def test_a_large_plan_shows_the_first_steps_and_counts_the_rest(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    total = EXPLAIN_TREE_STEPS + 25
    result = cli("explain", str(steps_file(tmp_path, total)))
    assert result.exit_code == 0, result.output
    assert tree_ids(result.stdout) == [f"s{i}" for i in range(EXPLAIN_TREE_STEPS)]
    first_hidden = EXPLAIN_TREE_STEPS
    assert (
        f"… and 25 more steps, from s{first_hidden} (line {first_hidden + 5}) on "
        "(--steps all shows every one)" in result.stdout
    )
    assert "no warnings" in result.stdout


def test_steps_all_and_json_show_every_step(cli: Callable[..., Any], tmp_path: Path) -> None:
    flow = str(steps_file(tmp_path, EXPLAIN_TREE_STEPS + 25))
    every = cli("explain", flow, "--steps", "all")
    assert tree_ids(every.stdout) == [f"s{i}" for i in range(EXPLAIN_TREE_STEPS + 25)]
    assert "more step" not in every.stdout
    document = json.loads(cli("explain", flow, "--json").stdout)
    assert [s["id"] for s in document["steps"]] == [f"s{i}" for i in range(EXPLAIN_TREE_STEPS + 25)]


def test_a_plan_within_the_bound_is_shown_whole(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli("explain", str(steps_file(tmp_path, EXPLAIN_TREE_STEPS)))
    assert len(tree_ids(result.stdout)) == EXPLAIN_TREE_STEPS
    assert "more step" not in result.stdout


def test_explain_creates_no_store(cli: Callable[..., Any], tmp_path: Path) -> None:
    flow = str(steps_file(tmp_path, 3))
    assert cli("explain", flow).exit_code == 0
    assert cli("explain", flow, "--store", str(tmp_path / "elsewhere" / "runs.db")).exit_code == 0
    assert not (tmp_path / ".wfkit").exists()
    assert not (tmp_path / "elsewhere").exists()


def test_explain_loads_through_an_existing_stores_compile_cache(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    flow = steps_file(tmp_path, 3)
    store = tmp_path / "st"
    store.mkdir()
    first = cli("explain", str(flow), "--store", str(store))
    assert first.exit_code == 0, first.output
    entries = list((store / "cache").glob("*.pickle"))
    assert len(entries) == 1  # the load filled the cache
    flow.write_text(flow.read_text().replace("value: 2", "value: 7"))
    edited = cli("explain", str(flow), "--store", str(store), "--json")
    assert len(list((store / "cache").glob("*.pickle"))) == 2  # an edit is another entry
    assert json.loads(edited.stdout)["steps"][2]["id"] == "s2"
    again = cli("explain", str(flow), "--store", str(store))
    assert again.exit_code == 0
    assert again.stdout == cli("explain", str(flow)).stdout  # a cached load explains the same
    assert len(list((store / "cache").glob("*.pickle"))) == 2


def test_warnings_beyond_the_bound_are_counted(cli: Callable[..., Any], tmp_path: Path) -> None:
    flow = str(steps_file(tmp_path, EXPLAIN_TREE_STEPS + 7, declared=False))
    shown = cli("explain", flow)
    assert shown.stdout.count("which state_schema.raw does not declare") == EXPLAIN_TREE_STEPS
    assert "! … and 7 more warnings (--steps all or --json shows every one)" in shown.stdout
    every = cli("explain", flow, "--steps", "all")
    assert every.stdout.count("which state_schema.raw does not declare") == EXPLAIN_TREE_STEPS + 7
    assert "more warning" not in every.stdout
