"""A city's menu flow (config/ivr/menu.yaml) on a real call: language choice, main menu, and the
status of a 工单 looked up by the number typed on the keypad, read back digit by digit.
What the caller heard is captured off the wire (tcpdump) and matched against the prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.audio import best_correlation, read_wav_mono
from tests.e2e.peers import run_sipp, write_caller_scenario
from tests.e2e.rtpcapture import RtpCapture, decode_rtp_pcap
from tests.e2e.service import REPO
from tests.support import free_port

pytestmark = pytest.mark.e2e

PROMPTS = REPO / "config" / "prompts" / "zh-CN"
CALLER = "13600000009"


def heard(prompt: str, signal: Any) -> float:
    reference, _ = read_wav_mono(PROMPTS / f"{prompt}.wav", rate=8000)
    return best_correlation(reference, signal, 8000).score


def test_ticket_status_by_keypad_through_the_menu(start_service: Any, tmp_path: Path) -> None:
    """The caller skips the welcome (5), picks Mandarin (1), then ticket status (2), types the
    ticket's number and #: the flow reads the number back and says it was dispatched, offers
    more, and after no answer says goodbye and hangs up. The call is a self-served record."""
    svc = start_service(workers=1, ivr={"flow": "menu"})
    number = svc.cli(
        "tickets", "create", "--caller", "13800001111", "--kind", "投诉", "--content", "夜间施工噪音扰民",
        "--policy", "zibo", "--lead-unit", "区城市管理局",
    ).strip()  # fmt: skip
    assert number.isdigit(), number
    status = svc.cli("tickets", "show", number, "--json")
    assert '"dispatched"' in status or "dispatched" in status
    cwd = tmp_path / "caller"
    cwd.mkdir()
    scenario = write_caller_scenario(
        cwd / "call.xml",
        caller_number=CALLER,
        digits="512" + number + "#",
        # SIP INFO: sipp replays RFC 4733 digits from fixed pcaps, so a digit repeated (the 00
        # in 26112200001) carries the same event timestamp and is rightly taken as a resend.
        dtmf_method="info",
        pre_dtmf_ms=1000,
        dtmf_gap_ms=1200,
        who_hangs_up="callee",
        bye_timeout_ms=90000,
    )
    media = free_port(2)
    with RtpCapture(media, tmp_path / "to-caller.pcap"):
        run_sipp(scenario, ("127.0.0.1", svc.sip_port), free_port(2), media, cwd, timeout_s=120)
    record = svc.ticket(lambda t: t["caller"] == CALLER)
    print("record:", {k: record[k] for k in ("outcome", "dtmf", "hangup_by", "reason")})
    assert record["outcome"] == "self_served"
    assert record["dtmf"] == "512" + number + "#"
    assert record["hangup_by"] == "system"
    assert record["queued_at"] is None  # never queued: the caller served himself

    signal = decode_rtp_pcap(tmp_path / "to-caller.pcap", payload_type=None)
    scores = {
        name: heard(name, signal)
        for name in ("language_menu", "menu_main", "lookup_prompt", "lookup_result", "status_dispatched", "goodbye")
    }
    scores["status_closed (not said)"] = heard("status_closed", signal)
    print("heard:", {k: round(v, 3) for k, v in scores.items()})
    for name in ("lookup_result", "status_dispatched", "goodbye"):
        assert scores[name] > 0.7, (name, scores)
    assert scores["status_closed (not said)"] < scores["status_dispatched"] - 0.2
    # The number read back digit by digit: each distinct digit of it was heard.
    for digit in sorted(set(number)):
        assert heard(f"digit_{digit}", signal) > 0.6, digit
