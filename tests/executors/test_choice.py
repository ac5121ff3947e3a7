"""Which executor a run uses, and the one-line refusals of values that cannot be used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.executors.test_dask import WFKIT
from wfkit.errors import ExecutorError, LoadError
from wfkit.executors import ExecutorChoice, choose
from wfkit.language.loader import load_text
from wfkit.language.models import ExecutorConfig

DASK = ExecutorConfig(kind="dask", scheduler="tcp://cfg:8786")


@pytest.mark.parametrize(
    ("kind", "scheduler", "env", "config", "expected"),
    [
        (None, None, None, None, ExecutorChoice()),
        ("local", None, "tcp://env:1", DASK, ExecutorChoice()),
        ("dask", None, None, None, ExecutorChoice("dask", None)),
        ("dask", None, None, DASK, ExecutorChoice("dask", "tcp://cfg:8786")),
        ("dask", None, "tcp://env:1", DASK, ExecutorChoice("dask", "tcp://env:1")),
        (None, None, "tcp://env:1", None, ExecutorChoice("dask", "tcp://env:1")),
        (None, "tcp://flag:2", "tcp://env:1", DASK, ExecutorChoice("dask", "tcp://flag:2")),
        (None, None, None, DASK, ExecutorChoice("dask", "tcp://cfg:8786")),
        (None, None, None, ExecutorConfig(), ExecutorChoice()),
    ],
)
def test_flags_then_environment_then_config(
    monkeypatch: pytest.MonkeyPatch,
    kind: str | None,
    scheduler: str | None,
    env: str | None,
    config: ExecutorConfig | None,
    expected: ExecutorChoice,
) -> None:
    if env is None:
        monkeypatch.delenv("WFKIT_DASK_SCHEDULER", raising=False)
    else:
        monkeypatch.setenv("WFKIT_DASK_SCHEDULER", env)
    assert choose(kind, scheduler, config) == expected


@pytest.mark.parametrize(
    ("kind", "scheduler", "env", "message"),
    [
        ("ray", None, None, "--executor 'ray': expected one of local, dask"),
        (None, "localhost", None, "--scheduler: expected tcp://host:port, got 'localhost'"),
        (None, "tcp://h:notaport", None, "expected tcp://host:port"),
        (None, "tcp://h:1/path", None, "expected tcp://host:port"),
        (None, "http://h:1", None, "expected tcp://host:port"),
        ("local", "tcp://h:1", None, "--scheduler needs --executor dask"),
        (None, None, "tcp://h", "WFKIT_DASK_SCHEDULER: expected tcp://host:port"),
    ],
)
def test_values_that_cannot_be_used(
    monkeypatch: pytest.MonkeyPatch,
    kind: str | None,
    scheduler: str | None,
    env: str | None,
    message: str,
) -> None:
    if env is None:
        monkeypatch.delenv("WFKIT_DASK_SCHEDULER", raising=False)
    else:
        monkeypatch.setenv("WFKIT_DASK_SCHEDULER", env)
    with pytest.raises(ExecutorError) as caught:
        choose(kind, scheduler, None)
    assert message in str(caught.value)


def test_config_executor_errors_name_file_and_line() -> None:
    text = "name: x\nconfig:\n  executor: {kind: dask, schedular: tcp://h:1}\nsteps: []\n"
    with pytest.raises(LoadError) as caught:
        load_text(text, "flow.yaml")
    assert caught.value.location == "flow.yaml:3:26"
    assert "did you mean 'scheduler'" in caught.value.message
    text = "name: x\nconfig:\n  executor: {kind: dask, scheduler: 'tcp://h'}\nsteps: []\n"
    with pytest.raises(LoadError) as caught:
        load_text(text, "flow.yaml")
    assert caught.value.line == 3
    assert "expected tcp://host:port, got 'tcp://h'" in caught.value.message


def _wfkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WFKIT, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text("name: x\nsteps:\n  - {type: user_message, message: hi}\n", encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "ray"], "--executor 'ray': expected one of local, dask"),
        (["--executor", "dask", "--scheduler", "nowhere"], "expected tcp://host:port"),
        (["--executor", "local", "--scheduler", "tcp://h:1"], "needs --executor dask"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    flow: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    done = _wfkit("run", str(flow), *args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_an_unreachable_scheduler_exits_2_naming_it(flow: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from tests.executors.conftest import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    done = _wfkit("run", str(flow), "--executor", "dask", "--scheduler", address, cwd=tmp_path)
    assert done.returncode == 2
    assert f"cannot reach the Dask scheduler at {address}" in done.stderr
    assert "Traceback" not in done.stderr
    resumed = _wfkit("resume", "nope", "--scheduler", "bad", cwd=tmp_path)
    assert resumed.returncode == 2


@pytest.mark.slow
def test_without_the_extra_the_hint_names_it(flow: Path, tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['distributed'] = None; sys.argv = ['wfkit'] + sys.argv[1:];"
        "from wfkit.cli.entry import main; sys.exit(main())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "run", str(flow), "--executor", "dask"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 2
    assert "pip install 'wfkit[dask]'" in done.stderr
    assert "Traceback" not in done.stderr
