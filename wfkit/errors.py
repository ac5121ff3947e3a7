"""Every error wfkit raises, as one tree rooted at :class:`WfkitError`.

::

    WfkitError
    ├── LoadError                  a workflow or test file is invalid (file, line, column, field)
    ├── InputError                 workflow inputs are missing or of the wrong type   [permanent]
    │   └── MissingExtraError      the workflow needs an optional part that is not installed
    ├── NoTestsFoundError          no test suite where ``wfkit test`` looked (exit 5)
    ├── RunNotFoundError           no run with that id in the store
    ├── ResumeError                a run cannot be resumed (finished, running, file changed)
    ├── CancelError                a run cannot be cancelled (it is not running)
    ├── StoreError                 the run store cannot be opened or is inconsistent
    │   └── LeaseLostError         the run was taken over after its lease ran out
    ├── ExecutorError              the executor cannot be used (bad option, unreachable cluster)
    └── StepError                  a step failed while running (step_id, attempt)
        ├── ShellCommandError      non-accepted exit code (exit_code, stderr, *_tail)
        ├── StepTimeoutError       one attempt exceeded the step's ``timeout``
        ├── WorkflowTimeoutError   the run exceeded ``config.timeout``
        ├── ToolNotFoundError      no provider offers the tool                       [permanent]
        ├── ToolError              the tool ran and reported an error
        │   └── ToolInputError     the tool refused its arguments (invalid params)   [permanent]
        ├── ToolConnectionError    the tool's server could not be reached
        ├── ExpressionError        a Jinja2 expression failed or broke a sandbox bound [permanent]
        │   └── UndefinedVariableError  an expression named something undefined     [permanent]
        ├── StateError             an invalid state write                            [permanent]
        │   └── StateSizeLimitError  a write would exceed ``config.max_state_bytes``
        ├── MemoryLimitError       the engine exceeded ``config.max_memory_mb``    [fatal]
        ├── CircuitOpenError       the step's circuit breaker is open
        ├── SubAgentError          a parallel item failed (index, cause)
        ├── BranchError            a parallel branch failed (branch, cause)
        ├── WorkflowStepError      a workflow step's child run failed (child_run_id, cause)
        ├── AgentError             the agent performing an ``agent_task`` reported failure
        │   ├── AgentResponseError   its response does not match ``response_schema`` (path, rule)
        │   ├── AgentTimeoutError    no response in time (also a StepTimeoutError)
        │   └── AgentUnavailableError  no performer for this run                  [permanent]
        ├── ExecutorLostError      the cluster running the items was lost            [fatal]
        ├── UserError              an ``error`` step or a refused ``user_input``     [permanent]
        ├── InputRequiredError     a ``user_input`` waits for an answer (status waiting) [fatal]
        └── CancelledRunError      the run was cancelled (Ctrl-C, SIGTERM)         [fatal]

Permanent errors are never retried unless ``retry_on`` names them (or a permanent ancestor:
``retry_on: [ToolError]`` does not retry a ``ToolInputError``); fatal errors end the run
whatever the step's policy says. Errors carry data (file, line, column, step id, attempt,
cause); rendering belongs to the CLI.
"""

from __future__ import annotations

from typing import Any, ClassVar


class WfkitError(Exception):
    """Base of every error wfkit raises on purpose."""

    permanent: ClassVar[bool] = False
    #: ends the run whatever the step's error policy says (no retry, no fallback)
    fatal: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        #: raised by fault injection (``--inject``), not by the step's real work
        self.injected = False

    def __reduce__(self) -> tuple[Any, ...]:
        # subclasses take keyword-only arguments, which the default reduction loses: rebuild
        # from the message and the attributes (errors travel back from remote workers)
        # (the attributes go as state, set once the error exists: LoadError.problems holds it)
        return (_rebuild, (type(self), self.args), self.__dict__)

    @property
    def type_name(self) -> str:
        """The error's type as users write it in ``retry_on`` and see it in reports."""
        return type(self).__name__

    def details(self) -> dict[str, Any]:
        """The error as plain data, as readable through ``error.*`` in expressions."""
        return {"type": self.type_name, "message": self.message}


def _rebuild(cls: type[WfkitError], args: tuple[Any, ...]) -> WfkitError:
    """An unpickled error, before its attributes are set: without calling its ``__init__``."""
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    return error


class LoadError(WfkitError):
    """A workflow file (or a part of it) is invalid; names the file, line, column and field."""

    permanent = True

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
        problems: list[LoadError] | None = None,
    ) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        #: every problem found in the file, sorted by line; this error's own fields are the
        #: first one's, so code that reads one location keeps working
        self.problems: list[LoadError] = problems if problems else [self]

    @property
    def location(self) -> str:
        """``file:line:col`` (as much of it as is known)."""
        parts = [self.file or "<workflow>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        where = f" (at {self.field})" if self.field else ""
        return f"{self.location}: {self.message}{where}"

    def details(self) -> dict[str, Any]:
        return {
            **super().details(),
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "field": self.field,
        }


class InputError(WfkitError):
    """Workflow inputs are missing, unknown or of the wrong type."""

    permanent = True


class MissingExtraError(InputError):
    """An optional part of wfkit that the workflow or command needs is not installed."""


class NoTestsFoundError(WfkitError):
    """``wfkit test`` found no ``*.wftest.yaml`` file where it looked (exit 5, as pytest)."""


class RunNotFoundError(WfkitError):
    """No run with the given id exists in the store."""


class ResumeError(WfkitError):
    """A run cannot be resumed: it succeeded, is still running, or its file changed."""

    permanent = True


class CancelError(WfkitError):
    """A run cannot be cancelled: it is not running."""


class StoreError(WfkitError):
    """The run store cannot be opened, or holds inconsistent data."""


class LeaseLostError(StoreError):
    """A run's lease ran out and another process took the run over: this one stopped."""

    def __init__(self, message: str, *, run_id: str = "") -> None:
        super().__init__(message)
        self.run_id = run_id


class ExecutorError(WfkitError):
    """The executor of parallel items cannot be used: an unknown kind, a bad scheduler
    address, or a cluster that cannot be reached."""


class StepError(WfkitError):
    """A step failed while running."""

    #: set by the engine once the failure is in the run's error history
    recorded: bool = False

    def __init__(
        self,
        message: str,
        *,
        step_id: str | None = None,
        attempt: int | None = None,
        cause: WfkitError | None = None,
    ) -> None:
        super().__init__(message)
        self.step_id = step_id
        self.attempt = attempt
        self.cause = cause
        #: indexes of this error's entries in the run's error history
        self.record_indexes: list[int] = []

    def feedback(self) -> dict[str, Any]:
        """The error as the next attempt's request carries it (an agent's
        ``previous_error``): what went wrong, without where."""
        return {"type": self.type_name, "message": self.message}

    def details(self) -> dict[str, Any]:
        data = {**super().details(), "step_id": self.step_id, "attempt": self.attempt}
        if self.cause is not None:
            data["cause"] = self.cause.details()
        return data


class ShellCommandError(StepError):
    """A shell command exited with a code outside ``ok_exit_codes``."""

    def __init__(
        self,
        message: str,
        *,
        exit_code: int,
        stderr: str,
        stdout_tail: str = "",
        stderr_tail: str = "",
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.exit_code = exit_code
        self.stderr = stderr
        #: the last lines of each stream (bounded), also at the end of ``message``
        self.stdout_tail = stdout_tail
        self.stderr_tail = stderr_tail

    def details(self) -> dict[str, Any]:
        return {
            **super().details(),
            "exit_code": self.exit_code,
            "stderr": self.stderr,
            "stdout_tail": self.stdout_tail,
            "stderr_tail": self.stderr_tail,
        }


class StepTimeoutError(StepError):
    """One attempt of a step ran longer than its ``timeout``."""


class WorkflowTimeoutError(StepError):
    """The whole run ran longer than ``config.timeout``."""


class ToolNotFoundError(StepError):
    """No tool provider offers the requested tool."""

    permanent = True


class ToolError(StepError):
    """A tool ran and reported an error."""


class ToolInputError(ToolError):
    """A tool refused its arguments: they do not match its input schema (JSON-RPC -32602)."""

    permanent = True


class ToolConnectionError(StepError):
    """A tool's server could not be started or reached."""


class ExpressionError(StepError):
    """An expression could not be compiled or evaluated, or exceeded a sandbox bound."""

    permanent = True

    def __init__(self, message: str, *, expression: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.expression = expression

    def details(self) -> dict[str, Any]:
        return {**super().details(), "expression": self.expression}


class UndefinedVariableError(ExpressionError):
    """An expression referred to a name that is not defined."""

    def __init__(self, message: str, *, name: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.name = name

    def details(self) -> dict[str, Any]:
        return {**super().details(), "name": self.name}


class StateError(StepError):
    """A state write was invalid: wrong path, read-only tier, wrong type, bad operation."""

    permanent = True


class StateSizeLimitError(StateError):
    """A write would make the state's JSON larger than ``config.max_state_bytes``."""


class MemoryLimitError(StepError):
    """The engine's memory use exceeded ``config.max_memory_mb``."""

    permanent = True
    fatal = True


class CircuitOpenError(StepError):
    """The step's circuit breaker is open, so the step was not attempted."""


class SubAgentError(StepError):
    """A ``parallel_foreach`` item failed; ``cause`` is the item's own error."""

    def __init__(self, message: str, *, index: int | None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.index = index

    def details(self) -> dict[str, Any]:
        return {**super().details(), "index": self.index}


class BranchError(StepError):
    """A ``parallel`` branch failed; ``cause`` is the error of the branch's failed step."""

    def __init__(self, message: str, *, branch: str | None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.branch = branch

    def details(self) -> dict[str, Any]:
        return {**super().details(), "branch": self.branch}


class WorkflowStepError(StepError):
    """A ``workflow`` step's child run did not succeed (or could not start); ``cause`` is the
    child's own error, ``child_run_id`` the child run."""

    def __init__(self, message: str, *, child_run_id: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.child_run_id = child_run_id

    def details(self) -> dict[str, Any]:
        return {**super().details(), "child_run_id": self.child_run_id}


class ChildRunError(StepError):
    """The error a child run ended with, as its record holds it: its type is the child's."""

    def __init__(self, message: str, *, child_type: str = "StepError", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.child_type = child_type

    @property
    def type_name(self) -> str:
        return self.child_type


class AgentError(StepError):
    """The agent performing an ``agent_task`` step reported failure (its message, and for a
    command performer the tail of its stderr)."""


class AgentResponseError(AgentError):
    """The agent's response does not match the step's ``response_schema``: ``path`` is the
    JSON path of the offending value, ``rule`` the schema keyword it broke. The next attempt's
    request carries this error, so the agent can correct itself."""

    def __init__(self, message: str, *, path: str = "$", rule: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.path = path
        self.rule = rule

    def feedback(self) -> dict[str, Any]:
        return {**super().feedback(), "path": self.path, "rule": self.rule}

    def details(self) -> dict[str, Any]:
        return {**super().details(), "path": self.path, "rule": self.rule}


class AgentTimeoutError(StepTimeoutError, AgentError):
    """No response from the agent within the step's ``timeout``."""


class AgentUnavailableError(AgentError):
    """Nothing performs agent steps in this run (no ``--agent-command``, answer or mock)."""

    permanent = True


class ExecutorLostError(StepError):
    """The cluster running a fan-out's items was lost (its scheduler went away): no item can
    run or report, so the run ends whatever ``on_item_error`` says, resumable once the
    cluster is back."""

    fatal = True


class UserError(StepError):
    """An ``error`` step ran, or a ``user_input`` could not be answered."""

    permanent = True
    #: the ``error_type`` an ``error`` step gave, as the user's own classification
    kind: str | None = None

    def details(self) -> dict[str, Any]:
        data = super().details()
        if self.kind is not None:
            data["kind"] = self.kind
        return data


class InputRequiredError(StepError):
    """A ``user_input`` step needs an answer the run cannot ask for: the run waits."""

    permanent = True
    fatal = True

    def __init__(self, message: str, *, prompt: str, choices: list[Any] | None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.prompt = prompt
        self.choices = choices

    def details(self) -> dict[str, Any]:
        return {**super().details(), "prompt": self.prompt, "choices": self.choices}


class CancelledRunError(StepError):
    """The run was cancelled from outside (Ctrl-C, SIGTERM)."""

    permanent = True
    fatal = True


ERROR_TYPES: dict[str, type[WfkitError]] = {
    cls.__name__: cls
    for cls in (
        ShellCommandError,
        StepTimeoutError,
        WorkflowTimeoutError,
        ToolNotFoundError,
        ToolError,
        ToolInputError,
        ToolConnectionError,
        ExpressionError,
        UndefinedVariableError,
        StateError,
        StateSizeLimitError,
        MemoryLimitError,
        CircuitOpenError,
        SubAgentError,
        BranchError,
        WorkflowStepError,
        AgentError,
        AgentResponseError,
        AgentTimeoutError,
        AgentUnavailableError,
        ExecutorLostError,
        UserError,
        InputError,
        CancelledRunError,
    )
}
"""Error types by the name users write in ``retry_on``, ``error_type`` and test mocks."""
