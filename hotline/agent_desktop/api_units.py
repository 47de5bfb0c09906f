"""API part: the units' side (承办单位), under /api/v1/unit/.

Rules of this module:
- Only unit accounts (role unit, tied to a unit) use these routes; every other role, and every
  request with sign-in off, gets 403. auth.py keeps unit accounts out of every other route.
- A unit lists and reads the tickets it now leads or assists and acts on them. A ticket that is
  not the unit's is 404 no-such-ticket whether it exists or not (the unit learns nothing about
  other tickets); an action its role on the ticket does not allow (an assisting unit replying
  for the lead) is 403 forbidden.
- What a unit reads never holds the caller's number or name, the transcript or consents (the
  store builds the view from an allow-list: hotline/tickets/unit_view.py).
- An action may carry the `version` the unit saw: 409 stale-ticket if the ticket changed since.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from hotline.agent_desktop import openapi
from hotline.agent_desktop.app import CLOCK_MS, STORE
from hotline.agent_desktop.auth import UNIT, Forbidden, principal
from hotline.agent_desktop.responses import in_thread, json_reply, optional_object
from hotline.core.errors import InvalidRequest, NotFound

P = f"{openapi.API_PREFIX}/unit"


@runtime_checkable
class UnitDeskPort(Protocol):
    """What the units' API needs of the ticket store (hotline.tickets.units.UnitDesk). Synchronous."""

    def unit_tickets(
        self, unit: str, *, stage: str | None = None, light: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]: ...

    def unit_ticket(self, unit: str, number: str) -> dict[str, Any]: ...

    def unit_act(
        self,
        unit: str,
        username: str,
        number: str,
        action: str,
        fields: Mapping[str, Any],
        now: datetime,
        expected_version: int | None = None,
    ) -> dict[str, Any]: ...

    def unit_notices(self, unit: str, limit: int = 100) -> list[dict[str, Any]]: ...


UNIT_DESK = web.AppKey["UnitDeskPort | None"]("unit_desk")

_TEXT = {"type": "string", "minLength": 1}
_VERSION = {"type": "integer", "description": "the version the unit saw: 409 stale-ticket if it changed since"}

# path segment -> (operationId, summary, request fields {name: schema}, required)
ACTIONS: dict[str, tuple[str, str, dict[str, Any], list[str]]] = {
    "acknowledge": ("unitAcknowledge", "签收: the lead unit signs for a dispatched ticket", {}, []),
    "first-report": (
        "unitFirstReport", "首报: the first handling report of an emergency ticket", {"text": _TEXT}, ["text"],
    ),
    "progress": ("unitProgress", "续报: a progress report while handling", {"text": _TEXT}, ["text"]),
    "assist-reply": (
        "unitAssistReply", "协办单位回复: an assisting unit's part, for the lead unit", {"text": _TEXT}, ["text"],
    ),
    "return": (
        "unitReturn",
        "回退: not this unit's matter; with the reason and the unit it should go to",
        {"reason": _TEXT, "suggested_unit": _TEXT},
        ["reason", "suggested_unit"],
    ),
    "extension": (
        "unitExtension",
        "延期: ask for more working days, before the deadline (the hotline decides)",
        {"working_days": {"type": "integer", "minimum": 1}, "reason": _TEXT},
        ["working_days", "reason"],
    ),
    "follow-up": (
        "unitFollowUp",
        "续报承诺: commit to a later date (Asia/Shanghai calendar day) when it cannot finish in time",
        {"until": {"type": "string", "format": "date"}, "reason": _TEXT},
        ["until", "reason"],
    ),
    "terminate": (
        "unitTerminate",
        "终止: ask to stop (the caller refuses needed information, or keeps an unlawful demand)",
        {"ground": {"type": "string", "enum": ["information_refused", "unlawful_demand"]}, "reason": _TEXT},
        ["ground", "reason"],
    ),
    "reply": ("unitReply", "反馈: the handling result, for the caller and the hotline", {"text": _TEXT}, ["text"]),
}  # fmt: skip

_NUMBER = {"name": "number", "in": "path", "required": True, "schema": {"type": "string"}}
_NULL_TIME = {"type": "string", "format": "date-time", "nullable": True}
_STATES = [
    "accepted", "dispatched", "handling", "extension_requested", "return_requested", "follow_up",
    "termination_requested", "replied", "closed", "terminated",
]  # fmt: skip

SCHEMAS: dict[str, Any] = {
    "UnitTicketSummary": {
        "type": "object",
        "description": "A ticket as a unit sees it: never the caller's number, name or the transcript; "
        "mobile numbers in free text are shown as ***.",
        "required": ["number", "kind", "content", "place", "emergency", "stage", "light", "role"],
        "properties": {
            "number": {"type": "string"},
            "kind": {"type": "string", "enum": ["consultation", "help", "complaint", "report", "suggestion", "praise"]},
            "kind_label": {"type": "string", "description": "咨询, 求助, 投诉, 举报, 意见建议, 表扬"},
            "content": {"type": "string", "description": "诉求内容"},
            "place": {"type": "string"},
            "emergency": {"type": "boolean"},
            "provincial": {"type": "boolean"},
            "stage": {"type": "string", "enum": _STATES},
            "stage_label": {"type": "string"},
            "light": {"type": "string", "enum": ["none", "yellow", "red"]},
            "role": {"type": "string", "enum": ["lead", "assist"], "description": "this unit's part in it"},
            "lead_unit": {"type": "string", "nullable": True},
            "assisting_units": {"type": "array", "items": {"type": "string"}},
            "accepted_at": {"type": "string", "format": "date-time"},
            "dispatched_at": _NULL_TIME,
            "deadline": {**_NULL_TIME, "description": "the reply deadline that binds the unit now"},
            "first_report_due": {**_NULL_TIME, "description": "emergencies: the first report is due"},
            "return_due": {**_NULL_TIME, "description": "a return after this counts as overdue"},
            "extensions": {"type": "integer"},
            "pending_extension": {"type": "object", "nullable": True},
            "redo_count": {"type": "integer"},
            "supervision": {"type": "array", "items": {"type": "string"}, "description": "督办 reasons"},
            "replied_at": _NULL_TIME,
            "closed_at": _NULL_TIME,
        },
    },
    "UnitTicket": {
        "allOf": [
            openapi.ref("UnitTicketSummary"),
            {
                "type": "object",
                "required": ["version", "timeline"],
                "properties": {
                    "version": {"type": "integer", "description": "send it back with an action"},
                    "due_at": _NULL_TIME,
                    "yellow_at": {**_NULL_TIME, "description": "the yellow light comes on just after"},
                    "red_at": {**_NULL_TIME, "description": "the red light and 催办 come just after"},
                    "timeline": {"type": "array", "items": openapi.ref("UnitTimelineEntry")},
                },
            },
        ]
    },
    "UnitTimelineEntry": {
        "type": "object",
        "required": ["seq", "at", "actor", "actor_role", "stage", "action", "note", "data"],
        "properties": {
            "seq": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "actor": {"type": "string", "description": "an agent, a unit, the hotline, or system"},
            "actor_role": {"type": "string"},
            "stage": {"type": "string"},
            "stage_label": {"type": "string"},
            "action": {"type": "string"},
            "note": {"type": "string"},
            "data": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "UnitTicketList": {
        "type": "object",
        "required": ["tickets"],
        "properties": {"tickets": {"type": "array", "items": openapi.ref("UnitTicketSummary")}},
    },
    "UnitNotice": {
        "type": "object",
        "required": ["event_id", "status", "attempts", "notice"],
        "properties": {
            "event_id": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "delivered", "failed"]},
            "attempts": {"type": "integer"},
            "delivered_at": _NULL_TIME,
            "notice": {"type": "object", "description": "the webhook body (docs/units.md)"},
        },
    },
    "UnitNoticeList": {
        "type": "object",
        "required": ["notices"],
        "properties": {"notices": {"type": "array", "items": openapi.ref("UnitNotice")}},
    },
}

_LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
}

PATHS: dict[str, Any] = {
    f"{P}/tickets": {
        "get": {
            "summary": "The unit's tickets (it leads or assists them), newest first (unit accounts)",
            "operationId": "listUnitTickets",
            "parameters": [
                {"name": "state", "in": "query", "required": False, "schema": {"type": "string", "enum": _STATES}},
                {
                    "name": "light",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["none", "yellow", "red"]},
                },
                _LIMIT,
            ],
            "responses": {"200": openapi.json_body(openapi.ref("UnitTicketList"), "tickets"), **openapi.errors(400)},
        }
    },
    f"{P}/tickets/{{number}}": {
        "get": {
            "summary": "One of the unit's tickets with its timeline (unit accounts)",
            "operationId": "getUnitTicket",
            "parameters": [_NUMBER],
            "responses": {
                "200": openapi.json_body(openapi.ref("UnitTicket"), "the ticket"),
                "404": openapi.json_body(openapi.ref("Error"), "no-such-ticket: unknown, or not this unit's"),
                **openapi.errors(503),
            },
        }
    },
    **{
        f"{P}/tickets/{{number}}/{action}": {
            "post": {
                "summary": summary,
                "operationId": op_id,
                "parameters": [_NUMBER],
                "requestBody": {
                    "required": bool(required),
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": required,
                                "properties": {**fields, "version": _VERSION},
                            }
                        }
                    },
                },
                "responses": {
                    "200": openapi.json_body(openapi.ref("UnitTicket"), "the ticket after the action"),
                    "400": openapi.json_body(openapi.ref("Error"), "invalid-request: a missing or bad field"),
                    "404": openapi.json_body(openapi.ref("Error"), "no-such-ticket: unknown, or not this unit's"),
                    "409": openapi.json_body(
                        openapi.ref("Error"),
                        "stale-ticket: changed since `version` / illegal-transition: not in the ticket's stage",
                    ),
                    **openapi.errors(503),
                },
            }
        }
        for action, (op_id, summary, fields, required) in ACTIONS.items()
    },
    f"{P}/notices": {
        "get": {
            "summary": "The notices sent to the unit (the webhook bodies), newest first, with delivery state",
            "operationId": "listUnitNotices",
            "parameters": [_LIMIT],
            "responses": {"200": openapi.json_body(openapi.ref("UnitNoticeList"), "notices"), **openapi.errors(400)},
        }
    },
}

# Every operation here is refused (403) to anyone but a unit account.
RESTRICTED: frozenset[str] = frozenset(
    {"listUnitTickets", "getUnitTicket", "listUnitNotices", *(op_id for op_id, _, _, _ in ACTIONS.values())}
)


def _unit_of(request: web.Request) -> tuple[UnitDeskPort, str, str]:
    """The desk, the unit and the username of a unit account's request; 403 for anyone else."""
    who = principal(request)
    if who.role != UNIT or not who.unit:
        raise Forbidden(f"承办单位接口仅供承办单位账号使用（{who.username or '未登录用户'} 的角色是 {who.role}）")
    desk = request.app[UNIT_DESK]
    if desk is None:
        raise NotFound("this process serves no units")
    return desk, who.unit, who.username


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "100")
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequest(f"limit must be an integer, got {raw!r}") from None


async def list_tickets(request: web.Request) -> web.Response:
    desk, unit, _ = _unit_of(request)
    stage, light, limit = request.query.get("state") or None, request.query.get("light") or None, _limit(request)
    tickets = await in_thread(lambda: desk.unit_tickets(unit, stage=stage, light=light, limit=limit))
    return json_reply({"tickets": tickets})


async def get_ticket(request: web.Request) -> web.Response:
    desk, unit, _ = _unit_of(request)
    return json_reply(await in_thread(desk.unit_ticket, unit, request.match_info["number"]))


def _action_handler(action: str) -> Any:
    async def act(request: web.Request) -> web.Response:
        desk, unit, username = _unit_of(request)
        body = await optional_object(request)
        version = body.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise InvalidRequest("version must be an integer")
        now = datetime.fromtimestamp(request.app[CLOCK_MS]() / 1000, UTC)
        number = request.match_info["number"]
        view = await in_thread(desk.unit_act, unit, username, number, action, body, now, version)
        return json_reply(view)

    act.__name__ = f"unit_{action.replace('-', '_')}"
    return act


async def list_notices(request: web.Request) -> web.Response:
    desk, unit, _ = _unit_of(request)
    return json_reply({"notices": await in_thread(desk.unit_notices, unit, _limit(request))})


def add_routes(app: web.Application) -> None:
    """Adds this part's routes to the API application."""
    store = app[STORE]
    app[UNIT_DESK] = store if isinstance(store, UnitDeskPort) else None
    app.router.add_get(f"{P}/tickets", list_tickets)
    app.router.add_get(f"{P}/tickets/{{number}}", get_ticket)
    for action in ACTIONS:
        app.router.add_post(f"{P}/tickets/{{number}}/{action}", _action_handler(action))
    app.router.add_get(f"{P}/notices", list_notices)
