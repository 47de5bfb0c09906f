"""IVR flows as data (sans-IO): a FlowSpec is named nodes and a start node.

A city chooses its flow in config (`config/ivr/<name>.yaml`, read by hotline.ivr.loader); the
call flow (hotline.ivr.flow) runs it. Node types:
- queue: the waiting node (enqueue, greeting, hold music, announcements, keys). Every flow that
  puts callers through to a person ends here; its first queue node is the fallback of every
  menu, lookup or self-service node that does not name its own (never strand a caller).
- menu: a prompt, digit -> node, with timeouts, retries, invalid-input prompts and barge-in.
- lookup: a ticket number typed on the keypad, its status read back.
- self_service: a question asked aloud, the knowledge base's answer played.
- language: sets the call's language (prompts in that language from then on).
- play: one prompt, then the next node.
- hangup: an optional prompt, then the call ends with the outcome named.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping

from hotline.core.model import Outcome

DTMF_KEYS = frozenset("0123456789*#")


class KeyAction(enum.StrEnum):
    CALLBACK = "callback"  # hang up and be called back, keeping the place in the queue
    PRIORITY = "priority"  # raise the call to "flagged"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class QueueNode:
    greeting: str | None = "greeting"  # None: straight to hold music (greeted earlier)
    hold: str = "hold_music"
    announce_interval_s: float = 0.0  # position and wait announcements; 0 = off
    announce_offer: str | None = None  # appended to every announcement, e.g. "callback_offer"
    keys: Mapping[str, KeyAction] = dataclasses.field(default_factory=dict)
    speech_skips_greeting: bool = True
    emergency_priority: bool = False  # an emergency heard in speech raises the call to "emergency"
    queue: str = ""  # queue name; "" = the configured one
    skills: tuple[str, ...] = ()  # the call needs agents with these skills (e.g. "language:en")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MenuNode:
    prompt: str
    options: Mapping[str, str]  # digit -> node
    timeout_s: float = 5.0  # after the prompt ends
    retries: int = 2  # replays after a timeout or an invalid key
    invalid_prompt: str = "menu_invalid"
    timeout_prompt: str = "menu_timeout"
    barge_in: bool = True  # a key stops the prompt
    on_failure: str = ""  # "" = the flow's queue node


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LookupNode:
    next: str
    prompt: str = "lookup_prompt"
    min_digits: int = 4
    max_digits: int = 20
    terminator: str = "#"
    timeout_s: float = 8.0  # between keys, and after the prompt
    retries: int = 2
    not_found_prompt: str = "lookup_not_found"
    invalid_prompt: str = "menu_invalid"  # too few digits before the terminator
    timeout_prompt: str = "menu_timeout"
    on_failure: str = ""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SelfServiceNode:
    next: str
    prompt: str = "self_service_ask"
    timeout_s: float = 10.0  # for a final speech result after the prompt
    threshold: float = 0.6  # knowledge-base score needed to play an answer
    no_match_prompt: str = "self_service_no_match"
    on_failure: str = ""  # no answer found: "" = the flow's queue node


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LanguageNode:
    language: str
    next: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PlayNode:
    prompt: str
    next: str
    barge_in: bool = False  # a key or speech skips it


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HangupNode:
    prompt: str | None = "goodbye"
    outcome: Outcome = Outcome.SELF_SERVED


Node = QueueNode | MenuNode | LookupNode | SelfServiceNode | LanguageNode | PlayNode | HangupNode

NODE_TYPES: Mapping[str, type[Node]] = {
    "queue": QueueNode,
    "menu": MenuNode,
    "lookup": LookupNode,
    "self_service": SelfServiceNode,
    "language": LanguageNode,
    "play": PlayNode,
    "hangup": HangupNode,
}

# Prompts the flow plays by itself when a node uses a feature (besides the ones a node names).
ANNOUNCE_PROMPTS = (
    "queue_position",
    "queue_position_unit",
    "queue_wait",
    "unit_minutes",
    "queue_wait_under_minute",
    "queue_next",
)
KEY_PROMPTS: Mapping[KeyAction, str] = {KeyAction.CALLBACK: "callback_confirmed", KeyAction.PRIORITY: "priority_raised"}
LOOKUP_PROMPTS = ("lookup_result", "lookup_status_is", *(f"digit_{d}" for d in range(10)))
TICKET_STATUSES = ("accepted", "dispatched", "handling", "extended", "replied", "survey", "closed", "terminated")


@dataclasses.dataclass(frozen=True, slots=True)
class FlowSpec:
    name: str
    start: str
    nodes: Mapping[str, Node]
    source: str = ""  # the file it came from, for messages
    warnings: tuple[str, ...] = ()

    @property
    def fallback(self) -> str | None:
        """The first queue node: where a failed menu, lookup or self-service goes."""
        return next((name for name, node in self.nodes.items() if isinstance(node, QueueNode)), None)


def targets(node: Node) -> Iterator[tuple[str, str]]:
    """(field, node name) of every node reference of a node ("" = the fallback, left out)."""
    if isinstance(node, MenuNode):
        for digit, target in node.options.items():
            yield f"options.{digit}", target
    if isinstance(node, LookupNode | SelfServiceNode | LanguageNode | PlayNode):
        yield "next", node.next
    if isinstance(node, MenuNode | LookupNode | SelfServiceNode) and node.on_failure:
        yield "on_failure", node.on_failure


def prompts(node: Node) -> Iterator[tuple[str, str]]:
    """(field, prompt name) of every prompt a node plays, its own and the flow's for its features."""
    if isinstance(node, QueueNode):
        if node.greeting:
            yield "greeting", node.greeting
        yield "hold", node.hold
        if node.announce_interval_s > 0:
            for name in ANNOUNCE_PROMPTS:
                yield "announce_interval_s", name
            if node.announce_offer:
                yield "announce_offer", node.announce_offer
        for digit, action in node.keys.items():
            yield f"keys.{digit}", KEY_PROMPTS[action]
        if node.emergency_priority:
            yield "emergency_priority", KEY_PROMPTS[KeyAction.PRIORITY]
    elif isinstance(node, MenuNode):
        yield from (("prompt", node.prompt), ("invalid_prompt", node.invalid_prompt))
        yield "timeout_prompt", node.timeout_prompt
    elif isinstance(node, LookupNode):
        yield from (("prompt", node.prompt), ("not_found_prompt", node.not_found_prompt))
        yield from (("invalid_prompt", node.invalid_prompt), ("timeout_prompt", node.timeout_prompt))
        for name in LOOKUP_PROMPTS:
            yield "type", name
        for status in TICKET_STATUSES:
            yield "type", f"status_{status}"
    elif isinstance(node, SelfServiceNode):
        yield from (("prompt", node.prompt), ("no_match_prompt", node.no_match_prompt))
    elif isinstance(node, PlayNode | HangupNode) and node.prompt:
        yield "prompt", node.prompt


def reachable(spec: FlowSpec) -> set[str]:
    """The nodes a call can reach from the start node."""
    seen: set[str] = set()
    todo = [spec.start]
    fallback = spec.fallback
    while todo:
        name = todo.pop()
        node = spec.nodes.get(name)
        if name in seen or node is None:
            continue
        seen.add(name)
        todo += [target for _, target in targets(node)]
        if isinstance(node, MenuNode | LookupNode | SelfServiceNode) and not node.on_failure and fallback:
            todo.append(fallback)
    return seen


def default_spec(greeting: str = "greeting", hold: str = "hold_music") -> FlowSpec:
    """The queue as it always was: greeting while queued, hold music, no keys, no announcements."""
    return FlowSpec("builtin", "queue", {"queue": QueueNode(greeting=greeting, hold=hold)})
