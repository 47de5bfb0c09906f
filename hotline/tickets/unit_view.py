"""What a 承办单位 (unit) may know of a ticket, and the notices the lifecycle sends it. Pure: no
database, no clock; units.py stores and serves what this module builds, ledger.py calls
outbox_rows in the transaction of every ticket change.

Rules of this module (001 第十七条: the caller's information is never shown to the party handling
or complained about):
- A unit's view of a ticket is built from an allow-list of fields: number, kind, content,
  place, urgency, the clocks, light, stage, units, and the timeline (who among the hotline's
  staff and the units did what, when, why). Never the caller's number or name, the transcript,
  the consents, the other callers of the same matter, the linked calls.
- Free text (content, place, timeline notes and data, notice messages) is scrubbed: the
  caller's number (also as bare digits), the caller's name, the numbers of other callers of the
  matter, and anything that looks like a mainland mobile number become "***".
- A notice (webhook payload) carries the same ticket summary as the API, made by the same
  function, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from hotline.core.model import to_iso
from hotline.tickets.model import (
    Command,
    Light,
    LightChanged,
    NotifyUnit,
    RaiseSupervision,
    SendReminder,
    Ticket,
    TimelineEntry,
)

HIDDEN = "***"
MOBILE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?!\d)")

# Outbox row kinds (also the payload's "type", prefixed "ticket.").
NOTICE, REMINDER, SUPERVISION, LIGHT, WITHDRAWN, CLOSED = (
    "notice", "reminder", "supervision", "light", "withdrawn", "closed",
)  # fmt: skip
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

_CLOSING_ACTIONS = ("ApproveTermination", "Close")


def hidden_values(caller: str, caller_name: str | None, callers: Iterable[str] = ()) -> tuple[str, ...]:
    """The strings a unit must never read: the callers' numbers (as written and as bare digits)
    and the caller's name."""
    out: set[str] = set()
    for number in (caller, *callers):
        number = number.strip()
        if len(number) >= 3:
            out.add(number)
        digits = re.sub(r"\D", "", number)
        if len(digits) >= 5:
            out.add(digits)
            if len(digits) > 11:
                out.add(digits[-11:])  # +86 13912345678
    if caller_name and len(caller_name.strip()) >= 2:
        out.add(caller_name.strip())
    return tuple(sorted(out, key=len, reverse=True))


def scrub(text: str, hidden: Sequence[str]) -> str:
    """The text with every hidden value and every mobile number replaced by ***."""
    for value in hidden:  # longest first, so that a number is not half-replaced by its suffix
        text = text.replace(value, HIDDEN)
    return MOBILE.sub(HIDDEN, text)


def role_of(ticket: Ticket, unit: str) -> str | None:
    """ "lead", "assist", or None if the ticket is not the unit's (now)."""
    if ticket.lead_unit == unit:
        return "lead"
    if unit in ticket.assisting_units:
        return "assist"
    return None


def ticket_summary(ticket: Ticket, place: str, hidden: Sequence[str], unit: str | None = None) -> dict[str, Any]:
    """The ticket as a unit may see it, without the timeline (lists and webhook payloads)."""
    t = ticket
    pending = t.pending_extension
    return {
        "number": t.ticket_id,
        "kind": t.kind.value,
        "kind_label": t.kind.label,
        "content": scrub(t.summary, hidden),
        "place": scrub(place, hidden),
        "emergency": t.emergency,
        "provincial": t.provincial,
        "stage": t.state.value,
        "stage_label": t.state.label,
        "light": t.light.value,
        "role": None if unit is None else role_of(t, unit),
        "lead_unit": t.lead_unit,
        "assisting_units": list(t.assisting_units),
        "accepted_at": to_iso(t.accepted_at),
        "dispatched_at": to_iso(t.dispatched_at),
        "deadline": to_iso(t.deadline),
        "first_report_due": to_iso(t.first_report_due),
        "return_due": to_iso(t.return_due),
        "extensions": t.extensions,
        "pending_extension": None
        if pending is None
        else {"working_days": pending.working_days, "reason": scrub(pending.reason, hidden)},
        "redo_count": t.redo_count,
        "supervision": [reason.value for reason in t.supervision],
        "replied_at": to_iso(t.replied_at),
        "closed_at": to_iso(t.closed_at),
    }


def timeline_view(rows: Iterable[tuple[int, TimelineEntry, str]], hidden: Sequence[str]) -> list[dict[str, Any]]:
    """(seq, entry, actor_role) as a unit may see them: notes and data scrubbed."""
    return [
        {
            "seq": seq,
            "at": to_iso(entry.at),
            "actor": entry.actor,
            "actor_role": actor_role,
            "stage": entry.stage.value,
            "stage_label": entry.stage.label,
            "action": entry.action,
            "note": scrub(entry.note, hidden),
            "data": {key: scrub(value, hidden) for key, value in entry.data},
        }
        for seq, entry, actor_role in rows
    ]


def outbox_rows(
    before: Ticket | None,
    after: Ticket,
    commands: Sequence[Command],
    *,
    place: str,
    caller_name: str | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """unit_outbox rows for what one ticket change tells units (see units.py's rules): each
    command addressed to a unit, 督办 and lights to the lead unit, closing to the lead unit, and
    the loss of the ticket to a unit it was taken from (回退 approved, reassigned)."""
    hidden = hidden_values(after.caller, caller_name, after.callers)
    rows: list[dict[str, Any]] = []

    def add(unit: str | None, kind: str, role: str, message: str) -> None:
        if not unit:
            return
        event_id = uuid.uuid4().hex
        payload = {
            "event_id": event_id,
            "type": f"ticket.{kind}",
            "unit": unit,
            "role": role,
            "message": scrub(message, hidden),
            "created_at": to_iso(now),
            "ticket": ticket_summary(after, place, hidden, unit),
        }
        rows.append(
            {
                "event_id": event_id,
                "unit": unit,
                "ticket_number": after.ticket_id,
                "kind": kind,
                "payload": json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
                "created_at": now,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
            }
        )

    lead = after.lead_unit
    for command in commands:
        if isinstance(command, NotifyUnit):
            add(command.unit, NOTICE, command.role, command.message)
        elif isinstance(command, SendReminder):
            add(command.unit, REMINDER, "lead", f"催办：{command.message}")
        elif isinstance(command, RaiseSupervision):
            add(lead, SUPERVISION, "lead", f"督办：{command.note or command.reason.label}")
        elif isinstance(command, LightChanged) and command.light != Light.NONE:
            add(lead, LIGHT, "lead", "黄灯：临近办理时限" if command.light == Light.YELLOW else "红灯：已超过办理时限")
    added = after.timeline[len(before.timeline) :] if before is not None else after.timeline
    for entry in added:
        if entry.action in _CLOSING_ACTIONS:
            add(lead, CLOSED, "lead", f"工单已{after.state.label}：{entry.note}")
    if before is not None:
        # The event's own entry says why (time-driven entries by "system" may come first).
        note = next((e.note for e in added if e.actor != "system"), added[-1].note if added else "")
        for unit in (before.lead_unit, *before.assisting_units):
            if unit and role_of(after, unit) is None:
                role = role_of(before, unit) or "lead"
                add(unit, WITHDRAWN, role, f"工单已不再由贵单位办理：{note}")
    return rows
