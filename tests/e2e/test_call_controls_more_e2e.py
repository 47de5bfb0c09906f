"""DTMF to the caller, a three-way conference and an attended transfer on one call, end to end:
`hotline serve`, a sipp caller through Kamailio, baresip agents 1001 and 1002 and a baresip
"department" phone (12315), all registered to Kamailio; the worker reaches 12315 and agent 1002
through its default dial template (Kamailio's location table). What each party heard is checked
by correlation (tests/e2e/test_call_controls_e2e.py's `heard`: the best 0.5 s slice): RTP to the
caller captured with tcpdump, baresip's recordings of what each phone received, and the call's
stereo recording (caller left, agent channel right).

- DTMF: the digits reach the caller as RFC 4733 telephone-events (the payload type the worker
  answered in its SDP), in order.
- Conference: the caller and agent 1001 hear the department, the department hears both, and
  its voice is in the recording's agent channel.
- Attended transfer to agent 1002: while they consult, 1001 and 1002 hear each other and the
  caller hears the hold music, not the consult; after transfer/complete the caller and 1002
  hear each other, 1001's leg is released, and the queue has 1002 on the call and 1001 in
  wrap-up (reason transferred:1002).

Everyone's speech is scheduled so that the parties whose voices meet in a mix talk at
different times: the caller's clip is looped with 6.5 s of silence after it, the department
says its clip three times 6 s apart, agent 1001 speaks once in the conference and once in the
consult, agent 1002 once in the consult and once after the transfer.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.audio import pad_wav, read_wav_mono, sox_binary, to_telephone_wav
from tests.e2e.peers import BaresipAgent, sipp_ulaw_file, start_sipp, write_caller_scenario
from tests.e2e.rtpcapture import RtpCapture, decode_rtp_streams, parse_rtp, read_udp_pcap
from tests.e2e.service import REPO, Service
from tests.e2e.test_call_controls_e2e import heard, post
from tests.e2e.test_call_e2e import agent_for
from tests.support import free_port, mandarin_clip, until

pytestmark = pytest.mark.e2e

HOLD_MUSIC = REPO / "config" / "prompts" / "zh-CN" / "hold_music.wav"
PARTY_CLIP = "aishell1dev_BAC009S0724W0121"  # the department, 4.3 s
SECOND_CLIP = "paddlespeech_zh"  # agent 1002, 5.0 s
DEPARTMENT = "12315"
DIGITS = "12#"
EVENTS = "0123456789*#ABCD"  # RFC 4733 event codes 0-15
# Present: the best 0.5 s slice of a clip that is there scores 0.9 and more; one that is not
# scores at most ~0.46 (tests/e2e/test_supervisor_listen_e2e.py measured 0.20-0.37 for ABSENT).
PRESENT = 0.8
ABSENT = 0.6


def _concat(out: Path, *parts: Path) -> Path:
    subprocess.run([sox_binary(), *map(str, parts), str(out)], check=True)
    return out


def _at(tmp: Path, name: str, clip: Path, before: float, total: float) -> Path:
    """`clip` (as 8 kHz 16-bit) with `before` s of silence ahead, padded to `total` s."""
    pcm = to_telephone_wav(clip, tmp / f"{name}-pcm.wav", encoding="signed")
    seconds = len(read_wav_mono(pcm)[0]) / 8000
    return pad_wav(pcm, tmp / f"{name}.wav", before, max(0.0, total - before - seconds))


def schedules(tmp: Path, caller_clip: Path, agent_clip: Path) -> dict[str, Path]:
    """Each phone's audio, timed from its answer (baresip adds no pad here)."""
    tmp.mkdir()
    caller = sipp_ulaw_file(_at(tmp, "caller", caller_clip, 0.0, 12.0), tmp / "caller.ulaw")
    party = mandarin_clip(PARTY_CLIP)
    department = _concat(tmp / "department.wav", *(_at(tmp, f"d{i}", party, 1.0 if i == 0 else 0.0, 6.0 if i else 7.0)
                                                    for i in range(3)))  # fmt: skip
    # Agent 1001: in the conference (from 5 s after his answer) and in the consult (from 25 s).
    first = _concat(tmp / "first.wav", _at(tmp, "a1", agent_clip, 5.0, 25.0), _at(tmp, "a2", agent_clip, 0.0, 10.0))
    # Agent 1002: in the consult (1-6 s after his answer), and to the caller after it (10-15 s).
    second_clip = mandarin_clip(SECOND_CLIP)
    second = _concat(tmp / "second.wav", _at(tmp, "b1", second_clip, 1.0, 9.0), _at(tmp, "b2", second_clip, 1.0, 7.0))
    return {"caller": caller, "department": department, "first": first, "second": second}


def telephone_events(pcap: Path, payload_type: int) -> str:
    """The digits of the RFC 4733 events in a capture, one per event (its RTP timestamp)."""
    seen: dict[tuple[int, int], int] = {}
    for datagram in read_udp_pcap(pcap):
        packet = parse_rtp(datagram)
        if packet is not None and packet.payload_type == payload_type and len(packet.payload) >= 4:
            seen.setdefault((packet.ssrc, packet.timestamp), packet.payload[0])
    return "".join(EVENTS[code] if code < len(EVENTS) else "?" for _, code in sorted(seen.items()))


def answered_event_type(messages: str) -> int:
    """The telephone-event payload type of the SDP in the 200 OK sipp received."""
    answer = messages[messages.index("SIP/2.0 200 OK") :]
    found = re.search(r"a=rtpmap:(\d+) telephone-event/8000", answer)
    assert found, f"no telephone-event in the answer: {answer[:2000]}"
    return int(found.group(1))


def between(pcap: Path, start: float = 0.0, end: float | None = None) -> np.ndarray:
    """The caller's received audio (8 kHz) from wall-clock `start` to `end` (time.time(); None:
    to the end)."""
    streams = decode_rtp_streams(pcap, payload_type=None)
    t0 = streams[0].start_time
    out = np.zeros(max(round((s.start_time - t0) * 8000) + s.samples.size for s in streams), dtype=np.float32)
    for s in streams:
        at = round((s.start_time - t0) * 8000)
        out[at : at + s.samples.size] += s.samples
    return out[max(0, round((start - t0) * 8000)) : None if end is None else max(0, round((end - t0) * 8000))]


def _agents(service: Service) -> dict[str, dict[str, Any]]:
    return {a["agent_id"]: a for a in service.get("/agents")["agents"]}


def test_dtmf_conference_and_attended_transfer_on_one_call(
    start_service: Any, tmp_path: Path, caller_clip: Path, agent_clip: Path
) -> None:
    service: Service = start_service(workers=1, queue={"wrap_up_s": 60})
    audio = schedules(tmp_path / "audio", caller_clip, agent_clip)
    registrar = ("127.0.0.1", service.sip_port)
    first = agent_for(service, tmp_path, audio["first"], user="1001", pad_before_s=0.0)
    second = agent_for(service, tmp_path, audio["second"], user="1002", pad_before_s=0.0)
    department = BaresipAgent(tmp_path / "department", user=DEPARTMENT, registrar=registrar,
                              play_wav=audio["department"], pad_before_s=0.0, pad_after_s=60.0)  # fmt: skip
    department.start()
    status, body = service.request("POST", "/agents/1002/state", {"state": "paused", "reason": "小休"})
    assert status == 200, body
    cwd = tmp_path / "caller"
    cwd.mkdir()
    scenario = write_caller_scenario(
        cwd / "call.xml", caller_number="13800138301", speech=audio["caller"], speech_loops=-1, digits="5",
        pre_dtmf_ms=500, who_hangs_up="callee", bye_timeout_ms=90000,
    )  # fmt: skip
    media = free_port(2)
    pcap = tmp_path / "to-caller.pcap"
    marks: dict[str, float] = {}
    try:
        with (
            RtpCapture(media, pcap),
            start_sipp(scenario, ("127.0.0.1", service.sip_port), free_port(2), media, cwd, timeout_s=110) as sipp,
        ):
            until(lambda: service.get("/agents/1001")["state"] == "on_call", timeout=20)
            answered = time.monotonic()
            call_id = service.get("/agents/1001")["call_id"]

            def at(seconds: float) -> None:
                time.sleep(max(0.0, answered + seconds - time.monotonic()))

            # (a) DTMF to the caller
            at(0.5)
            post(service, f"/calls/{call_id}/dtmf", {"digits": DIGITS})
            # (b) the department joins (it speaks ~1-5, 7-11, 13-17 s after its answer; 1001 at 5-13.4 s)
            at(2.0)
            post(service, f"/calls/{call_id}/conference", {"number": DEPARTMENT})
            department.wait_event("CALL_ESTABLISHED", timeout=10)
            at(22.0)
            department.command("hangup")
            until(lambda: department.calls_ended(), timeout=10)
            # (c) attended transfer: 1001 consults 1002 (1001 speaks from 25 s, 1002 1-6 s after his answer)
            status, body = service.request("POST", "/agents/1002/state", {"state": "available"})
            assert status == 200, body
            at(23.0)
            post(service, f"/calls/{call_id}/transfer", {"target": "agent:1002", "mode": "attended"})
            second.wait_event("CALL_ESTABLISHED", timeout=10)
            consulted = time.monotonic()
            marks["consult"] = time.time()
            time.sleep(max(0.0, consulted + 8.0 - time.monotonic()))
            marks["complete"] = time.time()
            post(service, f"/calls/{call_id}/transfer/complete")
            until(lambda: first.calls_ended(), timeout=10)
            agents = until(lambda: (a := _agents(service))["1002"]["state"] == "on_call" and a, timeout=10)
            assert isinstance(agents, dict)
            time.sleep(max(0.0, consulted + 17.0 - time.monotonic()))  # 1002 spoke to the caller (10-15 s)
            second.command("hangup")
            sipp.wait()
        ticket = service.ticket(lambda t: t["call_id"] == call_id)
    finally:
        first.stop()
        second.stop()
        department.stop()
    print("ticket:", ticket, "agents after the transfer:", {k: (v["state"], v["reason"]) for k, v in agents.items()})

    # (a) DTMF
    event_type = answered_event_type(sipp.read(sipp.message_log, 10**8))
    digits = telephone_events(pcap, event_type)

    # (b) conference and (c) transfer: who heard whom
    def ref(clip: Path | str, rate: int) -> np.ndarray:
        return read_wav_mono(mandarin_clip(clip) if isinstance(clip, str) else clip, rate=rate)[0]

    def received(phone: BaresipAgent) -> tuple[np.ndarray, int]:
        (wav,) = phone.received_wavs()
        return read_wav_mono(wav)

    to_caller = between(pcap)
    in_consult = between(pcap, marks["consult"], marks["complete"])
    after = between(pcap, marks["complete"] + 0.5)
    at_department, rd = received(department)
    at_first, r1 = received(first)
    at_second, r2 = received(second)
    recording = Path(ticket["recording_path"])
    right, rate = read_wav_mono(recording, channel=1)
    scores = {
        "department at the caller": heard(ref(PARTY_CLIP, 8000), to_caller, 8000),
        "department at 1001": heard(ref(PARTY_CLIP, r1), at_first, r1),
        "department in the agent channel": heard(ref(PARTY_CLIP, rate), right, rate),
        "caller at the department": heard(ref(caller_clip, rd), at_department, rd),
        "1001 at the department": heard(ref(agent_clip, rd), at_department, rd),
        "1002 at 1001": heard(ref(SECOND_CLIP, r1), at_first, r1),
        "1001 at 1002": heard(ref(agent_clip, r2), at_second, r2),
        "music at the caller in the consult": heard(ref(HOLD_MUSIC, 8000), in_consult, 8000),
        "1002 at the caller after": heard(ref(SECOND_CLIP, 8000), after, 8000),
        "caller at 1002": heard(ref(caller_clip, r2), at_second, r2),
    }
    absent = {
        "1002 at the caller in the consult": heard(ref(SECOND_CLIP, 8000), in_consult, 8000),
        "1001 at the caller in the consult": heard(ref(agent_clip, 8000), in_consult, 8000),
    }
    print(
        f"digits at the caller: {digits!r} (payload type {event_type}); "
        f"consult {marks['complete'] - marks['consult']:.1f} s; "
        + ", ".join(f"{k}: {v:.3f}" for k, v in (scores | absent).items())
    )
    assert digits == DIGITS
    for what, value in scores.items():
        assert value > PRESENT, f"{what}: {value:.3f}"
    for what, value in absent.items():
        assert value < ABSENT, f"{what}: {value:.3f}"
    assert (agents["1002"]["state"], agents["1002"]["call_id"], agents["1002"]["reason"]) == ("on_call", call_id, "")
    assert (agents["1001"]["state"], agents["1001"]["reason"]) == ("wrap_up", "transferred:1002")
    assert first.calls_ended(), "agent 1001's leg was not released"
    assert (ticket["outcome"], ticket["agent_id"], ticket["hangup_by"]) == ("answered", "1002", "agent")
    assert "transferred 1001 -> agent:1002 (attended)" in ticket["reason"]
