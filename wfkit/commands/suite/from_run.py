"""``wfkit test --from-run RUN_ID``: a test case written from a recorded run.

The case gives the run's inputs; its mocks answer every side-effecting step as the record
says it went, attempt by attempt: shell commands by step (``{stdout, stderr, exit_code}``,
from the captured output), tools by name and agents by step (the kept result, or the
recorded error), ``user_input`` answers and ``workflow`` steps from the steps' recorded
results. Its expectations are the run's outcome: status, final ``raw`` state, each step's
status and attempts, and the recorded errors. Secrets stay as the store keeps them (``***``).
A recorded attempt whose output was cut by ``max_output_bytes``, or that ended without an
exit code (a timeout, a cancel), cannot be answered exactly: the case's description says so.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from wfkit.commands.suite.models import MATCHERS
from wfkit.errors import InputError
from wfkit.language import models as m
from wfkit.language.compile import walk
from wfkit.language.loader import LoadedWorkflow, load_text
from wfkit.store import open_store
from wfkit.store.base import OutputRow, RunRow, Store


def case_from_run(run_id: str, *, store: str | Path | None = None, output: Path) -> str:
    """The YAML text of a suite with one case reproducing run ``run_id`` (its workflow path
    relative to ``output``'s folder)."""
    with open_store(store, create=False, read_only=True) as run_store:
        row = run_store.get_run(run_id)
        case = recorded_case(run_store, row)
    workflow = os.path.relpath(Path(row.file).resolve(), output.resolve().parent)
    suite = {"workflow": workflow, "cases": [case]}
    return yaml.dump(suite, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def recorded_case(
    run_store: Store, row: RunRow, action: str = "written as a test"
) -> dict[str, Any]:
    """The case (as data) reproducing the run ``row`` from its record (module docstring).
    Only a run that ended by itself can be reproduced: a cancelled, interrupted or waiting
    one ended by something outside its record."""
    from wfkit.commands._runs import effective_status

    status = effective_status(row)
    if status not in ("succeeded", "failed", "timed_out"):
        raise InputError(
            f"run {row.run_id} is {status}: only a run that ended by itself (succeeded, failed"
            f" or timed out) can be {action}"
        )
    text = run_store.source(row.digest)
    loaded = load_text(text, file=row.file) if text is not None else None
    notes: list[str] = []
    mocks = _mocks(run_store, row.run_id, loaded, notes)
    history = run_store.step_history(row.run_id)
    errors = run_store.errors(row.run_id)
    in_items = {h["step_id"] for h in history if h.get("item") is not None}
    steps: dict[str, dict[str, Any]] = {}
    for h in history:  # each step's last execution, as a run's report shows it; not the
        # steps of parallel items, whose last one depends on which item finished last
        if h["step_id"] not in in_items:
            steps[h["step_id"]] = {"status": h["status"], "attempts": h["attempts"]}
    if in_items:
        notes.append("The steps of parallel items are not expected one by one.")
    expect: dict[str, Any] = {"status": status}
    raw = (row.state or {}).get("raw", {})
    plain = {name: value for name, value in raw.items() if _NAME.match(name)}
    if plain:  # a value shaped like a matcher ({type: x}) is compared as it is
        expect["state"] = {
            f"raw.{name}": {"equals": value} if _matcher_like(value) else value
            for name, value in plain.items()
        }
    if len(plain) < len(raw):
        notes.append("State names that are not plain names are not expected.")
    expect["steps"] = steps
    expect["errors"] = [
        {"type": e.error_type, "step_id": e.step_id, "recovered": e.recovered} for e in errors
    ] or 0
    case: dict[str, Any] = {
        "name": f"run {row.run_id} ({status})",
        "description": " ".join(
            [f"Written by `wfkit test --from-run {row.run_id}`.", *notes]
        ).strip(),
    }
    if row.inputs:
        case["inputs"] = row.inputs
    if mocks:
        case["mocks"] = mocks
    case["expect"] = expect
    return case


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _matcher_like(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in MATCHERS


def _mocks(
    run_store: Store, run_id: str, loaded: LoadedWorkflow | None, notes: list[str]
) -> dict[str, Any]:
    by_id = _steps_by_id(loaded)
    errors: dict[str, list[Any]] = {}
    for error in run_store.errors(run_id):
        errors.setdefault(error.step_id, []).append(error)
    shell: dict[tuple[str, int | None], list[dict[str, Any]]] = {}
    tools: dict[str, list[dict[str, Any]]] = {}
    agents: dict[str, list[dict[str, Any]]] = {}
    for out in run_store.outputs(run_id):
        streams = _streams(run_store, run_id, out)
        if out.stdout_dropped or out.stderr_dropped:
            notes.append(f"{out.step_id} attempt {out.attempt}: its output was cut when kept.")
        if out.kind == "shell":
            if out.exit_code is None:
                notes.append(
                    f"{out.step_id} attempt {out.attempt} ended without an exit code "
                    f"({out.status}): answered with exit code 1."
                )
            # a command's result loses one trailing newline of each stream (as a mock's
            # reply is used as it is written)
            texts = {k: v[:-1] if v.endswith("\n") else v for k, v in streams.items()}
            reply = {**texts, "exit_code": 1 if out.exit_code is None else out.exit_code}
            shell.setdefault((out.step_id, out.item), []).append(reply)
            continue
        reply = _reply(out, streams, errors.get(out.step_id, []))
        if out.kind == "tool":
            step = by_id.get(out.step_id.rsplit("/", 1)[-1])
            name = step.tool_name if isinstance(step, m.McpCallStep) else out.step_id
            tools.setdefault(name, []).append(reply)
        elif out.kind == "agent":
            agents.setdefault(out.step_id.rsplit("/", 1)[-1], []).append(reply)
    mocks: dict[str, Any] = {}
    if shell:
        mocks["shell"] = [
            {"step": step, **({"item": item} if item is not None else {}), **_sequence(replies)}
            for (step, item), replies in shell.items()
        ]
    if tools:
        mocks["tools"] = {name: _sequence(replies) for name, replies in tools.items()}
    if agents:
        mocks["agents"] = {name: _sequence(replies) for name, replies in agents.items()}
    recorded: dict[str, Any] = {}  # the main steps' last results, as checkpointed
    for entry in run_store.checkpoint_log(run_id):
        for values in entry.values():
            for name, text in values.items():
                if name.startswith("steps/") and text is not None:
                    recorded[name[len("steps/") :]] = json.loads(text)
    answers = {
        sid: recorded[sid]["output"]
        for sid, step in by_id.items()
        if isinstance(step, m.UserInputStep) and sid in recorded
    }
    if answers:
        mocks["answers"] = answers
    workflows = {}
    for sid, step in by_id.items():
        if isinstance(step, m.WorkflowStep) and sid in recorded:
            result = recorded[sid].get("output") or {}
            workflows[sid] = {"returns": dict(result.get("outputs") or {})}
    for sid, found in errors.items():  # a child that failed: its error, as recorded
        if isinstance(by_id.get(sid), m.WorkflowStep) and sid not in workflows:
            cause = (found[-1].details or {}).get("cause") or {}
            workflows[sid] = {
                "raises": {
                    "type": str(cause.get("type", "UserError")),
                    "message": str(cause.get("message", found[-1].message)),
                }
            }
    if workflows:
        mocks["workflows"] = workflows
    return mocks


def _steps_by_id(loaded: LoadedWorkflow | None) -> dict[str, m.StepBase]:
    if loaded is None:
        return {}
    found: dict[str, m.StepBase] = {}
    for body in (loaded.main, *loaded.tasks.values()):  # walk enters parallel branches
        for steps in (body.steps, body.finally_steps):
            for step, _ in walk(steps):
                found.setdefault(step.step_id, step)
    return found


def _streams(run_store: Store, run_id: str, out: OutputRow) -> dict[str, str]:
    parts: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    for chunk in run_store.chunks(run_id, out.key):
        parts.setdefault(chunk.stream, []).append(chunk.data)
    return {name: b"".join(data).decode("utf-8", "replace") for name, data in parts.items()}


def _reply(out: OutputRow, streams: dict[str, str], errors: list[Any]) -> dict[str, Any]:
    """A tool's or agent's recorded answer: its result, or the error it raised (the
    recorded error of that attempt when there is one)."""
    if out.status == "succeeded":
        text = streams["stdout"]
        try:
            return {"returns": json.loads(text)}
        except ValueError:
            return {"returns": text}
    match = next((e for e in errors if e.retry_count + 1 == out.attempt), None)
    kind = "ToolError" if out.kind == "tool" else "AgentError"
    return {
        "raises": {
            "type": match.error_type if match is not None else kind,
            "message": match.message if match is not None else streams["stderr"] or "failed",
        }
    }


def _sequence(replies: list[dict[str, Any]]) -> dict[str, Any]:
    """One reply as itself, several as a ``sequence`` in the order they were made."""
    return replies[0] if len(replies) == 1 else {"sequence": replies}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as block scalars, readable in a review."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value and value == value.rstrip(" ") and "\t" not in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _text)
