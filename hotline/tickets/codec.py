"""The lifecycle's Ticket as JSON (the `tickets.lifecycle` column) and its timeline entries as rows.

The store keeps the whole lifecycle state of a ticket, so that a ticket read back after a restart
is exactly the one the machine left: every field of model.Ticket except the timeline, which lives
in ticket_events, one row per entry. A field added to model.Ticket with a default reads back as
that default from older rows; a field without a default makes decoding fail loudly.
Only the standard library, hotline.core and model.py are used here.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from hotline.tickets.model import (
    ExtensionRequest,
    Kind,
    Light,
    Satisfaction,
    State,
    SupervisionReason,
    Ticket,
    TimelineEntry,
)

FORMAT = 1  # "v" in the JSON; bump when a field changes meaning

_TIMES = (
    "accepted_at",
    "dispatch_due",
    "dispatched_at",
    "deadline",
    "return_due",
    "first_report_due",
    "replied_at",
    "closed_at",
)
_TEXT_TUPLES = ("assisting_units", "callers", "fired")


def ticket_to_json(ticket: Ticket) -> str:
    """Every field but the timeline, as compact JSON (keys sorted, Chinese kept readable)."""
    out: dict[str, Any] = {"v": FORMAT}
    for field in dataclasses.fields(ticket):
        name = field.name
        if name == "timeline":
            continue
        value = getattr(ticket, name)
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat()
        elif isinstance(value, ExtensionRequest):
            value = {"working_days": value.working_days, "reason": value.reason}
        elif isinstance(value, Satisfaction):
            value = int(value)
        elif isinstance(value, tuple):
            value = [str(item) for item in value]
        elif isinstance(value, Kind | State | Light):
            value = value.value
        out[name] = value
    return json.dumps(out, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def ticket_from_json(text: str, timeline: tuple[TimelineEntry, ...]) -> Ticket:
    """The Ticket that ticket_to_json wrote, with its timeline put back."""
    data = json.loads(text)
    version = data.pop("v", None)
    if version != FORMAT:
        raise ValueError(f"ticket lifecycle JSON of format {version!r}; this hotline reads format {FORMAT}")
    known = {field.name for field in dataclasses.fields(Ticket)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"ticket lifecycle JSON has fields this hotline does not know: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, value in data.items():
        if value is None:
            values[name] = None
        elif name in _TIMES:
            values[name] = _time(value)
        elif name in _TEXT_TUPLES:
            values[name] = tuple(str(item) for item in value)
        elif name == "supervision":
            values[name] = tuple(SupervisionReason(item) for item in value)
        elif name == "kind":
            values[name] = Kind(value)
        elif name == "state":
            values[name] = State(value)
        elif name == "light":
            values[name] = Light(value)
        elif name in ("process_rating", "result_rating"):
            values[name] = Satisfaction(value)
        elif name == "pending_extension":
            values[name] = ExtensionRequest(int(value["working_days"]), str(value["reason"]))
        else:
            values[name] = value
    return Ticket(timeline=timeline, **values)


def data_to_json(pairs: tuple[tuple[str, str], ...]) -> str:
    """A timeline entry's details as a JSON list of [key, value] pairs (order kept)."""
    return json.dumps([[key, value] for key, value in pairs], ensure_ascii=False, separators=(",", ":"))


def data_from_json(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(key), str(value)) for key, value in json.loads(text))


def _time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"naive time {text!r} in ticket lifecycle JSON")
    return parsed.astimezone(UTC)
