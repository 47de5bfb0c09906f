"""The hotline desk's side of 工单, as the agent desktop API uses it: the wrap-up of a call into a
ticket (with its repeat/duplicate links), ticket views and lists, and the hotline's lifecycle
actions by name. Plain data in, JSON-ready dicts out, so that the API needs no ticket types.

Rules of this module:
- One intake ticket per call: a second wrap-up of the same call returns the ticket made by the
  first (`created: false`), whatever its body says. The check and the creation run under one lock
  per store, so two submits racing in one process make one ticket; across processes a unique
  index (ticket_calls' intake row per call, migration 0010) refuses the second ticket whole, and
  the submit that lost gets the first one.
- The wrap-up creates the ticket, then links it to the candidates on the same matter and tells
  one earlier ticket (repeats.py). A link or SameMatter that fails after the ticket exists is
  logged, never undoes the ticket.
- Actions map their fields explicitly to lifecycle events (ACTIONS); anything else is
  InvalidRequest. They are the hotline's (supervisors'), recorded with ActorRole.SUPERVISOR.
- "owner" of a ticket: the agent of its intake call's record, else the agent who opened it. The
  API shows an agent the unmasked caller of the tickets he owns only.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select

from hotline.core.errors import ConfigError, Conflict, InvalidRequest
from hotline.core.model import CallId, CallRecord
from hotline.tickets import schema
from hotline.tickets.lifecycle import IllegalTransition
from hotline.tickets.model import (
    ApproveExtension,
    ApproveReturn,
    ApproveTermination,
    Callback,
    Dispatch,
    Event,
    Kind,
    ReassignUnits,
    RefuseExtension,
    RefuseReturn,
    RefuseTermination,
    RejectReply,
    SameMatter,
    Satisfaction,
    State,
    Supervise,
    TicketPolicy,
)
from hotline.tickets.records import ActorRole, NewTicket, NoSuchTicket, StoredTicket, TicketActor
from hotline.tickets.repeats import Matter, RepeatFinder, Windows, same_matter_target, summarise
from hotline.tickets.show import ticket_view

logger = logging.getLogger(__name__)

_T = schema.tickets
_E = schema.ticket_events
_C = schema.ticket_calls
_K = schema.calls

# Coarse stages for the list filter `stage`: the 12345 stages a lifecycle state belongs to.
STAGES: dict[str, tuple[State, ...]] = {
    "accept": (State.ACCEPTED,),
    "dispatch": (State.DISPATCHED,),
    "handle": (
        State.HANDLING,
        State.EXTENSION_REQUESTED,
        State.RETURN_REQUESTED,
        State.FOLLOW_UP,
        State.TERMINATION_REQUESTED,
    ),
    "reply": (State.REPLIED,),
    "close": (State.CLOSED,),
    "terminate": (State.TERMINATED,),
}
LIST_MAX = 1000


def _units(fields: Mapping[str, Any], name: str) -> tuple[str, ...]:
    return tuple(fields.get(name) or ())


def _rating(value: Any, name: str) -> Satisfaction:
    try:
        return Satisfaction(int(value))
    except (TypeError, ValueError):
        raise InvalidRequest(f"{name} must be 1 (满意), 2 (基本满意) or 3 (不满意), got {value!r}") from None


# action -> (required fields, optional fields, builder). The API checks the JSON types.
ACTIONS: dict[str, tuple[frozenset[str], frozenset[str], Callable[[str, Mapping[str, Any]], Event]]] = {
    "dispatch": (
        frozenset({"lead_unit"}),
        frozenset({"assisting_units"}),
        lambda by, f: Dispatch(by, f["lead_unit"], _units(f, "assisting_units")),
    ),
    "approve_return": (
        frozenset({"reason"}),
        frozenset({"lead_unit", "assisting_units"}),
        lambda by, f: ApproveReturn(by, f["reason"], f.get("lead_unit"), _units(f, "assisting_units")),
    ),
    "refuse_return": (frozenset({"reason"}), frozenset(), lambda by, f: RefuseReturn(by, f["reason"])),
    "approve_extension": (frozenset(), frozenset({"note"}), lambda by, f: ApproveExtension(by, f.get("note", ""))),
    "refuse_extension": (frozenset({"reason"}), frozenset(), lambda by, f: RefuseExtension(by, f["reason"])),
    "reject_reply": (frozenset({"reason"}), frozenset(), lambda by, f: RejectReply(by, f["reason"])),
    "approve_termination": (frozenset({"reason"}), frozenset(), lambda by, f: ApproveTermination(by, f["reason"])),
    "refuse_termination": (frozenset({"reason"}), frozenset(), lambda by, f: RefuseTermination(by, f["reason"])),
    "supervise": (frozenset({"reason"}), frozenset(), lambda by, f: Supervise(by, f["reason"])),
    "reassign_units": (
        frozenset({"lead_unit", "reason"}),
        frozenset({"assisting_units"}),
        lambda by, f: ReassignUnits(by, f["lead_unit"], _units(f, "assisting_units"), f["reason"]),
    ),
    "callback": (
        frozenset({"process", "result"}),
        frozenset({"demand_reasonable", "note"}),
        lambda by, f: Callback(
            by,
            _rating(f["process"], "process"),
            _rating(f["result"], "result"),
            bool(f.get("demand_reasonable", False)),
            f.get("note", ""),
        ),
    ),
}


def _windows(windows: Windows | Mapping[str, int]) -> Windows:
    if isinstance(windows, Windows):
        return windows
    unknown = sorted(set(windows) - {"repeat_days", "duplicate_days", "history_days"})
    if unknown:
        raise InvalidRequest(f"unknown windows: {', '.join(unknown)}")
    return Windows(**windows)


def action_event(action: str, by: str, fields: Mapping[str, Any]) -> Event:
    """The lifecycle event of a hotline action; InvalidRequest for an unknown action or fields."""
    if action not in ACTIONS:
        raise InvalidRequest(f"unknown action {action!r}; one of: {', '.join(ACTIONS)}")
    required, optional, build = ACTIONS[action]
    missing = sorted(required - set(fields))
    unknown = sorted(set(fields) - required - optional)
    if missing or unknown:
        problems = [f"missing: {', '.join(missing)}"] if missing else []
        problems += [f"unknown: {', '.join(unknown)}"] if unknown else []
        raise InvalidRequest(f"action {action}: fields {'; '.join(problems)}")
    return build(by, fields)


class TicketDesk(RepeatFinder):
    """Mixed into SqlTicketStore (before TicketLedger, which it extends through RepeatFinder)."""

    _desk_lock = threading.Lock()

    if TYPE_CHECKING:  # SqlTicketStore's own methods

        def get_call(self, call_id: CallId) -> CallRecord | None: ...

        def get_call_draft(self, call_id: CallId) -> dict[str, Any] | None: ...

    # -- the wrap-up ------------------------------------------------------------------------

    def accept_call(
        self,
        call_id: CallId,
        caller: str,
        form: Mapping[str, Any],
        actor: tuple[str, str],
        now: datetime,
        policy: str | None,
        windows: Windows | Mapping[str, int],
    ) -> dict[str, Any]:
        """受理 (and 转办 with a lead unit) of the agent's wrap-up form for the call.

        `form`: kind, content, place, lead_unit, assisting_units, emergency, provincial,
        caller_name, consent_callback, consent_disclose, answer, related_ticket (the API checked
        their types). `actor`: (name, "agent" or "supervisor"). Returns {"created", "ticket",
        "links", "same_matter"}; with created false the ticket is the one made by the first submit.
        """
        chosen = self._desk_policy(policy)
        windows = _windows(windows)
        kind = Kind.parse(str(form.get("kind", "")))
        related = form.get("related_ticket")
        who = TicketActor(actor[0], ActorRole(actor[1]))
        with self._desk_lock:
            existing = self._intake_ticket(call_id)
            if existing is not None:
                return {"created": False, **self._accepted(existing, [], None)}
            if related is not None and self.get_ticket(related) is None:
                raise NoSuchTicket(f"没有编号为 {related} 的工单（related_ticket）")
            draft = self.get_call_draft(call_id)
            new = NewTicket(
                caller=caller,
                kind=kind,
                content=str(form.get("content", "")),
                caller_name=form.get("caller_name") or None,
                transcript=draft["transcript"] if draft else "",
                place=str(form.get("place") or ""),
                emergency=bool(form.get("emergency", False)),
                provincial=bool(form.get("provincial", False)),
                lead_unit=form.get("lead_unit") or None,
                assisting_units=tuple(form.get("assisting_units") or ()),
                consent_recording=True,  # the greeting says the call is recorded
                consent_callback=bool(form.get("consent_callback", True)),
                consent_disclose=bool(form.get("consent_disclose", False)),
                call_id=call_id,
                answer=form.get("answer") or None,
            )
            matter = Matter(caller, kind.value, new.place, new.content)
            candidates = [c for c in self.repeat_candidates(matter, now, windows) if c.same_matter]
            try:
                stored = self.create_ticket(new, who, now, chosen)
            except Conflict:
                # Another control process filed this call first (the unique intake index
                # refused ours, which rolled back whole): its ticket is the answer.
                existing = self._intake_ticket(call_id)
                if existing is None:
                    raise
                return {"created": False, **self._accepted(existing, [], None)}
        links: list[dict[str, Any]] = []
        for candidate in candidates:
            if self._try_link(stored.number, candidate.earlier.number, candidate.reason, candidate.relation, now):
                links.append(candidate.to_dict())
        if related is not None and self._try_link(stored.number, related, "话务员关联", "related", now):
            links.append({"number": related, "relation": "related", "reason": "话务员关联"})
        target = same_matter_target(candidates)
        told = None
        if target is not None:
            note = f"工单 {stored.number} 反映同一事项"
            try:
                self.apply(target.earlier.number, SameMatter(who.name, caller, note), who, now)
                told = target.earlier.number
            except (IllegalTransition, InvalidRequest, Conflict) as exc:
                logger.warning("ticket %s: SameMatter on %s refused: %s", stored.number, target.earlier.number, exc)
        current = self.get_ticket(stored.number) or stored
        return {"created": True, **self._accepted(current, links, told)}

    def _accepted(self, stored: StoredTicket, links: list[dict[str, Any]], told: str | None) -> dict[str, Any]:
        return {"ticket": self.ticket_document(stored.number), "links": links, "same_matter": told}

    def _try_link(self, number: str, other: str, reason: str, relation: str, now: datetime) -> bool:
        try:
            self.link_tickets(number, other, reason, relation, now)
        except (InvalidRequest, NoSuchTicket, Conflict) as exc:
            logger.warning("ticket %s: link to %s (%s) not made: %s", number, other, relation, exc)
            return False
        return True

    def _intake_ticket(self, call_id: CallId) -> StoredTicket | None:
        stmt = select(_C.c.ticket_number).where(_C.c.call_id == call_id, _C.c.role == "intake")
        with self._read(f"the intake ticket of call {call_id}") as conn:
            number = conn.execute(stmt.order_by(_C.c.ticket_number).limit(1)).scalar_one_or_none()
        return None if number is None else self.get_ticket(str(number))

    def intake_ticket_number(self, call_id: CallId) -> str | None:
        """The ticket the call was wrapped up into, if any."""
        found = self._intake_ticket(call_id)
        return None if found is None else found.number

    def _desk_policy(self, name: str | None) -> TicketPolicy:
        if name:
            return self._policy(name)
        if len(self._policies) == 1:
            return next(iter(self._policies.values()))
        known = ", ".join(sorted(self._policies)) or "none"
        raise ConfigError(f"new tickets need a city policy (tickets.policy); the store knows: {known}")

    # -- reading ----------------------------------------------------------------------------

    def ticket_document(self, number: str) -> dict[str, Any] | None:
        """The whole ticket as JSON (show.ticket_view: calls, intake draft, links, timeline),
        plus its "owner" and "deadline"; None for an unknown number."""
        stored = self.get_ticket(number)
        if stored is None:
            return None
        calls = self.ticket_calls(number)
        records: dict[str, CallRecord] = {c.call_id: r for c in calls if (r := self.get_call(c.call_id)) is not None}
        intake = next((c for c in calls if c.role == "intake"), None)
        draft = self.get_call_draft(intake.call_id) if intake is not None else None
        timeline = self.timeline(number)
        view = ticket_view(stored, calls, records, draft, self.linked_tickets(number), timeline)
        record = records.get(intake.call_id) if intake is not None else None
        owner: str | None = record.agent_id if record is not None and record.agent_id else None
        if owner is None and timeline and timeline[0].actor_role == ActorRole.AGENT.value:
            owner = timeline[0].actor
        view["owner"] = owner
        view["deadline"] = view["due_at"]
        return view

    def list_ticket_documents(self, filters: Mapping[str, str], limit: int) -> list[dict[str, Any]]:
        """Tickets newest first, filtered by state (lifecycle state), stage (STAGES), light, unit
        (lead or assisting) and kind; each a summary with its caller and owner."""
        if not 1 <= limit <= LIST_MAX:
            raise InvalidRequest(f"limit must be between 1 and {LIST_MAX}, got {limit}")
        stmt = select(_T)
        if "state" in filters:
            stmt = stmt.where(_T.c.stage == State(filters["state"]).value)
        if "stage" in filters:
            if filters["stage"] not in STAGES:
                raise InvalidRequest(f"stage must be one of {', '.join(STAGES)}")
            stmt = stmt.where(_T.c.stage.in_([s.value for s in STAGES[filters["stage"]]]))
        if "light" in filters:
            stmt = stmt.where(_T.c.light == filters["light"])
        if "kind" in filters:
            stmt = stmt.where(_T.c.kind == Kind.parse(filters["kind"]).value)
        if "unit" in filters:
            unit = filters["unit"]
            quoted = json.dumps(unit, ensure_ascii=False)
            escaped = quoted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            stmt = stmt.where((_T.c.lead_unit == unit) | _T.c.assisting_units.like(f"%{escaped}%", escape="\\"))
        stmt = stmt.order_by(_T.c.created_at.desc(), _T.c.number.desc()).limit(limit)
        with self._read("listing tickets") as conn:
            rows = [row._mapping for row in conn.execute(stmt).all()]
            owners = self._owners(conn, [r["number"] for r in rows])
            summaries = [self._summary(conn, r) for r in rows]
        return [
            {
                "number": r["number"],
                "kind": r["kind"],
                "state": r["stage"],
                "stage": next((name for name, states in STAGES.items() if State(r["stage"]) in states), ""),
                "status": s.status.value,
                "light": r["light"],
                "lead_unit": r["lead_unit"],
                "assisting_units": json.loads(r["assisting_units"]),
                "emergency": r["emergency"],
                "caller": r["caller"],
                "caller_name": r["caller_name"],
                "place": r["place"],
                "content": summarise(r["content"]),
                "created_at": r["created_at"].isoformat(),
                "deadline": None if r["due_at"] is None else r["due_at"].isoformat(),
                "version": r["version"],
                "owner": owners.get(r["number"]),
            }
            for r, s in zip(rows, summaries, strict=True)
        ]

    def _owners(self, conn: Any, numbers: Sequence[str]) -> dict[str, str]:
        if not numbers:
            return {}
        owners: dict[str, str] = {}
        opened = select(_E.c.ticket_number, _E.c.actor).where(
            _E.c.ticket_number.in_(numbers), _E.c.seq == 1, _E.c.actor_role == ActorRole.AGENT.value
        )
        for number, actor in conn.execute(opened).all():
            owners[number] = actor
        intake = (
            select(_C.c.ticket_number, _K.c.agent_id)
            .select_from(_C.join(_K, and_(_K.c.call_id == _C.c.call_id)))
            .where(_C.c.ticket_number.in_(numbers), _C.c.role == "intake", _K.c.agent_id.is_not(None))
        )
        for number, agent_id in conn.execute(intake).all():
            owners[number] = agent_id
        return owners

    def caller_context(
        self,
        caller: str,
        matter: Mapping[str, str],
        now: datetime,
        windows: Windows | Mapping[str, int],
        exclude: str | None = None,
    ) -> dict[str, Any]:
        """The screen pop: the caller's earlier tickets (history window) and the repeat/duplicate
        candidates of the matter (kind, place, content; a matter without a kind has none)."""
        windows = _windows(windows)
        history = self.tickets_for_caller(caller, now - timedelta(days=windows.history_days)) if caller else []
        kind = matter.get("kind", "")
        candidates = []
        if kind:
            found = Matter(caller, Kind.parse(kind).value, matter.get("place", ""), matter.get("content", ""))
            candidates = [c.to_dict() for c in self.repeat_candidates(found, now, windows, exclude)]
        return {
            "history": [
                {
                    "number": t.number,
                    "kind": t.kind,
                    "state": t.stage,
                    "status": t.status.value,
                    "created_at": t.created_at.isoformat(),
                    "content": summarise(t.content),
                    "place": t.place,
                }
                for t in history
                if t.number != exclude
            ],
            "candidates": candidates,
            "not_accepted_again": [c["number"] for c in candidates if c["not_accepted_again"]],
        }

    # -- the hotline's actions --------------------------------------------------------------

    def hotline_action(
        self, number: str, action: str, fields: Mapping[str, Any], by: str, now: datetime, version: int | None
    ) -> dict[str, Any]:
        """Runs the action's lifecycle event as the hotline; returns the ticket's document.
        StaleTicket if `version` is not the ticket's; IllegalTransition / InvalidRequest as the
        lifecycle says."""
        event = action_event(action, by, fields)
        if self.get_ticket(number) is None:
            raise NoSuchTicket(f"没有编号为 {number} 的工单")
        self.apply(number, event, TicketActor(by, ActorRole.SUPERVISOR), now, expected_version=version)
        document = self.ticket_document(number)
        assert document is not None
        return document
