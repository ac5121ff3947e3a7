"""The stdio wire under the SDK: every request gets an answer, also one too deep to parse.

The SDK parses each line with pydantic, whose JSON parser stops at 200 levels of nesting; a
request that nests deeper is dropped, and its client waits forever. Lines go through
:func:`guarded` first: one that cannot be parsed for its depth becomes a call of the
:data:`REFUSED` tool with the same id, which the server answers with a one-sentence error.
Standard input is read from a private descriptor while fd 0 points at the null device, as
the SDK does, so a step's processes never read the protocol.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import Any

REFUSED = "wfkit.refused"
"""The tool name a refused request is rewritten to call; never listed."""

TOO_DEEP = (
    "the request nests too deeply to be read (JSON is read to 200 levels; wfkit values hold at"
    " most 100): send flatter arguments"
)

_ID = re.compile(r'"id"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)')


def guarded(line: str) -> str:
    """``line``, or a call of :data:`REFUSED` under its id when it nests too deeply to parse."""
    import mcp_types as types
    from pydantic import ValidationError

    try:
        types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValidationError as exc:
        if "recursion limit exceeded" not in str(exc):
            return line  # the SDK answers other malformed lines itself
    else:
        return line
    found = _ID.search(line)
    if found is None:
        return line  # a notification: nothing to answer
    request: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": json.loads(found.group(1)),
        "method": "tools/call",
        "params": {"name": REFUSED, "arguments": {"reason": TOO_DEEP}},
    }
    return json.dumps(request) + "\n"


class GuardedLines:
    """The lines of ``source``, each through :func:`guarded`."""

    def __init__(self, source: AsyncIterable[str]) -> None:
        self._source = source

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        async for line in self._source:
            yield guarded(line)


@contextlib.contextmanager
def private_stdin() -> Iterator[io.TextIOWrapper]:
    """Standard input as a private text stream; fd 0 points at the null device meanwhile."""
    private = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    stream = io.TextIOWrapper(os.fdopen(private, "rb"), encoding="utf-8", errors="replace")
    try:
        yield stream
    finally:
        os.dup2(stream.buffer.fileno(), 0)
        stream.close()
