"""YAML parsing that keeps source positions and refuses YAML's silent traps.

PyYAML drops positions when it constructs Python values, silently keeps the last of duplicate
keys, and reads keys like ``on:`` as booleans. We compose the node tree ourselves and build
plain values from it, recording the ``line:column`` of every mapping key and sequence item.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import yaml

from wfkit.errors import LoadError

try:  # the C loader is about four times faster; fall back where libyaml is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Path = tuple[str | int, ...]

_BOOL_TAG = "tag:yaml.org,2002:bool"
_PLAIN_BOOLS = ("true", "false")
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_NODES = 1_000_000  # bounds alias expansion ("billion laughs")
MAX_NODES_ENV = "WFKIT_MAX_YAML_NODES"
DEFAULT_MAX_NODES = 100_000
"""Most YAML nodes a file may have before alias expansion (``WFKIT_MAX_YAML_NODES``): composing
a node costs ~8 µs to compose and resolve, so 100,000 keep any file under a second."""
MAX_DEPTH = 200
"""Deepest nesting of mappings and lists a file may have (a recursive alias has no end)."""
MAX_FILE_BYTES = 5_000_000
MAX_BYTES_ENV = "WFKIT_MAX_YAML_BYTES"
DEFAULT_MAX_EXPANDED = 4 * MAX_FILE_BYTES
"""Characters of text a document may hold once its aliases are expanded (each use of an
anchored value counts its size again): aliases share one object while loading, but anything
that copies or serialises the value pays for every use."""


def read_source(
    path: str | FilePath,
    what: str = "file",
    limit: int = MAX_FILE_BYTES,
    regular: bool = False,
) -> str:
    """The UTF-8 text of a file, reading at most ``limit`` bytes (``/dev/zero`` included).

    With ``regular``, anything but a regular file (a FIFO or a terminal, whose opening or
    reading waits for a writer; a device; a folder) is refused before it is opened. Every
    failure is a :class:`LoadError` naming the file: missing, unreadable, not a regular file,
    too large, not UTF-8.
    """
    file = str(path)
    try:
        if regular and not stat.S_ISREG(os.stat(path).st_mode):
            raise LoadError(
                f"cannot read {what}: not a regular file (a FIFO, a device or a folder)",
                file=file,
            )
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except FileNotFoundError:
        raise LoadError(f"cannot read {what}: no such file", file=file) from None
    except OSError as exc:
        raise LoadError(f"cannot read {what}: {exc.strerror or exc}", file=file) from None
    if len(raw) > limit:
        raise LoadError(f"{what} is larger than {limit} bytes", file=file)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise LoadError(
            f"{what} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            file=file,
            line=line,
        ) from None


@dataclass(frozen=True)
class Source:
    """A parsed YAML document: its plain value and where each part of it came from."""

    file: str
    data: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    #: values that YAML 1.1 read as booleans from words other than true/false (yes, no, on...)
    word_booleans: dict[Path, str] = field(default_factory=dict)

    def position(self, path: Path) -> tuple[int | None, int | None]:
        """The ``(line, column)`` of ``path``, or of its nearest ancestor that is known."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return found
        return None, None

    def error(self, message: str, path: Path) -> LoadError:
        """A :class:`LoadError` located at ``path``."""
        line, column = self.position(path)
        return LoadError(
            message, file=self.file, line=line, column=column, field=format_path(path) or None
        )


def format_path(path: Path) -> str:
    """``("steps", 0, "command")`` -> ``steps[0].command``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse(text: str, file: str) -> Source:
    """Parse one YAML document, keeping positions; raise :class:`LoadError` on any trap."""
    try:
        _check_node_count(text, file)
        node = yaml.compose(text, Loader=_Loader)
    except RecursionError:
        raise LoadError(f"nested deeper than {MAX_DEPTH} levels", file=file) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        if exc.context_mark is not None and "end of stream" in (exc.problem or ""):
            # an unclosed quote or bracket: where it opens is where to look, not the file's end
            mark = exc.context_mark
            problem = f"{exc.context}: it is never closed" if exc.context else problem
        raise LoadError(
            f"malformed YAML: {problem}",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from exc
    except yaml.YAMLError as exc:
        raise LoadError(f"malformed YAML: {exc}", file=file) from exc
    if node is None:
        return Source(file, None, {})
    builder = _Builder(file)
    try:
        data = builder.build(node, ())
    except RecursionError:
        raise LoadError(f"nested deeper than {MAX_DEPTH} levels", file=file) from None
    return Source(file, data, builder.positions, builder.word_booleans)


def max_expanded() -> int:
    """The expanded-size bound: ``WFKIT_MAX_YAML_BYTES`` when set to a number, else the
    default."""
    value = os.environ.get(MAX_BYTES_ENV, "")
    return int(value) if value.isdigit() else DEFAULT_MAX_EXPANDED


def max_nodes() -> int:
    """The node bound: ``WFKIT_MAX_YAML_NODES`` when set to a number, else the default."""
    value = os.environ.get(MAX_NODES_ENV, "")
    return int(value) if value.isdigit() else DEFAULT_MAX_NODES


def _check_node_count(text: str, file: str) -> None:
    """Refuse a file with more nodes than the bound, before composing any of them.

    Every node but the first starts after one of ``,`` newline ``[`` ``{`` ``:`` ``-``, so
    their count bounds the node count from above and costs a few ms; only when it passes the
    bound are the parser's events counted (streamed, stopping at the bound).
    """
    limit = max_nodes()
    if sum(text.count(c) for c in ",\n[{:-") < limit:
        return
    for count, event in enumerate(yaml.parse(text, Loader=_Loader)):
        if count > limit * 2:  # a node is one event, or two (start, end) for collections
            mark = event.start_mark
            raise LoadError(
                f"more than {limit} YAML nodes (set {MAX_NODES_ENV} to allow more)",
                file=file,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
            )


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[Path, tuple[int, int]] = {}
        self.constructor = yaml.constructor.SafeConstructor()
        self.count = 0
        self.word_booleans: dict[Path, str] = {}
        self.size = 0  # characters of scalar text, every use of an alias counted again
        self.limit = max_expanded()

    def _error(self, message: str, node: yaml.Node, path: Path) -> LoadError:
        return LoadError(
            message,
            file=self.file,
            line=node.start_mark.line + 1,
            column=node.start_mark.column + 1,
            field=format_path(path) or None,
        )

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise self._error("document too large (alias expansion?)", node, path)
        if len(path) > MAX_DEPTH:
            raise self._error(
                f"nested deeper than {MAX_DEPTH} levels (a recursive alias?)", node, path
            )
        self.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.ScalarNode):  # an alias's node is built again at each use
            self.size += len(node.value)
            if self.size > self.limit:
                self._too_big(node, path)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        if (
            isinstance(node, yaml.ScalarNode)
            and node.tag == _BOOL_TAG
            and not node.style
            and node.value.lower() not in _PLAIN_BOOLS
        ):
            self.word_booleans[path] = node.value
        if node.tag == _STR_TAG:  # most scalars: skip the generic constructor's overhead
            return node.value
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise self._error(f"invalid value: {exc.problem}", node, path) from exc

    def _too_big(self, node: yaml.Node, path: Path) -> None:
        line = node.start_mark.line + 1
        raise self._error(
            f"the document holds more than {self.limit} characters once its aliases are "
            f"expanded (the value from line {line} used again, through an alias, at "
            f"{format_path(path) or 'the top'}); set {MAX_BYTES_ENV} to allow more",
            node,
            path,
        )

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        inherited: dict[str, Any] = {}  # from `<<:` merge keys; explicit keys win
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged = self.build(value_node, path)
                for item in merged if isinstance(merged, list) else [merged]:
                    if isinstance(item, dict):
                        for key, value in item.items():
                            inherited.setdefault(key, value)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise self._error("mapping keys must be plain strings", key_node, path)
            if key_node.tag == _BOOL_TAG and not key_node.style:
                raise self._error(
                    f"key {key_node.value!r} is read by YAML 1.1 as a boolean; "
                    f'quote it ("{key_node.value}":)',
                    key_node,
                    (*path, key_node.value),
                )
            key = str(key_node.value)
            child = (*path, key)
            if key in out:
                first = self.positions.get(child, (None, None))[0]
                raise self._error(
                    f"duplicate key {key!r} (first defined on line {first})", key_node, child
                )
            self.positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = self.build(value_node, child)
        for key, value in inherited.items():
            out.setdefault(key, value)
        return out
