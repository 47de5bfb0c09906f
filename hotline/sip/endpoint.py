"""The pjsua2 endpoint of a media worker, in a thread of its own.

Every pjsua2 object is created, used and destroyed on one thread (the "pj thread"), which
pumps `libHandleEvents` (pjsua's own worker threads are off: threadCnt=0, mainThreadOnly) and
runs the commands the asyncio side posts to it. Callbacks only turn pjsua2 state into plain
events (hotline.sip.events) posted into the asyncio loop with call_soon_threadsafe. No pj type
crosses this module's public API (PJSUA2.md, STYLE.md).

Pitfalls handled here (PJSUA2.md, each with a regression test in tests/integration/test_sip_endpoint.py):
- 4-call PyPI builds: refused at start unless allow_dev_build (the limit is read from pjsua2).
- Finished Call objects are dropped inside onCallState(DISCONNECTED), never touched again, so
  a late destructor cannot hang up a new call that reused the pjsua call id.
- Strong references to every Call, player and recorder until the leg is disconnected. A
  recorder dies with the last leg that feeds or keeps it (`keep_recorder`: a leg holding a file
  open without feeding it, e.g. the caller's leg keeping the agent channel while agents change:
  re-created for the next agent, the file would be truncated).
- onCallMediaState fires again on re-INVITE: media wiring is reapplied idempotently.
- Who hears whom is a set of directed links between legs (caller -> agent, supervisor ->
  agent, ...), kept here and (re)applied to the conference bridge whenever a leg's media comes
  or goes: a link may be asked for before the leg it names has answered (call controls,
  hotline.runtime.call_controls, rely on this). The bridge mixes every source linked to a sink.
- Shutdown with live calls: hangupAllCalls, pump until torn down, then libDestroy; no post into
  a closed loop.
- Headless: setNullDev (setNoDev connects calls but moves no audio).
- Overload is silent in pjsua: an admission limit answers 503 above settings.max_calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import re
import resource
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from hotline.core.errors import ConfigError, Unavailable
from hotline.sip.events import (
    CallRejected,
    DtmfReceived,
    IncomingCall,
    LegState,
    LegStateChanged,
    MediaReady,
    SipEvent,
    SipSettings,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

PUMP_MS = 5  # how long libHandleEvents may block; bounds command latency
PYPI_CALL_LIMIT = 4
_USER_RE = re.compile(r"sips?:([^@;>]+)@")


def compiled_call_limit() -> int:
    """PJSUA_MAX_CALLS of the installed pjsua2 (UaConfig's default maxCalls is that constant)."""
    import pjsua2 as pj

    return int(pj.UaConfig().maxCalls)


def user_part(uri: str) -> str:
    """'"Zhang" <sip:13800138000@10.0.0.1>' -> '13800138000' (the whole uri if no user)."""
    match = _USER_RE.search(uri)
    return match.group(1) if match else uri.strip('<>" ')


class _Leg:
    """pj-thread state of one leg. Only the pj thread touches it."""

    __slots__ = ("call", "kept", "leg_id", "media", "player", "player_recorders", "recorders", "want_player")

    def __init__(self, leg_id: str, call: Any) -> None:
        self.leg_id = leg_id
        self.call: Any = call
        self.media: Any = None  # pj.AudioMedia while media is active
        self.player: Any = None  # pj.AudioMediaPlayer feeding this leg
        self.want_player = False
        self.recorders: dict[str, Any] = {}  # path -> pj.AudioMediaRecorder fed by this leg
        self.kept: dict[str, Any] = {}  # path -> a recorder this leg keeps alive without feeding it
        self.player_recorders: tuple[str, ...] = ()  # recorder paths the player also feeds (hold music)


class SipEndpoint:
    """A pjsua2 user agent for one worker process.

    Thread-safe commands return concurrent futures; `call` wraps them for asyncio.
    Events go to `on_event`, which is called in the asyncio loop.
    """

    def __init__(
        self,
        settings: SipSettings,
        loop: asyncio.AbstractEventLoop,
        on_event: Callable[[SipEvent], None],
    ) -> None:
        self.settings = settings
        self._loop = loop
        self._on_event = on_event
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready: Future[None] = Future()
        self._stopping = threading.Event()
        self._legs: dict[str, _Leg] = {}
        self._ids = itertools.count(1)
        self._closed = False
        self._muted: set[str] = set()  # recorder paths paused (pj thread only)
        self._links: set[tuple[str, str]] = set()  # (source leg, sink leg): who hears whom (pj thread only)
        # pj objects (pj thread only)
        self._pj: Any = None
        self._ep: Any = None
        self._account: Any = None
        self.call_slots = 0

    # ----------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 15.0) -> None:
        """Starts the pj thread and waits until the endpoint listens."""
        self._raise_fd_limit()
        self._thread = threading.Thread(target=self._run, name="pjsua2", daemon=True)
        self._thread.start()
        self._ready.result(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Hangs up every call, tears the library down and joins the thread."""
        self._closed = True
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    @property
    def active_legs(self) -> int:
        return len(self._legs)

    def _raise_fd_limit(self) -> None:
        # 2 fds per call for RTP/RTCP, plus recorders and players (PJSUA2.md).
        need = 4 * self.settings.max_calls + 256
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < need:
            new = need if hard == resource.RLIM_INFINITY else min(need, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))

    # ----------------------------------------------------------------- commands
    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Runs fn on the pj thread; its result or exception comes back in the future."""
        fut: Future[T] = Future()
        if self._closed or self._thread is None:
            fut.set_exception(Unavailable("SIP endpoint is not running"))
            return fut

        def run() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn())
            except BaseException as exc:  # reported to the caller, never kills the pj thread
                fut.set_exception(exc)

        self._commands.put(run)
        return fut

    async def call(self, fn: Callable[[], T]) -> T:
        return await asyncio.wrap_future(self.submit(fn))

    async def answer(self, leg_id: str, code: int = 200) -> None:
        await self.call(lambda: self._answer(leg_id, code))

    async def hangup(self, leg_id: str, code: int = 603) -> None:
        await self.call(lambda: self._hangup(leg_id, code))

    async def play(self, leg_id: str, wav_path: str, loop: bool = False) -> None:
        await self.call(lambda: self._play(leg_id, wav_path, loop))

    async def stop_play(self, leg_id: str) -> None:
        await self.call(lambda: self._stop_play(leg_id))

    async def record(self, leg_id: str, wav_path: str) -> None:
        """Records what this leg's remote party sends (more legs may feed the same file)."""
        await self.call(lambda: self._record(leg_id, wav_path))

    async def stop_record(self, wav_path: str) -> None:
        await self.call(lambda: self._stop_record(wav_path))

    async def keep_recorder(self, leg_id: str, wav_path: str) -> bool:
        """The leg keeps the recorder of wav_path alive (without feeding it) until the leg ends
        or stop_record: the file survives the legs that feed it coming and going. False if no
        such recorder runs."""
        return await self.call(lambda: self._keep_recorder(leg_id, wav_path))

    async def mute_record(self, wav_path: str, muted: bool) -> None:
        """Pauses (muted) or resumes a recorder. A muted recorder goes on writing, silence (the
        bridge sends it level 0: adjustRxLevel), so the file stays aligned with the call; a
        recorder created for a muted path starts muted."""
        await self.call(lambda: self._mute_record(wav_path, muted))

    async def dial(self, uri: str, leg_id: str, headers: dict[str, str] | None = None) -> None:
        """Places an outgoing call as leg `leg_id` (chosen by the caller, so that it can map
        the leg before any event about it arrives)."""
        await self.call(lambda: self._dial(uri, leg_id, headers or {}))

    async def bridge(self, leg_a: str, leg_b: str) -> None:
        await self.call(lambda: self._bridge(leg_a, leg_b))

    async def relink(
        self, add: frozenset[tuple[str, str]] = frozenset(), remove: frozenset[tuple[str, str]] = frozenset()
    ) -> None:
        """Changes who hears whom, in one step on the pj thread: each (source, sink) pair sends
        the source leg's audio to the sink leg. Links are remembered: one naming a leg whose
        media is not up yet takes effect when it is; a leg's links go when it ends."""
        await self.call(lambda: self._relink(add, remove))

    async def play_hold(self, leg_id: str, wav_path: str, recorder_path: str | None = None) -> None:
        """Loops wav_path to the leg (hold music) and, if given, into that recorder as well: the
        call recording's channel of what the caller hears keeps going through the hold."""
        await self.call(lambda: self._play_hold(leg_id, wav_path, recorder_path))

    async def send_dtmf(self, leg_id: str, digits: str) -> None:
        """Sends digits to the leg's remote party as RFC 4733 telephone-events."""
        await self.call(lambda: self._leg(leg_id).call.dialDtmf(digits))

    # ----------------------------------------------------------------- pj thread
    def _run(self) -> None:
        try:
            self._init_lib()
        except BaseException as exc:
            self._ready.set_exception(exc)
            self._destroy_lib()
            return
        self._ready.set_result(None)
        try:
            while not self._stopping.is_set():
                self._ep.libHandleEvents(PUMP_MS)
                self._drain_commands()
        except BaseException:
            logger.exception("pj thread failed")
        finally:
            self._shutdown_calls()
            self._destroy_lib()

    def _drain_commands(self) -> None:
        while True:
            try:
                run = self._commands.get_nowait()
            except queue.Empty:
                return
            run()

    def _init_lib(self) -> None:
        import pjsua2 as pj

        self._pj = pj
        s = self.settings
        self.call_slots = compiled_call_limit()
        if self.call_slots < s.max_calls and not s.allow_dev_build:
            raise ConfigError(
                f"this pjsua2 build holds {self.call_slots} calls per process, fewer than the "
                f"admission limit {s.max_calls} (a PyPI wheel stops at {PYPI_CALL_LIMIT}); "
                "run `make pjsua2` to build hotline's own, or allow a development build explicitly"
            )
        ep = pj.Endpoint()
        self._ep = ep
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = min(self.call_slots, max(s.max_calls + 8, 8))
        cfg.uaConfig.userAgent = s.user_agent
        cfg.logConfig.consoleLevel = 0
        cfg.logConfig.level = s.log_level
        cfg.logConfig.msgLogging = 1 if s.log_level >= 4 else 0
        if s.log_file:
            cfg.logConfig.filename = s.log_file
        cfg.medConfig.clockRate = s.clock_rate
        cfg.medConfig.sndClockRate = s.clock_rate
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        cfg.medConfig.channelCount = 1
        ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = s.port
        tcfg.boundAddress = s.host
        tcfg.publicAddress = s.public_host or s.host
        ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        ep.libStart()
        ep.audDevManager().setNullDev()
        # G.711 first (μ-law, then A-law); telephone-event is always offered by pjmedia.
        for codec in ep.codecEnum2():
            prio = {"PCMU/8000/1": 255, "PCMA/8000/1": 254}.get(codec.codecId, 0)
            ep.codecSetPriority(codec.codecId, prio)
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:worker@{s.public_host or s.host}:{s.port}"
        acfg.mediaConfig.transportConfig.boundAddress = s.host
        acfg.mediaConfig.transportConfig.publicAddress = s.public_host or s.host
        if s.rtp_port:
            acfg.mediaConfig.transportConfig.port = s.rtp_port
            acfg.mediaConfig.transportConfig.portRange = s.rtp_port_range
        self._account = _Account(self)
        self._account.create(acfg, True)
        logger.info(
            "SIP endpoint on %s:%d (%d call slots, admission %d)",
            s.host,
            s.port,
            self.call_slots,
            s.max_calls,
        )

    def _shutdown_calls(self) -> None:
        if self._ep is None:
            return
        try:
            if self._legs:
                self._ep.hangupAllCalls()
                for _ in range(400):  # up to ~2 s for BYEs to go out and legs to tear down
                    if not self._legs:
                        break
                    self._ep.libHandleEvents(PUMP_MS)
        except Exception:
            logger.exception("hanging up calls at shutdown")
        self._legs.clear()
        self._links.clear()
        # fail commands still queued
        while True:
            try:
                self._commands.get_nowait()()
            except queue.Empty:
                break
            except Exception:
                logger.debug("command failed during shutdown", exc_info=True)

    def _destroy_lib(self) -> None:
        if self._ep is None:
            return
        try:
            if self._account is not None:
                self._account.shutdown()
                self._account = None
            self._ep.libDestroy()
        except Exception:
            logger.exception("libDestroy")
        self._ep = None

    # posting events into the asyncio loop; never into a closed one
    def _post(self, event: SipEvent) -> None:
        if self._closed:
            return
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._on_event, event)

    def _new_leg_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    def _leg(self, leg_id: str) -> _Leg:
        leg = self._legs.get(leg_id)
        if leg is None:
            raise KeyError(f"no such leg {leg_id}")
        return leg

    # --- incoming
    def _incoming(self, pj_call_id: int, whole_msg: str) -> None:
        pj = self._pj
        call = _Call(self, self._account, pj_call_id)
        info = call.getInfo()
        caller = user_part(info.remoteUri)
        callee = user_part(info.localUri)
        req = whole_msg.split("\r\n", 1)[0]
        if req.startswith("INVITE "):
            callee = user_part(req.split(" ")[1])
        if len(self._legs) >= self.settings.max_calls:
            op = pj.CallOpParam()
            op.statusCode = 503
            call.answer(op)  # DISCONNECTED follows; the leg holds the reference until then
            leg_id = self._new_leg_id("r")
            call.leg_id = leg_id
            self._legs[leg_id] = _Leg(leg_id, call)
            self._post(CallRejected(info.callIdString, caller, "over admission limit"))
            return
        leg_id = self._new_leg_id("in")
        call.leg_id = leg_id
        self._legs[leg_id] = _Leg(leg_id, call)
        op = pj.CallOpParam()
        op.statusCode = 180
        call.answer(op)
        self._post(IncomingCall(leg_id, caller, callee, info.callIdString, info.remoteUri))

    def _answer(self, leg_id: str, code: int) -> None:
        op = self._pj.CallOpParam()
        op.statusCode = code
        self._leg(leg_id).call.answer(op)

    def _hangup(self, leg_id: str, code: int) -> None:
        leg = self._legs.get(leg_id)
        if leg is None:
            return  # already gone: hanging up is idempotent
        op = self._pj.CallOpParam()
        op.statusCode = code
        try:
            leg.call.hangup(op)
        except Exception as exc:  # e.g. already disconnecting
            logger.debug("hangup %s: %s", leg_id, exc)

    def _dial(self, uri: str, leg_id: str, headers: dict[str, str]) -> None:
        pj = self._pj
        if leg_id in self._legs:
            raise ValueError(f"leg {leg_id} exists")
        call = _Call(self, self._account, pj.PJSUA_INVALID_ID)
        call.leg_id = leg_id
        op = pj.CallOpParam(True)
        if headers:
            vec = pj.SipHeaderVector()
            for name, value in headers.items():
                hdr = pj.SipHeader()
                hdr.hName = name
                hdr.hValue = value
                vec.append(hdr)
            op.txOption.headers = vec
        self._legs[leg_id] = _Leg(leg_id, call)
        try:
            call.makeCall(uri, op)
        except Exception as exc:
            self._legs.pop(leg_id, None)
            raise Unavailable(f"cannot dial {uri}: {exc}") from exc

    # --- media
    def _media_changed(self, call: Any) -> None:
        leg = self._legs.get(call.leg_id)
        if leg is None:
            return
        info = call.getInfo()
        pj = self._pj
        media = None
        for i, mi in enumerate(info.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                media = call.getAudioMedia(i)
                break
        if media is None:
            return
        first = leg.media is None
        leg.media = media
        self._wire(leg)
        if first:
            self._post(MediaReady(leg.leg_id))

    def _wire(self, leg: _Leg) -> None:
        """(Re)applies what should flow for this leg; safe to repeat after a re-INVITE."""
        if leg.media is None:
            return
        if leg.player is not None and leg.want_player:
            leg.player.startTransmit(leg.media)
            for path in leg.player_recorders:
                recorder = self._find_recorder(path)
                if recorder is not None:
                    leg.player.startTransmit(recorder)
        for recorder in leg.recorders.values():
            leg.media.startTransmit(recorder)
        for source, sink in self._links:
            if leg.leg_id in (source, sink):
                src, dst = self._legs.get(source), self._legs.get(sink)
                if src is not None and dst is not None and src.media is not None and dst.media is not None:
                    src.media.startTransmit(dst.media)

    def _play(self, leg_id: str, wav_path: str, loop: bool) -> None:
        pj = self._pj
        leg = self._leg(leg_id)
        self._stop_play(leg_id)
        player = pj.AudioMediaPlayer()
        player.createPlayer(wav_path, 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
        leg.player = player
        leg.want_player = True
        self._wire(leg)

    def _play_hold(self, leg_id: str, wav_path: str, recorder_path: str | None) -> None:
        self._play(leg_id, wav_path, True)
        leg = self._leg(leg_id)
        leg.player_recorders = (recorder_path,) if recorder_path else ()
        self._wire(leg)

    def _stop_play(self, leg_id: str) -> None:
        leg = self._legs.get(leg_id)
        if leg is None or leg.player is None:
            return
        if leg.media is not None:
            with contextlib.suppress(Exception):
                leg.player.stopTransmit(leg.media)
        for path in leg.player_recorders:
            recorder = self._find_recorder(path)
            if recorder is not None:
                with contextlib.suppress(Exception):
                    leg.player.stopTransmit(recorder)
        leg.player_recorders = ()
        leg.want_player = False
        leg.player = None  # last reference: pjsua_player_destroy, on this thread

    def _record(self, leg_id: str, wav_path: str) -> None:
        leg = self._leg(leg_id)
        recorder = self._find_recorder(wav_path)
        if recorder is None:
            recorder = self._pj.AudioMediaRecorder()
            recorder.createRecorder(wav_path)
            if wav_path in self._muted:
                recorder.adjustRxLevel(0.0)
        leg.recorders[wav_path] = recorder
        self._wire(leg)

    def _find_recorder(self, wav_path: str) -> Any:
        for leg in self._legs.values():
            recorder = leg.recorders.get(wav_path) or leg.kept.get(wav_path)
            if recorder is not None:
                return recorder
        return None

    def _keep_recorder(self, leg_id: str, wav_path: str) -> bool:
        recorder = self._find_recorder(wav_path)
        if recorder is None:
            return False
        self._leg(leg_id).kept[wav_path] = recorder
        return True

    def _mute_record(self, wav_path: str, muted: bool) -> None:
        if muted:
            self._muted.add(wav_path)
        else:
            self._muted.discard(wav_path)
        recorder = self._find_recorder(wav_path)
        if recorder is not None:
            recorder.adjustRxLevel(0.0 if muted else 1.0)

    def _stop_record(self, wav_path: str) -> None:
        self._muted.discard(wav_path)
        found: Any = None
        for leg in self._legs.values():
            recorder = leg.recorders.pop(wav_path, None)
            if recorder is not None:
                found = recorder
                if leg.media is not None:
                    with contextlib.suppress(Exception):
                        leg.media.stopTransmit(recorder)
            kept = leg.kept.pop(wav_path, None)
            if kept is not None:
                found = kept
        for leg in self._legs.values():
            if wav_path in leg.player_recorders:
                if leg.player is not None and found is not None:
                    with contextlib.suppress(Exception):
                        leg.player.stopTransmit(found)
                leg.player_recorders = tuple(p for p in leg.player_recorders if p != wav_path)
        # the last references go with this frame: pjsua_recorder_destroy, on this thread

    def _bridge(self, leg_a: str, leg_b: str) -> None:
        for leg_id in (leg_a, leg_b):
            self._leg(leg_id)  # KeyError unless both exist
        self._relink(frozenset({(leg_a, leg_b), (leg_b, leg_a)}), frozenset())

    def _relink(self, add: frozenset[tuple[str, str]], remove: frozenset[tuple[str, str]]) -> None:
        for source, sink in remove - add:
            self._links.discard((source, sink))
            src, dst = self._legs.get(source), self._legs.get(sink)
            if src is not None and dst is not None and src.media is not None and dst.media is not None:
                with contextlib.suppress(Exception):
                    src.media.stopTransmit(dst.media)
        for link in add:
            self._links.add(link)
        for leg_id in {leg for link in add for leg in link}:
            leg = self._legs.get(leg_id)
            if leg is not None:
                self._wire(leg)

    # --- state
    def _state_changed(self, call: Any) -> None:
        pj = self._pj
        info = call.getInfo()
        leg_id = call.leg_id
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            leg = self._legs.pop(leg_id, None)
            if leg is not None:
                self._release(leg)
            if leg_id.startswith("r"):
                return  # a 503'd INVITE: already reported as CallRejected
            by_remote = not call.local_hangup
            self._post(LegStateChanged(leg_id, LegState.DISCONNECTED, info.lastStatusCode, info.lastReason, by_remote))
            # The Call object dies with this callback: no reference is kept anywhere
            # (a late destructor would hang up whichever new call reused the pjsua id).
            call.dead = True
            return
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self._post(LegStateChanged(leg_id, LegState.CONFIRMED, info.lastStatusCode, "", False))
        elif info.state == pj.PJSIP_INV_STATE_EARLY and info.role == pj.PJSIP_ROLE_UAC:
            self._post(LegStateChanged(leg_id, LegState.RINGING, info.lastStatusCode, "", False))

    def _release(self, leg: _Leg) -> None:
        """Drops every pj object of a finished leg (on the pj thread)."""
        leg.want_player = False
        leg.player = None
        leg.player_recorders = ()
        self._links = {link for link in self._links if leg.leg_id not in link}
        # A shared recorder stays alive while another leg still feeds or keeps it.
        leg.recorders.clear()
        leg.kept.clear()
        leg.media = None
        leg.call = None


_CLASSES: dict[str, Any] = {}


def _pj_classes() -> dict[str, Any]:
    """The pjsua2 subclasses, defined once (lazily, pjsua2 is imported on first use).

    Defined at module level on purpose: classes made per call (closures over the account)
    sit in reference cycles, so the cyclic GC would destroy an old Account late; pjsua2 2.12's
    Account destructor then deletes whichever new account reused its id (seen: a second
    endpoint in the same process answering 480 "no available account").
    """
    if _CLASSES:
        return _CLASSES
    import pjsua2 as pj

    class Account(pj.Account):  # type: ignore[misc]
        def __init__(self, owner: SipEndpoint) -> None:
            super().__init__()
            self.owner = owner

        def onIncomingCall(self, prm: Any) -> None:  # noqa: N802 (pjsua2 API)
            try:
                self.owner._incoming(prm.callId, prm.rdata.wholeMsg)
            except Exception:
                logger.exception("incoming call")

    class Call(pj.Call):  # type: ignore[misc]
        def __init__(self, owner: SipEndpoint, account: Any, pj_call_id: int) -> None:
            super().__init__(account, pj_call_id)
            self.owner = owner
            self.leg_id = ""
            self.local_hangup = False
            self.dead = False

        def hangup(self, prm: Any) -> None:
            self.local_hangup = True
            super().hangup(prm)

        def onCallState(self, prm: Any) -> None:  # noqa: N802
            if self.dead:
                return
            try:
                self.owner._state_changed(self)
            except Exception:
                logger.exception("call state of %s", self.leg_id)

        def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
            if self.dead:
                return
            try:
                self.owner._media_changed(self)
            except Exception:
                logger.exception("media state of %s", self.leg_id)

        def onDtmfDigit(self, prm: Any) -> None:  # noqa: N802
            method = "sip-info" if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc4733"
            self.owner._post(DtmfReceived(self.leg_id, str(prm.digit), method))

    _CLASSES["Account"] = Account
    _CLASSES["Call"] = Call
    return _CLASSES


def _Account(owner: SipEndpoint) -> Any:  # noqa: N802 (reads as the class it makes)
    return _pj_classes()["Account"](owner)


def _Call(owner: SipEndpoint, account: Any, pj_call_id: int) -> Any:  # noqa: N802
    return _pj_classes()["Call"](owner, account, pj_call_id)
