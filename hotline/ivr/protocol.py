"""The words of the call flow (sans-IO): its phases, the events it takes, the commands it gives.

Events come from the worker (SIP, the queue, the speech service, the ticket store); commands go
back to it. Prompts are named (`greeting`, `digit_5`, `kb_<topic>_<id>`); the worker resolves a
name to a file in the call's language.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from hotline.core.model import Outcome
from hotline.ivr.spec import FlowSpec


class Phase(enum.StrEnum):
    NEW = "new"
    ANSWERING = "answering"
    MENU = "menu"  # a menu node: its prompt plays or it waits for a key
    LOOKUP = "lookup"  # ticket-status lookup: collecting digits, waiting for or playing the result
    SELF_SERVICE = "self_service"  # listening for a question, playing the knowledge-base answer
    PROMPT = "prompt"  # a play or hang-up node's prompt
    WAITING = "waiting"  # in the queue
    OFFERING = "offering"  # an agent is being dialled
    AGENT_READY = "agent_ready"  # the agent answered; waiting for the greeting to end
    CONNECTED = "connected"
    CALLBACK = "callback"  # the caller asked to be called back: confirmation, then hang up
    VOICEMAIL = "voicemail"  # overflowed to voicemail: the prompt, then his message (recorded)
    ENDED = "ended"


class FlowError(Exception):
    pass


# ---------------------------------------------------------------- events
@dataclasses.dataclass(frozen=True, slots=True)
class Incoming:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class MediaReady:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    """Time passed; deadlines (greeting end, ring timeout) are checked."""


@dataclasses.dataclass(frozen=True, slots=True)
class OfferReceived:
    offer_id: str
    agent_id: str
    agent_uri: str
    group: tuple[str, ...] = ()  # a ring_all group: every offer id of it (each its own agent)


@dataclasses.dataclass(frozen=True, slots=True)
class AgentAnswered:
    offer_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class AgentFailed:
    offer_id: str
    reason: str  # "no-answer", "busy", "rejected", "unreachable", ...


@dataclasses.dataclass(frozen=True, slots=True)
class CallerHungUp:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class AgentHungUp:
    offer_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class SpeechResult:
    """What the caller said. kb: knowledge-base matches (topic, entry id, score), best first."""

    text: str
    final: bool = True
    emergency: bool = False
    kb: tuple[tuple[str, str, float], ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class PositionReport:
    """The answer to QueryPosition: 1 = next; None when not known (not waiting, queue away)."""

    position: int | None
    wait_s: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class LookupResult:
    """The answer to LookupTicket: the ticket's stage ("accepted", "handling", ...) or None."""

    number: str
    status: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Overflow:
    """The caller waited the queue's max_wait_s (or came to a full queue): the control plane
    sends him to `target` ("callback": he is told he will be called back at his place, and
    hung up; "voicemail": he leaves a message of at most max_s seconds, 0: the flow's default)."""

    target: str
    max_s: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Requeued:
    """A connected call was sent back to the queue (call controls: a transfer to the queue); its
    agent is gone and the worker has queued it again at its original arrival time."""


Event = (
    Incoming
    | MediaReady
    | Dtmf
    | Tick
    | OfferReceived
    | AgentAnswered
    | AgentFailed
    | CallerHungUp
    | AgentHungUp
    | SpeechResult
    | PositionReport
    | LookupResult
    | Overflow
    | Requeued
)


# ---------------------------------------------------------------- commands
@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class StartRecording:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Play:
    prompt: str  # prompt name, e.g. "greeting", "hold_music"
    loop: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class StopPlay:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Enqueue:
    skills: tuple[str, ...] = ()  # what the queue node asks of the agent (routing widens it)
    queue: str = ""  # the queue node's queue ("": the first configured)


@dataclasses.dataclass(frozen=True, slots=True)
class DialAgent:
    offer_id: str
    agent_id: str
    agent_uri: str
    ring: bool = False  # one leg of a ring_all group: several agent legs ring at once


@dataclasses.dataclass(frozen=True, slots=True)
class HangupAgent:
    offer_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Bridge:
    offer_id: str
    agent_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class ReportOfferAnswered:
    offer_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class ReportOfferFailed:
    offer_id: str
    reason: str
    agent_id: str = ""  # set when the agent's side failed (no answer, busy, not registered ...)


@dataclasses.dataclass(frozen=True, slots=True)
class Abandon:
    """Take the call out of the queue (the caller left before being connected)."""


@dataclasses.dataclass(frozen=True, slots=True)
class HangupCaller:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Finish:
    outcome: Outcome
    hangup_by: str  # "caller", "agent", "system"
    reason: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class PlaySequence:
    """Prompts played one after the other as one (the worker joins them)."""

    prompts: tuple[str, ...]
    loop: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class QueryPosition:
    """Ask the queue for the call's position and estimated wait (answered by PositionReport)."""


@dataclasses.dataclass(frozen=True, slots=True)
class RaisePriority:
    level: str  # "flagged" | "emergency"


@dataclasses.dataclass(frozen=True, slots=True)
class RequestCallback:
    """The queue keeps the call's place and calls the caller back; the entry is not abandoned."""


@dataclasses.dataclass(frozen=True, slots=True)
class LookupTicket:
    number: str  # answered by LookupResult


@dataclasses.dataclass(frozen=True, slots=True)
class SetLanguage:
    language: str  # prompts are resolved in this language from now on


Command = (
    Answer
    | StartRecording
    | Play
    | StopPlay
    | Enqueue
    | DialAgent
    | HangupAgent
    | Bridge
    | ReportOfferAnswered
    | ReportOfferFailed
    | Abandon
    | HangupCaller
    | Finish
    | PlaySequence
    | QueryPosition
    | RaisePriority
    | RequestCallback
    | LookupTicket
    | SetLanguage
)


@dataclasses.dataclass(frozen=True, slots=True)
class FlowSettings:
    greeting_s: float  # length of the greeting prompt (when `durations` does not say)
    ring_timeout_s: float = 20.0
    greeting_prompt: str = "greeting"
    hold_prompt: str = "hold_music"
    # The flow to run; None = the queue alone (greeting_prompt, hold_prompt, no keys).
    spec: FlowSpec | None = None
    # Prompt name -> seconds ("<language>/<name>" first), to know when a prompt has ended:
    # pjsua2 does not tell reliably, so the flow schedules its own deadlines.
    durations: Mapping[str, float] = dataclasses.field(default_factory=dict)
    language: str = "zh-CN"
    # Knowledge-base entry id -> the prompt of its answer; None: `kb_<topic>_<id>`. An entry
    # missing here has no audio and is not played (the caller goes to an agent instead).
    kb_prompts: Mapping[str, str] | None = None
    # Voicemail (an overflow target): the prompt before the message, and the message's length.
    # A prompt not in `durations` (not rendered yet) falls back to voicemail_fallback_prompt.
    voicemail_prompt: str = "voicemail"
    voicemail_fallback_prompt: str = "self_service_ask"
    voicemail_max_s: float = 120.0
