"""Overflow to voicemail, end to end: `hotline serve` with speech recognition, a sipp caller
through Kamailio who talks while nobody answers. Past the queue's max wait he hears the voicemail
prompt ("坐席繁忙，请在提示音后留言…", config/prompts/zh-CN/voicemail.wav), speaks for up
to voicemail_max_s, is said goodbye and hung up; the call is recorded as `voicemail`, it leaves
the queue, and its words become the ticket draft like any queued caller's."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.audio import best_correlation, read_wav_mono
from tests.e2e.peers import run_sipp, sipp_ulaw_file, write_caller_scenario
from tests.e2e.rtpcapture import RtpCapture, decode_rtp_pcap
from tests.e2e.service import REPO
from tests.support import free_port, mandarin_clip

pytestmark = pytest.mark.e2e

CALLER = "13700000077"


def test_a_caller_past_the_max_wait_leaves_a_message_that_becomes_a_draft(start_service: Any, tmp_path: Path) -> None:
    svc = start_service(
        workers=1,
        asr={"enabled": True},
        queue={"max_wait_s": 6, "overflow_target": "voicemail", "voicemail_max_s": 8},
    )
    speech = sipp_ulaw_file(mandarin_clip("funasr_asr_example_b"), tmp_path / "caller.ulaw")
    scenario = write_caller_scenario(
        tmp_path / "call.xml",
        caller_number=CALLER,
        digits="5",  # skips the greeting: waiting from the start
        speech=speech,
        speech_loops=-1,  # talks until the service hangs up
        who_hangs_up="callee",
        bye_timeout_ms=60000,
    )
    media = free_port(2)
    with RtpCapture(media, tmp_path / "to-caller.pcap"):
        run_sipp(scenario, ("127.0.0.1", svc.sip_port), free_port(2), media, tmp_path, timeout_s=90)
    record = svc.ticket(lambda t: t["caller"] == CALLER and t["draft"] is not None, timeout=180)
    assert (record["outcome"], record["hangup_by"]) == ("voicemail", "system"), record
    queued, ended = (datetime.fromisoformat(record[k]) for k in ("queued_at", "ended_at"))
    lasted = (ended - queued).total_seconds()
    assert 6 + 8 <= lasted < 40, lasted  # the max wait, then the whole message time
    assert svc.get("/queue")["waiting"] == []
    heard = decode_rtp_pcap(tmp_path / "to-caller.pcap", payload_type=None)
    told, _ = read_wav_mono(REPO / "config" / "prompts" / "zh-CN" / "voicemail.wav", rate=8000)
    score = best_correlation(told, heard, 8000).score
    draft = record["draft"]
    print(f"voicemail after {lasted:.1f} s; prompt heard {score:.3f}; transcript {draft['transcript']!r}")
    assert score > 0.8
    assert draft["draft"]["error"] is None and len(draft["transcript"]) >= 5, draft
