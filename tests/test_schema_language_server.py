"""``wfkit schema`` in an editor: yaml-language-server (Node.js) driven over LSP stdio.

One server session for the module. The server gets the schema through the ``yaml.schemas``
setting; the tests then ask what an editor asks: hover text, completion items, diagnostics.
It is pinned: 2.x declares Node.js >= 22.13, and 1.25.0, the newest release before it, runs on
the Node.js 20 this machine kind has. It is installed once into a folder under ``~/.cache``.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import yaml

from tests.cached_install import cached, unavailable
from tests.conftest import EXAMPLES
from wfkit.commands.schema import workflow_schema

SERVER = "yaml-language-server@1.25.0"
WORKFLOWS = sorted(EXAMPLES.glob("*.yaml"))
WAIT = 60  # seconds: a hang guard, far above the server's answer times


def read_message(stream: BinaryIO) -> dict[str, Any] | None:
    """One JSON-RPC message in LSP framing (``Content-Length`` headers), ``None`` at EOF."""
    length = 0
    while True:
        line = stream.readline()
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("ascii").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    message: dict[str, Any] = json.loads(stream.read(length))
    return message


class LanguageClient:
    """A minimal LSP client: requests with ids, notifications, and the server's requests."""

    def __init__(self, command: list[str], settings: dict[str, Any]) -> None:
        self.settings = settings
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.next_id = 0
        self.answers: dict[int, queue.Queue[dict[str, Any]]] = {}
        self.diagnostics: queue.Queue[dict[str, Any]] = queue.Queue()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        with self.lock:
            self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.process.stdin.flush()

    def read(self) -> None:
        assert self.process.stdout is not None
        while (message := read_message(self.process.stdout)) is not None:
            if "method" in message and "id" in message:  # the server asks the client
                self.send({"id": message["id"], "result": self.answer(message)})
            elif message.get("method") == "textDocument/publishDiagnostics":
                self.diagnostics.put(message["params"])
            elif "id" in message and message["id"] in self.answers:
                self.answers[message["id"]].put(message)

    def answer(self, request: dict[str, Any]) -> Any:
        if request["method"] == "workspace/configuration":
            return [
                self.settings.get(item.get("section", "")) for item in request["params"]["items"]
            ]
        return None

    def request(self, method: str, params: dict[str, Any]) -> Any:
        self.next_id += 1
        waiting = self.answers[self.next_id] = queue.Queue()
        self.send({"id": self.next_id, "method": method, "params": params})
        answer = waiting.get(timeout=WAIT)
        del self.answers[self.next_id]
        assert "error" not in answer, answer
        return answer["result"]

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"method": method, "params": params})

    def open(self, uri: str, text: str) -> list[dict[str, Any]]:
        """Open a document and return the first diagnostics the server publishes for it."""
        document = {"uri": uri, "languageId": "yaml", "version": 1, "text": text}
        self.notify("textDocument/didOpen", {"textDocument": document})
        while True:
            published = self.diagnostics.get(timeout=WAIT)
            if published["uri"] == uri:
                found: list[dict[str, Any]] = published["diagnostics"]
                return found

    def close(self) -> None:
        try:
            self.request("shutdown", {})
            self.notify("exit", {})
            self.process.wait(timeout=WAIT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for pipe in (self.process.stdin, self.process.stdout):
                if pipe is not None:
                    pipe.close()


def install(folder: Path) -> subprocess.CompletedProcess[bytes]:
    npm = shutil.which("npm")
    assert npm is not None
    command = [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", SERVER]
    return subprocess.run(command, capture_output=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LanguageClient, Path]]:
    node = shutil.which("node")
    if not node or not shutil.which("npm"):
        unavailable("Node.js and npm are not installed")
    assert node is not None
    folder = cached(
        "wfkit-" + SERVER.replace("@", "-"), "node_modules/.bin/yaml-language-server", install
    )
    main = folder / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
    work = tmp_path_factory.mktemp("editor")
    schema = work / "wfkit.schema.json"
    schema.write_text(json.dumps(workflow_schema()), encoding="utf-8")
    settings = {
        "schemas": {schema.as_uri(): ["*.yaml"]},  # *.yml: the modeline test
        "validate": True,
        "hover": True,
        "completion": True,
        "schemaStore": {"enable": False},
    }
    client = LanguageClient([node, str(main), "--stdio"], {"yaml": settings})
    try:
        client.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": work.as_uri(),
                "capabilities": {
                    "textDocument": {
                        "hover": {"contentFormat": ["plaintext", "markdown"]},
                        "completion": {"completionItem": {"snippetSupport": False}},
                        "publishDiagnostics": {},
                    }
                },
            },
        )
        client.notify("initialized", {})
        client.notify("workspace/didChangeConfiguration", {"settings": {"yaml": settings}})
        # the schema is in force before any test reads "no diagnostics" as "valid"
        probe = client.open((work / "probe.yaml").as_uri(), "name: x\nstepz: []\n")
        assert [d["message"] for d in probe] == ["Property stepz is not allowed."]
        yield client, work
    finally:
        client.close()


STEP = """name: hover
steps:
  - id: fetch
    type: mcp_call
    tool: lookup
    retry_count: 2
    on_error: retry
"""


def position(text: str, needle: str, after: int = 0) -> dict[str, int]:
    """The LSP position of ``needle`` in ``text`` (plus ``after`` characters)."""
    offset = text.index(needle) + after
    line = text.count("\n", 0, offset)
    return {"line": line, "character": offset - (text.rfind("\n", 0, offset) + 1)}


def hover_text(client: LanguageClient, uri: str, text: str, needle: str) -> str:
    where = {"textDocument": {"uri": uri}, "position": position(text, needle, 1)}
    result = client.request("textDocument/hover", where)
    assert result is not None, needle
    contents = result["contents"]
    return str(contents["value"] if isinstance(contents, dict) else contents)


def test_hover_shows_the_schema_description(server: tuple[LanguageClient, Path]) -> None:
    client, work = server
    uri = (work / "hover.yaml").as_uri()
    client.open(uri, STEP)
    step = workflow_schema()["$defs"]["McpCallStep"]["properties"]
    for name in ("retry_count", "on_error", "tool"):
        assert step[name]["description"] in hover_text(client, uri, STEP, name)


def test_on_error_completion_offers_exactly_its_values(
    server: tuple[LanguageClient, Path],
) -> None:
    client, work = server
    text = "name: complete\nsteps:\n  - id: build\n    type: shell_command\n"
    text += "    command: make\n    on_error: \n"
    uri = (work / "complete.yaml").as_uri()
    client.open(uri, text)
    where = {"textDocument": {"uri": uri}, "position": position(text, "on_error: ", 10)}
    result = client.request("textDocument/completion", where)
    items = result["items"] if isinstance(result, dict) else result
    assert sorted(item["label"] for item in items) == ["continue", "fail", "fallback", "retry"]


WRONG = {
    "unknown property": (
        "name: x\nsteps:\n  - {id: a, type: wait, seconds: 1, retry_cont: 2}\n",
        "Property retry_cont is not allowed.",
    ),
    "wrong type": (
        "name: x\nsteps:\n  - {id: a, type: wait, seconds: 1, retry_count: many}\n",
        'Incorrect type. Expected "integer".',
    ),
    "mcp_call without tool or method": (
        "name: x\nsteps:\n  - {id: a, type: mcp_call, parameters: {}}\n",
        'Missing property "tool".',
    ),
    "unknown step type": (
        "name: x\nsteps:\n  - {id: a, type: shel, command: ls}\n",
        'Valid values: "agent_task", "break", "conditional", "continue", "error", "foreach",',
    ),
    "null on_error": (
        "name: x\nsteps:\n  - {id: a, type: wait, seconds: 1, on_error: null}\n",
        'Valid values: "fail", "continue", "retry", "fallback".',
    ),
}


@pytest.mark.parametrize("name", sorted(WRONG))
def test_a_wrong_file_gets_diagnostics_naming_the_problem(
    server: tuple[LanguageClient, Path], name: str
) -> None:
    client, work = server
    text, problem = WRONG[name]
    found = client.open((work / f"{name.replace(' ', '-')}.yaml").as_uri(), text)
    messages = [d["message"] for d in found]
    assert any(problem in message for message in messages), messages


def test_every_example_gets_no_diagnostics(server: tuple[LanguageClient, Path]) -> None:
    client, work = server
    assert WORKFLOWS
    found = {}
    for path in WORKFLOWS:
        uri = (work / path.name).as_uri()
        found[path.name] = client.open(uri, path.read_text(encoding="utf-8"))
    assert {name: d for name, d in found.items() if d} == {}


def test_the_readme_modeline_associates_the_schema(server: tuple[LanguageClient, Path]) -> None:
    """The README's way: a relative ``$schema`` modeline, for a file no setting matches."""
    client, work = server
    text = "name: x\nstepz: []\n"
    assert client.open((work / "plain.yml").as_uri(), text) == []
    modeline = "# yaml-language-server: $schema=./wfkit.schema.json\n" + text
    found = client.open((work / "modeline.yml").as_uri(), modeline)
    assert [d["message"] for d in found] == ["Property stepz is not allowed."]


SNIPPET = re.compile(r"^(\w+): \$\{1:([^}\n]*)\}$")


@pytest.mark.parametrize(
    ("model", "text"),
    [
        ("McpCallStep", "name: x\nsteps:\n  - id: a\n    type: mcp_call\n    tool: t\n    \n"),
        ("Config", "name: x\nconfig:\n  max_parallel: 2\n  \n"),
    ],
)
def test_property_completion_inserts_values_the_schema_accepts(
    server: tuple[LanguageClient, Path], model: str, text: str
) -> None:
    """An editor fills in a property's default or first example: it must be a valid value."""
    import jsonschema

    client, work = server
    uri = (work / f"insert-{model}.yaml").as_uri()
    client.open(uri, text)
    last = text.splitlines()[-1]  # the blank line being typed, indented
    where = {"textDocument": {"uri": uri}, "position": position(text, f"\n{last}\n", len(last) + 1)}
    result = client.request("textDocument/completion", where)
    filled = [m.groups() for i in result["items"] if (m := SNIPPET.match(i["insertText"]))]
    schema = workflow_schema()
    props = schema["$defs"][model]["properties"]
    assert "timeout" in dict(filled), result["items"]
    for name, value in filled:
        subschema = {"$defs": schema["$defs"], **props[name]}
        errors = list(jsonschema.Draft202012Validator(subschema).iter_errors(yaml.safe_load(value)))
        assert errors == [], f"{name}: {value!r}: {errors[0].message}"
