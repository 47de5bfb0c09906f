"""Callback that keeps the place, end to end: `hotline serve`, sipp callers through Kamailio, a
baresip agent, and sipp as the citizen's phone that the worker dials back."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.audio import best_correlation, read_wav_mono
from tests.e2e.peers import BaresipAgent, run_sipp, start_sipp, write_caller_scenario
from tests.e2e.rtpcapture import RtpCapture, decode_rtp_pcap
from tests.e2e.service import REPO, Service
from tests.support import free_port, free_udp_tcp_port, until

pytestmark = pytest.mark.e2e

SIPP = REPO / "tests" / "sipp"
A, B = "13700000001", "13700000002"


def speaking_citizen(path: Path, speech: Path) -> Path:
    """tests/sipp/uas_answer.xml whose answering phone then talks (``speech``, μ-law, looped)."""
    ack = '<recv request="ACK" rtd="true" crlf="true"/>'
    text = (SIPP / "uas_answer.xml").read_text()
    assert ack in text
    talk = f'<nop><action><exec rtp_stream="{speech},-1,0"/></action></nop>'
    path.write_text(text.replace(ack, ack + "\n  " + talk))
    return path


def test_pressing_1_keeps_the_place_and_the_agent_calls_back(
    start_service: Any, tmp_path: Path, agent_clip: Path, caller_clip: Path, caller_speech: Path
) -> None:
    """A arrives first, B later; nobody is logged in. A skips the greeting (5), presses 1, hears
    the confirmation and is hung up: A's record says callback_requested and A's entry keeps the
    head of the queue, ahead of B. Agent 1001 logs in: the worker dials him first, then A's
    number: A's phone is busy (486), so the attempt is recorded and A waits for the retry, still
    ahead of B in line but passed over: B is served meanwhile. The retry reaches A (200): agent
    and A are bridged and recorded; the callback's record points at A's first call."""
    citizen_port = free_udp_tcp_port()
    svc = start_service(
        workers=1,
        callback={"dial_template": f"sip:{{number}}@127.0.0.1:{citizen_port}", "retry_s": 4, "max_attempts": 3},
    )
    agent = BaresipAgent(
        tmp_path / "agent", user="1001", registrar=("127.0.0.1", svc.sip_port), play_wav=agent_clip, pad_after_s=2.0
    )
    agent.start()
    svc.cli("agents", "add", "1001", "--name", "坐席1001", "--extension", "1001")
    try:
        a_dir, b_dir, c_dir = (_mk(tmp_path / n) for n in ("a", "b", "citizen"))
        a_scenario = write_caller_scenario(
            a_dir / "a.xml",
            caller_number=A,
            digits="51",
            pre_dtmf_ms=1500,
            dtmf_gap_ms=2500,
            who_hangs_up="callee",
            bye_timeout_ms=30000,
        )
        with start_sipp(a_scenario, ("127.0.0.1", svc.sip_port), free_port(2), free_port(2), a_dir, timeout_s=60) as a:
            until(lambda: _waiting(svc, 1), timeout=15)
            b_scenario = write_caller_scenario(b_dir / "b.xml", caller_number=B, who_hangs_up="callee")
            with start_sipp(
                b_scenario, ("127.0.0.1", svc.sip_port), free_port(2), free_port(2), b_dir, timeout_s=120
            ) as b:
                a.wait()  # A was hung up by the service after the confirmation
                first = svc.ticket(lambda t: t["caller"] == A)
                assert first["outcome"] == "callback_requested", first
                assert first["dtmf"] == "51"
                assert first["hangup_by"] == "system"
                waiting = until(lambda: _waiting(svc, 2), timeout=10)
                assert isinstance(waiting, list)
                assert [(w["caller"], w["position"], w["callback"]) for w in waiting] == [
                    (A, 1, True),
                    (B, 2, False),
                ], waiting

                # The citizen's phone is busy for the first attempt.
                with start_sipp(SIPP / "uas_busy_here.xml", None, citizen_port, free_port(2), c_dir, timeout_s=60) as c:
                    status, body = svc.request("POST", "/agents/1001/login")
                    assert status == 200, body
                    c.wait()
                failed = svc.ticket(lambda t: t.get("related_call_id") == first["call_id"])
                assert failed["outcome"] == "callback_failed", failed
                assert failed["agent_id"] == "1001"
                assert "busy" in failed["reason"] and "attempt 1 of 3" in failed["reason"], failed["reason"]

                # Passed over until its retry time, A keeps the head of the line; B is served.
                answering = speaking_citizen(c_dir / "citizen.xml", caller_speech)
                with start_sipp(answering, None, citizen_port, free_port(2), c_dir, timeout_s=90) as c:
                    b.wait()  # the agent hung up on B after his clip
                    served_b = svc.ticket(lambda t: t["caller"] == B)
                    assert served_b["outcome"] == "answered" and served_b["agent_id"] == "1001"
                    c.wait()  # the retry reached A, and the agent hung up after his clip
                answered = svc.ticket(
                    lambda t: t.get("related_call_id") == first["call_id"] and t["outcome"] == "answered"
                )
        assert answered["agent_id"] == "1001" and answered["caller"] == A
        assert answered["hangup_by"] == "agent"
        assert answered["connected_at"] and answered["recording_path"]
        assert svc.get("/queue")["waiting"] == []
        # Agent first: the agent's phone answered each attempt before the citizen's rang.
        assert len(agent.calls_answered()) == 3  # attempt 1, B, attempt 2
        recording = Path(answered["recording_path"])
        assert recording.exists()
        left, rate = read_wav_mono(recording, channel=0)
        right, _ = read_wav_mono(recording, channel=1)
        caller_ref, _ = read_wav_mono(caller_clip, rate=rate)
        agent_ref, _ = read_wav_mono(agent_clip, rate=rate)
        caller_left = best_correlation(caller_ref, left, rate).score
        agent_right = best_correlation(agent_ref, right, rate).score
        agent_left = best_correlation(agent_ref, left, rate).score
        print(f"callback recording: citizen in left {caller_left:.3f}, agent in right {agent_right:.3f}, ", end="")
        print(f"agent in left {agent_left:.3f}")
        # Both voices are there, each on its own channel. Their fidelity is the known defect of
        # tests/e2e/test_media_defects.py (a leg answered before it is bridged is received
        # chopped: ~0.35-0.67 here against ~1.0 for a call bridged at once): not hidden here.
        assert caller_left > 0.25 and agent_right > 0.5
        assert agent_left < caller_left / 2 and agent_left < 0.2
    finally:
        agent.stop()


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _waiting(svc: Service, n: int) -> list[dict[str, Any]] | None:
    waiting = list(svc.get("/queue")["waiting"])
    return waiting if len(waiting) == n else None


def test_a_caller_past_the_max_wait_is_offered_the_callback(start_service: Any, tmp_path: Path) -> None:
    """queue.max_wait_s 12 with overflow_target callback, nobody to answer: the caller is told
    he will be called back at his place (heard on the wire), hung up, and his entry stays,
    now a callback, at the head of the line."""
    svc = start_service(workers=1, queue={"max_wait_s": 12, "overflow_target": "callback"})
    cwd = _mk(tmp_path / "long")
    scenario = write_caller_scenario(
        cwd / "call.xml", caller_number="13700000009", digits="5", who_hangs_up="callee", bye_timeout_ms=40000
    )
    media = free_port(2)
    with RtpCapture(media, tmp_path / "to-caller.pcap"):
        run_sipp(scenario, ("127.0.0.1", svc.sip_port), free_port(2), media, cwd, timeout_s=60)
    record = svc.ticket(lambda t: t["caller"] == "13700000009")
    assert (record["outcome"], record["dtmf"], record["hangup_by"]) == ("callback_requested", "5", "system")
    waited = (datetime.fromisoformat(record["ended_at"]) - datetime.fromisoformat(record["queued_at"])).total_seconds()
    assert 12 <= waited < 30, waited
    assert [(w["caller"], w["callback"]) for w in svc.get("/queue")["waiting"]] == [("13700000009", True)]
    heard = decode_rtp_pcap(tmp_path / "to-caller.pcap", payload_type=None)
    told, _ = read_wav_mono(REPO / "config" / "prompts" / "zh-CN" / "callback_overflow.wav", rate=8000)
    score = best_correlation(told, heard, 8000).score
    print(f"overflow after {waited:.1f} s; the caller heard callback_overflow: {score:.3f}")
    assert score > 0.8
