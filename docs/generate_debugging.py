"""Write docs/debugging.md from real command output (``python docs/generate_debugging.py``).

tests/test_docs_debugging.py regenerates the page and compares it with the file, so the
output shown there is what the commands print.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
DEMO = "examples/debug-demo.yaml"
CI = "examples/ci-tests.yaml"
MARKER = Path("/tmp/wfkit-docs-ready")  # fixed: state sizes in the output depend on it


def _cli(*args: str) -> tuple[int, str]:
    env = {"NO_COLOR": "1", "COLUMNS": "100", "TERM": "dumb"}
    from wfkit.cli.app import app

    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout + result.stderr


def _output_blocks(tmp: Path) -> dict[str, str]:
    """``logs``, ``runs`` filters, ``resume -i``, ``cancel`` and ``prune`` on real runs."""
    blocks = {"ci_run": _cli("run", CI)[1]}
    _, out = _cli("run", CI, "--json")
    run_id = json.loads(out[: out.rindex("}") + 1])["run_id"]
    blocks["logs"] = _cli("logs", run_id, "tests")[1]
    blocks["runs"] = _cli("runs", "--status", "failed", "--workflow", "examples:ci-tests")[1]
    blocks["resume_inputs"] = _cli("resume", run_id, "-i", "suite=api")[1]
    blocks["resume_from"] = _cli("resume", run_id, "--from", "tests")[1]
    sleepy = tmp / "deploy.yaml"
    sleepy.write_text(
        "name: deploy\nsteps:\n"
        "  - {id: wait_for_approval, type: shell_command, command: 'echo waiting; sleep 300'}\n"
        "finally:\n"
        "  - {id: notify, type: user_message, message: 'deploy ended: {{ workflow.status }}'}\n"
    )
    with subprocess.Popen(
        [sys.executable, "-m", "wfkit", "run", str(sleepy), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        line = ""
        while not line.startswith("run "):
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError("the deploy run did not start")
        blocks["cancel"] = _cli("cancel", line.split()[1])[1]
        proc.communicate(timeout=60)
    blocks["prune"] = _cli("prune", "--keep", "2", "--dry-run")[1]
    return blocks


FIX_FLOW = """\
name: release-check
steps:
  - id: build
    type: shell_command
    command: "echo built > artifact.txt; echo built"
  - id: smoke
    type: shell_command
    command: "grep -q ready artifact.txt"
    on_error: retry
    retry_count: 1
    retry_delay: 0
  - id: publish
    type: shell_command
    command: "echo published"
"""


def _fix_blocks(tmp: Path) -> dict[str, str]:
    """From a failed run to a fix: replay, replay an edit, a test from the run, resume --plan."""
    folder = tmp / "fix"
    folder.mkdir()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        Path("release.yaml").write_text(FIX_FLOW)
        blocks = {"fix_run": _cli("run", "release.yaml")[1]}
        _, out = _cli("runs", "--json", "--workflow", "release-check")
        run_id = json.loads(out)[0]["run_id"]
        blocks["fix_replay"] = _cli("replay", run_id)[1]
        fixed = FIX_FLOW.replace(
            "    retry_delay: 0\n", "    retry_delay: 0\n    on_error: continue\n"
        )
        fixed = fixed.replace("    on_error: retry\n", "")
        Path("fixed.yaml").write_text(fixed)
        blocks["fix_replay_edit"] = _cli("replay", run_id, "--workflow", "fixed.yaml")[1]
        blocks["fix_replay_live"] = _cli(
            "replay", run_id, "--workflow", "fixed.yaml", "--live", "publish"
        )[1]
        Path("tests").mkdir()
        blocks["fix_from_run"] = _cli(
            "test", "--from-run", run_id, "-o", "tests/release.wftest.yaml"
        )[1]
        blocks["fix_case"] = Path("tests/release.wftest.yaml").read_text()
        blocks["fix_test"] = _cli("test", "tests")[1]
        Path("release.yaml").write_text(fixed)
        blocks["fix_test_red"] = _cli("test", "tests")[1]
        blocks["fix_plan"] = _cli("resume", run_id, "--plan")[1]
        blocks["fix_resume"] = _cli("resume", run_id)[1]
    finally:
        os.chdir(cwd)
    return {k: v.replace(f"{folder}/", "").replace(f"{tmp}/", "") for k, v in blocks.items()}


def generate() -> str:
    """The page, with the output of every command it shows."""
    cwd = os.getcwd()
    # the marker's path is fixed, so generators running at once (two checkouts) take turns
    with open(MARKER.with_suffix(".lock"), "w") as lock, tempfile.TemporaryDirectory() as tmp:
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.chdir(ROOT)
        os.environ["WFKIT_STORE"] = str(Path(tmp) / "store")
        marker = MARKER
        marker.unlink(missing_ok=True)
        try:
            blocks = {
                "explain": _cli("explain", "examples/seed-error-handling.yaml")[1],
                "transform": _cli("test-transform", "input | sum", "--input", "[1, 2, 3]")[1],
                "transform_field": _cli(
                    "test-transform",
                    "--workflow",
                    DEMO,
                    "--field",
                    "progress",
                    "--state",
                    '{"raw": {"done": [0]}}',
                )[1],
            }
            blocks["step"] = _cli(
                "test-step", DEMO, "publish", "--mock-error", "ShellCommandError"
            )[1]
            blocks["step_last"] = _cli(
                "test-step", DEMO, "publish", "--mock-error", "ShellCommandError", "--attempt", "2"
            )[1]
            blocks["step_real"] = _cli(
                "test-step", DEMO, "report", "--state", '{"raw": {"done": [0, 1, 2]}}'
            )[1]
            _, out = _cli("run", DEMO, "--trace", "-i", f"marker={marker}", "--json")
            run_id = json.loads(out[: out.rindex("}") + 1])["run_id"]
            blocks["trace"] = _cli("trace", run_id)[1]
            blocks["trace_field"] = _cli("trace", run_id, "--field", "progress")[1]
            blocks["debug"] = _cli("debug", run_id)[1]
            blocks["why_publish"] = _cli("why", run_id, "publish")[1]
            blocks["why_report"] = _cli("why", run_id, "report")[1]
            os.chdir(tmp)  # the page is written to the current folder
            try:
                blocks["report"] = _cli("report", run_id, "-o", "run.html")[1]
                page = (Path(tmp) / "run.html").read_text(encoding="utf-8")
                if "wfkit-data" not in page:
                    raise RuntimeError("wfkit report wrote no run page")
            finally:
                os.chdir(ROOT)
            marker.touch()
            blocks["resume"] = _cli("resume", run_id)[1]
            blocks.update(_output_blocks(Path(tmp)))
            _, out = _cli("run", DEMO, "-i", f"marker={marker}", "--json")
            again = json.loads(out[: out.rindex("}") + 1])["run_id"]
            blocks["diff"] = _cli("diff", run_id, again)[1]
            blocks.update(_fix_blocks(Path(tmp)))
        finally:
            marker.unlink(missing_ok=True)
            os.chdir(cwd)
            del os.environ["WFKIT_STORE"]
    text = TEMPLATE
    for name, output in blocks.items():
        text = text.replace("{" + name + "}", output.rstrip())
    return text.replace(f"{ROOT}/", "")


def normalize(text: str) -> list[str]:
    """The page's lines without what differs between two generations (ids, times, durations,
    spacing), sorted: steps of equal duration may swap places in a ranking."""
    text = re.sub(r"\d{8}-\d{6}-[0-9a-f]{6}", "RUN_ID", text)
    # whole timestamps first (their date changes too), then clock times standing alone
    text = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(\+00:00)?", "TIME", text)
    text = re.sub(r"\d\d:\d\d:\d\d\.\d{3}", "CLOCK", text)
    text = re.sub(r"\d+ -> \d+ bytes", "SIZE -> SIZE bytes", text)
    text = re.sub(r"│ *\d+ *│$", "│ N │", text, flags=re.MULTILINE)  # a run's ms in `runs`
    text = re.sub(r"\d+\.\d+", "N", text)
    text = re.sub(r"\d+(?= ?(ms|%))", "N", text)
    # diff: rows that differ in timing only come and go with the machine's load
    text = re.sub(r"\d+(?= step execution\(s\) the same)", "N", text)
    text = re.sub(
        r"^  \S+(?: \[item \d+\])? #\d+: (?:slower \(\+N ms\)|faster)\n(?:    [AB] .*\n)+",
        "",
        text,
        flags=re.MULTILINE,
    )
    text = re.sub(r"(, )?(slower|faster)( \(\+N ms\))?", "", text)
    # a table's rules are as wide as its widest cell, which a longer duration widens
    text = re.sub(r"([─━═╌-])\1+", r"\1", text)
    return sorted(" ".join(line.split()) for line in text.splitlines() if line.strip())


TEMPLATE = """# Debugging a workflow

Seven commands answer "what will this do", "what did it do" and "why". None of them runs a
step or changes a run. Every output below is real: `docs/generate_debugging.py` writes this
page by running the commands, and the test suite checks the page against fresh output.

## Before running: `wfkit explain`

The seed's example, as written, reads `max_attempts`, which nothing defines. `explain` says so
before anything runs, with the step and line, and shows each step's error policy and retry
schedule (`--json` gives the same as data):

```console
$ wfkit explain examples/seed-error-handling.yaml
{explain}
```

Conditions that the inputs alone decide are evaluated and their dead branch marked
(`-i name=value` changes the inputs). Warnings cover undefined names, unknown `steps.<id>`,
literals that look like forgotten references (`value: stdout`), unreachable steps (after
`error`, `break`), retry budgets longer than the workflow timeout, writes to undeclared fields
and tools that no server provides.

## One expression: `wfkit test-transform`

```console
$ wfkit test-transform "input | sum" --input "[1, 2, 3]"
{transform}
```

A computed field of a workflow, with its `input` read from its `from` paths in a state you
describe:

```console
$ wfkit test-transform --workflow examples/debug-demo.yaml --field progress \\
    --state '{"raw": {"done": [0]}}'
{transform_field}
```

## One step in isolation: `wfkit test-step`

`wfkit test-step FILE STEP_ID` runs only that step, with the state you give (`--state
'{"inputs": {...}, "raw": {...}}'` over the defaults), and shows each stage the engine goes
through: the condition with its operands, the rendered command or parameters, the result, the
state writes, and which branch of the error policy fires at `--attempt N` (retry with its
delay, fallback with its value, continue, or fail with the cleanup steps that would run).
`--mock-result JSON` replaces the step's work by a result and `--mock-error TYPE` by a failure
of that type; without them a shell command really runs (and an `mcp_call` really calls). Retry
waits are reported, never slept; nothing is stored. Exit 1 when the branch is `fail`.

```console
$ wfkit test-step examples/debug-demo.yaml publish --mock-error ShellCommandError
{step}
$ wfkit test-step examples/debug-demo.yaml publish --mock-error ShellCommandError --attempt 2
{step_last}
$ wfkit test-step examples/debug-demo.yaml report --state '{"raw": {"done": [0, 1, 2]}}'
{step_real}
```

## After a traced run: `wfkit trace`

`wfkit run --trace` (or `config.trace: true`) records each computed-field evaluation with its
trigger, input, output and timing, each condition with its operand values and outcome, and
each retry decision with its reason: "why was this step skipped / not retried" has an answer.

```console
$ wfkit run examples/debug-demo.yaml --trace -i marker=/tmp/wfkit-docs-ready
$ wfkit trace RUN_ID
{trace}
```

One field, with `--field` (and one step with `--step`):

```console
$ wfkit trace RUN_ID --field progress
{trace_field}
```

`--json` gives `{traces: [{field, timestamp, trigger, input, output, duration_ms,
dependencies}], events, steps}`; `--format chrome -o trace.json` writes Chrome trace-event JSON
of steps, attempts and transforms, which opens in Perfetto or `chrome://tracing`.

## Any run: `wfkit debug`

```console
$ wfkit debug RUN_ID
{debug}
```

For an interrupted run (killed), `debug` shows the step it stopped in and the state of its
last checkpoint. `--json` adds the run's metrics, the same figures `wfkit run --metrics FILE`
writes for Prometheus: `wfkit_steps_total{type,status}` (a failure that `continue` or a
fallback handled has `status="handled"`), durations, retries, errors by type, breaker states,
and the run's outcome as `wfkit_run_status{status}` (1 for its status, 0 for the others) with
`wfkit_run_last_success_timestamp_seconds` (the workflow's last success, from the store), so
an alert tells a failed run from a succeeded one. `--metrics` without the `metrics` extra is
refused before the run (exit 2) with the install hint.

## One step: `wfkit why`

`wfkit why RUN_ID STEP_ID` answers "why did this step do that" from what the run recorded:
the condition with its operand values (recorded by every run, traced or not; an operand over
500 characters of JSON is kept shortened), each retry verdict with the error type and
`retry_on`, whether the policy took its `fallback_value` or continued, the `fail_fast` item
that cancelled a parallel step's items, and the step's circuit breaker. A step inside a
`parallel_foreach` item is named `PARALLEL/STEP`. `--json` gives `{answer, status, executions,
attempts, reasons: [{kind, text, details}], breaker}`; the MCP shim serves it as
`workflow_why`.

```console
$ wfkit why RUN_ID publish
{why_publish}
```

```console
$ wfkit why RUN_ID report
{why_report}
```

## See a run: `wfkit report`

`wfkit report RUN_ID` writes one HTML file (`wfkit-report-RUN_ID.html` in the current folder,
`-o FILE` elsewhere, `-o -` to stdout) and prints its path on stderr. The page is
self-contained: its CSS, script and data are inline and it fetches nothing (its
Content-Security-Policy forbids it), so it opens from disk or as a CI artifact. It shows the
run's status, inputs and duration; a timeline of every step execution with its attempts and the
retry waits between them, each `parallel_foreach` item as a lane of its own (past 10 items the
lanes start collapsed, failed ones open; a click opens or closes one), and the critical path
marked (◆: the executions the run's wall time waited on); the error chain (a sub-agent error,
then the item's error that caused it); the state per tier at the end and after each top-level
step (checkpointed values), each succeeded parallel item's own state at its end, and what is
not recorded said plainly; computed-field traces when the run was traced; each attempt's
captured output as stored; and the workflow's circuit breakers. Every value is shown as text,
never as HTML. The page stays bounded: 8,000 characters per output stream (head and tail),
1,000,000 characters of output in all, 2,000 characters per value and 2,000 trace records, and
it lists what it cut. A run of 10,000 step executions gives a page of about 1 MB that headless
Chromium loads and draws in 0.7-0.9 s on the development machine (`python
benchmarks/report.py`). `--json` prints the page's data instead.

```console
$ wfkit report RUN_ID -o run.html
{report}
```

![wfkit report: a retried fetch, a failed item, the error chain](images/report.png)

The screenshot is a run of `examples/report-demo.yaml` (`docs/generate_report_screenshot.py`
makes it, in headless Chromium): `fetch` failed once with exit 75 and succeeded on its
retry after the hatched wait; the last `deploy` item failed, which failed the run. The same
kind of page for a test suite: `wfkit test PATHS --html report.html` lists the cases with
their status, each failure with its expectation and the run's first error, and the
workflow coverage (steps, branches and error handlers, as `--coverage` counts them).

## Then: `wfkit resume`

```console
$ touch /tmp/wfkit-docs-ready
$ wfkit resume RUN_ID
{resume}
```

The completed steps did not run again; the failed step was attempted again and the run
finished. A step that was waiting to retry when the run was killed keeps the attempts it made:
`retry_count: 2` means three attempts in all, across any number of resumes.

## What a step printed: `wfkit logs`

Every execution and attempt of a `shell_command` (and the text of an `mcp_call` result)
keeps its stdout and stderr in the run store, whatever its outcome: the first and the last
`config.max_output_bytes` of each stream (64 KiB by default), with a count of the bytes
dropped in between. A step that writes gigabytes does not grow the engine's memory. The error
of a failing command ends with the last lines of stderr, then of stdout, so a test runner that
reports on stdout says why it failed in `run`, `debug` and the MCP tools:

```console
$ wfkit run examples/ci-tests.yaml
{ci_run}
```

While a run goes, `wfkit run` shows each shell step's output as it arrives, prefixed with the
step id (and `[item]` inside a `parallel_foreach`); `--quiet` turns that off, and with `--json`
it goes to stderr only with `--stream`. The run id is printed when the run starts. Afterwards,
or from another terminal while it runs (`--follow` ends when the run ends):

```console
$ wfkit logs RUN_ID tests
{logs}
```

`--attempt N` and `--item I` pick one attempt or one parallel item; `--json` gives
`{run_id, status, attempts: [{step_id, item, execution, attempt, status, exit_code, stdout,
stderr, stdout_dropped, stderr_dropped, chunks: [{stream, timestamp, text}]}]}`.

## Finding, changing, stopping and pruning runs

```console
$ wfkit runs --status failed --workflow examples:ci-tests
{runs}
```

`--since 2h` and `--limit N` narrow it further. `resume` takes new inputs (`-i name=value`,
`--inputs FILE`); they are resolved again against the current file, defaults included, and
the change is recorded in the run:

```console
$ wfkit resume RUN_ID -i suite=api
{resume_inputs}
```

`--from STEP` goes back to a top-level step that ran (even in a run that succeeded, like
Temporal's reset): the state is as it was before that step, and everything from it runs again:

```console
$ wfkit resume RUN_ID --from tests
{resume_from}
```

A resume refuses a file whose steps moved before the saved position (a step removed,
reordered or changed in type up to the step the run stopped in) unless `--force`; edits after
that position, or to commands and values, are fine.

`wfkit cancel RUN_ID` stops a run from another process (through the store, so from any machine
that reaches it): its step's process group is ended, even one that ignores SIGTERM, `finally`
runs, and the run ends `cancelled`, resumable:

```console
$ wfkit run deploy.yaml &
$ wfkit cancel RUN_ID
{cancel}
```

`wfkit prune` deletes old finished runs and everything they own, then reclaims the space
(`--older-than 30d`, `--keep N`, `--status S`, `--dry-run`); `config.retention` or
`WFKIT_RETENTION` (`30d`, `keep=100`, `older_than=30d,keep=100`) prunes after every run:

```console
$ wfkit prune --keep 2 --dry-run
{prune}

## Does the fallback really work: `wfkit run --inject`

`--inject` makes chosen steps or tools fail (or slow down) on purpose, so retries, fallbacks,
cleanups and breakers can be watched doing their work:

```console
$ wfkit run flow.yaml --inject 'step=fetch error=ToolError rate=0.3' --inject-seed 42
$ wfkit run flow.yaml --inject 'tool=notes.add latency=2s'
$ wfkit run flow.yaml --inject 'step=deploy exit_code=75'
```

A fault names its target (`step=ID`, the id as written, also inside parallel items; or
`tool=NAME`, as `NAME` or `SERVER.NAME`), what it does (`error=TYPE`: any step error type;
`exit_code=N`: the step fails as a shell command exiting with N, so `retry_on: "error.exit_code
== 75"` sees it; `latency=D`: a wait before the attempt or call, through the run's clock), and
`rate=P` (0 to 1, default 1): each attempt of the target is hit with that probability, drawn
from `--inject-seed` (default: the run's seed), so the same seed hits the same attempts.
`--inject` can be given several times. A bad fault is refused before the run (exit 2, naming
the word at fault). An injected error replaces the step's real work (or the tool call) for
that attempt; its error record has `details.injected: true` and a message starting with
`injected fault (...)`, the step's records (`steps[].injected` in the run report, the stored
step history) are marked, and `wfkit why` lists each hit as a decision.

Test suites take the same faults as `mocks.inject` (docs/testing.md). `wfkit bench --inject
... [--inject-seed S]` injects them into every run (run n draws with seed `S/n`), measures
wall p50 (median) and p95 under failure, and reports how many runs were hit, the share of those
that still succeeded (`recovered_share`) and how many failed; a failed run is a figure here,
not an error.

## Compare two runs: `wfkit diff`

`wfkit diff RUN_A RUN_B` aligns two runs step by step: the n-th execution of a step id in A
faces the n-th in B, so loop iterations line up by iteration, and a step inside a
`parallel_foreach` item by item index (`[item 2]`) whatever order the items finished in. Each
row that differs shows status, attempts and duration on both sides, with the error of a failed
execution; then inputs and final state path by path. Timing alone is not a difference unless
asked: with `--timing` a step is also `slower` when B took 1.5 times as long and 5 ms more (or
`faster`). The first divergence is named at the top: a different workflow file, then an
input, then the first step that behaved differently, then the state, then timing. `--json`
gives `{first_divergence, first_divergent_step: {step_id, item, execution}, inputs, state,
steps: [{step_id, item, execution, a, b, changes, slower_by_ms}], identical_steps}`
(`first_divergent_step` names the first step that behaved differently, also when an input
differs too); the MCP shim serves it as `workflow_diff` (`timing` argument). Here the resumed
run above against a fresh run once the marker exists:

```console
$ wfkit diff RUN_ID OTHER_RUN_ID
{diff}
```

## From a failed run to a fix: `replay`, `test --from-run`, `resume --plan`

A release check failed: its smoke test found no `ready` in the artifact, twice.

```console
$ wfkit run release.yaml
{fix_run}
```

**Replay it.** `wfkit replay RUN_ID` runs the recorded run again with every side effect
answered from its record, attempt by attempt (shell commands by step, tools by name, agents,
answers, child runs; waits take no time): nothing outside runs, and the replay is a run of its
own (`replay of RUN_ID`). With the recorded workflow it must reproduce the record; a
difference is a determinism problem (a value such as `workflow.run_id` that differs between
runs), exit 1:

```console
$ wfkit replay RUN_ID
{fix_replay}
```

**Would my fix have changed yesterday's run?** The fix lets the release go on as a draft
when the smoke test fails (`on_error: continue` instead of retries). `--workflow FILE`
replays the edited copy over the same facts. `smoke` is answered with its recorded failure,
the new policy carries on, and `publish`, which never ran in the record, cannot be answered:
the replay stops there and says so:

```console
$ wfkit replay RUN_ID --workflow fixed.yaml
{fix_replay_edit}
```

`--live STEP` runs that step for real (only its commands: the rest is still answered from the
record), and the divergences say what the fix changes, first one first:

```console
$ wfkit replay RUN_ID --workflow fixed.yaml --live publish
{fix_replay_live}
```

**Decisions and limits.** Shell steps are answered by step and attempt, not by their command
text (the record keeps their output, not the command line): a replay shows how a new
definition treats the recorded facts (its retries, conditions, fallbacks, state updates), not
what an edited command would print. Tools are answered by name in the order they were
called, not by arguments; `--live` runs shell steps only. A run that was resumed has a record
of several segments: its replay runs once from the start, answering each step's attempts in
the order they were recorded, and reports where that differs from the whole record. The
replay never writes breaker state (breakers start closed, as in `wfkit test`). Only a run
that ended by itself (succeeded, failed, timed out) is replayed or written as a test: a
cancelled, interrupted or waiting run ended by something its record does not hold. What the
record does not keep cannot be answered and stops the replay: a child run or an answer inside
a loop or a parallel item beyond its last one, a tool or agent step the record never ran. A
timed-out attempt is answered as a failed command (exit code 1); secret inputs are replayed
as `***`, their masked value.

**Keep it as a test.** `wfkit test --from-run RUN_ID` writes a case that reproduces the run
from its record, and passes at once:

```console
$ wfkit test --from-run RUN_ID -o tests/release.wftest.yaml
{fix_from_run}
$ cat tests/release.wftest.yaml
{fix_case}
$ wfkit test tests
{fix_test}
```

With the fix in `release.yaml` the outcome changes, and the case fails, naming each
expectation that no longer holds; update it, or keep it as the record of the old behaviour:

```console
$ wfkit test tests
{fix_test_red}
```

**Resume with the fix.** `wfkit resume RUN_ID --plan` compares the recorded workflow with the
file and judges each change against where the resume continues (the table in
docs/errors.md): a change to the step the run failed in is safe, it runs again with the new
definition. A change to a completed step (`build`) would be unsafe, and a plain resume refused
with that change and its override (`--from build`).

```console
$ wfkit resume RUN_ID --plan
{fix_plan}
$ wfkit resume RUN_ID
{fix_resume}
```
"""


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    (ROOT / "docs" / "debugging.md").write_text(generate(), encoding="utf-8")
    print("wrote docs/debugging.md")
