"""The 承办单位 (units) half of SqlTicketStore: the registry, the unit's desk (its tickets and
its actions on them) and the webhook outbox.

Rules of this module:
- A unit is known by the name tickets carry as lead or assisting unit. Its webhook secret is
  stored as given (it must be usable to sign) and never appears in repr, to_dict or logs.
- What a unit sees of a ticket is unit_view.py's (never who called). A unit sees the tickets
  it now leads or assists; any other ticket, existing or not, is NoSuchTicket (404), so a unit
  learns nothing about tickets that are not its own. On a ticket it only assists, every action
  but assist-reply is NotYourTicket (403); assist-reply on a ticket it leads is 403 as well.
- Outbox: ledger.py writes the notices of a ticket change (unit_view.outbox_rows) in the
  change's transaction. Rows of one unit are delivered in id order: only the oldest pending row
  of a unit can be claimed, so a notice that keeps failing holds back the later ones until it is
  delivered or given up (failed). Rows of a unit without a webhook (or disabled) wait.
- Claims: claim_outbox takes a row with a conditional UPDATE ... WHERE status = 'pending' AND
  (claimed_until IS NULL OR claimed_until < now). Of two processes only one gets rowcount 1: on
  SQLite writers are serialised (BEGIN IMMEDIATE), on PostgreSQL the second UPDATE waits for the
  first's row lock and re-checks the WHERE on the row it left (READ COMMITTED). A claim is a
  lease: a process that dies leaves the row claimable when the lease ends, and the same event id
  is delivered again (receivers dedupe on X-Hotline-Event-Id).
- Every attempt is a unit_deliveries row; finish_delivery writes it and the row's new state in
  one transaction.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import RowMapping, and_, func, or_, select, update

from hotline.core.errors import Conflict, DomainError, InvalidRequest, NotFound
from hotline.core.model import to_iso, utcnow
from hotline.tickets import schema
from hotline.tickets.codec import ticket_from_json
from hotline.tickets.mixin import StorePart
from hotline.tickets.model import (
    Acknowledge,
    AssistReply,
    CommitFollowUp,
    Event,
    FirstReport,
    Light,
    Progress,
    Reply,
    RequestExtension,
    RequestReturn,
    RequestTermination,
    State,
    TerminationGround,
)
from hotline.tickets.records import ActorRole, NoSuchTicket, StoredTicket, TicketActor
from hotline.tickets.unit_view import (
    DELIVERED,
    FAILED,
    PENDING,
    hidden_values,
    role_of,
    ticket_summary,
    timeline_view,
)

if TYPE_CHECKING:
    from hotline.tickets.ledger import TicketLedger

_U = schema.units
_O = schema.unit_outbox
_D = schema.unit_deliveries
_T = schema.tickets

MAX_LIST = 500

# action (the API's path segment) -> who may do it: the lead unit or an assisting unit.
UNIT_ACTIONS: dict[str, str] = {
    "acknowledge": "lead",  # 签收
    "first-report": "lead",  # 首报 (emergencies)
    "progress": "lead",  # 续报 / 阶段性进展
    "assist-reply": "assist",  # 协办单位回复
    "return": "lead",  # 回退
    "extension": "lead",  # 延期申请
    "follow-up": "lead",  # 承诺办结日期
    "terminate": "lead",  # 终止申请
    "reply": "lead",  # 反馈 (办理结果)
}


class NotYourTicket(DomainError):
    """The unit may see the ticket but not do this to it (an assisting unit, not the lead)."""

    error_id = "forbidden"
    status = 403


class NoSuchUnit(NotFound):
    error_id = "no-such-unit"


@dataclasses.dataclass(frozen=True, slots=True)
class Unit:
    name: str
    title: str
    webhook_url: str | None
    enabled: bool
    created_at: datetime
    secret: str | None = dataclasses.field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "webhook_url": self.webhook_url,
            "has_secret": bool(self.secret),
            "enabled": self.enabled,
            "created_at": to_iso(self.created_at),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxItem:
    """A claimed outbox row, with what delivering it needs."""

    id: int
    event_id: str
    unit: str
    ticket_number: str
    kind: str
    payload: str  # the JSON body, byte-for-byte the same on every attempt
    attempts: int  # attempts made before this one
    created_at: datetime
    webhook_url: str
    secret: str = dataclasses.field(repr=False)


def _text(fields: Mapping[str, Any], key: str, what: str) -> str:
    value = fields.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{key}：{what}不能为空")
    return value.strip()


def unit_event(action: str, unit: str, fields: Mapping[str, Any]) -> Event:
    """The lifecycle event of a unit's action; InvalidRequest for a bad or missing field."""
    known = {
        "acknowledge": set(),
        "first-report": {"text"},
        "progress": {"text"},
        "assist-reply": {"text"},
        "return": {"reason", "suggested_unit"},
        "extension": {"working_days", "reason"},
        "follow-up": {"until", "reason"},
        "terminate": {"ground", "reason"},
        "reply": {"text"},
    }
    if action not in known:
        raise NotFound(f"没有这个操作：{action}")
    unknown = sorted(set(fields) - known[action] - {"version"})
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(unknown)}")
    if action == "acknowledge":
        return Acknowledge(unit)
    if action == "first-report":
        return FirstReport(unit, _text(fields, "text", "初步处置情况"))
    if action == "progress":
        return Progress(unit, _text(fields, "text", "进展情况"))
    if action == "assist-reply":
        return AssistReply(unit, _text(fields, "text", "协办结果"))
    if action == "return":
        return RequestReturn(unit, _text(fields, "reason", "回退理由"), _text(fields, "suggested_unit", "建议承办单位"))
    if action == "extension":
        days = fields.get("working_days")
        if not isinstance(days, int) or isinstance(days, bool):
            raise InvalidRequest("working_days：延期工作日数须为整数")
        return RequestExtension(unit, days, _text(fields, "reason", "延期理由"))
    if action == "follow-up":
        try:
            until = date.fromisoformat(_text(fields, "until", "承诺办结日期"))
        except ValueError:
            raise InvalidRequest("until：承诺办结日期格式为 YYYY-MM-DD") from None
        return CommitFollowUp(unit, until, _text(fields, "reason", "续报理由"))
    if action == "terminate":
        try:
            ground = TerminationGround(_text(fields, "ground", "终止依据"))
        except ValueError:
            choices = ", ".join(g.value for g in TerminationGround)
            raise InvalidRequest(f"ground：终止依据须为 {choices} 之一") from None
        return RequestTermination(unit, ground, _text(fields, "reason", "终止理由"))
    return Reply(unit, _text(fields, "text", "办理结果"))


class UnitDesk(StorePart):
    """Mixed into SqlTicketStore, which provides the connections (`_read`, `_write`), the
    dialect's INSERT (`_insert`) and the ledger (get_ticket, timeline, apply)."""

    # -- registry ---------------------------------------------------------------------------

    def add_unit(self, name: str, title: str = "", webhook_url: str | None = None, secret: str | None = None) -> Unit:
        """Registers a unit; Conflict if the name is taken; InvalidRequest for a webhook that is
        not http(s) or has no secret."""
        name = name.strip()
        if not name or len(name) > schema.PARTY_LENGTH:
            raise InvalidRequest(f"a unit name has 1 to {schema.PARTY_LENGTH} characters")
        _check_webhook(webhook_url, secret)
        unit = Unit(name, title.strip() or name, webhook_url or None, True, utcnow(), secret or None)
        with self._write(f"adding unit {name}") as conn:
            if conn.execute(select(_U.c.name).where(_U.c.name == name)).first() is not None:
                raise Conflict(f"unit {name} already exists")
            conn.execute(
                _U.insert().values(
                    name=unit.name,
                    title=unit.title,
                    webhook_url=unit.webhook_url,
                    secret=unit.secret,
                    enabled=True,
                    created_at=unit.created_at,
                )
            )
        return unit

    def set_unit_webhook(self, name: str, webhook_url: str | None, secret: str | None) -> Unit:
        """Replaces (or with None removes) the unit's webhook and secret; NoSuchUnit if unknown."""
        _check_webhook(webhook_url, secret)
        with self._write(f"changing unit {name}") as conn:
            done = conn.execute(
                update(_U).where(_U.c.name == name).values(webhook_url=webhook_url or None, secret=secret or None)
            )
        if done.rowcount == 0:
            raise NoSuchUnit(f"no unit {name}")
        found = self.get_unit(name)
        assert found is not None
        return found

    def get_unit(self, name: str) -> Unit | None:
        with self._read("get_unit") as conn:
            row = conn.execute(select(_U).where(_U.c.name == name)).first()
        return None if row is None else _unit(row._mapping)

    def list_units(self) -> list[Unit]:
        with self._read("list_units") as conn:
            rows = conn.execute(select(_U).order_by(_U.c.name)).all()
        return [_unit(row._mapping) for row in rows]

    # -- the unit's desk --------------------------------------------------------------------

    def unit_tickets(
        self, unit: str, *, stage: str | None = None, light: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The tickets the unit leads or assists now, newest first, as the unit may see them."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidRequest(f"limit must be between 1 and {MAX_LIST}, got {limit}")
        if stage is not None and stage not in {s.value for s in State}:
            raise InvalidRequest(f"state must be one of {', '.join(s.value for s in State)}, got {stage!r}")
        if light is not None and light not in {li.value for li in Light}:
            raise InvalidRequest(f"light must be one of {', '.join(li.value for li in Light)}, got {light!r}")
        quoted = json.dumps(unit, ensure_ascii=False)
        stmt = select(_T.c.number, _T.c.caller, _T.c.caller_name, _T.c.place, _T.c.lifecycle).where(
            or_(_T.c.lead_unit == unit, _T.c.assisting_units.contains(quoted, autoescape=True))
        )
        if stage is not None:
            stmt = stmt.where(_T.c.stage == stage)
        if light is not None:
            stmt = stmt.where(_T.c.light == light)
        stmt = stmt.order_by(_T.c.created_at.desc(), _T.c.number.desc())
        out: list[dict[str, Any]] = []
        with self._read(f"tickets of unit {unit}") as conn:
            for row in conn.execute(stmt):
                ticket = ticket_from_json(row.lifecycle, ())
                if role_of(ticket, unit) is None:  # the LIKE matched a longer name
                    continue
                hidden = hidden_values(row.caller, row.caller_name, ticket.callers)
                out.append(ticket_summary(ticket, row.place, hidden, unit))
                if len(out) == limit:
                    break
        return out

    def unit_ticket(self, unit: str, number: str) -> dict[str, Any]:
        """One of the unit's tickets with its timeline; NoSuchTicket if it is not the unit's."""
        stored = self._unit_stored(unit, number)
        return self._unit_view(stored, unit)

    def unit_act(
        self,
        unit: str,
        username: str,
        number: str,
        action: str,
        fields: Mapping[str, Any],
        now: datetime,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """The unit's action on one of its tickets (UNIT_ACTIONS), recorded as by `username`;
        the ticket as the unit sees it afterwards."""
        if action not in UNIT_ACTIONS:
            raise NotFound(f"没有这个操作：{action}")
        stored = self._unit_stored(unit, number)
        role = role_of(stored.ticket, unit)
        if role != UNIT_ACTIONS[action]:
            who = "主办单位" if UNIT_ACTIONS[action] == "lead" else "协办单位"
            raise NotYourTicket(f"工单 {number}：只有{who}可以执行此操作（{unit} 是本工单的{_ROLE_LABEL[role]}）")
        event = unit_event(action, unit, fields)
        ledger = cast("TicketLedger", self)
        after = ledger.apply(
            number, event, TicketActor(username, ActorRole.UNIT), now, expected_version=expected_version
        )
        return self._unit_view(after, unit)

    def unit_notices(self, unit: str, limit: int = 100) -> list[dict[str, Any]]:
        """The notices sent (or to be sent) to the unit, newest first, with their delivery state."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidRequest(f"limit must be between 1 and {MAX_LIST}, got {limit}")
        stmt = select(_O).where(_O.c.unit == unit).order_by(_O.c.id.desc()).limit(limit)
        with self._read(f"notices of unit {unit}") as conn:
            rows = conn.execute(stmt).all()
        return [
            {
                "event_id": r.event_id,
                "status": r.status,
                "attempts": r.attempts,
                "delivered_at": to_iso(r.delivered_at),
                "notice": json.loads(r.payload),
            }
            for r in rows
        ]

    def _unit_stored(self, unit: str, number: str) -> StoredTicket:
        stored = cast("TicketLedger", self).get_ticket(number)
        if stored is None or role_of(stored.ticket, unit) is None:
            raise NoSuchTicket(f"没有编号为 {number} 的工单")
        return stored

    def _unit_view(self, stored: StoredTicket, unit: str) -> dict[str, Any]:
        t = stored.ticket
        hidden = hidden_values(t.caller, stored.caller_name, t.callers)
        view = ticket_summary(t, stored.place, hidden, unit)
        rows = cast("TicketLedger", self).timeline(t.ticket_id)
        view.update(
            version=stored.version,
            due_at=to_iso(stored.due_at),
            yellow_at=to_iso(stored.yellow_at),
            red_at=to_iso(stored.red_at),
            timeline=timeline_view(((r.seq, r.entry(), r.actor_role) for r in rows), hidden),
        )
        return view

    # -- the outbox -------------------------------------------------------------------------

    def claim_outbox(self, process: str, now: datetime, lease_s: float, limit: int = 20) -> list[OutboxItem]:
        """Claims for `process`, until now + lease_s, the oldest pending row of each unit that
        has an enabled webhook and whose row is due (see the module's rules); at most `limit`."""
        heads = select(func.min(_O.c.id)).where(_O.c.status == PENDING).group_by(_O.c.unit).scalar_subquery()
        free = or_(_O.c.claimed_until.is_(None), _O.c.claimed_until < now)
        stmt = (
            select(_O, _U.c.webhook_url, _U.c.secret)
            .join(_U, _U.c.name == _O.c.unit)
            .where(
                _O.c.id.in_(heads),
                _U.c.enabled.is_(True),
                _U.c.webhook_url.is_not(None),
                _U.c.secret.is_not(None),
                _O.c.next_attempt_at <= now,
                free,
            )
            .order_by(_O.c.id)
            .limit(limit)
        )
        until = now + timedelta(seconds=lease_s)
        claimed: list[OutboxItem] = []
        with self._write("claiming webhook notices") as conn:
            for row in conn.execute(stmt).all():
                got = conn.execute(
                    update(_O)
                    .where(and_(_O.c.id == row.id, _O.c.status == PENDING, free))
                    .values(claimed_by=process, claimed_until=until)
                )
                if got.rowcount == 1:
                    claimed.append(
                        OutboxItem(
                            id=row.id,
                            event_id=row.event_id,
                            unit=row.unit,
                            ticket_number=row.ticket_number,
                            kind=row.kind,
                            payload=row.payload,
                            attempts=row.attempts,
                            created_at=row.created_at,
                            webhook_url=row.webhook_url,
                            secret=row.secret,
                        )
                    )
        return claimed

    def finish_delivery(
        self,
        item_id: int,
        process: str,
        *,
        ok: bool,
        status_code: int | None,
        error: str,
        seconds: float,
        at: datetime,
        retry_at: datetime | None,
    ) -> str:
        """Records one attempt and the row's new state: delivered if ok, else pending again
        until retry_at, or failed without one. Returns the new status. A row whose claim this
        process lost meanwhile keeps the new claimer's state (the attempt is still logged)."""
        with self._write(f"recording delivery of notice {item_id}") as conn:
            row = conn.execute(select(_O.c.attempts, _O.c.status, _O.c.claimed_by).where(_O.c.id == item_id)).first()
            if row is None:
                raise NotFound(f"no outbox row {item_id}")
            attempt = row.attempts + 1
            conn.execute(
                _D.insert().values(
                    outbox_id=item_id,
                    attempt=attempt,
                    at=at,
                    process=process,
                    status_code=status_code,
                    ok=ok,
                    error=error[:2000],
                    seconds=seconds,
                )
            )
            if row.status != PENDING or row.claimed_by != process:
                return str(row.status)
            status = DELIVERED if ok else (PENDING if retry_at is not None else FAILED)
            conn.execute(
                update(_O)
                .where(_O.c.id == item_id)
                .values(
                    attempts=attempt,
                    status=status,
                    next_attempt_at=retry_at if retry_at is not None else at,
                    claimed_by=None,
                    claimed_until=None,
                    delivered_at=at if ok else None,
                    last_error=None if ok else error[:2000],
                )
            )
        return status

    def outbox(self, unit: str | None = None, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Outbox rows, oldest first (for operators and tests)."""
        stmt = select(_O).order_by(_O.c.id).limit(limit)
        if unit is not None:
            stmt = stmt.where(_O.c.unit == unit)
        if status is not None:
            stmt = stmt.where(_O.c.status == status)
        with self._read("reading the outbox") as conn:
            return [_outbox_row(r._mapping) for r in conn.execute(stmt).all()]

    def deliveries(self, event_id: str) -> list[dict[str, Any]]:
        """Every attempt to deliver one notice, oldest first."""
        stmt = (
            select(_D)
            .join(_O, _O.c.id == _D.c.outbox_id)
            .where(_O.c.event_id == event_id)
            .order_by(_D.c.attempt, _D.c.id)
        )
        with self._read(f"deliveries of {event_id}") as conn:
            rows = conn.execute(stmt).all()
        return [
            {
                "attempt": r.attempt,
                "at": to_iso(r.at),
                "process": r.process,
                "status_code": r.status_code,
                "ok": r.ok,
                "error": r.error,
                "seconds": r.seconds,
            }
            for r in rows
        ]


_ROLE_LABEL = {"lead": "主办单位", "assist": "协办单位", None: "无关单位"}


def _check_webhook(webhook_url: str | None, secret: str | None) -> None:
    if not webhook_url:
        return
    if not webhook_url.startswith(("http://", "https://")):
        raise InvalidRequest(f"a webhook is an http(s) URL, got {webhook_url!r}")
    if not secret or len(secret) < 16:
        raise InvalidRequest("a webhook needs a secret of at least 16 characters to sign its notices")


def _unit(row: RowMapping) -> Unit:
    return Unit(
        name=row["name"],
        title=row["title"],
        webhook_url=row["webhook_url"],
        enabled=bool(row["enabled"]),
        created_at=row["created_at"],
        secret=row["secret"],
    )


def _outbox_row(r: RowMapping) -> dict[str, Any]:
    return {
        "id": r["id"],
        "event_id": r["event_id"],
        "unit": r["unit"],
        "ticket_number": r["ticket_number"],
        "kind": r["kind"],
        "payload": json.loads(r["payload"]),
        "created_at": to_iso(r["created_at"]),
        "status": r["status"],
        "attempts": r["attempts"],
        "next_attempt_at": to_iso(r["next_attempt_at"]),
        "claimed_by": r["claimed_by"],
        "delivered_at": to_iso(r["delivered_at"]),
        "last_error": r["last_error"],
    }
