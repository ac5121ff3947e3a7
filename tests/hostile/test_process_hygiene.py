"""Step processes end with the engine, however the engine ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_until
from wfkit.engine.warden import Warden

HANG = 120  # seconds: a bound that turns a hang into a failure, never a measure of speed


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:  # a zombie is not alive
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"], start_new_session=True)


def test_the_warden_kills_what_it_watches_when_the_engine_goes() -> None:
    warden = Warden()
    watched, forgotten = sleeper(), sleeper()
    try:
        warden.watch(watched.pid)
        warden.watch(forgotten.pid)
        warden.forget(forgotten.pid)
        warden.close()  # the pipe closes, as when the engine dies
        assert watched.wait(timeout=HANG) == -signal.SIGKILL
        assert forgotten.poll() is None
    finally:
        for proc in (watched, forgotten):
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_a_killed_engine_takes_its_step_processes_along(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "name: long\nsteps:\n"
        f"  - {{id: s, type: shell_command, command: 'sleep 300 & echo $! > {pids}; wait'}}\n"
    )
    engine = subprocess.Popen(
        [sys.executable, "-m", "wfkit", "run", str(flow)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        wait_until(lambda: pids.exists() and pids.read_text().strip() != "", "the step", HANG)
        child = int(pids.read_text())
        assert alive(child)
        engine.kill()  # SIGKILL: the engine ends nothing itself
        engine.wait(timeout=HANG)
        wait_until(lambda: not alive(child), "the step's process to end", HANG)
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
