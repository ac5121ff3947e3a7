"""Secrets never leak: a canary sent through every channel is found on no surface and in no
file of the store; the store is private; a resume needs the secret again and restores it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfkit.commands import RunReport, run_workflow
from wfkit.engine.secrets import MASK, Masker, forms, references, shown
from wfkit.errors import LoadError

TOKEN = "tok_CANARY_7f3a9"
KEY = "dk-CANARY-51b0"
SIGNING = "sig-CANARY-c2d8"

FLOW = """
name: ci
inputs:
  api_token: {type: string, secret: true}
secrets:
  deploy_key: {env: WFKIT_TEST_DEPLOY_KEY}
  signing: {file: sign.pem}
env_file: ci.env
env:
  AUTH: "Bearer {{ api_token }}"
state_schema:
  raw: {copy: string, fallback: any, noted: string}
steps:
  - id: show
    type: shell_command
    command: >-
      echo "token={{ api_token }} key=$WFKIT_TEST_DEPLOY_KEY auth=$AUTH region=$REGION";
      echo {{ secrets.signing }};
      python3 -c 'import json,sys,base64,urllib.parse; t=sys.argv[1];
      print(json.dumps({"t": t + "\\n\\"q"}), urllib.parse.quote(t, safe=""),
      base64.b64encode(t.encode()).decode())' {{ api_token }}
  - id: keep
    type: state_update
    path: raw.copy
    value: "x-{{ secrets.deploy_key }}-y"
  - id: fan
    type: parallel_foreach
    items: [1, 2]
    sub_agent_task: item
  - id: flaky
    type: shell_command
    command: 'echo "failing with {{ api_token }}" >&2; exit 3'
    on_error: continue
    fallback_value: "fallback {{ api_token }}"
    error_state_update: {path: raw.noted, value: "{{ error.message }}"}
  - id: call
    type: shell_command
    command: 'echo "Authorization: Bearer {{ api_token }}" >&2; exit 7'
sub_agent_tasks:
  item:
    inputs: {item: {type: integer}}
    steps:
      - {id: say, type: shell_command, command: "echo item {{ item }} $AUTH"}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "ci.yaml").write_text(FLOW)
    (tmp_path / "ci.env").write_text('REGION="eu west"\n# comment\n')
    (tmp_path / "sign.pem").write_text(SIGNING + "\n")
    monkeypatch.setenv("WFKIT_TEST_DEPLOY_KEY", KEY)
    monkeypatch.setenv("WFKIT_STORE", str(tmp_path / "store"))
    return tmp_path


def wfkit(project: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "wfkit", *args],
        capture_output=True,
        cwd=project,
        env=os.environ.copy(),
        check=False,
    )


CANARIES = [TOKEN, KEY, SIGNING]


def leaks(data: bytes) -> list[str]:
    """The canaries (in any of their forms) found in ``data``."""
    found = []
    for canary in CANARIES:
        for form in forms(canary):
            if form.encode() in data:
                found.append(form)
    return found


@pytest.mark.slow
def test_a_canary_sent_through_every_channel_appears_nowhere(project: Path) -> None:
    given = ["-i", f"api_token={TOKEN}"]
    run = wfkit(project, "run", "ci.yaml", *given, "--json")
    report = json.loads(run.stdout)
    assert report["status"] == "failed", run.stderr
    assert leaks(run.stdout + run.stderr) == []
    assert MASK in json.dumps(report["state"])
    assert report["state"]["raw"]["copy"] == f"x-{MASK}-y"
    assert report["state"]["inputs"]["api_token"] == MASK
    metrics = wfkit(project, "run", "ci.yaml", *given, "--metrics", "m.prom", "-q")
    assert (project / "m.prom").exists(), metrics.stderr
    assert leaks((project / "m.prom").read_bytes()) == []
    human = wfkit(project, "run", "ci.yaml", *given, "--steps", "all")
    assert leaks(human.stdout + human.stderr) == []
    assert b"region=eu west" in human.stdout + human.stderr  # the env file reached the step
    run_id = report["run_id"]
    surfaces = [
        ["logs", run_id],
        ["logs", run_id, "--json"],
        ["debug", run_id],
        ["debug", run_id, "--json"],
        ["why", run_id, "call"],
        ["why", run_id, "flaky"],
        ["report", run_id, "-o", "-"],
        ["report", run_id, "--json"],
        ["trace", run_id, "--json"],
        ["trace", run_id],
        ["test-step", "ci.yaml", "show", "--state", json.dumps({"inputs": {"api_token": TOKEN}})],
        [
            "test-step",
            "ci.yaml",
            "show",
            "--json",
            "--state",
            json.dumps({"inputs": {"api_token": TOKEN}}),
        ],
        ["diff", run_id, run_id],
        ["explain", "ci.yaml", *given],
        ["explain", "ci.yaml", *given, "--json"],
        ["runs", "--json"],
    ]
    for args in surfaces:
        done = wfkit(project, *args)
        assert leaks(done.stdout + done.stderr) == [], args
    files = [p for p in (project / "store").rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert leaks(path.read_bytes()) == [], path


@pytest.mark.slow
def test_the_store_is_private(project: Path) -> None:
    wfkit(project, "run", "ci.yaml", "-i", f"api_token={TOKEN}")
    store = project / "store"
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    for path in store.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, (path, oct(mode))
    health = wfkit(project, "health", "--json")
    assert "store privacy" in health.stdout.decode()
    store.chmod(0o755)
    exposed = json.loads(wfkit(project, "health", "--json").stdout)
    check = next(c for c in exposed["checks"] if c["name"] == "store privacy")
    assert not check["ok"]
    assert f"chmod 700 {store}" in check["detail"]


RESUMED = """
name: again
inputs:
  api_token: {type: string, secret: true}
state_schema:
  raw: {header: string}
steps:
  - {id: keep, type: state_update, path: raw.header, value: "Bearer {{ api_token }}"}
  - {id: gate, type: shell_command, command: "test -e {gate}"}
  - {id: use, type: shell_command, command: 'printf %s "{{ raw.header }}" > {out}'}
"""


@pytest.mark.slow
def test_a_resume_needs_the_secret_again_and_restores_state_from_it(project: Path) -> None:
    gate, out = project / "gate", project / "out"
    (project / "again.yaml").write_text(
        RESUMED.replace("{gate}", str(gate)).replace("{out}", str(out))
    )
    first = json.loads(
        wfkit(project, "run", "again.yaml", "-i", f"api_token={TOKEN}", "--json").stdout
    )
    assert first["status"] == "failed"
    refused = wfkit(project, "resume", first["run_id"])
    assert refused.returncode == 2
    assert b"'api_token'" in refused.stderr
    assert b"-i api_token=" in refused.stderr
    gate.touch()
    done = wfkit(project, "resume", first["run_id"], "-i", f"api_token={TOKEN}", "--json")
    assert json.loads(done.stdout)["status"] == "succeeded", done.stderr
    assert out.read_text() == f"Bearer {TOKEN}"  # restored from the secret given again
    assert leaks(done.stdout + done.stderr) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\ninputs:\n  t: {type: string, secret: true, default: abc}\nsteps: []\n",
            "input 't' is secret: it cannot have a default",
        ),
        (
            "name: x\nsecrets:\n  deploy_key: {env: X}\nsteps:\n"
            "  - {type: user_message, message: '{{ secrets.deploy_kye }}'}\n",
            "no secret 'deploy_kye' is declared; did you mean 'deploy_key'?",
        ),
        (
            "name: x\nenv: {A: b}\nsteps:\n  - {type: user_message, message: '{{ env.B }}'}\n",
            "no env variable 'B' is declared",
        ),
        ("name: x\nsecrets:\n  k: {}\nsteps: []\n", "give exactly one of `env` or `file`"),
    ],
)
def test_declaration_mistakes_are_load_errors(run_yaml: Any, text: str, expected: str) -> None:
    with pytest.raises(LoadError, match=expected.replace("?", r"\?")):
        run_yaml(text)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("secrets:\n  k: {env: WFKIT_TEST_NOT_SET}\n", "WFKIT_TEST_NOT_SET, which is not set"),
        ("secrets:\n  k: {file: missing.pem}\n", "missing.pem: No such file or directory"),
        ("env_file: bad.env\n", "bad.env, line 2: not a NAME=value line"),
        ("env_file: none.env\n", "none.env: No such file or directory"),
    ],
)
def test_what_a_run_reads_at_start_is_checked(
    write: Any, tmp_path: Path, extra: str, expected: str
) -> None:
    (tmp_path / "bad.env").write_text("A=1\nthis is not a binding\n")
    flow = write("name: x\n" + extra + "steps: []\n")
    with pytest.raises(LoadError, match=expected):
        run_workflow(flow)


def test_a_missing_optional_secret_is_empty(run_yaml: Any) -> None:
    report: RunReport = run_yaml(
        "name: x\nsecrets:\n  k: {env: WFKIT_TEST_NOT_SET, required: false}\n"
        "state_schema: {raw: {v: string}}\n"
        "steps:\n  - {type: state_update, path: raw.v, value: '[{{ secrets.k }}]'}\n"
    )
    assert report.state.raw["v"] == "[]"


def test_env_reaches_commands_and_expressions(run_yaml: Any) -> None:
    report: RunReport = run_yaml(
        "name: x\nenv: {GREETING: 'hello {{ who }}'}\ninputs: {who: {type: string}}\n"
        "state_schema: {raw: {said: string, read: string}}\nsteps:\n"
        "  - {id: s, type: shell_command, command: 'echo $GREETING',"
        " state_update: {path: raw.said, value: '{{ result.stdout }}'}}\n"
        "  - {type: state_update, path: raw.read, value: '{{ env.GREETING }}'}\n",
        {"who": "ada"},
    )
    assert report.state.raw == {"said": "hello ada", "read": "hello ada"}


# the masker itself -----------------------------------------------------------------------


SECRET_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=6, max_size=40
).map(lambda s: "sk-" + s.replace("\x00", ""))
"""Random secret texts (quotes, unicode, regex metacharacters, newlines), with a token's
prefix: a secret equal to the store's own words (``succeeded``) would mask those words."""


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(secret=SECRET_TEXT, before=st.text(max_size=20), after=st.text(max_size=20))
def test_a_secret_in_any_form_is_masked(secret: str, before: str, after: str) -> None:
    masker = Masker({"inputs.t": secret})
    for form in forms(secret):
        text = before + form + after
        masked = masker.text(text)
        assert secret not in masked
        assert form not in masked
        assert MASK in masked
        data = masker.value(text.encode("utf-8", "surrogatepass"))
        assert form.encode("utf-8", "surrogatepass") not in data


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(secret=SECRET_TEXT)
def test_a_reference_restores_the_value(secret: str) -> None:
    masker = Masker({"secrets.k": secret})
    state: dict[str, Any] = {"raw": {"a": [f"Bearer {secret}", {"deep": secret}], "n": 1}}
    stored = masker.value(state, masker.referenced)
    assert secret not in json.dumps(stored, ensure_ascii=False)
    assert references(stored) == {"secrets.k"}
    assert masker.restore(stored) == state
    assert shown(stored)["raw"]["a"][0] == f"Bearer {MASK}"
    assert Masker({}).restore(stored)["raw"]["a"][1]["deep"] == MASK  # not given: stays masked


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=SECRET_TEXT)
def test_random_secrets_never_reach_the_report_or_the_store(
    run_yaml: Any, isolated_store: Path, secret: str
) -> None:
    report: RunReport = run_yaml(
        "name: r\ninputs: {t: {type: string, secret: true}}\n"
        "state_schema: {raw: {v: string}}\nsteps:\n"
        "  - {type: state_update, path: raw.v, value: '<{{ t }}>'}\n"
        "  - {type: error, message: 'bad {{ t }}'}\n",
        {"t": secret},
    )
    text = report.model_dump_json()
    assert secret not in json.loads(text)["state"]["raw"]["v"]
    assert secret not in text
    for path in isolated_store.rglob("*"):
        if path.is_file():
            assert secret.encode("utf-8", "surrogatepass") not in path.read_bytes()


@pytest.mark.slow
def test_a_suite_case_never_shows_its_secret(project: Path) -> None:
    (project / "leak.yaml").write_text(
        "name: leak\ninputs: {token: {type: string, secret: true}}\nsteps:\n"
        "  - {id: say, type: shell_command, command: 'echo {{ token }}; exit 5'}\n"
    )
    (project / "leak.wftest.yaml").write_text(
        "workflow: leak.yaml\ncases:\n"
        f"  - name: uses the token\n    inputs: {{token: {TOKEN}}}\n"
        "    allow_real_shell: true\n    expect: {status: succeeded}\n"
    )
    done = wfkit(
        project, "test", "leak.wftest.yaml", "--json", "--junit-xml", "j.xml", "--html", "h.html"
    )
    assert done.returncode == 1, done.stderr
    assert b"uses the token" in done.stdout
    assert leaks(done.stdout + done.stderr) == []
    human = wfkit(project, "test", "leak.wftest.yaml")
    assert leaks(human.stdout + human.stderr) == []
    for name in ("j.xml", "h.html"):
        assert leaks((project / name).read_bytes()) == [], name
