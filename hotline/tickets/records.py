"""What the ticket store takes and gives for 工单: new-ticket fields, actors, stored tickets,
timeline rows, call and ticket links, and the short status a caller hears on the phone.

Only the standard library, hotline.core and model.py are used here.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from datetime import datetime
from typing import Any

from hotline.core.errors import Conflict, InvalidRequest, NotFound
from hotline.core.model import CallId, TicketStatus, TicketSummary
from hotline.tickets.model import Command, Kind, Stage, State, Ticket, TimelineEntry

# Roles of a call linked to a ticket. Others are allowed (lower-case words), these are the usual.
CALL_ROLES = ("intake", "callback", "survey", "follow_up")
RELATIONS = ("related", "repeat", "duplicate")
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class NoSuchTicket(NotFound):
    error_id = "no-such-ticket"


class StaleTicket(Conflict):
    """Someone else changed the ticket since it was read: reload it and decide again."""

    error_id = "stale-ticket"


class ActorRole(enum.StrEnum):
    """Who acts on a ticket (the timeline's actor_role)."""

    AGENT = "agent"  # 话务员: takes the call, accepts, dispatches
    UNIT = "unit"  # 承办单位: handles, replies, asks for extension/return/termination
    SUPERVISOR = "supervisor"  # 热线管理: reviews, supervises, settles disputes
    SYSTEM = "system"  # time-driven effects (lights, reminders, overdue)
    CALLER = "caller"


@dataclasses.dataclass(frozen=True, slots=True)
class TicketActor:
    """The account that applies an event (recorded with every timeline row it writes)."""

    name: str  # agent id, unit name, supervisor account, "system"
    role: ActorRole = ActorRole.AGENT

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidRequest("an actor needs a name")


SYSTEM = TicketActor("system", ActorRole.SYSTEM)


@dataclasses.dataclass(frozen=True, slots=True)
class NewTicket:
    """The fields of a ticket being created (what the agent confirmed of the speech draft)."""

    caller: str  # the caller's number
    kind: Kind
    content: str  # the matter, as the agent wrote it up (the lifecycle's summary)
    caller_name: str | None = None
    channel: str = "phone"
    transcript: str = ""  # what speech recognition heard
    place: str = ""
    emergency: bool = False
    provincial: bool = False
    lead_unit: str | None = None  # dispatch at once (required for an immediate emergency dispatch)
    assisting_units: tuple[str, ...] = ()
    consent_recording: bool = False
    consent_callback: bool = True  # may be called back (回访)
    consent_disclose: bool = False  # may the unit see who called (001 第十七条: no, unless agreed)
    call_id: CallId | None = None  # the intake call, linked with role "intake"
    answer: str | None = None  # answered at once (knowledge base): closed without dispatch


@dataclasses.dataclass(frozen=True, slots=True)
class TimelineRow:
    """One row of ticket_events: a lifecycle timeline entry and who recorded it."""

    seq: int
    at: datetime
    actor: str
    actor_role: str
    stage: str
    action: str
    from_state: str | None
    to_state: str
    reason: str
    data: tuple[tuple[str, str], ...]
    recorded_by: str

    def entry(self) -> TimelineEntry:
        return TimelineEntry(self.at, self.actor, Stage(self.stage), self.action, self.reason, self.data)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["at"] = self.at.isoformat()
        out["data"] = dict(self.data)
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class TicketCall:
    call_id: CallId
    role: str
    linked_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class TicketLink:
    """A relation between two tickets, seen from one of them (`other` is the other one)."""

    other: str
    relation: str
    reason: str
    created_at: datetime
    outgoing: bool  # True: this ticket named the other (e.g. this one repeats the other)


@dataclasses.dataclass(frozen=True, slots=True)
class StoredTicket:
    """A 工单 as stored: the lifecycle state (with its whole timeline) plus what only the store keeps."""

    ticket: Ticket
    policy: str
    status: TicketStatus
    version: int
    caller_name: str | None
    channel: str
    transcript: str
    place: str
    consent_recording: bool
    consent_callback: bool
    consent_disclose: bool
    legal_hold: bool
    due_at: datetime | None  # the clock that binds now: dispatch while accepted, else the reply
    yellow_at: datetime | None  # the yellow light comes on just after this instant
    red_at: datetime | None  # the red light and the 催办 reminder come just after this instant
    next_alarm_at: datetime | None  # when a Tick would change something (tickets_due)
    created_at: datetime
    updated_at: datetime
    # What the create/apply that returned this asked to be carried out (notify units, inform the
    # caller, schedule the callback, ...), in order. Empty on tickets read back.
    commands: tuple[Command, ...] = ()

    @property
    def number(self) -> str:
        return self.ticket.ticket_id

    def summary(self) -> TicketSummary:
        t = self.ticket
        return TicketSummary(
            t.ticket_id, t.caller, t.kind.value, self.status, t.state.value, t.summary, self.place,
            t.lead_unit, t.emergency, self.created_at,
        )  # fmt: skip


def phone_status(state: State, extensions: int, surveyed: bool) -> TicketStatus:
    """The lifecycle state as the few words a caller hears.

    - A request the hotline is reviewing (return, termination) is still being handled for the
      caller; an extension request too, until it is approved.
    - extended: an extension was approved (it still counts while another is asked for), or the
      unit committed a later date (续报).
    - survey: the unit replied and a survey (回访) call is linked to the ticket; replied before.
    """
    if state == State.ACCEPTED:
        return TicketStatus.ACCEPTED
    if state == State.DISPATCHED:
        return TicketStatus.DISPATCHED
    if state == State.FOLLOW_UP:
        return TicketStatus.EXTENDED
    if state in (State.HANDLING, State.EXTENSION_REQUESTED, State.RETURN_REQUESTED, State.TERMINATION_REQUESTED):
        return TicketStatus.EXTENDED if extensions > 0 else TicketStatus.HANDLING
    if state == State.REPLIED:
        return TicketStatus.SURVEY if surveyed else TicketStatus.REPLIED
    if state == State.CLOSED:
        return TicketStatus.CLOSED
    return TicketStatus.TERMINATED


def check_code(value: str, what: str) -> str:
    """A role, relation or channel: a short lower-case word."""
    if not _CODE.match(value):
        raise InvalidRequest(f"{what} {value!r} must be a short lower-case word (a-z, 0-9, _)")
    return value
