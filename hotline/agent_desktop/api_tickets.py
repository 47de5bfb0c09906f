"""API part: the hotline's side of 工单 (routes and their OpenAPI fragment; see openapi.PARTS).

- POST /calls/{call_id}/ticket: the agent's wrap-up form becomes a ticket (受理, and 转办 with a
  lead unit), linked to its repeat/duplicate candidates. Idempotent per call: the first submit
  answers 201 {"created": true}, every later one 200 with the same ticket and {"created": false}.
- GET /calls/{call_id}/context: the screen pop (the caller's earlier tickets, the candidates of
  the call's draft, 不再受理 flags).
- GET /tickets, GET /tickets/{number}, POST /tickets/{number}/events (the hotline's lifecycle
  actions), GET /tickets/{number}/access (the personal-data audit, admins).

Rules of this module:
- Hotline roles only (agent, supervisor, admin); any other role is 403 before anything is read.
- The call's own agent (the record's agent_id, or for a live call the agent on it) or a
  supervisor/admin may wrap a call up and see its context; other agents get 403.
- Agents see every ticket, but a caller's number and name only on the tickets they own (their
  intake call); elsewhere masked (138****8000, 王*). Supervisors and admins see them whole.
- Every answer that carries an unmasked number or name writes its audit rows first (privacy.py).
- Lifecycle actions are for supervisors and admins, each field mapped explicitly (ACTION_FIELDS);
  unknown fields are 400. A stale `version` is 409 stale-ticket, an action the ticket's state
  does not allow 409 illegal-transition.
- The ticket store does the work (hotline/tickets/desk.py, through the TicketDesk port); it is
  synchronous and runs in a thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from hotline.agent_desktop import auth as authmod
from hotline.agent_desktop.app import CLOCK_MS, QUEUE, STORE
from hotline.agent_desktop.auth import ADMIN, AGENT, SUPERVISOR, Principal, mask_number, principal
from hotline.agent_desktop.openapi import API_PREFIX, errors, json_body, ref
from hotline.agent_desktop.privacy import AUDIT, audit_read
from hotline.agent_desktop.responses import in_thread, json_reply, optional_object
from hotline.core import events as ev
from hotline.core.errors import InvalidRequest, NoSuchCall, NotFound, Unavailable
from hotline.core.model import CallId, WorkerId

HOTLINE_ROLES = (AGENT, SUPERVISOR, ADMIN)
KINDS = ("consultation", "help", "complaint", "report", "suggestion", "praise")
# The speech draft names kinds in Chinese (hotline.asr RequestKind): 投诉 is complaint.
KIND_LABELS = dict(zip(("咨询", "求助", "投诉", "举报", "意见建议", "表扬"), KINDS, strict=True))
STATES = (
    "accepted", "dispatched", "handling", "extension_requested", "return_requested", "follow_up",
    "termination_requested", "replied", "closed", "terminated",
)  # fmt: skip
STAGES = ("accept", "dispatch", "handle", "reply", "close", "terminate")
LIGHTS = ("none", "yellow", "red")
LIST_DEFAULT, LIST_MAX = 100, 1000
TEXT_MAX = 4000  # characters of a free-text field (content, answer, reason)
PERSONAL = ("caller", "caller_name")


class NoSuchTicket(NotFound):
    error_id = "no-such-ticket"


# --- ports ------------------------------------------------------------------------------


@runtime_checkable
class TicketDesk(Protocol):
    """What these routes need of the ticket store (hotline/tickets/desk.py). Synchronous."""

    def accept_call(
        self,
        call_id: CallId,
        caller: str,
        form: Mapping[str, Any],
        actor: tuple[str, str],
        now: datetime,
        policy: str | None,
        windows: Mapping[str, int],
    ) -> dict[str, Any]: ...

    def ticket_document(self, number: str) -> dict[str, Any] | None: ...

    def list_ticket_documents(self, filters: Mapping[str, str], limit: int) -> list[dict[str, Any]]: ...

    def caller_context(
        self, caller: str, matter: Mapping[str, str], now: datetime, windows: Mapping[str, int], exclude: str | None
    ) -> dict[str, Any]: ...

    def intake_ticket_number(self, call_id: CallId) -> str | None: ...

    def hotline_action(
        self, number: str, action: str, fields: Mapping[str, Any], by: str, now: datetime, version: int | None
    ) -> dict[str, Any]: ...

    def get_call_draft(self, call_id: CallId) -> dict[str, Any] | None: ...


class LiveCallDirectory(Protocol):
    """The workers' live calls (hotline.queue.bus.RedisEventBus): the caller of a call not yet recorded."""

    async def alive_workers(self) -> dict[WorkerId, dict[str, Any]]: ...

    async def tracked_calls(self, worker_id: WorkerId) -> dict[CallId, dict[str, Any]]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class TicketSettings:
    """The composition root's settings for these routes (config `tickets`)."""

    policy: str | None = None  # the city policy of new tickets; None: the store's only one
    repeat_window_days: int = 30
    duplicate_window_days: int = 7
    history_days: int = 365

    def windows(self) -> dict[str, int]:
        return {
            "repeat_days": self.repeat_window_days,
            "duplicate_days": self.duplicate_window_days,
            "history_days": self.history_days,
        }


DESK = web.AppKey["TicketDesk | None"]("ticket_desk")
TICKET_SETTINGS = web.AppKey[TicketSettings]("ticket_settings")
LIVE_CALLS = web.AppKey["LiveCallDirectory | None"]("ticket_live_calls")


# --- helpers ----------------------------------------------------------------------------


def _hotline(request: web.Request) -> Principal:
    who = principal(request)
    if who.role not in HOTLINE_ROLES:
        raise authmod.Forbidden(f"工单 routes are for the hotline's roles; {who.username} is a {who.role}")
    return who


def _desk(request: web.Request) -> TicketDesk:
    desk = request.app[DESK]
    if desk is None:
        raise Unavailable("this process's ticket store keeps no 工单")
    return desk


def _now(request: web.Request) -> datetime:
    return datetime.fromtimestamp(request.app[CLOCK_MS]() / 1000, UTC)


def mask_name(name: str | None) -> str | None:
    """王小明 -> 王**; None stays None."""
    if not name:
        return name
    return name[0] + "*" * max(1, len(name) - 1)


def _sees(who: Principal, owner: str | None) -> bool:
    return who.supervises or who.owns(owner)


def _text(body: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string")
    if required and not value.strip():
        raise InvalidRequest(f"{name} must not be empty")
    if len(value) > TEXT_MAX:
        raise InvalidRequest(f"{name} has at most {TEXT_MAX} characters")
    return value.strip()


def _flag(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name} must be true or false")
    return value


def _unit_list(body: Mapping[str, Any], name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidRequest(f"{name} must be a list of unit names")
    return [v.strip() for v in value]


def _unknown(body: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(unknown)}")


WRAP_UP_FIELDS = (
    "kind", "content", "place", "lead_unit", "assisting_units", "emergency", "provincial", "caller_name",
    "consent_callback", "consent_disclose", "answer", "related_ticket",
)  # fmt: skip


def wrap_up_form(body: Mapping[str, Any]) -> dict[str, Any]:
    """The wrap-up body, checked: every field with its type, nothing else."""
    _unknown(body, WRAP_UP_FIELDS)
    kind = _text(body, "kind", required=True)
    if kind not in KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(KINDS)}")
    return {
        "kind": kind,
        "content": _text(body, "content", required=True),
        "place": _text(body, "place") or "",
        "lead_unit": _text(body, "lead_unit") or None,
        "assisting_units": _unit_list(body, "assisting_units"),
        "emergency": _flag(body, "emergency", False),
        "provincial": _flag(body, "provincial", False),
        "caller_name": _text(body, "caller_name") or None,
        "consent_callback": _flag(body, "consent_callback", True),
        "consent_disclose": _flag(body, "consent_disclose", False),
        "answer": _text(body, "answer") or None,
        "related_ticket": _text(body, "related_ticket") or None,
    }


# action -> (required, optional) fields; their types are FIELD_SCHEMAS'. The store maps each to
# its lifecycle event (hotline/tickets/desk.py ACTIONS) and checks the same names again.
ACTION_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "dispatch": (("lead_unit",), ("assisting_units",)),
    "approve_return": (("reason",), ("lead_unit", "assisting_units")),
    "refuse_return": (("reason",), ()),
    "approve_extension": ((), ("note",)),
    "refuse_extension": (("reason",), ()),
    "reject_reply": (("reason",), ()),
    "approve_termination": (("reason",), ()),
    "refuse_termination": (("reason",), ()),
    "supervise": (("reason",), ()),
    "reassign_units": (("lead_unit", "reason"), ("assisting_units",)),
    "callback": (("process", "result"), ("demand_reasonable", "note")),
}
_RATING = {"type": "integer", "enum": [1, 2, 3], "description": "1 满意, 2 基本满意, 3 不满意"}
FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "lead_unit": {"type": "string", "minLength": 1},
    "assisting_units": {"type": "array", "items": {"type": "string", "minLength": 1}},
    "reason": {"type": "string", "minLength": 1, "maxLength": TEXT_MAX},
    "note": {"type": "string", "maxLength": TEXT_MAX},
    "process": _RATING,
    "result": _RATING,
    "demand_reasonable": {"type": "boolean", "description": "the hotline's judgement when the result is 不满意"},
}


def action_fields(body: Mapping[str, Any]) -> tuple[str, dict[str, Any], int]:
    """(action, its fields, version) of an events body, every field checked."""
    action = body.get("action")
    if not isinstance(action, str) or action not in ACTION_FIELDS:  # a list or object is unhashable
        raise InvalidRequest(f"action must be one of {', '.join(ACTION_FIELDS)}, got {action!r}")
    required, optional = ACTION_FIELDS[action]
    _unknown(body, ("action", "version", *required, *optional))
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidRequest("version (the ticket's version you saw, an integer) is required")
    fields: dict[str, Any] = {}
    for name in (*required, *optional):
        if name not in body:
            if name in required:
                raise InvalidRequest(f"action {action} needs {name}")
            continue
        value = body[name]
        if name in ("lead_unit", "reason"):
            fields[name] = _text(body, name, required=True)
        elif name == "note":
            fields[name] = _text(body, name) or ""
        elif name == "assisting_units":
            fields[name] = _unit_list(body, name)
        elif name in ("process", "result"):
            if value not in (1, 2, 3) or isinstance(value, bool):
                raise InvalidRequest(f"{name} must be 1 (满意), 2 (基本满意) or 3 (不满意)")
            fields[name] = value
        else:  # demand_reasonable
            fields[name] = _flag(body, name, False)
    return action, fields, version


async def call_facts(request: web.Request, call_id: CallId) -> tuple[str, str | None, bool]:
    """(caller, the call's agent, live) from the call record or, for a call not yet recorded,
    from the queue and the workers' live calls; NoSuchCall if neither knows it."""
    record = await in_thread(request.app[STORE].get_call, call_id)
    if record is not None:
        return record.caller, record.agent_id, False
    queue = request.app[QUEUE]
    # A first agent wrapping up a call transferred away still names it: the agent who took it owns it.
    holders = [s for s in await queue.agents() if s.call_id == call_id]
    owner = next((s.agent_id for s in holders if not s.reason.startswith(ev.TRANSFERRED)), None)
    caller = next((w.caller for w in await queue.waiting() if w.call_id == call_id), None)
    live = request.app[LIVE_CALLS]
    if caller is None and live is not None:
        for worker_id in await live.alive_workers():
            info = (await live.tracked_calls(worker_id)).get(call_id)
            if info is not None and isinstance(info.get("caller"), str):
                caller = info["caller"]
                break
    if caller is None:
        raise NoSuchCall(f"no call {call_id}")
    return caller, owner, True


def _check_call(who: Principal, call_id: CallId, owner: str | None) -> None:
    if not _sees(who, owner):
        raise authmod.Forbidden(f"call {call_id} is not {who.username}'s")


def masked_ticket(view: dict[str, Any]) -> dict[str, Any]:
    """The ticket as an agent who does not own it sees it: the caller's number and name masked,
    in the ticket, its calls' records and the numbers the intake draft heard."""
    out = {**view, "caller": mask_number(view["caller"]), "caller_name": mask_name(view.get("caller_name"))}
    out["calls"] = [
        {
            **c,
            "record": None
            if c.get("record") is None
            else {**c["record"], "caller": mask_number(c["record"]["caller"])},
        }
        for c in view.get("calls", [])
    ]
    draft = view.get("intake_draft")
    if isinstance(draft, dict) and isinstance(draft.get("draft"), dict):
        phones = draft["draft"].get("phones")
        if isinstance(phones, list):
            masked = [{**p, "value": mask_number(str(p.get("value", "")))} for p in phones if isinstance(p, dict)]
            out["intake_draft"] = {**draft, "draft": {**draft["draft"], "phones": masked}}
    return out


def draft_matter(draft: dict[str, Any] | None) -> dict[str, str]:
    """kind, place, content of the speech service's draft (whatever it holds, never an error)."""
    fields = draft.get("draft") if draft else None
    if not isinstance(fields, dict):
        return {}

    def pick(name: str, key: str) -> str:
        value = fields.get(name)
        value = value.get(key) if isinstance(value, dict) else None
        return value if isinstance(value, str) else ""

    kind = pick("kind", "value")
    content = pick("summary", "text") or (fields.get("text") if isinstance(fields.get("text"), str) else "")
    return {
        "kind": KIND_LABELS.get(kind, kind if kind in KINDS else ""),
        "place": pick("place", "label"),
        "content": str(content or (draft or {}).get("transcript") or ""),
    }


# --- handlers ---------------------------------------------------------------------------


async def accept_call(request: web.Request) -> web.Response:
    """The wrap-up: a ticket from the call (idempotent per call)."""
    who = _hotline(request)
    desk = _desk(request)
    call_id = CallId(request.match_info["call_id"])
    form = wrap_up_form(await optional_object(request))
    caller, owner, _ = await call_facts(request, call_id)
    _check_call(who, call_id, owner)
    if who.role == AGENT and who.agent_id is not None:
        actor = (str(who.agent_id), "agent")
    else:
        actor = (who.username or "api", "supervisor")
    settings = request.app[TICKET_SETTINGS]
    result = await in_thread(
        desk.accept_call, call_id, caller, form, actor, _now(request), settings.policy, settings.windows()
    )
    await audit_read(request, "ticket", [result["ticket"]["number"]], PERSONAL)
    return json_reply(result, status=201 if result["created"] else 200)


async def call_context(request: web.Request) -> web.Response:
    """The screen pop of a call: the caller's earlier tickets and the draft's candidates."""
    who = _hotline(request)
    desk = _desk(request)
    call_id = CallId(request.match_info["call_id"])
    caller, owner, live = await call_facts(request, call_id)
    _check_call(who, call_id, owner)
    _unknown(request.query, ("kind", "place", "content"))
    draft = await in_thread(desk.get_call_draft, call_id)
    matter = draft_matter(draft)
    for name in ("kind", "place", "content"):  # what the agent has typed so far wins over the draft
        if name in request.query:
            matter[name] = request.query[name].strip()
    if matter.get("kind") and matter["kind"] not in KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(KINDS)}")
    ticket = await in_thread(desk.intake_ticket_number, call_id)
    settings = request.app[TICKET_SETTINGS]
    context = await in_thread(desk.caller_context, caller, matter, _now(request), settings.windows(), ticket)
    await audit_read(request, "call", [call_id])
    return json_reply(
        {"call_id": call_id, "caller": caller, "agent_id": owner, "live": live, "ticket": ticket, "matter": matter}
        | context
    )


_LIST_FILTERS = {"state": STATES, "stage": STAGES, "light": LIGHTS, "kind": KINDS, "unit": None}


async def list_tickets(request: web.Request) -> web.Response:
    who = _hotline(request)
    desk = _desk(request)
    _unknown(request.query, (*_LIST_FILTERS, "limit"))
    filters: dict[str, str] = {}
    for name, allowed in _LIST_FILTERS.items():
        if name in request.query:
            value = request.query[name].strip()
            if (allowed is not None and value not in allowed) or not value:
                raise InvalidRequest(f"{name} must be one of {', '.join(allowed or ['a unit name'])}")
            filters[name] = value
    raw = request.query.get("limit", str(LIST_DEFAULT))
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidRequest(f"limit must be an integer, got {raw!r}") from None
    if not 1 <= limit <= LIST_MAX:
        raise InvalidRequest(f"limit must be between 1 and {LIST_MAX}, got {limit}")
    tickets = await in_thread(desk.list_ticket_documents, filters, limit)
    shown = [t["number"] for t in tickets if _sees(who, t["owner"])]
    await audit_read(request, "ticket", shown, PERSONAL)
    visible = set(shown)
    for t in tickets:
        if t["number"] not in visible:
            t["caller"], t["caller_name"] = mask_number(t["caller"]), mask_name(t["caller_name"])
    return json_reply({"tickets": tickets, "count": len(tickets)})


async def get_ticket(request: web.Request) -> web.Response:
    who = _hotline(request)
    desk = _desk(request)
    number = request.match_info["number"]
    view = await in_thread(desk.ticket_document, number)
    if view is None:
        raise NoSuchTicket(f"没有编号为 {number} 的工单")
    if not _sees(who, view["owner"]):
        return json_reply(masked_ticket(view))
    await audit_read(request, "ticket", [number], PERSONAL)
    return json_reply(view)


async def ticket_event(request: web.Request) -> web.Response:
    """A hotline lifecycle action (supervisors and admins)."""
    who = _hotline(request)
    who.require_supervisor("工单 actions")
    desk = _desk(request)
    number = request.match_info["number"]
    action, fields, version = action_fields(await optional_object(request))
    by = who.username or "api"
    view = await in_thread(desk.hotline_action, number, action, fields, by, _now(request), version)
    await audit_read(request, "ticket", [number], PERSONAL)
    return json_reply(view)


async def ticket_access(request: web.Request) -> web.Response:
    """Who read the ticket's (and its calls') personal data (admins only), oldest first."""
    who = _hotline(request)
    if who.role != ADMIN:
        raise authmod.Forbidden(f"the access log is for admins; {who.username} is a {who.role}")
    desk = _desk(request)
    number = request.match_info["number"]
    if await in_thread(desk.ticket_document, number) is None:
        raise NoSuchTicket(f"没有编号为 {number} 的工单")
    audit = request.app[AUDIT]
    rows = [] if audit is None else await in_thread(audit.personal_reads, "ticket", number)
    return json_reply({"number": number, "access": [row.to_dict() for row in rows]})


# --- the OpenAPI fragment ---------------------------------------------------------------

_P = API_PREFIX
_CALL = {"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}}
_NUMBER = {"name": "number", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_ANY_OBJECT = {"type": "object", "additionalProperties": True}

PATHS: dict[str, Any] = {
    f"{_P}/calls/{{call_id}}/ticket": {
        "post": {
            "summary": "Wrap-up: the agent's form becomes a 工单 (受理; 转办 with a lead unit), idempotent per call",
            "description": "The caller's number comes from the call record, or for a live call from the queue "
            "and the workers' live calls; the transcript from the call's draft. The call's own agent or a "
            "supervisor/admin. The first submit answers 201 (created: true); any later submit for the same "
            "call answers 200 with the ticket already made (created: false) and changes nothing. The new "
            "ticket is linked to earlier tickets on the same matter (repeat/duplicate) and the newest of them "
            "is told (SameMatter). Audited: the answer carries the caller's number.",
            "operationId": "acceptCall",
            "parameters": [_CALL],
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref("TicketWrapUp")}}},
            "responses": {
                "201": json_body(ref("TicketAccepted"), "the ticket, made now"),
                "200": json_body(ref("TicketAccepted"), "the ticket made by an earlier submit for this call"),
                "404": json_body(ref("Error"), "no-such-call / no-such-ticket (related_ticket)"),
                **errors(400, 503),
            },
        }
    },
    f"{_P}/calls/{{call_id}}/context": {
        "get": {
            "summary": "Screen pop: the caller's earlier tickets and the repeat/duplicate candidates of the draft",
            "description": "Candidates follow RULES 'Repeat and duplicate' (hotline/tickets/repeats.py): the "
            "same caller within tickets.repeat_window_days, the same place and kind from anyone within "
            "tickets.duplicate_window_days, and closed matters raised again (not_accepted_again: 不再受理, for "
            "the agent to decide). kind/place/content override the speech draft's. Audited.",
            "operationId": "callContext",
            "parameters": [
                _CALL,
                _query("kind", {"type": "string", "enum": list(KINDS)}),
                _query("place", {"type": "string"}),
                _query("content", {"type": "string"}),
            ],
            "responses": {"200": json_body(ref("CallContext"), "the context"), **errors(400, 404, 503)},
        }
    },
    f"{_P}/tickets": {
        "get": {
            "summary": "工单, newest first (agents see callers masked but on their own tickets)",
            "description": "Unmasked callers are audited, one row per ticket.",
            "operationId": "listTickets",
            "parameters": [
                _query("state", {"type": "string", "enum": list(STATES)}, "the lifecycle state"),
                _query("stage", {"type": "string", "enum": list(STAGES)}, "受理/转办/办理/回访/办结/终止"),
                _query("light", {"type": "string", "enum": list(LIGHTS)}),
                _query("unit", {"type": "string"}, "lead or assisting unit"),
                _query("kind", {"type": "string", "enum": list(KINDS)}),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": LIST_MAX, "default": LIST_DEFAULT}),
            ],
            "responses": {"200": json_body(ref("TicketList"), "the tickets"), **errors(400, 503)},
        }
    },
    f"{_P}/tickets/{{number}}": {
        "get": {
            "summary": "One 工单 with its timeline, calls and linked tickets",
            "description": "Agents who do not own it see the caller masked (not audited); others are audited.",
            "operationId": "getTicket",
            "parameters": [_NUMBER],
            "responses": {
                "200": json_body(ref("Ticket"), "the ticket"),
                "404": json_body(ref("Error"), "no-such-ticket"),
                **errors(503),
            },
        }
    },
    f"{_P}/tickets/{{number}}/events": {
        "post": {
            "summary": "A hotline lifecycle action on the ticket (supervisors, admins)",
            "operationId": "ticketAction",
            "parameters": [_NUMBER],
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref("TicketAction")}}},
            "responses": {
                "200": json_body(ref("Ticket"), "the ticket after the action"),
                "404": json_body(ref("Error"), "no-such-ticket"),
                "409": json_body(ref("Error"), "stale-ticket (version) / illegal-transition (state)"),
                **errors(400, 503),
            },
        }
    },
    f"{_P}/tickets/{{number}}/access": {
        "get": {
            "summary": "Who read the ticket's (and its calls') personal data, when, from where (admins)",
            "operationId": "ticketAccess",
            "parameters": [_NUMBER],
            "responses": {
                "200": json_body(ref("PersonalDataAccessLog"), "the audit, oldest first"),
                "404": json_body(ref("Error"), "no-such-ticket"),
                **errors(503),
            },
        }
    },
}

_ACTION_VARIANTS = [
    {
        "type": "object",
        "title": action,
        "required": ["action", "version", *required],
        "additionalProperties": False,
        "properties": {
            "action": {"type": "string", "enum": [action]},
            "version": {"type": "integer", "minimum": 1, "description": "the version you saw (409 if stale)"},
            **{name: FIELD_SCHEMAS[name] for name in (*required, *optional)},
        },
    }
    for action, (required, optional) in ACTION_FIELDS.items()
]

SCHEMAS: dict[str, Any] = {
    "TicketWrapUp": {
        "type": "object",
        "required": ["kind", "content"],
        "additionalProperties": False,
        "properties": {
            "kind": {"type": "string", "enum": list(KINDS)},
            "content": {"type": "string", "minLength": 1, "maxLength": TEXT_MAX, "description": "诉求内容"},
            "place": {"type": "string"},
            "lead_unit": {"type": "string", "description": "dispatch at once (转办)"},
            "assisting_units": {"type": "array", "items": {"type": "string"}},
            "emergency": {"type": "boolean", "default": False},
            "provincial": {"type": "boolean", "default": False},
            "caller_name": {"type": "string"},
            "consent_callback": {"type": "boolean", "default": True},
            "consent_disclose": {"type": "boolean", "default": False},
            "answer": {
                "type": "string",
                "description": "answered at once: closed without dispatch if the policy allows",
            },
            "related_ticket": {"type": "string", "description": "linked as related"},
        },
    },
    "TicketLink": {
        "type": "object",
        "required": ["number", "relation", "reason"],
        "properties": {
            "number": {"type": "string"},
            "relation": {"type": "string", "enum": ["repeat", "duplicate", "related"]},
            "reason": {"type": "string"},
        },
        "additionalProperties": True,
    },
    "TicketAccepted": {
        "type": "object",
        "required": ["created", "ticket", "links", "same_matter"],
        "properties": {
            "created": {"type": "boolean"},
            "ticket": ref("Ticket"),
            "links": {"type": "array", "items": ref("TicketLink"), "description": "links made now"},
            "same_matter": {"type": "string", "nullable": True, "description": "the earlier ticket told"},
        },
    },
    "Ticket": {
        "type": "object",
        "required": ["number", "status", "stage", "kind", "caller", "content", "light", "version", "timeline"],
        "properties": {
            "number": {"type": "string"},
            "status": {"type": "string"},
            "stage": {"type": "string", "enum": list(STATES), "description": "the lifecycle state"},
            "kind": {"type": "string", "enum": list(KINDS)},
            "caller": {"type": "string", "description": "masked for agents but on their own tickets"},
            "caller_name": {"type": "string", "nullable": True},
            "content": {"type": "string"},
            "place": {"type": "string"},
            "lead_unit": {"type": "string", "nullable": True},
            "assisting_units": {"type": "array", "items": {"type": "string"}},
            "light": {"type": "string", "enum": list(LIGHTS)},
            "deadline": {"type": "string", "nullable": True, "format": "date-time"},
            "version": {"type": "integer"},
            "owner": {"type": "string", "nullable": True, "description": "the intake call's agent"},
            "calls": {"type": "array", "items": _ANY_OBJECT},
            "links": {"type": "array", "items": _ANY_OBJECT},
            "timeline": {"type": "array", "items": _ANY_OBJECT},
        },
        "additionalProperties": True,
    },
    "TicketList": {
        "type": "object",
        "required": ["tickets", "count"],
        "properties": {"tickets": {"type": "array", "items": _ANY_OBJECT}, "count": {"type": "integer"}},
    },
    "TicketAction": {"oneOf": _ACTION_VARIANTS, "discriminator": {"propertyName": "action"}},
    "CallContext": {
        "type": "object",
        "required": ["call_id", "caller", "live", "history", "candidates", "not_accepted_again"],
        "properties": {
            "call_id": {"type": "string"},
            "caller": {"type": "string"},
            "agent_id": {"type": "string", "nullable": True},
            "live": {"type": "boolean", "description": "the call has no record yet"},
            "ticket": {"type": "string", "nullable": True, "description": "the call's wrap-up ticket, if made"},
            "matter": _ANY_OBJECT,
            "history": {"type": "array", "items": _ANY_OBJECT, "description": "the caller's earlier tickets"},
            "candidates": {"type": "array", "items": ref("TicketLink")},
            "not_accepted_again": {"type": "array", "items": {"type": "string"}, "description": "不再受理 flags"},
        },
    },
    "PersonalDataAccess": {
        "type": "object",
        "required": ["id", "at", "who", "role", "subject_type", "subject", "fields", "route", "client"],
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "who": {"type": "string"},
            "role": {"type": "string"},
            "subject_type": {"type": "string", "enum": ["ticket", "call"]},
            "subject": {"type": "string"},
            "fields": {"type": "array", "items": {"type": "string", "enum": list(PERSONAL)}},
            "route": {"type": "string"},
            "client": {"type": "string"},
        },
    },
    "PersonalDataAccessLog": {
        "type": "object",
        "required": ["number", "access"],
        "properties": {"number": {"type": "string"}, "access": {"type": "array", "items": ref("PersonalDataAccess")}},
    },
}
RESTRICTED: frozenset[str] = frozenset({"acceptCall", "callContext", "ticketAction", "ticketAccess"})


def add_routes(app: web.Application) -> None:
    """Adds this part's routes to the API application."""
    store = app[STORE]
    app[DESK] = store if isinstance(store, TicketDesk) else None
    if TICKET_SETTINGS not in app:
        app[TICKET_SETTINGS] = TicketSettings()
    if LIVE_CALLS not in app:
        app[LIVE_CALLS] = None
    app.router.add_post(f"{_P}/calls/{{call_id}}/ticket", accept_call)
    app.router.add_get(f"{_P}/calls/{{call_id}}/context", call_context)
    app.router.add_get(f"{_P}/tickets", list_tickets)
    app.router.add_get(f"{_P}/tickets/{{number}}", get_ticket)
    app.router.add_post(f"{_P}/tickets/{{number}}/events", ticket_event)
    app.router.add_get(f"{_P}/tickets/{{number}}/access", ticket_access)
