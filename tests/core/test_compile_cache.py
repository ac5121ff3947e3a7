"""The compile cache: a file loaded before skips parsing and validation, never serves a stale
or foreign entry, and survives concurrent writers."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from wfkit.commands import run_workflow
from wfkit.core import compile_cache
from wfkit.core.loader import load_file, load_text
from wfkit.errors import LoadError

FLOW = (
    "name: cached\nstate_schema:\n  raw: {n: integer}\nsteps:\n"
    "  - {id: set, type: state_update, path: raw.n, value: '{{ 40 + 2 }}'}\n"
)


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.pickle"))


def test_a_run_fills_the_cache_under_the_store(tmp_path: Path, isolated_store: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    first = run_workflow(flow)
    second = run_workflow(flow)
    assert first.state.raw == second.state.raw == {"n": 42}
    assert len(entries(isolated_store / "cache")) == 1


def test_a_cached_load_builds_no_validator(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    cache = tmp_path / "cache"
    load_file(flow, cache)  # fills the cache
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from wfkit.core.loader import load_file\nfrom wfkit.core import models as m\n"
        f"loaded = load_file({str(flow)!r}, Path({str(cache)!r}))\n"
        "print(loaded.workflow.steps[0].step_id, m.Workflow.__pydantic_complete__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["set", "False"]


def test_an_edited_file_is_loaded_afresh(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    load_file(flow, cache)
    flow.write_text(FLOW.replace("40 + 2", "40 + 3"))
    loaded = load_file(flow, cache)
    assert loaded.workflow.steps[0].value == "{{ 40 + 3 }}"
    assert len(entries(cache)) == 2


def test_the_same_text_elsewhere_names_its_own_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    bad = FLOW.replace("path: raw.n", "path: inputs.n")
    load_text(FLOW, "a.yaml", cache)
    assert load_text(FLOW, "b.yaml", cache).file == "b.yaml"
    for name in ("one.yaml", "two.yaml"):
        with pytest.raises(LoadError) as caught:
            load_text(bad, name, cache)
        assert caught.value.file == name
        assert caught.value.line == 5


def test_a_truncated_entry_is_a_miss_and_is_rewritten(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    load_text(FLOW, "f.yaml", cache)
    (entry,) = entries(cache)
    entry.write_bytes(entry.read_bytes()[:50])
    assert load_text(FLOW, "f.yaml", cache).workflow.name == "cached"
    assert pickle.loads(entry.read_bytes())[1].name == "cached"


@pytest.mark.parametrize("loose", ["file", "directory"])
def test_an_entry_others_could_write_is_never_read(tmp_path: Path, loose: str) -> None:
    cache = tmp_path / "cache"
    load_text(FLOW, "f.yaml", cache)
    (entry,) = entries(cache)
    source, workflow = pickle.loads(entry.read_bytes())
    planted = workflow.model_copy(update={"name": "planted"})
    entry.write_bytes(pickle.dumps((source, planted)))
    assert load_text(FLOW, "f.yaml", cache).workflow.name == "planted"  # trusted: read
    (entry if loose == "file" else cache).chmod(0o777 if loose == "directory" else 0o666)
    assert load_text(FLOW, "f.yaml", cache).workflow.name == "cached"


def test_an_entry_of_another_type_is_a_miss(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    load_text(FLOW, "f.yaml", cache)
    (entry,) = entries(cache)
    entry.write_bytes(pickle.dumps(("not", "models")))
    assert load_text(FLOW, "f.yaml", cache).workflow.name == "cached"


def test_an_unwritable_cache_is_no_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache directory would go")
    assert load_text(FLOW, "f.yaml", blocker / "cache").workflow.name == "cached"


def test_the_cache_keeps_a_bounded_number_of_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compile_cache, "MAX_ENTRIES", 3)
    cache = tmp_path / "cache"
    for n in range(6):
        load_text(FLOW.replace("40 + 2", f"40 + {n}"), "f.yaml", cache)
    assert len(entries(cache)) == 3


def test_turned_off_by_the_environment(
    tmp_path: Path, isolated_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WFKIT_COMPILE_CACHE", "0")
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    assert run_workflow(flow).ok
    assert not (isolated_store / "cache").exists()


def test_concurrent_runs_share_one_whole_entry(tmp_path: Path, isolated_store: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    env = {**os.environ, "WFKIT_STORE": str(isolated_store)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "wfkit", "run", str(flow), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [json.loads(o)["state"]["raw"] for o in outs] == [{"n": 42}] * 4
    assert len(entries(isolated_store / "cache")) == 1
    assert not list((isolated_store / "cache").glob(".*.tmp"))


def test_a_store_file_by_another_name_gets_its_own_cache_folder(tmp_path: Path) -> None:
    from wfkit.commands.run import compile_cache_dir

    assert compile_cache_dir(tmp_path / "s") == tmp_path / "s" / "cache"
    assert compile_cache_dir(tmp_path / "x.db") == tmp_path / "x.db.cache"
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    assert run_workflow(flow, store=tmp_path / "x.db").ok
    assert len(entries(tmp_path / "x.db.cache")) == 1
    assert not (tmp_path / "cache").exists()
