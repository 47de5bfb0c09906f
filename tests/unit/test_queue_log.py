"""Queue log lines (hotline/runtime/queue_log.py) for the call endings and ring outcomes."""

from __future__ import annotations

from hotline.core import events as ev
from hotline.runtime.queue_log import QueueLog

T = "2026-11-22T02:00:00+00:00"


def ended(**data: object) -> dict[str, object]:
    return {"call_id": "c1", "queued_at": T, "ended_at": "2026-11-22T02:05:00+00:00"} | data


def test_answered_call_completes_with_hold_and_talk_seconds() -> None:
    log = QueueLog("default")
    data = ended(outcome="answered", agent_id="a1", connected_at="2026-11-22T02:00:12+00:00", hangup_by="agent")
    assert log.lines(ev.CALL_ENDED, data, 0) == ["1795313100|c1|default|a1|COMPLETEAGENT|12|288|1"]
    data["hangup_by"] = "caller"
    assert log.lines(ev.CALL_ENDED, data, 0)[0].split("|")[4] == "COMPLETECALLER"


def test_ring_then_withdrawn_and_connect_times() -> None:
    log = QueueLog("q")
    log.lines(ev.CALL_QUEUED, {"call_id": "c1", "queued_at": T, "caller": "138"}, 0)
    reserved = {"agent_id": "a1", "previous": "available", "state": "reserved", "event": "offer", "call_id": "c1"}
    assert log.lines(ev.AGENT_STATE, reserved | {"since_ms": 1795312805000}, 0) == []
    back = {"agent_id": "a1", "previous": "reserved", "state": "available", "event": "offer_withdrawn"}
    assert log.lines(ev.AGENT_STATE, back | {"since_ms": 1795312807500, "call_id": None}, 0) == [
        "1795312807|c1|q|a1|RINGCANCELED|2500"
    ]
    log.lines(ev.AGENT_STATE, reserved | {"since_ms": 1795312810000}, 0)
    answered = {"agent_id": "a1", "previous": "reserved", "state": "on_call", "event": "answered", "call_id": "c1"}
    assert log.lines(ev.AGENT_STATE, answered | {"since_ms": 1795312814000}, 0) == [
        "1795312814|c1|q|a1|CONNECT|14|c1|4"
    ]


def test_a_call_transferred_to_an_agent_connects_him_after_his_transfer_pause() -> None:
    log = QueueLog("q")
    paused = {"agent_id": "a2", "previous": "available", "state": "paused", "event": "pause", "call_id": None}
    assert log.lines(ev.AGENT_STATE, paused | {"reason": ev.TRANSFER_PAUSE, "since_ms": 1795312810000}, 0) == [
        f"1795312810|NONE|q|a2|PAUSE|{ev.TRANSFER_PAUSE}"
    ]
    taken = {"agent_id": "a2", "previous": "paused", "state": "on_call", "event": "transfer_taken", "call_id": "c1"}
    assert log.lines(ev.AGENT_STATE, taken | {"reason": "", "since_ms": 1795312816000}, 0) == [
        "1795312816|NONE|q|a2|UNPAUSE",
        "1795312816|c1|q|a2|CONNECT|0|c1|6",
    ]


def test_separators_in_data_cannot_break_a_line() -> None:
    log = QueueLog("default")
    line = log.lines(ev.CALL_ENDED, ended(outcome="failed", reason="a|b\nc"), 0)[0]
    assert line.endswith("|SYSFAILED|a/b c") and "\n" not in line


def test_events_it_does_not_log() -> None:
    assert QueueLog("q").lines("offer.answered", {}, 0) == []
    assert QueueLog("q").lines(ev.CALL_ENDED, ended(outcome="self_served"), 0) == []
