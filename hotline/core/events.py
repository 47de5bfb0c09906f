"""Messages between workers and the control plane, as they travel on Redis streams.

Every message is a flat dict of strings with a "type" field; payloads that are not plain
strings are carried as JSON in the "data" field. Constructors here keep the spelling in one place.
"""

from __future__ import annotations

import json
from typing import Any

# worker -> control plane (stream keys.events())
CALL_STARTED = "call.started"  # data: call_id, worker_id, caller, callee, started_at
CALL_QUEUED = "call.queued"  # data: call_id, queued_at, caller, tap (the caller's growing 8 kHz WAV), worker_id
OFFER_ANSWERED = "offer.answered"  # data: call_id, agent_id, offer_id
OFFER_FAILED = "offer.failed"  # data: call_id, agent_id, offer_id, reason
CALL_ENDED = "call.ended"  # data: CallRecord.to_dict()
AGENT_AUTOPAUSED = "agent.autopaused"  # data: agent_id, reason, call_id
# Every change of an agent's state, written by the queue's Lua scripts in the same step as the
# change. data: agent_id, previous, state, event (what happened), by ("agent", "system",
# "supervisor"), reason (pause code, failure or logout reason, or ""), call_id, since_ms.
AGENT_STATE = "agent.state"
# Something needs a person: data: alert (e.g. "dispatch-stalled"), details, by (which process).
ALERT = "alert"
# What became of a call control (or of a leg it dialled): data: call_id, action (the command's,
# or "transfer-answered", "conference-answered", "monitor-answered"), status ("done",
# "failed"), detail (why, or the target), by.
CALL_CONTROL = "call.control"

# control plane -> worker (stream keys.worker_commands(worker_id))
CMD_OFFER = "offer"  # data: call_id, agent_id, offer_id, agent_uri, ring_timeout_s
CMD_HANGUP = "hangup"  # data: call_id, reason
# What the caller said (from the speech service): data: call_id, text, final (bool),
# emergency (bool), kb (list of {"topic", "id", "score"}, best first).
CMD_SPEECH = "speech"
# Call a caller back for a callback entry whose turn came, agent first: data: call_id (the
# original call), offer_id, agent_id, agent_uri, caller (number to dial), attempt, ring_timeout_s.
CMD_CALLBACK = "callback"
# The caller waited the queue's max wait: data: call_id, target ("callback").
CMD_OVERFLOW = "overflow"
# Pause (true) or resume (false) the call's recording, from the agent desktop API: data: call_id,
# paused (bool), by (who asked). The paused span is silence in the file and a marked gap.
CMD_RECORDING = "recording"
# Dial a 回访 (satisfaction survey): data: survey_id, attempt, ticket, caller (the number).
CMD_SURVEY = "survey"
# A connected call's controls, from the agent desktop API (hotline.runtime.call_controls):
# data: call_id, action, by, and per action: hold {held}, mute {muted}, dtmf {digits}, hangup,
# transfer {mode: blind|attended, agent_id, uri, extension | number | queue: true}, transfer-complete,
# transfer-cancel, conference {number}, monitor {mode: listen|whisper|barge, uri}.
CMD_CALL_CONTROL = "call-control"
MONITOR_MODES = ("listen", "whisper", "barge")
TRANSFER_MODES = ("blind", "attended")
TRANSFER_PAUSE = "转接通话"  # the pause reason of an agent a call is being transferred to
# The reason of a first agent's wrap-up once the agent his call was transferred to took it:
# TRANSFERRED + that agent's id ("transferred:1002"); the call, and its ticket, are no longer his.
TRANSFERRED = "transferred:"
# The agent declines the call ringing at his phone, from the agent desktop API: data: call_id,
# agent_id, by. The worker hangs up his ringing leg; the caller keeps his place in the queue and
# the agent is paused with REJECT_PAUSE (his choice, not a failure of his phone). The outcome is
# published as call.control (action "reject").
CMD_REJECT = "reject"
REJECT_PAUSE = "拒接"
# The agent answers the call ringing at his phone from the desk: data: call_id, agent_id, by.
# The worker cancels his ringing leg and dials his phone again with auto-answer headers, which
# phones that support remote answer take as "pick up at once". Published as call.control
# (action "answer").
CMD_ANSWER = "answer"
DTMF_DIGITS = r"^[0-9*#A-Da-d]{1,32}$"  # what call-control dtmf sends
DIALABLE = r"^\+?[0-9*#]{1,32}$"  # a number call controls dial through the dial template

# speech service -> anyone (desktop, wallboard): the ticket draft as it updates.
# data: call_id, text, final, draft (Draft.to_dict())
CALL_DRAFT = "call.draft"


def encode(kind: str, data: dict[str, Any]) -> dict[str, str]:
    """A stream entry for a message of the given kind."""
    return {"type": kind, "data": json.dumps(data, ensure_ascii=False, separators=(",", ":"))}


def decode(fields: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """(kind, data) of a stream entry; raises ValueError on a malformed entry."""
    kind = fields.get("type")
    if not kind:
        raise ValueError(f"stream entry without type: {fields!r}")
    raw = fields.get("data", "{}")
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError(f"stream entry data is not an object: {raw!r}")
    return kind, data


# A survey call was answered: its caller's side is recorded into `tap` (a growing 8 kHz WAV)
# for the speech service, which sends the worker `speech` with what the caller says
# (answers may be spoken). data: call_id, tap, worker_id, survey_id.
SURVEY_LISTENING = "survey.listening"
# A survey attempt ended: data: survey_id, attempt, ticket, call_id, status (hotline.ivr.survey
# SurveyStatus), process, result (1-3 or ""), reason.
SURVEY_ENDED = "survey.ended"
