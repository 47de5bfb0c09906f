"""API part: live calls. The agent pauses the call's recording while the caller gives sensitive
data (ID numbers, bank cards) and resumes it; anyone who may hear a recording reads its gaps.

Rules of this module:
- `POST /calls/{call_id}/recording {"paused": true|false}`: the call's agent (the agent whose
  current call it is in the queue) or a supervisor/admin. A call no worker is running (unknown,
  or finished) is 404 no-such-call; another agent's call is 403.
- The API does not touch media: it sends the `recording` command on the command stream of the
  worker that runs the call (the worker registry's tracked calls say which), as the dispatcher
  sends offers. The worker mutes both legs' recorders (silence in the file, which stays aligned
  with the call) and marks the gap; pausing twice is one gap. The reply (202) says the command
  was sent, not that it took effect: the gap rows are catalogued when the call ends.
- `GET /calls/{call_id}/recording`: the catalogue's view of a finished call's recording (format,
  length, checksum; no path) with its gaps, or why there is none (`missing`: disk-low). For
  supervisors, admins and the agent who took the call.
- Call controls (`hold`, `resume`, `mute`, `transfer` (+ `/complete`, `/cancel`), `conference`,
  `dtmf`, `hangup`; `monitor` for supervisors and admins only): the same path to the worker, as
  one `call-control` command (hotline.runtime.call_controls carries it out and publishes
  `call.control` with the outcome); 202 means sent. The call's agent is the agent on that call in
  the queue, or, after a transfer, the agent the worker's live-call registry names. A transfer to
  an agent needs him available: he is paused (events.TRANSFER_PAUSE) at once so that the
  dispatcher offers him nothing else; when he answers, the worker has the queue put him on the
  call (transfer_taken: its agent from then on, wrap-up after it), and if the transfer fails he
  is resumed.
  A transfer to "queue" puts the call back in the queue at its original arrival time and
  priority (nobody is paused; the agent goes to wrap-up).
- `POST /calls/{call_id}/reject` (拒接): only the agent whose phone that call is ringing at (the
  queue has him RESERVED with it); anyone else 403, the agent once the call is no longer ringing
  at him 409 not-ringing. The same path to the worker, as a `reject` command: the worker hangs
  up his ringing leg, the caller keeps his place and is offered to the next agent, and the agent
  is paused with the reason 拒接 (his choice, not a failure of his phone). 202: sent.
- `POST /calls/{call_id}/answer` (接听 from the desk): the same people and answers as reject, as an
  `answer` command: the worker re-dials his phone with the auto-answer headers (Call-Info
  answer-after=0), so a phone that honours them picks up by itself (hotline.runtime.call_controls).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from hotline.agent_desktop import auth as authmod
from hotline.agent_desktop import openapi
from hotline.agent_desktop.app import CLOCK_MS, QUEUE, STORE
from hotline.agent_desktop.auth import principal
from hotline.agent_desktop.responses import in_thread, json_reply, optional_object
from hotline.core import events as ev
from hotline.core.errors import (
    Conflict,
    InvalidRequest,
    NoSuchAgent,
    NoSuchCall,
    NotFound,
    Unavailable,
)
from hotline.core.model import Actor, AgentId, AgentState, CallId, CallRecord, WorkerId

logger = logging.getLogger(__name__)

_P = openapi.API_PREFIX


@runtime_checkable
class LiveCalls(Protocol):
    """The media workers' live calls and command streams (hotline.queue.bus.RedisEventBus)."""

    async def known_workers(self) -> set[WorkerId]: ...
    async def tracked_calls(self, worker_id: WorkerId) -> dict[CallId, dict[str, Any]]: ...
    async def send_command(self, worker_id: WorkerId, kind: str, data: dict[str, Any]) -> str: ...


class GapView(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class RecordingRowView(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class GapArchive(Protocol):
    """What GET .../recording needs of the ticket store (SqlTicketStore). Synchronous."""

    def get_call(self, call_id: CallId) -> CallRecord | None: ...
    def get_recording(self, call_id: CallId) -> RecordingRowView | None: ...
    def recording_gaps(self, call_id: CallId) -> Sequence[GapView]: ...


# Set by the composition root (the event bus); None: pausing answers 503.
LIVE_CALLS = web.AppKey["LiveCalls | None"]("live_calls")
GAPS = web.AppKey["GapArchive | None"]("recording_gaps")


async def find_live_call(calls: LiveCalls, call_id: CallId) -> tuple[WorkerId, dict[str, Any]] | None:
    """The worker running the call and what it registered of it; None if no worker runs it."""
    for worker in sorted(await calls.known_workers()):
        tracked = await calls.tracked_calls(worker)
        if call_id in tracked:
            return worker, tracked[call_id]
    return None


async def set_recording(request: web.Request) -> web.Response:
    """Pauses or resumes the live call's recording (see the module's rules)."""
    call_id = CallId(request.match_info["call_id"])
    who = principal(request)
    body = await optional_object(request)
    unknown = sorted(set(body) - {"paused"})
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(unknown)}")
    paused = body.get("paused")
    if not isinstance(paused, bool):
        raise InvalidRequest('body must be {"paused": true} or {"paused": false}')
    calls = request.app.get(LIVE_CALLS)
    if calls is None:
        raise Unavailable("this process cannot reach the media workers")
    found = await find_live_call(calls, call_id)
    if found is None:
        raise NoSuchCall(f"no live call {call_id}")
    worker_id, _info = found
    if not who.supervises:
        status = None if who.agent_id is None else await request.app[QUEUE].agent_status(AgentId(who.agent_id))
        if status is None or status.call_id != call_id or status.state is not AgentState.ON_CALL:
            logger.warning("recording of %s: %s (%s) is not on that call", call_id, who.username, who.role)
            raise authmod.Forbidden(f"call {call_id} is not {who.username}'s call")
    by = who.username or (who.agent_id or "admin (api.auth off)")
    await calls.send_command(worker_id, ev.CMD_RECORDING, {"call_id": call_id, "paused": paused, "by": by})
    logger.info(
        "call %s: recording %s asked by %s (worker %s)", call_id, "pause" if paused else "resume", by, worker_id
    )
    return json_reply({"call_id": call_id, "paused": paused, "worker_id": worker_id}, status=202)


class AgentNotAvailable(Conflict):
    error_id = "agent-not-available"


class NotRinging(Conflict):
    error_id = "not-ringing"


async def reject_call(request: web.Request) -> web.Response:
    """The agent declines the call ringing at his phone (see the module's rules)."""
    return await _ringing_command(request, ev.CMD_REJECT, "reject")


async def answer_call(request: web.Request) -> web.Response:
    """The agent answers the call ringing at his phone from the desk (see the module's rules)."""
    return await _ringing_command(request, ev.CMD_ANSWER, "answer")


async def _ringing_command(request: web.Request, kind: str, action: str) -> web.Response:
    """reject / answer: only the agent whose phone the call is ringing at."""
    _fields(await optional_object(request), set())
    call_id = CallId(request.match_info["call_id"])
    who = principal(request)
    calls = request.app.get(LIVE_CALLS)
    if calls is None:
        raise Unavailable("this process cannot reach the media workers")
    found = await find_live_call(calls, call_id)
    if found is None:
        raise NoSuchCall(f"no live call {call_id}")
    worker_id, _info = found
    if who.agent_id is None:
        raise authmod.Forbidden(f"only the agent whose phone rings may {action} a call")
    status = await request.app[QUEUE].agent_status(AgentId(who.agent_id))
    if status.call_id != call_id:
        logger.warning("%s of %s: %s (%s) was not offered that call", action, call_id, who.username, who.role)
        raise authmod.Forbidden(f"call {call_id} is not ringing at {who.username}'s phone")
    if status.state is not AgentState.RESERVED:
        raise NotRinging(f"call {call_id} is no longer ringing at {who.username}'s phone ({status.state.value})")
    by = who.username or who.agent_id
    await calls.send_command(worker_id, kind, {"call_id": call_id, "agent_id": who.agent_id, "by": by})
    logger.info("call %s: %s by agent %s (worker %s)", call_id, action, who.agent_id, worker_id)
    return json_reply({"call_id": call_id, "action": action, "worker_id": worker_id}, status=202)


_DIALABLE = re.compile(ev.DIALABLE)
_DTMF = re.compile(ev.DTMF_DIGITS)


async def _controlled_call(request: web.Request, supervisors_only: bool = False) -> tuple[CallId, WorkerId]:
    """The live call of the path and its worker, if the principal may control it: the call's
    agent (in the queue, or named by the worker after a transfer), supervisors and admins."""
    call_id = CallId(request.match_info["call_id"])
    who = principal(request)
    if supervisors_only:
        who.require_supervisor("monitoring a call")
    calls = request.app.get(LIVE_CALLS)
    if calls is None:
        raise Unavailable("this process cannot reach the media workers")
    found = await find_live_call(calls, call_id)
    if found is None:
        raise NoSuchCall(f"no live call {call_id}")
    worker_id, info = found
    if not who.supervises:
        mine = who.agent_id is not None and info.get("agent_id") == who.agent_id
        if not mine and who.agent_id is not None:
            status = await request.app[QUEUE].agent_status(AgentId(who.agent_id))
            mine = status.call_id == call_id and status.state is AgentState.ON_CALL and not info.get("agent_id")
        if not mine:
            logger.warning("control of %s: %s (%s) is not on that call", call_id, who.username, who.role)
            raise authmod.Forbidden(f"call {call_id} is not {who.username}'s call")
    return call_id, worker_id


def _fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(unknown)}")


async def _send_control(request: web.Request, call_id: CallId, worker_id: WorkerId, action: str,
                        **fields: Any) -> web.Response:  # fmt: skip
    who = principal(request)
    by = who.username or (who.agent_id or "admin (api.auth off)")
    calls = request.app[LIVE_CALLS]
    assert calls is not None
    data = {"call_id": call_id, "action": action, "by": by, **fields}
    await calls.send_command(worker_id, ev.CMD_CALL_CONTROL, data)
    logger.info("call %s: %s asked by %s (worker %s)", call_id, action, by, worker_id)
    return json_reply({"call_id": call_id, "action": action, "worker_id": worker_id}, status=202)


def _control(action: str, supervisors_only: bool = False) -> Any:
    """A handler for a control whose body is empty."""

    async def handler(request: web.Request) -> web.Response:
        _fields(await optional_object(request), set())
        call_id, worker_id = await _controlled_call(request, supervisors_only)
        extra = {"held": True} if action == "hold" else {"held": False} if action == "resume" else {}
        return await _send_control(request, call_id, worker_id, "hold" if action == "resume" else action, **extra)

    handler.__name__ = action.replace("-", "_")
    return handler


async def mute_call(request: web.Request) -> web.Response:
    body = await optional_object(request)
    _fields(body, {"muted"})
    muted = body.get("muted", True)
    if not isinstance(muted, bool):
        raise InvalidRequest('body must be {"muted": true} or {"muted": false}')
    call_id, worker_id = await _controlled_call(request)
    return await _send_control(request, call_id, worker_id, "mute", muted=muted)


async def send_dtmf(request: web.Request) -> web.Response:
    body = await optional_object(request)
    _fields(body, {"digits"})
    digits = body.get("digits")
    if not isinstance(digits, str) or not _DTMF.match(digits):
        raise InvalidRequest("digits: 1-32 of 0-9 * # A-D")
    call_id, worker_id = await _controlled_call(request)
    return await _send_control(request, call_id, worker_id, "dtmf", digits=digits)


async def conference_call(request: web.Request) -> web.Response:
    body = await optional_object(request)
    _fields(body, {"number"})
    number = body.get("number")
    if not isinstance(number, str) or not _DIALABLE.match(number):
        raise InvalidRequest("number: the department's number (digits)")
    call_id, worker_id = await _controlled_call(request)
    return await _send_control(request, call_id, worker_id, "conference", number=number)


async def monitor_call(request: web.Request) -> web.Response:
    body = await optional_object(request)
    _fields(body, {"mode", "supervisor_uri"})
    mode, uri = body.get("mode"), body.get("supervisor_uri")
    if mode not in ev.MONITOR_MODES:
        raise InvalidRequest(f"mode: one of {', '.join(ev.MONITOR_MODES)}")
    if not isinstance(uri, str) or not uri.startswith(("sip:", "sips:")) or any(c in uri for c in " <>\r\n"):
        raise InvalidRequest("supervisor_uri: the supervisor's softphone, sip:...")
    call_id, worker_id = await _controlled_call(request, supervisors_only=True)
    return await _send_control(request, call_id, worker_id, "monitor", mode=mode, uri=uri)


async def transfer_call(request: web.Request) -> web.Response:
    body = await optional_object(request)
    _fields(body, {"target", "mode"})
    target, mode = body.get("target"), body.get("mode", "blind")
    if mode not in ev.TRANSFER_MODES:
        raise InvalidRequest(f"mode: one of {', '.join(ev.TRANSFER_MODES)}")
    if not isinstance(target, str) or not (target == "queue" or target.startswith(("agent:", "number:"))):
        raise InvalidRequest('target: "agent:<id>", "queue" or "number:<digits>"')
    call_id, worker_id = await _controlled_call(request)
    if target == "queue":  # back to its place: original arrival time, its priority
        return await _send_control(request, call_id, worker_id, "transfer", mode="blind", queue=True)
    kind, _, value = target.partition(":")
    if kind == "number":
        if not _DIALABLE.match(value):
            raise InvalidRequest("number: digits only")
        return await _send_control(request, call_id, worker_id, "transfer", mode=mode, number=value)
    agent_id = AgentId(value)
    who = principal(request)
    if agent_id == who.agent_id:
        raise InvalidRequest("a call cannot be transferred to its own agent")
    agent = await in_thread(request.app[STORE].get_agent, agent_id)
    if agent is None:
        raise NoSuchAgent(f"no agent {agent_id}")
    queue = request.app[QUEUE]
    status = await queue.agent_status(agent_id)
    if status.state is not AgentState.AVAILABLE:
        raise AgentNotAvailable(f"agent {agent_id} is {status.state.value}, not available")
    # Paused at once, so that the dispatcher offers him nothing else (resumed by the worker).
    await queue.agent_pause(agent_id, ev.TRANSFER_PAUSE, request.app[CLOCK_MS](), by=Actor.SYSTEM)
    return await _send_control(
        request, call_id, worker_id, "transfer", mode=mode, agent_id=agent_id,
        uri=agent.sip_uri or "", extension=agent.extension,
    )  # fmt: skip


async def get_recording_info(request: web.Request) -> web.Response:
    """The recording's catalogue entry and gaps, or why the call has none."""
    archive = request.app[GAPS]
    if archive is None:
        raise NotFound("this process keeps no recordings catalogue")
    call_id = CallId(request.match_info["call_id"])
    who = principal(request)
    record = await in_thread(archive.get_call, call_id)
    if record is None:
        raise NoSuchCall(f"no call {call_id}")
    if not who.supervises and not who.owns(record.agent_id):
        raise authmod.Forbidden(f"call {call_id} was not {who.username}'s")
    recording = await in_thread(archive.get_recording, call_id)
    gaps = [gap.to_dict() for gap in await in_thread(archive.recording_gaps, call_id)]
    view: dict[str, Any] | None = None
    if recording is not None:
        view = {k: v for k, v in recording.to_dict().items() if k not in ("path", "gaps")}
    missing = None
    if recording is None:
        missing = next((g["reason"] for g in gaps if g["start_ms"] == 0 and g["reason"] != "paused"), "not-recorded")
    return json_reply({"call_id": call_id, "recording": view, "gaps": gaps, "missing": missing})


_GAP = {
    "type": "object",
    "required": ["start_ms", "end_ms", "reason", "by"],
    "properties": {
        "start_ms": {"type": "integer", "description": "ms from the recording's first sample"},
        "end_ms": {"type": "integer", "nullable": True, "description": "null: to the end of the call"},
        "reason": {"type": "string", "enum": ["paused", "disk-low", "not-recorded"]},
        "by": {"type": "string", "description": "who paused, or system"},
    },
}

SCHEMAS: dict[str, Any] = {
    "RecordingPause": {
        "type": "object",
        "required": ["paused"],
        "additionalProperties": False,
        "properties": {"paused": {"type": "boolean", "description": "true: pause (sensitive data); false: resume"}},
    },
    "RecordingPauseSent": {
        "type": "object",
        "required": ["call_id", "paused", "worker_id"],
        "properties": {"call_id": {"type": "string"}, "paused": {"type": "boolean"}, "worker_id": {"type": "string"}},
    },
    "RecordingGap": _GAP,
    "CallControlSent": {
        "type": "object",
        "required": ["call_id", "action", "worker_id"],
        "properties": {
            "call_id": {"type": "string"},
            "action": {"type": "string", "description": "the call-control action sent to the worker"},
            "worker_id": {"type": "string"},
        },
    },
    "CallMute": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"muted": {"type": "boolean", "default": True, "description": "false: unmute"}},
    },
    "CallDtmf": {
        "type": "object",
        "required": ["digits"],
        "additionalProperties": False,
        "properties": {"digits": {"type": "string", "pattern": ev.DTMF_DIGITS}},
    },
    "CallConference": {
        "type": "object",
        "required": ["number"],
        "additionalProperties": False,
        "properties": {
            "number": {
                "type": "string",
                "pattern": ev.DIALABLE,
                "description": "dialled through the dial template (callback.dial_template)",
            }
        },
    },
    "CallTransfer": {
        "type": "object",
        "required": ["target"],
        "additionalProperties": False,
        "properties": {
            "target": {
                "type": "string",
                "description": '"agent:<id>" (must be available), "number:<digits>" '
                '(through the dial template), "queue" (back to its place: original arrival time and priority)',
            },
            "mode": {"type": "string", "enum": list(ev.TRANSFER_MODES), "default": "blind"},
        },
    },
    "CallMonitor": {
        "type": "object",
        "required": ["mode", "supervisor_uri"],
        "additionalProperties": False,
        "properties": {
            "mode": {
                "type": "string",
                "enum": list(ev.MONITOR_MODES),
                "description": "listen: hears both; whisper: also heard by the agent only; barge: heard by everyone",
            },
            "supervisor_uri": {"type": "string", "description": "the softphone the worker dials, sip:..."},
        },
    },
    "RecordingInfo": {
        "type": "object",
        "required": ["call_id", "recording", "gaps", "missing"],
        "properties": {
            "call_id": {"type": "string"},
            "recording": {
                "type": "object",
                "nullable": True,
                "description": "the catalogue entry (format, bytes, seconds, sha256, ...); null: none",
            },
            "gaps": {"type": "array", "items": openapi.ref("RecordingGap"), "description": "by start"},
            "missing": {
                "type": "string",
                "nullable": True,
                "description": "why there is no recording (disk-low: the recordings volume was full)",
            },
        },
    },
}

PATHS: dict[str, Any] = {
    f"{_P}/calls/{{call_id}}/recording": {
        "post": {
            "summary": "Pause or resume a live call's recording (the call's agent, supervisors, admins)",
            "description": "For sensitive data (ID numbers, bank cards). The paused span is silence in the "
            "recording, which stays aligned with the call, and a marked gap (GET this path after the call). "
            "Pausing twice is one gap; a call ending while paused closes it. 202: sent to the call's worker.",
            "operationId": "setCallRecording",
            "parameters": [{"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": openapi.ref("RecordingPause")}},
            },
            "responses": {
                "202": openapi.json_body(openapi.ref("RecordingPauseSent"), "sent to the worker running the call"),
                "404": openapi.json_body(openapi.ref("Error"), "no-such-call: unknown or finished"),
                **openapi.errors(400, 503),
            },
        },
        "get": {
            "summary": "A finished call's recording: format, length, checksum, gaps, or why it is missing",
            "operationId": "getCallRecording",
            "parameters": [{"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": openapi.json_body(openapi.ref("RecordingInfo"), "the recording's facts and gaps"),
                "404": openapi.json_body(openapi.ref("Error"), "no-such-call"),
                **openapi.errors(503),
            },
        },
    }
}


def _control_path(op: str, summary: str, description: str, body: str | None = None, extra: tuple[int, ...] = ()) -> Any:
    operation: dict[str, Any] = {
        "summary": summary,
        "description": description + " 202: sent to the worker running the call; the outcome is "
        "published as the call.control event.",
        "operationId": op,
        "parameters": [{"name": "call_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {
            "202": openapi.json_body(openapi.ref("CallControlSent"), "sent to the worker running the call"),
            "404": openapi.json_body(openapi.ref("Error"), "no-such-call: unknown or finished"),
            **openapi.errors(400, 503),
            **{str(code): openapi.json_body(openapi.ref("Error"), text) for code, text in _EXTRA_ERRORS.items()
               if code in extra},
        },
    }  # fmt: skip
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": openapi.ref(body)}}}
    return {"post": operation}


_EXTRA_ERRORS = {
    409: "agent-not-available: the target agent is not available",
}
_CALL = f"{_P}/calls/{{call_id}}"
PATHS.update({
    f"{_CALL}/hold": _control_path("holdCall", "Put the caller on hold (hold music; the agent hears nothing)",
                                   "The recording goes on: the music is in its agent channel."),
    f"{_CALL}/resume": _control_path("resumeCall", "Take the caller off hold", "Caller and agent talk again."),
    f"{_CALL}/mute": _control_path("muteCall", "Mute or unmute the agent towards the caller",
                                   "Muted: the agent's audio no longer reaches the caller (it is still recorded).",
                                   "CallMute"),
    f"{_CALL}/transfer": _control_path(
        "transferCall", "Transfer the call to an agent, a number or back to the queue (blind or attended)",
        "The caller hears hold music while the target is dialled. Blind: bridged with the caller when the "
        "target answers, the first agent released to wrap-up. Attended: the agent talks with the target "
        "until transfer/complete or transfer/cancel. A target that fails puts the caller back with the agent.",
        "CallTransfer", (409,)),
    f"{_CALL}/transfer/complete": _control_path(
        "completeCallTransfer", "Complete an attended transfer",
        "The caller and the target talk; the first agent is released to wrap-up."),
    f"{_CALL}/transfer/cancel": _control_path(
        "cancelCallTransfer", "Cancel a transfer", "The target is hung up; the caller is back with the agent."),
    f"{_CALL}/conference": _control_path(
        "conferenceCall", "Three-way call with a department's number",
        "Caller, agent and the number all hear each other.", "CallConference"),
    f"{_CALL}/dtmf": _control_path("sendCallDtmf", "Send DTMF to the caller (RFC 4733)", "E.g. an IVR on the "
                                   "caller's side.", "CallDtmf"),
    f"{_CALL}/hangup": _control_path("hangupCall", "End the call from the desk", "As if the agent hung up."),
    f"{_CALL}/reject": _control_path(
        "rejectCall", "拒接: the agent declines the call ringing at his phone (that agent only)",
        "His ringing leg is hung up; the caller keeps his place in the queue and is offered to the next agent; "
        "the agent is paused with the reason 拒接 (his choice, not counted as a failure of his phone).",
        None),
    f"{_CALL}/answer": _control_path(
        "answerCall", "接听: the agent answers the call ringing at his phone from the desk (that agent only)",
        "The worker cancels the ringing leg and at once dials his phone again with the auto-answer headers "
        "(Call-Info answer-after=0, Alert-Info, Answer-Mode: Auto); a phone that honours them picks up and "
        "the call is bridged. The offer's ring timeout keeps running.",
        None),
    f"{_CALL}/monitor": _control_path(
        "monitorCall", "A supervisor listens, whispers or barges in (supervisors and admins)",
        "The worker dials supervisor_uri. listen: he hears caller and agent; whisper: the agent hears him, the "
        "caller does not (never recorded); barge: everyone hears everyone.", "CallMonitor"),
})  # fmt: skip
for _ringing in ("reject", "answer"):
    PATHS[f"{_CALL}/{_ringing}"]["post"]["responses"]["409"] = openapi.json_body(
        openapi.ref("Error"), "not-ringing: the call rings at his phone no longer (answered, or gone to another agent)"
    )

RESTRICTED: frozenset[str] = frozenset(
    {
        "setCallRecording",
        "getCallRecording",
        "holdCall",
        "resumeCall",
        "muteCall",
        "transferCall",
        "completeCallTransfer",
        "cancelCallTransfer",
        "conferenceCall",
        "sendCallDtmf",
        "hangupCall",
        "monitorCall",
        "rejectCall",
        "answerCall",
    }
)


def add_routes(app: web.Application) -> None:
    """Adds this part's routes to the API application."""
    store = app[STORE]
    app[GAPS] = store if isinstance(store, GapArchive) else None
    if LIVE_CALLS not in app:
        app[LIVE_CALLS] = None
    app.router.add_post(f"{_P}/calls/{{call_id}}/recording", set_recording)
    app.router.add_get(f"{_P}/calls/{{call_id}}/recording", get_recording_info)
    call = f"{_P}/calls/{{call_id}}"
    for action in ("hold", "resume", "hangup"):
        app.router.add_post(f"{call}/{action}", _control(action))
    app.router.add_post(f"{call}/transfer/complete", _control("transfer-complete"))
    app.router.add_post(f"{call}/transfer/cancel", _control("transfer-cancel"))
    app.router.add_post(f"{call}/mute", mute_call)
    app.router.add_post(f"{call}/dtmf", send_dtmf)
    app.router.add_post(f"{call}/conference", conference_call)
    app.router.add_post(f"{call}/transfer", transfer_call)
    app.router.add_post(f"{call}/monitor", monitor_call)
    app.router.add_post(f"{call}/reject", reject_call)
    app.router.add_post(f"{call}/answer", answer_call)
