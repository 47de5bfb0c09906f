"""What the SIP adapter reports about call legs: plain data, no pjsua2 types.

A leg is one SIP dialog of this worker: the caller's incoming call, or an outgoing call to an
agent. Leg ids are the adapter's own strings; pjsua2 call ids never leave the adapter.
"""

from __future__ import annotations

import dataclasses
import enum


class LegState(enum.StrEnum):
    RINGING = "ringing"  # outgoing: 180/183 received; incoming: not yet answered
    CONFIRMED = "confirmed"  # 200 OK + ACK
    DISCONNECTED = "disconnected"


@dataclasses.dataclass(frozen=True, slots=True)
class IncomingCall:
    """A new INVITE was admitted; the runtime decides to answer it."""

    leg_id: str
    caller: str  # user part of From (the caller's number), or the whole URI
    callee: str  # user part of the request URI / To (e.g. 12345)
    sip_call_id: str
    remote_uri: str


@dataclasses.dataclass(frozen=True, slots=True)
class CallRejected:
    """An INVITE refused at admission (over the limit) with 503; never answered."""

    sip_call_id: str
    caller: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class LegStateChanged:
    leg_id: str
    state: LegState
    status_code: int  # last SIP status (200, 486, 487, 408, ...)
    reason: str
    by_remote: bool  # DISCONNECTED: True if the far end hung up or refused


@dataclasses.dataclass(frozen=True, slots=True)
class MediaReady:
    """The leg's audio is flowing (fires again after a re-INVITE; wiring is reapplied)."""

    leg_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class DtmfReceived:
    leg_id: str
    digit: str
    method: str  # "rfc4733" or "sip-info"


SipEvent = IncomingCall | CallRejected | LegStateChanged | MediaReady | DtmfReceived


@dataclasses.dataclass(frozen=True, slots=True)
class SipSettings:
    """How the media worker's SIP endpoint listens and what it admits."""

    host: str = "127.0.0.1"
    port: int = 5070
    public_host: str | None = None  # address written into SDP/Contact (default: host)
    max_calls: int = 200  # admission limit; above it new INVITEs get 503
    clock_rate: int = 8000  # conference bridge clock: telephone band
    user_agent: str = "hotline"
    log_file: str | None = None
    log_level: int = 3
    rtp_port: int = 0  # first RTP port (0 = pjsua's default, 4000 up)
    rtp_port_range: int = 0  # how many ports from rtp_port this endpoint may use (0 = no limit)
    allow_dev_build: bool = False  # accept a pjsua2 with fewer than max_calls call slots
