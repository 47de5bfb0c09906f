"""Real SIP peers for end-to-end tests: a baresip softphone as the agent, sipp as the caller.

``BaresipAgent`` runs Debian's baresip 1.0 in a directory of its own: it registers as an agent,
auto-answers, plays a WAV to the caller (aufile) and records what it hears (sndfile), and takes
commands over ctrl_tcp. ``caller_scenario`` writes a sipp UAC that calls the service (through a
proxy) with G.711 speech and DTMF, in plain or Asterisk-trunk style; ``run_sipp``/``start_sipp``
run it and fail with sipp's own error log.

Facts about the tools these helpers depend on (measured with baresip 1.0.0 and sipp 3.6.1):
- baresip registers with a contact user of its own making, ``<user>-0x<hex>``; Kamailio's
  ``lookup`` rewrites the request URI to it and baresip accepts it, as it also accepts an INVITE
  for ``sip:<user>@<its address>`` sent to it directly.
- aufile needs 16-bit mono at ``ausrc_srate``; it loads the whole file at once (its "end of file"
  log line appears at once) and when playback runs out baresip hangs up (BYE; log "menu: audio
  error (0,end of file)"), hence the padding, which also makes an agent that hangs up by itself
  (a small ``pad_after_s``).
- sndfile writes ``dump-<YYYY-MM-DD-HH-MM-SS>-dec.wav`` (what the agent heard) and ``-enc.wav``
  (what it sent) in ``snd_path``, 16-bit at the codec's rate; two calls starting in the same
  second share (and overwrite) one pair of names.
- sipp's ``rtp_stream`` path is opened relative to sipp's working directory when the scenario
  loads; the loop count is the number of plays (0 plays nothing, -1 plays until the call ends);
  it sends the file's bytes as they are (3.6.1 does not skip a WAV header), from the ``-mp``
  port. So the caller's speech is given to sipp as raw μ-law (``sipp_ulaw_file``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from xml.sax.saxutils import quoteattr

from tests.e2e.audio import pad_wav, to_telephone_wav
from tests.support import free_port, free_udp_tcp_port, require_tool

BARESIP_INSTALL = "apt-get install baresip"
SIPP_INSTALL = "apt-get install sip-tester"
BARESIP_MODULES = Path("/usr/lib/baresip/modules")
SIPP_PCAPS = Path("/usr/share/sip-tester")

_REGISTERED = re.compile(r"^(?P<aor>\S+): \{\d+/\w+/v[46]\} 200 OK", re.MULTILINE)
_REGISTER_FAILED = re.compile(r"reg: (?P<aor>\S+): (?P<reason>.*)")  # e.g. "403 Forbidden ()"
_ESTABLISHED = re.compile(r"Call established: (?P<peer>\S+)")
_TERMINATED = re.compile(r"Call with (?P<peer>\S+) terminated")


# --------------------------------------------------------------------------------------------
# baresip


class BaresipAgent:
    """A baresip 1.0 softphone as a hotline agent, in ``workdir``, on 127.0.0.1.

    ``registrar`` is the (host, port) it registers ``sip:<user>@host:port`` with (None: no
    registration; call it directly at ``direct_uri``). ``play_wav`` (any format sox reads) is
    converted to 8 kHz 16-bit mono and padded with ``pad_before_s`` of silence before and
    ``pad_after_s`` after, so that the call does not end when the speech does. What the agent
    hears is in ``received_wavs()``. Incoming calls are answered automatically unless
    ``answermode`` says otherwise (then use ``command("accept")``).
    """

    def __init__(
        self,
        workdir: str | Path,
        user: str = "1001",
        registrar: tuple[str, int] | None = None,
        play_wav: str | Path | None = None,
        sip_port: int | None = None,
        ctrl_port: int | None = None,
        *,
        answermode: Literal["auto", "manual", "early"] = "auto",
        regint: int = 60,
        pad_before_s: float = 0.5,
        pad_after_s: float = 120.0,
        codecs: Sequence[str] = ("pcmu", "pcma"),
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.user = user
        self.registrar = registrar
        self.play_wav = Path(play_wav) if play_wav is not None else None
        self.sip_port = sip_port if sip_port is not None else free_udp_tcp_port()
        self.ctrl_port = ctrl_port if ctrl_port is not None else free_port()
        self.answermode = answermode
        self.regint = regint
        self.pad_before_s = pad_before_s
        self.pad_after_s = pad_after_s
        self.codecs = tuple(codecs)
        self.log_path = self.workdir / "baresip.log"
        self.recordings_dir = self.workdir / "recordings"
        self.source_wav = self.workdir / "agent-source.wav"
        self.events: list[dict[str, Any]] = []
        """Every ctrl_tcp event since ``start`` (``{"event": true, "type": "CALL_ESTABLISHED",
        ...}``), in order of arrival."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._ctrl: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()
        self._responses: dict[str, dict[str, Any]] = {}
        self._tokens = itertools.count(1)

    @property
    def aor(self) -> str:
        """The address of record the agent registers (and Kamailio routes to)."""
        if self.registrar is None:
            return self.direct_uri
        host, port = self.registrar
        return f"sip:{self.user}@{host}:{port}"

    @property
    def direct_uri(self) -> str:
        """Where to send an INVITE to reach this phone without a proxy."""
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    # -- configuration --------------------------------------------------------------------

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.recordings_dir.mkdir(exist_ok=True)
        silence = self.workdir / "silence-1s.wav"
        if self.play_wav is None:
            silence.write_bytes(_silent_wav(8000, 1.0))
            source = silence
        else:
            source = self.play_wav
        pcm = to_telephone_wav(source, self.workdir / "agent-pcm.wav", encoding="signed")
        pad_wav(pcm, self.source_wav, self.pad_before_s, self.pad_after_s)

        config = f"""\
# Written by tests/e2e/peers.py for one test: baresip {self.user} on 127.0.0.1:{self.sip_port}
poll_method		epoll
sip_listen		127.0.0.1:{self.sip_port}
net_interface		127.0.0.1
call_local_timeout	120
call_max_calls		4
audio_source		aufile,{self.source_wav}
audio_player		aubridge,{self.user}-speaker
audio_alert		aubridge,{self.user}-alert
ausrc_srate		8000
auplay_srate		8000
ausrc_channels		1
auplay_channels		1
audio_level		no
ausrc_format		s16
auplay_format		s16
auenc_format		s16
audec_format		s16
audio_buffer		20-160
rtp_tos			0
rtcp_mux		no
jitter_buffer_delay	1-10
rtp_stats		no
module_path		{BARESIP_MODULES}
module			g711.so
module			aufile.so
module			aubridge.so
module			sndfile.so
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:{self.ctrl_port}
snd_path		{self.recordings_dir}
statmode_default	off
ringback_disabled	yes
"""
        (self.workdir / "config").write_text(config)
        if self.registrar is not None:
            host, port = self.registrar
            uri = f"<sip:{self.user}@{host}:{port};transport=udp>"
            params = f";regint={self.regint}"
        else:
            uri = f"<sip:{self.user}@127.0.0.1:{self.sip_port};transport=udp>"
            params = ";regint=0"
        account = f"{uri}{params};answermode={self.answermode};audio_codecs={','.join(self.codecs)}\n"
        (self.workdir / "accounts").write_text(account)
        (self.workdir / "contacts").write_text("")

    # -- life cycle -----------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> None:
        """Starts baresip, connects to ctrl_tcp, and waits until it is registered (if it has a
        registrar). Fails with baresip's log when it exits, is refused or times out."""
        binary = require_tool("baresip", BARESIP_INSTALL)
        missing = [
            m
            for m in ("g711", "aufile", "aubridge", "sndfile", "account", "menu", "ctrl_tcp")
            if not (BARESIP_MODULES / f"{m}.so").is_file()
        ]
        if missing:
            raise RuntimeError(f"baresip modules missing in {BARESIP_MODULES}: {missing}: {BARESIP_INSTALL}")
        self._write_config()
        args = [binary, "-f", str(self.workdir)]
        stdbuf = shutil.which("stdbuf")  # baresip's stdout is a file: keep its log line-buffered
        if stdbuf is not None:
            args = [stdbuf, "-oL", "-eL", *args]
        self._log_file = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            args,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        try:
            self._connect_ctrl(deadline)
            if self.registrar is not None:
                self._wait_registered(deadline)
        except BaseException:
            self.stop()
            raise

    def _connect_ctrl(self, deadline: float) -> None:
        while True:
            self._check_alive("connecting to ctrl_tcp")
            try:
                self._ctrl = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"baresip's ctrl_tcp never listened:\n{self.log_text()}") from None
                time.sleep(0.05)
        self._ctrl.settimeout(None)
        self._reader = threading.Thread(target=self._read_ctrl, args=(self._ctrl,), daemon=True)
        self._reader.start()

    def _check_alive(self, doing: str) -> None:
        if self._proc is None or self._proc.poll() is not None:
            code = None if self._proc is None else self._proc.returncode
            raise AssertionError(f"baresip exited ({code}) while {doing}:\n{self.log_text()}")

    def _wait_registered(self, deadline: float) -> None:
        while not self.registered():
            self._check_alive("waiting for registration")
            failure = _REGISTER_FAILED.search(self.log_text())
            if failure is not None:
                raise AssertionError(f"baresip's REGISTER failed: {failure.group(0)}\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"baresip did not register with {self.registrar}:\n{self.log_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Ends baresip: ``quit`` over ctrl_tcp, then SIGTERM twice (the second skips waiting
        for un-REGISTER), then SIGKILL."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(Exception):
                self._send({"command": "quit", "params": "", "token": "quit"})
            for sig, wait in ((None, 1.5), (signal.SIGTERM, 1.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
                if sig is not None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._ctrl is not None:
            with contextlib.suppress(OSError):
                self._ctrl.shutdown(socket.SHUT_RDWR)
            self._ctrl.close()
            self._ctrl = None
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- ctrl_tcp -------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        if self._ctrl is None:
            raise RuntimeError("baresip is not running")
        body = json.dumps(message).encode()
        self._ctrl.sendall(b"%d:%s," % (len(body), body))

    def _read_ctrl(self, sock: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buffer += chunk
            while True:
                colon = buffer.find(b":")
                if colon < 0:
                    break
                size = int(buffer[:colon])
                if len(buffer) < colon + 1 + size + 1:
                    break
                body = buffer[colon + 1 : colon + 1 + size]
                buffer = buffer[colon + 2 + size :]
                message = json.loads(body)
                with self._cond:
                    if message.get("response"):
                        self._responses[str(message.get("token"))] = message
                    elif message.get("event"):
                        self.events.append(message)
                    self._cond.notify_all()

    def command(self, cmd: str, params: str = "", timeout: float = 5.0) -> dict[str, Any]:
        """Runs a baresip command (its long name: ``hangup``, ``accept``, ``dial``,
        ``listcalls``, ``reginfo``, ...) over ctrl_tcp and returns the response, e.g.
        ``{"response": true, "ok": true, "data": "...", "token": "3"}``."""
        token = str(next(self._tokens))
        self._send({"command": cmd, "params": params, "token": token})
        with self._cond:
            if not self._cond.wait_for(lambda: token in self._responses, timeout=timeout):
                raise AssertionError(f"baresip did not answer {cmd!r} within {timeout}s:\n{self.log_text()}")
            return self._responses.pop(token)

    def wait_event(self, event_type: str, timeout: float = 10.0, count: int = 1) -> dict[str, Any]:
        """Waits until ``count`` ctrl_tcp events of ``event_type`` (``CALL_INCOMING``,
        ``CALL_ESTABLISHED``, ``CALL_CLOSED``, ``REGISTER_OK``, ...) have arrived; returns the
        last of them."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: sum(e.get("type") == event_type for e in self.events) >= count, timeout=timeout
            )
            if not ok:
                seen = [e.get("type") for e in self.events]
                raise AssertionError(f"no {count}× {event_type} within {timeout}s (events: {seen})")
            return [e for e in self.events if e.get("type") == event_type][count - 1]

    # -- what happened --------------------------------------------------------------------

    def log_text(self) -> str:
        """baresip's output so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def registered(self) -> bool:
        """Whether the registrar has answered a REGISTER with 200."""
        return _REGISTERED.search(self.log_text()) is not None

    def calls_answered(self) -> list[str]:
        """Peer URIs of the calls established so far, from the log."""
        return _ESTABLISHED.findall(self.log_text())

    def calls_ended(self) -> list[str]:
        """Peer URIs of the calls that have ended so far, from the log."""
        return _TERMINATED.findall(self.log_text())

    def received_wavs(self) -> list[Path]:
        """sndfile's recordings of what the agent heard, one per call, oldest first."""
        return sorted(self.recordings_dir.glob("dump-*-dec.wav"))

    def sent_wavs(self) -> list[Path]:
        """sndfile's recordings of what the agent sent, one per call, oldest first."""
        return sorted(self.recordings_dir.glob("dump-*-enc.wav"))


def _silent_wav(rate: int, seconds: float) -> bytes:
    frames = round(rate * seconds)
    data = bytes(2 * frames)
    header = b"RIFF" + (36 + len(data)).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
    header += (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + rate.to_bytes(4, "little")
    header += (2 * rate).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    return header + b"data" + len(data).to_bytes(4, "little") + data


# --------------------------------------------------------------------------------------------
# sipp as the caller


DtmfMethod = Literal["rfc4733", "info"]
HangsUp = Literal["caller", "callee"]
_PCAP_NAMES = {**{d: d for d in "0123456789"}, "*": "star", "#": "pound"}


def sipp_ulaw_file(src: str | Path, dst: str | Path) -> Path:
    """The raw μ-law bytes of ``src`` (any format sox reads), for ``rtp_stream`` with payload
    type 0: sipp 3.6.1 sends a file's bytes as they are, so a WAV header would go out as 7 ms
    of noise at the start."""
    dst = Path(dst)
    wav = to_telephone_wav(src, dst.with_suffix(".ulaw.wav"), encoding="u-law")
    blob = wav.read_bytes()
    at = 12
    while at + 8 <= len(blob):
        size = int.from_bytes(blob[at + 4 : at + 8], "little")
        if blob[at : at + 4] == b"data":
            dst.write_bytes(blob[at + 8 : at + 8 + size])
            return dst
        at += 8 + size + (size & 1)
    raise ValueError(f"{wav}: no data chunk")


def caller_scenario(
    *,
    service: str = "12345",
    caller_number: str = "13800138000",
    speech: str | Path | None = None,
    speech_loops: int = 1,
    digits: str = "",
    dtmf_method: DtmfMethod = "rfc4733",
    pre_dtmf_ms: int = 1000,
    dtmf_gap_ms: int = 600,
    pre_speech_ms: int = 500,
    talk_ms: int = 5000,
    who_hangs_up: HangsUp = "caller",
    bye_timeout_ms: int = 60000,
    asterisk_style: bool = False,
    prack: bool | None = None,
) -> str:
    """A sipp UAC scenario (XML) for one call to ``service`` through the proxy sipp is pointed
    at (``run_sipp(target=...)``).

    INVITE offering PCMU, PCMA and telephone-event/101 on ``[media_port]`` (sipp's ``-mp``);
    optional 100/180/183, 200 with its Record-Route saved (``rrs``); ACK, INFO and BYE sent to
    the callee's Contact along the route set. Then: wait ``pre_dtmf_ms``; send each of
    ``digits`` as RFC 4733 events (sipp's shipped ``dtmf_2833_<d>.pcap``, played from the media
    port) or SIP INFO ``application/dtmf-relay``, ``dtmf_gap_ms`` apart; wait
    ``pre_speech_ms`` (so that speech, from another SSRC, does not interleave with the last
    digit's packets); start ``speech`` (a raw μ-law file from ``sipp_ulaw_file``; played
    ``speech_loops`` times, -1 = until the call ends); then either wait ``talk_ms`` and send
    BYE (``who_hangs_up="caller"``) or at once start waiting, up to ``bye_timeout_ms``, for the
    other side's BYE and answer it 200 (``"callee"``; ``talk_ms`` is not used: sipp aborts a
    call whose BYE arrives during a pause). A BYE that arrives before the digits and speech are
    all sent fails the call.

    ``asterisk_style`` sends the INVITE that Asterisk 20+ (chan_pjsip) sends to a trunk:
    ``Supported: 100rel, timer, replaces, norefersub``, ``Session-Expires: 1800``, ``Min-SE: 90``,
    its Allow list, P-Asserted-Identity, ``a=ptime:20``, ``a=maxptime:150``, ``a=sendrecv``;
    a reliable 180/183 (``Require: 100rel``) is PRACKed.

    ``prack`` (default: ``asterisk_style``) enables that PRACK path. It needs sipp's transaction
    tracking, and sipp 3.6.1 aborts (an assertion in call::process_incoming) when a retransmitted
    200 OK for the INVITE arrives under it, as it does when the ACK is late on a loaded machine:
    pass ``prack=False`` against a UAS that never sends reliable provisionals (pjsua2's default).
    """
    bad = [d for d in digits if d not in _PCAP_NAMES]
    if bad:
        raise ValueError(f"digits {bad} cannot be sent (0-9, * and # only)")
    if who_hangs_up not in ("caller", "callee") or dtmf_method not in ("rfc4733", "info"):
        raise ValueError(f"unknown who_hangs_up {who_hangs_up!r} or dtmf_method {dtmf_method!r}")
    if speech is not None and "," in str(speech):
        raise ValueError(f"sipp cannot play a path with a comma: {speech}")
    cseq = itertools.count(8377 if asterisk_style else 1)
    use_prack = asterisk_style if prack is None else prack
    # Transactions are tracked (start_txn/response_txn) only where a PRACK may interleave.
    txn = ' start_txn="invite"' if use_prack else ""
    response_txn = ' response_txn="invite"' if use_prack else ""
    invite_cseq = next(cseq)
    from_ = f'"{caller_number}" <sip:{caller_number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]'
    to = f"<sip:{service}@[remote_ip]:[remote_port]>"
    contact = f"<sip:{caller_number}@[local_ip]:[local_port]>"
    parts = [
        '<?xml version="1.0" encoding="ISO-8859-1" ?>',
        '<!DOCTYPE scenario SYSTEM "sipp.dtd">',
        "<!-- Written by tests/e2e/peers.py: caller_scenario -->",
        f'<scenario name="hotline caller {"asterisk" if asterisk_style else "plain"}">',
        _send(_invite(service, from_, to, contact, invite_cseq, asterisk_style), retrans=True, attrs=txn),
        f'  <recv response="100" optional="true"{response_txn}/>',
    ]
    if use_prack:
        rseq = '<ereg regexp="RSeq: *([0-9]+)" search_in="msg" check_it="false" assign_to="reliable,rseq"/>'
        parts += [
            '  <label id="provisional"/>',
            *(
                f'  <recv response="{code}" optional="true" rrs="true" response_txn="invite" next="maybe_prack">'
                f"<action>{rseq}</action></recv>"
                for code in (180, 183)
            ),
            '  <recv response="200" rtd="true" rrs="true" response_txn="invite" next="answered"/>',
            '  <label id="maybe_prack"/>',
            '  <nop next="prack" test="reliable"/>',
            '  <nop next="provisional"/>',
            '  <label id="prack"/>',
            _send(
                _in_dialog("PRACK", next(cseq), from_, to, contact, f"RAck: [$rseq] {invite_cseq} INVITE"),
                retrans=True,
                attrs=' start_txn="prack"',
            ),
            '  <recv response="200" response_txn="prack"/>',
            '  <nop next="provisional"/>',
            '  <label id="answered"/>',
        ]
    else:
        parts += [
            '  <recv response="180" optional="true"/>',
            '  <recv response="183" optional="true"/>',
            '  <recv response="200" rtd="true" rrs="true"/>',
        ]
    parts.append(_send(_ack(invite_cseq, from_, to, contact), attrs=' ack_txn="invite"' if use_prack else ""))
    # Kamailio relays replies from several processes: under load the worker's 180 and 200, sent
    # a millisecond apart, can reach the caller in the other order. A phone ignores the late 180;
    # sipp would abort the call on it (as bench/calls.py's tolerant() explains), so the caller
    # waits up to 300 ms for one right after the ACK and carries on either way. Not on the PRACK
    # path: there sipp tracks the INVITE transaction and asserts on a recv outside it.
    if not use_prack:
        parts += ['  <recv response="180" timeout="300" ontimeout="acked"/>', '  <label id="acked"/>']
    if digits:
        parts.append(f'  <pause milliseconds="{pre_dtmf_ms}"/>')
        for index, digit in enumerate(digits):
            if index:
                parts.append(f'  <pause milliseconds="{dtmf_gap_ms}"/>')
            if dtmf_method == "rfc4733":
                pcap = SIPP_PCAPS / f"dtmf_2833_{_PCAP_NAMES[digit]}.pcap"
                parts.append(f"  <nop><action><exec play_pcap_audio={quoteattr(str(pcap))}/></action></nop>")
            else:
                info = _in_dialog(
                    "INFO",
                    next(cseq),
                    from_,
                    to,
                    contact,
                    "Content-Type: application/dtmf-relay",
                    body=f"Signal={digit}\nDuration=160",
                )
                parts += [_send(info, retrans=True), '  <recv response="200"/>']
    if pre_speech_ms:
        parts.append(f'  <pause milliseconds="{pre_speech_ms}"/>')
    if speech is not None:
        parts.append(f"  <nop><action><exec rtp_stream={quoteattr(f'{speech},{speech_loops},0')}/></action></nop>")
    if who_hangs_up == "caller":
        if talk_ms:
            parts.append(f'  <pause milliseconds="{talk_ms}"/>')
        parts += [
            _send(_in_dialog("BYE", next(cseq), from_, to, contact), retrans=True),
            '  <recv response="200" crlf="true"/>',
        ]
    else:
        # No pause here: a BYE that arrives while sipp pauses aborts the call as unexpected.
        parts += [
            f'  <recv request="BYE" timeout="{bye_timeout_ms}"/>',
            _send(
                "SIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\n"
                f"Contact: {contact}\nContent-Length: 0\n"
            ),
        ]
    parts += ['  <timewait milliseconds="500"/>', "</scenario>", ""]
    return "\n".join(parts)


def write_caller_scenario(path: str | Path, **options: Any) -> Path:
    """Writes ``caller_scenario(**options)`` to ``path``."""
    path = Path(path)
    path.write_text(caller_scenario(**options))
    return path


def _send(message: str, retrans: bool = False, attrs: str = "") -> str:
    retransmit = ' retrans="500"' if retrans else ""
    return f"  <send{retransmit}{attrs}>\n    <![CDATA[\n\n{message}\n    ]]>\n  </send>"


_SDP_CODECS = "a=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\n"


def _invite(service: str, from_: str, to: str, contact: str, cseq: int, asterisk_style: bool) -> str:
    lines = [
        f"INVITE sip:{service}@[remote_ip]:[remote_port] SIP/2.0",
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];rport;branch=[branch]",
        f"From: {from_}",
        f"To: {to}",
        f"Contact: {contact}",
        "Call-ID: [call_id]",
        f"CSeq: {cseq} INVITE",
    ]
    if asterisk_style:
        number = from_.split('"')[1]
        lines += [
            "Allow: OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, UPDATE, PRACK, "
            "MESSAGE, REFER",
            "Supported: 100rel, timer, replaces, norefersub",
            "Session-Expires: 1800",
            "Min-SE: 90",
            f'P-Asserted-Identity: "{number}" <sip:{number}@[local_ip]>',
            "Max-Forwards: 70",
            "User-Agent: Asterisk PBX 20.5.2",
        ]
        sdp = (
            "v=0\no=- 1701234567 1701234567 IN IP[local_ip_type] [local_ip]\ns=Asterisk\n"
            "c=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0 8 101\n"
            f"{_SDP_CODECS}a=ptime:20\na=maxptime:150\na=sendrecv\n"
        )
    else:
        lines += ["Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, INFO", "Max-Forwards: 70", "User-Agent: sipp"]
        sdp = (
            "v=0\no=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]\ns=-\n"
            "c=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0 8 101\n"
            f"{_SDP_CODECS}a=ptime:20\na=sendrecv\n"
        )
    lines += ["Content-Type: application/sdp", "Content-Length: [len]", "", sdp]
    return "\n".join(lines)


def _ack(cseq: int, from_: str, to: str, contact: str) -> str:
    return (
        "ACK [next_url] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];rport;branch=[branch]\n"
        f"[routes]\nFrom: {from_}\nTo: {to}[peer_tag_param]\nCall-ID: [call_id]\nCSeq: {cseq} ACK\n"
        f"Contact: {contact}\nMax-Forwards: 70\nContent-Length: 0\n"
    )


def _in_dialog(
    method: str, cseq: int, from_: str, to: str, contact: str, *headers: str, body: str | None = None
) -> str:
    lines = [
        f"{method} [next_url] SIP/2.0",
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];rport;branch=[branch]",
        "[routes]",
        f"From: {from_}",
        f"To: {to}[peer_tag_param]",
        "Call-ID: [call_id]",
        f"CSeq: {cseq} {method}",
        f"Contact: {contact}",
        "Max-Forwards: 70",
        *headers,
    ]
    if body is None:
        return "\n".join([*lines, "Content-Length: 0", ""])
    return "\n".join([*lines, "Content-Length: [len]", "", body, ""])


class SippProcess:
    """A running sipp; ``wait`` returns its result, failing with its logs unless it succeeded."""

    def __init__(self, args: list[str], cwd: Path, name: str, timeout_s: float) -> None:
        self.args = args
        self.cwd = cwd
        self.name = name
        self.timeout_s = timeout_s
        self.error_log = cwd / f"{name}-errors.log"
        self.message_log = cwd / f"{name}-messages.log"
        self.stdout_log = cwd / f"{name}-stdout.log"
        self._stdout = self.stdout_log.open("wb")
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            self.proc.wait(timeout=self.timeout_s + 15)
        except subprocess.TimeoutExpired:
            self.kill()
        finally:
            self._stdout.close()
        result = subprocess.CompletedProcess(self.args, self.proc.returncode, self.read(self.stdout_log), "")
        if check and result.returncode != 0:
            raise AssertionError(self.report(f"sipp {self.name} failed (exit {result.returncode})"))
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()  # a test that failed before ``wait`` leaves no sipp behind

    @staticmethod
    def read(path: Path, limit: int = 20000) -> str:
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text if len(text) <= limit else "…" + text[-limit:]

    def report(self, title: str) -> str:
        return (
            f"{title}: {' '.join(self.args)}\n--- errors ({self.error_log}):\n{self.read(self.error_log)}"
            f"\n--- messages ({self.message_log}):\n{self.read(self.message_log, 8000)}"
            f"\n--- output:\n{self.read(self.stdout_log, 4000)}"
        )


def start_sipp(
    scenario: str | Path,
    target: str | tuple[str, int] | None,
    local_port: int,
    media_port: int,
    cwd: str | Path,
    timeout_s: float = 60.0,
    calls: int = 1,
    rate: float | None = None,
    concurrent: int | None = None,
    service: str | None = None,
    extra_args: Sequence[str] = (),
) -> SippProcess:
    """Starts sipp with ``scenario`` (a file, or ``"uas"``/``"uac"`` for a built-in one) on
    127.0.0.1:``local_port`` against ``target`` (host:port; None for a server), its RTP on
    ``media_port``, in ``cwd`` (where ``rtp_stream`` paths are relative to, and its logs go:
    ``<name>-errors.log``, ``<name>-messages.log``, ``<name>-stdout.log``). It ends after
    ``calls`` calls, or fails after ``timeout_s``. INFO, NOTIFY, OPTIONS and UPDATE are answered
    200 automatically (``-aa``)."""
    binary = require_tool("sipp", SIPP_INSTALL)
    cwd = Path(cwd).resolve()
    cwd.mkdir(parents=True, exist_ok=True)
    scenario_args = ["-sn", str(scenario)] if str(scenario) in ("uas", "uac") else ["-sf", str(scenario)]
    name = f"{Path(str(scenario)).stem}-{local_port}"
    args = [binary, *scenario_args]
    if target is not None:
        args.append(target if isinstance(target, str) else f"{target[0]}:{target[1]}")
    args += [
        "-i", "127.0.0.1", "-p", str(local_port), "-mi", "127.0.0.1", "-mp", str(media_port),
        "-m", str(calls), "-nostdin", "-aa",
        "-timeout", f"{int(timeout_s)}s", "-timeout_error",
        "-trace_err", "-error_file", str(cwd / f"{name}-errors.log"),
        "-trace_msg", "-message_file", str(cwd / f"{name}-messages.log"),
    ]  # fmt: skip
    if rate is not None:
        args += ["-r", str(rate)]
    if concurrent is not None:
        args += ["-l", str(concurrent)]
    if service is not None:
        args += ["-s", service]
    args += list(extra_args)
    for stale in (f"{name}-errors.log", f"{name}-messages.log"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(cwd / stale)
    return SippProcess(args, cwd, name, timeout_s)


def run_sipp(
    scenario: str | Path,
    target: str | tuple[str, int] | None,
    local_port: int,
    media_port: int,
    cwd: str | Path,
    timeout_s: float = 60.0,
    calls: int = 1,
    rate: float | None = None,
    concurrent: int | None = None,
    service: str | None = None,
    extra_args: Sequence[str] = (),
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Runs sipp to the end (see ``start_sipp``); with ``check``, a non-zero exit fails with
    sipp's error log, message trace and output."""
    process = start_sipp(
        scenario, target, local_port, media_port, cwd, timeout_s, calls, rate, concurrent, service, extra_args
    )
    return process.wait(check=check)
