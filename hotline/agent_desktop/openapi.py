"""The OpenAPI 3.0 document of the agent desktop REST API (tests check it against the router)."""

from __future__ import annotations

import copy
import importlib
from typing import Any

API_PREFIX = "/api/v1"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "invalid-request: malformed JSON or parameter",
        401: "unauthorized: no session, or it expired (sign in again)",
        403: "forbidden: the role or ownership does not allow this (an agent acts on his own agent only)",
        429: "too-many-attempts: too many sign-ins for this username from this address (see Retry-After)",
        404: "no-such-agent / no-such-call",
        409: "conflict / illegal-transition: the change is not possible in the agent's current state",
        503: "unavailable: Redis or the ticket store is not reachable",
    }
    return {str(status): _json(_ref("Error"), text[status]) for status in statuses}


_AGENT_ID = {"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string"}}
_CALL_ID = {"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_NULLABLE_TIME = {"type": "string", "format": "date-time", "nullable": True}
_NULLABLE_MS = {"type": "integer", "nullable": True}
_AGENT_STATES = ["logged_out", "available", "reserved", "on_call", "wrap_up", "paused"]

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "stable id, e.g. no-such-agent"},
            "message": {"type": "string"},
        },
    },
    "LoginRequest": {
        "type": "object",
        "required": ["username", "password"],
        "additionalProperties": False,
        "properties": {"username": {"type": "string"}, "password": {"type": "string", "format": "password"}},
    },
    "Principal": {
        "type": "object",
        "required": ["username", "role", "agent_id"],
        "properties": {
            "username": {"type": "string"},
            "role": {"type": "string", "enum": ["agent", "supervisor", "admin", "unit"]},
            "agent_id": {**_NULLABLE_STRING, "description": "the agent this account acts as"},
            "unit": {"type": "string", "description": "unit accounts only: the unit (承办单位) it acts for"},
        },
    },
    "Session": {
        "type": "object",
        "required": ["token", "token_type", "expires_in", "account"],
        "properties": {
            "token": {"type": "string", "description": "send as Authorization: Bearer <token>"},
            "token_type": {"type": "string", "enum": ["Bearer"]},
            "expires_in": {"type": "integer", "description": "seconds the session lasts"},
            "account": _ref("Principal"),
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Agent": {
        "type": "object",
        "required": ["agent_id", "state", "reason", "since_ms", "registered"],
        "properties": {
            "agent_id": {"type": "string"},
            "name": {"type": "string"},
            "extension": _NULLABLE_STRING,
            "sip_uri": _NULLABLE_STRING,
            "state": {"type": "string", "enum": _AGENT_STATES},
            "reason": {
                "type": "string",
                "description": "why the agent is in this state: the pause code (小休, 用餐, no-answer, "
                "not-registered ...), the failure or logout reason, or empty",
            },
            "since_ms": {"type": "integer", "description": "epoch ms the agent entered the state (0: never seen)"},
            "since": {**_NULLABLE_TIME, "description": "since_ms as UTC date-time (null: never seen)"},
            "call_id": {**_NULLABLE_STRING, "description": "the call offered, answered or being wrapped up"},
            "idle_since_ms": {**_NULLABLE_MS, "description": "available only: longest idle is offered first"},
            "wrap_up_until_ms": {**_NULLABLE_MS, "description": "wrap_up only: when it ends by itself"},
            "registered": {"type": "boolean", "description": "present in the agent registry"},
            "device": {
                "type": "string",
                "enum": ["registered", "unreachable", "unknown"],
                "description": "his softphone at Kamailio's registrar, probed by the control plane "
                "(unreachable: not offered calls; unknown: not probed, e.g. without Kamailio)",
            },
        },
    },
    "AgentStateRequest": {
        "type": "object",
        "required": ["state"],
        "additionalProperties": False,
        "properties": {
            "state": {
                "type": "string",
                "enum": ["available", "paused", "wrap_up_done"],
                "description": "available: end a pause; paused: take a break (reason required); "
                "wrap_up_done: end the wrap-up after a call early",
            },
            "reason": {"type": "string", "maxLength": 64, "description": "pause code, e.g. 小休, 用餐, 培训"},
        },
    },
    "AgentList": {
        "type": "object",
        "required": ["agents"],
        "properties": {"agents": {"type": "array", "items": _ref("Agent")}},
    },
    "LogoutRequest": {
        "type": "object",
        "properties": {"reason": {"type": "string", "description": "why (logged only)"}},
    },
    "WaitingCall": {
        "type": "object",
        "required": ["call_id", "worker_id", "caller", "arrival_ms", "position", "priority", "waited_s"],
        "properties": {
            "call_id": {"type": "string"},
            "worker_id": {"type": "string"},
            "caller": {"type": "string"},
            "arrival_ms": {"type": "integer"},
            "position": {"type": "integer", "minimum": 1},
            "offered_to": _NULLABLE_STRING,
            "priority": {
                "type": "string",
                "enum": ["normal", "flagged", "emergency"],
                "description": "served highest first, by arrival within a priority",
            },
            "waited_s": {"type": "number", "description": "seconds since the call arrived"},
            "callback": {
                "type": "boolean",
                "description": "the caller pressed 1 and hung up: called back at this place",
            },
            "estimated_wait_s": {
                "type": "number",
                "nullable": True,
                "description": "seconds until an agent is likely free for it (null: nobody takes calls)",
            },
            "queue": {"type": "string", "description": "the queue it waits in (position counts within it)"},
        },
    },
    "OfferedCall": {
        "type": "object",
        "required": ["call_id", "worker_id", "caller", "arrival_ms", "offered_to", "priority", "waited_s"],
        "properties": {
            "call_id": {"type": "string"},
            "worker_id": {"type": "string"},
            "caller": {"type": "string"},
            "arrival_ms": {"type": "integer"},
            "offered_to": {"type": "string", "description": "the agent whose phone rings"},
            "priority": {"type": "string", "enum": ["normal", "flagged", "emergency"]},
            "waited_s": {"type": "number", "description": "seconds since the call arrived (ringing included)"},
            "callback": {"type": "boolean"},
            "queue": {"type": "string"},
        },
    },
    "Queue": {
        "type": "object",
        "required": ["waiting", "count"],
        "properties": {
            "offered": {
                "type": "array",
                "items": _ref("OfferedCall"),
                "description": "calls ringing at an agent's phone now, oldest first (not in waiting)",
            },
            "waiting": {
                "type": "array",
                "items": _ref("WaitingCall"),
                "description": "every queue's calls, in the order they are offered",
            },
            "count": {"type": "integer"},
            "queues": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "calls waiting per queue, every configured queue named",
            },
        },
    },
    "CallRecord": {
        "type": "object",
        "required": ["call_id", "caller", "callee", "worker_id", "started_at", "outcome"],
        "properties": {
            "call_id": {"type": "string"},
            "caller": {"type": "string"},
            "callee": {"type": "string"},
            "worker_id": {"type": "string"},
            "started_at": {"type": "string", "format": "date-time"},
            "outcome": {
                "type": "string",
                "enum": ["answered", "abandoned_in_queue", "abandoned_in_greeting", "failed", "rejected"],
            },
            "answered_at": _NULLABLE_TIME,
            "queued_at": _NULLABLE_TIME,
            "connected_at": _NULLABLE_TIME,
            "ended_at": _NULLABLE_TIME,
            "agent_id": _NULLABLE_STRING,
            "dtmf": {"type": "string"},
            "recording_path": _NULLABLE_STRING,
            "hangup_by": _NULLABLE_STRING,
            "reason": {"type": "string"},
        },
    },
    "CallList": {
        "type": "object",
        "required": ["calls"],
        "properties": {"calls": {"type": "array", "items": _ref("CallRecord")}},
    },
    "WallboardQueue": {
        "type": "object",
        "required": [
            "name",
            "waiting",
            "longest_wait_s",
            "callbacks_waiting",
            "answered_today",
            "abandoned_today",
            "service_level",
            "answer_rate",
            "average_handle_s",
        ],
        "description": "Now (Redis) and today, the Asia/Shanghai day (call records). Counts: "
        "hotline.core.ports.CallStats. Ratios and averages are null before any call.",
        "properties": {
            "name": {"type": "string"},
            "waiting": {"type": "integer", "description": "callers on the line in the queue (callbacks not)"},
            "longest_wait_s": {"type": "number", "description": "longest wait of those callers (0: none)"},
            "callbacks_waiting": {"type": "integer", "description": "callers who hung up keeping their place"},
            "offered_today": {"type": "integer", "description": "answered + abandoned + callbacks requested"},
            "answered_today": {"type": "integer"},
            "abandoned_today": {"type": "integer", "description": "hung up while queued"},
            "callbacks_requested_today": {"type": "integer"},
            "callbacks_answered_today": {"type": "integer"},
            "service_level": {
                "type": "object",
                "required": ["fraction", "threshold_s", "answered_within"],
                "properties": {
                    "fraction": {
                        "type": "number",
                        "nullable": True,
                        "description": "answered within threshold_s / (answered + abandoned)",
                    },
                    "threshold_s": {"type": "number", "description": "queue.service_level_s"},
                    "answered_within": {"type": "integer"},
                },
            },
            "answer_rate": {
                "type": "number",
                "nullable": True,
                "description": "接通率: answered / (answered + abandoned)",
            },
            "average_handle_s": {"type": "number", "nullable": True, "description": "talk time, callbacks too"},
            "average_answer_s": {"type": "number", "nullable": True, "description": "wait of answered callers"},
        },
    },
    "WallboardAgent": {
        "type": "object",
        "required": ["agent_id", "state", "reason", "in_state_s", "calls_answered", "talk_s"],
        "properties": {
            "agent_id": {"type": "string"},
            "name": {"type": "string"},
            "state": {"type": "string", "enum": _AGENT_STATES},
            "reason": {"type": "string"},
            "in_state_s": {"type": "number", "description": "seconds in this state"},
            "call_id": _NULLABLE_STRING,
            "calls_answered": {"type": "integer", "description": "since his login"},
            "talk_s": {"type": "number", "description": "seconds talked since his login"},
            "device": {
                "type": "string",
                "enum": ["registered", "unreachable", "unknown"],
                "description": "his softphone at Kamailio's registrar, probed by the control plane "
                "(unreachable: not offered calls; unknown: not probed, e.g. without Kamailio)",
            },
        },
    },
    "Alert": {
        "type": "object",
        "required": ["kind", "queue", "value", "threshold", "message"],
        "properties": {
            "kind": {"type": "string", "enum": ["queue_depth", "longest_wait"]},
            "queue": {"type": "string"},
            "value": {"type": "number"},
            "threshold": {"type": "number", "description": "wallboard.alert_depth or wallboard.alert_wait_s"},
            "message": {"type": "string"},
        },
    },
    "Wallboard": {
        "type": "object",
        "required": ["generated_at", "day", "queue", "agents", "alerts"],
        "properties": {
            "generated_at": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date", "description": "the Asia/Shanghai day counted"},
            "queue": _ref("WallboardQueue"),
            "queues": {
                "type": "array",
                "description": "each queue now (the day's counts are the deployment's: records name no queue)",
                "items": {
                    "type": "object",
                    "required": ["name", "waiting", "longest_wait_s", "callbacks_waiting", "service_level_s"],
                    "properties": {
                        "name": {"type": "string"},
                        "waiting": {"type": "integer", "description": "callers on the line (callbacks not)"},
                        "longest_wait_s": {"type": "number"},
                        "callbacks_waiting": {"type": "integer"},
                        "service_level_s": {"type": "number", "description": "this queue's threshold"},
                    },
                },
            },
            "agents": {
                "type": "array",
                "items": _ref("WallboardAgent"),
                "description": "logged-in agents",
            },
            "alerts": {"type": "array", "items": _ref("Alert")},
        },
    },
    "RecordingAccess": {
        "type": "object",
        "required": ["id", "call_id", "who", "role", "at", "action", "why", "client"],
        "properties": {
            "id": {"type": "integer"},
            "call_id": {"type": "string"},
            "who": {"type": "string", "description": "the account's username"},
            "role": {"type": "string", "enum": ["agent", "supervisor", "admin"]},
            "at": {"type": "string", "format": "date-time"},
            "action": {"type": "string", "enum": ["play", "download"]},
            "why": {"type": "string"},
            "client": {"type": "string", "description": "the client's address"},
        },
    },
    "RecordingAccessLog": {
        "type": "object",
        "required": ["call_id", "access"],
        "properties": {
            "call_id": {"type": "string"},
            "access": {"type": "array", "items": _ref("RecordingAccess"), "description": "oldest first"},
        },
    },
}


# Reachable without a session; the rest needs `Authorization: Bearer <token>`.
_PUBLIC = {f"{API_PREFIX}/health", f"{API_PREFIX}/openapi.json", f"{API_PREFIX}/login", "/metrics"}
# What a unit account reaches besides /unit/... and the public paths (auth.UNIT_PATHS): anything
# else answers it 403.
_UNIT_PATHS = {f"{API_PREFIX}/me", f"{API_PREFIX}/logout"}
# Refused (403) to some roles or to other agents' data: an agent acts on his own agent and calls only.
_RESTRICTED = {
    "getAgent", "loginAgent", "logoutAgent", "setAgentState", "getCall", "wallboard", "getRecording",
    "recordingAccess",
}  # fmt: skip


# The API's parts that live in modules of their own (api_*.py): each has PATHS, SCHEMAS, RESTRICTED
# (operation ids refused to some roles) and add_routes(app). Imported when the document is built,
# because they import this module's helpers.
PARTS = (
    "hotline.agent_desktop.api_tickets",
    "hotline.agent_desktop.api_units",
    "hotline.agent_desktop.api_reports",
    "hotline.agent_desktop.api_calls",
)

# Public names for the parts' documents.
ref = _ref
json_body = _json
errors = _errors


def parts() -> list[Any]:
    """The API part modules, in PARTS order."""
    return [importlib.import_module(name) for name in PARTS]


def document() -> dict[str, Any]:
    """The OpenAPI document; paths are absolute (they include API_PREFIX)."""
    p = API_PREFIX
    paths: dict[str, Any] = {
        f"{p}/health": {
            "get": {
                "summary": "Liveness and reachability of Redis and the ticket store",
                "operationId": "health",
                "responses": {
                    "200": _json(_ref("Health"), "all dependencies reachable"),
                    "503": _json(_ref("Health"), "a dependency is not reachable"),
                },
            }
        },
        f"{p}/login": {
            "post": {
                "summary": "Sign in: a session token for the account (rate-limited per username and address)",
                "operationId": "login",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("LoginRequest")}}},
                "responses": {
                    "200": _json(_ref("Session"), "signed in"),
                    "401": _json(_ref("Error"), "unauthorized: wrong username or password, or a disabled account"),
                    **_errors(400, 429),
                    "404": _json(_ref("Error"), "not-found: sign-in is off (api.auth: false)"),
                },
            }
        },
        f"{p}/logout": {
            "post": {
                "summary": "End this session (the token stops working)",
                "operationId": "logout",
                "responses": {"200": _json({"type": "object"}, "signed out")},
            }
        },
        f"{p}/ws": {
            "get": {
                "summary": "WebSocket of live events, filtered by role (token as ?token= or Bearer)",
                "description": 'Text messages {"id", "type", "data"}: agent.state, call.queued, '
                "call.started, call.ended, call.draft, offer.answered, offer.failed, alert; first "
                '{"type": "hello"}. An agent gets his own agent\'s events and the drafts of calls '
                "offered to him; supervisors everything. A client too slow to keep up is closed with "
                "code 4008; the server pings every 20 s.",
                "operationId": "liveEvents",
                "parameters": [
                    {"name": "token", "in": "query", "required": False, "schema": {"type": "string"}},
                ],
                "responses": {
                    "101": {"description": "switching to the WebSocket protocol"},
                    "404": _json(_ref("Error"), "not-found: this process has no live feed"),
                },
            }
        },
        f"{p}/me": {
            "get": {
                "summary": "The account this session acts for",
                "operationId": "me",
                "responses": {"200": _json(_ref("Principal"), "the account")},
            }
        },
        f"{p}/agents": {
            "get": {
                "summary": "Registered agents with their live queue state",
                "operationId": "listAgents",
                "responses": {"200": _json(_ref("AgentList"), "agents by id"), **_errors(503)},
            }
        },
        f"{p}/agents/{{agent_id}}": {
            "get": {
                "summary": "One agent with its live queue state",
                "operationId": "getAgent",
                "parameters": [_AGENT_ID],
                "responses": {"200": _json(_ref("Agent"), "the agent"), **_errors(404, 503)},
            }
        },
        f"{p}/agents/{{agent_id}}/login": {
            "post": {
                "summary": "Log the agent in (idempotent: a logged-in agent keeps his state)",
                "operationId": "loginAgent",
                "parameters": [_AGENT_ID],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {"200": _json(_ref("Agent"), "the agent"), **_errors(400, 404, 503)},
            }
        },
        f"{p}/agents/{{agent_id}}/logout": {
            "post": {
                "summary": "Log the agent out; a call offered to him goes back to its place",
                "operationId": "logoutAgent",
                "parameters": [_AGENT_ID],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("LogoutRequest")}},
                },
                "responses": {"200": _json(_ref("Agent"), "the agent"), **_errors(400, 404, 409, 503)},
            }
        },
        f"{p}/agents/{{agent_id}}/state": {
            "post": {
                "summary": "The agent sets his own state: end a pause, pause with a reason, end wrap-up",
                "operationId": "setAgentState",
                "parameters": [_AGENT_ID],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("AgentStateRequest")}},
                },
                "responses": {
                    "200": _json(_ref("Agent"), "the agent (unchanged if the request was already satisfied)"),
                    **_errors(400, 404, 409, 503),
                },
            }
        },
        f"{p}/queue": {
            "get": {
                "summary": "Calls waiting for an agent, in the order they will be offered",
                "operationId": "getQueue",
                "responses": {"200": _json(_ref("Queue"), "the waiting calls"), **_errors(503)},
            }
        },
        f"{p}/calls": {
            "get": {
                "summary": "Records of finished calls, newest first",
                "operationId": "listCalls",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    }
                ],
                "responses": {"200": _json(_ref("CallList"), "call records"), **_errors(400, 503)},
            }
        },
        f"{p}/calls/{{call_id}}": {
            "get": {
                "summary": "The record of one call",
                "operationId": "getCall",
                "parameters": [_CALL_ID],
                "responses": {"200": _json(_ref("CallRecord"), "the record"), **_errors(404, 503)},
            }
        },
        f"{p}/wallboard": {
            "get": {
                "summary": "Supervisor wallboard: the queue now and today, agents, alerts (supervisors, admins)",
                "operationId": "wallboard",
                "responses": {"200": _json(_ref("Wallboard"), "the wallboard"), **_errors(503)},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition 0.0.4): queue, agents, today's calls, workers, "
                "ASR latency",
                "description": "Public like health (scrapers carry no token); served on the API's address, "
                "127.0.0.1 unless http.host says otherwise. Counts only, never a caller's number. "
                "hotline_asr_latency_seconds (histogram: _bucket{le}, _sum, _count): seconds from when the "
                "caller said words to when their text reached the agent.",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "the metrics",
                        "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
                    },
                    **_errors(503),
                },
            }
        },
        f"{p}/recordings/{{call_id}}": {
            "get": {
                "summary": "Play or download a call's recording (audited; supervisors, admins, the call's agent)",
                "description": "Stereo, caller left and agent right. The access is written to the audit "
                "(who, role, when, why, client address) before the first byte is sent; responses are "
                "never cached. There is no other way to a recording: no file URLs.",
                "operationId": "getRecording",
                "parameters": [
                    _CALL_ID,
                    {
                        "name": "why",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 500},
                        "description": "why the recording is needed (e.g. 质检, 投诉复核); logged",
                    },
                    {
                        "name": "action",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["play", "download"], "default": "play"},
                        "description": "download: Content-Disposition attachment",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the recording",
                        "headers": {
                            "X-Recording-Gaps": {
                                "description": "spans with no audio, e.g. 5361-8375 paused (ms from the first "
                                "sample; paused: silence for sensitive data, disk-low: not recorded); absent: none",
                                "schema": {"type": "string"},
                            }
                        },
                        "content": {
                            kind: {"schema": {"type": "string", "format": "binary"}}
                            for kind in ("audio/wav", "audio/flac", "audio/ogg")
                        },
                    },
                    "400": _json(_ref("Error"), "reason-required: no ?why= / invalid-request: a bad action"),
                    "404": _json(_ref("Error"), "no-such-recording: unknown, purged, or its file is gone"),
                    **_errors(503),
                },
            }
        },
        f"{p}/recordings/{{call_id}}/access": {
            "get": {
                "summary": "Who played or downloaded a recording, when and why (admins)",
                "operationId": "recordingAccess",
                "parameters": [_CALL_ID],
                "responses": {
                    "200": _json(_ref("RecordingAccessLog"), "the audit, oldest first"),
                    "404": _json(_ref("Error"), "no-such-recording"),
                    **_errors(503),
                },
            }
        },
        f"{p}/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.0 document")},
            }
        },
    }
    schemas = dict(_SCHEMAS)
    restricted = set(_RESTRICTED)
    for part in parts():
        for path, item in part.PATHS.items():
            for method, operation in item.items():
                if method in paths.get(path, {}):
                    raise ValueError(f"{part.__name__}: {method.upper()} {path} is documented twice")
                paths.setdefault(path, {})[method] = copy.deepcopy(operation)
        for name, schema in part.SCHEMAS.items():
            if name in schemas:
                raise ValueError(f"{part.__name__}: schema {name} is defined twice")
            schemas[name] = schema
        restricted |= set(part.RESTRICTED)
    for path, item in paths.items():
        for operation in item.values():
            if path in _PUBLIC:
                operation["security"] = []
                continue
            operation["responses"].update(_errors(401))
            # A unit account is refused everything outside its allow-list (auth.py's rules).
            unit_reaches = path.startswith(f"{API_PREFIX}/unit/") or path in _UNIT_PATHS
            if operation["operationId"] in restricted or not unit_reaches:
                operation["responses"].update(_errors(403))
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "hotline agent desktop API",
            "version": "1.0.0",
            "description": "Agents, queue and call records of a 12345 hotline. Errors are "
            '{"error": "<stable id>", "message": "..."}. Roles: an agent sees and changes his own agent '
            "and calls only; supervisors and admins see and change every agent. The queue and the "
            "WebSocket show callers' numbers masked (138****8000) to every role; a call, a ticket or "
            "a call's context carries the whole number, and each such read is audited. Units (承办单位) "
            "reach only /unit/... and never see the caller. With api.auth off every request acts as an admin.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "POST /login's token"}},
        },
        "security": [{"bearer": []}],
    }
