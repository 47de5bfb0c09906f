"""RtpCapture with real tcpdump on lo, decoding real RTP that sipp sends to another sipp."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.audio import best_correlation, read_wav_mono
from tests.e2e.peers import run_sipp, sipp_ulaw_file, start_sipp, write_caller_scenario
from tests.e2e.rtpcapture import RtpCapture, decode_rtp_pcap, decode_rtp_streams, read_udp_pcap
from tests.support import free_port, free_udp_tcp_port

CLIP = Path("/work/shared/audio/mandarin/paddlespeech_zh.wav")
RATE = 8000


def test_rtp_that_sipp_streams_is_captured_and_decodes_to_the_clip(tmp_path: Path) -> None:
    clip, _ = read_wav_mono(CLIP, rate=RATE)
    speech = sipp_ulaw_file(CLIP, tmp_path / "caller.ulaw")
    scenario = write_caller_scenario(
        tmp_path / "caller.xml", speech=speech, digits="1", pre_dtmf_ms=200, dtmf_gap_ms=300, talk_ms=5500
    )
    uas_port, uas_media = free_udp_tcp_port(), free_port(socket.SOCK_DGRAM)
    caller_media = free_port(socket.SOCK_DGRAM)
    uas = start_sipp("uas", None, uas_port, uas_media, tmp_path, timeout_s=30)
    with (
        RtpCapture(uas_media, tmp_path / "to-uas.pcap") as to_uas,
        RtpCapture(caller_media, tmp_path / "to-caller.pcap") as to_caller,
    ):
        run_sipp(scenario, ("127.0.0.1", uas_port), free_udp_tcp_port(), caller_media, tmp_path, timeout_s=30)
    uas.wait()

    # 5 s of speech in 20 ms packets, plus the digit's 10 RFC 2833 packets; nothing comes back.
    assert to_uas.packets_captured is not None and to_uas.packets_captured >= 250 + 10
    assert to_caller.packets_captured == 0
    datagrams = read_udp_pcap(tmp_path / "to-uas.pcap")
    assert {d.dst[1] for d in datagrams} == {uas_media}
    assert {d.src[1] for d in datagrams} == {caller_media}  # sipp 3.6.1 streams from its -mp port
    assert sum(d.payload[1] & 0x7F == 101 for d in datagrams) == 10

    streams = decode_rtp_streams(tmp_path / "to-uas.pcap")
    assert len(streams) == 1 and len(streams[0].packets) >= 249
    decoded = decode_rtp_pcap(tmp_path / "to-uas.pcap")
    score, lag = best_correlation(clip, decoded, RATE)
    assert score > 0.9
    assert abs(lag) < 0.05  # the decoded signal starts with the first speech packet
    assert np.sqrt(np.mean(decoded**2)) > 0.001


def test_tcpdump_that_cannot_capture_fails_loudly(tmp_path: Path) -> None:
    capture = RtpCapture(free_port(socket.SOCK_DGRAM), tmp_path / "x.pcap", interface="nosuchif0")
    with pytest.raises(RuntimeError, match="tcpdump exited"):
        capture.start()
    assert "nosuchif0" in capture.stderr
