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
    # The caller pressed 1 and hung up: the queue keeps the place, an agent calls back (the
    # callback's own call has a record of its own, pointing at this one).
    CALLBACK_REQUESTED = "callback_requested"
    SELF_SERVED = "self_served"  # the IVR answered the caller (knowledge base, ticket status)
    CALLBACK_FAILED = "callback_failed"  # a callback whose caller never answered, after retries
    SURVEY = "survey"  # an outbound 回访 call (its reason says whether the caller was reached and rated)
    # Overflowed to voicemail: the caller left a message (the call's recording; its ticket draft
    # comes from the speech service as for any queued call). Neither answered nor abandoned.
    VOICEMAIL = "voicemail"


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
    # Skill -> level (1 = some, higher = better; 0 = none), e.g. {"language:en": 2, "complaint": 3}:
    # which calls of a queue he may be offered (rules: hotline/queue/routing.py). Not hashed.
    skills: dict[str, int] = dataclasses.field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if not self.skills:
            del data["skills"]  # the shape it had before skills existed
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Agent:
        return cls(
            agent_id=AgentId(str(data["agent_id"])),
            name=str(data.get("name", "")),
            extension=str(data["extension"]),
            sip_uri=data.get("sip_uri") or None,
            skills={str(name): int(level) for name, level in (data.get("skills") or {}).items()},
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
    # A callback's record points at the call whose caller asked for it (and vice versa never:
    # the original call's record is written when that caller hangs up, before any callback).
    related_call_id: CallId | None = None

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
            "related_call_id": self.related_call_id,
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
            related_call_id=CallId(str(data["related_call_id"])) if data.get("related_call_id") else None,
        )


def lost_call_record(
    call_id: CallId, worker_id: WorkerId, tracked: dict[str, Any], reason: str, outcome: Outcome = Outcome.FAILED
) -> CallRecord:
    """The record of a call its worker lost (it died): what the worker had registered for the
    live call (caller, callee, start), closed now as failed by the system."""
    return CallRecord(
        call_id=call_id,
        caller=str(tracked.get("caller", "")),
        callee=str(tracked.get("callee", "")),
        worker_id=worker_id,
        started_at=from_iso(str(tracked.get("started_at") or "")) or utcnow(),
        outcome=outcome,
        ended_at=utcnow(),
        hangup_by="system",
        reason=reason,
    )


class TicketStatus(enum.StrEnum):
    """Where a 工单 stands, in the few words a caller hears on the phone (prompt `status_<value>`).

    The ticket store maps the lifecycle's finer states onto these (hotline/tickets/records.py).
    """

    ACCEPTED = "accepted"  # 已受理, waiting to be dispatched
    DISPATCHED = "dispatched"  # 已转办 to the responsible unit
    HANDLING = "handling"  # 办理中
    EXTENDED = "extended"  # 办理中, with a later deadline (延期 approved, or 续报)
    REPLIED = "replied"  # the unit replied; the hotline will call back
    SURVEY = "survey"  # 回访 under way
    CLOSED = "closed"  # 已办结
    TERMINATED = "terminated"  # 已终止


@dataclasses.dataclass(frozen=True, slots=True)
class TicketSummary:
    """One 工单 as services outside the ticket store see it (caller history, repeat detection)."""

    number: str  # digits only: yyMMdd + daily sequence
    caller: str
    kind: str  # hotline.tickets.model.Kind value: consultation, help, complaint, ...
    status: TicketStatus
    stage: str  # the lifecycle state (hotline.tickets.model.State value)
    content: str
    place: str
    lead_unit: str | None
    emergency: bool
    created_at: datetime
