"""The pcap/RTP decoder, on pcap files built byte by byte and on sipp's shipped captures."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.audio import best_correlation, read_wav_mono, to_telephone_wav, ulaw_decode
from tests.e2e.rtpcapture import (
    decode_rtp_pcap,
    decode_rtp_streams,
    read_udp_pcap,
    write_wav,
)

CLIP = Path("/work/shared/audio/mandarin/aishell1dev_BAC009S0724W0121.wav")
SIPP_PCAPS = Path("/usr/share/sip-tester")
PORT = 40000


def _rtp(
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes,
    pt: int = 0,
    *,
    csrcs: int = 0,
    extension: bytes | None = None,
    padding: int = 0,
) -> bytes:
    first = 0x80 | csrcs | (0x10 if extension is not None else 0) | (0x20 if padding else 0)
    header = struct.pack("!BBHII", first, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    header += b"".join(struct.pack("!I", 0x1000 + i) for i in range(csrcs))
    if extension is not None:
        header += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    pad = (b"\x00" * (padding - 1) + bytes([padding])) if padding else b""
    return header + payload + pad


def _ipv4_udp(payload: bytes, sport: int = 5004, dport: int = PORT) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0x4000, 64, 17, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])
    )
    return ip + udp


def _frame(linktype: int, ip: bytes) -> bytes:
    if linktype == 1:
        return b"\x00" * 12 + b"\x08\x00" + ip
    if linktype == 113:
        return struct.pack("!HHH8sH", 0, 772, 6, b"\x00" * 8, 0x0800) + ip
    if linktype == 276:
        return struct.pack("!HHIHBB8s", 0x0800, 0, 1, 772, 0, 6, b"\x00" * 8) + ip
    if linktype == 0:
        return struct.pack("=I", 2) + ip
    raise AssertionError(linktype)


def _pcap(
    path: Path, linktype: int, packets: list[tuple[float, bytes]], nanoseconds: bool = False, big_endian: bool = False
) -> Path:
    endian = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    blob = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    scale = 1e9 if nanoseconds else 1e6
    for when, datagram in packets:
        frame = _frame(linktype, _ipv4_udp(datagram))
        seconds = int(when)
        blob += struct.pack(endian + "IIII", seconds, round((when - seconds) * scale), len(frame), len(frame))
        blob += frame
    path.write_bytes(blob)
    return path


@pytest.fixture(scope="module")
def ulaw_payload(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    wav = to_telephone_wav(CLIP, tmp_path_factory.mktemp("clip") / "clip.wav")
    blob = wav.read_bytes()
    return blob[blob.index(b"data") + 8 :][: 160 * 150]  # 3 s


def _stream(payload: bytes) -> tuple[list[tuple[float, bytes]], np.ndarray]:
    """A hostile but legal packet stream of ``payload`` and the audio a receiver should get:
    sequence numbers and timestamps wrap, packets arrive reordered and duplicated, one is lost,
    DTMF and RTCP share the port, some packets carry CSRCs, an extension and padding."""
    rng = random.Random(7)
    chunks = [payload[i : i + 160] for i in range(0, len(payload), 160)]
    seq0, ts0, ssrc = 65500, 2**32 - 4000, 0xCAFE
    lost = 40
    packets = []
    for i, chunk in enumerate(chunks):
        if i == lost:
            continue
        kwargs = {"csrcs": 2, "extension": b"\x10\xff\x00\x00", "padding": 4} if i % 7 == 3 else {}
        packets.append((1000.0 + i * 0.02, _rtp(seq0 + i, ts0 + 160 * i, ssrc, chunk, **kwargs)))
    for k in range(1, len(packets) - 1, 5):  # swap neighbours: reordering
        packets[k], packets[k + 1] = packets[k + 1], packets[k]
    packets.insert(30, packets[25])  # a duplicate
    dtmf = bytes([1, 0x0A, 0, 160])
    packets.insert(10, (1000.2, _rtp(1, 0, 0x0E05384E, dtmf, pt=101)))
    packets.insert(50, (1001.0, _rtp(seq0 + 50, ts0 + 8000, ssrc, dtmf, pt=101)))
    packets.append((1004.0, bytes([0x80, 200, 0, 6]) + bytes(24)))  # an RTCP SR on the RTP port
    late = packets[100:110]
    rng.shuffle(late)
    packets[100:110] = late
    expected = ulaw_decode(payload).copy()
    expected[lost * 160 : (lost + 1) * 160] = 0.0
    return packets, expected


@pytest.mark.parametrize("linktype", [1, 113, 276, 0])
def test_a_hostile_stream_decodes_exactly_on_every_link_type(
    tmp_path: Path, ulaw_payload: bytes, linktype: int
) -> None:
    packets, expected = _stream(ulaw_payload)
    pcap = _pcap(tmp_path / "capture.pcap", linktype, packets)
    decoded = decode_rtp_pcap(pcap)
    assert decoded.dtype == np.float32
    assert decoded.size == expected.size
    assert np.array_equal(decoded, expected)

    streams = decode_rtp_streams(pcap)
    assert [s.ssrc for s in streams] == [0xCAFE]
    assert [p.sequence for p in streams[0].packets[:40]] == [(65500 + i) & 0xFFFF for i in range(40)]


def test_nanosecond_and_big_endian_pcaps(tmp_path: Path, ulaw_payload: bytes) -> None:
    packets, expected = _stream(ulaw_payload)
    for name, options in {"ns": {"nanoseconds": True}, "be": {"big_endian": True}}.items():
        pcap = _pcap(tmp_path / f"{name}.pcap", 1, packets, **options)
        assert np.array_equal(decode_rtp_pcap(pcap), expected), name
        assert read_udp_pcap(pcap)[0].time == pytest.approx(1000.0, abs=1e-6)


def test_streams_are_placed_by_capture_time_and_types_filtered(tmp_path: Path, ulaw_payload: bytes) -> None:
    first = ulaw_payload[: 160 * 50]  # 1 s from SSRC 1 at t=0, then 1 s from SSRC 2 at t=3
    second = ulaw_payload[160 * 50 : 160 * 100]
    packets = [(10.0 + i * 0.02, _rtp(i, 160 * i, 1, first[i * 160 : (i + 1) * 160])) for i in range(50)]
    packets += [
        (13.0 + i * 0.02, _rtp(900 + i, 99 + 160 * i, 2, second[i * 160 : (i + 1) * 160], pt=8)) for i in range(50)
    ]
    pcap = _pcap(tmp_path / "two.pcap", 1, packets)

    assert np.array_equal(decode_rtp_pcap(pcap, payload_type=0), ulaw_decode(first))
    both = decode_rtp_pcap(pcap, payload_type=None)
    assert both.size == 3 * 8000 + 8000
    assert np.array_equal(both[:8000], ulaw_decode(first))
    assert not both[8000 : 3 * 8000].any()
    assert [s.ssrc for s in decode_rtp_streams(pcap, payload_type=None)] == [1, 2]
    with pytest.raises(ValueError, match=r"not G\.711"):
        decode_rtp_pcap(pcap, payload_type=101)


def test_sipps_shipped_captures(tmp_path: Path) -> None:
    # A real A-law call leg (30 ms packets) and a real RFC 2833 digit.
    alaw = SIPP_PCAPS / "g711a.pcap"
    streams = decode_rtp_streams(alaw, payload_type=8)
    assert len(streams) == 1
    assert len(streams[0].packets) == 236
    assert {len(p.payload) for p in streams[0].packets} == {240}
    audio = decode_rtp_pcap(alaw, payload_type=8)
    assert audio.size == 236 * 240
    assert float(np.sqrt(np.mean(audio**2))) > 0.01
    assert decode_rtp_pcap(alaw, payload_type=0).size == 0

    digit = read_udp_pcap(SIPP_PCAPS / "dtmf_2833_1.pcap")
    assert len(digit) == 10
    assert {d.payload[1] & 0x7F for d in digit} == {101}
    assert decode_rtp_pcap(SIPP_PCAPS / "dtmf_2833_1.pcap", payload_type=None).size == 0

    written = write_wav(tmp_path / "alaw.wav", audio)
    samples, rate = read_wav_mono(written)
    assert rate == 8000
    assert best_correlation(audio, samples, rate).score > 0.999


def test_not_a_pcap_fails_loudly(tmp_path: Path) -> None:
    bogus = tmp_path / "x.pcapng"
    bogus.write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(40))
    with pytest.raises(ValueError, match="pcapng is not supported"):
        decode_rtp_pcap(bogus)
