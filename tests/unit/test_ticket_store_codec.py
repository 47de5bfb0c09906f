"""The ticket store's codec (hotline/tickets/codec.py) and phone status (records.phone_status): no database."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime
from pathlib import Path

import pytest

from hotline.core.model import TicketStatus
from hotline.tickets import model as m
from hotline.tickets.codec import data_from_json, data_to_json, ticket_from_json, ticket_to_json
from hotline.tickets.lifecycle import TicketMachine
from hotline.tickets.model import Kind, Satisfaction, State
from hotline.tickets.policy import load_policies
from hotline.tickets.records import TicketActor, TimelineRow, phone_status
from hotline.tickets.workdays import SHANGHAI, WorkCalendar

ZIBO = load_policies(Path(__file__).resolve().parents[2] / "config" / "policy")["zibo"]
LEAD, HELPER = "区住建局", "区城管局"


def sh(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def machine() -> TicketMachine:
    opened, _ = TicketMachine.open(
        ZIBO, WorkCalendar(), ticket_id="25093000001", kind=Kind.COMPLAINT, caller="13800138000",
        summary="噪音扰民", now=sh("2025-09-30 10:00"), by="agent-1",
    )  # fmt: skip
    return opened


def states() -> list[m.Ticket]:
    """Tickets with as many fields set as the lifecycle sets: units, clocks, extension, ratings, 督办."""
    t = machine()
    seen = [t.ticket]
    steps: list[tuple[m.Event, str]] = [
        (m.Dispatch("热线", LEAD, (HELPER,)), "2025-09-30 11:00"),
        (m.Acknowledge(LEAD), "2025-10-09 09:00"),
        (m.RequestExtension(LEAD, 3, "需协调"), "2025-10-10 09:00"),
        (m.Supervise("热线", "群众关注"), "2025-10-10 09:30"),
        (m.ApproveExtension("热线"), "2025-10-10 10:00"),
        (m.Tick(), "2025-10-20 09:00"),  # yellow, overdue, red: fired alarms and supervision
        (m.Reply(LEAD, "已处理"), "2025-10-21 09:00"),
        (m.Callback("回访", Satisfaction.FAIRLY_SATISFIED, Satisfaction.UNSATISFIED, True), "2025-10-21 10:00"),
        (m.CommitFollowUp(LEAD, date(2025, 11, 28), "等待检测"), "2025-10-22 09:00"),
        (m.SameMatter("agent-2", "13900000000"), "2025-10-22 10:00"),
    ]  # fmt: skip
    for event, at in steps:
        t.handle(event, sh(at))
        seen.append(t.ticket)
    return seen


@pytest.mark.parametrize("index", range(11))
def test_every_lifecycle_state_round_trips(index: int) -> None:
    ticket = states()[index]
    text = ticket_to_json(ticket)
    assert "timeline" not in json.loads(text)
    assert ticket_from_json(text, ticket.timeline) == ticket


def test_the_path_sets_the_rich_fields() -> None:
    last = states()[-1]
    assert last.assisting_units == (HELPER,) and states()[5].extensions == 1 and last.fired
    assert last.supervision and last.process_rating == Satisfaction.FAIRLY_SATISFIED and last.redo_count == 1
    assert last.callers == ("13800138000", "13900000000")
    pending = states()[3]
    assert pending.pending_extension == m.ExtensionRequest(3, "需协调")


def test_unknown_format_or_fields_fail_loudly() -> None:
    data = json.loads(ticket_to_json(machine().ticket))
    with pytest.raises(ValueError, match="format"):
        ticket_from_json(json.dumps({**data, "v": 99}), ())
    with pytest.raises(ValueError, match="does not know"):
        ticket_from_json(json.dumps({**data, "colour": "red"}), ())


def test_timeline_data_keeps_its_order() -> None:
    pairs = (("lead", LEAD), ("assisting", ""), ("deadline", "2025-10-14T15:59:59.999999+00:00"))
    assert data_from_json(data_to_json(pairs)) == pairs


def test_a_timeline_row_gives_back_its_entry() -> None:
    entry = machine().ticket.timeline[0]
    row = TimelineRow(1, entry.at, entry.actor, "agent", entry.stage.value, entry.action, None, "accepted",
                      entry.note, entry.data, "agent-1")  # fmt: skip
    assert row.entry() == entry
    assert row.to_dict()["data"] == dict(entry.data)


@pytest.mark.parametrize(
    ("state", "extensions", "surveyed", "status"),
    [
        (State.ACCEPTED, 0, False, "accepted"),
        (State.DISPATCHED, 0, False, "dispatched"),
        (State.HANDLING, 0, False, "handling"),
        (State.HANDLING, 1, False, "extended"),
        (State.EXTENSION_REQUESTED, 0, False, "handling"),
        (State.EXTENSION_REQUESTED, 1, False, "extended"),
        (State.RETURN_REQUESTED, 0, False, "handling"),
        (State.TERMINATION_REQUESTED, 0, False, "handling"),
        (State.FOLLOW_UP, 0, False, "extended"),
        (State.REPLIED, 0, False, "replied"),
        (State.REPLIED, 0, True, "survey"),
        (State.CLOSED, 0, False, "closed"),
        (State.TERMINATED, 0, False, "terminated"),
    ],
)
def test_phone_status_maps_every_state(state: State, extensions: int, surveyed: bool, status: str) -> None:
    assert phone_status(state, extensions, surveyed) == TicketStatus(status)


def test_phone_statuses_are_exactly_the_ivr_prompt_names() -> None:
    names = {s.value for s in TicketStatus}
    assert names == {"accepted", "dispatched", "handling", "extended", "replied", "survey", "closed", "terminated"}
    assert {phone_status(s, e, v) for s in State for e in (0, 1) for v in (False, True)} == set(TicketStatus)


def test_an_actor_needs_a_name() -> None:
    with pytest.raises(Exception, match="name"):
        TicketActor(" ")
    assert dataclasses.is_dataclass(TicketActor("a"))
