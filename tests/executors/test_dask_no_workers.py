"""A cluster that cannot take an item fails the item by name, never as a step timeout."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.executors.conftest import VENV_BIN, _require_distributed, free_port

FLOW = """
name: fan
steps:
  - id: fan
    type: parallel_foreach
    items: [1]
    sub_agent_task: t
sub_agent_tasks:
  t:
    steps:
      - {id: s, type: shell_command, command: "true"}
"""


def test_a_scheduler_without_workers_fails_the_item_by_name(tmp_path: Path) -> None:
    _require_distributed()
    dask = shutil.which("dask", path=str(VENV_BIN)) or shutil.which("dask")
    assert dask is not None
    port = free_port()
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(0.5)
        (tmp_path / "fan.yaml").write_text(textwrap.dedent(FLOW))
        # scatter gives up waiting for workers after the connect timeout: keep it short
        env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"}
        done = subprocess.run(
            [
                *(sys.executable, "-m", "wfkit", "run", "fan.yaml", "--json"),
                *("--executor", "dask", "--scheduler", f"tcp://127.0.0.1:{port}"),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(scheduler.pid, signal.SIGTERM)
        scheduler.wait(timeout=30)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    types = [e["error_type"] for e in report["errors"]]
    assert "StepTimeoutError" not in types
    assert any("could not run on the Dask cluster" in e["message"] for e in report["errors"])
