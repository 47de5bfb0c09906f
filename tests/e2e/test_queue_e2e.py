"""The queue as callers meet it, end to end (`hotline serve`, sipp callers through Kamailio)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.audio import best_correlation, read_wav_mono
from tests.e2e.peers import run_sipp, start_sipp, write_caller_scenario
from tests.e2e.rtpcapture import RtpCapture, decode_rtp_pcap
from tests.e2e.service import REPO, Service
from tests.support import free_port, until

pytestmark = pytest.mark.e2e


def test_pressing_0_while_waiting_raises_the_call_keeping_its_arrival(service: Service, tmp_path: Path) -> None:
    """No agent is logged in. Caller A arrives first and waits; caller B arrives later and
    presses 0 (RFC 4733): B is moved ahead of A, flagged, with its own arrival time."""
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    first = write_caller_scenario(a_dir / "a.xml", caller_number="13300000001", talk_ms=30000)
    with start_sipp(first, ("127.0.0.1", service.sip_port), free_port(2), free_port(2), a_dir, timeout_s=60) as a:
        until(lambda: _waiting(service, 1), timeout=15)
        second = write_caller_scenario(
            b_dir / "b.xml", caller_number="13300000002", digits="0", pre_dtmf_ms=1500, talk_ms=20000
        )
        with start_sipp(second, ("127.0.0.1", service.sip_port), free_port(2), free_port(2), b_dir, timeout_s=60) as b:
            waiting = until(lambda: _flagged_first(service), timeout=15)
            assert isinstance(waiting, list)
            assert [(w["caller"], w["position"], w["priority"]) for w in waiting] == [
                ("13300000002", 1, "flagged"),
                ("13300000001", 2, "normal"),
            ]
            assert waiting[0]["arrival_ms"] > waiting[1]["arrival_ms"]  # raised, not re-queued as new
            b.kill()
        a.kill()


def _waiting(svc: Service, n: int) -> list[dict[str, Any]] | None:
    waiting = list(svc.get("/queue")["waiting"])
    return waiting if len(waiting) == n else None


def _flagged_first(svc: Service) -> list[dict[str, Any]] | None:
    waiting = _waiting(svc, 2)
    return waiting if waiting and waiting[0]["priority"] == "flagged" else None


def test_a_waiting_caller_hears_his_position_and_the_callback_offer(start_service: Any, tmp_path: Path) -> None:
    """The default flow with announcements every 10 s (a copy of config/ivr/default.yaml): with
    one caller ahead and nobody to answer, caller B hears "您前面还有 一 位来电" and the
    callback offer, joined from the digit and word prompts, between stretches of hold music."""
    flows = tmp_path / "ivr"
    flows.mkdir()
    default = (REPO / "config" / "ivr" / "default.yaml").read_text()
    assert "announce_interval_s: 45" in default
    (flows / "default.yaml").write_text(default.replace("announce_interval_s: 45", "announce_interval_s: 10"))
    svc = start_service(workers=1, ivr={"dir": str(flows), "flow": "default"})
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    first = write_caller_scenario(a_dir / "a.xml", caller_number="13300000011", talk_ms=40000)
    with start_sipp(first, ("127.0.0.1", svc.sip_port), free_port(2), free_port(2), a_dir, timeout_s=60) as a:
        until(lambda: _waiting(svc, 1), timeout=15)
        second = write_caller_scenario(b_dir / "b.xml", caller_number="13300000012", digits="5", talk_ms=22000)
        media = free_port(2)
        with RtpCapture(media, tmp_path / "to-b.pcap"):
            run_sipp(second, ("127.0.0.1", svc.sip_port), free_port(2), media, b_dir, timeout_s=60)
        a.kill()
    heard = decode_rtp_pcap(tmp_path / "to-b.pcap", payload_type=None)
    scores = {
        name: _heard(name, heard) for name in ("queue_position", "num_1", "queue_position_unit", "callback_offer")
    }
    scores["queue_next (not said)"] = _heard("queue_next", heard)
    print("B heard:", {k: round(v, 3) for k, v in scores.items()})
    for name in ("queue_position", "queue_position_unit", "callback_offer"):
        assert scores[name] > 0.8, (name, scores)
    assert scores["num_1"] > 0.6
    assert scores["queue_next (not said)"] < 0.5
    record = svc.ticket(lambda t: t["caller"] == "13300000012")
    assert record["outcome"] == "abandoned_in_queue"


def _heard(prompt: str, signal: Any) -> float:
    reference, _ = read_wav_mono(REPO / "config" / "prompts" / "zh-CN" / f"{prompt}.wav", rate=8000)
    return best_correlation(reference, signal, 8000).score
