"""``schema``: the JSON Schema of workflow files."""

from __future__ import annotations

from typing import Any

from wfkit.commands.schema_docs import describe
from wfkit.language.models import Workflow


def workflow_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a workflow file, with the field names users write."""
    schema = describe(Workflow.model_json_schema(by_alias=True, mode="validation"))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "wfkit workflow",
        **schema,
    }
