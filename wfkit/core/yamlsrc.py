"""YAML parsing that keeps source positions and refuses YAML's silent traps.

PyYAML drops positions when it constructs Python values, silently keeps the last of duplicate
keys, and reads keys like ``on:`` as booleans. We compose the node tree ourselves and build
plain values from it, recording the ``line:column`` of every mapping key and sequence item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_NODES = 1_000_000  # bounds alias expansion ("billion laughs")


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
        node = yaml.compose(text, Loader=_Loader)
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
    data = builder.build(node, ())
    return Source(file, data, builder.positions, builder.word_booleans)


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[Path, tuple[int, int]] = {}
        self.constructor = yaml.constructor.SafeConstructor()
        self.count = 0
        self.word_booleans: dict[Path, str] = {}

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
        self.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
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
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            raise self._error(f"invalid value: {exc.problem}", node, path) from exc

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
