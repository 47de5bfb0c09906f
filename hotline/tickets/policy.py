"""Per-city 12345 policies: every number of the ticket lifecycle as data (config/policy/<name>.yaml).

A policy file has:
- name, title: the file's stem and what people read ("淄博12345政务服务便民热线").
- defaults: every ticket rule (RULE_KEYS, the fields of model.TicketRules).
- kinds: {kind: {rule: value}}, overrides per kind of request (consultation, help, complaint, report,
  suggestion, praise); provincial: overrides for provincial tickets (省级工单); emergency: overrides
  for emergency tickets. A ticket's rules are defaults <- its kind <- provincial <- emergency.
- supervision: when a ticket is put under 督办 (SUPERVISION_KEYS, model.SupervisionRules).
Loading checks everything and reports every problem at once, each as "file:line: problem", in one
ConfigError (PolicyError, with .problems). Line numbers come from yaml.compose's node marks.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from pathlib import Path

import yaml

from hotline.core.errors import ConfigError
from hotline.tickets.model import Kind, SupervisionRules, TicketRules


@dataclasses.dataclass(frozen=True, slots=True)
class _Spec:
    kind: type  # int or bool
    nullable: bool = False
    minimum: int = 0


RULE_KEYS: dict[str, _Spec] = {
    "dispatch_working_days": _Spec(int),
    "dispatch_hours": _Spec(int, nullable=True),
    "handle_working_days": _Spec(int, minimum=1),
    "first_report_hours": _Spec(int, nullable=True, minimum=1),
    "extension_max_working_days": _Spec(int, nullable=True, minimum=1),
    "extension_max_count": _Spec(int, nullable=True),
    "extension_max_total_working_days": _Spec(int, nullable=True, minimum=1),
    "extension_request_lead_working_days": _Spec(int),
    "return_window_working_days": _Spec(int, minimum=1),
    "yellow_before_working_days": _Spec(int),
    "red_after_working_days": _Spec(int),
    "redo_handle_working_days": _Spec(int, minimum=1),
    "direct_answer": _Spec(bool),
}
SUPERVISION_KEYS: dict[str, _Spec] = {
    "on_overdue": _Spec(bool),
    "redo_count": _Spec(int, nullable=True, minimum=1),
    "repeat_reports": _Spec(int, nullable=True, minimum=2),
    "distinct_callers": _Spec(int, nullable=True, minimum=2),
    "unsatisfied_results": _Spec(int, nullable=True, minimum=1),
}
_TOP_KEYS = ("name", "title", "defaults", "kinds", "provincial", "emergency", "supervision")
_REQUIRED_TOP = ("name", "title", "defaults", "supervision")

Overrides = Mapping[str, int | bool | None]


class PolicyError(ConfigError):
    """One or more problems in policy files; `problems` lists them as "file:line: problem"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s) in policy files:\n" + "\n".join(problems))
        self.problems = problems


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """A city's 12345 rules. Satisfies model.TicketPolicy."""

    name: str
    title: str
    path: str
    defaults: TicketRules
    supervision: SupervisionRules
    kinds: Mapping[Kind, Overrides]
    provincial: Overrides
    emergency: Overrides

    def rules(self, kind: Kind, *, emergency: bool = False, provincial: bool = False) -> TicketRules:
        """The rules of a ticket of this kind: defaults <- kind <- provincial <- emergency."""
        values: dict[str, int | bool | None] = dataclasses.asdict(self.defaults)
        values.update(self.kinds.get(kind, {}))
        if provincial:
            values.update(self.provincial)
        if emergency:
            values.update(self.emergency)
        return TicketRules(**values)  # type: ignore[arg-type]  # checked against RULE_KEYS when loaded


def load_policy(path: str | Path) -> Policy:
    """Load and check one policy file; raises PolicyError listing every problem."""
    reader = _Reader(Path(path))
    policy = reader.read()
    if reader.problems or policy is None:
        raise PolicyError(reader.problems)
    return policy


def load_policies(directory: str | Path) -> dict[str, Policy]:
    """Every *.yaml policy in a directory, by name; every problem of every file is reported at once."""
    folder = Path(directory)
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    if not files:
        raise PolicyError([f"{folder}: no policy files (*.yaml)"])
    problems: list[str] = []
    policies: dict[str, Policy] = {}
    for file in files:
        reader = _Reader(file)
        policy = reader.read()
        problems += reader.problems
        if policy is not None and not reader.problems:
            if policy.name in policies:
                problems.append(f"{file}:1: policy name {policy.name!r} is also used by {policies[policy.name].path}")
            policies[policy.name] = policy
    if problems:
        raise PolicyError(problems)
    return policies


class _Reader:
    """Checks one file node by node, so that every problem is reported with its line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._found: list[tuple[int, str]] = []  # (line, problem)
        self._loader: yaml.SafeLoader | None = None
        self._kind_nodes: dict[Kind, yaml.Node] = {}

    @property
    def problems(self) -> list[str]:
        """Every problem found, in the order of the file's lines."""
        return [f"{self.path}:{line}: {message}" for line, message in sorted(self._found, key=lambda p: p[0])]

    def problem(self, node: yaml.Node | None, message: str, line: int | None = None) -> None:
        if line is None:
            line = node.start_mark.line + 1 if node is not None else 1
        self._found.append((line, message))

    def read(self) -> Policy | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.problem(None, f"cannot read the policy file: {exc}")
            return None
        self._loader = yaml.SafeLoader(text)
        try:
            root = self._loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 1
            self.problem(None, f"not valid YAML: {exc.problem}", line)
            return None
        except yaml.YAMLError as exc:
            self.problem(None, f"not valid YAML: {exc}")
            return None
        try:
            return self._policy(root)
        finally:
            self._loader.dispose()

    def _policy(self, root: yaml.Node | None) -> Policy | None:
        top = self._mapping(root, "the policy file", _TOP_KEYS)
        if top is None:
            return None
        for key in _REQUIRED_TOP:
            if key not in top:
                self.problem(root, f"missing {key!r}")
        name = self._text(top.get("name"), "name")
        title = self._text(top.get("title"), "title")
        if name is not None and name != self.path.stem:
            self.problem(top["name"][1], f"name {name!r} must be the file's name without .yaml ({self.path.stem!r})")
        defaults = self._values(top.get("defaults"), "defaults", RULE_KEYS, complete=True)
        supervision = self._values(top.get("supervision"), "supervision", SUPERVISION_KEYS, complete=True)
        kinds: dict[Kind, Overrides] = {}
        kinds_entry = top.get("kinds")
        kinds_map = self._mapping(kinds_entry[1], "kinds", None) if kinds_entry is not None else {}
        for key, (key_node, value_node) in (kinds_map or {}).items():
            kind = next((k for k in Kind if key in (k.value, k.label)), None)
            if kind is None:
                self.problem(key_node, f"unknown kind {key!r}; one of: {', '.join(k.value for k in Kind)}")
            elif kind in kinds:
                self.problem(key_node, f"kind {kind.value} given twice")
            else:
                kinds[kind] = self._values((key_node, value_node), f"kinds.{key}", RULE_KEYS) or {}
                self._kind_nodes[kind] = key_node
        provincial = self._values(top.get("provincial"), "provincial", RULE_KEYS) if "provincial" in top else {}
        emergency = self._values(top.get("emergency"), "emergency", RULE_KEYS) if "emergency" in top else {}
        if None in (name, title, defaults, supervision, provincial, emergency) or self._found:
            return None
        assert name is not None and title is not None and defaults is not None and supervision is not None
        assert provincial is not None and emergency is not None
        policy = Policy(
            name=name,
            title=title,
            path=str(self.path),
            defaults=TicketRules(**defaults),  # type: ignore[arg-type]  # types checked by _values
            supervision=SupervisionRules(**supervision),  # type: ignore[arg-type]
            kinds=kinds,
            provincial=provincial,
            emergency=emergency,
        )
        self._check_combinations(policy, top)
        return policy

    def _check_combinations(self, policy: Policy, top: Mapping[str, tuple[yaml.Node, yaml.Node]]) -> None:
        """Rules that tie numbers together, for every kind x provincial x emergency ticket.

        A problem is reported once, at the most specific block that sets one of the numbers involved.
        """
        seen: set[str] = set()
        for kind, provincial, emergency in itertools.product(Kind, (False, True), (False, True)):
            rules = policy.rules(kind, emergency=emergency, provincial=provincial)
            problems: list[tuple[tuple[str, ...], str]] = []
            cap = rules.extension_max_total_working_days
            if cap is not None and cap < rules.handle_working_days:
                problems.append(
                    (
                        ("extension_max_total_working_days", "handle_working_days"),
                        f"extension_max_total_working_days ({cap}) is less than "
                        f"handle_working_days ({rules.handle_working_days})",
                    )
                )
            lead = rules.extension_request_lead_working_days
            if lead >= rules.handle_working_days:
                problems.append(
                    (
                        ("extension_request_lead_working_days", "handle_working_days"),
                        f"extension_request_lead_working_days ({lead}) leaves no time to ask for an extension "
                        f"within {rules.handle_working_days} working days",
                    )
                )
            for keys, message in problems:
                node, who = self._blame(policy, top, kind, provincial, emergency, keys)
                text = f"{who}: {message}"
                if text not in seen:
                    seen.add(text)
                    self.problem(node, text)

    def _blame(
        self,
        policy: Policy,
        top: Mapping[str, tuple[yaml.Node, yaml.Node]],
        kind: Kind,
        provincial: bool,
        emergency: bool,
        keys: tuple[str, ...],
    ) -> tuple[yaml.Node | None, str]:
        def sets(block: Overrides) -> bool:
            return any(key in block for key in keys)

        if emergency and sets(policy.emergency):
            return top["emergency"][0], "emergency"
        if provincial and sets(policy.provincial):
            return top["provincial"][0], "provincial"
        if sets(policy.kinds.get(kind, {})):
            return self._kind_nodes.get(kind), f"kinds.{kind.value}"
        return top["defaults"][0], "defaults"

    # ------------------------------------------------------------ node helpers
    def _mapping(
        self, node: yaml.Node | None, where: str, allowed: tuple[str, ...] | None
    ) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if node is None:
            self.problem(node, f"{where}: empty")
            return None
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{where}: must be a mapping of keys to values")
            return None
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.problem(key_node, f"{where}: keys must be plain words")
            elif key in out:
                self.problem(key_node, f"{where}: {key!r} given twice")
            elif allowed is not None and key not in allowed:
                self.problem(key_node, f"{where}: unknown key {key!r}; known: {', '.join(allowed)}")
            else:
                out[key] = (key_node, value_node)
        return out

    def _text(self, entry: tuple[yaml.Node, yaml.Node] | None, where: str) -> str | None:
        if entry is None:
            return None
        value = self._construct(entry[1])
        if not isinstance(value, str) or not value.strip():
            self.problem(entry[1], f"{where}: must be a non-empty text")
            return None
        return value.strip()

    def _values(
        self, entry: tuple[yaml.Node, yaml.Node] | None, where: str, specs: Mapping[str, _Spec], complete: bool = False
    ) -> dict[str, int | bool | None] | None:
        if entry is None:
            return None
        key_node, node = entry
        if not complete and isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
            return {}  # an empty override block: `kinds: {consultation: }`
        items = self._mapping(node, where, tuple(specs))
        if items is None:
            return None
        out: dict[str, int | bool | None] = {}
        for key, (_, item_value) in items.items():
            value = self._construct(item_value)
            spec = specs[key]
            is_bool = type(value) is bool
            is_whole = type(value) is int and value >= spec.minimum
            if value is None and spec.nullable:
                out[key] = None
            elif (spec.kind is bool and is_bool) or (spec.kind is int and is_whole):
                out[key] = value  # type: ignore[assignment]  # a bool or an int, checked just above
            else:
                wanted = "true or false" if spec.kind is bool else f"a whole number >= {spec.minimum}"
                self.problem(item_value, f"{where}.{key}: {value!r} is not {wanted}{' or null' * spec.nullable}")
        if complete:
            for key in specs:
                if key not in items:
                    self.problem(key_node, f"{where}: missing {key!r}")
        return out

    def _construct(self, node: yaml.Node) -> object:
        assert self._loader is not None
        try:
            return self._loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.problem(node, f"cannot read value: {exc}")
            return None
