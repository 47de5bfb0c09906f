"""The ports: what the runtime needs from each adapter, as typing.Protocol.

Adapters (queue: Redis; tickets: SQLAlchemy; sip: pjsua2) implement these; the runtime and
the agent desktop depend only on these protocols. No third-party type crosses a port.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from hotline.core.model import Agent, AgentId, AgentState, CallId, CallRecord, OfferId, WorkerId


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
    call_id: CallId | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class WaitingCall:
    call_id: CallId
    worker_id: WorkerId
    caller: str
    arrival_ms: int
    position: int  # 1 = next to be offered
    offered_to: AgentId | None = None


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
    """The ACD queue in Redis: entries, agents, offers. Every write is idempotent by id."""

    async def enqueue(self, call_id: CallId, worker_id: WorkerId, caller: str, arrival_ms: int) -> int:
        """Adds the call (no-op if present); returns its 1-based position."""

    async def abandon(self, call_id: CallId) -> bool:
        """Removes a waiting or offered entry (caller hung up); True if it was there."""

    async def position(self, call_id: CallId) -> int | None: ...

    async def waiting(self) -> list[WaitingCall]: ...

    async def agent_login(self, agent: Agent, now_ms: int) -> AgentStatus: ...

    async def agent_logout(self, agent_id: AgentId, now_ms: int) -> AgentStatus: ...

    async def agent_status(self, agent_id: AgentId) -> AgentStatus: ...

    async def agents(self) -> list[AgentStatus]: ...

    async def dispatch_once(self, now_ms: int, lease_ms: int) -> Offer | None:
        """Atomically reserve the longest-idle available agent for the head of the queue."""

    async def offer_answered(self, offer_id: OfferId, now_ms: int) -> bool: ...

    async def offer_failed(self, offer_id: OfferId, now_ms: int, reason: str) -> bool:
        """The call goes back to its original place; the agent becomes available again."""

    async def call_finished(self, call_id: CallId, now_ms: int) -> None:
        """The agent who had this call becomes available (idle since now)."""

    async def expire_offers(self, now_ms: int) -> list[Offer]:
        """Offers whose lease ran out go back as if failed; returns them."""


class EventBus(Protocol):
    """Worker <-> control plane messages (Redis streams)."""

    async def publish(self, kind: str, data: dict[str, Any]) -> str: ...

    async def send_command(self, worker_id: WorkerId, kind: str, data: dict[str, Any]) -> str: ...
