"""The words every part of hotline shares: ids, call records, agents, outcomes.

Only the standard library is imported here (STYLE.md: dependencies point inward).
Times in records are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import dataclasses
import enum
from datetime import UTC, datetime
from typing import Any, NewType

CallId = NewType("CallId", str)
AgentId = NewType("AgentId", str)
WorkerId = NewType("WorkerId", str)
OfferId = NewType("OfferId", str)


class Outcome(enum.StrEnum):
    """How a call that reached a worker ended."""

    ANSWERED = "answered"  # an agent was connected
    ABANDONED_IN_QUEUE = "abandoned_in_queue"  # caller hung up while waiting for an agent
    ABANDONED_IN_GREETING = "abandoned_in_greeting"  # caller hung up before being queued
    FAILED = "failed"  # the system failed the call (worker died, media error, ...)
    REJECTED = "rejected"  # refused at admission (over capacity): counted, never answered


class AgentState(enum.StrEnum):
    """States of an agent in the queue (rules: hotline/queue/agent_state.py)."""

    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RESERVED = "reserved"  # offered a call, phone ringing
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"  # after a call, for a set time (ends by itself or early by the agent)
    PAUSED = "paused"  # on a break or taken out of rotation, with a reason code


class Actor(enum.StrEnum):
    """Who made an agent's state change."""

    AGENT = "agent"
    SYSTEM = "system"
    SUPERVISOR = "supervisor"


class Priority(enum.IntEnum):
    """Queue priority of a call: a higher one is served first, FIFO by arrival within one."""

    NORMAL = 0
    FLAGGED = 1  # the caller pressed 0, or the call was flagged
    EMERGENCY = 2


def utcnow() -> datetime:
    """The current UTC wall time (records use UTC; people read Asia/Shanghai)."""
    return datetime.now(UTC)


def to_iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def from_iso(value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


@dataclasses.dataclass(frozen=True, slots=True)
class Agent:
    """A person who answers calls on a SIP softphone."""

    agent_id: AgentId
    name: str
    extension: str  # the SIP user the softphone registers as (dialled via Kamailio)
    sip_uri: str | None = None  # explicit URI for embedded dev mode (no Kamailio)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Agent:
        return cls(
            agent_id=AgentId(str(data["agent_id"])),
            name=str(data.get("name", "")),
            extension=str(data["extension"]),
            sip_uri=data.get("sip_uri") or None,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class CallRecord:
    """Everything known about one call when it ends: what becomes the ticket's call record.

    started_at: the INVITE reached the worker; answered_at: the worker answered (200 OK);
    connected_at: an agent answered and the legs were bridged; ended_at: the last leg hung up.
    """

    call_id: CallId
    caller: str
    callee: str
    worker_id: WorkerId
    started_at: datetime
    outcome: Outcome
    answered_at: datetime | None = None
    queued_at: datetime | None = None
    connected_at: datetime | None = None
    ended_at: datetime | None = None
    agent_id: AgentId | None = None
    dtmf: str = ""
    recording_path: str | None = None
    hangup_by: str | None = None  # "caller", "agent", "system"
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "caller": self.caller,
            "callee": self.callee,
            "worker_id": self.worker_id,
            "started_at": to_iso(self.started_at),
            "outcome": self.outcome.value,
            "answered_at": to_iso(self.answered_at),
            "queued_at": to_iso(self.queued_at),
            "connected_at": to_iso(self.connected_at),
            "ended_at": to_iso(self.ended_at),
            "agent_id": self.agent_id,
            "dtmf": self.dtmf,
            "recording_path": self.recording_path,
            "hangup_by": self.hangup_by,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallRecord:
        started = from_iso(data["started_at"])
        if started is None:
            raise ValueError("call record without started_at")
        agent = data.get("agent_id")
        return cls(
            call_id=CallId(str(data["call_id"])),
            caller=str(data.get("caller", "")),
            callee=str(data.get("callee", "")),
            worker_id=WorkerId(str(data.get("worker_id", ""))),
            started_at=started,
            outcome=Outcome(data["outcome"]),
            answered_at=from_iso(data.get("answered_at")),
            queued_at=from_iso(data.get("queued_at")),
            connected_at=from_iso(data.get("connected_at")),
            ended_at=from_iso(data.get("ended_at")),
            agent_id=AgentId(str(agent)) if agent else None,
            dtmf=str(data.get("dtmf") or ""),
            recording_path=data.get("recording_path") or None,
            hangup_by=data.get("hangup_by") or None,
            reason=str(data.get("reason") or ""),
        )


def lost_call_record(call_id: CallId, worker_id: WorkerId, tracked: dict[str, Any], reason: str) -> CallRecord:
    """The record of a call its worker lost (it died): what the worker had registered for the
    live call (caller, callee, start), closed now as failed by the system."""
    return CallRecord(
        call_id=call_id,
        caller=str(tracked.get("caller", "")),
        callee=str(tracked.get("callee", "")),
        worker_id=worker_id,
        started_at=from_iso(str(tracked.get("started_at") or "")) or utcnow(),
        outcome=Outcome.FAILED,
        ended_at=utcnow(),
        hangup_by="system",
        reason=reason,
    )
