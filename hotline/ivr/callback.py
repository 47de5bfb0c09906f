"""A callback call, sans-IO: the queue's turn came for a caller who pressed 1 and hung up.

Rules of this module (agent first, like every call-centre callback that keeps the place):
- The agent the queue reserved is dialled first; only once he has answered (he hears
  "callback_agent" while he waits) is the caller dialled, so a citizen never picks up to silence.
- The agent not answering within ring_timeout_s, busy or failing: the offer fails as the agent's
  fault (the queue pauses him and keeps the entry at its place); nothing was dialled to the
  caller, so this attempt leaves no call record.
- The caller not answering within caller_ring_timeout_s, busy or unreachable: the agent hears
  why ("callback_agent_failed", the next attempt comes later), then his leg is hung up (he may
  hang up first); the attempt is reported failed at once (ReportCallbackFailed): the queue decides whether
  another attempt follows (the entry keeps its place) or that was the last one. Every attempt
  that rang the caller has a call record (outcome callback_failed, the reason saying which).
- The caller answers: the legs are bridged, recording starts, the offer is answered; a hang-up
  of either side then ends both with outcome answered.
- The agent hanging up while the caller's phone rings cancels the caller's leg; the attempt is
  reported failed as the agent's (he left), so the entry stays at its place.
- Every path ends in exactly one Finish; a (phase, event) pair not in the table raises
  FlowError naming both.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

from hotline.core.model import Outcome
from hotline.ivr.flow import FlowError


class CallbackPhase(enum.StrEnum):
    NEW = "new"
    AGENT_RINGING = "agent_ringing"
    CALLER_RINGING = "caller_ringing"  # the agent is on the line and waits
    TELLING_AGENT = "telling_agent"  # the caller did not answer: the agent hears so, then bye
    CONNECTED = "connected"
    ENDED = "ended"


# ---------------------------------------------------------------- events
@dataclasses.dataclass(frozen=True, slots=True)
class Start:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class AgentAnswered:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class AgentGone:
    """The agent's leg failed (not answered) or ended (hung up)."""

    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class CallerAnswered:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class CallerGone:
    """The caller's leg failed (busy, no answer, unreachable) or ended (hung up)."""

    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    pass


Event = Start | AgentAnswered | AgentGone | CallerAnswered | CallerGone | Tick


# ---------------------------------------------------------------- commands
@dataclasses.dataclass(frozen=True, slots=True)
class DialAgent:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class PlayAgent:
    prompt: str
    loop: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class DialCaller:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Bridge:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class HangupAgent:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class HangupCaller:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class ReportOfferAnswered:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class ReportOfferFailed:
    reason: str
    agent_fault: bool


@dataclasses.dataclass(frozen=True, slots=True)
class ReportCallbackFailed:
    """The caller did not answer this attempt (the queue retries or gives up)."""

    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Finish:
    outcome: Outcome | None  # None: the attempt left no call record (the caller was never dialled)
    hangup_by: str
    reason: str = ""


Command = (
    DialAgent
    | PlayAgent
    | DialCaller
    | Bridge
    | HangupAgent
    | HangupCaller
    | ReportOfferAnswered
    | ReportOfferFailed
    | ReportCallbackFailed
    | Finish
)


AGENT_PROMPT = "callback_agent"
AGENT_FAILED_PROMPT = "callback_agent_failed"


@dataclasses.dataclass(frozen=True, slots=True)
class CallbackSettings:
    ring_timeout_s: float = 20.0  # the agent's phone
    caller_ring_timeout_s: float = 30.0  # the caller's phone
    agent_prompt: str = AGENT_PROMPT  # looped to the agent while the caller's phone rings
    agent_failed_prompt: str = AGENT_FAILED_PROMPT
    agent_failed_s: float = 0.0  # its length (0: the agent is hung up at once)


class CallbackFlow:
    """One callback attempt. `handle(event, now)` returns the commands to carry out, in order."""

    def __init__(self, settings: CallbackSettings) -> None:
        self.settings = settings
        self.phase = CallbackPhase.NEW
        self.ring_until: float | None = None
        self.outcome: Outcome | None = None
        self._failure = ("", "")  # (reason, who) of a caller who did not answer
        self._table: dict[tuple[CallbackPhase, type], Callable[[Event, float], list[Command]]] = {
            (CallbackPhase.NEW, Start): self._on_start,
            (CallbackPhase.AGENT_RINGING, AgentAnswered): self._on_agent_answered,
            (CallbackPhase.AGENT_RINGING, AgentGone): self._on_agent_failed,
            (CallbackPhase.AGENT_RINGING, Tick): self._on_agent_tick,
            (CallbackPhase.CALLER_RINGING, CallerAnswered): self._on_caller_answered,
            (CallbackPhase.CALLER_RINGING, CallerGone): self._on_caller_failed,
            (CallbackPhase.CALLER_RINGING, AgentGone): self._on_agent_left,
            (CallbackPhase.CALLER_RINGING, Tick): self._on_caller_tick,
            (CallbackPhase.TELLING_AGENT, Tick): self._on_told_tick,
            (CallbackPhase.TELLING_AGENT, AgentGone): self._on_told_agent_left,
            (CallbackPhase.TELLING_AGENT, CallerGone): self._nothing,
            (CallbackPhase.CONNECTED, AgentGone): self._on_agent_hangup,
            (CallbackPhase.CONNECTED, CallerGone): self._on_caller_hangup,
            (CallbackPhase.CONNECTED, Tick): self._nothing,
        }
        for event in (AgentAnswered, AgentGone, CallerAnswered, CallerGone, Tick):
            self._table[(CallbackPhase.ENDED, event)] = self._nothing

    def handle(self, event: Event, now: float) -> list[Command]:
        handler = self._table.get((self.phase, type(event)))
        if handler is None:
            raise FlowError(f"no transition for event {type(event).__name__} in phase {self.phase}")
        return handler(event, now)

    def next_deadline(self) -> float | None:
        return self.ring_until

    # ------------------------------------------------------------ handlers
    def _nothing(self, event: Event, now: float) -> list[Command]:
        return []

    def _end(self, outcome: Outcome | None, hangup_by: str, reason: str) -> Finish:
        self.phase = CallbackPhase.ENDED
        self.ring_until = None
        self.outcome = outcome
        return Finish(outcome, hangup_by, reason)

    def _on_start(self, event: Event, now: float) -> list[Command]:
        self.phase = CallbackPhase.AGENT_RINGING
        self.ring_until = now + self.settings.ring_timeout_s
        return [DialAgent()]

    def _on_agent_answered(self, event: Event, now: float) -> list[Command]:
        self.phase = CallbackPhase.CALLER_RINGING
        self.ring_until = now + self.settings.caller_ring_timeout_s
        return [PlayAgent(self.settings.agent_prompt, loop=True), DialCaller()]

    def _on_agent_failed(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, AgentGone)
        return [ReportOfferFailed(event.reason, agent_fault=True), self._end(None, "agent", event.reason)]

    def _on_agent_tick(self, event: Event, now: float) -> list[Command]:
        if self.ring_until is None or now < self.ring_until:
            return []
        return [HangupAgent(), ReportOfferFailed("no-answer", agent_fault=True), self._end(None, "system", "no-answer")]

    def _on_caller_answered(self, event: Event, now: float) -> list[Command]:
        self.phase = CallbackPhase.CONNECTED
        self.ring_until = None
        return [Bridge(), ReportOfferAnswered()]

    def _on_caller_failed(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, CallerGone)
        return self._tell_agent(event.reason, "caller", now)

    def _on_caller_tick(self, event: Event, now: float) -> list[Command]:
        if self.ring_until is None or now < self.ring_until:
            return []
        return [HangupCaller(), *self._tell_agent("no-answer", "system", now)]

    def _tell_agent(self, reason: str, hangup_by: str, now: float) -> list[Command]:
        """The caller did not answer: the queue hears it now; the agent hears it, then bye."""
        self._failure = (reason, hangup_by)
        if self.settings.agent_failed_s <= 0:
            return [HangupAgent(), ReportCallbackFailed(reason), self._end(Outcome.CALLBACK_FAILED, hangup_by, reason)]
        self.phase = CallbackPhase.TELLING_AGENT
        self.ring_until = now + self.settings.agent_failed_s
        return [PlayAgent(self.settings.agent_failed_prompt), ReportCallbackFailed(reason)]

    def _on_told_tick(self, event: Event, now: float) -> list[Command]:
        if self.ring_until is None or now < self.ring_until:
            return []
        reason, hangup_by = self._failure
        return [HangupAgent(), self._end(Outcome.CALLBACK_FAILED, hangup_by, reason)]

    def _on_told_agent_left(self, event: Event, now: float) -> list[Command]:
        reason, hangup_by = self._failure
        return [self._end(Outcome.CALLBACK_FAILED, hangup_by, reason)]

    def _on_agent_left(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, AgentGone)
        return [
            HangupCaller(),
            ReportOfferFailed("agent-hung-up", agent_fault=True),
            self._end(None, "agent", "agent-hung-up"),
        ]

    def _on_agent_hangup(self, event: Event, now: float) -> list[Command]:
        return [HangupCaller(), self._end(Outcome.ANSWERED, "agent", "")]

    def _on_caller_hangup(self, event: Event, now: float) -> list[Command]:
        return [HangupAgent(), self._end(Outcome.ANSWERED, "caller", "")]
