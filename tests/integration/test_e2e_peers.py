"""The end-to-end test's peers, proven against each other without the hotline service.

baresip (the agent) registers to a sipp registrar, then sipp (the caller) calls it directly with
DTMF and Mandarin speech; baresip answers by itself and plays its own clip. Audio is proven by
correlation both ways: the RTP captured on its way to sipp carries the agent's clip, and what
baresip recorded carries the caller's. Then the other variants: SIP INFO DTMF with an
Asterisk-style INVITE and the agent hanging up, PRACK, a refused registration, and a call routed
by hotline's Kamailio to the registered baresip the way a media worker's call to an agent is.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hotline.sip.kamailio import KamailioProcess, KamailioSettings
from tests.e2e.audio import best_correlation, read_wav_mono
from tests.e2e.peers import BaresipAgent, run_sipp, sipp_ulaw_file, start_sipp, write_caller_scenario
from tests.e2e.rtpcapture import RtpCapture, decode_rtp_pcap
from tests.support import free_port, free_udp_tcp_port

CLIPS = Path("/work/shared/audio/mandarin")
CALLER_CLIP = CLIPS / "paddlespeech_zh.wav"
AGENT_CLIP = CLIPS / "funasr_asr_example_b.wav"
SIPP_DIR = Path(__file__).resolve().parent.parent / "sipp"
RATE = 8000


@pytest.fixture(scope="module")
def clips() -> dict[str, object]:
    caller, _ = read_wav_mono(CALLER_CLIP, rate=RATE)
    agent, _ = read_wav_mono(AGENT_CLIP, rate=RATE)
    return {"caller": caller, "agent": agent}


def _dtmf(agent: BaresipAgent) -> str:
    return "".join(str(e.get("param")) for e in agent.events if e.get("type") == "CALL_DTMF_START")


def test_baresip_registers_answers_and_audio_flows_both_ways(tmp_path: Path, clips: dict) -> None:
    registrar_port = free_udp_tcp_port()
    registrar = start_sipp(
        SIPP_DIR / "registrar_ok.xml",
        None,
        registrar_port,
        free_port(socket.SOCK_DGRAM),
        tmp_path,
        timeout_s=20,
        extra_args=["-trace_logs", "-log_file", str(tmp_path / "registrar.log")],
    )
    with BaresipAgent(
        tmp_path / "agent", user="1001", registrar=("127.0.0.1", registrar_port), play_wav=AGENT_CLIP
    ) as agent:
        registrar.wait()
        assert agent.registered()
        # baresip registers a contact user of its own: sip:1001-0x<hex>@127.0.0.1:<its port>
        assert "REGISTER sip:1001-0x" in (tmp_path / "registrar.log").read_text()
        assert f"@127.0.0.1:{agent.sip_port}" in (tmp_path / "registrar.log").read_text()

        speech = sipp_ulaw_file(CALLER_CLIP, tmp_path / "caller.ulaw")
        scenario = write_caller_scenario(
            tmp_path / "caller.xml",
            service="1001",
            speech=speech,
            digits="12#",
            dtmf_method="rfc4733",
            pre_dtmf_ms=300,
            dtmf_gap_ms=400,
            talk_ms=6500,
            who_hangs_up="caller",
        )
        media_port = free_port(socket.SOCK_DGRAM)
        with RtpCapture(media_port, tmp_path / "to-caller.pcap") as capture:
            run_sipp(scenario, ("127.0.0.1", agent.sip_port), free_udp_tcp_port(), media_port, tmp_path, timeout_s=30)
        agent.wait_event("CALL_CLOSED")
        assert agent.calls_answered() == [agent.calls_ended()[0]]
        assert _dtmf(agent) == "12#"
        heard = agent.received_wavs()
        assert len(heard) == 1

    assert capture.packets_captured is not None and capture.packets_captured > 300  # ~7 s of 20 ms
    to_caller = decode_rtp_pcap(tmp_path / "to-caller.pcap")
    agent_in_capture = best_correlation(clips["agent"], to_caller, RATE)
    print(f"agent clip in the RTP sent to the caller: {agent_in_capture}")
    assert agent_in_capture.score > 0.8
    assert 0.3 < agent_in_capture.lag_s < 1.5  # after the 0.5 s of padding before the speech
    assert best_correlation(clips["caller"], to_caller, RATE).score < 0.3  # not an echo

    recorded, rate = read_wav_mono(heard[0])
    assert rate == RATE
    caller_in_recording = best_correlation(clips["caller"], recorded, rate)
    print(f"caller clip in what baresip heard: {caller_in_recording}")
    assert caller_in_recording.score > 0.8
    assert best_correlation(clips["agent"], recorded, rate).score < 0.3


def test_info_dtmf_asterisk_invite_and_the_agent_hangs_up(tmp_path: Path, clips: dict) -> None:
    with BaresipAgent(tmp_path / "agent", play_wav=AGENT_CLIP) as agent:
        assert not agent.registered()  # no registrar: called directly
        speech = sipp_ulaw_file(CALLER_CLIP, tmp_path / "caller.ulaw")
        scenario = write_caller_scenario(
            tmp_path / "caller.xml",
            service="1001",
            speech=speech,
            speech_loops=-1,
            digits="7*",
            dtmf_method="info",
            pre_dtmf_ms=200,
            dtmf_gap_ms=200,
            pre_speech_ms=0,
            who_hangs_up="callee",
            bye_timeout_ms=20000,
            asterisk_style=True,
        )
        caller = start_sipp(
            scenario,
            ("127.0.0.1", agent.sip_port),
            free_udp_tcp_port(),
            free_port(socket.SOCK_DGRAM),
            tmp_path,
            timeout_s=30,
        )
        agent.wait_event("CALL_ESTABLISHED")
        agent.wait_event("CALL_DTMF_START", count=2)
        assert "Active calls (1)" in agent.command("listcalls")["data"]
        response = agent.command("hangup")
        assert response["ok"] is True
        caller.wait()  # fails unless sipp got the BYE and answered it
        agent.wait_event("CALL_CLOSED")

    assert _dtmf(agent) == "7*"
    messages = caller.message_log.read_text()
    assert "Session-Expires: 1800" in messages
    assert "Content-Type: application/dtmf-relay" in messages
    assert "BYE sip:" in messages  # received from baresip


def test_the_asterisk_style_caller_pracks_a_reliable_provisional(tmp_path: Path) -> None:
    uas_port = free_udp_tcp_port()
    uas = start_sipp(
        SIPP_DIR / "uas_reliable_180.xml",
        None,
        uas_port,
        free_port(socket.SOCK_DGRAM),
        tmp_path,
        timeout_s=20,
        extra_args=["-trace_logs", "-log_file", str(tmp_path / "uas.log")],
    )
    scenario = write_caller_scenario(tmp_path / "caller.xml", asterisk_style=True, talk_ms=200)
    run_sipp(
        scenario, ("127.0.0.1", uas_port), free_udp_tcp_port(), free_port(socket.SOCK_DGRAM), tmp_path, timeout_s=20
    )
    uas.wait()
    assert "PRACK 4711 8377 INVITE PRACK sip:127.0.0.1:" in (tmp_path / "uas.log").read_text()


def test_a_failing_sipp_reports_its_error_log(tmp_path: Path) -> None:
    scenario = write_caller_scenario(tmp_path / "caller.xml", talk_ms=0)
    nobody = free_udp_tcp_port()
    with pytest.raises(AssertionError, match=r"(?s)sipp caller-\d+ failed.*--- errors"):
        run_sipp(
            scenario, ("127.0.0.1", nobody), free_udp_tcp_port(), free_port(socket.SOCK_DGRAM), tmp_path, timeout_s=3
        )


def test_a_refused_registration_fails_start_at_once(tmp_path: Path) -> None:
    refusing = tmp_path / "registrar_403.xml"
    refusing.write_text((SIPP_DIR / "registrar_ok.xml").read_text().replace("SIP/2.0 200 OK", "SIP/2.0 403 Forbidden"))
    registrar_port = free_udp_tcp_port()
    registrar = start_sipp(refusing, None, registrar_port, free_port(socket.SOCK_DGRAM), tmp_path, timeout_s=20)
    agent = BaresipAgent(tmp_path / "agent", registrar=("127.0.0.1", registrar_port))
    with pytest.raises(AssertionError, match=r"REGISTER failed: .*403 Forbidden"):
        agent.start(timeout=10)
    registrar.wait()
    assert agent.log_path.is_file()


def test_kamailio_routes_a_workers_call_to_the_registered_baresip(tmp_path: Path) -> None:
    # The sipp caller stands in for a media worker: its port is in the dispatcher set, so
    # Kamailio looks the agent up in its location table, as for the service's call to an agent.
    proxy_port, worker_port = free_udp_tcp_port(), free_udp_tcp_port()
    kamailio = KamailioProcess(
        KamailioSettings(runtime_dir=tmp_path / "kamailio", workers=(("127.0.0.1", worker_port),),
                         listen_port=proxy_port)
    )  # fmt: skip
    kamailio.start()
    try:
        with BaresipAgent(tmp_path / "agent", registrar=("127.0.0.1", proxy_port), play_wav=AGENT_CLIP) as agent:
            scenario = write_caller_scenario(tmp_path / "worker.xml", service="1001", digits="5", talk_ms=1000)
            run_sipp(scenario, ("127.0.0.1", proxy_port), worker_port, free_port(socket.SOCK_DGRAM), tmp_path,
                     timeout_s=20)  # fmt: skip
            agent.wait_event("CALL_CLOSED")
            assert len(agent.calls_answered()) == 1
            assert _dtmf(agent) == "5"
    finally:
        kamailio.stop()
    messages = (tmp_path / f"worker-{worker_port}-messages.log").read_text()
    assert f"Record-Route: <sip:127.0.0.1:{proxy_port};lr>" in messages
    # ACK and BYE go to baresip's registered contact (user 1001-0x...) along the route set.
    for method in ("ACK", "BYE"):
        assert f"{method} sip:1001-0x" in messages
    assert messages.count(f"Route: <sip:127.0.0.1:{proxy_port};lr>") >= 2
