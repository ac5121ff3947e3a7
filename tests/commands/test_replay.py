"""``wfkit replay``: a recorded run with retries, a fallback, a fan-out and a breaker trip
reproduced exactly with no process started; an edited file's first divergence (a changed
condition, a new retry policy, a removed step, an added step that stops the replay or runs
with ``--live``); a value that differs between runs flagged as a determinism problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wfkit_cli

FLOW = """\
name: replayed
inputs: {{strict: {{type: boolean, default: false}}}}
default_state: {{raw: {{notes: []}}}}
config:
  circuit_breakers:
    api: {{failure_threshold: 1, reset_timeout: 600}}
steps:
  - id: flaky
    type: shell_command
    command: "echo run >> {log}; test $(wc -l < {log}) -ge 2"
    on_error: retry
    retry_count: 2
    retry_delay: 0
  - id: optional
    type: shell_command
    command: "echo opt >> {log}; exit 5"
    on_error: continue
    fallback_value: {{stdout: fallback}}
    state_update: {{path: raw.notes, operation: append, value: "{{{{ result.stdout }}}}"}}
  - id: gate
    type: conditional
    condition: "{{{{ strict }}}}"
    then:
      - {{id: strict_check, type: shell_command, command: "echo strict >> {log}"}}
  - id: fan
    type: parallel_foreach
    items: [1, 2, 3]
    sub_agent_task: t
    on_item_error: continue
  - id: call_api
    type: shell_command
    command: "echo api >> {log}; exit 1"
    circuit_breaker: api
    on_error: continue
  - id: call_api_again
    type: shell_command
    command: "echo api >> {log}; exit 1"
    circuit_breaker: api
    on_error: continue
  - id: last
    type: state_update
    path: raw.notes
    operation: append
    value: done
sub_agent_tasks:
  t:
    inputs: {{item: {{type: integer}}}}
    steps:
      - id: sq
        type: shell_command
        command: "echo {{{{ item * item }}}} >> {log}; test {{{{ item }}}} -ne 2"
"""


def recorded(tmp_path: Path) -> tuple[str, Path]:
    log = tmp_path / "log"
    (tmp_path / "flow.yaml").write_text(FLOW.format(log=log))
    done = wfkit_cli(tmp_path, "run", "flow.yaml", "--json")
    report = json.loads(done.stdout)
    assert report["status"] == "succeeded", done.stdout + done.stderr
    return str(report["run_id"]), log


def replay(tmp_path: Path, *args: str) -> dict[str, Any]:
    done = wfkit_cli(tmp_path, "replay", *args, "--json")
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return dict(json.loads(done.stdout))


def test_a_run_is_reproduced_exactly_and_nothing_runs(tmp_path: Path) -> None:
    run_id, log = recorded(tmp_path)
    before = log.read_text()
    result = replay(tmp_path, run_id)
    assert result["reproduced"] is True, result["divergences"]
    assert result["edited"] is False
    assert log.read_text() == before  # no command ran again
    replay_id = result["run"]["run_id"]
    assert replay_id != run_id
    steps = {s["id"]: s for s in result["run"]["steps"]}
    assert steps["flaky"]["attempts"] == 2
    assert result["run"]["state"]["raw"]["notes"] == ["fallback", "done"]
    errors = [(e["step_id"], e["error_type"]) for e in result["run"]["errors"]]
    assert ("call_api_again", "CircuitOpenError") in errors
    assert result["run"]["messages"][0]["text"] == f"replay of {run_id}"
    listed = json.loads(wfkit_cli(tmp_path, "runs", "--json").stdout)
    assert {r["run_id"] for r in listed} == {run_id, replay_id}  # a run of its own


@pytest.mark.parametrize(
    ("edit", "step", "what"),
    [
        (
            ('condition: "{{ strict }}"', 'condition: "{{ not strict }}"'),
            "strict_check",
            "unanswered",
        ),
        (("retry_count: 2", "retry_count: 0"), "flaky", "status"),
        (
            (
                "  - id: last\n",
                "  - id: before_last\n    type: wait\n    seconds: 0\n  - id: last\n",
            ),
            "before_last",
            "only_replayed",
        ),
    ],
)
def test_an_edit_names_its_first_divergence(
    tmp_path: Path, edit: tuple[str, str], step: str, what: str
) -> None:
    run_id, log = recorded(tmp_path)
    before = log.read_text()
    edited = tmp_path / "edited.yaml"
    edited.write_text((tmp_path / "flow.yaml").read_text().replace(*edit, 1))
    result = replay(tmp_path, run_id, "--workflow", str(edited))
    assert result["edited"] is True
    assert result["reproduced"] is False
    first = result["divergences"][0]
    assert (first["step_id"], first["what"]) == (step, what), result["divergences"]
    assert log.read_text() == before


def test_a_removed_step_and_a_live_step(tmp_path: Path) -> None:
    run_id, log = recorded(tmp_path)
    removed = tmp_path / "removed.yaml"
    text = (tmp_path / "flow.yaml").read_text()
    start = text.index("  - id: optional")
    end = text.index("  - id: gate")
    removed.write_text(text[:start] + text[end:])
    result = replay(tmp_path, run_id, "--workflow", str(removed))
    assert result["divergences"][0]["step_id"] == "optional"
    added = tmp_path / "added.yaml"
    added.write_text(
        text.replace(
            "  - id: last\n",
            "  - {id: extra, type: shell_command, command: 'echo extra >> "
            f"{log}'}}\n  - id: last\n",
        )
    )
    stopped = replay(tmp_path, run_id, "--workflow", str(added))
    assert stopped["stopped_at"] == "extra"
    assert "cannot answer" in stopped["first_divergence"]
    assert "extra" not in log.read_text()
    live = replay(tmp_path, run_id, "--workflow", str(added), "--live", "extra")
    assert live["stopped_at"] is None
    assert log.read_text().split()[-1] == "extra"  # the live step ran for real


def test_a_value_that_differs_between_runs_is_a_determinism_problem(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(
        "name: clock\ndefault_state: {raw: {rid: ''}}\nsteps:\n"
        "  - {id: one, type: shell_command, command: 'true'}\n"
        "finally:\n"
        "  - {id: stamp, type: state_update, path: raw.rid, value: '{{ workflow.run_id }}'}\n"
    )
    run_id = json.loads(wfkit_cli(tmp_path, "run", "flow.yaml", "--json").stdout)["run_id"]
    done = wfkit_cli(tmp_path, "replay", run_id)
    assert done.returncode == 1
    assert "determinism problem" in done.stdout
    assert "raw.rid" in done.stdout


def test_a_replay_leaves_breakers_and_children_alone(tmp_path: Path) -> None:
    from wfkit.store import open_store

    run_id, log = recorded(tmp_path)
    store = tmp_path / "store"
    with open_store(store, create=False) as run_store:
        before = run_store.breakers("replayed")
    assert before["api"]["state"] == "open"
    replay(tmp_path, run_id)
    with open_store(store, create=False) as run_store:
        assert run_store.breakers("replayed") == before  # never written by a replay
    (tmp_path / "child.yaml").write_text(
        "name: child\nsteps:\n"
        f"  - {{id: touch, type: shell_command, command: 'echo child >> {log}'}}\n"
    )
    (tmp_path / "fan.yaml").write_text(
        "name: fan\nsteps:\n"
        "  - {id: fan, type: parallel_foreach, items: [1, 2], sub_agent_task: t}\n"
        "sub_agent_tasks:\n  t:\n    steps:\n"
        "      - {id: call, type: workflow, file: child.yaml}\n"
    )
    fan = json.loads(wfkit_cli(tmp_path, "run", "fan.yaml", "--json").stdout)
    assert fan["status"] == "succeeded"
    children = log.read_text().count("child")
    result = replay(tmp_path, fan["run_id"])
    assert result["stopped_at"] == "fan/call"  # not kept: it cannot be answered, never run
    assert log.read_text().count("child") == children
