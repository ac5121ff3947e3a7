"""The compile cache: a file loaded before skips parsing and validation, never serves a stale
or foreign entry, and survives concurrent writers."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wfkit.commands import run_workflow
from wfkit.errors import LoadError
from wfkit.language import compile_cache
from wfkit.language.loader import load_file, load_text

FLOW = (
    "name: cached\nstate_schema:\n  raw: {n: integer}\nsteps:\n"
    "  - {id: set, type: state_update, path: raw.n, value: '{{ 40 + 2 }}'}\n"
)


MORE_STEPS = (
    "  - {id: double, type: state_update, path: raw.n, value: '{{ n * 2 }}'}\n"
    "  - {id: say, type: user_message, message: 'n={{ n }}', if: 'n > 80'}\n"
)


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.pickle"))


def read_entry(entry: Path) -> tuple[Any, Any, dict[Any, Any]]:
    """An entry's parse (source, workflow) and its table of compiled expressions."""
    parsed, expressions = pickle.loads(entry.read_bytes())
    source, workflow = pickle.loads(parsed)
    return source, workflow, expressions


def write_entry(entry: Path, source: Any, workflow: Any, expressions: dict[Any, Any]) -> None:
    entry.write_bytes(pickle.dumps((pickle.dumps((source, workflow)), expressions)))


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
        "from wfkit.language.loader import load_file\nfrom wfkit.language import models as m\n"
        f"loaded = load_file({str(flow)!r}, Path({str(cache)!r}))\n"
        "print(loaded.workflow.steps[0].step_id, m.Workflow.__pydantic_complete__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["set", "False"]


def test_a_cached_load_compiles_no_expression(tmp_path: Path) -> None:
    """jinja2 parses, generates Python and compiles each expression once, when the entry is
    written; a later load rebuilds them from the generated code and they evaluate alike."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW.replace("'{{ 40 + 2 }}'", "'{{ [40, 2] | sum }}'") + MORE_STEPS)
    cache = tmp_path / "cache"
    load_file(flow, cache)
    (entry,) = entries(cache)
    assert {key[0] for key in read_entry(entry)[2]} == {
        "{{ [40, 2] | sum }}",
        "{{ n * 2 }}",
        "n={{ n }}",
        "n > 80",
    }
    code = (
        "import asyncio\nfrom pathlib import Path\n"
        "import jinja2\nfrom wfkit.language import expressions\n"
        "from wfkit.language.loader import load_file\n"
        "from wfkit.commands.run import run_workflow_async\n"
        "compiled = []\nreal = jinja2.Environment.compile\n"
        "jinja2.Environment.compile = lambda *a, **k: compiled.append(1) or real(*a, **k)\n"
        f"loaded = load_file({str(flow)!r}, Path({str(cache)!r}))\n"
        f"report = asyncio.run(run_workflow_async({str(flow)!r}, loaded=loaded,"
        f" store={str(tmp_path / 'store')!r}))\n"
        "print(len(compiled), report.state.raw['n'], report.messages[0].text)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["0", "84", "n=84"]


def test_a_file_that_does_not_load_gets_no_entry(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    bad = FLOW.replace("path: raw.n", "path: inputs.n")
    for _ in range(2):
        with pytest.raises(LoadError, match="inputs"):
            load_text(bad, "f.yaml", cache)
    assert entries(cache) == []


def test_code_in_an_entry_that_does_not_load_is_compiled_again(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    load_text(FLOW, "f.yaml", cache)
    (entry,) = entries(cache)
    source, workflow, expressions = read_entry(entry)
    broken = {key: (kind, refs, b"not marshal") for key, (kind, refs, _) in expressions.items()}
    write_entry(entry, source, workflow, broken)
    from wfkit.language.expressions import _compile_cached

    _compile_cached.cache_clear()  # this process compiled the expression already
    loaded = load_text(FLOW, "f.yaml", cache)
    (plan,) = loaded.plans.values()
    assert plan.compiled["writes"][0].value.render({}) == 42


def test_another_build_of_the_engine_reads_no_entry_of_this_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version number stays the same across builds of a checkout; the key also covers
    the engine's files, whose generated code and models an entry keeps."""
    engine = tmp_path / "engine"
    (engine / "steps").mkdir(parents=True)
    (engine / "sandbox.py").write_text("INTERCEPTED = ('*', '**')\n")
    (engine / "steps" / "shell.py").write_text("QUOTE = True\n")
    before = compile_cache.engine_digest(engine)
    assert compile_cache.engine_digest(engine) == before
    (engine / "sandbox.py").write_text("INTERCEPTED = ('**',)\n")
    assert compile_cache.engine_digest(engine) != before
    cache = tmp_path / "cache"
    load_text(FLOW, "f.yaml", cache)
    monkeypatch.setattr(compile_cache, "_salt", lambda: "another build|")
    assert compile_cache.lookup(cache, FLOW, "f.yaml") is None
    load_text(FLOW, "f.yaml", cache)
    assert len(entries(cache)) == 2


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
    assert read_entry(entry)[1].name == "cached"


@pytest.mark.parametrize("loose", ["file", "directory"])
def test_an_entry_others_could_write_is_never_read(tmp_path: Path, loose: str) -> None:
    cache = tmp_path / "cache"
    load_text(FLOW, "f.yaml", cache)
    (entry,) = entries(cache)
    source, workflow, expressions = read_entry(entry)
    planted = workflow.model_copy(update={"name": "planted"})
    write_entry(entry, source, planted, expressions)
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
