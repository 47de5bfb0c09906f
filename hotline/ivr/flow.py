"""The caller's call flow, sans-IO: events in, commands out, time passed in.

Rules of this module (GB/T 33358: no menu tree in front of a person, answer within 15 s):
- The call is answered at once and put in the queue as soon as its audio flows; the greeting
  with the recording notice plays while the caller already waits (it never delays the queue).
- Any key skips the greeting; every digit is kept for the record.
- An offer while the greeting plays dials the agent at once; the legs are bridged when both
  the agent has answered and the greeting has finished (the notice is always heard or skipped
  by the caller, never cut by the system).
- An agent who does not answer within ring_timeout, is busy or fails: the offer is reported
  failed (the queue puts the call back at its original place) and the caller keeps waiting.
- A hang-up is an event, never an error: in every phase it ends in exactly one Finish command
  with the outcome, and an agent leg still ringing or connected is hung up.
- Only one offer at a time: another offer is refused (reported failed, so the queue frees that
  agent); an offer delivered again (the current one, or one already settled) is ignored.
- An (phase, event) pair not in the table raises FlowError naming both.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

from hotline.core.model import Outcome


class Phase(enum.StrEnum):
    NEW = "new"
    ANSWERING = "answering"
    WAITING = "waiting"  # in the queue
    OFFERING = "offering"  # an agent is being dialled
    AGENT_READY = "agent_ready"  # the agent answered; waiting for the greeting to end
    CONNECTED = "connected"
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


Event = Incoming | MediaReady | Dtmf | Tick | OfferReceived | AgentAnswered | AgentFailed | CallerHungUp | AgentHungUp


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
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class DialAgent:
    offer_id: str
    agent_id: str
    agent_uri: str


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
)


@dataclasses.dataclass(frozen=True, slots=True)
class FlowSettings:
    greeting_s: float  # length of the greeting prompt
    ring_timeout_s: float = 20.0
    greeting_prompt: str = "greeting"
    hold_prompt: str = "hold_music"


_LIVE = (Phase.WAITING, Phase.OFFERING, Phase.AGENT_READY)


class CallFlow:
    """One caller's flow. `handle(event, now)` returns the commands to carry out, in order."""

    def __init__(self, settings: FlowSettings) -> None:
        self.settings = settings
        self.phase = Phase.NEW
        self.greeting_until: float | None = None  # monotonic end of the greeting, while it plays
        self.offer: OfferReceived | None = None
        self.ring_until: float | None = None
        self.digits = ""
        self.agent_id: str | None = None  # the agent connected, once connected
        self.settled: set[str] = set()  # offers already reported answered or failed
        self._table: dict[tuple[Phase, type], Callable[[Event, float], list[Command]]] = {
            (Phase.NEW, Incoming): self._on_incoming,
            (Phase.ANSWERING, MediaReady): self._on_media,
            (Phase.ANSWERING, CallerHungUp): self._on_hangup_before_queue,
            (Phase.ANSWERING, Tick): self._nothing,
            (Phase.ANSWERING, Dtmf): self._on_digit,
            (Phase.WAITING, OfferReceived): self._on_offer,
            (Phase.OFFERING, AgentAnswered): self._on_agent_answered,
            (Phase.OFFERING, AgentFailed): self._on_agent_failed,
            (Phase.OFFERING, AgentHungUp): self._on_agent_failed_hangup,
            (Phase.AGENT_READY, AgentFailed): self._on_agent_failed,
            (Phase.AGENT_READY, AgentHungUp): self._on_agent_failed_hangup,
            (Phase.CONNECTED, AgentHungUp): self._on_agent_hangup_connected,
            (Phase.CONNECTED, CallerHungUp): self._on_caller_hangup_connected,
            (Phase.CONNECTED, Dtmf): self._on_digit,
            (Phase.CONNECTED, Tick): self._nothing,
            (Phase.CONNECTED, MediaReady): self._nothing,
        }
        for phase in _LIVE:
            self._table[(phase, Dtmf)] = self._on_digit
            self._table[(phase, Tick)] = self._on_tick
            self._table[(phase, CallerHungUp)] = self._on_caller_hangup_waiting
            self._table[(phase, MediaReady)] = self._nothing  # re-INVITE: the adapter rewires
        for phase in (Phase.OFFERING, Phase.AGENT_READY, Phase.CONNECTED, Phase.ENDED):
            # Only one offer at a time: a second one is refused, so the queue frees that agent.
            self._table[(phase, OfferReceived)] = self._refuse_offer
        for phase in (Phase.NEW, Phase.ANSWERING):
            self._table[(phase, OfferReceived)] = self._refuse_offer
        for ev in (Dtmf, Tick, MediaReady, CallerHungUp, AgentHungUp, AgentFailed, AgentAnswered):
            self._table[(Phase.ENDED, ev)] = self._nothing
        # Late events about an offer that is no longer current (cancelled on timeout, ...).
        for phase in (Phase.WAITING, Phase.AGENT_READY, Phase.CONNECTED):
            self._table.setdefault((phase, AgentFailed), self._nothing)
            self._table.setdefault((phase, AgentAnswered), self._on_stale_agent_answer)
        self._table[(Phase.WAITING, AgentHungUp)] = self._nothing

    # ------------------------------------------------------------ public
    def handle(self, event: Event, now: float) -> list[Command]:
        handler = self._table.get((self.phase, type(event)))
        if handler is None:
            raise FlowError(f"no transition for event {type(event).__name__} in phase {self.phase}")
        return handler(event, now)

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self.greeting_until, self.ring_until) if d is not None]
        return min(deadlines) if deadlines else None

    @property
    def greeting_playing(self) -> bool:
        return self.greeting_until is not None

    # ------------------------------------------------------------ handlers
    def _nothing(self, event: Event, now: float) -> list[Command]:
        return []

    def _on_incoming(self, event: Event, now: float) -> list[Command]:
        self.phase = Phase.ANSWERING
        return [Answer()]

    def _on_media(self, event: Event, now: float) -> list[Command]:
        self.phase = Phase.WAITING
        self.greeting_until = now + self.settings.greeting_s
        return [StartRecording(), Enqueue(), Play(self.settings.greeting_prompt)]

    def _on_hangup_before_queue(self, event: Event, now: float) -> list[Command]:
        self.phase = Phase.ENDED
        return [Finish(Outcome.ABANDONED_IN_GREETING, "caller")]

    def _on_digit(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, Dtmf)
        self.digits += event.digit
        if self.greeting_playing:
            return self._greeting_over()
        return []

    def _on_tick(self, event: Event, now: float) -> list[Command]:
        out: list[Command] = []
        if self.greeting_until is not None and now >= self.greeting_until:
            out += self._greeting_over()
        if self.ring_until is not None and now >= self.ring_until and self.offer is not None:
            offer = self.offer
            self.settled.add(offer.offer_id)
            self._clear_offer()
            self.phase = Phase.WAITING
            out += [HangupAgent(offer.offer_id), ReportOfferFailed(offer.offer_id, "no-answer", offer.agent_id)]
        return out

    def _greeting_over(self) -> list[Command]:
        self.greeting_until = None
        if self.phase == Phase.AGENT_READY:
            return self._connect()
        return [Play(self.settings.hold_prompt, loop=True)]

    def _on_offer(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, OfferReceived)
        if event.offer_id in self.settled:
            return []  # delivered again after it was settled: commands are idempotent by id
        self.offer = event
        self.ring_until = now + self.settings.ring_timeout_s
        self.phase = Phase.OFFERING
        return [DialAgent(event.offer_id, event.agent_id, event.agent_uri)]

    def _refuse_offer(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, OfferReceived)
        if self._is_current(event.offer_id) or event.offer_id in self.settled:
            return []  # the same offer delivered twice: commands are idempotent by id
        self.settled.add(event.offer_id)
        return [ReportOfferFailed(event.offer_id, f"call is {self.phase.value}")]

    def _is_current(self, offer_id: str) -> bool:
        return self.offer is not None and self.offer.offer_id == offer_id

    def _on_agent_answered(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, AgentAnswered)
        if not self._is_current(event.offer_id):
            return [HangupAgent(event.offer_id)]
        self.ring_until = None
        if self.greeting_playing:
            self.phase = Phase.AGENT_READY
            return []
        return self._connect()

    def _on_stale_agent_answer(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, AgentAnswered)
        if self._is_current(event.offer_id):
            return []
        return [HangupAgent(event.offer_id)]

    def _connect(self) -> list[Command]:
        assert self.offer is not None
        self.phase = Phase.CONNECTED
        self.agent_id = self.offer.agent_id
        self.settled.add(self.offer.offer_id)
        return [
            StopPlay(),
            Bridge(self.offer.offer_id, self.offer.agent_id),
            ReportOfferAnswered(self.offer.offer_id),
        ]

    def _on_agent_failed(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, AgentFailed)
        if not self._is_current(event.offer_id):
            return []
        assert self.offer is not None
        agent_id = self.offer.agent_id
        self.settled.add(event.offer_id)
        self._clear_offer()
        self.phase = Phase.WAITING
        return [ReportOfferFailed(event.offer_id, event.reason, agent_id)]

    def _on_agent_failed_hangup(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, AgentHungUp)
        return self._on_agent_failed(AgentFailed(event.offer_id, "agent-hung-up"), now)

    def _clear_offer(self) -> None:
        self.offer = None
        self.ring_until = None

    def _on_caller_hangup_waiting(self, event: Event, now: float) -> list[Command]:
        out: list[Command] = []
        if self.offer is not None:
            out.append(HangupAgent(self.offer.offer_id))
        outcome = Outcome.ABANDONED_IN_GREETING if self.greeting_playing else Outcome.ABANDONED_IN_QUEUE
        self._clear_offer()
        self.greeting_until = None
        self.phase = Phase.ENDED
        return [*out, Abandon(), Finish(outcome, "caller")]

    def _on_agent_hangup_connected(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, AgentHungUp)
        if not self._is_current(event.offer_id):
            return []
        self.phase = Phase.ENDED
        return [HangupCaller(), Finish(Outcome.ANSWERED, "agent")]

    def _on_caller_hangup_connected(self, event: Event, now: float) -> list[Command]:
        assert self.offer is not None
        self.phase = Phase.ENDED
        return [HangupAgent(self.offer.offer_id), Finish(Outcome.ANSWERED, "caller")]
