"""Opening a store from a spec: paths, URLs, and the one-line errors of bad ones (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.pg_cluster import free_port
from wfkit.cli.app import app
from wfkit.errors import StoreError
from wfkit.store import is_url, local_dir, open_store, store_spec
from wfkit.store.postgres import redact, translate

ARGV = [sys.executable, "-m", "wfkit"]


def wfkit(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1"}
    return subprocess.run(
        [*ARGV, *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def test_specs_are_paths_or_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://me@db.example/runs"
    assert store_spec(url) == url
    assert store_spec(tmp_path) == tmp_path / "runs.db"
    monkeypatch.setenv("WFKIT_STORE", url)
    assert (store_spec(None), is_url(None), local_dir(None)) == (url, True, Path(".wfkit"))
    monkeypatch.setenv("WFKIT_STORE", str(tmp_path / "x.db"))
    assert (store_spec(None), is_url(None), local_dir(None)) == (tmp_path / "x.db", False, tmp_path)


def test_passwords_never_show() -> None:
    assert redact("postgresql://me:s3cret@host:5432/db") == "postgresql://me@host:5432/db"
    assert redact("postgres://host/db?sslmode=require&password=s3cret") == (
        "postgres://host/db?sslmode=require&password=***"
    )
    assert redact("postgresql://host/db") == "postgresql://host/db"
    # punctuation, quotes and spaces in a password never end the redaction early
    assert redact("postgresql://u:pa'ss@h/db") == "postgresql://u@h/db"
    assert redact('postgresql://u:p a"s@s@h:5432/db?x=1') == "postgresql://u@h:5432/db?x=1"
    assert redact("postgres://h/db?password=ab'cd&sslmode=x") == (
        "postgres://h/db?password=***&sslmode=x"
    )
    assert redact("host=h password='a b' user=u") == "host=h password=*** user=u"


def test_shared_sql_is_translated_for_psycopg() -> None:
    assert translate("SELECT 1 FROM t WHERE a = ? AND b LIKE '%x' ORDER BY rowid") == (
        "SELECT 1 FROM t WHERE a = %s AND b LIKE '%%x' ORDER BY rid"
    )


def test_an_unreachable_server_is_a_one_line_usage_error_naming_the_host() -> None:
    port = free_port()  # nothing listens there
    done = wfkit("runs", "--store", f"postgresql://me:s3cret@127.0.0.1:{port}/runs")
    assert done.returncode == 2, done.stderr
    assert f"127.0.0.1:{port}" in done.stderr
    assert "s3cret" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://me:s3cret@[bad/runs", "bad PostgreSQL run store URL"),
        ("postgresql://me:s3cret@127.0.0.1:notaport/runs", "127.0.0.1:notaport"),
        ("mysql://me:s3cret@host/runs", "unsupported run store URL scheme 'mysql'"),
    ],
)
def test_bad_urls_are_usage_errors(url: str, message: str) -> None:
    result = CliRunner().invoke(app, ["runs", "--store", url], env={"NO_COLOR": "1"})
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    assert "s3cret" not in result.output
    with pytest.raises(StoreError):
        open_store(url)


def test_without_psycopg_a_url_asks_for_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails
    monkeypatch.delitem(sys.modules, "wfkit.store.postgres", raising=False)
    result = CliRunner().invoke(
        app, ["runs", "--store", "postgresql://me@127.0.0.1/runs"], env={"NO_COLOR": "1"}
    )
    assert result.exit_code == 2, result.output
    assert "pip install 'wfkit[postgres]'" in " ".join(result.stderr.split())


def test_other_import_errors_are_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wfkit.store.postgres", None)
    with pytest.raises(ImportError):
        open_store("postgresql://me@127.0.0.1/runs")


def test_no_postgresql_binaries_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests import pg_cluster as testing_pg

    monkeypatch.setattr(testing_pg, "find_binaries", lambda: None)
    with pytest.raises(testing_pg.ClusterUnavailableError, match="install Debian's postgresql"):
        testing_pg.start_cluster()


def test_a_cluster_that_does_not_start_says_why_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests import pg_cluster as testing_pg

    if testing_pg.find_binaries() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true needs the PostgreSQL server binaries")
        pytest.skip("no PostgreSQL server binaries")
    before = set(Path(tempfile.gettempdir()).glob("wfkit-pg-*"))
    with pytest.raises(RuntimeError, match="shared_buffers"):
        testing_pg.start_cluster({"shared_buffers": "bogus"})
    assert set(Path(tempfile.gettempdir()).glob("wfkit-pg-*")) == before
