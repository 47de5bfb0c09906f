"""The 工单 half of SqlTicketStore: tickets, their timeline, call and ticket links.

Rules of this module:
- A ticket's lifecycle state is the sans-IO machine's (lifecycle.TicketMachine), stored whole as
  JSON (codec.py) next to copies of what queries need (stage, light, clocks). Every change runs
  the machine with the ticket's city policy and the working-day calendar, then writes the new
  state and the new timeline rows in the same transaction.
- Optimistic concurrency: every change bumps `version` with UPDATE ... WHERE version = the one
  read. Of two concurrent applies only one can win; the other raises StaleTicket (a Conflict),
  or IllegalTransition if it only ran after the first had committed (SQLite serialises writers).
- The timeline (ticket_events) is append-only: rows are inserted with the next seq and never
  updated or deleted; no method here does either, and the migration's triggers refuse both.
- Numbers are yyMMdd (the Asia/Shanghai day the ticket is accepted) + a 5-digit daily sequence
  (6 digits past 99,999 a day), digits only. The sequence is a per-day counter row bumped by
  INSERT ... ON CONFLICT DO UPDATE ... RETURNING in the creating transaction: no two tickets
  get one number on either backend, and a failed creation gives its number back.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Insert, RowMapping, exists, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hotline.core.errors import ConfigError, InvalidRequest
from hotline.core.model import CallId, TicketStatus, TicketSummary, utcnow
from hotline.tickets import schema
from hotline.tickets.codec import data_from_json, data_to_json, ticket_from_json, ticket_to_json
from hotline.tickets.lifecycle import TicketMachine, red_light_at, yellow_light_at
from hotline.tickets.mixin import StorePart
from hotline.tickets.model import (
    AnswerDirectly,
    Command,
    Event,
    State,
    Ticket,
    TicketPolicy,
    TimelineEntry,
    WorkingCalendar,
)
from hotline.tickets.records import (
    RELATIONS,
    NewTicket,
    NoSuchTicket,
    StaleTicket,
    StoredTicket,
    TicketActor,
    TicketCall,
    TicketLink,
    TimelineRow,
    check_code,
    phone_status,
)
from hotline.tickets.surveys import open_round as open_survey_round
from hotline.tickets.unit_view import outbox_rows
from hotline.tickets.workdays import SHANGHAI

# The states in which the unit owes a reply, so that the yellow and red lights apply
# (lifecycle._UNIT_OWES; the lights are the lifecycle's, the store only copies their instants).
_LIGHTS_APPLY = (State.DISPATCHED, State.HANDLING, State.EXTENSION_REQUESTED, State.FOLLOW_UP)

_T = schema.tickets
_E = schema.ticket_events
_C = schema.ticket_calls
_L = schema.ticket_links


class TicketLedger(StorePart):
    """Mixed into SqlTicketStore, which provides the connections (`_read`, `_write`), the
    dialect's INSERT (`_insert`), the city policies and the calendar."""

    _policies: dict[str, TicketPolicy]
    _calendar: WorkingCalendar | None

    # -- policies ---------------------------------------------------------------------------

    def add_policy(self, policy: TicketPolicy) -> None:
        """Makes a city policy known by name, for the tickets created under it."""
        self._policies[policy.name] = policy

    def _policy(self, name: str) -> TicketPolicy:
        try:
            return self._policies[name]
        except KeyError:
            known = ", ".join(sorted(self._policies)) or "none"
            raise ConfigError(
                f"ticket store: tickets use policy {name!r}, which it was not given (has: {known})"
            ) from None

    def _work_calendar(self) -> WorkingCalendar:
        if self._calendar is None:
            from hotline.tickets.workdays import WorkCalendar

            self._calendar = WorkCalendar()
        return self._calendar

    # -- creating and changing tickets ------------------------------------------------------

    def create_ticket(self, new: NewTicket, actor: TicketActor, now: datetime, policy: TicketPolicy) -> StoredTicket:
        """受理: a new ticket with the next number of its day, opened by the lifecycle.

        With `new.answer` the ticket is answered at once and closed without dispatch, if the
        policy allows it for its kind (else InvalidRequest and nothing is stored). With
        `new.lead_unit` it is dispatched at once. `new.call_id` is linked as the intake call.
        """
        _check_aware(now)
        caller, content = new.caller.strip(), new.content.strip()
        if not caller:
            raise InvalidRequest("a ticket needs the caller's number")
        if not content:
            raise InvalidRequest("a ticket needs its content (诉求内容)")
        check_code(new.channel, "channel")
        self.add_policy(policy)
        calendar = self._work_calendar()
        with self._write(f"creating a ticket for {caller}") as conn:
            number = self._next_number(conn, now)
            machine, commands = TicketMachine.open(
                policy,
                calendar,
                ticket_id=number,
                kind=new.kind,
                caller=caller,
                summary=content,
                now=now,
                by=actor.name,
                emergency=new.emergency,
                provincial=new.provincial,
                lead_unit=new.lead_unit,
                assisting_units=new.assisting_units,
            )
            rows = _event_rows(number, machine.ticket.timeline, 0, None, machine.ticket.state, actor)
            if new.answer is not None:
                opened = machine.ticket
                commands += machine.handle(AnswerDirectly(actor.name, new.answer), now)
                added = machine.ticket.timeline[len(opened.timeline) :]
                rows += _event_rows(number, added, len(opened.timeline), opened.state, machine.ticket.state, actor)
            conn.execute(
                _T.insert().values(
                    number=number,
                    caller=caller,
                    caller_name=new.caller_name,
                    channel=new.channel,
                    consent_recording=new.consent_recording,
                    consent_callback=new.consent_callback,
                    consent_disclose=new.consent_disclose,
                    kind=new.kind.value,
                    content=content,
                    transcript=new.transcript,
                    place=new.place.strip(),
                    emergency=new.emergency,
                    provincial=new.provincial,
                    policy=policy.name,
                    legal_hold=False,
                    version=1,
                    created_at=now,
                    updated_at=utcnow(),
                    **self._state_columns(machine),
                )
            )
            conn.execute(_E.insert(), rows)
            _queue_notices(conn, None, machine.ticket, commands, new.place.strip(), new.caller_name, now)
            if new.call_id is not None:
                conn.execute(
                    _C.insert().values(ticket_number=number, call_id=new.call_id, role="intake", linked_at=now)
                )
            stored = self._load(conn, number)
        return dataclasses.replace(stored, commands=tuple(commands))

    def apply(
        self, number: str, event: Event, actor: TicketActor, now: datetime, *, expected_version: int | None = None
    ) -> StoredTicket:
        """Runs one lifecycle event on the ticket and stores the result, in one transaction.

        `expected_version`: the version the actor saw (a desk showing the ticket); StaleTicket if
        it has changed since. Lifecycle errors (IllegalTransition, InvalidRequest) leave the
        ticket exactly as it was. The returned ticket carries the commands to carry out.
        """
        calendar = self._work_calendar()
        with self._write(f"ticket {number}: {type(event).__name__}") as conn:
            stored = self._load(conn, number)
            if expected_version is not None and stored.version != expected_version:
                raise StaleTicket(
                    f"工单 {number} 已被他人更新（版本 {stored.version}，您看到的是 {expected_version}），请刷新后重试"
                )
            machine = TicketMachine(stored.ticket, self._policy(stored.policy), calendar)
            before = stored.ticket
            commands = machine.handle(event, now)
            after = machine.ticket
            if after == before:  # e.g. a Tick with nothing due: no new version
                return dataclasses.replace(stored, commands=tuple(commands))
            changed = conn.execute(
                update(_T)
                .where(_T.c.number == number, _T.c.version == stored.version)
                .values(version=stored.version + 1, updated_at=utcnow(), **self._state_columns(machine))
            )
            if changed.rowcount != 1:
                raise StaleTicket(f"工单 {number} 刚被他人更新（版本 {stored.version} 已过时），请刷新后重试")
            added = after.timeline[len(before.timeline) :]
            if added:
                conn.execute(
                    _E.insert(), _event_rows(number, added, len(before.timeline), before.state, after.state, actor)
                )
            open_survey_round(conn, number, commands, now)
            _queue_notices(conn, before, after, commands, stored.place, stored.caller_name, now)
            loaded = self._load(conn, number)
        return dataclasses.replace(loaded, commands=tuple(commands))

    # -- reading ----------------------------------------------------------------------------

    def get_ticket(self, number: str) -> StoredTicket | None:
        with self._read(f"reading ticket {number}") as conn:
            try:
                return self._load(conn, number)
            except NoSuchTicket:
                return None

    def ticket_status(self, number: str) -> TicketStatus | None:
        """The short status a caller hears (TicketStatus); None for an unknown number."""
        with self._read(f"ticket {number} status") as conn:
            row = conn.execute(select(_T.c.stage, _T.c.lifecycle).where(_T.c.number == number)).first()
            if row is None:
                return None
            return self._status(conn, number, row.stage, row.lifecycle)

    def timeline(self, number: str) -> list[TimelineRow]:
        """The ticket's timeline rows, oldest first; NoSuchTicket for an unknown number."""
        with self._read(f"ticket {number} timeline") as conn:
            rows = _timeline(conn, number)
        if not rows:
            raise NoSuchTicket(f"没有编号为 {number} 的工单")
        return rows

    def tickets_for_caller(self, caller: str, since: datetime) -> list[TicketSummary]:
        """The caller's tickets created at or after `since`, newest first (repeat detection)."""
        _check_aware(since)
        stmt = (
            select(_T)
            .where(_T.c.caller == caller.strip(), _T.c.created_at >= since)
            .order_by(_T.c.created_at.desc(), _T.c.number.desc())
        )
        with self._read(f"tickets of caller {caller}") as conn:
            rows = conn.execute(stmt).all()
            return [self._summary(conn, row._mapping) for row in rows]

    def recent_tickets(self, limit: int = 100) -> list[TicketSummary]:
        """The `limit` newest tickets, newest first."""
        if limit < 0:
            raise InvalidRequest(f"limit must not be negative (got {limit})")
        stmt = select(_T).order_by(_T.c.created_at.desc(), _T.c.number.desc()).limit(limit)
        with self._read("recent tickets") as conn:
            return [self._summary(conn, row._mapping) for row in conn.execute(stmt).all()]

    def tickets_due(self, now: datetime) -> list[str]:
        """Numbers of the tickets for which a Tick at `now` would change something (lights,
        reminders, overdue), earliest first: apply Tick() to each with the system actor."""
        _check_aware(now)
        stmt = select(_T.c.number).where(_T.c.next_alarm_at <= now).order_by(_T.c.next_alarm_at, _T.c.number)
        with self._read("tickets due") as conn:
            return [str(n) for n in conn.execute(stmt).scalars()]

    # -- links ------------------------------------------------------------------------------

    def link_call(self, number: str, call_id: CallId, role: str, now: datetime | None = None) -> None:
        """Links a call to the ticket with a role (intake, callback, survey, ...). Linking the same
        call again changes its role. NoSuchTicket for an unknown number; Conflict if the call is
        already another ticket's intake (one intake ticket per call)."""
        check_code(role, "call role")
        at = now or utcnow()
        _check_aware(at)
        stmt = self._insert(_C).values(ticket_number=number, call_id=call_id, role=role, linked_at=at)
        stmt = _upsert(stmt, ["ticket_number", "call_id"], {"role": role, "linked_at": at})
        with self._write(f"linking call {call_id} to ticket {number}") as conn:
            _require(conn, number)
            conn.execute(stmt)

    def ticket_calls(self, number: str) -> list[TicketCall]:
        """The calls linked to the ticket, in the order they were linked."""
        stmt = select(_C).where(_C.c.ticket_number == number).order_by(_C.c.linked_at, _C.c.call_id)
        with self._read(f"calls of ticket {number}") as conn:
            rows = conn.execute(stmt).all()
        return [TicketCall(CallId(r.call_id), r.role, r.linked_at) for r in rows]

    def link_tickets(
        self, number: str, other: str, reason: str, relation: str = "related", now: datetime | None = None
    ) -> None:
        """Records that `number` is related to / repeats / duplicates `other` (idempotent)."""
        if relation not in RELATIONS:
            raise InvalidRequest(f"relation {relation!r} is not one of {', '.join(RELATIONS)}")
        if number == other:
            raise InvalidRequest(f"工单 {number} cannot be linked to itself")
        if not reason.strip():
            raise InvalidRequest("linking tickets needs a reason")
        at = now or utcnow()
        _check_aware(at)
        values = dict(ticket_number=number, other_number=other, relation=relation, reason=reason.strip(), created_at=at)
        stmt = self._insert(_L).values(values)
        assert isinstance(stmt, postgresql.Insert | sqlite.Insert)
        with self._write(f"linking ticket {number} to {other}") as conn:
            _require(conn, number)
            _require(conn, other)
            conn.execute(stmt.on_conflict_do_nothing())

    def linked_tickets(self, number: str) -> list[TicketLink]:
        """Both directions: the tickets this one names and those that name it, oldest link first."""
        stmt = (
            select(_L).where(or_(_L.c.ticket_number == number, _L.c.other_number == number)).order_by(_L.c.created_at)
        )
        with self._read(f"links of ticket {number}") as conn:
            rows = conn.execute(stmt).all()
        return [
            TicketLink(
                r.other_number if r.ticket_number == number else r.ticket_number,
                r.relation,
                r.reason,
                r.created_at,
                outgoing=r.ticket_number == number,
            )
            for r in rows
        ]

    # -- internals --------------------------------------------------------------------------

    def _next_number(self, conn: Connection, now: datetime) -> str:
        day = now.astimezone(SHANGHAI).strftime("%y%m%d")
        counters = schema.ticket_counters
        stmt = _upsert(self._insert(counters).values(day=day, last=1), ["day"], {"last": counters.c.last + 1})
        sequence = int(conn.execute(stmt.returning(counters.c.last)).scalar_one())
        return f"{day}{sequence:05d}"

    def _state_columns(self, machine: TicketMachine) -> dict[str, Any]:
        t = machine.ticket
        due = yellow = red = None
        if t.state == State.ACCEPTED:
            due = t.dispatch_due
        elif t.state in _LIGHTS_APPLY and t.deadline is not None:
            due = t.deadline
            yellow = yellow_light_at(machine.calendar, machine.rules, t.deadline)
            red = red_light_at(machine.calendar, machine.rules, t.deadline)
        elif t.state not in (State.CLOSED, State.TERMINATED):
            due = t.deadline
        return {
            "stage": t.state.value,
            "light": t.light.value,
            "lead_unit": t.lead_unit,
            "assisting_units": json.dumps(list(t.assisting_units), ensure_ascii=False),
            "due_at": due,
            "yellow_at": yellow,
            "red_at": red,
            "next_alarm_at": machine.next_deadline(),
            "lifecycle": ticket_to_json(t),
        }

    def _load(self, conn: Connection, number: str) -> StoredTicket:
        row = conn.execute(select(_T).where(_T.c.number == number)).first()
        if row is None:
            raise NoSuchTicket(f"没有编号为 {number} 的工单")
        r = row._mapping
        timeline = tuple(entry.entry() for entry in _timeline(conn, number))
        ticket = ticket_from_json(r["lifecycle"], timeline)
        return StoredTicket(
            ticket=ticket,
            policy=r["policy"],
            status=self._status(conn, number, r["stage"], r["lifecycle"]),
            version=r["version"],
            caller_name=r["caller_name"],
            channel=r["channel"],
            transcript=r["transcript"],
            place=r["place"],
            consent_recording=r["consent_recording"],
            consent_callback=r["consent_callback"],
            consent_disclose=r["consent_disclose"],
            legal_hold=r["legal_hold"],
            due_at=r["due_at"],
            yellow_at=r["yellow_at"],
            red_at=r["red_at"],
            next_alarm_at=r["next_alarm_at"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )

    def _status(self, conn: Connection, number: str, stage: str, lifecycle: str) -> TicketStatus:
        state = State(stage)
        data = json.loads(lifecycle)
        surveyed = False
        if state == State.REPLIED and data.get("replied_at"):
            replied_at = datetime.fromisoformat(data["replied_at"])
            survey = exists().where(_C.c.ticket_number == number, _C.c.role == "survey", _C.c.linked_at >= replied_at)
            surveyed = bool(conn.execute(select(survey)).scalar())
        return phone_status(state, int(data.get("extensions", 0)), surveyed)

    def _summary(self, conn: Connection, r: RowMapping) -> TicketSummary:
        return TicketSummary(
            number=r["number"],
            caller=r["caller"],
            kind=r["kind"],
            status=self._status(conn, r["number"], r["stage"], r["lifecycle"]),
            stage=r["stage"],
            content=r["content"],
            place=r["place"],
            lead_unit=r["lead_unit"],
            emergency=r["emergency"],
            created_at=r["created_at"],
        )


def _timeline(conn: Connection, number: str) -> list[TimelineRow]:
    rows = conn.execute(select(_E).where(_E.c.ticket_number == number).order_by(_E.c.seq)).all()
    return [
        TimelineRow(
            seq=r.seq,
            at=r.at,
            actor=r.actor,
            actor_role=r.actor_role,
            stage=r.stage,
            action=r.action,
            from_state=r.from_state,
            to_state=r.to_state,
            reason=r.reason,
            data=data_from_json(r.data),
            recorded_by=r.recorded_by,
        )
        for r in rows
    ]


def _event_rows(
    number: str,
    entries: tuple[TimelineEntry, ...],
    already: int,
    from_state: State | None,
    to_state: State,
    actor: TicketActor,
) -> list[dict[str, Any]]:
    """ticket_events rows of the entries one step added; seq continues after `already` rows."""
    return [
        {
            "ticket_number": number,
            "seq": already + i,
            "at": entry.at,
            "actor": entry.actor,
            "actor_role": "system" if entry.actor == "system" else actor.role.value,
            "stage": entry.stage.value,
            "action": entry.action,
            "from_state": None if from_state is None else from_state.value,
            "to_state": to_state.value,
            "reason": entry.note,
            "data": data_to_json(entry.data),
            "recorded_by": actor.name,
        }
        for i, entry in enumerate(entries, start=1)
    ]


def _queue_notices(
    conn: Connection,
    before: Ticket | None,
    after: Ticket,
    commands: list[Command],
    place: str,
    caller_name: str | None,
    now: datetime,
) -> None:
    """The notices this change sends to units (units.py), written in its transaction."""
    rows = outbox_rows(before, after, commands, place=place, caller_name=caller_name, now=now)
    if rows:
        conn.execute(schema.unit_outbox.insert(), rows)


def _require(conn: Connection, number: str) -> None:
    if conn.execute(select(_T.c.number).where(_T.c.number == number)).first() is None:
        raise NoSuchTicket(f"没有编号为 {number} 的工单")


def _upsert(stmt: Insert, keys: list[str], changes: dict[str, Any]) -> Insert:
    assert isinstance(stmt, postgresql.Insert | sqlite.Insert)
    return stmt.on_conflict_do_update(index_elements=keys, set_=changes)


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidRequest(f"naive datetime {now.isoformat()}: the ticket store keeps timezone-aware times")
