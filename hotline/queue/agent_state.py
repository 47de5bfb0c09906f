"""An agent's state in the queue, sans-IO: events in, commands out, time (epoch ms) passed in.

Rules of this module (TRANSITIONS below is the whole of them; acd.py writes the same table into
every Lua script, and the scripts refuse any change it does not allow):
- logged_out -> available on login. Logout from any state but on_call (finish the call first);
  a reserved agent's offered call goes back to its place in the queue.
- available -> reserved when offered a call; reserved -> on_call when the agent answers.
- An offer that fails on the agent's side (no answer, busy, not registered, rejected ...) pauses
  him with the failure as reason, if the policy says so (else he stays available): offered
  again at once, a lone absent agent would ring forever. Any other failure (lease expired, call
  gone) makes him available. Either way he is idle since now: the back of the idle line.
- An offer withdrawn (the caller hung up while the phone rang) gives him back the since and
  idle-since he had: he keeps his turn.
- A call transferred to an agent: the API pauses him with events.TRANSFER_PAUSE while his phone
  rings (nothing else is offered to him); when he answers, transfer_taken puts him on that call
  exactly as an answered offer would (counted in calls_answered). Only from that pause: in any
  other pause it changes nothing, and on the call already, nothing either.
- A call that ends puts him in wrap-up for policy.wrap_up_ms (0: straight to available). A call
  the system lost (its worker died) makes him available at once. A call transferred away from
  him ends for him when its new agent takes it (reason TRANSFERRED + that agent).
- Wrap-up ends by itself at its deadline (a Tick at or after it; since and idle-since are the
  deadline, whenever the tick comes) or early by the agent (wrap_up_done).
- Pause with a reason code (小休, 用餐, 培训, no-answer, not-registered ...) from available,
  wrap-up or paused (another reason starts a new pause); resume makes him available, idle since
  now. Repeating a request that is already satisfied changes nothing (login, logout, resume,
  wrap_up_done, the same pause): every write is idempotent.
- Since his login (from logged out) the machine counts the calls he answered and the ms he
  talked (answered to call ended, a lost call too): the fewest_calls and least_talk_time
  strategies read them (routing.py).
- Every change of state or of pause reason emits one Changed: who (agent, system, supervisor)
  and why. Nothing else emits it. A (state, event) pair not in the table raises
  IllegalTransition naming both.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Final

from hotline.core import events
from hotline.core.errors import IllegalTransition
from hotline.core.model import Actor, AgentId, AgentState, CallId, OfferId
from hotline.core.ports import AgentStatus

S = AgentState


def _to(*states: AgentState) -> frozenset[AgentState]:
    return frozenset(states)


# (state, event name) -> the states the event may lead to; the state itself means "no change".
TRANSITIONS: Final[dict[tuple[AgentState, str], frozenset[AgentState]]] = {
    (S.LOGGED_OUT, "login"): _to(S.AVAILABLE),
    (S.LOGGED_OUT, "logout"): _to(S.LOGGED_OUT),
    (S.LOGGED_OUT, "tick"): _to(S.LOGGED_OUT),
    (S.AVAILABLE, "login"): _to(S.AVAILABLE),
    (S.AVAILABLE, "logout"): _to(S.LOGGED_OUT),
    (S.AVAILABLE, "offer"): _to(S.RESERVED),
    (S.AVAILABLE, "pause"): _to(S.PAUSED),
    (S.AVAILABLE, "resume"): _to(S.AVAILABLE),
    (S.AVAILABLE, "wrap_up_done"): _to(S.AVAILABLE),  # wrap-up had already ended by itself
    (S.AVAILABLE, "tick"): _to(S.AVAILABLE),
    (S.RESERVED, "login"): _to(S.RESERVED),
    (S.RESERVED, "logout"): _to(S.LOGGED_OUT),
    (S.RESERVED, "answered"): _to(S.ON_CALL),
    (S.RESERVED, "offer_failed"): _to(S.AVAILABLE, S.PAUSED),
    (S.RESERVED, "offer_withdrawn"): _to(S.AVAILABLE),
    (S.RESERVED, "wrap_up_done"): _to(S.RESERVED),
    (S.RESERVED, "tick"): _to(S.RESERVED),
    (S.ON_CALL, "login"): _to(S.ON_CALL),
    (S.ON_CALL, "call_ended"): _to(S.WRAP_UP, S.AVAILABLE),
    (S.ON_CALL, "wrap_up_done"): _to(S.ON_CALL),
    (S.ON_CALL, "transfer_taken"): _to(S.ON_CALL),
    (S.ON_CALL, "tick"): _to(S.ON_CALL),
    (S.WRAP_UP, "login"): _to(S.WRAP_UP),
    (S.WRAP_UP, "logout"): _to(S.LOGGED_OUT),
    (S.WRAP_UP, "pause"): _to(S.PAUSED),
    (S.WRAP_UP, "wrap_up_done"): _to(S.AVAILABLE),
    (S.WRAP_UP, "tick"): _to(S.WRAP_UP, S.AVAILABLE),
    (S.PAUSED, "login"): _to(S.PAUSED),
    (S.PAUSED, "logout"): _to(S.LOGGED_OUT),
    (S.PAUSED, "pause"): _to(S.PAUSED),
    (S.PAUSED, "resume"): _to(S.AVAILABLE),
    (S.PAUSED, "transfer_taken"): _to(S.PAUSED, S.ON_CALL),
    (S.PAUSED, "tick"): _to(S.PAUSED),
}

# The `event` a Changed carries when the cause is not the event's own name.
WRAP_UP_EXPIRED = "wrap_up_expired"
# The reason a Changed carries when the system lost the agent's call (its worker died).
CALL_LOST = "call-lost"
# The reason of an offered call's requeue when its agent logs out.
AGENT_LOGGED_OUT = "agent-logged-out"
# The reason of an offer withdrawn because the caller hung up.
ABANDONED = "abandoned"
# The reason of an offer withdrawn because the caller asked to be called back (and hung up).
CALLBACK_REQUESTED = "callback"
# The reason of a ring_all offer withdrawn because another agent of the group answered first.
ANSWERED_ELSEWHERE = "answered-elsewhere"
# The reason of the pause an agent is in while a call transferred to him rings (core.events).
TRANSFER_PAUSE = events.TRANSFER_PAUSE
# The reason of a first agent's wrap-up after his call was transferred: TRANSFERRED + the agent
# who took it ("transferred:a2").
TRANSFERRED = events.TRANSFERRED


@dataclasses.dataclass(frozen=True, slots=True)
class AgentPolicy:
    """How the queue treats agents (the same for every process of one queue)."""

    wrap_up_ms: int = 0  # after each call; 0: no wrap-up
    pause_on_agent_failure: bool = True  # False: an agent whose phone failed stays available


# ---------------------------------------------------------------- events
@dataclasses.dataclass(frozen=True, slots=True)
class Login:
    name: ClassVar[str] = "login"
    by: Actor = Actor.AGENT


@dataclasses.dataclass(frozen=True, slots=True)
class Logout:
    name: ClassVar[str] = "logout"
    by: Actor = Actor.AGENT
    reason: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Offer:
    """The dispatcher reserved the agent for a call (his phone is about to ring)."""

    name: ClassVar[str] = "offer"
    call_id: CallId
    offer_id: OfferId


@dataclasses.dataclass(frozen=True, slots=True)
class Answered:
    name: ClassVar[str] = "answered"
    offer_id: OfferId


@dataclasses.dataclass(frozen=True, slots=True)
class OfferFailed:
    name: ClassVar[str] = "offer_failed"
    offer_id: OfferId
    reason: str  # "no-answer", "busy", "not-registered", "lease-expired", ...
    agent_fault: bool = False  # the agent's side failed (his phone), not the call or the system
    declined: bool = False  # the agent declined it from his desk: paused with the reason, whatever the policy


@dataclasses.dataclass(frozen=True, slots=True)
class OfferWithdrawn:
    """The offered call left the queue (the caller hung up) before the agent answered."""

    name: ClassVar[str] = "offer_withdrawn"
    offer_id: OfferId
    reason: str = ABANDONED  # or CALLBACK_REQUESTED


@dataclasses.dataclass(frozen=True, slots=True)
class TransferTaken:
    """The agent answered a call transferred to him (he was paused with TRANSFER_PAUSE)."""

    name: ClassVar[str] = "transfer_taken"
    call_id: CallId


@dataclasses.dataclass(frozen=True, slots=True)
class CallEnded:
    name: ClassVar[str] = "call_ended"
    call_id: CallId
    lost: bool = False  # the system lost the call (worker died): no wrap-up
    transferred_to: AgentId | None = None  # the call went on with this agent: the wrap-up's reason says so


@dataclasses.dataclass(frozen=True, slots=True)
class Pause:
    name: ClassVar[str] = "pause"
    reason: str
    by: Actor = Actor.AGENT


@dataclasses.dataclass(frozen=True, slots=True)
class Resume:
    name: ClassVar[str] = "resume"
    by: Actor = Actor.AGENT


@dataclasses.dataclass(frozen=True, slots=True)
class WrapUpDone:
    name: ClassVar[str] = "wrap_up_done"
    by: Actor = Actor.AGENT


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: a wrap-up whose deadline is due ends."""

    name: ClassVar[str] = "tick"


Event = (
    Login
    | Logout
    | Offer
    | Answered
    | OfferFailed
    | OfferWithdrawn
    | TransferTaken
    | CallEnded
    | Pause
    | Resume
    | WrapUpDone
    | Tick
)
EVENT_NAMES: Final = frozenset(
    cls.name
    for cls in (
        Login,
        Logout,
        Offer,
        Answered,
        OfferFailed,
        OfferWithdrawn,
        TransferTaken,
        CallEnded,
        Pause,
        Resume,
        WrapUpDone,
        Tick,
    )
)
assert {name for _, name in TRANSITIONS} <= EVENT_NAMES, "TRANSITIONS names an unknown event"


# ---------------------------------------------------------------- commands
@dataclasses.dataclass(frozen=True, slots=True)
class Changed:
    """The agent's state changed: publish it (events.AGENT_STATE, data = to_dict())."""

    agent_id: AgentId
    previous: AgentState
    state: AgentState
    event: str  # what happened: the event's name, or WRAP_UP_EXPIRED
    by: Actor
    reason: str
    call_id: CallId | None
    since_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "previous": self.previous.value,
            "state": self.state.value,
            "event": self.event,
            "by": self.by.value,
            "reason": self.reason,
            "call_id": self.call_id,
            "since_ms": self.since_ms,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class JoinIdleLine:
    """The agent can be offered calls; longest idle (smallest idle_since_ms) first."""

    idle_since_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class LeaveIdleLine:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class StartWrapUpTimer:
    until_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class StopWrapUpTimer:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class RequeueCall:
    """The call offered to the agent goes back to its original place in the queue."""

    call_id: CallId
    offer_id: OfferId
    reason: str


Command = Changed | JoinIdleLine | LeaveIdleLine | StartWrapUpTimer | StopWrapUpTimer | RequeueCall


class AgentMachine:
    """One agent. `handle(event, now)` returns the commands to carry out, in order."""

    def __init__(self, agent_id: AgentId, policy: AgentPolicy | None = None) -> None:
        self.agent_id = agent_id
        self.policy = policy or AgentPolicy()
        self.state = AgentState.LOGGED_OUT
        self.since_ms = 0
        self.reason = ""
        self.call_id: CallId | None = None
        self.offer_id: OfferId | None = None
        self.idle_since_ms = 0  # kept while reserved: a withdrawn offer gives his turn back
        self.prev_since_ms = 0  # the since of AVAILABLE while reserved
        self.wrap_up_until_ms: int | None = None
        self.calls_answered = 0  # since his login
        self.talk_ms = 0  # since his login

    # ------------------------------------------------------------ public
    def handle(self, event: Event, now: int) -> list[Command]:
        if (self.state, event.name) not in TRANSITIONS:
            raise IllegalTransition(
                f"agent {self.agent_id}: no transition for event {event.name} in state {self.state}"
            )
        match event:
            case Login():
                return self._login(event, now)
            case Logout():
                return self._logout(event, now)
            case Offer():
                return self._offer(event, now)
            case Answered():
                return self._answered(event, now)
            case OfferFailed():
                return self._offer_failed(event, now)
            case OfferWithdrawn():
                return self._offer_withdrawn(event, now)
            case TransferTaken():
                return self._transfer_taken(event, now)
            case CallEnded():
                return self._call_ended(event, now)
            case Pause():
                return self._pause(event, now)
            case Resume():
                return self._resume(event, now)
            case WrapUpDone():
                return self._wrap_up_done(event, now)
            case Tick():
                return self._tick(now)

    def next_deadline(self) -> int | None:
        """Epoch ms at which a Tick changes something (the end of wrap-up), else None."""
        return self.wrap_up_until_ms if self.state is AgentState.WRAP_UP else None

    def status(self) -> AgentStatus:
        """The agent as the CallQueue port reports him."""
        return AgentStatus(
            agent_id=self.agent_id,
            state=self.state,
            since_ms=self.since_ms,
            call_id=self.call_id,
            reason=self.reason,
            idle_since_ms=self.idle_since_ms if self.state is AgentState.AVAILABLE else None,
            wrap_up_until_ms=self.next_deadline(),
            calls_answered=self.calls_answered,
            talk_ms=self.talk_ms,
        )

    # ------------------------------------------------------------ the one way a state changes
    def _move(
        self, event: str, to: AgentState, since: int, by: Actor, reason: str, *, cause: str | None = None
    ) -> list[Command]:
        if to not in TRANSITIONS[(self.state, event)]:
            raise IllegalTransition(f"agent {self.agent_id}: event {event} in state {self.state} cannot lead to {to}")
        previous = self.state
        out: list[Command] = []
        if previous is AgentState.AVAILABLE:
            out.append(LeaveIdleLine())
        if previous is AgentState.WRAP_UP:
            out.append(StopWrapUpTimer())
            self.wrap_up_until_ms = None
        if to is not AgentState.RESERVED:
            self.offer_id = None
        if to in (AgentState.AVAILABLE, AgentState.PAUSED, AgentState.LOGGED_OUT):
            self.call_id = None
        self.state, self.since_ms, self.reason = to, since, reason
        if to is AgentState.AVAILABLE:
            out.append(JoinIdleLine(self.idle_since_ms))
        if to is AgentState.WRAP_UP:
            assert self.wrap_up_until_ms is not None
            out.append(StartWrapUpTimer(self.wrap_up_until_ms))
        out.append(Changed(self.agent_id, previous, to, cause or event, by, reason, self.call_id, since))
        return out

    def _available(
        self, event: str, now: int, by: Actor, reason: str = "", *, cause: str | None = None
    ) -> list[Command]:
        self.idle_since_ms = now
        return self._move(event, AgentState.AVAILABLE, now, by, reason, cause=cause)

    # ------------------------------------------------------------ handlers
    def _login(self, event: Login, now: int) -> list[Command]:
        if self.state is not AgentState.LOGGED_OUT:
            return []  # logged in already: he keeps his state
        self.calls_answered = self.talk_ms = 0
        return self._available(event.name, now, event.by)

    def _logout(self, event: Logout, now: int) -> list[Command]:
        if self.state is AgentState.LOGGED_OUT:
            return []
        requeue: list[Command] = []
        if self.state is AgentState.RESERVED:
            assert self.call_id is not None and self.offer_id is not None
            requeue.append(RequeueCall(self.call_id, self.offer_id, AGENT_LOGGED_OUT))
        return requeue + self._move(event.name, AgentState.LOGGED_OUT, now, event.by, event.reason)

    def _offer(self, event: Offer, now: int) -> list[Command]:
        self.prev_since_ms = self.since_ms
        self.call_id, self.offer_id = event.call_id, event.offer_id
        return self._move(event.name, AgentState.RESERVED, now, Actor.SYSTEM, "")

    def _check_offer(self, event: Answered | OfferFailed | OfferWithdrawn) -> None:
        if event.offer_id != self.offer_id:
            raise IllegalTransition(
                f"agent {self.agent_id}: event {event.name} for offer {event.offer_id} in state {self.state} "
                f"(his offer is {self.offer_id})"
            )

    def _answered(self, event: Answered, now: int) -> list[Command]:
        self._check_offer(event)
        self.calls_answered += 1
        return self._move(event.name, AgentState.ON_CALL, now, Actor.AGENT, "")

    def _offer_failed(self, event: OfferFailed, now: int) -> list[Command]:
        self._check_offer(event)
        if event.declined:
            return self._move(event.name, AgentState.PAUSED, now, Actor.AGENT, event.reason)
        if event.agent_fault and self.policy.pause_on_agent_failure:
            return self._move(event.name, AgentState.PAUSED, now, Actor.SYSTEM, event.reason)
        return self._available(event.name, now, Actor.SYSTEM, event.reason)

    def _offer_withdrawn(self, event: OfferWithdrawn, now: int) -> list[Command]:
        self._check_offer(event)
        return self._move(event.name, AgentState.AVAILABLE, self.prev_since_ms, Actor.SYSTEM, event.reason)

    def _transfer_taken(self, event: TransferTaken, now: int) -> list[Command]:
        if self.state is not AgentState.PAUSED or self.reason != TRANSFER_PAUSE:
            return []  # on a call already (this one: a repeat), or not waiting for a transfer
        self.call_id = event.call_id
        self.calls_answered += 1
        return self._move(event.name, AgentState.ON_CALL, now, Actor.AGENT, "")

    def _call_ended(self, event: CallEnded, now: int) -> list[Command]:
        if event.call_id != self.call_id:
            raise IllegalTransition(
                f"agent {self.agent_id}: event {event.name} for call {event.call_id} in state {self.state} "
                f"(his call is {self.call_id})"
            )
        self.talk_ms += max(0, now - self.since_ms)
        if event.lost:
            return self._available(event.name, now, Actor.SYSTEM, CALL_LOST)
        reason = f"{TRANSFERRED}{event.transferred_to}" if event.transferred_to else ""
        if self.policy.wrap_up_ms <= 0:
            return self._available(event.name, now, Actor.SYSTEM, reason)
        self.wrap_up_until_ms = now + self.policy.wrap_up_ms
        return self._move(event.name, AgentState.WRAP_UP, now, Actor.SYSTEM, reason)

    def _pause(self, event: Pause, now: int) -> list[Command]:
        if self.state is AgentState.PAUSED and self.reason == event.reason:
            return []
        return self._move(event.name, AgentState.PAUSED, now, event.by, event.reason)

    def _resume(self, event: Resume, now: int) -> list[Command]:
        if self.state is AgentState.AVAILABLE:
            return []
        return self._available(event.name, now, event.by)

    def _wrap_up_done(self, event: WrapUpDone, now: int) -> list[Command]:
        if self.state is not AgentState.WRAP_UP:
            return []  # it had ended already
        return self._available(event.name, now, event.by)

    def _tick(self, now: int) -> list[Command]:
        until = self.next_deadline()
        if until is None or now < until:
            return []
        self.idle_since_ms = until
        return self._move(Tick.name, AgentState.AVAILABLE, until, Actor.SYSTEM, "", cause=WRAP_UP_EXPIRED)
