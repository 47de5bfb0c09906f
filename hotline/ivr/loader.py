"""Reading IVR flows from `config/ivr/<name>.yaml`, with errors that name the file and the line.

Flows are edited by hotline staff, not programmers: every problem of every file is collected
(PyYAML's node API keeps each value's line) and reported at once as one ConfigError, each as
`path:line: message`. A flow file:

    start: welcome              # the node a call starts at (after answering and recording)
    nodes:
      welcome: {type: play, prompt: greeting, next: main}
      main:
        type: menu
        prompt: menu_main
        options: {"1": queue, "2": status}
        ...

This is the one module of hotline.ivr that reads files (the rest is sans-IO).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

from hotline.core.errors import ConfigError
from hotline.core.model import Outcome
from hotline.ivr.spec import (
    DTMF_KEYS,
    NODE_TYPES,
    FlowSpec,
    KeyAction,
    LanguageNode,
    LookupNode,
    MenuNode,
    Node,
    SelfServiceNode,
    prompts,
    reachable,
    targets,
)

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*\Z")


class _Problems:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, path: Path, node: yaml.Node | None, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.messages.append(f"{path}:{line}: {message}")


@dataclasses.dataclass
class _File:
    """One flow file being read: its path, problems, and what the second pass checks."""

    path: Path
    problems: _Problems
    lines: dict[str, yaml.Node] = dataclasses.field(default_factory=dict)  # node name -> its yaml
    fields: dict[str, dict[str, yaml.Node]] = dataclasses.field(default_factory=dict)

    def add(self, node: yaml.Node | None, message: str) -> None:
        self.problems.add(self.path, node, message)


# ---------------------------------------------------------------- scalar readers
def _is_null(node: yaml.Node | None) -> bool:
    return node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL)


def _text(f: _File, node: yaml.Node, what: str) -> str | None:
    if not isinstance(node, yaml.ScalarNode) or node.tag != _STR or not str(node.value).strip():
        f.add(node, f"{what} must be text")
        return None
    return str(node.value).strip()


def _name(f: _File, node: yaml.Node, what: str) -> str | None:
    value = _text(f, node, what)
    if value is not None and not _NAME.match(value):
        f.add(node, f"{what} {value!r}: use lower-case letters, digits and _")
        return None
    return value


def _number(f: _File, node: yaml.Node, what: str, low: float, high: float, *, integer: bool = False) -> float | None:
    tags = (_INT,) if integer else (_INT, _FLOAT)
    if not isinstance(node, yaml.ScalarNode) or node.tag not in tags:
        f.add(node, f"{what} must be {'a whole number' if integer else 'a number'}")
        return None
    try:
        value = float(str(node.value).replace("_", ""))
    except ValueError:
        f.add(node, f"{what} must be a number")
        return None
    if not low <= value <= high:
        f.add(node, f"{what} must be between {low:g} and {high:g}, not {value:g}")
        return None
    return value


def _key(f: _File, node: yaml.Node, what: str) -> str | None:
    """A DTMF key: 0-9, * or # (YAML reads 1 as a number and needs "#" and "*" quoted)."""
    value = str(node.value).strip() if isinstance(node, yaml.ScalarNode) and node.tag in (_STR, _INT) else None
    if value is None or value not in DTMF_KEYS:
        f.add(node, f'{what}: a key is one of 0-9, * or # (quote "#" and "*")')
        return None
    return value


def _pairs(f: _File, node: yaml.Node | None, what: str) -> list[tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        f.add(node, f"{what} must be a mapping")
        return []
    return list(node.value)


# ---------------------------------------------------------------- field readers, by kind
Reader = Callable[[_File, yaml.Node, str], Any]


def _read_name(f: _File, node: yaml.Node, what: str) -> Any:
    return _name(f, node, what)


def _read_seconds(f: _File, node: yaml.Node, what: str) -> Any:
    return _number(f, node, what, 1, 120)


def _read_interval(f: _File, node: yaml.Node, what: str) -> Any:
    value = _number(f, node, what, 0, 3600)
    if value is not None and 0 < value < 10:
        f.add(node, f"{what} must be 0 (off) or at least 10 seconds, not {value:g}")
        return None
    return value


def _read_retries(f: _File, node: yaml.Node, what: str) -> Any:
    value = _number(f, node, what, 0, 10, integer=True)
    return None if value is None else int(value)


def _read_digits(f: _File, node: yaml.Node, what: str) -> Any:
    value = _number(f, node, what, 1, 32, integer=True)
    return None if value is None else int(value)


def _read_score(f: _File, node: yaml.Node, what: str) -> Any:
    return _number(f, node, what, 0, 1)


def _read_bool(f: _File, node: yaml.Node, what: str) -> Any:
    if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL:
        f.add(node, f"{what} must be true or false")
        return None
    return str(node.value).lower() in ("true", "yes", "on", "y")


def _read_text(f: _File, node: yaml.Node, what: str) -> Any:
    return _text(f, node, what)


def _read_language(f: _File, node: yaml.Node, what: str) -> Any:
    value = _text(f, node, what)
    if value is not None and not _LANGUAGE.match(value):
        f.add(node, f"{what} {value!r} is not a language tag (zh-CN, en, ...)")
        return None
    return value


def _read_outcome(f: _File, node: yaml.Node, what: str) -> Any:
    value = _text(f, node, what)
    known = [o.value for o in Outcome]
    if value is not None and value not in known:
        f.add(node, f"{what} {value!r} is not an outcome: one of {', '.join(known)}")
        return None
    return None if value is None else Outcome(value)


def _read_options(f: _File, node: yaml.Node, what: str) -> Any:
    options: dict[str, str] = {}
    for key_node, value_node in _pairs(f, node, what):
        key = _key(f, key_node, what)
        target = _name(f, value_node, f"{what} {key_node.value}")
        if key is None or target is None:
            continue
        if key in options:
            f.add(key_node, f"{what}: key {key!r} appears twice")
            continue
        options[key] = target
    if isinstance(node, yaml.MappingNode) and not node.value:
        f.add(node, f"{what} must offer at least one key")
    return options


def _read_keys(f: _File, node: yaml.Node, what: str) -> Any:
    keys: dict[str, KeyAction] = {}
    actions = [a.value for a in KeyAction]
    for key_node, value_node in _pairs(f, node, what):
        key = _key(f, key_node, what)
        action = _text(f, value_node, f"{what} {key_node.value}")
        if action is not None and action not in actions:
            f.add(value_node, f"{what} {key_node.value}: unknown action {action!r}: one of {', '.join(actions)}")
            continue
        if key is None or action is None:
            continue
        if key in keys:
            f.add(key_node, f"{what}: key {key!r} appears twice")
            continue
        keys[key] = KeyAction(action)
    return keys


def _read_skills(f: _File, node: yaml.Node, what: str) -> Any:
    if not isinstance(node, yaml.SequenceNode):
        f.add(node, f'{what} must be a list of skill names, e.g. ["language:en"]')
        return None
    skills: list[str] = []
    for item in node.value:
        value = _text(f, item, what)
        if value is None:
            continue
        if not value.strip() or any(ch.isspace() or ch in ",{}" for ch in value):
            f.add(item, f"{what}: {value!r} is not a skill name (no spaces, commas or braces)")
            continue
        if value in skills:
            f.add(item, f"{what}: {value!r} appears twice")
            continue
        skills.append(value)
    return tuple(skills)


# Per node type: field -> (reader, required). "prompt?" fields may be null (no prompt).
_FIELDS: Mapping[str, Mapping[str, tuple[Reader, bool]]] = {
    "queue": {
        "greeting": (_read_name, False),
        "hold": (_read_name, False),
        "announce_interval_s": (_read_interval, False),
        "announce_offer": (_read_name, False),
        "keys": (_read_keys, False),
        "speech_skips_greeting": (_read_bool, False),
        "emergency_priority": (_read_bool, False),
        "queue": (_read_text, False),
        "skills": (_read_skills, False),
    },
    "menu": {
        "prompt": (_read_name, True),
        "options": (_read_options, True),
        "timeout_s": (_read_seconds, False),
        "retries": (_read_retries, False),
        "invalid_prompt": (_read_name, False),
        "timeout_prompt": (_read_name, False),
        "barge_in": (_read_bool, False),
        "on_failure": (_read_name, False),
    },
    "lookup": {
        "next": (_read_name, True),
        "prompt": (_read_name, False),
        "min_digits": (_read_digits, False),
        "max_digits": (_read_digits, False),
        "terminator": (_key, False),
        "timeout_s": (_read_seconds, False),
        "retries": (_read_retries, False),
        "not_found_prompt": (_read_name, False),
        "invalid_prompt": (_read_name, False),
        "timeout_prompt": (_read_name, False),
        "on_failure": (_read_name, False),
    },
    "self_service": {
        "next": (_read_name, True),
        "prompt": (_read_name, False),
        "timeout_s": (_read_seconds, False),
        "threshold": (_read_score, False),
        "no_match_prompt": (_read_name, False),
        "on_failure": (_read_name, False),
    },
    "language": {"language": (_read_language, True), "next": (_read_name, True)},
    "play": {"prompt": (_read_name, True), "next": (_read_name, True), "barge_in": (_read_bool, False)},
    "hangup": {"prompt": (_read_name, False), "outcome": (_read_outcome, False)},
}
_NULLABLE = {("queue", "greeting"), ("queue", "announce_offer"), ("hangup", "prompt")}


# ---------------------------------------------------------------- reading a file
def _compose(f: _File) -> yaml.Node | None:
    try:
        text = f.path.read_text(encoding="utf-8")
    except OSError as exc:
        f.problems.messages.append(f"{f.path}: cannot read: {exc.strerror or exc}")
        return None
    except UnicodeDecodeError as exc:
        f.problems.messages.append(f"{f.path}: not UTF-8 text: {exc}")
        return None
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        f.problems.messages.append(f"{f.path}:{line}: invalid YAML: {exc.problem or exc}")
    except yaml.YAMLError as exc:
        f.problems.messages.append(f"{f.path}: invalid YAML: {exc}")
    return None


def _read_node(f: _File, name: str, node: yaml.Node) -> Node | None:
    pairs = _pairs(f, node, f"node {name!r}")
    if not isinstance(node, yaml.MappingNode):
        return None
    by_key: dict[str, yaml.Node] = {}
    for key_node, value_node in pairs:
        key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
        if key in by_key:
            f.add(key_node, f"node {name!r}: {key!r} appears twice")
            continue
        by_key[key] = value_node
    here = f.lines.get(name, node)  # the line of the node's name
    type_node = by_key.pop("type", None)
    if type_node is None:
        f.add(here, f"node {name!r}: missing 'type' (one of {', '.join(NODE_TYPES)})")
        return None
    kind = _text(f, type_node, f"node {name!r}: type")
    if kind is None:
        return None
    if kind not in NODE_TYPES:
        f.add(type_node, f"node {name!r}: unknown node type {kind!r} (one of {', '.join(NODE_TYPES)})")
        return None
    fields = _FIELDS[kind]
    kwargs: dict[str, Any] = {}
    ok = True
    for key_node, _ in pairs:
        key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
        if key != "type" and key not in fields:
            f.add(key_node, f"node {name!r}: unknown key {key!r} for a {kind} node ({', '.join(fields)})")
            ok = False
    for field, (reader, required) in fields.items():
        given = by_key.get(field)
        if given is None or (_is_null(given) and (kind, field) not in _NULLABLE):
            if required:
                f.add(here, f"node {name!r}: missing {field!r}")
                ok = False
            continue
        if _is_null(given):
            kwargs[field] = None
            continue
        value = reader(f, given, f"node {name!r}: {field}")
        if value is None:
            ok = False
            continue
        kwargs[field] = value
    f.fields[name] = {k: v for k, v in by_key.items() if k in fields}
    f.fields[name]["type"] = type_node
    if not ok:
        return None
    built: Node = NODE_TYPES[kind](**kwargs)
    if isinstance(built, LookupNode):
        if built.min_digits > built.max_digits:
            f.add(here, f"node {name!r}: min_digits ({built.min_digits}) is more than max_digits ({built.max_digits})")
            return None
        if built.terminator in "0123456789":
            f.add(by_key.get("terminator"), f"node {name!r}: terminator must be * or #, not a digit")
            return None
    return built


def _read_file(f: _File) -> FlowSpec | None:
    root = _compose(f)
    if root is None:
        if not f.problems.messages:
            f.add(None, "the file is empty")
        return None
    by_key: dict[str, yaml.Node] = {}
    for key_node, value_node in _pairs(f, root, "a flow file"):
        key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
        if key not in ("start", "nodes", "description"):
            f.add(key_node, f"unknown key {key!r} (start, nodes, description)")
        elif key in by_key:
            f.add(key_node, f"{key!r} appears twice")
        else:
            by_key[key] = value_node
    if not isinstance(root, yaml.MappingNode):
        return None
    if "description" in by_key:
        _text(f, by_key["description"], "description")
    start_node = by_key.get("start")
    start = _name(f, start_node, "start") if start_node is not None else None
    if start_node is None:
        f.add(root, "missing 'start' (the first node's name)")
    nodes_node = by_key.get("nodes")
    if nodes_node is None:
        f.add(root, "missing 'nodes'")
        return None
    nodes: dict[str, Node] = {}
    for key_node, value_node in _pairs(f, nodes_node, "nodes"):
        name = _name(f, key_node, "node name")
        if name is None:
            continue
        if name in f.lines:
            f.add(key_node, f"node {name!r} appears twice")
            continue
        f.lines[name] = key_node
        built = _read_node(f, name, value_node)
        if built is not None:
            nodes[name] = built
    if start is not None and start not in f.lines:
        f.add(start_node, f"start: no node {start!r}")
    spec = FlowSpec(f.path.stem, start or "", nodes, str(f.path))
    _check_references(f, spec)
    return spec


def _field_node(f: _File, name: str, field: str) -> yaml.Node | None:
    return f.fields.get(name, {}).get(field.split(".")[0]) or f.lines.get(name)


def _check_references(f: _File, spec: FlowSpec) -> None:
    fallback = spec.fallback
    for name, node in spec.nodes.items():
        for field, target in targets(node):
            if target not in f.lines:
                f.add(_field_node(f, name, field), f"node {name!r}: {field}: no node {target!r}")
        if isinstance(node, MenuNode | LookupNode | SelfServiceNode) and not node.on_failure and fallback is None:
            f.add(f.lines[name], f"node {name!r}: needs 'on_failure' (the flow has no queue node to fall back to)")
    for name, node in spec.nodes.items():  # language nodes lead on at once: a loop of them never ends
        seen = [name]
        while isinstance(node, LanguageNode) and isinstance(spec.nodes.get(node.next), LanguageNode):
            if node.next in seen:
                if node.next == name:
                    f.add(f.lines[name], f"node {name!r}: language nodes loop ({' -> '.join([*seen, name])})")
                break
            seen.append(node.next)
            node = spec.nodes[node.next]


def _check_prompts(f: _File, spec: FlowSpec, known: Collection[str]) -> None:
    for name, node in spec.nodes.items():
        for field, prompt in prompts(node):
            if prompt not in known:
                f.add(_field_node(f, name, field), f"node {name!r}: {field}: unknown prompt {prompt!r}")


def _warnings(f: _File, spec: FlowSpec) -> tuple[str, ...]:
    if spec.start not in spec.nodes:
        return ()
    live = reachable(spec)
    return tuple(
        f"{f.path}:{f.lines[name].start_mark.line + 1}: node {name!r} is never reached"
        for name in spec.nodes
        if name not in live
    )


def _load(path: Path, problems: _Problems, known_prompts: Collection[str] | None) -> FlowSpec | None:
    f = _File(path, problems)
    before = len(problems.messages)
    spec = _read_file(f)
    if spec is not None and known_prompts is not None:
        _check_prompts(f, spec, known_prompts)
    problems.messages[before:] = sorted(problems.messages[before:], key=_line_of)
    if spec is None or len(problems.messages) > before:
        return None
    return dataclasses.replace(spec, warnings=_warnings(f, spec))


def _line_of(message: str) -> int:
    _, _, rest = message.partition(".yaml:")
    line = rest.split(":", 1)[0]
    return int(line) if line.isdigit() else 0


# ---------------------------------------------------------------- public
def load_flow(path: Path, known_prompts: Collection[str] | None = None) -> FlowSpec:
    """One flow file; ConfigError lists every problem as `path:line: message`.

    known_prompts: the prompt names there are files for; when given, every prompt the flow
    plays by name is checked against it (numbers, ticket digits and answers are the worker's)."""
    problems = _Problems()
    spec = _load(path, problems, known_prompts)
    if problems.messages or spec is None:
        raise ConfigError("\n".join(problems.messages))
    return spec


def load_flows(
    directory: Path, selected: str | None = None, known_prompts: Collection[str] | None = None
) -> dict[str, FlowSpec]:
    """Every `<name>.yaml` under directory, by name; all problems of all files in one ConfigError.

    Prompts are checked (when known_prompts is given) for the selected flow only: a city need
    not record the prompts of the examples it does not use. A missing selected flow is an error."""
    problems = _Problems()
    flows: dict[str, FlowSpec] = {}
    files = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    if not directory.is_dir():
        problems.messages.append(f"{directory}: no such directory of IVR flows")
    for path in files:
        spec = _load(path, problems, known_prompts if path.stem == selected else None)
        if spec is not None:
            flows[path.stem] = spec
    if selected is not None and directory.is_dir() and not (directory / f"{selected}.yaml").is_file():
        have = ", ".join(p.stem for p in files) or "none"
        problems.messages.append(f"{directory}: no flow {selected!r} ({selected}.yaml); have: {have}")
    if problems.messages:
        raise ConfigError("\n".join(problems.messages))
    return flows


def select_flow(directory: Path, name: str, known_prompts: Collection[str] | None = None) -> FlowSpec:
    """The flow a city runs (`ivr.flow`), after checking every flow file in the directory."""
    return load_flows(directory, name, known_prompts)[name]
