"""Captured step output: bounded head and tail, streamed, stored per attempt."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from wfkit.cli.views.output import LiveOutput
from wfkit.commands import RunReport, resume_workflow
from wfkit.commands.logs import run_logs
from wfkit.engine.capture import MAX_PENDING_LINE, StreamCapture
from wfkit.engine.events import OutputChunk
from wfkit.errors import LoadError, ToolError
from wfkit.store.sqlite import SCHEMA_VERSION, RunStore


def capture(limit: int) -> tuple[StreamCapture, list[tuple[int, bytes, bool]], list[int]]:
    sent: list[tuple[int, bytes, bool]] = []
    trims: list[int] = []
    stream = StreamCapture(
        "stdout",
        limit,
        lambda _s, seq, data, head: sent.append((seq, data, head)),
        lambda _s, upto: trims.append(upto),
    )
    return stream, sent, trims


def test_head_and_tail_are_bounded_and_the_middle_is_counted() -> None:
    stream, sent, trims = capture(100)
    for n in range(1000):
        stream.feed(f"line {n:04}\n".encode())
    stream.close()
    assert bytes(stream.head) == b"".join(f"line {n:04}\n".encode() for n in range(10))
    tail = b"".join(chunk for _, chunk in stream.tail)
    assert 75 <= len(tail) <= 100
    assert tail.endswith(b"line 0999\n")
    assert stream.total == 10_000
    assert stream.dropped == stream.total - 100 - len(tail)
    assert trims  # the store is told which tail chunks to forget
    assert b"".join(data for _, data, head in sent if head) == bytes(stream.head)
    assert [seq for seq, _, _ in sent] == list(range(len(sent)))
    assert stream.text().startswith("line 0000\n")
    assert f"[wfkit: {stream.dropped} more bytes not kept]" in stream.text()
    assert stream.text().endswith("line 0999")


def test_a_stream_without_newlines_never_holds_more_than_a_bounded_piece() -> None:
    stream, sent, _trims = capture(1000)
    for _ in range(200):  # 10 MB, one endless line
        stream.feed(b"x" * 50_000)
        assert len(stream._partial) < MAX_PENDING_LINE
        assert stream.tail_bytes <= 1000
    stream.close()
    assert len(stream.head) == 1000
    assert stream.dropped == 10_000_000 - 1000 - stream.tail_bytes
    assert max(len(data) for _, data, _ in sent) <= 1000  # no event carries the whole line


def test_stored_output_stays_within_twice_the_bound(run_yaml: Callable[..., RunReport]) -> None:
    report = run_yaml(
        """
        name: big
        config: {max_output_bytes: 1000}
        steps:
          - id: flood
            type: shell_command
            command: "seq 1 300000; seq 1 50000 >&2"
        """
    )
    assert report.status == "succeeded"
    with sqlite3.connect(report.store) as db:
        stored = dict(
            db.execute(
                "SELECT stream, SUM(LENGTH(data)) FROM output_chunks GROUP BY stream"
            ).fetchall()
        )
    assert stored["stdout"] <= 2000
    assert stored["stderr"] <= 2000
    [attempt] = run_logs(report.run_id).attempts
    assert attempt.stdout.startswith("1\n2\n3\n")
    assert attempt.stdout.endswith("299999\n300000")
    assert f"[wfkit: {attempt.stdout_dropped} more bytes not kept]" in attempt.stdout
    assert attempt.stdout_bytes == len("".join(f"{n}\n" for n in range(1, 300001)))


def test_every_attempt_keeps_its_output_whatever_its_outcome(
    run_yaml: Callable[..., RunReport],
) -> None:
    report = run_yaml(
        """
        name: retried
        state_schema:
          raw: {n: integer}
        steps:
          - id: flaky
            type: shell_command
            command: "echo attempt {{ n }}; echo oops-{{ n }} >&2; test {{ n }} -ge 2"
            on_error: retry
            retry_count: 3
            retry_delay: 0
            error_state_update: {path: raw.n, operation: increment}
        """
    )
    assert report.status == "succeeded"
    logs = run_logs(report.run_id, "flaky")
    assert [(a.attempt, a.status, a.exit_code, a.stdout, a.stderr) for a in logs.attempts] == [
        (1, "failed", 1, "attempt 0", "oops-0"),
        (2, "failed", 1, "attempt 1", "oops-1"),
        (3, "succeeded", 0, "attempt 2", "oops-2"),
    ]
    assert run_logs(report.run_id, attempt=2).attempts[0].stdout == "attempt 1"
    assert run_logs(report.run_id, "other").attempts == []


class Tools:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    async def call(self, server: str | None, tool: str, arguments: dict[str, Any]) -> Any:
        if self.fail:
            raise ToolError("the tool said: quota exceeded")
        return {"answer": 42}

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("fail", [False, True])
def test_a_tool_calls_result_text_is_kept(run_yaml: Callable[..., RunReport], fail: bool) -> None:
    report = run_yaml(
        "name: t\nsteps:\n  - {id: ask, type: mcp_call, tool: oracle, parameters: {q: 1}}\n",
        tools=Tools(fail),
    )
    [attempt] = run_logs(report.run_id).attempts
    assert attempt.kind == "tool"
    if fail:
        assert (attempt.status, attempt.stderr) == ("failed", "the tool said: quota exceeded")
    else:
        assert (attempt.status, json.loads(attempt.stdout)) == ("succeeded", {"answer": 42})


def test_items_of_a_parallel_foreach_are_told_apart(run_yaml: Callable[..., RunReport]) -> None:
    report = run_yaml(
        """
        name: fan
        sub_agent_tasks:
          job:
            inputs: {n: {type: integer}}
            steps:
              - {id: say, type: shell_command, command: "echo item {{ n }}"}
        steps:
          - id: fan
            type: parallel_foreach
            items: [0, 1, 2]
            sub_agent_task: job
            with: {n: "{{ loop.item }}"}
        """
    )
    assert report.status == "succeeded", report.errors
    one = run_logs(report.run_id, "say", item=1).attempts
    assert [(a.step_id, a.item, a.stdout) for a in one] == [("fan/say", 1, "item 1")]


def test_live_lines_of_parallel_items_never_mix_mid_line() -> None:
    out = StringIO()
    live = LiveOutput(Console(file=out, width=100, color_system=None))
    live.started("a", "fan/say", 0)
    live.started("b", "fan/say", 1)

    def chunk(key: str, data: bytes) -> OutputChunk:
        return OutputChunk("r", key, "fan/say", "stdout", 0, data, True, 0.0)

    live.chunk(chunk("a", b"first half of a "))
    live.chunk(chunk("b", b"whole b line\nb [markup] "))
    live.chunk(chunk("a", b"line\n"))
    live.finished("b")
    assert out.getvalue().splitlines() == [
        "fan/say[1] | whole b line",
        "fan/say[0] | first half of a line",
        "fan/say[1] | b [markup] ",
    ]


def test_an_old_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with RunStore(path) as store:
        store.db.execute("PRAGMA user_version = 1")
        for table in ("outputs", "output_chunks", "cancel_requests", "sources", "schema_compat"):
            store.db.execute(f"DROP TABLE {table}")
        store.db.execute("ALTER TABLE runs DROP COLUMN structure")
        store.db.execute("ALTER TABLE runs DROP COLUMN process")
        store.db.execute("ALTER TABLE runs DROP COLUMN lease_until")
        store.db.execute("ALTER TABLE runs DROP COLUMN parent")
        store.db.execute("ALTER TABLE steps DROP COLUMN item")
        store.db.execute("ALTER TABLE steps DROP COLUMN injected")
        store.db.execute(
            "INSERT INTO steps VALUES ('r1', 0, 's', 'shell_command', 'failed', 1, 1.0, 2.0, NULL)"
        )
        store.db.execute(
            "INSERT INTO runs (run_id, workflow, file, digest, status, inputs, started_at)"
            " VALUES ('r1', 'w', 'f', 'd', 'failed', '{}', 1.0)"
        )
    with RunStore(path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.get_run("r1").structure is None
        assert store.get_run("r1").process is None
        assert [(h["item"], h["injected"]) for h in store.step_history("r1")] == [(None, False)]
        assert run_logs("r1", store=path).attempts == []


def test_retention_from_the_environment(
    run_yaml: Callable[..., RunReport], monkeypatch: pytest.MonkeyPatch
) -> None:
    from wfkit.commands import list_runs

    monkeypatch.setenv("WFKIT_RETENTION", "keep=2")
    ids = [run_yaml("name: r\nsteps:\n  - {type: wait, seconds: 0}\n").run_id for _ in range(4)]
    assert [r.run_id for r in list_runs()] == ids[:1:-1]


def test_retention_in_the_config_is_checked_at_load(write: Callable[..., Path]) -> None:
    from wfkit.language.loader import load_file

    assert load_file(write("name: r\nconfig: {retention: 30d}\nsteps: []\n"))
    with pytest.raises(LoadError, match="retention"):
        load_file(write("name: r\nconfig: {retention: forever}\nsteps: []\n"))


def test_resume_with_new_inputs_records_what_changed(
    run_yaml: Callable[..., RunReport], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    failed = run_yaml(
        f"""
        name: r
        inputs:
          target: {{type: string, default: staging}}
        state_schema:
          computed:
            where: {{from: inputs.target, transform: "input | upper"}}
        steps:
          - {{id: gate, type: shell_command, command: "test -e {gate}"}}
          - {{id: say, type: shell_command, command: "echo {{{{ where }}}}"}}
        """
    )
    assert failed.status == "failed"
    gate.touch()
    resumed = resume_workflow(failed.run_id, inputs={"target": "prod"})
    assert resumed.status == "succeeded"
    assert resumed.state.inputs == {"target": "prod"}
    assert resumed.state.computed["where"] == "PROD"
    assert 'resume changed inputs: target: "staging" -> "prod"' in [
        m.text for m in resumed.messages
    ]
    assert run_logs(failed.run_id, "say").attempts[0].stdout == "PROD"


def test_every_finally_and_cleanup_step_runs_when_one_fails(
    run_yaml: Callable[..., RunReport], tmp_path: Path
) -> None:
    log = tmp_path / "log"
    report = run_yaml(
        f"""
        name: tidy
        steps:
          - id: main
            type: shell_command
            command: "exit 3"
            cleanup:
              - {{id: c1, type: shell_command, command: "exit 4"}}
              - {{id: c2, type: shell_command, command: "echo c2 >> {log}"}}
        finally:
          - {{id: f1, type: shell_command, command: "exit 5"}}
          - {{id: f2, type: shell_command, command: "echo f2 >> {log}"}}
        """
    )
    assert log.read_text().split() == ["c2", "f2"]
    assert report.status == "failed"
    assert report.error is not None
    assert (report.error["step_id"], report.error["exit_code"]) == ("main", 3)  # kept
    assert [(e.step_id, e.details["exit_code"]) for e in report.errors] == [
        ("main", 3),
        ("c1", 4),
        ("f1", 5),
    ]


def test_a_steps_state_updates_are_all_or_nothing(run_yaml: Callable[..., RunReport]) -> None:
    report = run_yaml(
        """
        name: atomic
        state_schema:
          raw: {a: integer, b: integer, total: integer}
          computed:
            double: {from: raw.a, transform: "input * 2"}
        steps:
          - id: both
            type: shell_command
            command: "echo 5"
            on_error: continue
            state_updates:
              - {path: raw.a, value: "{{ result.stdout | int }}"}
              - {path: raw.total, operation: increment, by: 1}
              - {path: raw.b, value: "not a number"}
        """
    )
    assert report.status == "succeeded"
    assert [e.error_type for e in report.errors] == ["StateError"]
    assert report.state.raw == {"a": 0, "b": 0, "total": 0}
    assert report.state.computed == {"double": 0}


def test_the_tail_keeps_lines_and_characters_whole(
    run_yaml: Callable[..., RunReport], isolated_store: Path
) -> None:
    """A stream far over the bound: every line printed by `wfkit logs` is a line the step
    wrote, and no character is cut into replacement characters."""
    from typer.testing import CliRunner

    from wfkit.cli.app import app

    report = run_yaml(
        "name: big\nconfig: {max_output_bytes: 4096}\nsteps:\n  - id: flood\n"
        "    type: shell_command\n"
        "    command: \"seq 1 20000 | sed 's/$/ ligne é numéro/'\"\n"
    )
    assert report.status == "succeeded"
    logs = run_logs(report.run_id)
    (attempt,) = logs.attempts
    assert "\ufffd" not in attempt.stdout
    result = CliRunner().invoke(app, ["logs", report.run_id], env={"COLUMNS": "200"})
    after = result.stdout.split("more bytes of stdout not kept]", 1)[1]
    tail = [line.split("stdout| ", 1)[1] for line in after.splitlines() if "stdout| " in line]
    assert len(tail) > 50
    # the first kept byte may fall inside a line (as `tail -c`); every line after it is whole
    assert all(line.endswith(" ligne é numéro") for line in tail[1:]), tail[:5]
    assert tail[-1] == "20000 ligne é numéro"
