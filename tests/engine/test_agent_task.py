"""``agent_task`` steps performed by a real command, through the installed ``wfkit``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.hostile.test_process_hygiene import alive
from tests.test_e2e import wfkit

AGENT = textwrap.dedent(
    """
    import json, os, sys, time
    request = json.loads(sys.stdin.readline())
    with open(os.environ["AGENT_LOG"], "a") as log:
        log.write(json.dumps(request) + "\\n")
    mode = os.environ.get("AGENT_MODE", "good")
    print("thinking about", request["step_id"], file=sys.stderr)
    if mode == "fix-on-retry" and request["attempt"] == 1:
        print(json.dumps({"fixes": "one string, not a list"}))
    elif mode == "fail":
        print("the model refused", file=sys.stderr)
        sys.exit(3)
    elif mode == "hang":
        with open(os.environ["AGENT_PID"], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(600)
    elif mode == "item":
        n = request["context"]["n"]
        if n == 3:
            print("no answer for 3", file=sys.stderr)
            sys.exit(1)
        print(json.dumps({"double": n * 2}))
    elif mode == "text":
        print("plain words")
    else:
        print(json.dumps({"fixes": ["pin the version", "retry the download"], "severity": 2}))
    """
)

FLOW = """
name: triage
inputs:
  report_path: {type: string, default: report.txt}
state_schema:
  raw: {fixes: array}
steps:
  - id: triage
    type: agent_task
    prompt: "Classify the failures in {{ report_path }} and propose one fix each."
    context: {failures: ["{{ report_path }}"]}
    response_schema:
      type: object
      required: [fixes]
      properties:
        fixes: {type: array, items: {type: string}}
        severity: {type: integer, minimum: 1, maximum: 5}
    timeout: 60
    on_error: retry
    retry_count: 2
    retry_delay: 0
    state_update: {path: raw.fixes, value: "{{ result.fixes }}"}
"""


FAN = """
name: fan
state_schema:
  raw: {doubles: array}
default_state:
  raw: {doubles: []}
steps:
  - id: each
    type: parallel_foreach
    items: "{{ [1, 2, 3, 4, 5] }}"
    sub_agent_task: double
    max_parallel: 3
    on_item_error: continue
    min_success: 4
    state_update:
      path: raw.doubles
      value: >-
        {{ result | selectattr('status', 'eq', 'succeeded')
           | map(attribute='state.raw.double') | list }}
sub_agent_tasks:
  double:
    inputs: {item: {type: integer}}
    steps:
      - id: ask
        type: agent_task
        prompt: "Double {{ item }}"
        context: {n: "{{ item }}"}
        response_schema: {type: object, required: [double]}
        state_update: {path: raw.double, value: "{{ result.double }}"}
"""


@pytest.fixture
def agent(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """The agent script, and the environment that runs it in ``mode``."""
    script = tmp_path / "agent.py"
    script.write_text(AGENT, encoding="utf-8")

    def env(mode: str = "good", **more: str) -> dict[str, str]:
        return {
            "AGENT_LOG": str(tmp_path / "requests.jsonl"),
            "AGENT_MODE": mode,
            "AGENT_PID": str(tmp_path / "agent.pid"),
            "WFKIT_AGENT_COMMAND": f"{sys.executable} {script}",
            **more,
        }

    return env


def requests(tmp_path: Path) -> list[dict[str, Any]]:
    log = tmp_path / "requests.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def run_json(*args: str, env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    result = wfkit("run", *args, "--json", env=env)
    return result.returncode, json.loads(result.stdout)


def test_a_valid_response_is_the_result(write, agent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, report = run_json(str(write(FLOW)), env=agent("good"))
    assert code == 0, report
    assert report["state"]["raw"]["fixes"] == ["pin the version", "retry the download"]
    [request] = requests(tmp_path)
    assert request["prompt"] == "Classify the failures in report.txt and propose one fix each."
    assert request["context"] == {"failures": ["report.txt"]}
    assert request["response_schema"]["required"] == ["fixes"]
    assert (request["step_id"], request["item"], request["attempt"]) == ("triage", None, 1)
    assert request["previous_error"] is None
    assert request["run_id"] == report["run_id"]
    logs = wfkit("logs", report["run_id"], "--json")
    [attempt] = json.loads(logs.stdout)["attempts"]
    assert attempt["kind"] == "agent"
    assert '"fixes": ["pin the version"' in attempt["stdout"]
    assert attempt["stderr"].startswith("request: {")
    assert "thinking about triage" in attempt["stderr"]


def test_an_invalid_response_is_retried_with_the_error(write, agent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, report = run_json(str(write(FLOW)), env=agent("fix-on-retry"))
    assert code == 0, report
    assert report["steps"][0]["attempts"] == 2
    [error] = report["errors"]
    assert error["error_type"] == "AgentResponseError"
    assert error["recovered"] is True
    assert error["details"]["path"] == "$.fixes"
    assert error["details"]["rule"] == "type"
    first, second = requests(tmp_path)
    assert first["previous_error"] is None
    assert second["attempt"] == 2
    assert second["previous_error"]["type"] == "AgentResponseError"
    assert second["previous_error"]["path"] == "$.fixes"
    assert "is not of type 'array'" in second["previous_error"]["message"]


def test_a_non_zero_exit_is_an_agent_error_with_the_stderr_tail(write, agent) -> None:  # type: ignore[no-untyped-def]
    code, report = run_json(str(write(FLOW)), env=agent("fail"))
    assert code == 1
    assert report["error"]["type"] == "AgentError"
    assert "exited with 3: the model refused" in report["error"]["message"]
    assert report["steps"][0]["attempts"] == 3  # AgentError is retried by the step's policy


def test_a_hang_is_cut_by_the_timeout_and_leaves_no_process(write, agent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    flow = FLOW.replace("timeout: 60", "timeout: 1").replace("retry_count: 2", "retry_count: 0")
    code, report = run_json(str(write(flow)), env=agent("hang"))
    assert code == 1
    assert report["error"]["type"] == "AgentTimeoutError"
    pid = int((tmp_path / "agent.pid").read_text())
    assert not alive(pid)


def test_text_is_read_as_text_without_a_schema(write, agent) -> None:  # type: ignore[no-untyped-def]
    flow = """
    name: words
    steps:
      - {id: say, type: agent_task, prompt: "Say something",
         state_update: {path: raw.said, value: "{{ result }}"}}
    """
    code, report = run_json(str(write(flow)), env=agent("text"))
    assert code == 0, report
    assert report["state"]["raw"]["said"] == "plain words"


def test_without_a_performer_the_step_fails_at_once_and_explain_warns(write) -> None:  # type: ignore[no-untyped-def]
    path = write(FLOW)
    env = {"WFKIT_AGENT_COMMAND": ""}
    code, report = run_json(str(path), env=env)
    assert code == 1
    assert report["error"]["type"] == "AgentUnavailableError"
    assert report["steps"][0]["attempts"] == 1  # permanent: never retried
    explained = json.loads(wfkit("explain", str(path), "--json", env=env).stdout)
    kinds = [w["kind"] for w in explained["warnings"]]
    assert "agent_unavailable" in kinds
    [step] = explained["steps"]
    assert step["response_schema"]["required"] == ["fixes"]
    assert step["policy"]["attempts"] == 3
    assert step["timeout"] == 60
    given = json.loads(
        wfkit("explain", str(path), "--json", "--agent-command", "cat", env=env).stdout
    )
    assert "agent_unavailable" not in [w["kind"] for w in given["warnings"]]


def test_an_answers_file_performs_the_step(write, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    answers = tmp_path / "answers.yaml"
    answers.write_text("triage: {fixes: [from the answers file]}\n")
    code, report = run_json(
        str(write(FLOW)), "--answers", str(answers), env={"WFKIT_AGENT_COMMAND": ""}
    )
    assert code == 0, report
    assert report["state"]["raw"]["fixes"] == ["from the answers file"]


def test_an_answer_that_breaks_the_schema_is_refused(write, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    answers = tmp_path / "answers.yaml"
    answers.write_text("triage: {fixes: [a], severity: 9}\n")
    code, report = run_json(
        str(write(FLOW)), "--answers", str(answers), env={"WFKIT_AGENT_COMMAND": ""}
    )
    assert code == 1
    assert report["error"]["type"] == "AgentResponseError"
    assert "$.severity" in report["error"]["message"]
    assert "maximum" in report["error"]["message"]


def test_config_agent_command_is_the_default_performer(write, agent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = agent("good")
    command = env.pop("WFKIT_AGENT_COMMAND")
    config = f"config:\n  agent: {{command: {json.dumps(command)}}}\nsteps:"
    flow = FLOW.replace("steps:", config, 1)
    code, report = run_json(str(write(flow)), env={**env, "WFKIT_AGENT_COMMAND": ""})
    assert code == 0, report
    assert len(requests(tmp_path)) == 1


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ("{type: objekt}", "response_schema.type"),
        ("{type: object, required: fixes}", "response_schema.required"),
        ("{properties: {n: {minimum: high}}}", "response_schema.properties.n.minimum"),
        ("{$ref: 'http://127.0.0.1:9/s.json'}", "points outside the schema"),
        ("{$ref: 'file:///etc/passwd'}", "points outside the schema"),
        ("{$ref: '#/$defs/missing'}", "names nothing in the schema"),
        ("{properties: {s: {pattern: 'a(?=b)'}}}", "RE2"),
    ],
)
def test_an_invalid_response_schema_is_refused_at_load(write, schema: str, field: str) -> None:  # type: ignore[no-untyped-def]
    path = write(
        f"name: x\nsteps:\n  - id: a\n    type: agent_task\n    prompt: p\n"
        f"    response_schema: {schema}\n"
    )
    result = wfkit("run", str(path))
    assert result.returncode == 2, result.stderr
    assert f"{path.name}:6" in result.stderr
    assert field in result.stderr
    assert "Traceback" not in result.stderr


def test_a_fan_out_to_sub_agents_bubbles_up_the_agent_error(write, agent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    flow = FAN
    code, report = run_json(str(write(flow)), env=agent("item"))
    assert code == 0, report
    assert report["state"]["raw"]["doubles"] == [2, 4, 8, 10]
    [failed] = report["errors"]
    assert (failed["step_id"], failed["error_type"]) == ("each/ask", "AgentError")
    assert "no answer for 3" in failed["message"]
    items = sorted(r["item"] for r in requests(tmp_path))
    assert items == [0, 1, 2, 3, 4]
    stricter = write(flow.replace("min_success: 4", "min_success: 5"), "strict.yaml")
    code, report = run_json(str(stricter), env=agent("item"))
    assert code == 1
    assert report["error"]["type"] == "SubAgentError"
    assert report["error"]["cause"]["type"] == "AgentError"
    assert "no answer for 3" in report["error"]["cause"]["message"]


def test_a_completed_agent_step_is_not_asked_again_after_kill_9(  # type: ignore[no-untyped-def]
    write, agent, tmp_path: Path
) -> None:
    flow = write(
        FLOW
        + textwrap.indent(
            textwrap.dedent(
                f"""
                - id: slow
                  type: shell_command
                  command: "touch {tmp_path / "slow.started"}; sleep 600"
                """
            ),
            "  ",
        )
    )
    env = {**os.environ, **agent("good")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfkit", "run", str(flow), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_until((tmp_path / "slow.started").exists, "the step after the agent step")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert len(requests(tmp_path)) == 1
    runs = json.loads(wfkit("runs", "--json").stdout)
    [run] = runs
    assert run["status"] == "interrupted"
    flow.write_text(flow.read_text().replace("sleep 600", "true"))
    result = wfkit("resume", run["run_id"], "--json", "--force", env=agent("fail"))
    assert result.returncode == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["state"]["raw"]["fixes"] == ["pin the version", "retry the download"]
    assert len(requests(tmp_path)) == 1  # the agent was not asked again


def test_a_fan_out_on_dask_workers_performs_every_item(  # type: ignore[no-untyped-def]
    write, agent, tmp_path: Path
) -> None:
    flow = write(FAN.replace("    min_success: 4\n", ""))
    result = wfkit("run", str(flow), "--executor", "dask", "--json", env=agent("item"))
    report = json.loads(result.stdout)
    assert report["state"]["raw"]["doubles"] == [2, 4, 8, 10], report["error"]
    assert sorted(r["item"] for r in requests(tmp_path)) == [0, 1, 2, 3, 4]
    assert report["error"] is None


def test_checking_a_response_costs_linear_time(write, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A backtracking pattern and uniqueItems over thousands of objects: the check ends with
    the rule broken, long before the step's timeout (which would say AgentTimeoutError)."""
    flow = write(
        """
        name: costly
        steps:
          - id: a
            type: agent_task
            prompt: hi
            timeout: 600
            response_schema:
              type: object
              properties:
                s: {type: string, pattern: "^(a+)+$"}
                u: {type: array, uniqueItems: true}
        """
    )
    answers = tmp_path / "answers.yaml"
    answers.write_text(
        json.dumps({"a": {"s": "a" * 50_000 + "!", "u": [{"i": i} for i in range(20_000)]}})
    )
    code, report = run_json(str(flow), "--answers", str(answers), env={"WFKIT_AGENT_COMMAND": ""})
    assert code == 1
    assert report["error"]["type"] == "AgentResponseError"
    assert "(rule 'pattern')" in report["error"]["message"]
    answers.write_text(json.dumps({"a": {"u": [{"i": i} for i in range(20_000)] + [{"i": 7.0}]}}))
    code, report = run_json(str(flow), "--answers", str(answers), env={"WFKIT_AGENT_COMMAND": ""})
    assert report["error"]["type"] == "AgentResponseError"
    assert "item 20000 repeats an earlier item" in report["error"]["message"]


def test_a_response_nested_too_deeply_is_a_response_error(write, agent, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000)
    flow = write(
        "name: deep\nsteps:\n  - {id: a, type: agent_task, prompt: hi,"
        " response_schema: {type: array}}\n"
    )
    code, report = run_json(str(flow), env={"WFKIT_AGENT_COMMAND": f"cat {deep}"})
    assert code == 1
    assert report["error"]["type"] == "AgentResponseError"
    assert "nested too deeply" in report["error"]["message"]


def test_a_secret_in_a_long_prompt_is_masked_whole_in_the_logs(write, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The request line is longer than what the capture keeps of its head: the secret
    across the cut is masked before the cut."""
    flow = write(
        """
        name: long
        inputs:
          token: {type: string, secret: true}
          pad: {type: string}
        steps:
          - {id: a, type: agent_task, prompt: "{{ pad }}{{ token }}"}
        """
    )
    token = "TOKVALUE-1122-SECRET"
    pad = "x" * (65_536 - 97)
    for cut in range(0, 40, 3):  # wherever the cut falls across the secret
        env = {"WFKIT_AGENT_COMMAND": "cat >/dev/null; echo ok"}
        code, report = run_json(
            str(flow), "-i", f"token={token}", "-i", f"pad={pad[cut:]}", env=env
        )
        assert code == 0, report
        logs = wfkit("logs", report["run_id"], "--json")
        assert "TOKVALUE" not in logs.stdout
        assert "1122-SECRET" not in logs.stdout
    stored = b"".join(p.read_bytes() for p in (tmp_path / "store").glob("runs.db*"))
    assert b"TOKVALUE" not in stored
    assert b"1122-SECRET" not in stored


def test_a_background_child_neither_holds_the_answer_nor_outlives_it(write, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    agent = tmp_path / "bg.sh"
    agent.write_text(
        "cat >/dev/null\n"
        'echo "$WFKIT_WORKFLOW_DIR $GREETING $PWD" >&2\n'
        "sleep 301 &\n"
        'echo \'{"fixes": ["x"]}\'\n'
    )
    flow = write(FLOW.replace("steps:", "env: {GREETING: hello}\nsteps:", 1))
    code, report = run_json(str(flow), env={"WFKIT_AGENT_COMMAND": f"sh {agent}"})
    assert code == 0, report  # answered, not AgentTimeoutError after the step's 60 s
    leftovers = subprocess.run(
        ["pgrep", "-f", "sleep 301"], capture_output=True, text=True, check=False
    ).stdout.split()
    assert [pid for pid in leftovers if alive(int(pid))] == []
    [attempt] = json.loads(wfkit("logs", report["run_id"], "--json").stdout)["attempts"]
    assert f"{tmp_path} hello {tmp_path}" in attempt["stderr"]
