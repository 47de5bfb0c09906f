"""接听 from the agent desktop with a real SIP phone: a citizen calls (sipp), the offer rings the
agent's phone (a sipp UAS dialled directly, embedded dev mode), the agent answers from the desk
(POST /calls/{id}/answer, sign-in on) and the phone is asked to pick up by itself: the worker
CANCELs the ringing INVITE and sends a new one carrying Call-Info answer-after=0, which the
phone answers at once. The phone's scenario only answers an INVITE with that header (and
expects the CANCEL of the other), so its success and the call record saying answered prove it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.audio import best_correlation, read_wav_mono
from tests.e2e.peers import start_sipp, write_caller_scenario
from tests.e2e.rtpcapture import RtpCapture, decode_rtp_pcap
from tests.e2e.service import Service
from tests.e2e.test_survey_e2e import Desk, cli
from tests.support import free_port, free_udp_tcp_port, until

pytestmark = pytest.mark.e2e

CITIZEN = "13700000077"

_REPLY = (
    "SIP/2.0 {code}\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]SIPpTag01[call_number]\n"
    "[last_Call-ID:]\n{cseq}\n[last_Record-Route:]\n"
    "Contact: <sip:[local_ip]:[local_port];transport=[transport]>\n"
)
_SDP = (
    "v=0\no=phone 1 1 IN IP[local_ip_type] [local_ip]\ns=-\nc=IN IP[media_ip_type] [media_ip]\nt=0 0\n"
    "m=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
)


def auto_answer_phone(path: Path) -> Path:
    """A sipp UAS: an agent's desk phone that supports remote answer. Every INVITE rings (180).
    One with `answer-after=0` in its Call-Info is answered at once (200 with SDP, ACK) and the
    call lasts until a BYE; any other rings until it is CANCELled (200 to the CANCEL, 487 to the
    INVITE, ACK). Run it for two calls: the offer, then the desk's answer."""
    path.write_text(
        f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="desk phone answering on Call-Info answer-after">
  <recv request="INVITE" crlf="true">
    <action>
      <log message="INVITE [call_id]"/>
      <ereg regexp="answer-after=0" search_in="hdr" header="Call-Info:" check_it="false" assign_to="auto"/>
      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" check_it="true" assign_to="cseq"/>
    </action>
  </recv>
  <send><![CDATA[

{_REPLY.format(code="180 Ringing", cseq="[last_CSeq:]")}Content-Length: 0

  ]]></send>
  <nop next="answer" test="auto"/>
  <recv request="CANCEL" timeout="30000"/>
  <send><![CDATA[

{_REPLY.format(code="200 OK", cseq="[last_CSeq:]")}Content-Length: 0

  ]]></send>
  <send><![CDATA[

{_REPLY.format(code="487 Request Terminated", cseq="CSeq: [$cseq] INVITE")}Content-Length: 0

  ]]></send>
  <recv request="ACK" next="done"/>
  <label id="answer"/>
  <send retrans="500"><![CDATA[

{_REPLY.format(code="200 OK", cseq="[last_CSeq:]")}Content-Type: application/sdp
Content-Length: [len]

{_SDP}
  ]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE" timeout="45000"/>
  <send><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

  ]]></send>
  <label id="done"/>
  <timewait milliseconds="500"/>
</scenario>
"""
    )
    return path


def test_the_agent_answers_from_the_desk_and_his_phone_picks_up(
    start_service: Any, tmp_path: Path, caller_speech: Path, caller_clip: Path
) -> None:
    phone_port = free_udp_tcp_port()
    svc: Service = start_service(workers=1, kamailio=False, api={"auth": True})
    cli(svc, "agents", "add", "1001", "--name", "坐席1001", "--sip-uri", f"sip:1001@127.0.0.1:{phone_port}")
    cli(svc, "accounts", "add", "zhang", "--role", "agent", "--agent", "1001", "--password-env", "E2E_PASSWORD")
    cli(svc, "accounts", "add", "banzhang", "--role", "supervisor", "--password-env", "E2E_PASSWORD")
    desk, supervisor = Desk(svc, "zhang"), Desk(svc, "banzhang")
    desk.ok("POST", "/agents/1001/login")

    phone_dir, caller_dir = tmp_path / "phone", tmp_path / "caller"
    phone_dir.mkdir()
    caller_dir.mkdir()
    # The citizen talks for a while after the hotline answers him, then hangs up: long enough
    # for the offer to ring, the desk to answer and the phone to hear him.
    scenario = write_caller_scenario(
        caller_dir / "caller.xml", caller_number=CITIZEN, speech=caller_speech.name, speech_loops=-1, talk_ms=12000
    )
    (caller_dir / caller_speech.name).write_bytes(caller_speech.read_bytes())
    phone_scenario = auto_answer_phone(phone_dir / "phone.xml")
    phone_media = free_port(2)
    pcap = tmp_path / "to-phone.pcap"
    with (
        RtpCapture(phone_media, pcap),
        start_sipp(phone_scenario, None, phone_port, phone_media, phone_dir, timeout_s=60, calls=2) as phone,
        start_sipp(scenario, ("127.0.0.1", svc.sip_port), free_port(2), free_port(2), caller_dir, timeout_s=60) as c,
    ):

        def ringing() -> str | None:
            agent = desk.ok("GET", "/agents/1001")
            return str(agent["call_id"]) if agent["state"] == "reserved" and agent["call_id"] else None

        call_id = until(ringing, timeout=30)
        assert isinstance(call_id, str)
        assert supervisor.call("POST", f"/calls/{call_id}/answer", {})[0] == 403  # his phone does not ring
        status, body = desk.call("POST", f"/calls/{call_id}/answer", {})
        assert status == 202, body

        def on_call() -> bool:
            return bool(desk.ok("GET", "/agents/1001")["state"] == "on_call")

        until(on_call, timeout=20)
        assert desk.call("POST", f"/calls/{call_id}/answer", {})[0] == 409  # answered: no longer ringing
        c.wait()
        phone.wait()  # both calls of its scenario succeeded: the second INVITE asked it to answer

    record = until(lambda: _ended(supervisor, call_id), timeout=20)
    assert isinstance(record, dict)
    assert (record["outcome"], record["agent_id"], record["caller"]) == ("answered", "1001", CITIZEN), record
    invites = _invites(phone.read(phone.message_log, 200_000))
    assert len(invites) == 2, invites
    assert "answer-after" not in invites[0] and "Call-Info: <sip:" in invites[1], invites
    assert "answer-after=0" in invites[1], invites
    assert "Answer-Mode: Auto" in invites[1] and "info=alert-autoanswer" in invites[1], invites
    # The phone that picked up heard the citizen.
    heard = decode_rtp_pcap(pcap)
    score = best_correlation(read_wav_mono(caller_clip, rate=8000)[0], heard, 8000).score
    assert score > 0.8, score


def _ended(desk: Desk, call_id: str) -> dict[str, Any] | None:
    status, record = desk.call("GET", f"/calls/{call_id}")
    return record if status == 200 and record.get("ended_at") else None


def _invites(log: str) -> list[str]:
    """The INVITEs of sipp's message log, one per Call-ID (retransmissions aside), in order."""
    found: dict[str, str] = {}
    for block in log.split("\n\n----"):
        request = re.search(r"^INVITE sip:.*", block, re.M | re.S)
        call_id = re.search(r"^Call-ID:\s*(\S+)", block, re.M | re.I)
        if request and call_id:
            found.setdefault(call_id.group(1), request.group(0))
    return list(found.values())
