"""A shared database with the roles docs/scaling.md describes: an owner that creates and
migrates the tables, writers that run, resume, cancel and prune, readers that only look.
Every process is a real ``wfkit`` against a real PostgreSQL cluster."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.pg_cluster import Cluster
from tests.store.test_contract import ARGV, HANG
from wfkit.store import postgres

FLOW = """
name: team
steps:
  - {id: one, type: shell_command, command: "echo one"}
  - {id: two, type: shell_command, command: "test -e MARKER"}
"""


def _grants() -> list[str]:
    """The grants of docs/scaling.md, section "Roles", statement by statement."""
    text = (Path(__file__).parents[2] / "docs" / "scaling.md").read_text(encoding="utf-8")
    block = text.split("```sql\n-- roles of a shared store\n", 1)[1].split("```", 1)[0]
    return [s.strip() for s in block.split(";") if s.strip() and not s.strip().startswith("--")]


@pytest.fixture
def team(pg_cluster: Cluster) -> dict[str, str]:
    """The database and the URL of each role."""
    import psycopg

    suffix = secrets.token_hex(3)
    password = secrets.token_hex(8)
    names = {role: f"{role}_{suffix}" for role in ("owner", "writer", "reader")}
    database = f"team_{suffix}"
    with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
        for name in names.values():
            admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        admin.execute(f"CREATE DATABASE {database} OWNER {names['owner']}")
    with psycopg.connect(pg_cluster.url(database), autocommit=True) as admin:
        for grant in _grants():
            for role, name in names.items():
                grant = grant.replace(f"wfkit_{role}", name)  # noqa: PLW2901
            admin.execute(grant)
    return {
        role: f"postgresql://{name}:{password}@127.0.0.1:{pg_cluster.port}/{database}"
        for role, name in names.items()
    }


def wfkit(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFKIT_")}
    return subprocess.run(
        [*ARGV, *args, "--store", url],
        capture_output=True,
        text=True,
        timeout=HANG,
        check=False,
        env=env,
    )


def test_owner_writer_and_reader_each_do_what_their_grants_allow(
    team: dict[str, str], tmp_path: Path
) -> None:
    marker = tmp_path / "go"
    path = tmp_path / "team.yaml"
    path.write_text(FLOW.replace("MARKER", str(marker)), encoding="utf-8")
    first = wfkit(team["owner"], "run", str(path), "--json")  # creates the tables
    assert first.returncode == 1, first.stderr
    failed = wfkit(team["writer"], "run", str(path), "--json")
    assert failed.returncode == 1, failed.stderr
    run_id = json.loads(failed.stdout)["run_id"]
    marker.touch()
    resumed = wfkit(team["writer"], "resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "succeeded"
    pruned = wfkit(team["writer"], "prune", "--keep", "1", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert len(json.loads(pruned.stdout)["runs"]) == 1
    assert pruned.stderr == ""  # the VACUUM left to the owner says nothing
    listed = wfkit(team["reader"], "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [run_id]
    shown = wfkit(team["reader"], "debug", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    refused = wfkit(team["reader"], "run", str(path))
    assert refused.returncode == 2
    assert "permission denied" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_migration_needs_the_owner_and_says_so(
    team: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hello.yaml"
    path.write_text("name: hello\nsteps:\n  - {id: a, type: shell_command, command: 'true'}\n")
    assert wfkit(team["owner"], "run", str(path)).returncode == 0
    current = postgres.SCHEMA_VERSION
    monkeypatch.setattr(postgres, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(postgres.MIGRATIONS, current + 1, ["ALTER TABLE runs ADD COLUMN note TEXT"])
    from wfkit.errors import StoreError
    from wfkit.store import open_store

    with pytest.raises(StoreError, match="owner") as refused:
        open_store(team["writer"])
    assert f"schema {current + 1}" in str(refused.value)
    open_store(team["owner"]).close()  # the owner migrates it
    open_store(team["writer"]).close()  # and the writer is at home again
