"""Parser attacks: each is a clean error naming the file, exit 2, bounded in time and memory."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.hostile.test_expressions import peak_kib
from wfkit.cli.app import app
from wfkit.language.yamlsrc import MAX_NODES_ENV

FLOW = "name: t\ninputs: {x: {type: any, required: false}}\nsteps: []\n"
DEEP_JSON = "[" * 3000 + "]" * 3000

HANG = 120  # seconds: a bound that turns a hang into a failure, never a measure of speed


def _files(tmp: Path) -> dict[str, Path]:
    files = {
        "alias": "name: a\nx: &a [*a]\n",
        "deep": "name: a\nsteps: " + "[" * 995 + "]" * 995 + "\n",
        "flow": FLOW,
        "seconds": "name: w\nsteps:\n  - {type: wait, seconds: 1e400}\n",
        "nodes": "name: a\nsteps: [" + ",".join(["1"] * 1_600_000) + "]\n",
    }
    out = {name: tmp / f"{name}.yaml" for name in files}
    for name, text in files.items():
        out[name].write_text(text)
    (tmp / "latin.yaml").write_bytes(b"x: caf\xe9\n")
    (tmp / "garbage.yaml").write_bytes(b"\x00\xff garbage [")
    out["latin"] = tmp / "latin.yaml"
    out["garbage"] = tmp / "garbage.yaml"
    for name, file in (("fifo", "fifo.yaml"), ("fifo_suite", "fifo.wftest.yaml")):
        os.mkfifo(tmp / file)  # opening one waits for a writer: it must never be opened
        out[name] = tmp / file
    out["folder"] = tmp / "folder.yaml"
    out["folder"].mkdir()
    return out


CASES: list[tuple[list[str], str]] = [
    (["run", "{alias}"], "nested deeper than 200 levels"),
    (["run", "{deep}"], "nested deeper than 200 levels"),
    (["run", "{flow}", "-i", f"x={DEEP_JSON}"], "nested too deeply"),
    (["test-transform", "input", "--input", DEEP_JSON], "nested too deeply"),
    (["test-transform", "x", "--context", '{"x": ' + DEEP_JSON + "}"], "nested too deeply"),
    (["run", "{flow}", "--inputs", "{latin}"], "not UTF-8 text (byte 0xe9"),
    (["run", "{flow}", "--answers", "{garbage}"], "not UTF-8 text (byte 0xff"),
    (["test", "{garbage}"], "not UTF-8 text"),
    (["test-transform", "input", "--input", "@/nonexistent"], "no such file"),
    (["run", "/dev/zero"], "not a regular file"),
    (["explain", "{fifo}"], "not a regular file"),
    (["run", "{fifo}"], "not a regular file"),
    (["test", "{fifo_suite}"], "not a regular file"),
    (["explain", "{folder}"], "not a regular file"),
    (["run", "{flow}", "--inputs", "/dev/zero"], "larger than 5000000 bytes"),
    (["run", "{seconds}"], "number out of range"),
    (["run", "{nodes}"], "more than 100000 YAML nodes"),
]


@pytest.mark.parametrize(("args", "message"), CASES)
def test_parser_attacks_are_clean_usage_errors(
    args: list[str], message: str, tmp_path: Path
) -> None:
    files = _files(tmp_path)
    argv = [a.format(**files) if "{" in a and "}" in a and len(a) < 100 else a for a in args]
    started = time.perf_counter()
    result = CliRunner().invoke(app, argv)
    assert time.perf_counter() - started < HANG
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert message in " ".join(result.output.split())


def test_the_node_bound_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flow = tmp_path / "many.yaml"
    flow.write_text("name: a\ninputs: {x: {type: any, default: [" + "1," * 50 + "1]}}\n")
    monkeypatch.setenv(MAX_NODES_ENV, "20")
    assert CliRunner().invoke(app, ["explain", str(flow)]).exit_code == 2
    monkeypatch.setenv(MAX_NODES_ENV, "1000")
    assert CliRunner().invoke(app, ["explain", str(flow)]).exit_code == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nodes", "alias"])
def test_big_rejected_files_are_reported_fast_and_small(tmp_path: Path, name: str) -> None:
    files = _files(tmp_path)
    started = time.perf_counter()
    _, peak, err = peak_kib("run", str(files[name]))
    assert time.perf_counter() - started < HANG  # speed: nox -s stress
    assert "LoadError" in err
    assert peak < 200 * 1024


def test_aliases_that_expand_past_the_byte_bound_are_refused_fast_and_small(
    tmp_path: Path,
) -> None:
    big = "x" * 4_900_000
    uses = ", ".join(["*a"] * 1000)
    flow = tmp_path / "alias.yaml"
    flow.write_text(
        f'name: a\ndefault_state:\n  raw:\n    a: &a "{big}"\n    b: [{uses}]\n'
        "steps:\n  - {type: user_message, message: hi}\n"
    )
    store = str(tmp_path / "store")
    for command in (
        ["explain", str(flow), "--json"],
        ["run", str(flow), "--json", "--store", store],
    ):
        started = time.perf_counter()
        out, peak, err = peak_kib(*command)
        assert time.perf_counter() - started < HANG  # was 47-71 s
        error = json.loads(out)["error"]
        assert error["type"] == "LoadError", err
        assert "more than 20000000 characters once its aliases are expanded" in error["message"]
        assert (error["line"], error["field"]) == (4, "default_state.raw.b[3]")
        assert peak < 100 * 1024  # KiB; was 4.8 GB and more
