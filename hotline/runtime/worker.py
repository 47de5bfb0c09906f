"""A media worker: the SIP endpoint, one CallFlow per caller, the queue and the bus.

The asyncio side of `hotline worker`. SIP events come from the pj thread (already posted into
this loop); commands from the control plane come on the worker's Redis stream; each caller's
CallFlow decides, this module carries the commands out. When a call ends its CallRecord is
published for the ticket store; if Redis is away, records wait in a spool file and are sent
when it is back, so no call ends as nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from hotline.core import events as ev
from hotline.core.errors import ConfigError, Unavailable
from hotline.core.model import (
    AgentId,
    CallId,
    CallRecord,
    OfferId,
    Outcome,
    Priority,
    WorkerId,
    lost_call_record,
    utcnow,
)
from hotline.core.ports import QUEUE_FULL, CallQueue
from hotline.ivr import flow as fl
from hotline.ivr.spec import FlowSpec
from hotline.recordings.call import CallRecording, SpaceWatch, disk_alert
from hotline.recordings.compress import store_as
from hotline.recordings.space import SpaceGuard
from hotline.runtime.call_controls import CallControls
from hotline.runtime.callback import CallbackConfig, CallbackRunner
from hotline.runtime.legs import close_stereo, epoch_ms, failure_reason, leg_file
from hotline.runtime.lost import settle_lost_call
from hotline.runtime.survey import SurveyConfig, SurveyRunner
from hotline.sip.events import (
    CallRejected,
    DtmfReceived,
    IncomingCall,
    LegState,
    LegStateChanged,
    MediaReady,
    SipEvent,
)

logger = logging.getLogger(__name__)

HEARTBEAT_MS = 1000
HEARTBEAT_TTL_MS = 3000
SPACE_CHECK_S = 2.0  # how often the recordings volume is checked while calls are recorded
NO_SPACE_CHECK = SpaceGuard(0)
# The ticket store's status of a ticket number (None: no such ticket), for the IVR's lookup.
TicketStatus = Callable[[str], Awaitable[str | None]]


class Sip(Protocol):
    """What the worker needs of hotline.sip.endpoint.SipEndpoint."""

    @property
    def active_legs(self) -> int: ...

    async def answer(self, leg_id: str, code: int = 200) -> None: ...
    async def hangup(self, leg_id: str, code: int = 603) -> None: ...
    async def play(self, leg_id: str, wav_path: str, loop: bool = False) -> None: ...
    async def stop_play(self, leg_id: str) -> None: ...
    async def record(self, leg_id: str, wav_path: str) -> None: ...
    async def stop_record(self, wav_path: str) -> None: ...
    async def mute_record(self, wav_path: str, muted: bool) -> None: ...
    async def dial(self, uri: str, leg_id: str, headers: dict[str, str] | None = None) -> None: ...
    async def bridge(self, leg_a: str, leg_b: str) -> None: ...


class WorkerBus(Protocol):
    """What the worker needs of hotline.queue.bus.RedisEventBus."""

    async def publish(self, kind: str, data: dict[str, Any]) -> str: ...
    async def read_commands(
        self, worker_id: WorkerId, last_id: str, block_ms: int
    ) -> list[tuple[str, str, dict[str, Any]]]: ...
    async def newest_command_id(self, worker_id: WorkerId) -> str: ...
    async def heartbeat(self, worker_id: WorkerId, ttl_ms: int, info: dict[str, Any]) -> None: ...
    async def track_call(self, worker_id: WorkerId, call_id: CallId, info: dict[str, Any]) -> None: ...
    async def tracked_calls(self, worker_id: WorkerId) -> dict[CallId, dict[str, Any]]: ...
    async def untrack_call(self, worker_id: WorkerId, call_id: CallId) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Prompt:
    path: str
    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerSettings:
    worker_id: WorkerId
    recordings_dir: Path
    spool_dir: Path
    prompts: dict[str, Prompt]
    ring_timeout_s: float = 20.0
    prompt_library: Any = None  # hotline.runtime.prompts.PromptLibrary: prompts by name, joined sequences
    kb_audio: Any = None  # hotline.runtime.kb_audio.KbAudio: knowledge-base entry id → prompt name
    ivr_flow: FlowSpec | None = None  # the city's flow (config/ivr/<ivr.flow>.yaml); None: the queue alone
    callback: CallbackConfig | None = None  # how callbacks are dialled; None: this worker takes none
    recording_format: str = "wav"  # recordings.format: wav, or flac (converted at call end)
    recording_space: SpaceGuard = NO_SPACE_CHECK  # recordings.min_free_mb (0: not checked)
    survey: SurveyConfig | None = None  # how 回访 calls are dialled; None: this worker makes none
    sip_host: str = "127.0.0.1"  # this hotline's SIP address, named in the auto-answer Call-Info


def new_call_id(now: datetime) -> CallId:
    """Sortable, unique, readable: 20261122T001234-8f3a9c1d."""
    return CallId(f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}")


@dataclasses.dataclass
class CallSession:
    call_id: CallId
    caller_leg: str
    incoming: IncomingCall
    flow: fl.CallFlow
    started_at: datetime
    answered_at: datetime | None = None
    queued_at: datetime | None = None
    connected_at: datetime | None = None
    recording: Path | None = None
    rec: CallRecording | None = None  # the recording's pauses, cut and missing reason (recordings/call.py)
    agent_leg: str | None = None
    agent_leg_offer: str | None = None
    agent_answered: bool = False
    agent_legs: int = 0
    # A ring_all group's legs still ringing, leg id -> offer id; the first to answer becomes
    # agent_leg (hotline/ivr/flow.py hangs up the others).
    ringing: dict[str, str] = dataclasses.field(default_factory=dict)
    declined: set[str] = dataclasses.field(default_factory=set)  # offers the agent declined (CMD_REJECT)
    recorded: bool = False  # its CallRecord has been made
    language: str | None = None  # the prompts' language (None: the library's default); SetLanguage
    timer: asyncio.TimerHandle | None = None
    finished: bool = False
    # Commands of successive events run strictly in order (asyncio.Lock is FIFO).
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        queue: CallQueue,
        bus: WorkerBus,
        clock: Callable[[], float] = time.monotonic,
        ticket_status: TicketStatus | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.bus = bus
        self.clock = clock
        self.ticket_status = ticket_status
        self.sip: Sip | None = None
        self.sessions: dict[CallId, CallSession] = {}
        self.by_leg: dict[str, CallSession] = {}
        self.rejected = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._spool = settings.spool_dir / f"{settings.worker_id}.jsonl"
        self._space = SpaceWatch(settings.recording_space, settings.recordings_dir)
        kb = settings.kb_audio
        flow_settings = fl.FlowSettings(
            greeting_s=settings.prompts["greeting"].seconds,
            ring_timeout_s=settings.ring_timeout_s,
            spec=settings.ivr_flow,
            durations=_prompt_durations(settings.prompt_library),
            language=getattr(settings.prompt_library, "default_language", "zh-CN"),
            kb_prompts={a.entry_id: a.prompt for a in kb.answers.values()} if kb is not None else None,
        )
        self._flow_settings = flow_settings
        self.controls = CallControls(self)  # hold, transfer, monitor ... of connected calls
        self.callbacks: CallbackRunner | None = None
        if settings.callback is not None:
            self.callbacks = CallbackRunner(
                settings.worker_id,
                settings.callback,
                queue,
                bus,
                self.deliver,
                settings.recordings_dir,
                self._prompt_path,
                self._prompt_seconds,
                new_call_id,
                self.spawn,
                clock,
            )
        self.surveys: SurveyRunner | None = None
        if settings.survey is not None:
            self.surveys = SurveyRunner(
                settings.worker_id,
                settings.survey,
                bus,
                bus,
                self.deliver,
                settings.recordings_dir,
                lambda names: self._prompt_file(names, None),
                self._prompt_seconds,
                new_call_id,
                self.spawn,
                clock,
            )

    # ------------------------------------------------------------ lifecycle
    def attach(self, sip: Sip) -> None:
        self.sip = sip
        if self.callbacks is not None:
            self.callbacks.sip = sip
        if self.surveys is not None:
            self.surveys.sip = sip

    def _prompt_seconds(self, name: str) -> float:
        library = self.settings.prompt_library
        if library is not None and library.has(name, library.default_language):
            return float(library.seconds(name, library.default_language))
        prompt = self.settings.prompts.get(name)
        return prompt.seconds if prompt is not None else 0.0

    def _prompt_path(self, name: str) -> str | None:
        library = self.settings.prompt_library
        if library is not None and library.has(name, library.default_language):
            return str(library.path(name, library.default_language))
        prompt = self.settings.prompts.get(name)
        return prompt.path if prompt is not None else None

    async def run(self) -> None:
        """Heartbeat, command reader and spool flusher until stop()."""
        self.settings.spool_dir.mkdir(parents=True, exist_ok=True)
        await self.close_stale_calls()
        loops = [
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._command_loop(), name="commands"),
            asyncio.create_task(self._spool_loop(), name="spool"),
            asyncio.create_task(self._space_loop(), name="space"),
        ]
        await self._stop.wait()
        for task in loops:
            task.cancel()
        for task in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def stop(self) -> None:
        self._stop.set()

    async def close_stale_calls(self) -> int:
        """Settles the calls this worker id had when it last died (runtime/lost.py: a waiting
        caller keeps the place as a callback, anything else is closed as failed).

        A supervisor restarts a killed worker within seconds under the same id, possibly before
        its heartbeat expires, so the control plane may never see it dead: the new incarnation
        settles what the old one left (its records, queue entries and agents)."""
        try:
            stale = await self.bus.tracked_calls(self.settings.worker_id)
        except Unavailable as exc:
            logger.warning("cannot read stale calls: %s", exc)
            return 0
        for call_id, info in stale.items():
            if CallId(call_id) in self.sessions:
                continue
            try:
                record = await settle_lost_call(self.queue, self.settings.worker_id, CallId(call_id), info)
            except Unavailable:
                record = lost_call_record(CallId(call_id), self.settings.worker_id, info, "worker died")
            await self.deliver(record, only_if_new=True)
        if stale:
            logger.error("closed %d calls left by this worker's previous run", len(stale))
        return len(stale)

    async def shutdown_calls(self) -> None:
        """Ends every live call with a record before the endpoint goes (worker stopping)."""
        if self.callbacks is not None:
            await self.callbacks.shutdown()
        if self.surveys is not None:
            await self.surveys.shutdown()
        for session in list(self.sessions.values()):
            if session.finished:
                continue
            connected = session.flow.phase == fl.Phase.CONNECTED
            callback = session.flow.phase == fl.Phase.CALLBACK  # the queue keeps its entry
            outcome = Outcome.ANSWERED if connected else Outcome.CALLBACK_REQUESTED if callback else Outcome.FAILED
            if session.flow.phase == fl.Phase.VOICEMAIL:
                outcome = Outcome.VOICEMAIL  # the message so far is in the recording
            if session.flow.in_queue:
                with contextlib.suppress(Unavailable):
                    await self.queue.abandon(session.call_id)
            # Recorded first: the hang-ups below make the flow emit its own Finish, ignored then.
            await self._finish(session, fl.Finish(outcome, "system", "worker stopped"))
            if self.sip is not None:
                with contextlib.suppress(Exception):
                    await self.sip.hangup(session.caller_leg, 503)
                for leg in [session.agent_leg, *session.ringing]:
                    if leg is not None:
                        with contextlib.suppress(Exception):
                            await self.sip.hangup(leg, 503)
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=5)

    def spawn(self, coro: Any, name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s failed", task.get_name(), exc_info=task.exception())

    # ------------------------------------------------------------ SIP events (in the loop)
    def on_sip_event(self, event: SipEvent) -> None:
        try:
            self._on_sip_event(event)
        except Exception:
            logger.exception("handling %s", event)

    def _on_sip_event(self, event: SipEvent) -> None:
        if isinstance(event, IncomingCall):
            self._on_incoming(event)
            return
        if isinstance(event, CallRejected):
            self.rejected += 1
            logger.warning("rejected %s from %s: %s", event.sip_call_id, event.caller, event.reason)
            return
        if self.callbacks is not None and self.callbacks.on_sip_event(event):
            return
        if self.surveys is not None and self.surveys.on_sip_event(event):
            return
        if self.controls.on_sip_event(event):
            return
        session = self.by_leg.get(event.leg_id)
        if session is None:
            return
        if event.leg_id in session.ringing:
            self._on_ring_leg(session, event)
            return
        is_agent = event.leg_id == session.agent_leg
        if isinstance(event, MediaReady):
            # The agent leg's media is wired by the adapter whenever it comes (bridge and
            # recorder are remembered), so only the caller's media drives the flow.
            if not is_agent:
                self._feed(session, fl.MediaReady())
        elif isinstance(event, DtmfReceived):
            if not is_agent:
                self._feed(session, fl.Dtmf(event.digit))
        elif isinstance(event, LegStateChanged):
            self._on_leg_state(session, event, is_agent)

    def _on_incoming(self, event: IncomingCall) -> None:
        now = utcnow()
        call_id = new_call_id(now)
        session = CallSession(
            call_id=call_id,
            caller_leg=event.leg_id,
            incoming=event,
            flow=fl.CallFlow(self._flow_settings),
            started_at=now,
        )
        self.sessions[call_id] = session
        self.by_leg[event.leg_id] = session
        logger.info("call %s from %s to %s (%s)", call_id, event.caller, event.callee, event.sip_call_id)
        info = {
            "call_id": call_id,
            "caller": event.caller,
            "callee": event.callee,
            "started_at": now.isoformat(),
            "worker_id": self.settings.worker_id,
        }
        self.spawn(self._track(call_id, info), f"track-{call_id}")
        self._feed(session, fl.Incoming())

    async def _track(self, call_id: CallId, info: dict[str, Any]) -> None:
        try:
            await self.bus.track_call(self.settings.worker_id, call_id, info)
            await self.bus.publish(ev.CALL_STARTED, info)
        except Unavailable as exc:
            logger.warning("call %s not tracked in Redis: %s", call_id, exc)

    def _on_leg_state(self, session: CallSession, event: LegStateChanged, is_agent: bool) -> None:
        if not is_agent:
            if event.state == LegState.CONFIRMED:
                session.answered_at = session.answered_at or utcnow()
            elif event.state == LegState.DISCONNECTED:
                self.by_leg.pop(event.leg_id, None)
                self._feed(session, fl.CallerHungUp())
            return
        offer = session.agent_leg_offer or ""
        if event.state == LegState.CONFIRMED:
            session.agent_answered = True
            self._feed(session, fl.AgentAnswered(offer))
        elif event.state == LegState.DISCONNECTED:
            self.by_leg.pop(event.leg_id, None)
            session.agent_leg = None
            if session.agent_answered:
                self._feed(session, fl.AgentHungUp(offer))
            else:
                self._feed(session, fl.AgentFailed(offer, failure_reason(event.status_code)))

    def _on_ring_leg(self, session: CallSession, event: Any) -> None:
        """A leg of a ring_all group: the first answer makes it the agent leg; any other answer
        or end goes to the flow, which hangs up or reports it."""
        if not isinstance(event, LegStateChanged):
            return  # its media is wired once it is the agent leg
        offer = session.ringing[event.leg_id]
        if event.state == LegState.CONFIRMED:
            if session.agent_leg is None:
                session.ringing.pop(event.leg_id)
                session.agent_leg, session.agent_leg_offer, session.agent_answered = event.leg_id, offer, True
            self._feed(session, fl.AgentAnswered(offer))
        elif event.state == LegState.DISCONNECTED:
            session.ringing.pop(event.leg_id)
            self.by_leg.pop(event.leg_id, None)
            self._feed(session, fl.AgentFailed(offer, failure_reason(event.status_code)))

    # ------------------------------------------------------------ commands from the control plane
    async def _command_loop(self) -> None:
        # Only commands sent from now on, from an explicit id: "$" on every blocking read would
        # lose a command sent between two reads (seen: a 回访 call never dialled).
        last_id: str | None = None
        while True:
            try:
                if last_id is None:
                    last_id = await self.bus.newest_command_id(self.settings.worker_id)
                entries = await self.bus.read_commands(self.settings.worker_id, last_id, 1000)
            except Unavailable as exc:
                logger.warning("reading commands: %s", exc)
                await asyncio.sleep(1)
                continue
            for entry_id, kind, data in entries:
                last_id = entry_id
                try:
                    self._on_command(kind, data)
                except Exception:
                    logger.exception("command %s %s", kind, data)

    def _on_command(self, kind: str, data: dict[str, Any]) -> None:
        call_id = CallId(str(data.get("call_id", "")))
        session = self.sessions.get(call_id)
        if kind == ev.CMD_OFFER:
            offer_id = str(data["offer_id"])
            if session is None:
                self.spawn(self._report_failed(offer_id, "no-such-call"), f"offer-{offer_id}")
                return
            group = tuple(str(o) for o in data.get("group") or ())  # a ring_all group's offer ids
            self._feed(session, fl.OfferReceived(offer_id, str(data["agent_id"]), str(data["agent_uri"]), group))
        elif kind == ev.CMD_HANGUP and session is not None and self.sip is not None:
            self.spawn(self.sip.hangup(session.caller_leg), f"hangup-{call_id}")
        elif kind == ev.CMD_SPEECH and session is not None:
            self._feed(session, _speech_result(data))
        elif kind == ev.CMD_SPEECH and self.surveys is not None:
            self.surveys.on_speech(call_id, str(data.get("text") or ""))
        elif kind == ev.CMD_OVERFLOW and session is not None:
            self._feed(session, fl.Overflow(str(data.get("target") or ""), float(data.get("max_s") or 0)))
        elif kind == ev.CMD_RECORDING and session is not None:
            paused, by = _truthy(data.get("paused")), str(data.get("by") or "")
            self.spawn(self._pause_recording(session, paused, by), f"recording-{call_id}")
        elif kind == ev.CMD_CALL_CONTROL:
            self.controls.command(session, data)
        elif kind == ev.CMD_REJECT:
            self.controls.reject(session, data)
        elif kind == ev.CMD_ANSWER:
            self.controls.answer(session, data)
        elif kind == ev.CMD_CALLBACK:
            if self.callbacks is None or self.sip is None:
                offer_id = str(data["offer_id"])
                self.spawn(self._report_failed(offer_id, "no-callbacks-here"), f"offer-{offer_id}")
            else:
                self.callbacks.start(data)
        elif kind == ev.CMD_SURVEY:
            if self.surveys is None or self.sip is None:
                logger.error("survey %s sent to a worker that makes no survey calls", data.get("survey_id"))
            else:
                self.surveys.start(data)

    # ------------------------------------------------------------ the flow
    def _feed(self, session: CallSession, event: fl.Event) -> None:
        try:
            commands = session.flow.handle(event, self.clock())
        except fl.FlowError:
            logger.exception("call %s", session.call_id)
            return
        self.spawn(self._execute(session, commands), f"exec-{session.call_id}")
        self._arm_timer(session)

    def _arm_timer(self, session: CallSession) -> None:
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None
        deadline = session.flow.next_deadline()
        if deadline is None or session.finished:
            return
        delay = max(0.0, deadline - self.clock())
        loop = asyncio.get_running_loop()
        session.timer = loop.call_later(delay + 0.001, self._feed, session, fl.Tick())

    async def _execute(self, session: CallSession, commands: list[fl.Command]) -> None:
        async with session.lock:
            for command in commands:
                try:
                    await self._do(session, command)
                except Exception:
                    logger.exception("call %s: %s failed", session.call_id, command)

    async def _do(self, s: CallSession, c: fl.Command) -> None:
        sip = self.sip
        assert sip is not None
        if isinstance(c, fl.Answer):
            await sip.answer(s.caller_leg, 200)
            s.answered_at = utcnow()
        elif isinstance(c, fl.StartRecording):
            # A full recordings volume costs the recording, never the call (recordings/call.py).
            s.rec, stereo = CallRecording(s.call_id), self._recording_path(s)
            check = await s.rec.start(sip, s.caller_leg, leg_file(stereo, "caller"), self._space.guard, self.clock)
            s.recording = stereo if check.ok else None
            if self._space.note(check):
                await self._alert(disk_alert(self.settings.worker_id, check, s.call_id))
        elif isinstance(c, fl.Play | fl.PlaySequence):
            names = (c.prompt,) if isinstance(c, fl.Play) else c.prompts
            path = self._prompt_file(names, s.language)
            if path is None:
                logger.error("call %s: prompt(s) %s missing: nothing played", s.call_id, " ".join(names))
                return
            await sip.play(s.caller_leg, path, c.loop)
        elif isinstance(c, fl.StopPlay):
            await sip.stop_play(s.caller_leg)
        elif isinstance(c, fl.Enqueue):
            s.queued_at = utcnow()
            position = await self.queue.enqueue(
                s.call_id, self.settings.worker_id, s.incoming.caller, epoch_ms(), skills=c.skills, queue=c.queue
            )
            if position == QUEUE_FULL:
                # The queue is full and has nowhere to overflow to (a full queue with an overflow
                # target takes the call all the same, for the control plane to overflow it at
                # once): nobody is lost, the caller keeps waiting on hold and the alert says why.
                logger.error("call %s: queue full, not queued", s.call_id)
                with contextlib.suppress(Unavailable):
                    await self.bus.publish(ev.ALERT, {"alert": "queue-full", "call_id": s.call_id})
            # The caller's own recording grows while the call lasts: speech recognition reads it
            # from another process (no Python in the media clock, PJSUA2.md).
            tap = str(leg_file(s.recording, "caller")) if s.recording is not None else None
            with contextlib.suppress(Unavailable):
                await self.bus.publish(
                    ev.CALL_QUEUED,
                    {
                        "call_id": s.call_id,
                        "queued_at": s.queued_at.isoformat(),
                        "caller": s.incoming.caller,
                        "tap": tap,
                        "worker_id": self.settings.worker_id,
                    },
                )
        elif isinstance(c, fl.DialAgent) and c.ring:
            s.agent_legs += 1
            leg = f"out-{s.call_id}-{s.agent_legs}"
            s.ringing[leg] = c.offer_id
            self.by_leg[leg] = s
            try:
                await sip.dial(c.agent_uri, leg, {"X-Hotline-Call-Id": s.call_id})
            except Exception as exc:
                logger.warning("call %s: dialling %s failed: %s", s.call_id, c.agent_uri, exc)
                self.by_leg.pop(leg, None)
                s.ringing.pop(leg, None)
                self._feed(s, fl.AgentFailed(c.offer_id, "unreachable"))
        elif isinstance(c, fl.DialAgent):
            s.agent_leg_offer = c.offer_id
            s.agent_answered = False
            s.agent_legs += 1
            leg = f"out-{s.call_id}-{s.agent_legs}"
            s.agent_leg = leg
            self.by_leg[leg] = s
            try:
                await sip.dial(c.agent_uri, leg, {"X-Hotline-Call-Id": s.call_id})
            except Exception as exc:
                logger.warning("call %s: dialling %s failed: %s", s.call_id, c.agent_uri, exc)
                self.by_leg.pop(leg, None)
                s.agent_leg = None
                self._feed(s, fl.AgentFailed(c.offer_id, "unreachable"))
        elif isinstance(c, fl.HangupAgent):
            for leg in [leg for leg, offer in s.ringing.items() if offer == c.offer_id]:
                await sip.hangup(leg, 487)  # a ring_all leg another agent beat (or the caller left)
            if s.agent_leg is not None and s.agent_leg_offer == c.offer_id:
                await sip.hangup(s.agent_leg, 487 if not s.agent_answered else 200)
        elif isinstance(c, fl.Bridge):
            assert s.agent_leg is not None
            await sip.bridge(s.caller_leg, s.agent_leg)
            if s.recording is not None and s.rec is not None:
                await s.rec.add_leg(sip, s.agent_leg, leg_file(s.recording, "agent"))
            s.connected_at = utcnow()
        elif isinstance(c, fl.ReportOfferAnswered):
            if not await self.queue.offer_answered(OfferId(c.offer_id), epoch_ms()):
                # The offer's lease ran out (the call went back to the queue) although the
                # agent answered: the call is being served, so it leaves the queue again.
                logger.error("call %s: offer %s answered after its lease", s.call_id, c.offer_id)
                await self.queue.abandon(s.call_id)
        elif isinstance(c, fl.ReportOfferFailed) and c.offer_id in s.declined:
            # The agent declined it from his desk: paused by him, not a failure of his phone.
            await self.queue.offer_failed(OfferId(c.offer_id), epoch_ms(), ev.REJECT_PAUSE, declined=True)
        elif isinstance(c, fl.ReportOfferFailed):
            if c.agent_id:
                # His phone failed the offer (no answer, busy, not registered ...): like
                # Asterisk's autopause, the queue pauses him with the reason in the same step as
                # it puts the call back (offered again at once, a lone absent agent would loop).
                logger.warning("call %s: agent %s did not take the call: %s", s.call_id, c.agent_id, c.reason)
            await self._report_failed(c.offer_id, c.reason, agent_fault=bool(c.agent_id))
        elif isinstance(c, fl.Abandon):
            await self.queue.abandon(s.call_id)
        elif isinstance(c, fl.HangupCaller):
            await sip.hangup(s.caller_leg, 200)
        elif isinstance(c, fl.QueryPosition):
            await self._query_position(s)
        elif isinstance(c, fl.RaisePriority):
            level = await self.queue.set_priority(s.call_id, Priority[c.level.upper()])
            logger.info("call %s: priority raised to %s (now %s)", s.call_id, c.level, level)
        elif isinstance(c, fl.RequestCallback):
            if not await self.queue.request_callback(s.call_id, s.incoming.caller, epoch_ms()):
                # Not waiting any more (taken for an offer at that instant, or gone): nobody
                # would call back, and an entry without its caller must not stay behind.
                logger.error("call %s: callback not registered; the entry is removed", s.call_id)
                await self.queue.abandon(s.call_id)
        elif isinstance(c, fl.LookupTicket):
            await self._lookup(s, c.number)
        elif isinstance(c, fl.SetLanguage):
            s.language = c.language
        elif isinstance(c, fl.Finish):
            await self._finish(s, c)

    def _prompt_file(self, names: tuple[str, ...], language: str | None) -> str | None:
        """One file playing `names` in `language` (joined by the prompt library), None if one is missing."""
        library = self.settings.prompt_library
        if library is not None:
            try:
                path, _ = library.sequence(names, language)
            except ConfigError as exc:
                logger.error("%s", exc.message)
                return None
            return str(path)
        if len(names) == 1 and names[0] in self.settings.prompts:
            return self.settings.prompts[names[0]].path
        return None

    async def _query_position(self, s: CallSession) -> None:
        try:
            position = await self.queue.position(s.call_id)
            wait_s = await self.queue.estimated_wait_s(s.call_id, epoch_ms()) if position is not None else None
        except Unavailable as exc:
            logger.warning("call %s: no position to announce: %s", s.call_id, exc)
            position, wait_s = None, None
        self._feed(s, fl.PositionReport(position, wait_s))

    async def _lookup(self, s: CallSession, number: str) -> None:
        status: str | None = None
        if self.ticket_status is None:
            logger.warning("call %s: no ticket store to look up %s", s.call_id, number)
        else:
            try:
                status = await self.ticket_status(number)
            except Exception:
                logger.exception("call %s: looking up ticket %s", s.call_id, number)
        self._feed(s, fl.LookupResult(number, status))

    async def _report_failed(self, offer_id: str, reason: str, agent_fault: bool = False) -> None:
        await self.queue.offer_failed(OfferId(offer_id), epoch_ms(), reason, agent_fault=agent_fault)

    def _recording_path(self, s: CallSession) -> Path:
        d = s.started_at
        return self.settings.recordings_dir / f"{d:%Y}" / f"{d:%m}" / f"{d:%d}" / f"{s.call_id}.wav"

    async def _finish(self, s: CallSession, c: fl.Finish) -> None:
        if s.recorded:
            return  # a call ends exactly once (shutdown may race the flow's own Finish)
        s.recorded = True
        s.finished = True
        if s.timer is not None:
            s.timer.cancel()
        self.sessions.pop(s.call_id, None)
        if s.rec is not None:
            s.rec.finish(self.clock())  # a call ending while paused closes the gap
        last_agent, notes = self.controls.finished(s)  # a transfer changes who had the call
        agent = last_agent or s.flow.agent_id
        recording = await self._close_recording(s)
        record = CallRecord(
            call_id=s.call_id,
            caller=s.incoming.caller,
            callee=s.incoming.callee,
            worker_id=self.settings.worker_id,
            started_at=s.started_at,
            outcome=c.outcome,
            answered_at=s.answered_at,
            queued_at=s.queued_at,
            connected_at=s.connected_at if c.outcome == Outcome.ANSWERED else None,
            ended_at=utcnow(),
            agent_id=AgentId(agent) if agent else None,
            dtmf=s.flow.digits,
            recording_path=recording,
            hangup_by=c.hangup_by,
            reason="; ".join(r for r in (c.reason, notes) if r),
        )
        logger.info("call %s ended: %s (by %s)", s.call_id, c.outcome.value, c.hangup_by)
        if c.outcome == Outcome.ANSWERED:
            with contextlib.suppress(Unavailable):
                await self.queue.call_finished(s.call_id, epoch_ms())
        await self.deliver(record, extra=s.rec.event_fields(recording is not None) if s.rec is not None else None)

    async def _close_recording(self, s: CallSession) -> str | None:
        """Stops the leg recorders, merges them into the stereo call recording and stores it in
        recordings.format (FLAC: converted and checked in a thread, recordings/compress.py)."""
        if s.recording is None:
            return None
        path = await close_stereo(self.sip, s.recording, s.call_id)
        if path is None or self.settings.recording_format == "wav":
            return path
        return str(await asyncio.to_thread(store_as, Path(path), self.settings.recording_format))

    async def _pause_recording(self, s: CallSession, paused: bool, by: str) -> None:
        """CMD_RECORDING: pauses or resumes both legs' recorders, in order with the call's commands."""
        async with s.lock:
            if s.rec is not None and not s.finished and self.sip is not None:
                await s.rec.set_paused(self.sip, paused, by, self.clock)

    async def _space_loop(self) -> None:
        """While calls are recorded, a volume running low cuts their recordings (and alerts once)."""
        while True:
            await asyncio.sleep(SPACE_CHECK_S)
            recording = [s.rec for s in self.sessions.values() if s.rec is not None and s.rec.gaps.recording]
            if recording and self.sip is not None:
                check = await self._space.sweep(recording, self.sip, self.clock)
                if check is not None:
                    await self._alert(disk_alert(self.settings.worker_id, check, None))

    async def _alert(self, data: dict[str, Any]) -> None:
        logger.error("ALERT %s: %s", data.get("alert"), data.get("message", ""))
        with contextlib.suppress(Unavailable):
            await self.bus.publish(ev.ALERT, data)

    async def deliver(self, record: CallRecord, only_if_new: bool = False, extra: dict[str, Any] | None = None) -> None:
        """Publishes the call record; on failure it goes to the spool and is retried.

        only_if_new: the ticket writer keeps an existing record of that call (a real end beats
        a "failed" guessed after a crash). extra: more fields for the ticket writer (the
        recording's gaps, recordings/call.py)."""
        data = record.to_dict() | (extra or {})
        if only_if_new:
            data["only_if_new"] = True
        try:
            await self.bus.publish(ev.CALL_ENDED, data)
            await self.bus.untrack_call(self.settings.worker_id, record.call_id)
        except Unavailable as exc:
            logger.warning("call %s: record spooled (%s)", record.call_id, exc)
            self._spool.parent.mkdir(parents=True, exist_ok=True)
            with self._spool.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record.to_dict() | (extra or {}), ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())

    async def _spool_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self.flush_spool()

    async def flush_spool(self) -> int:
        """Sends spooled records in order; returns how many were sent.

        Crash-safe: records are sent from the top of the file, then exactly the sent lines are
        dropped in one synchronous step (deliver() only ever appends at the end, and nothing
        else runs between the re-read and the replace). A crash between sending and dropping
        sends a record twice, which the ticket writer absorbs (idempotent by call id)."""
        if not self._spool.exists():
            return 0
        lines = self._spool.read_text(encoding="utf-8").splitlines()
        sent = 0
        for line in lines:
            if line.strip():
                try:
                    data = json.loads(line)
                    await self.bus.publish(ev.CALL_ENDED, data)
                    with contextlib.suppress(Unavailable):
                        await self.bus.untrack_call(self.settings.worker_id, CallId(str(data["call_id"])))
                except Unavailable:
                    break
                except (ValueError, KeyError):
                    logger.error("bad spool line dropped: %r", line)
            sent += 1
        if sent:
            rest = self._spool.read_text(encoding="utf-8").splitlines()[sent:]
            if rest:
                tmp = self._spool.with_suffix(".tmp")
                tmp.write_text("\n".join(rest) + "\n", encoding="utf-8")
                tmp.replace(self._spool)
            else:
                self._spool.unlink()
        return sent

    # ------------------------------------------------------------ heartbeat
    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                callbacks = self.callbacks.active if self.callbacks is not None else 0
                callbacks += self.surveys.active if self.surveys is not None else 0
                info = {"calls": len(self.sessions) + callbacks, "rejected": self.rejected, "pid": os.getpid()}
                await self.bus.heartbeat(self.settings.worker_id, HEARTBEAT_TTL_MS, info)
            except Unavailable as exc:
                logger.warning("heartbeat: %s", exc)
            await asyncio.sleep(HEARTBEAT_MS / 1000)


def _prompt_durations(library: Any) -> Mapping[str, float]:
    """Prompt name -> seconds for the flow's timers: "<language>/<name>" and, in the default
    language, the bare name."""
    if library is None:
        return {}
    durations: dict[str, float] = {}
    for language in sorted(library.languages()):
        for name in library.names(language):
            seconds = float(library.seconds(name, language))
            durations[f"{language}/{name}"] = seconds
            if language == library.default_language:
                durations[name] = seconds
    return durations


def _speech_result(data: dict[str, Any]) -> fl.SpeechResult:
    """The speech service's CMD_SPEECH as the flow's event (values may arrive as text)."""
    kb = []
    for item in data.get("kb") or []:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            kb.append((str(item["topic"]), str(item["id"]), float(item["score"])))
    return fl.SpeechResult(
        text=str(data.get("text", "")),
        final=_truthy(data.get("final", True)),
        emergency=_truthy(data.get("emergency", False)),
        kb=tuple(kb),
    )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
