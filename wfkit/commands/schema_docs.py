"""Help text for every property of the workflow JSON Schema, applied when it is generated.

Kept apart from the file-format models so they stay cheap to build: the schema is the only
reader. A field is looked up as ``(Model, field)`` first, then by its name alone; a test
checks that every property of the generated schema has a description.
"""

from __future__ import annotations

from typing import Any

BY_NAME: dict[str, str] = {
    "executor": "Where parallel_foreach items run: {kind: local} or {kind: dask, scheduler: URL}.",
    "kind": "local (in the run's process, the default) or dask (a Dask cluster).",
    "scheduler": "Dask scheduler address, tcp://host:8786; none starts a local cluster.",
    "args": "Arguments of the server command.",
    "body": "Steps run on each iteration.",
    "by": "Amount for increment, decrement or multiply (default 1).",
    "choices": "The answers allowed; quote yes/no/on/off (YAML 1.1 reads them as booleans).",
    "circuit_breaker": "A breaker name from config.circuit_breakers guarding this step.",
    "circuit_breakers": "Named circuit breakers steps can use via circuit_breaker.",
    "cleanup": "Steps run when this step finally fails, before the failure propagates.",
    "computed": "Derived fields: from (paths) and transform (an expression over input).",
    "condition": "Expression deciding the branch or whether the loop goes on.",
    "config": "Run limits: timeout, state size, memory, breakers, trace, retention.",
    "cwd": "Working directory of the server, relative to the workflow file.",
    "default_state": "Initial values of writable state.",
    "description": "Free text shown by explain and editors.",
    "else": "Steps run when the condition is false.",
    "enabled": "Record transforms, conditions and retry decisions (like run --trace).",
    "error_handler": "Block form of on_error, retry_count, retry_delay and fallback_value.",
    "error_state_path": "A raw. path that receives the error details after each failure.",
    "error_state_update": "State update(s) applied after each failed attempt ({path, value}).",
    "error_type": "Your classification of the failure, reported as UserError.kind.",
    "failure_threshold": "Consecutive failures that open the breaker.",
    "fallback": "The value used when the transform fails under use_fallback or ignore.",
    "fallback_value": "The step's result when it fails under continue/fallback or retries run out.",
    "finally": "Steps always run at the end; workflow.status is readable there.",
    "from": "The state path (or list of paths) the transform reads as input.",
    "id": "Step id (letters, digits, _ and -); default <type>_<n> in document order.",
    "if": "Condition: when false the step is skipped.",
    "inputs": "Typed, read-only parameters, given with -i name=value or --inputs FILE.",
    "item_retry_count": "Reruns of a failed item from fresh state.",
    "items": "The list (or mapping) to iterate over: a list or an expression.",
    "keep": "Keep at most this many finished runs of the store.",
    "level": "Message level: info, warning, error or success.",
    "max_concurrency": "Calls in flight to this server at most.",
    "max_error_records": "Failed attempts kept per run (the rest are counted).",
    "max_iterations": "Upper bound on loop iterations (default 100).",
    "max_memory_mb": "Engine RSS watchdog: MemoryLimitError above this, checkpoint kept.",
    "max_output_bytes": "Captured head and tail of each step's stdout and stderr, each.",
    "max_workflow_depth": "How deep workflow steps may call other files (default 16).",
    "outputs": "The run's result for a workflow step calling it: templates over its state.",
    "max_parallel": "Items (default 4) or branches (default all) running at once.",
    "max_records": "Trace records kept per run.",
    "max_state_bytes": "Hard limit on the state's JSON size (StateSizeLimitError).",
    "name": "A readable name for the step, shown beside its id.",
    "mcp_servers": "MCP servers for mcp_call steps, started over stdio on first use.",
    "memory_limit_mb": "Memory limit of the command's process.",
    "method": "The MCP tool to call (same as tool).",
    "min_success": "Fewest items (or branches) that must succeed under continue.",
    "ok_exit_codes": "Exit codes counted as success (default [0]).",
    "older_than": "Delete finished runs older than this (30d, 12h).",
    "on_error": "What a failure does: fail (default), continue, retry or fallback.",
    "on_item_error": "fail_fast (default) cancels items in flight; continue runs them all.",
    "on_branch_error": "fail_fast (default) cancels branches in flight; continue runs them all.",
    "branches": "Named lists of steps run side by side, each over a copy of the state.",
    "operation": "How value is applied to path (default set).",
    "parameters": "Arguments passed to the tool.",
    "path": "The raw. state path written (dots and [n] indices).",
    "prompt": "The question shown to the user.",
    "raw": "Writable state fields and their types.",
    "required": "Whether the input must be given (default: true unless it has a default).",
    "reset_timeout": "Seconds before an open breaker lets one call through (half-open).",
    "retention": "Automatic pruning of old runs from the store.",
    "retry_backoff": "Multiplier of the delay after each attempt (default 2.0).",
    "retry_count": "Attempts after the first (default 3).",
    "retry_delay": "First delay between attempts in ms (default 1000).",
    "retry_jitter": "Random extra of up to N ms per wait (default a tenth of retry_delay).",
    "retry_max_delay": "Cap of the delay in ms (default 30000).",
    "retry_on": "Error types to retry, or an expression over error; default: not permanent.",
    "sample_rate": "Fraction of transform evaluations recorded.",
    "seconds": "How long to wait (virtual time in tests).",
    "server": "The mcp_servers entry that offers the tool (default: the one that does).",
    "state_schema": "Types of raw state and the computed fields derived from it.",
    "state_update": "State update applied with the step's result bound as result.",
    "state_updates": "State updates applied with the step's result bound as result.",
    "state_warn_bytes": "A warning is recorded once the state's JSON grows past this.",
    "steps": "The steps, run in order.",
    "strategy": "fail, continue, retry or fallback (as on_error).",
    "sub_agent_task": "The sub_agent_tasks entry run for each item.",
    "sub_agent_tasks": "Tasks parallel_foreach runs per item, each with its own state.",
    "then": "Steps run when the condition is true.",
    "timeout": "Seconds per attempt (StepTimeoutError).",
    "tool": "The MCP tool to call.",
    "trace": "Tracing of transforms, conditions and retries (true, or settings).",
    "transform": "Expression computing the field; input is the value (or list) at from.",
    "type": "The step type.",
    "updates": "Several updates applied in order, all or nothing.",
    "value": "The value written: a literal, or a {{ }} template / expression.",
    "version": "Version of this workflow file.",
    "with": "Task inputs per item (loop.item and loop.index readable).",
    "working_directory": "Directory the command runs in.",
}

BY_MODEL: dict[tuple[str, str], str] = {
    ("Workflow", "name"): "The workflow's name (namespaces with ':' welcome).",
    ("Workflow", "secrets"): "Secrets read when the run starts: secrets.NAME, masked as ***.",
    ("Workflow", "env"): "Variables (templates) for every shell command and MCP server.",
    ("Workflow", "env_file"): "A dotenv file of variables, relative to the workflow file.",
    ("InputSpec", "secret"): "Mask the value as *** everywhere; never stored, given on resume.",
    ("SecretSpec", "env"): "The environment variable holding the secret.",
    ("SecretSpec", "file"): "The file holding the secret, relative to the workflow file.",
    ("SecretSpec", "required"): "false: a missing secret is an empty string.",
    ("SecretSpec", "description"): "What the secret is for.",
    ("McpServerSpec", "command"): "The server executable (never read by a shell).",
    ("McpServerSpec", "env"): "Extra environment variables of the server.",
    ("ShellCommandStep", "command"): "A shell string (values passed as variables) or argv list.",
    ("ShellCommandStep", "env"): "Extra environment variables of the command.",
    ("Config", "timeout"): "Seconds for the whole run (WorkflowTimeoutError).",
    ("InputSpec", "type"): "string, number, integer, boolean, object, array or any.",
    ("InputSpec", "default"): "Value used when the input is not given.",
    ("UserInputStep", "default"): "Answer used when the user just presses Enter.",
    ("ErrorStep", "message"): "The error message (a template).",
    ("WorkflowStep", "file"): "The workflow file to run as a child run (relative to this).",
    ("WorkflowStep", "inputs"): "The child's inputs by name (templates).",
    ("AgentTaskStep", "prompt"): "What the agent is asked to do (a template).",
    ("AgentTaskStep", "context"): "Any value the agent gets beside the prompt (rendered).",
    ("AgentTaskStep", "response_schema"): "JSON Schema the response must match; none: any.",
    ("Config", "agent"): "Who performs agent_task steps when the run names no one.",
    ("AgentConfig", "command"): "Performs agent steps: JSON request on stdin, response on stdout.",
    ("UserMessageStep", "message"): "The text shown (a template).",
    ("ErrorHandler", "retry_count"): "Attempts after the first.",
    ("ErrorHandler", "retry_delay"): "First delay between attempts in ms.",
    ("ErrorHandler", "fallback_value"): "The result when the step fails or retries run out.",
    ("ComputedField", "on_error"): "When the transform fails: propagate, use_fallback or ignore.",
    ("Retention", "name"): "Only runs of this workflow.",
}


#: values editors show as examples (a test validates each against its property's schema)
EXAMPLES: dict[str, list[Any]] = {
    "args": [["examples/servers/notes.py"]],
    "by": [1, 5],
    "choices": [["staging", "production"]],
    "circuit_breaker": ["api"],
    "condition": ["attempts < 3", "{{ status == 'ready' }}"],
    "cwd": ["servers"],
    "error_state_path": ["raw.last_error"],
    "error_type": ["ValidationFailed"],
    "failure_threshold": [5],
    "from": ["raw.results", ["raw.passed", "raw.failed"]],
    "id": ["fetch_data", "run-tests"],
    "if": ["inputs.deploy", "{{ files | length > 0 }}"],
    "item_retry_count": [1],
    "items": ["{{ files }}", ["a", "b"]],
    "keep": [100],
    "level": ["warning"],
    "max_concurrency": [4],
    "max_error_records": [1000],
    "max_iterations": [50],
    "max_memory_mb": [512],
    "max_output_bytes": [65536],
    "max_parallel": [8],
    "max_state_bytes": [10000000],
    "memory_limit_mb": [256],
    "message": ["Deployed {{ version }}"],
    "method": ["add_note"],
    "min_success": [9],
    "branches": [{"lint": [{"type": "shell_command", "command": "ruff check ."}]}],
    "ok_exit_codes": [[0, 1]],
    "older_than": ["30d", "12h"],
    "parameters": [{"text": "{{ summary }}"}],
    "path": ["raw.results", "raw.counts.{{ loop.item }}"],
    "prompt": ["Deploy to which environment?"],
    "reset_timeout": [60],
    "retry_backoff": [2.0],
    "retry_count": [3],
    "retry_delay": [1000],
    "retry_jitter": [100],
    "retry_max_delay": [30000],
    "retry_on": [["ToolError", "ShellCommandError"], "error.type == 'ToolError'"],
    "sample_rate": [0.1],
    "seconds": [5],
    "server": ["notes"],
    "state_warn_bytes": [1000000],
    "sub_agent_task": ["review_file"],
    # without an example an editor inserts 0, which the exclusive minimum rejects
    "timeout": [30],
    "tool": ["add_note"],
    "transform": ["input | length", "input | selectattr('ok') | list"],
    "value": ["{{ result.stdout | trim }}", 0, ["a"]],
    "version": ["1.0"],
    "working_directory": ["build"],
}


EXAMPLES_BY_MODEL: dict[tuple[str, str], list[Any]] = {
    ("ShellCommandStep", "command"): ["make test", ["pytest", "-q"]],
    ("McpServerSpec", "command"): ["python3"],
    ("Config", "timeout"): [600],
}


def describe(schema: dict[str, Any]) -> dict[str, Any]:
    """Add descriptions and examples, drop the ``null`` branch and titles pydantic adds for optional
    fields (editors would offer ``null``), and state what the loader requires of mcp_call."""
    models: dict[str, dict[str, Any]] = dict(schema.get("$defs", {}))
    models["Workflow"] = schema
    for model, body in models.items():
        body.pop("title", None)
        for field, prop in body.get("properties", {}).items():
            _drop_null(prop)
            prop.pop("title", None)
            text = BY_MODEL.get((model, field)) or BY_NAME.get(field)
            if text and "description" not in prop:
                prop["description"] = text
            examples = EXAMPLES_BY_MODEL.get((model, field)) or EXAMPLES.get(field)
            if examples and "examples" not in prop:
                prop["examples"] = examples
    call = models.get("McpCallStep")
    if call is not None:  # the loader's rule: mcp_call needs tool or method
        call["anyOf"] = [{"required": ["tool"]}, {"required": ["method"]}]
    _name_the_step_types(schema)
    return schema


def _name_the_step_types(node: Any) -> None:
    """Beside each ``oneOf`` over step types, the list of types: an unknown type is then
    reported with the valid ones (editors otherwise name only the closest alternative's)."""
    if isinstance(node, list):
        for item in node:
            _name_the_step_types(item)
        return
    if not isinstance(node, dict):
        return
    for value in node.values():
        _name_the_step_types(value)
    mapping = node.get("discriminator", {}).get("mapping")
    if isinstance(mapping, dict) and "oneOf" in node:
        field = node["discriminator"]["propertyName"]
        node["properties"] = {field: {"enum": sorted(mapping), "description": "The step type."}}
        node["required"] = [field]


def _drop_null(prop: dict[str, Any]) -> None:
    branches = prop.get("anyOf")
    if not isinstance(branches, list) or {"type": "null"} not in branches:
        return
    if prop.get("default", ...) is not None:
        return  # null is a meaningful value here, not "absent"
    rest = [b for b in branches if b != {"type": "null"}]
    prop.pop("anyOf")
    prop.pop("default", None)
    if len(rest) == 1:
        prop.update(rest[0])
    else:
        prop["anyOf"] = rest
