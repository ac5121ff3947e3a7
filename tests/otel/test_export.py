"""OpenTelemetry export: real ``wfkit`` processes sending to a real OTLP/HTTP receiver
(tests/otlp_receiver.py) in the test process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("CI") != "true":  # under CI the extra is installed, or the tests fail
    pytest.importorskip("opentelemetry.proto", reason="needs the dev extra (opentelemetry-proto)")
from tests.otlp_receiver import (
    Receiver,
    SpanView,
    by_id,
    children,
    receiving,
    the,
    tree,
)

ARGV = [sys.executable, "-m", "wfkit"]
HANG = 60  # seconds: a bound that turns a hang into a failure, never a speed assert
OTEL_VARS = [name for name in os.environ if name.startswith("OTEL_")]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as server:
        yield server


def wfkit(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``wfkit ARGS`` in ``tmp_path``, without the caller's OTEL_* variables."""
    base = {k: v for k, v in os.environ.items() if k not in OTEL_VARS}
    base["WFKIT_STORE"] = str(tmp_path / "store")
    return subprocess.run(
        [*ARGV, *args],
        cwd=tmp_path,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=HANG * 2,
        check=False,
    )


def flow(tmp_path: Path, text: str, name: str = "flow.yaml") -> str:
    (tmp_path / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return name


RETRY_AND_FAN = """
    name: traced
    state_schema:
      raw: {n: integer}
    steps:
      - id: flaky
        type: shell_command
        command: "n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; test $n -ge 2"
        on_error: retry
        retry_count: 3
        retry_delay: 10
      - id: maybe
        type: conditional
        condition: "{{ n == 0 }}"
        then:
          - {id: inner, type: state_update, path: raw.n, value: 1}
      - id: fan
        type: parallel_foreach
        items: "{{ range(3) | list }}"
        sub_agent_task: t
        max_parallel: 3
    sub_agent_tasks:
      t:
        inputs: {item: {type: integer}}
        state_schema:
          raw: {m: integer}
        steps:
          - {id: a, type: state_update, path: raw.m, value: "{{ item }}"}
          - {id: b, type: shell_command, command: "echo {{ item }}"}
"""


@dataclass
class TracedRun:
    report: dict[str, Any]
    stderr: str
    spans: list[SpanView]
    receiver: Receiver

    @property
    def root(self) -> SpanView:
        (root,) = [s for s in self.spans if not s.parent]
        return root


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TracedRun]:
    """One run of RETRY_AND_FAN exported through OTEL_EXPORTER_OTLP_ENDPOINT."""
    tmp_path = tmp_path_factory.mktemp("traced")
    with receiving() as receiver:
        done = wfkit(
            tmp_path,
            "run",
            flow(tmp_path, RETRY_AND_FAN),
            "--json",
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
                "OTEL_EXPORTER_OTLP_HEADERS": "x-team=wf",
            },
        )
        assert done.returncode == 0, done.stderr
        yield TracedRun(json.loads(done.stdout), done.stderr, receiver.spans(), receiver)


def test_a_run_is_one_trace_under_the_run_span(traced: TracedRun) -> None:
    spans = traced.spans
    assert "warning" not in traced.stderr
    assert {s.trace_id for s in spans} == {spans[0].trace_id}
    assert traced.root.name == "run traced"
    assert traced.root.attrs["wfkit.run.id"] == traced.report["run_id"]
    assert traced.root.attrs["wfkit.run.status"] == "succeeded"
    index = by_id(spans)
    for span in spans:  # every parent link resolves, up to the run's span
        hops, current = 0, span
        while current.parent:
            current = index[current.parent]
            hops += 1
            assert hops < 20
        assert current is traced.root


def test_spans_lie_inside_their_parents(traced: TracedRun) -> None:
    index = by_id(traced.spans)
    for span in traced.spans:
        assert traced.root.start <= span.start <= span.end <= traced.root.end
        if span.parent:
            parent = index[span.parent]
            assert parent.start <= span.start <= span.end <= parent.end, span.name


def test_the_sdk_reads_the_standard_variables(traced: TracedRun) -> None:
    assert set(traced.receiver.paths) == {"/v1/traces"}
    assert traced.receiver.headers[0]["x-team"] == "wf"  # OTEL_EXPORTER_OTLP_HEADERS
    assert traced.spans[0].resource["service.name"] == "wfkit"


def test_a_retried_step_has_a_span_per_attempt(traced: TracedRun) -> None:
    spans = traced.spans
    (flaky,) = the(spans, "step", "flaky")
    assert flaky.parent == traced.root.span_id
    assert flaky.attrs["wfkit.step.attempts"] == 3
    attempts = children(spans, flaky)
    assert [a.attrs["wfkit.attempt"] for a in attempts] == [1, 2, 3]
    assert all(a.kind == "attempt" for a in attempts)
    for failed in attempts[:2]:
        assert failed.status == 2
        assert failed.attrs["error.type"] == "ShellCommandError"
        assert "exited with 1" in failed.attrs["wfkit.error.message"]
        assert failed.attrs["wfkit.retry.delay_ms"] > 0
        assert "exception" in failed.events
    assert attempts[2].status == 0
    assert "wfkit.retry.delay_ms" not in attempts[2].attrs
    assert attempts[0].end <= attempts[1].start <= attempts[1].end <= attempts[2].start


def test_a_containers_steps_are_under_its_attempt(traced: TracedRun) -> None:
    (maybe,) = the(traced.spans, "step", "maybe")
    (maybe_attempt,) = children(traced.spans, maybe)
    (inner,) = the(traced.spans, "step", "inner")
    assert inner.parent == maybe_attempt.span_id


def test_parallel_items_are_spans_with_their_steps_under_them(traced: TracedRun) -> None:
    spans = traced.spans
    (fan,) = the(spans, "step", "fan")
    (fan_attempt,) = children(spans, fan)
    items = children(spans, fan_attempt)
    assert sorted(i.attrs["wfkit.item.index"] for i in items) == [0, 1, 2]
    assert all(i.kind == "item" and i.attrs["wfkit.item.status"] == "succeeded" for i in items)
    for item in items:
        steps = children(spans, item)
        assert [s.attrs["wfkit.step.id"] for s in steps] == ["fan/a", "fan/b"]
        for step in steps:
            assert step.attrs["wfkit.item.index"] == item.attrs["wfkit.item.index"]
            (attempt,) = children(spans, step)
            assert attempt.attrs["wfkit.item.index"] == item.attrs["wfkit.item.index"]


def test_there_is_a_span_per_step_execution(traced: TracedRun) -> None:
    executions = sum(step["executions"] for step in traced.report["steps"])
    assert executions == 1 + 1 + 1 + 1 + 3 * 2
    assert len(the(traced.spans, "step")) == executions


def test_otlp_option_exports_a_failed_run_with_its_exit_code(
    tmp_path: Path, receiver: Receiver
) -> None:
    text = """
        name: broken
        steps:
          - {id: ok, type: shell_command, command: "true"}
          - id: fan
            type: parallel_foreach
            items: [1, 2]
            sub_agent_task: t
            on_item_error: continue
          - {id: boom, type: shell_command, command: "exit 4"}
        sub_agent_tasks:
          t:
            inputs: {item: {type: integer}}
            steps:
              - {id: x, type: shell_command, command: "test {{ item }} -eq 1"}
    """
    done = wfkit(tmp_path, "run", flow(tmp_path, text), "--otlp", receiver.url + "/", "-q")
    assert done.returncode == 1, done.stderr
    spans = receiver.spans()
    (root,) = [s for s in spans if not s.parent]
    assert root.status == 2
    assert root.attrs["wfkit.run.status"] == "failed"
    assert root.attrs["error.type"] == "ShellCommandError"
    (boom,) = the(spans, "step", "boom")
    assert boom.status == 2
    assert boom.attrs["error.type"] == "ShellCommandError"
    (attempt,) = the(spans, "attempt", "boom")
    assert attempt.status == 2
    assert "exited with 4" in attempt.message
    status = {i.attrs["wfkit.item.index"]: i.attrs["wfkit.item.status"] for i in the(spans, "item")}
    assert status == {0: "succeeded", 1: "failed"}


def test_injected_faults_are_marked_on_their_attempts(tmp_path: Path, receiver: Receiver) -> None:
    text = """
        name: chaos
        steps:
          - {id: s, type: shell_command, command: "true", on_error: retry, retry_count: 1,
             retry_delay: 1}
    """
    done = wfkit(
        tmp_path,
        "run",
        flow(tmp_path, text),
        "--inject",
        "step=s error=ToolError rate=1",
        "--otlp",
        receiver.url,
    )
    assert done.returncode == 1, done.stderr
    attempts = the(receiver.spans(), "attempt", "s")
    assert [a.attrs.get("wfkit.injected") for a in attempts] == [True, True]
    assert [a.attrs["error.type"] for a in attempts] == ["ToolError", "ToolError"]
    (step,) = the(receiver.spans(), "step", "s")
    assert step.attrs["wfkit.injected"] is True


def test_a_resumed_run_joins_the_trace_of_its_first_part(
    tmp_path: Path, receiver: Receiver
) -> None:
    text = """
        name: twice
        steps:
          - {id: first, type: shell_command, command: "true"}
          - {id: second, type: shell_command, command: "test -f go"}
    """
    name = flow(tmp_path, text)
    failed = wfkit(tmp_path, "run", name, "--json", "--otlp", receiver.url)
    assert failed.returncode == 1, failed.stderr
    run_id = json.loads(failed.stdout)["run_id"]
    (tmp_path / "go").touch()
    resumed = wfkit(tmp_path, "resume", run_id, "-q", "--otlp", receiver.url)
    assert resumed.returncode == 0, resumed.stderr
    spans = receiver.spans()
    roots = [s for s in spans if not s.parent]
    assert [r.attrs["wfkit.run.resumed"] for r in roots] == [False, True]
    assert [r.attrs["wfkit.run.id"] for r in roots] == [run_id, run_id]
    assert len({s.trace_id for s in spans}) == 1
    assert [s.attrs["wfkit.step.status"] for s in the(spans, "step", "second")] == [
        "failed",
        "succeeded",
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once closed


ONE_STEP = """
    name: one
    steps:
      - {id: s, type: shell_command, command: "true"}
"""


def test_an_unreachable_collector_costs_one_warning_and_not_the_run(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    secret = url.replace("://", "://ops:s3cr'et@")  # credentials in the URL never show
    done = wfkit(
        tmp_path, "run", flow(tmp_path, ONE_STEP), env={"OTEL_EXPORTER_OTLP_ENDPOINT": secret}
    )
    assert "s3cr" not in done.stderr
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        f"warning: the run's trace was not (fully) exported to {url}/v1/traces: [Errno "
    )
    assert warnings[0].endswith("Connection refused")
    assert "Traceback" not in done.stderr
    assert "Transient error" not in done.stderr  # the SDK's own log lines stay quiet


def test_a_collector_refusing_the_spans_costs_one_warning(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.status = 400
    done = wfkit(tmp_path, "run", flow(tmp_path, ONE_STEP), "--otlp", receiver.url)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "code: 400" in warnings[0]


@pytest.fixture
def without_sdk(tmp_path: Path) -> dict[str, str]:
    """An environment where ``import opentelemetry`` fails, as without the extra."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['opentelemetry'] = None\n")
    return {"PYTHONPATH": str(blocker)}


def test_otlp_without_the_extra_is_a_usage_error(
    tmp_path: Path, without_sdk: dict[str, str]
) -> None:
    done = wfkit(
        tmp_path,
        "run",
        flow(tmp_path, ONE_STEP),
        "--otlp",
        "http://127.0.0.1:4318",
        env=without_sdk,
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'wfkit[otel]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "store").exists()  # refused before anything ran


def test_an_endpoint_variable_without_the_extra_warns_and_runs(
    tmp_path: Path, without_sdk: dict[str, str]
) -> None:
    env = {**without_sdk, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    done = wfkit(tmp_path, "run", flow(tmp_path, ONE_STEP), "-q", env=env)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "OTEL_EXPORTER_OTLP_ENDPOINT is set" in warnings[0]
    assert "pip install 'wfkit[otel]'" in warnings[0]


@pytest.mark.parametrize(
    ("args", "env", "where"),
    [
        (["--otlp", "ftp://collector:4318"], {}, "--otlp"),
        (["--otlp", "http://collector:99999"], {}, "--otlp"),
        (["--otlp", "collector"], {}, "--otlp"),
        ([], {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        (
            [],
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://"},
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
    ],
)
def test_a_bad_endpoint_url_is_a_usage_error(
    tmp_path: Path, args: list[str], env: dict[str, str], where: str
) -> None:
    done = wfkit(tmp_path, "run", flow(tmp_path, ONE_STEP), *args, env=env)
    assert done.returncode == 2, done.stderr
    assert f"{where}: " in done.stderr
    assert "is not an http(s) URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_resume_checks_its_endpoint_before_anything_else(tmp_path: Path) -> None:
    done = wfkit(tmp_path, "resume", "no-such-run", "--otlp", "mailto:ops@example.com")
    assert done.returncode == 2, done.stderr
    assert "--otlp: 'mailto:ops@example.com' is not an http(s) URL" in done.stderr
    hidden = wfkit(tmp_path, "run", flow(tmp_path, ONE_STEP), "--otlp", "ftp://me:pw@host/x")
    assert hidden.returncode == 2
    assert "'ftp://host/x' is not an http(s) URL" in hidden.stderr
    assert "pw" not in hidden.stderr


def test_without_otel_no_sink_is_installed_and_nothing_is_imported(tmp_path: Path) -> None:
    flow(tmp_path, ONE_STEP)
    code = (
        "import sys\n"
        "sys.argv = ['wfkit', 'run', 'flow.yaml', '-q']\n"
        "from wfkit.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    print('EXIT', e.code)\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith('opentelemetry')"
        " or m.startswith('wfkit.otel.')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in OTEL_VARS}
    env["WFKIT_STORE"] = str(tmp_path / "store")
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=HANG,
    ).stdout
    assert "EXIT 0" in out
    assert "LOADED []" in out


def test_help_and_the_engine_never_import_opentelemetry() -> None:
    code = (
        "import sys\n"
        "import wfkit.engine.runtime, wfkit.engine.steps.parallel, wfkit.otel\n"
        "sys.argv = ['wfkit', '--help']\n"
        "from wfkit.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED', [m for m in sys.modules if m.startswith('opentelemetry')])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=HANG
    ).stdout
    assert "LOADED []" in out


def test_the_documented_trace_is_what_a_run_exports(tmp_path: Path, receiver: Receiver) -> None:
    page = (Path(__file__).parents[2] / "docs" / "otel.md").read_text()
    workflow = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    done = wfkit(tmp_path, "run", flow(tmp_path, workflow), "-q", "--otlp", receiver.url)
    assert done.returncode == 0, done.stderr
    shown = tree(receiver.spans())
    print(shown)
    assert f"```\n{shown}\n```" in page


def test_a_secret_never_reaches_a_span(tmp_path: Path, receiver: Receiver) -> None:
    token = "tok_CANARY_0tel"
    text = """
        name: secretive
        inputs: {token: {type: string, secret: true}}
        steps:
          - {id: boom, type: shell_command, command: 'echo "using {{ token }}" >&2; exit 4'}
    """
    done = wfkit(
        tmp_path,
        "run",
        flow(tmp_path, text),
        "-i",
        f"token={token}",
        "--otlp",
        receiver.url + "/",
        "-q",
    )
    assert done.returncode == 1, done.stderr
    spans = receiver.spans()
    (attempt,) = the(spans, "attempt", "boom")
    assert "using ***" in attempt.message
    assert token not in repr(spans)
