"""The ports: what the runtime needs from each adapter, as typing.Protocol.

Adapters (queue: Redis; tickets: SQLAlchemy; sip: pjsua2) implement these; the runtime and
the agent desktop depend only on these protocols. No third-party type crosses a port.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Protocol

from hotline.core.model import (
    Actor,
    Agent,
    AgentId,
    AgentState,
    CallId,
    CallRecord,
    OfferId,
    Priority,
    TicketSummary,
    WorkerId,
)


@dataclasses.dataclass(frozen=True, slots=True)
class Offer:
    """The dispatcher reserved agent_id for call_id; the caller's worker must now dial the agent."""

    offer_id: OfferId
    call_id: CallId
    worker_id: WorkerId
    agent_id: AgentId
    agent_extension: str
    agent_uri: str | None
    # A callback entry's offer: no worker owns the call; any live worker dials the agent, then
    # `caller`, the number to call back (this is the attempt-th try).
    callback: bool = False
    caller: str = ""
    attempt: int = 0
    skills: tuple[str, ...] = ()  # what the call itself asked for (the queue's own come on top)
    queue: str = ""  # the queue the call waited in ("": the only one)
    # A ring_all queue: every offer of the call's group (this one first), each to its own
    # agent, all ringing at once; the first to answer takes the call. () for a single offer.
    ring: tuple[Offer, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class AgentStatus:
    agent_id: AgentId
    state: AgentState
    since_ms: int  # when the agent entered this state (epoch ms)
    call_id: CallId | None = None  # offered (RESERVED), answered (ON_CALL) or wrapped up (WRAP_UP)
    reason: str = ""  # why the agent is in this state: pause code, failure or logout reason
    idle_since_ms: int | None = None  # AVAILABLE only: his place in the idle line (oldest first)
    wrap_up_until_ms: int | None = None  # WRAP_UP only: when it ends by itself
    # Routing inputs (hotline/queue/routing.py): skill -> level, and since his last login the
    # calls he answered and the ms he talked (fewest_calls, least_talk_time strategies).
    skills: dict[str, int] = dataclasses.field(default_factory=dict, hash=False)
    calls_answered: int = 0
    talk_ms: int = 0
    # His softphone as the control plane last found it at Kamailio's registrar: "registered",
    # "unreachable" (not offered calls, even when AVAILABLE), "" (not probed: unknown).
    device: str = ""
    extension: str = ""  # his softphone's SIP user (at login), what the device probe asks about


@dataclasses.dataclass(frozen=True, slots=True)
class WaitingCall:
    call_id: CallId
    worker_id: WorkerId
    caller: str
    arrival_ms: int
    position: int  # 1 = next to be offered
    offered_to: AgentId | None = None
    priority: Priority = Priority.NORMAL
    estimated_wait_s: float | None = None  # None: not estimated, or no agent to estimate from
    callback: bool = False  # the caller hung up and waits to be called back (keeps the place)
    retry_at_ms: int | None = None  # a callback whose last attempt failed: not offered before
    skills: tuple[str, ...] = ()  # the call's own required skills (the queue's come on top)
    queue: str = ""  # the queue it waits in (position counts within it)
    entered_ms: int | None = None  # when it entered that queue (after an overflow: later than arrival)
    overflow_now: bool = False  # its queue was full: the control plane overflows it at once


@dataclasses.dataclass(frozen=True, slots=True)
class CallStats:
    """What the call records since an instant say about the service (TicketStore.call_stats).

    Counted over the records whose call started at or after `since`:
    - answered: inbound calls an agent took (outcome answered, not a callback's own record);
    - abandoned: inbound callers who hung up while queued (abandoned_in_queue, and
      abandoned_in_greeting with a queued_at: the greeting plays while the caller already
      waits); a hang-up before the call was queued is not offered to the queue, nor counted here;
    - callbacks_requested: callers who pressed 1 and hung up, keeping their place; neither
      answered nor abandoned (their callback attempts are records of their own);
    - offered = answered + abandoned + callbacks_requested;
    - answered_within_sl: answered calls with connected_at - queued_at <= service_level_s;
    - callbacks_answered: callback attempts the caller took (answered, with related_call_id);
    - handled / handle_s_total: every call an agent talked on (answered, callbacks too) with
      both connected_at and ended_at, and the seconds between them (talk time, no wrap-up);
    - waited / answer_wait_s_total: answered inbound calls with queued_at and connected_at, and
      the seconds they waited for the agent (average speed of answer);
    - by_outcome: every record (callbacks' own too) by its outcome value.
    """

    since: datetime
    service_level_s: float
    answered: int = 0
    abandoned: int = 0
    callbacks_requested: int = 0
    answered_within_sl: int = 0
    callbacks_answered: int = 0
    handled: int = 0
    handle_s_total: float = 0.0
    waited: int = 0
    answer_wait_s_total: float = 0.0
    by_outcome: dict[str, int] = dataclasses.field(default_factory=dict, hash=False)

    @property
    def offered(self) -> int:
        return self.answered + self.abandoned + self.callbacks_requested

    @property
    def answer_rate(self) -> float | None:
        """接通率: answered / (answered + abandoned); None before any such call."""
        resolved = self.answered + self.abandoned
        return self.answered / resolved if resolved else None

    @property
    def service_level(self) -> float | None:
        """Answered within service_level_s / (answered + abandoned): a caller who gave up counts
        against it, however short his wait; None before any such call."""
        resolved = self.answered + self.abandoned
        return self.answered_within_sl / resolved if resolved else None

    @property
    def average_handle_s(self) -> float | None:
        return self.handle_s_total / self.handled if self.handled else None

    @property
    def average_answer_s(self) -> float | None:
        return self.answer_wait_s_total / self.waited if self.waited else None


# CallQueue.enqueue's result when the queue is full (max length reached): the call was not queued.
QUEUE_FULL = -1


class TicketStore(Protocol):
    """Call records and the agent registry (SQL). Synchronous; callers run it off the loop."""

    def save_call(self, record: CallRecord) -> None:
        """Insert or replace the record of record.call_id (idempotent by call id)."""

    def get_call(self, call_id: CallId) -> CallRecord | None: ...

    def list_calls(self, limit: int = 100) -> list[CallRecord]:
        """Newest first."""

    def add_agent(self, agent: Agent) -> None:
        """Insert or update an agent by agent_id."""

    def get_agent(self, agent_id: AgentId) -> Agent | None: ...

    def list_agents(self) -> list[Agent]: ...

    def call_stats(self, since: datetime, service_level_s: float) -> CallStats:
        """The records of calls started at or after `since` (aware), counted as CallStats says."""

    def close(self) -> None: ...


class TicketRepository(Protocol):
    """工单 as the services outside the ticket store use them (IVR status, speech drafts, call
    links, caller history). Synchronous; callers run it off the loop. Creating tickets and moving
    them through the lifecycle take the lifecycle's own types: hotline.tickets.store.SqlTicketStore
    (create_ticket, apply, get_ticket, timeline)."""

    def ticket_status(self, number: str) -> str | None:
        """A TicketStatus value (accepted, dispatched, handling, extended, replied, survey,
        closed, terminated); None for an unknown number."""

    def tickets_for_caller(self, caller: str, since: datetime) -> list[TicketSummary]:
        """The caller's tickets created at or after `since`, newest first."""

    def link_call(self, number: str, call_id: CallId, role: str) -> None:
        """Links a call to a ticket as "intake", "callback", "survey", ... (idempotent by call)."""

    def save_call_draft(self, call_id: CallId, transcript: str, draft: dict[str, Any], engine: str) -> None:
        """Inserts or replaces the speech service's ticket draft of a call."""

    def get_call_draft(self, call_id: CallId) -> dict[str, Any] | None:
        """{"call_id", "transcript", "draft", "engine", "updated_at" (ISO)}, or None."""


class CallQueue(Protocol):
    """The ACD queue in Redis: entries, agents, offers. Every write is idempotent by id.

    Calls are served by priority, then arrival (FIFO within a priority), each to an agent with
    the skills it needs, picked by the queue's strategy (by default the longest idle).
    Agent states and their rules: hotline/queue/agent_state.py; routing: hotline/queue/routing.py.
    """

    async def enqueue(
        self,
        call_id: CallId,
        worker_id: WorkerId,
        caller: str,
        arrival_ms: int,
        priority: Priority = Priority.NORMAL,
        skills: tuple[str, ...] = (),
        queue: str = "",
    ) -> int:
        """Adds the call (no-op if present) to `queue` ("": the first), needing `skills` on top
        of the queue's; returns its 1-based position in the queue that took it (a full queue
        overflows to its overflow queue), or QUEUE_FULL when it could not be queued (full, and
        nowhere to overflow to)."""

    async def move_to_queue(self, call_id: CallId, queue: str, now_ms: int) -> int | None:
        """A waiting call moves to another queue keeping its arrival time; its position there,
        0 if offered or a callback, None if not queued, QUEUE_FULL if that queue is full."""

    async def abandon(self, call_id: CallId) -> bool:
        """Removes a waiting or offered entry (caller hung up); True if it was there."""

    async def set_priority(self, call_id: CallId, level: Priority) -> Priority | None:
        """Raises a queued call to `level`, keeping its arrival time (never lowers it); returns
        the call's priority now, None if it is not in the queue."""

    async def request_callback(self, call_id: CallId, number: str, now_ms: int) -> bool:
        """The caller asked to be called back and hangs up: the entry keeps its place and
        arrival time, and is offered as a callback (dialled from any live worker) when its turn
        comes. False if the call is not waiting in the queue."""

    async def next_match(self, now_ms: int) -> tuple[CallId, AgentId] | None:
        """The (call, agent) a dispatch would pair now, read only; None if nothing is dispatchable."""

    async def position(self, call_id: CallId) -> int | None: ...

    async def estimated_wait_s(self, call_id: CallId, now_ms: int) -> float | None:
        """Seconds until an agent is likely free for this call; 0 while offered; None if the
        call is not queued or no agent is staffed."""

    async def waiting(self, now_ms: int | None = None, queue: str | None = None) -> list[WaitingCall]:
        """Waiting calls (of `queue`, or of every queue) in the order they will be offered;
        with now_ms, with wait estimates."""

    async def offered(self) -> list[WaitingCall]:
        """The calls being offered to an agent right now (position 0, offered_to set), oldest first."""

    async def agent_login(self, agent: Agent, now_ms: int, by: Actor = Actor.AGENT) -> AgentStatus: ...

    async def agent_logout(
        self, agent_id: AgentId, now_ms: int, by: Actor = Actor.AGENT, reason: str = ""
    ) -> AgentStatus: ...

    async def agent_pause(self, agent_id: AgentId, reason: str, now_ms: int, by: Actor = Actor.AGENT) -> AgentStatus:
        """Takes the agent out of rotation with a reason code; IllegalTransition if not possible now."""

    async def agent_resume(self, agent_id: AgentId, now_ms: int, by: Actor = Actor.AGENT) -> AgentStatus:
        """A paused agent becomes available (idle since now); IllegalTransition if not possible now."""

    async def wrap_up_done(self, agent_id: AgentId, now_ms: int, by: Actor = Actor.AGENT) -> AgentStatus:
        """Ends the agent's wrap-up early; IllegalTransition if not possible now."""

    async def agent_status(self, agent_id: AgentId) -> AgentStatus: ...

    async def agents(self) -> list[AgentStatus]: ...

    async def set_device(self, agent_id: AgentId, device: str, now_ms: int) -> AgentStatus:
        """Records his softphone's state ("registered", "unreachable", "": unknown); an
        unreachable agent is not offered calls."""

    async def dispatch_once(self, now_ms: int, lease_ms: int, callback_lease_ms: int | None = None) -> Offer | None:
        """Atomically reserve an agent for the first waiting call one can take (by default the
        longest-idle agent for the head of the queue)."""

    async def offer_answered(self, offer_id: OfferId, now_ms: int) -> bool: ...

    async def callback_failed(
        self, offer_id: OfferId, now_ms: int, reason: str, retry_at_ms: int, max_attempts: int
    ) -> int:
        """A callback's caller did not answer: the agent is free, the entry back at its place,
        not offered before retry_at_ms; returns the failed attempts so far, 0 when that was the
        last (the entry left the queue), -1 for an offer no longer live."""

    async def offer_failed(
        self, offer_id: OfferId, now_ms: int, reason: str, agent_fault: bool = False, declined: bool = False
    ) -> bool:
        """The call goes back to its original place; the agent becomes available again, or is
        paused with `reason` when his side failed (agent_fault) and the queue's policy says so, or
        when he declined it from his desk (declined: paused by him, whatever the policy)."""

    async def call_finished(self, call_id: CallId, now_ms: int, lost: bool = False) -> None:
        """The agent who had this call goes to wrap-up (or available without wrap-up time);
        lost=True (the system lost the call, e.g. its worker died): available at once."""

    async def transfer_taken(
        self, call_id: CallId, from_agent: AgentId | None, to_agent: AgentId, now_ms: int, released: bool = False
    ) -> bool | None:
        """The agent a call was transferred to answered: from the transfer pause to on the call
        (as an answered offer), from_agent to wrap-up (released: he was already). True: he has
        it; False: he was not in the transfer pause; None: the call is over, he is resumed."""

    async def expire_offers(self, now_ms: int) -> list[Offer]:
        """Offers whose lease ran out go back as if failed; returns them."""

    async def overflow_due(self, now_ms: int) -> list[WaitingCall]:
        """Waiting calls (not callbacks) that have waited the queue's max wait or longer, in
        queue order: the control plane sends them to the queue's overflow target."""


class WorkerRegistry(Protocol):
    """The media workers' heartbeats (hotline.queue.bus.RedisEventBus), read by the API's metrics."""

    async def alive_workers(self) -> dict[WorkerId, dict[str, Any]]:
        """The workers whose heartbeat has not expired, with the info of their last beat
        ({"calls": live calls, "rejected": calls refused since the worker started, ...})."""


@dataclasses.dataclass(frozen=True, slots=True)
class AsrLatency:
    """The ASR latency histogram: seconds from when the caller said words (the end of the audio
    a text covers, by the recorder's clock) to when their text was published to the agent.
    `buckets` are (upper bound, texts at or below it), cumulative, ascending, +Inf excluded."""

    buckets: tuple[tuple[float, int], ...]
    count: int
    sum_s: float


class AsrLatencySource(Protocol):
    """The speech service's latency histogram (hotline.queue.asr_latency.RedisAsrLatency)."""

    async def histogram(self) -> AsrLatency:
        """Every text published since the histogram began (never reset: Prometheus counters)."""


class EventBus(Protocol):
    """Worker <-> control plane messages (Redis streams)."""

    async def publish(self, kind: str, data: dict[str, Any]) -> str: ...

    async def send_command(self, worker_id: WorkerId, kind: str, data: dict[str, Any]) -> str: ...
