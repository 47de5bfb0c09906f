"""The agent desktop REST API (aiohttp), on the ports only: CallQueue and TicketStore.

Handlers parse, call a port, serialise. One middleware turns every failure into JSON
{"error": "<stable id>", "message": ...}: DomainError with its own status, unknown routes 404,
wrong methods 405, anything unexpected 500 (logged). The ticket store is synchronous, so it is
called in a worker thread; the queue is async. Sign-in, sessions and what each role may do:
auth.py (the second middleware sets each request's principal); the live WebSocket: live.py;
the supervisor's wallboard and the Prometheus metrics: wallboard.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from hotline.agent_desktop import auth as authmod
from hotline.agent_desktop import web as desk_page
from hotline.agent_desktop.auth import AUTH, Auth, auth_middleware, principal
from hotline.agent_desktop.live import LIVE, LiveHub, close_clients, live_context, websocket
from hotline.agent_desktop.openapi import API_PREFIX, document, parts
from hotline.agent_desktop.privacy import AUDIT, PersonalDataAudit, audit_read
from hotline.agent_desktop.recordings import RECORDINGS, RecordingArchive, get_recording, recording_access
from hotline.agent_desktop.responses import error_reply, in_thread, json_reply, optional_object
from hotline.agent_desktop.wallboard import WALLBOARD, Wallboard, WallboardSettings, get_metrics, get_wallboard
from hotline.core.errors import DomainError, InvalidRequest, NoSuchAgent, NoSuchCall
from hotline.core.model import Agent, AgentId, AgentState, CallId, to_iso
from hotline.core.ports import AgentStatus, AsrLatencySource, CallQueue, TicketStore, WorkerRegistry

logger = logging.getLogger(__name__)

QUEUE = web.AppKey[CallQueue]("queue")
STORE = web.AppKey[TicketStore]("store")
CLOCK_MS = web.AppKey[Callable[[], int]]("clock_ms")

MAX_CALLS_LIMIT = 1000
DEFAULT_CALLS_LIMIT = 100
# What an agent may ask of his own state (POST .../state {"state": ...}).
STATE_REQUESTS = ("available", "paused", "wrap_up_done")

_json = json_reply
_error = error_reply
_in_thread = in_thread
_optional_object = optional_object


def wall_clock_ms() -> int:
    """Epoch milliseconds (what the queue records as agent state times)."""
    return time.time_ns() // 1_000_000


_HTTP_ERROR_IDS = {400: "invalid-request", 404: "not-found", 405: "method-not-allowed", 413: "too-large"}


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Maps every failure to the JSON error shape of the API."""
    try:
        return await handler(request)
    except DomainError as exc:
        if exc.status >= 500:
            logger.warning("%s %s failed: %s", request.method, request.path, exc.message)
        return _error(exc.status, exc.error_id, exc.message, getattr(exc, "headers", None))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _error(exc.status, _HTTP_ERROR_IDS.get(exc.status, "http-error"), exc.reason, headers)
    except Exception:
        logger.exception("%s %s failed unexpectedly", request.method, request.path)
        return _error(500, "internal", "internal error")


def _iso_ms(ms: int | None) -> str | None:
    return None if not ms else to_iso(datetime.fromtimestamp(ms / 1000, UTC))


def _agent_view(agent_id: AgentId, agent: Agent | None, status: AgentStatus) -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "name": agent.name if agent else "",
        "extension": agent.extension if agent else None,
        "sip_uri": agent.sip_uri if agent else None,
        "state": status.state.value,
        "reason": status.reason,
        "since_ms": status.since_ms,
        "since": _iso_ms(status.since_ms),
        "call_id": status.call_id,
        "idle_since_ms": status.idle_since_ms,
        "wrap_up_until_ms": status.wrap_up_until_ms,
        "registered": agent is not None,
        "device": status.device or "unknown",  # his softphone at Kamailio's registrar
    }


def _known_to_queue(status: AgentStatus) -> bool:
    return status.state is not AgentState.LOGGED_OUT or status.since_ms != 0


# --- handlers ---------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        await request.app[QUEUE].agents()
        checks["queue"] = "ok"
    except DomainError as exc:
        checks["queue"] = f"{exc.error_id}: {exc.message}"
    try:
        await _in_thread(request.app[STORE].list_agents)
        checks["store"] = "ok"
    except DomainError as exc:
        checks["store"] = f"{exc.error_id}: {exc.message}"
    healthy = all(value == "ok" for value in checks.values())
    return _json({"status": "ok" if healthy else "degraded", "checks": checks}, status=200 if healthy else 503)


async def list_agents(request: web.Request) -> web.Response:
    """Supervisors see every agent; an agent sees himself."""
    who = principal(request)
    registry = await _in_thread(request.app[STORE].list_agents)
    live = {status.agent_id: status for status in await request.app[QUEUE].agents()}
    views = []
    registered = {agent.agent_id: agent for agent in registry}
    for agent_id in sorted(set(registered) | set(live)):
        status = live.get(agent_id) or AgentStatus(agent_id, AgentState.LOGGED_OUT, 0)
        if who.supervises or who.owns(agent_id):
            views.append(_agent_view(agent_id, registered.get(agent_id), status))
    return _json({"agents": views})


async def get_agent(request: web.Request) -> web.Response:
    agent_id = AgentId(request.match_info["agent_id"])
    principal(request).check_agent(agent_id)
    agent = await _in_thread(request.app[STORE].get_agent, agent_id)
    status = await request.app[QUEUE].agent_status(agent_id)
    if agent is None and not _known_to_queue(status):
        raise NoSuchAgent(f"no agent {agent_id}")
    return _json(_agent_view(agent_id, agent, status))


async def login(request: web.Request) -> web.Response:
    agent_id = AgentId(request.match_info["agent_id"])
    who = principal(request)
    who.check_agent(agent_id)
    await _optional_object(request)
    agent = await _in_thread(request.app[STORE].get_agent, agent_id)
    if agent is None:
        raise NoSuchAgent(f"no agent {agent_id} in the registry")
    status = await request.app[QUEUE].agent_login(agent, request.app[CLOCK_MS](), by=who.actor_for(agent_id))
    logger.info("agent %s logged in (%s)", agent_id, status.state.value)
    return _json(_agent_view(agent_id, agent, status))


async def logout(request: web.Request) -> web.Response:
    agent_id = AgentId(request.match_info["agent_id"])
    who = principal(request)
    who.check_agent(agent_id)
    body = await _optional_object(request)
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise InvalidRequest("reason must be a string")
    agent = await _in_thread(request.app[STORE].get_agent, agent_id)
    queue = request.app[QUEUE]
    if agent is None and not _known_to_queue(await queue.agent_status(agent_id)):
        raise NoSuchAgent(f"no agent {agent_id}")
    status = await queue.agent_logout(agent_id, request.app[CLOCK_MS](), by=who.actor_for(agent_id), reason=reason)
    logger.info("agent %s logged out (%s)", agent_id, reason or "no reason given")
    return _json(_agent_view(agent_id, agent, status))


async def set_state(request: web.Request) -> web.Response:
    """The agent's own request: available (end a pause), paused with a reason, wrap_up_done."""
    agent_id = AgentId(request.match_info["agent_id"])
    who = principal(request)
    who.check_agent(agent_id)
    by = who.actor_for(agent_id)
    body = await _optional_object(request)
    unknown = sorted(set(body) - {"state", "reason"})
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(unknown)}")
    wanted = body.get("state")
    if wanted not in STATE_REQUESTS:
        raise InvalidRequest(f"state must be one of {', '.join(STATE_REQUESTS)}, got {wanted!r}")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise InvalidRequest("reason must be a string")
    if wanted == "paused" and not reason.strip():
        raise InvalidRequest("a pause needs a reason (e.g. 小休, 用餐, 培训)")
    agent = await _in_thread(request.app[STORE].get_agent, agent_id)
    queue = request.app[QUEUE]
    if agent is None and not _known_to_queue(await queue.agent_status(agent_id)):
        raise NoSuchAgent(f"no agent {agent_id}")
    now = request.app[CLOCK_MS]()
    if wanted == "paused":
        status = await queue.agent_pause(agent_id, reason, now, by=by)
    elif wanted == "available":
        status = await queue.agent_resume(agent_id, now, by=by)
    else:
        status = await queue.wrap_up_done(agent_id, now, by=by)
    logger.info("agent %s asked for %s: %s %s", agent_id, wanted, status.state.value, status.reason)
    return _json(_agent_view(agent_id, agent, status))


async def get_queue(request: web.Request) -> web.Response:
    """Everyone signed in; callers' numbers masked (the whole number: the audited reads)."""
    who = principal(request)
    now = request.app[CLOCK_MS]()
    waiting = await request.app[QUEUE].waiting(now)
    items = [
        {
            "call_id": call.call_id,
            "worker_id": call.worker_id,
            "caller": who.caller(call.caller),
            "arrival_ms": call.arrival_ms,
            "position": call.position,
            "offered_to": call.offered_to,
            "priority": call.priority.name.lower(),
            "waited_s": round(max(0, now - call.arrival_ms) / 1000, 1),
            "callback": call.callback,
            "estimated_wait_s": None if call.estimated_wait_s is None else round(call.estimated_wait_s, 1),
            "queue": call.queue,
        }
        for call in waiting
    ]
    # Every configured queue, each with its count (position is within the call's queue).
    queues = {name: 0 for name in request.app[WALLBOARD].settings.queue_names}
    for call in waiting:
        queues[call.queue] = queues.get(call.queue, 0) + 1
    # Calls ringing at an agent's phone: their agent's page shows how long the caller has waited.
    offered = [
        {
            "call_id": call.call_id,
            "worker_id": call.worker_id,
            "caller": who.caller(call.caller),
            "arrival_ms": call.arrival_ms,
            "offered_to": call.offered_to,
            "priority": call.priority.name.lower(),
            "waited_s": round(max(0, now - call.arrival_ms) / 1000, 1),
            "callback": call.callback,
            "queue": call.queue,
        }
        for call in await request.app[QUEUE].offered()
    ]
    return _json({"waiting": items, "count": len(items), "queues": queues, "offered": offered})


async def list_calls(request: web.Request) -> web.Response:
    raw = request.query.get("limit", str(DEFAULT_CALLS_LIMIT))
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidRequest(f"limit must be an integer, got {raw!r}") from None
    if not 1 <= limit <= MAX_CALLS_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_CALLS_LIMIT}, got {limit}")
    who = principal(request)
    if who.supervises:
        records = await _in_thread(request.app[STORE].list_calls, limit)
    else:  # an agent: his own calls among the latest MAX_CALLS_LIMIT
        latest = await _in_thread(request.app[STORE].list_calls, MAX_CALLS_LIMIT)
        records = [record for record in latest if who.owns(record.agent_id)][:limit]
    await audit_read(request, "call", [record.call_id for record in records])  # every caller is unmasked
    return _json({"calls": [record.to_dict() for record in records]})


async def get_call(request: web.Request) -> web.Response:
    call_id = CallId(request.match_info["call_id"])
    record = await _in_thread(request.app[STORE].get_call, call_id)
    if record is None:
        raise NoSuchCall(f"no call {call_id}")
    who = principal(request)
    if not who.supervises and not who.owns(record.agent_id):
        raise authmod.Forbidden(f"call {call_id} was not {who.username}'s")
    await audit_read(request, "call", [call_id])
    return _json(record.to_dict())


async def openapi(request: web.Request) -> web.Response:
    return _json(document())


def make_app(
    queue: CallQueue,
    store: TicketStore,
    *,
    auth: Auth | None,
    live: LiveHub | None = None,
    clock_ms: Callable[[], int] = wall_clock_ms,
    wallboard: WallboardSettings | None = None,
    workers: WorkerRegistry | None = None,
    asr: AsrLatencySource | None = None,
) -> web.Application:
    """The API application; the caller owns (and closes) the queue's client and the store.

    `auth`: accounts and sessions; None turns sign-in off (every request acts as an admin).
    `live`: the WebSocket's event feed (None: /ws answers 404).
    `wallboard`: the wallboard's and metrics' settings (queue name, thresholds; None: defaults);
    `workers`: the media workers' heartbeats for /metrics (None: no worker metrics);
    `asr`: the speech service's latency histogram for /metrics (None: no ASR metrics).
    """
    app = web.Application(middlewares=[error_middleware, auth_middleware])
    app[AUTH] = auth
    app[LIVE] = live
    app.cleanup_ctx.append(live_context)
    app.on_shutdown.append(close_clients)
    app[QUEUE] = queue
    app[STORE] = store
    app[CLOCK_MS] = clock_ms
    # Recordings are served (audited) only if the store keeps their catalogue (recordings.py).
    app[RECORDINGS] = store if isinstance(store, RecordingArchive) else None
    # Callers' numbers and names are shown only with an audit of each read (privacy.py).
    app[AUDIT] = store if isinstance(store, PersonalDataAudit) else None
    app[WALLBOARD] = Wallboard(queue, store, wallboard or WallboardSettings(), clock_ms, workers, asr)
    p = API_PREFIX
    app.router.add_get(f"{p}/health", health)
    app.router.add_post(f"{p}/login", authmod.login)
    app.router.add_post(f"{p}/logout", authmod.logout)
    app.router.add_get(f"{p}/me", authmod.me)
    app.router.add_get(f"{p}/ws", websocket)
    app.router.add_get(f"{p}/agents", list_agents)
    app.router.add_get(f"{p}/agents/{{agent_id}}", get_agent)
    app.router.add_post(f"{p}/agents/{{agent_id}}/login", login)
    app.router.add_post(f"{p}/agents/{{agent_id}}/logout", logout)
    app.router.add_post(f"{p}/agents/{{agent_id}}/state", set_state)
    app.router.add_get(f"{p}/queue", get_queue)
    app.router.add_get(f"{p}/calls", list_calls)
    app.router.add_get(f"{p}/calls/{{call_id}}", get_call)
    app.router.add_get(f"{p}/recordings/{{call_id}}", get_recording)
    app.router.add_get(f"{p}/recordings/{{call_id}}/access", recording_access)
    app.router.add_get(f"{p}/openapi.json", openapi)
    app.router.add_get(f"{p}/wallboard", get_wallboard)
    app.router.add_get("/metrics", get_metrics)
    for part in parts():
        part.add_routes(app)
    desk_page.add_routes(app)  # the web page: /, /desk/ (web.py)
    return app
