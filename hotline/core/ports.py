"""The ports: what the runtime needs from each adapter, as typing.Protocol.

Adapters (queue: Redis; tickets: SQLAlchemy; sip: pjsua2) implement these; the runtime and
the agent desktop depend only on these protocols. No third-party type crosses a port.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from hotline.core.model import Actor, Agent, AgentId, AgentState, CallId, CallRecord, OfferId, Priority, WorkerId


@dataclasses.dataclass(frozen=True, slots=True)
class Offer:
    """The dispatcher reserved agent_id for call_id; the caller's worker must now dial the agent."""

    offer_id: OfferId
    call_id: CallId
    worker_id: WorkerId
    agent_id: AgentId
    agent_extension: str
    agent_uri: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class AgentStatus:
    agent_id: AgentId
    state: AgentState
    since_ms: int  # when the agent entered this state (epoch ms)
    call_id: CallId | None = None  # offered (RESERVED), answered (ON_CALL) or wrapped up (WRAP_UP)
    reason: str = ""  # why the agent is in this state: pause code, failure or logout reason
    idle_since_ms: int | None = None  # AVAILABLE only: his place in the idle line (oldest first)
    wrap_up_until_ms: int | None = None  # WRAP_UP only: when it ends by itself


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

    def close(self) -> None: ...


class CallQueue(Protocol):
    """The ACD queue in Redis: entries, agents, offers. Every write is idempotent by id.

    Calls are served by priority, then arrival (FIFO within a priority); agents by idle time.
    Agent states and their rules: hotline/queue/agent_state.py.
    """

    async def enqueue(
        self, call_id: CallId, worker_id: WorkerId, caller: str, arrival_ms: int, priority: Priority = Priority.NORMAL
    ) -> int:
        """Adds the call (no-op if present); returns its 1-based position."""

    async def abandon(self, call_id: CallId) -> bool:
        """Removes a waiting or offered entry (caller hung up); True if it was there."""

    async def set_priority(self, call_id: CallId, level: Priority) -> Priority | None:
        """Raises a queued call to `level`, keeping its arrival time (never lowers it); returns
        the call's priority now, None if it is not in the queue."""

    async def position(self, call_id: CallId) -> int | None: ...

    async def estimated_wait_s(self, call_id: CallId, now_ms: int) -> float | None:
        """Seconds until an agent is likely free for this call; 0 while offered; None if the
        call is not queued or no agent is staffed."""

    async def waiting(self, now_ms: int | None = None) -> list[WaitingCall]:
        """Waiting calls in the order they will be offered; with now_ms, with wait estimates."""

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

    async def dispatch_once(self, now_ms: int, lease_ms: int) -> Offer | None:
        """Atomically reserve the longest-idle available agent for the head of the queue."""

    async def offer_answered(self, offer_id: OfferId, now_ms: int) -> bool: ...

    async def offer_failed(self, offer_id: OfferId, now_ms: int, reason: str, agent_fault: bool = False) -> bool:
        """The call goes back to its original place; the agent becomes available again, or is
        paused with `reason` when his side failed (agent_fault) and the queue's policy says so."""

    async def call_finished(self, call_id: CallId, now_ms: int, lost: bool = False) -> None:
        """The agent who had this call goes to wrap-up (or available without wrap-up time);
        lost=True (the system lost the call, e.g. its worker died): available at once."""

    async def expire_offers(self, now_ms: int) -> list[Offer]:
        """Offers whose lease ran out go back as if failed; returns them."""


class EventBus(Protocol):
    """Worker <-> control plane messages (Redis streams)."""

    async def publish(self, kind: str, data: dict[str, Any]) -> str: ...

    async def send_command(self, worker_id: WorkerId, kind: str, data: dict[str, Any]) -> str: ...
