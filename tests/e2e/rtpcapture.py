"""Capture RTP on the loopback interface with tcpdump, and decode G.711 audio from a pcap file.

An end-to-end test proves that audio reached a peer that keeps none itself (sipp, as a caller)
by capturing the packets sent to that peer's media port and decoding them here. The pcap format
is parsed by hand (no scapy/dpkt): link types Ethernet (1), BSD loopback (0), raw IP (12, 101),
Linux cooked v1 (113) and v2 (276); IPv4 and IPv6; UDP; RTP with CSRCs, header extension and
padding.

Decoding follows what a receiver does: packets are grouped by SSRC, ordered by their extended
sequence number (wraparound handled), duplicates dropped, and placed at their RTP timestamp, so a
lost or late packet leaves silence of its length rather than shifting what follows. Packets of
other payload types (telephone-event DTMF, comfort noise) are skipped. When several SSRCs sent to
the port one after another (a prompt, then bridged audio; a re-INVITE), each stream starts on the
shared timeline at the capture time of its first packet, and overlapping streams are summed.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import struct
import subprocess
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import numpy as np
import numpy.typing as npt

from tests.e2e.audio import ALAW_TABLE, ULAW_TABLE

Samples = npt.NDArray[np.float32]

TCPDUMP_INSTALL = "apt-get install tcpdump"
PCMU = 0
PCMA = 8
_G711 = {PCMU: ULAW_TABLE, PCMA: ALAW_TABLE}

_LINKTYPE_NULL = 0
_LINKTYPE_ETHERNET = 1
_LINKTYPE_RAW = (12, 101)
_LINKTYPE_LINUX_SLL = 113
_LINKTYPE_LINUX_SLL2 = 276
_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_ETHERTYPE_VLAN = (0x8100, 0x88A8)


class RtpCapture:
    """``tcpdump -i lo -U -w <pcap_path> "udp and dst port <port>"`` for the life of a ``with``.

    ``start`` returns only once tcpdump says it is listening (its filter is attached), so no
    packet sent afterwards is missed; a tcpdump that is missing, lacks the privilege to capture,
    or exits early fails loudly with its own error output. ``stop`` ends it with SIGINT, which
    flushes the file, and records tcpdump's "N packets captured" as ``packets_captured``.
    """

    def __init__(
        self, port: int, pcap_path: str | Path, interface: str = "lo", extra_filter: str | None = None
    ) -> None:
        self.port = port
        self.pcap_path = Path(pcap_path)
        self.interface = interface
        self.filter = f"udp and dst port {port}" + (f" and ({extra_filter})" if extra_filter else "")
        self.packets_captured: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def stderr(self) -> str:
        """What tcpdump has printed on its standard error so far."""
        return "".join(self._stderr)

    def start(self, timeout: float = 10.0) -> None:
        """Starts tcpdump and returns once it listens; fails loudly if it cannot."""
        binary = shutil.which("tcpdump") or next(
            (p for p in ("/usr/bin/tcpdump", "/usr/sbin/tcpdump") if os.access(p, os.X_OK)), None
        )
        if binary is None:
            raise RuntimeError(f"tcpdump is not installed: {TCPDUMP_INSTALL}")
        self.pcap_path.parent.mkdir(parents=True, exist_ok=True)
        args = [binary, "-i", self.interface, "-U", "-n", "-s", "0", "-w", str(self.pcap_path)]
        if os.geteuid() == 0:
            args += ["-Z", "root"]  # Debian's tcpdump drops to user tcpdump, who may not write here
        self._proc = subprocess.Popen(
            [*args, self.filter], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert self._proc.stderr is not None
        stream = self._proc.stderr
        deadline = time.monotonic() + timeout
        text = b""
        while b"listening on" not in text:
            remaining = deadline - time.monotonic()
            ready = select.select([stream], [], [], max(remaining, 0))[0] if remaining > 0 else []
            chunk = os.read(stream.fileno(), 4096) if ready else None
            if chunk is not None:
                text += chunk
                self._stderr[:] = [text.decode(errors="replace")]
            if chunk == b"":  # tcpdump exited
                self._reap()
                raise RuntimeError(
                    f"tcpdump exited before capturing: {self.stderr.strip()} (it needs root or "
                    "CAP_NET_RAW: setcap cap_net_raw,cap_net_admin=eip $(which tcpdump))"
                )
            if remaining <= 0:
                self._reap(kill=True)
                raise RuntimeError(f"tcpdump did not start listening within {timeout}s: {self.stderr}")
        self._reader = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._reader.start()

    def _drain(self, stream: IO[bytes]) -> None:
        for chunk in iter(lambda: os.read(stream.fileno(), 4096), b""):
            self._stderr.append(chunk.decode(errors="replace"))

    def stop(self) -> None:
        """Stops tcpdump (SIGINT flushes the file) and reads its packet count."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
        self._reap()
        for line in self.stderr.splitlines():
            if line.endswith("packets captured"):
                self.packets_captured = int(line.split()[0])

    def _reap(self, kill: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if proc.stderr is not None:
            proc.stderr.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class UdpDatagram:
    """One UDP datagram of a capture."""

    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


@dataclass(frozen=True)
class RtpPacket:
    time: float
    src: tuple[str, int]
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


@dataclass
class RtpStream:
    """The packets of one SSRC, in sequence order, and their decoded audio."""

    ssrc: int
    start_time: float
    """Capture time of its first packet (seconds since the epoch)."""
    packets: list[RtpPacket] = field(default_factory=list)
    samples: Samples = field(default_factory=lambda: np.zeros(0, dtype=np.float32))


def _read_pcap(path: Path) -> tuple[int, list[tuple[float, bytes]]]:
    blob = path.read_bytes()
    if len(blob) < 24:
        raise ValueError(f"{path}: not a pcap file (only {len(blob)} bytes)")
    magic = blob[:4]
    formats = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
        b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
        b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }
    if magic not in formats:
        raise ValueError(f"{path}: not a pcap file (magic {magic.hex()}; pcapng is not supported)")
    endian, fraction = formats[magic]
    (linktype,) = struct.unpack_from(endian + "I", blob, 20)
    frames: list[tuple[float, bytes]] = []
    offset = 24
    while offset + 16 <= len(blob):
        seconds, fractional, caplen, _ = struct.unpack_from(endian + "IIII", blob, offset)
        offset += 16
        frames.append((seconds + fractional * fraction, blob[offset : offset + caplen]))
        offset += caplen
    return linktype & 0x0FFFFFFF, frames


def _network_layer(linktype: int, frame: bytes) -> tuple[int, bytes] | None:
    """(ethertype, packet) of a link-layer frame, or None when it carries no IP."""
    if linktype == _LINKTYPE_ETHERNET:
        ethertype, at = struct.unpack_from("!H", frame, 12)[0], 14
        while ethertype in _ETHERTYPE_VLAN and len(frame) >= at + 4:
            ethertype, at = struct.unpack_from("!H", frame, at + 2)[0], at + 4
        return ethertype, frame[at:]
    if linktype == _LINKTYPE_LINUX_SLL:
        return struct.unpack_from("!H", frame, 14)[0], frame[16:]
    if linktype == _LINKTYPE_LINUX_SLL2:
        return struct.unpack_from("!H", frame, 0)[0], frame[20:]
    if linktype == _LINKTYPE_NULL:
        family = struct.unpack_from("=I", frame, 0)[0]
        version = frame[4] >> 4 if len(frame) > 4 else 0
        if family == 2 or version == 4:
            return _ETHERTYPE_IPV4, frame[4:]
        return (_ETHERTYPE_IPV6, frame[4:]) if version == 6 else None
    if linktype in _LINKTYPE_RAW:
        version = frame[0] >> 4 if frame else 0
        return {4: _ETHERTYPE_IPV4, 6: _ETHERTYPE_IPV6}.get(version, 0), frame
    raise ValueError(f"unsupported pcap link type {linktype}")


def _udp(ethertype: int, packet: bytes) -> tuple[str, str, bytes] | None:
    """(source address, destination address, UDP segment) of an IP packet carrying UDP."""
    if ethertype == _ETHERTYPE_IPV4 and len(packet) >= 20:
        header_len = (packet[0] & 0x0F) * 4
        total_len, flags_fragment, protocol = struct.unpack_from("!H2xHxB", packet, 2)
        if protocol != 17 or flags_fragment & 0x3FFF:  # not UDP, or a fragment
            return None
        src, dst = (".".join(str(b) for b in packet[i : i + 4]) for i in (12, 16))
        return src, dst, packet[header_len:total_len]
    if ethertype == _ETHERTYPE_IPV6 and len(packet) >= 40:
        if packet[6] != 17:  # extension headers are not followed
            return None
        (payload_len,) = struct.unpack_from("!H", packet, 4)
        src, dst = (packet[i : i + 16].hex(":", 2) for i in (8, 24))
        return src, dst, packet[40 : 40 + payload_len]
    return None


def read_udp_pcap(pcap_path: str | Path) -> list[UdpDatagram]:
    """Every UDP datagram of a pcap file, in capture order."""
    linktype, frames = _read_pcap(Path(pcap_path))
    datagrams: list[UdpDatagram] = []
    for captured_at, frame in frames:
        network = _network_layer(linktype, frame)
        udp = _udp(*network) if network else None
        if udp is None or len(udp[2]) < 8:
            continue
        src, dst, segment = udp
        sport, dport, length = struct.unpack_from("!HHH", segment)
        datagrams.append(UdpDatagram(captured_at, (src, sport), (dst, dport), segment[8:length]))
    return datagrams


def parse_rtp(datagram: UdpDatagram) -> RtpPacket | None:
    """The RTP packet a datagram carries, or None (RTCP, STUN, anything not RTP version 2)."""
    data = datagram.payload
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    payload_type = data[1] & 0x7F
    if 72 <= payload_type <= 76:  # RTCP sent to the RTP port (rtcp-mux): SR, RR, SDES, BYE, APP
        return None
    at = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:  # header extension: 16-bit profile, 16-bit length in words
        if len(data) < at + 4:
            return None
        at += 4 + 4 * struct.unpack_from("!H", data, at + 2)[0]
    end = len(data)
    if data[0] & 0x20 and end > at:  # padding: the last byte counts the padding bytes
        end -= data[-1]
    if end < at:
        return None
    sequence, timestamp, ssrc = struct.unpack_from("!HII", data, 2)
    return RtpPacket(
        datagram.time,
        datagram.src,
        payload_type,
        bool(data[1] & 0x80),
        sequence,
        timestamp,
        ssrc,
        data[at:end],
    )


def _unwrap(values: list[int], modulus: int) -> list[int]:
    """Extends wrapping counters (sequence numbers, timestamps) taken in arrival order."""
    half = modulus // 2
    out: list[int] = []
    for value in values:
        if not out:
            out.append(value)
            continue
        delta = (value - out[-1] + half) % modulus - half
        out.append(out[-1] + delta)
    return out


def decode_rtp_streams(pcap_path: str | Path, payload_type: int | None = PCMU, rate: int = 8000) -> list[RtpStream]:
    """The G.711 RTP streams of a capture, one per SSRC in order of their first packet.

    ``payload_type`` 0 (PCMU) or 8 (PCMA) keeps packets of that type only; None keeps both,
    each decoded by its own type. Other types (telephone-event, CN) are ignored.
    """
    wanted = set(_G711) if payload_type is None else {payload_type}
    if not wanted <= set(_G711):
        raise ValueError(f"payload type {payload_type} is not G.711 (0 or 8)")
    by_ssrc: dict[int, list[RtpPacket]] = {}
    for datagram in read_udp_pcap(pcap_path):
        packet = parse_rtp(datagram)
        if packet is not None and packet.payload_type in wanted:
            by_ssrc.setdefault(packet.ssrc, []).append(packet)

    streams: list[RtpStream] = []
    for ssrc, arrived in by_ssrc.items():
        sequences = _unwrap([p.sequence for p in arrived], 1 << 16)
        timestamps = _unwrap([p.timestamp for p in arrived], 1 << 32)
        ordered: dict[int, tuple[int, RtpPacket]] = {}
        for seq, ts, packet in zip(sequences, timestamps, arrived, strict=True):
            ordered.setdefault(seq, (ts, packet))  # a duplicate keeps the first copy
        ranked = [ordered[seq] for seq in sorted(ordered)]
        base = min(ts for ts, _ in ranked)
        end = max(ts - base + len(p.payload) for ts, p in ranked)
        # A timestamp far from the rest (a broken sender) would allocate hours of silence.
        if end > rate * 3600:
            raise ValueError(f"SSRC {ssrc:#x}: RTP timestamps span more than an hour")
        samples = np.zeros(end, dtype=np.float32)
        for ts, packet in ranked:
            at = ts - base
            samples[at : at + len(packet.payload)] = _G711[packet.payload_type][
                np.frombuffer(packet.payload, dtype=np.uint8)
            ]
        first = min(p.time for p in arrived)
        streams.append(RtpStream(ssrc, first, [p for _, p in ranked], samples))
    return sorted(streams, key=lambda s: s.start_time)


def decode_rtp_pcap(pcap_path: str | Path, payload_type: int | None = PCMU, rate: int = 8000) -> Samples:
    """All G.711 audio of a capture as one float32 signal at ``rate``, starting at its first
    packet: each SSRC's stream is placed at the capture time of its first packet (see the module
    docstring). Empty when the capture holds no packet of that type."""
    streams = decode_rtp_streams(pcap_path, payload_type, rate)
    if not streams:
        return np.zeros(0, dtype=np.float32)
    t0 = streams[0].start_time
    offsets = [round((s.start_time - t0) * rate) for s in streams]
    out = np.zeros(max(o + s.samples.size for o, s in zip(offsets, streams, strict=True)), dtype=np.float32)
    for offset, stream in zip(offsets, streams, strict=True):
        out[offset : offset + stream.samples.size] += stream.samples
    return out


def write_wav(path: str | Path, samples: npt.ArrayLike, rate: int = 8000) -> Path:
    """Writes float samples in [-1, 1] (clipped) as a 16-bit mono PCM WAV, e.g. to listen to a
    capture."""
    pcm = np.round(np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0) * 32767).astype("<i2")
    path = Path(path)
    with contextlib.closing(wave.open(str(path), "wb")) as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path
