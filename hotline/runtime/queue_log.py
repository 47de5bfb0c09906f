"""The queue log: one line per queue and agent event, in Asterisk's queue_log format.

Reporting tools written for Asterisk (and people who read its logs) know these lines:

    epoch|call id|queue|agent|EVENT|data1|data2|data3

The control plane reads the event stream with a consumer group of its own and appends the
lines to `<data_dir>/log/queue_log`. What maps to what (Asterisk's meaning of the data fields):

    call.queued                            ENTERQUEUE     |<caller>|1
    agent logs in / out                    ADDMEMBER / REMOVEMEMBER
    agent paused / resumed                 PAUSE|<reason> / UNPAUSE
    offer not answered (agent's fault)     RINGNOANSWER|<ring ms>
    offer withdrawn (caller left)          RINGCANCELED|<ring ms>
    agent answered                         CONNECT|<hold s>|<call id>|<ring s>
    agent took a call transferred to him   UNPAUSE, then CONNECT|0|<call id>|<ring s>
      (ringing from his transfer pause, events.TRANSFER_PAUSE, to his answer)
    answered call ends                     COMPLETECALLER or COMPLETEAGENT|<hold s>|<talk s>|1
      (a callback's answered call logs under the callback's own call id)
    caller hung up waiting                 ABANDON|1|1|<wait s>
    caller pressed 1 (callback)            EXITWITHKEY|1|1
    callback attempt failed                CALLBACKFAILED|<reason>   (hotline's own)
    the system failed the call             SYSFAILED|<reason>        (hotline's own)

Hold and ring times come from the events themselves (queued_at, connected_at, the agent's
since_ms) and from the earlier events QueueLog remembers (when each call entered, when each
agent started ringing; bounded); the position fields are 1, as hotline does not keep the
original position. This module only formats; the writer in control.py does the I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hotline.core import events as ev
from hotline.core.model import from_iso


def _epoch(value: Any, fallback_ms: int) -> int:
    if isinstance(value, int | float) and value > 0:
        return int(value) // 1000
    if isinstance(value, str) and value:
        try:
            parsed = from_iso(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return int(parsed.timestamp())
    return fallback_ms // 1000


def _seconds(start: datetime | None, end: datetime | None) -> int:
    if start is None or end is None:
        return 0
    return max(0, round((end - start).total_seconds()))


def _clean(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "/").replace("\n", " ")


def _line(epoch: int, call_id: Any, queue: str, agent: Any, event: str, *data: Any) -> str:
    return "|".join([str(epoch), _clean(call_id) or "NONE", queue, _clean(agent) or "NONE", event, *map(_clean, data)])


class QueueLog:
    """Formats the event stream as queue_log lines, remembering what later lines need."""

    MEMORY = 100_000  # calls and agents remembered (oldest forgotten first)

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._entered: dict[str, int] = {}  # call id -> epoch it entered the queue
        self._ringing: dict[str, tuple[int, str]] = {}  # agent id -> (ms his phone started ringing, call id)

    def lines(self, kind: str, data: dict[str, Any], now_ms: int) -> list[str]:
        """The lines for one event from the stream (none for events it does not log)."""
        if kind == ev.CALL_QUEUED:
            at = _epoch(data.get("queued_at"), now_ms)
            self._remember(self._entered, str(data.get("call_id")), at)
            return [_line(at, data.get("call_id"), self.queue, None, "ENTERQUEUE", "", data.get("caller"), 1)]
        if kind == ev.AGENT_STATE:
            return self._agent_lines(data, now_ms)
        if kind == ev.CALL_ENDED:
            return self._ended_lines(data, now_ms)
        return []

    def _remember(self, memory: dict[str, Any], key: str, value: Any) -> None:
        memory.pop(key, None)
        memory[key] = value
        while len(memory) > self.MEMORY:
            memory.pop(next(iter(memory)))

    def _agent_lines(self, data: dict[str, Any], now_ms: int) -> list[str]:
        previous, state, event = data.get("previous"), data.get("state"), data.get("event")
        since_ms = int(data.get("since_ms") or now_ms)
        at = since_ms // 1000
        agent, call_id, reason = str(data.get("agent_id")), data.get("call_id"), data.get("reason") or ""
        q = self.queue
        if state == "reserved":
            self._remember(self._ringing, agent, (since_ms, call_id))
            return []
        ring_ms = 0
        if previous == "reserved":
            rang_from, call_id = self._ringing.pop(agent, (since_ms, call_id))
            ring_ms = since_ms - rang_from
        if event == "transfer_taken":
            rang_from, _ = self._ringing.pop(agent, (since_ms, call_id))
            ring_s = round(max(0, since_ms - rang_from) / 1000)
            return [_line(at, None, q, agent, "UNPAUSE"), _line(at, call_id, q, agent, "CONNECT", 0, call_id, ring_s)]
        if state == "paused" and reason == ev.TRANSFER_PAUSE:  # a call transferred to him rings
            self._remember(self._ringing, agent, (since_ms, None))
        if previous == "logged_out" and state != "logged_out":
            return [_line(at, None, q, agent, "ADDMEMBER")]
        if state == "logged_out":
            return [_line(at, None, q, agent, "REMOVEMEMBER", reason)]
        if previous == "reserved" and state == "on_call":
            entered = self._entered.pop(str(call_id), at)
            return [_line(at, call_id, q, agent, "CONNECT", max(0, at - entered), call_id, round(ring_ms / 1000))]
        if previous == "reserved" and event == "offer_failed":
            lines = [_line(at, call_id, q, agent, "RINGNOANSWER", ring_ms)]
            if state == "paused":
                lines.append(_line(at, None, q, agent, "PAUSE", reason))
            return lines
        if previous == "reserved" and event == "offer_withdrawn":
            return [_line(at, call_id, q, agent, "RINGCANCELED", ring_ms)]
        if state == "paused" and previous != "paused":
            return [_line(at, None, q, agent, "PAUSE", reason)]
        if previous == "paused" and state == "available":
            return [_line(at, None, q, agent, "UNPAUSE")]
        return []

    def _ended_lines(self, data: dict[str, Any], now_ms: int) -> list[str]:
        outcome = data.get("outcome")
        call_id, agent = data.get("call_id"), data.get("agent_id")
        queued, connected, ended = (from_iso(data.get(k) or None) for k in ("queued_at", "connected_at", "ended_at"))
        at = _epoch(data.get("ended_at"), now_ms)
        q = self.queue
        if outcome != "callback_requested":  # a callback's CONNECT counts from the first arrival
            self._entered.pop(str(call_id), None)
        if outcome == "answered" and connected is not None:
            event = "COMPLETEAGENT" if data.get("hangup_by") == "agent" else "COMPLETECALLER"
            return [_line(at, call_id, q, agent, event, _seconds(queued, connected), _seconds(connected, ended), 1)]
        if outcome == "abandoned_in_queue":
            return [_line(at, call_id, q, None, "ABANDON", 1, 1, _seconds(queued, ended))]
        if outcome == "callback_requested":
            return [_line(at, call_id, q, None, "EXITWITHKEY", 1, 1)]
        if outcome == "voicemail":  # overflowed to voicemail: left the queue on its timeout
            return [_line(at, call_id, q, None, "EXITWITHTIMEOUT", 1, 1, _seconds(queued, ended))]
        if outcome == "callback_failed":
            return [_line(at, data.get("related_call_id") or call_id, q, agent, "CALLBACKFAILED", data.get("reason"))]
        if outcome == "failed":
            return [_line(at, call_id, q, agent, "SYSFAILED", data.get("reason"))]
        return []
