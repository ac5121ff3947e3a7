"""State size limits, the engine memory watchdog, shell memory limits, fail_fast cleanup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfkit.commands import RunReport, resume_workflow, run_workflow
from wfkit.engine.state import SizeLimits, State
from wfkit.errors import StateError
from wfkit.language.loader import load_text
from wfkit.store.sqlite import RunStore

Runner = Callable[..., RunReport]


def test_a_write_over_max_state_bytes_is_refused_and_undone(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: big
        config: {max_state_bytes: 2000, state_warn_bytes: 1000}
        state_schema:
          raw: {chunks: array, count: integer}
        steps:
          - type: while_loop
            condition: "true"
            max_iterations: 1000
            body:
              - {type: state_update, path: raw.chunks, operation: append,
                 value: "{{ 'x' * 300 }}"}
              - {type: state_update, path: raw.count, operation: increment}
        """
    )
    assert report.status == "failed"
    assert report.error is not None
    assert report.error["type"] == "StateSizeLimitError"
    assert "over max_state_bytes=2000" in report.error["message"]
    chunks = report.state.raw["chunks"]
    assert len(chunks) == report.state.raw["count"]  # the refused append left no trace
    assert len(json.dumps(report.state.model_dump())) <= 2000
    assert [w for w in report.warnings if "state_warn_bytes=1000" in w] == report.warnings
    assert len(report.warnings) == 1


def test_initial_state_over_the_limit_fails_the_run(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: big
        config: {max_state_bytes: 100}
        inputs:
          blob: {type: string, default: "{{ 'not evaluated, just long' }} and then some more text"}
        default_state:
          raw: {also: "a long default value that pushes the state over one hundred bytes"}
        """
    )
    assert report.status == "failed"
    assert report.errors[0].error_type == "StateSizeLimitError"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["set", "append", "extend", "merge", "delete", "increment"]),
            st.sampled_from(["a", "b", "c"]),
            st.one_of(st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=3)),
        ),
        max_size=25,
    )
)
def test_size_accounting_tracks_the_real_json_size(ops: list[tuple[str, str, Any]]) -> None:
    plan = load_text(
        "name: s\ninputs:\n  i: {type: any, default: [1, 'x']}\n"
        "state_schema:\n  computed:\n    n: {from: inputs.i, transform: input | length}\n"
    ).main.state
    state = State(plan, plan.resolve_inputs({}), limits=SizeLimits(max_bytes=10**6))
    for operation, name, raw_value in ops:
        current = state.raw.get(name)
        value: Any = raw_value
        if operation in ("append", "extend") and not isinstance(current, list | None):
            continue
        if operation == "merge":
            value = {"k": raw_value}
            if not isinstance(current, dict | None):
                continue
        if operation == "extend" and not isinstance(raw_value, list):
            value = [raw_value]
        if operation == "increment":
            if not isinstance(current, int | None):
                continue
            value = raw_value if isinstance(raw_value, int) else 1
        try:
            state.write(f"raw.{name}", operation, value)
        except StateError:
            continue
        actual = len(json.dumps(state.snapshot(), separators=(",", ":")))
        assert actual <= state.size <= actual + 3


def test_memory_limit_is_fatal_keeps_the_checkpoint_and_resume_works(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    log = tmp_path / "log"
    text = f"""
        name: mem
        config: {{max_memory_mb: LIMIT}}
        state_schema:
          raw: {{n: integer}}
        steps:
          - {{id: one, type: shell_command, command: "echo one >> {log}"}}
          - {{id: two, type: state_update, path: raw.n, value: 1, on_error: continue}}
          - {{id: three, type: shell_command, command: "echo three >> {log}"}}
        """
    # the first look at memory happens at the first step: a limit of 1 MiB trips there
    flow = write(text.replace("LIMIT", "1"))
    failed = run_workflow(flow)
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error["type"] == "MemoryLimitError"
    flow.write_text(flow.read_text().replace("max_memory_mb: 1}", "max_memory_mb: 100000}"))
    resumed = resume_workflow(failed.run_id, force=True)
    assert resumed.status == "succeeded"
    assert log.read_text().split() == ["one", "three"]


GROWING = """
name: grow
config: {max_memory_mb: 150, max_state_bytes: 2000000000, state_warn_bytes: 2000000000}
state_schema:
  raw: {n: integer}
steps:
  - type: while_loop
    condition: n < 400
    max_iterations: 401
    body:
      - {type: state_update, path: 'raw.chunk_{{ n }}', value: "{{ 'x' * 1000000 }}"}
      - {type: state_update, path: raw.n, operation: increment}
"""

#: runs ``wfkit ARGS`` and prints the child's peak RSS in KiB (Linux: ru_maxrss is in KiB)
_PEAK = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run([sys.executable, '-m', 'wfkit', *sys.argv[1:]],"
    " stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
    "sys.stderr.write(done.stderr)\n"
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


@pytest.mark.parametrize("json_out", [False, True], ids=["report", "json"])
def test_max_memory_mb_bounds_the_peak_of_the_whole_process(tmp_path: Path, json_out: bool) -> None:
    """State growing 1 MB per step under max_memory_mb: 150 stops the run, and the process
    (the report or JSON output included) never goes past 1.25 x the limit."""
    flow = tmp_path / "grow.yaml"
    flow.write_text(GROWING)
    args = ["run", str(flow), *(["--json"] if json_out else [])]
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "WFKIT_STORE": str(tmp_path / "store")},
    )
    code, peak_kib = map(int, done.stdout.split())
    assert code == 1, done.stderr
    assert peak_kib <= 1.25 * 150 * 1024, f"peak {peak_kib // 1024} MiB under a 150 MiB limit"
    # the state is kept once, in the checkpoint: debug reads it from there, resume uses it
    [row] = RunStore(tmp_path / "store" / "runs.db", create=False).list_runs()
    assert row.state is None
    assert row.status == "failed"
    assert row.error is not None
    assert row.error["type"] == "MemoryLimitError"


def test_shell_memory_limit(run_yaml: Runner) -> None:
    report = run_yaml(
        """
        name: mem
        steps:
          - id: small
            type: shell_command
            memory_limit_mb: 200
            command: [python3, -c, "x = bytearray(20 * 1024 * 1024)"]
          - id: hog
            type: shell_command
            memory_limit_mb: 200
            command: [python3, -c, "x = bytearray(800 * 1024 * 1024)"]
        """
    )
    assert [(s.id, s.status) for s in report.steps] == [("small", "succeeded"), ("hog", "failed")]
    assert "memory_limit_mb=200, enforced by RLIMIT_AS, may have been exceeded" in (
        report.errors[0].message
    )


def test_shell_memory_limit_counts_shared_mappings(run_yaml: Runner) -> None:
    # RLIMIT_DATA did not count a shared mapping: a 500 MB mmap ran under a 100 MB limit
    report = run_yaml(
        """
        name: mmap
        steps:
          - id: map
            type: shell_command
            memory_limit_mb: 100
            command: [python3, -c, "import mmap; m = mmap.mmap(-1, 500 * 2**20); m[-1] = 1"]
        """
    )
    assert report.status == "failed"
    assert report.steps[0].status == "failed"
    assert "enforced by RLIMIT_AS" in report.errors[0].message


def test_memory_mechanism_is_rlimit_without_a_writable_cgroup_v2() -> None:
    from wfkit.engine import memlimit

    argv, used = memlimit.limited_argv(["true"], 64, "s")
    assert used == memlimit.mechanism()
    if used == memlimit.RLIMIT:
        assert argv[:4] == ["/bin/sh", "-c", 'ulimit -v "$0" && exec "$@"', str(64 * 1024)]


def test_fail_fast_cancels_in_flight_items_and_runs_their_cleanup(
    run_yaml: Runner, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    report = run_yaml(
        f"""
        name: ff
        steps:
          - id: fan
            type: parallel_foreach
            items: [0, 1, 2, 3, 4, 5]
            sub_agent_task: job
            max_parallel: 3
        sub_agent_tasks:
          job:
            inputs: {{item: {{type: integer}}}}
            steps:
              - id: work
                type: shell_command
                command: "if [ {{{{ item }}}} -eq 0 ]; then sleep 0.2; exit 3; fi; sleep 30"
                cleanup:
                  - {{type: shell_command, command: "echo cleaned-{{{{ item }}}} >> {log}"}}
            finally:
              - type: shell_command
                command: "echo finally-{{{{ item }}}}-{{{{ workflow.status }}}} >> {log}"
        """
    )
    assert report.status == "failed"
    assert report.error is not None
    assert report.error["type"] == "SubAgentError"
    assert report.error["index"] == 0
    lines = sorted(log.read_text().split())
    assert lines == sorted(
        [
            "cleaned-0",
            "cleaned-1",
            "cleaned-2",
            "finally-0-failed",
            "finally-1-cancelled",
            "finally-2-cancelled",
        ]
    )
