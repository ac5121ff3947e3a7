"""``shell_command``: a subprocess in its own process group, output captured and bounded."""

from __future__ import annotations

import asyncio
import os
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wfkit.engine.capture import OutputCapture, StreamCapture
from wfkit.engine.memlimit import limited_argv
from wfkit.engine.processes import (
    drain,
    kill_leftovers,
    last_lines,
    process_exit,
    retrieve,
    spawn,
    terminate_group,
)
from wfkit.engine.steps.registry import handles
from wfkit.errors import ShellCommandError
from wfkit.language.models import ShellCommandStep
from wfkit.language.shellquote import ShellCommand, os_text

if TYPE_CHECKING:
    from wfkit.engine.context import RunContext
    from wfkit.engine.frame import Frame

_CHUNK = 65_536


#: the step (its recorded id, and its parallel item) whose command ``RunOptions.shell`` is
#: being asked about: a suite's shell mocks may answer by step instead of by command text
SHELL_STEP: ContextVar[tuple[str, int | None]] = ContextVar("wfkit_shell_step", default=("", None))


@handles(ShellCommandStep)
async def run_shell_command(step: ShellCommandStep, frame: Frame) -> Any:
    """Run the command; the result is ``{stdout, stderr, exit_code}``.

    A string runs through ``/bin/sh -c``, each templated value passed as an environment
    variable the text references (:mod:`wfkit.language.shellquote`); a list is an argv run
    directly. ``stdout``/``stderr`` lose one trailing newline.
    """
    run = frame.run
    rendered = frame.eval(step, "command")
    env = dict(os.environ)
    env.update(run.env)  # the workflow's env: and env_file; the step's own env wins
    for key, value in (frame.eval(step, "env") or {}).items():
        env[os_text(str(key), "an env name")] = os_text(str(value), f"env {key}")
    if isinstance(rendered, ShellCommand):  # its values as variables the text references
        command: str | list[str] = rendered.shown
        argv = ["/bin/sh", "-c", os_text(rendered.text, "the command")]
        env.update(rendered.env)
    else:
        command = [os_text(str(a), "an argument of the command") for a in rendered]
        argv = command
    workflow_dir = Path(run.loaded.file).resolve().parent
    env["WFKIT_RUN_ID"] = run.run_id
    env["WFKIT_WORKFLOW_DIR"] = str(workflow_dir)
    cwd: Path | str | None = run.options.cwd
    if step.working_directory:  # relative to the workflow file, so it runs from anywhere
        cwd = workflow_dir / str(frame.eval(step, "working_directory"))
    shown = command if isinstance(command, str) else " ".join(argv)
    if run.options.shell is not None:
        token = SHELL_STEP.set((frame.prefix + step.step_id, frame.item))
        try:
            mocked = run.options.shell(command)
        finally:
            SHELL_STEP.reset(token)
        if mocked is not None:
            return _result(step, shown, mocked)
    limited_by = None
    if step.memory_limit_mb is not None:
        argv, limited_by = limited_argv(argv, step.memory_limit_mb, step.step_id)
        env["MALLOC_ARENA_MAX"] = "2"  # fewer malloc arenas: less address space per thread
    proc = await spawn(argv, cwd, env, shown)
    capture = OutputCapture(frame, step.step_id, "shell", output_limit(run))
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = capture.streams["stdout"], capture.streams["stderr"]
    readers = asyncio.gather(_read(proc.stdout, out), _read(proc.stderr, err))
    try:
        # the step ends when its shell exits: a background child (`cmd &`) still holding the
        # pipes gets DRAIN_SECONDS to finish writing, then its group is killed
        exit_code = await process_exit(proc)
        await drain(proc.pid, readers)
    except BaseException as exc:
        readers.cancel()
        readers.add_done_callback(retrieve)  # else a collected `readers` logs its cancellation
        capture.finish("cancelled" if isinstance(exc, asyncio.CancelledError) else "failed")
        await terminate_group(proc, run.options.kill_grace_seconds)
        raise
    kill_leftovers(proc.pid)
    capture.finish("succeeded" if exit_code in step.ok_exit_codes else "failed", exit_code)
    result = {"stdout": out.text(), "stderr": err.text(), "exit_code": exit_code}
    return _result(step, shown, result, (out.last_lines(), err.last_lines()), limited_by)


def output_limit(run: RunContext) -> int:
    """Bytes kept of each end of each stream: ``config.max_output_bytes`` unless overridden."""
    override = run.options.max_output_bytes
    return override if override is not None else run.loaded.workflow.config.max_output_bytes


def _result(
    step: ShellCommandStep,
    shown: str,
    result: dict[str, Any],
    tails: tuple[str, str] | None = None,
    limited_by: str | None = None,
) -> dict[str, Any]:
    """The step's result, or ShellCommandError for an exit code outside ``ok_exit_codes``.

    The error's message ends with the last lines of stderr, then of stdout: a test runner
    that reports on stdout still says why it failed wherever the error is shown.
    """
    exit_code = result["exit_code"]
    if exit_code in step.ok_exit_codes:
        return result
    stdout_tail, stderr_tail = tails or (
        last_lines(result["stdout"]),
        last_lines(result["stderr"]),
    )
    hint = (
        f" (memory_limit_mb={step.memory_limit_mb}, enforced by {limited_by}, may have been"
        " exceeded)"
        if limited_by is not None
        else ""
    )
    last = stderr_tail.splitlines()[-1:] or [""]
    message = f"command {shown!r} exited with {exit_code}" + (f": {last[0]}" if last[0] else "")
    message += hint
    for name, tail in (("stderr", stderr_tail), ("stdout", stdout_tail)):
        if tail:
            message += f"\n{name}:\n" + "\n".join("  " + line for line in tail.splitlines())
    raise ShellCommandError(
        message,
        exit_code=exit_code,
        stderr=result["stderr"],
        stdout_tail=stdout_tail,
        stderr_tail=stderr_tail,
    )


async def _read(stream: asyncio.StreamReader, capture: StreamCapture) -> None:
    """Feed the stream to its capture as it arrives: memory stays bounded whatever the size."""
    while chunk := await stream.read(_CHUNK):
        capture.feed(chunk)
    capture.close()
