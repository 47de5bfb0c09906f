"""Callback calls in a media worker: the adapter of hotline/ivr/callback.py's CallbackFlow.

The control plane sends a worker `callback` (ev.CMD_CALLBACK) when a callback entry's turn came
and an agent was reserved for it: this worker dials the agent, then the caller's number, bridges
them and records the call (stereo: caller left, agent right, as for any call). It reports to the
queue as any offer does (answered / failed), plus `callback_failed` when the caller did not
answer, which keeps the entry at its place for a later attempt or, after the last, removes it.

Each attempt that rang the caller ends as a CallRecord of its own (outcome answered or
callback_failed) whose related_call_id is the call in which the caller asked for it, so the
ticket shows every attempt. The live attempt is tracked like an inbound call (with the queue's
call id), so a worker that dies mid-callback has it closed by the control plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from hotline.core.errors import Unavailable
from hotline.core.model import AgentId, CallId, CallRecord, OfferId, Outcome, WorkerId, utcnow
from hotline.core.ports import CallQueue
from hotline.ivr import callback as cb
from hotline.runtime.legs import FlowDriver, close_stereo, epoch_ms, failure_reason, leg_file
from hotline.sip.events import LegState, LegStateChanged, SipEvent

logger = logging.getLogger(__name__)

# What may stand for {number} in the dial template: digits, and the few characters of a
# telephone number (a SIP user part made of them needs no escaping).
DIALABLE = re.compile(r"^\+?[0-9*#]{1,32}$")


class CallbackSip(Protocol):
    async def hangup(self, leg_id: str, code: int = 603) -> None: ...
    async def play(self, leg_id: str, wav_path: str, loop: bool = False) -> None: ...
    async def stop_play(self, leg_id: str) -> None: ...
    async def record(self, leg_id: str, wav_path: str) -> None: ...
    async def stop_record(self, wav_path: str) -> None: ...
    async def dial(self, uri: str, leg_id: str, headers: dict[str, str] | None = None) -> None: ...
    async def bridge(self, leg_a: str, leg_b: str) -> None: ...


class Tracker(Protocol):
    async def track_call(self, worker_id: WorkerId, call_id: CallId, info: dict[str, Any]) -> None: ...
    async def untrack_call(self, worker_id: WorkerId, call_id: CallId) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class CallbackConfig:
    dial_template: str  # e.g. "sip:{number}@127.0.0.1:5060" (Kamailio, a trunk, a PBX)
    ring_timeout_s: float = 20.0  # the agent's phone
    caller_ring_timeout_s: float = 30.0  # the caller's phone
    retry_s: float = 120.0  # wait before the next attempt (the entry keeps its place meanwhile)
    max_attempts: int = 3


@dataclasses.dataclass
class _Attempt:
    call_id: CallId  # this outbound call's own id
    queue_call_id: CallId  # the entry in the queue: the call in which the caller asked
    offer_id: OfferId
    agent_id: AgentId
    agent_uri: str
    number: str
    attempt: int
    flow: cb.CallbackFlow
    started_at: datetime
    agent_leg: str
    caller_leg: str
    recording: Path
    answered_at: datetime | None = None
    connected_at: datetime | None = None
    agent_answered: bool = False
    caller_dialled: bool = False
    recording_on: bool = False
    retry_note: str = ""
    timer: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


class CallbackRunner(FlowDriver):
    """Runs the callback attempts a worker was given. `start(data)` for each CMD_CALLBACK;
    `on_sip_event(event)` returns True for events of its legs."""

    what = "callback"

    def __init__(
        self,
        worker_id: WorkerId,
        config: CallbackConfig,
        queue: CallQueue,
        tracker: Tracker,
        deliver: Callable[[CallRecord], Awaitable[None]],
        recordings_dir: Path,
        prompt_path: Callable[[str], str | None],
        prompt_seconds: Callable[[str], float],
        new_call_id: Callable[[datetime], CallId],
        spawn: Callable[[Any, str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker_id = worker_id
        self.config = config
        self.queue = queue
        self.tracker = tracker
        self.deliver = deliver
        self.recordings_dir = recordings_dir
        self.prompt_path = prompt_path
        self.new_call_id = new_call_id
        self.spawn = spawn
        self.clock = clock
        self.sip: CallbackSip | None = None
        self.attempts: dict[CallId, _Attempt] = {}
        self._by_leg: dict[str, _Attempt] = {}
        self.flow_settings = cb.CallbackSettings(
            config.ring_timeout_s,
            config.caller_ring_timeout_s,
            agent_failed_s=prompt_seconds(cb.AGENT_FAILED_PROMPT),
        )

    @property
    def active(self) -> int:
        return len(self.attempts)

    # ------------------------------------------------------------ inputs
    def start(self, data: dict[str, Any]) -> None:
        now = utcnow()
        call_id = self.new_call_id(now)
        recording = self.recordings_dir / f"{now:%Y}" / f"{now:%m}" / f"{now:%d}" / f"{call_id}.wav"
        a = _Attempt(
            call_id=call_id,
            queue_call_id=CallId(str(data["call_id"])),
            offer_id=OfferId(str(data["offer_id"])),
            agent_id=AgentId(str(data["agent_id"])),
            agent_uri=str(data["agent_uri"]),
            number=str(data.get("caller") or ""),
            attempt=int(data.get("attempt") or 1),
            flow=cb.CallbackFlow(self.flow_settings),
            started_at=now,
            agent_leg=f"cb-{call_id}-agent",
            caller_leg=f"cb-{call_id}-caller",
            recording=recording,
        )
        logger.info(
            "callback %s for call %s: attempt %d, agent %s, number %s",
            call_id,
            a.queue_call_id,
            a.attempt,
            a.agent_id,
            a.number,
        )
        self.attempts[call_id] = a
        self._by_leg[a.agent_leg] = a
        self._by_leg[a.caller_leg] = a
        info = {
            "call_id": call_id,
            "caller": a.number,
            "callee": "callback",
            "started_at": now.isoformat(),
            "worker_id": self.worker_id,
            "queue_call_id": a.queue_call_id,
        }
        if not DIALABLE.match(a.number):
            # Nobody can be called back (a withheld or malformed number): give up at once,
            # without ringing the agent for nothing; the record says why.
            self.spawn(self._undialable(a), f"callback-{call_id}")
            return
        self.spawn(self._track(call_id, info), f"track-{call_id}")
        self._feed(a, cb.Start())

    async def _undialable(self, a: _Attempt) -> None:
        logger.warning("callback %s: number %r cannot be dialled; given up", a.call_id, a.number)
        await self.queue.callback_failed(a.offer_id, epoch_ms(), "undialable", epoch_ms(), 1)
        a.retry_note = "the number cannot be dialled: callback given up"
        a.flow.phase = cb.CallbackPhase.ENDED
        await self._finish(a, cb.Finish(Outcome.CALLBACK_FAILED, "system", "undialable"))

    def on_sip_event(self, event: SipEvent) -> bool:
        leg_id = getattr(event, "leg_id", None)
        a = self._by_leg.get(leg_id) if isinstance(leg_id, str) else None
        if a is None:
            return False
        if isinstance(event, LegStateChanged):
            is_agent = event.leg_id == a.agent_leg
            if event.state == LegState.CONFIRMED:
                if is_agent:
                    a.agent_answered = True
                    self._feed(a, cb.AgentAnswered())
                else:
                    a.answered_at = utcnow()
                    self._feed(a, cb.CallerAnswered())
            elif event.state == LegState.DISCONNECTED:
                self._by_leg.pop(event.leg_id, None)
                answered = a.agent_answered if is_agent else bool(a.answered_at)
                reason = "hangup" if answered else failure_reason(event.status_code, not_found="not-found")
                self._feed(a, cb.AgentGone(reason) if is_agent else cb.CallerGone(reason))
        return True

    async def shutdown(self) -> None:
        """The worker is stopping: every live attempt is hung up and ends with its record."""
        for a in list(self.attempts.values()):
            if self.sip is not None:
                for leg in (a.caller_leg, a.agent_leg):
                    with contextlib.suppress(Exception):
                        await self.sip.hangup(leg, 503)

    # ------------------------------------------------------------ the flow
    def _tick(self) -> Any:
        return cb.Tick()

    async def _do(self, a: _Attempt, c: cb.Command) -> None:
        sip = self.sip
        assert sip is not None
        if isinstance(c, cb.DialAgent):
            try:
                await sip.dial(
                    a.agent_uri, a.agent_leg, {"X-Hotline-Call-Id": a.queue_call_id, "X-Hotline-Callback": "1"}
                )
            except Exception as exc:
                logger.warning("callback %s: dialling agent %s failed: %s", a.call_id, a.agent_uri, exc)
                self._by_leg.pop(a.agent_leg, None)
                self._feed(a, cb.AgentGone("unreachable"))
        elif isinstance(c, cb.PlayAgent):
            path = self.prompt_path(c.prompt)
            if path is not None and a.agent_leg in self._by_leg:
                await sip.play(a.agent_leg, path, loop=c.loop)
        elif isinstance(c, cb.DialCaller):
            if not DIALABLE.match(a.number):
                logger.warning("callback %s: number %r cannot be dialled", a.call_id, a.number)
                self._by_leg.pop(a.caller_leg, None)
                self._feed(a, cb.CallerGone("undialable"))
                return
            uri = self.config.dial_template.format(number=a.number)
            a.caller_dialled = True
            try:
                await sip.dial(uri, a.caller_leg, {"X-Hotline-Call-Id": a.queue_call_id})
            except Exception as exc:
                logger.warning("callback %s: dialling %s failed: %s", a.call_id, uri, exc)
                self._by_leg.pop(a.caller_leg, None)
                self._feed(a, cb.CallerGone("unreachable"))
        elif isinstance(c, cb.Bridge):
            await sip.stop_play(a.agent_leg)
            await sip.bridge(a.caller_leg, a.agent_leg)
            a.recording.parent.mkdir(parents=True, exist_ok=True)
            await sip.record(a.caller_leg, str(leg_file(a.recording, "caller")))
            await sip.record(a.agent_leg, str(leg_file(a.recording, "agent")))
            a.recording_on = True
            a.connected_at = utcnow()
        elif isinstance(c, cb.HangupAgent):
            if a.agent_leg in self._by_leg:
                await sip.hangup(a.agent_leg, 200 if a.agent_answered else 487)
        elif isinstance(c, cb.HangupCaller):
            if a.caller_leg in self._by_leg:
                await sip.hangup(a.caller_leg, 200 if a.answered_at else 487)
        elif isinstance(c, cb.ReportOfferAnswered):
            if not await self.queue.offer_answered(a.offer_id, epoch_ms()):
                # The lease ran out (the entry went back to the queue) although both answered:
                # they are talking, so the entry leaves the queue rather than ring twice.
                logger.error("callback %s: offer %s answered after its lease", a.call_id, a.offer_id)
        elif isinstance(c, cb.ReportOfferFailed):
            await self.queue.offer_failed(a.offer_id, epoch_ms(), c.reason, agent_fault=c.agent_fault)
        elif isinstance(c, cb.ReportCallbackFailed):
            now_ms = epoch_ms()
            retry_at = now_ms + int(self.config.retry_s * 1000)
            left = await self.queue.callback_failed(a.offer_id, now_ms, c.reason, retry_at, self.config.max_attempts)
            if left == 0:
                a.retry_note = f"attempt {a.attempt} of {self.config.max_attempts}, the last: callback given up"
            elif left > 0:
                a.retry_note = f"attempt {a.attempt} of {self.config.max_attempts}; next in {self.config.retry_s:.0f} s"
            else:
                a.retry_note = f"attempt {a.attempt}: the offer was no longer live"
        elif isinstance(c, cb.Finish):
            await self._finish(a, c)

    async def _finish(self, a: _Attempt, c: cb.Finish) -> None:
        if a.timer is not None:
            a.timer.cancel()
        self.attempts.pop(a.call_id, None)
        self._by_leg.pop(a.agent_leg, None)
        self._by_leg.pop(a.caller_leg, None)
        if c.outcome is None:
            logger.info("callback %s: agent %s did not take it (%s)", a.call_id, a.agent_id, c.reason)
            with contextlib.suppress(Unavailable):
                await self.tracker.untrack_call(self.worker_id, a.call_id)
            return
        if c.outcome == Outcome.ANSWERED:
            with contextlib.suppress(Unavailable):
                await self.queue.call_finished(a.queue_call_id, epoch_ms())
        recording = await self._close_recording(a)
        reason = c.reason if not a.retry_note else f"{c.reason}; {a.retry_note}"
        record = CallRecord(
            call_id=a.call_id,
            caller=a.number,
            callee="callback",
            worker_id=self.worker_id,
            started_at=a.started_at,
            outcome=c.outcome,
            answered_at=a.answered_at,
            connected_at=a.connected_at if c.outcome == Outcome.ANSWERED else None,
            ended_at=utcnow(),
            agent_id=a.agent_id,
            recording_path=recording,
            hangup_by=c.hangup_by,
            reason=reason,
            related_call_id=a.queue_call_id,
        )
        logger.info("callback %s ended: %s (%s)", a.call_id, c.outcome.value, reason)
        await self.deliver(record)

    async def _close_recording(self, a: _Attempt) -> str | None:
        if not a.recording_on:
            return None
        return await close_stereo(self.sip, a.recording, f"callback {a.call_id}")

    async def _track(self, call_id: CallId, info: dict[str, Any]) -> None:
        try:
            await self.tracker.track_call(self.worker_id, call_id, info)
        except Unavailable as exc:
            logger.warning("callback %s not tracked in Redis: %s", call_id, exc)
