"""A store on a read-only mount can still be read: runs, debug, report, why, trace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

FLOW = "name: f\nsteps:\n  - {id: a, type: state_update, path: raw.n, value: 1}\n"


def wfkit(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wfkit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "WFKIT_STORE": str(store)},
        check=False,
    )


@pytest.fixture
def read_only_copy(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A store with one run, bind-mounted read-only (needs root; CI runs as root)."""
    source, mounted = tmp_path / "store", tmp_path / "mounted"
    source.mkdir()
    mounted.mkdir()
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    done = wfkit(source, "run", str(flow), "--json")
    run_id = json.loads(done.stdout)["run_id"]
    mount = subprocess.run(
        ["mount", "--bind", str(source), str(mounted)], capture_output=True, check=False
    )
    if mount.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot bind-mount on CI: {mount.stderr!r}")
        pytest.skip("bind mounts need root")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mounted)], check=True)
        yield mounted, run_id
    finally:
        subprocess.run(["umount", str(mounted)], check=True)


@pytest.mark.slow
def test_read_commands_work_on_a_read_only_mount(read_only_copy: tuple[Path, str]) -> None:
    store, run_id = read_only_copy
    with pytest.raises(OSError, match="Read-only"):
        (store / "probe").write_text("x")
    listed = wfkit(store, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [run_id]
    for args in (["debug", run_id, "--json"], ["why", run_id, "a"], ["trace", run_id, "--json"]):
        done = wfkit(store, *args)
        assert done.returncode == 0, (args, done.stderr)
    debug = json.loads(wfkit(store, "debug", run_id, "--json").stdout)
    assert debug["status"] == "succeeded"
