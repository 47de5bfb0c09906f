"""Reading hand-written YAML lexicons with errors that name the file and the line.

The intake lexicon and the knowledge base are edited by hotline staff, not programmers, so a
mistake must point at the line to fix. PyYAML's `compose` keeps each node's position (its
`start_mark`); the readers below check types on those nodes and collect every problem, and
`Problems.raise_if_any` reports them all at once as one `ConfigError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml

from hotline.core.errors import ConfigError

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"


class Problems:
    """The problems found in one file, each as "path:line: message"."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[str] = []

    def add(self, node: yaml.Node | None, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.messages.append(f"{self.path}:{line}: {message}")

    def raise_if_any(self) -> None:
        if self.messages:
            raise ConfigError("\n".join(self.messages))


def compose(path: Path) -> yaml.Node | None:
    """The node tree of a YAML file (None if empty); syntax errors become ConfigError with the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from exc
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError(f"{path}:{line}: invalid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc


def mapping(node: yaml.Node | None, problems: Problems, what: str) -> list[tuple[str, yaml.Node]]:
    """The (key, value node) pairs of a mapping; reports a non-mapping or a repeated key."""
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, f"{what} must be a mapping")
        return []
    seen: set[str] = set()
    pairs: list[tuple[str, yaml.Node]] = []
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL:
            problems.add(key_node, f"{what}: keys must be text")
            continue
        key = str(key_node.value)
        if key in seen:
            problems.add(key_node, f"{what}: {key!r} appears twice")
            continue
        seen.add(key)
        pairs.append((key, value_node))
    return pairs


def sequence(node: yaml.Node | None, problems: Problems, what: str) -> list[yaml.Node]:
    if not isinstance(node, yaml.SequenceNode):
        problems.add(node, f"{what} must be a list")
        return []
    return list(node.value)


def text(node: yaml.Node | None, problems: Problems, what: str, *, min_len: int = 1) -> str | None:
    """A non-empty string (numbers are not accepted as text: quote them)."""
    if not isinstance(node, yaml.ScalarNode) or node.tag != _STR:
        problems.add(node, f"{what} must be text")
        return None
    value = str(node.value).strip()
    if len(value) < min_len:
        problems.add(node, f"{what} must have at least {min_len} character(s)")
        return None
    return value


def texts(node: yaml.Node | None, problems: Problems, what: str, *, min_len: int = 1) -> list[str]:
    """A list of strings; each bad item is reported and skipped."""
    out: list[str] = []
    for item in sequence(node, problems, what):
        value = text(item, problems, f"{what} item", min_len=min_len)
        if value is not None:
            out.append(value)
    return out


def number(node: yaml.Node | None, problems: Problems, what: str, *, low: float, high: float) -> float | None:
    if not isinstance(node, yaml.ScalarNode) or node.tag not in (_INT, _FLOAT):
        problems.add(node, f"{what} must be a number")
        return None
    try:
        value = float(str(node.value).replace("_", ""))
    except ValueError:
        problems.add(node, f"{what} must be a number")
        return None
    if not low <= value <= high:
        problems.add(node, f"{what} must be between {low:g} and {high:g}, not {value:g}")
        return None
    return value


def flag(node: yaml.Node | None, problems: Problems, what: str) -> bool | None:
    if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL:
        problems.add(node, f"{what} must be true or false")
        return None
    return str(node.value).lower() in ("true", "yes", "on", "y")


def is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL)


class Fields:
    """The fields of one mapping node, consumed by name; `finish` reports unknown and missing ones."""

    def __init__(self, node: yaml.Node | None, problems: Problems, what: str) -> None:
        self.node = node
        self.problems = problems
        self.what = what
        self._pairs = dict(mapping(node, problems, what))
        self._used: set[str] = set()

    def get(self, key: str) -> yaml.Node | None:
        self._used.add(key)
        value = self._pairs.get(key)
        return None if is_null(value) else value

    def require(self, key: str) -> yaml.Node | None:
        value = self.get(key)
        if value is None and isinstance(self.node, yaml.MappingNode):
            self.problems.add(self.node, f"{self.what}: missing {key!r}")
        return value

    def finish(self) -> None:
        for key in self._pairs:
            if key not in self._used:
                self.problems.add(self._key_node(key), f"{self.what}: unknown key {key!r}")

    def _key_node(self, key: str) -> yaml.Node | None:
        if isinstance(self.node, yaml.MappingNode):
            for key_node, _ in self.node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                    return key_node
        return self.node

    def __iter__(self) -> Iterator[tuple[str, yaml.Node]]:
        return iter(self._pairs.items())
