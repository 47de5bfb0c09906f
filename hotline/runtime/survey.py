"""回访 survey calls in a media worker: the adapter of hotline/ivr/survey.py's SurveyFlow.

The control plane (runtime/survey_scheduler.py) sends a worker `survey` (ev.CMD_SURVEY) for a
claimed survey attempt: this worker dials the caller's number, plays the questions, collects one
key per question (RFC 4733 or SIP INFO, as on inbound calls), thanks and hangs up. The caller's
side is recorded (a mono WAV), since his answers are part of the ticket.

Each attempt ends as a call record of its own (outcome survey, callee "survey", the reason
saying how it went) and a `survey.ended` event with the ratings, which the control plane applies
to the ticket. The live attempt is tracked like any call, so a worker that dies mid-survey has
it closed by the control plane; the attempt's lease in the ticket store then runs out and the
scheduler retries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from hotline.core import events as ev
from hotline.core.errors import Unavailable
from hotline.core.model import CallId, CallRecord, Outcome, WorkerId, utcnow
from hotline.ivr import survey as sv
from hotline.runtime.callback import DIALABLE, Tracker
from hotline.runtime.legs import FlowDriver, failure_reason
from hotline.sip.events import DtmfReceived, LegState, LegStateChanged, SipEvent

logger = logging.getLogger(__name__)


class SurveySip(Protocol):
    async def hangup(self, leg_id: str, code: int = 603) -> None: ...
    async def play(self, leg_id: str, wav_path: str, loop: bool = False) -> None: ...
    async def stop_play(self, leg_id: str) -> None: ...
    async def record(self, leg_id: str, wav_path: str) -> None: ...
    async def stop_record(self, wav_path: str) -> None: ...
    async def dial(self, uri: str, leg_id: str, headers: dict[str, str] | None = None) -> None: ...


class Publisher(Protocol):
    async def publish(self, kind: str, data: dict[str, Any]) -> str: ...


@dataclasses.dataclass(frozen=True, slots=True)
class SurveyConfig:
    dial_template: str  # e.g. "sip:{number}@127.0.0.1:5060" (Kamailio, a trunk, a PBX)
    ring_timeout_s: float = 30.0
    answer_timeout_s: float = 8.0
    retries: int = 2


@dataclasses.dataclass
class _Attempt:
    call_id: CallId
    survey_id: int
    attempt: int
    ticket: str
    number: str
    flow: sv.SurveyFlow
    started_at: datetime
    leg: str
    recording: Path
    answered_at: datetime | None = None
    dialled: bool = False
    recording_on: bool = False
    timer: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


class SurveyRunner(FlowDriver):
    """Runs the survey attempts a worker was given. `start(data)` for each CMD_SURVEY;
    `on_sip_event(event)` returns True for events of its legs."""

    what = "survey call"

    def __init__(
        self,
        worker_id: WorkerId,
        config: SurveyConfig,
        bus: Publisher,
        tracker: Tracker,
        deliver: Callable[[CallRecord], Awaitable[None]],
        recordings_dir: Path,
        prompt_file: Callable[[tuple[str, ...]], str | None],
        prompt_seconds: Callable[[str], float],
        new_call_id: Callable[[datetime], CallId],
        spawn: Callable[[Any, str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker_id = worker_id
        self.config = config
        self.bus = bus
        self.tracker = tracker
        self.deliver = deliver
        self.recordings_dir = recordings_dir
        self.prompt_file = prompt_file
        self.prompt_seconds = prompt_seconds
        self.new_call_id = new_call_id
        self.spawn = spawn
        self.clock = clock
        self.sip: SurveySip | None = None
        self.attempts: dict[CallId, _Attempt] = {}
        self._by_leg: dict[str, _Attempt] = {}
        self.settings = sv.SurveySettings(config.ring_timeout_s, config.answer_timeout_s, config.retries)

    @property
    def active(self) -> int:
        return len(self.attempts)

    # ------------------------------------------------------------ inputs
    def start(self, data: dict[str, Any]) -> None:
        now = utcnow()
        call_id = self.new_call_id(now)
        a = _Attempt(
            call_id=call_id,
            survey_id=int(data["survey_id"]),
            attempt=int(data.get("attempt") or 1),
            ticket=str(data.get("ticket") or ""),
            number=str(data.get("caller") or ""),
            flow=sv.SurveyFlow(self.settings, self.prompt_seconds),
            started_at=now,
            leg=f"sv-{call_id}",
            recording=self.recordings_dir / f"{now:%Y}" / f"{now:%m}" / f"{now:%d}" / f"{call_id}.wav",
        )
        logger.info(
            "survey %s (ticket %s, attempt %d): calling %s as %s", a.survey_id, a.ticket, a.attempt, a.number, call_id
        )
        self.attempts[call_id] = a
        self._by_leg[a.leg] = a
        info = {
            "call_id": call_id,
            "caller": a.number,
            "callee": "survey",
            "started_at": now.isoformat(),
            "worker_id": self.worker_id,
            "survey_id": a.survey_id,
            "ticket": a.ticket,
        }
        self.spawn(self._track(call_id, info), f"track-{call_id}")
        self._feed(a, sv.Start())

    def on_sip_event(self, event: SipEvent) -> bool:
        leg_id = getattr(event, "leg_id", None)
        a = self._by_leg.get(leg_id) if isinstance(leg_id, str) else None
        if a is None:
            return False
        if isinstance(event, LegStateChanged):
            if event.state == LegState.CONFIRMED and a.answered_at is None:
                a.answered_at = utcnow()
                self._feed(a, sv.Answered())
            elif event.state == LegState.DISCONNECTED:
                self._by_leg.pop(event.leg_id, None)
                reason = "hangup" if a.answered_at else failure_reason(event.status_code, not_found="unreachable")
                self._feed(a, sv.Gone(reason))
        elif isinstance(event, DtmfReceived):
            self._feed(a, sv.Digit(event.digit))
        return True

    def on_speech(self, call_id: CallId, text: str) -> bool:
        """What the speech service heard on a survey leg; False if the call is not a survey here."""
        a = self.attempts.get(call_id)
        if a is None:
            return False
        self._feed(a, sv.Spoken(text))
        return True

    async def shutdown(self) -> None:
        """The worker is stopping: every live attempt is hung up and ends with its record."""
        for a in list(self.attempts.values()):
            if self.sip is not None:
                with contextlib.suppress(Exception):
                    await self.sip.hangup(a.leg, 503)

    # ------------------------------------------------------------ the flow
    def _tick(self) -> Any:
        return sv.Tick()

    async def _do(self, a: _Attempt, c: sv.Command) -> None:
        sip = self.sip
        assert sip is not None
        if isinstance(c, sv.Dial):
            if not DIALABLE.match(a.number):
                logger.warning("survey call %s: number %r cannot be dialled", a.call_id, a.number)
                self._by_leg.pop(a.leg, None)
                self._feed(a, sv.Gone("unreachable"))
                return
            uri = self.config.dial_template.format(number=a.number)
            a.dialled = True
            try:
                await sip.dial(uri, a.leg, {"X-Hotline-Survey": str(a.survey_id), "X-Hotline-Ticket": a.ticket})
            except Exception as exc:
                logger.warning("survey call %s: dialling %s failed: %s", a.call_id, uri, exc)
                self._by_leg.pop(a.leg, None)
                self._feed(a, sv.Gone("unreachable"))
        elif isinstance(c, sv.Play):
            if not a.recording_on and a.leg in self._by_leg:
                a.recording.parent.mkdir(parents=True, exist_ok=True)
                await sip.record(a.leg, str(a.recording))
                a.recording_on = True
                # Answers may be spoken: the speech service follows the caller's side.
                listening = {"call_id": a.call_id, "tap": str(a.recording), "worker_id": self.worker_id}
                try:
                    await self.bus.publish(ev.SURVEY_LISTENING, listening | {"survey_id": a.survey_id})
                except Unavailable as exc:
                    logger.warning("survey call %s: speech not followed (%s): keys only", a.call_id, exc)
            path = self.prompt_file(c.prompts)
            if path is None:
                logger.error("survey call %s: prompt(s) %s missing: nothing played", a.call_id, " ".join(c.prompts))
            elif a.leg in self._by_leg:
                await sip.play(a.leg, path)
        elif isinstance(c, sv.StopPlay):
            if a.leg in self._by_leg:
                await sip.stop_play(a.leg)
        elif isinstance(c, sv.Hangup):
            if a.leg in self._by_leg:
                await sip.hangup(a.leg, 200 if a.answered_at else 487)
        elif isinstance(c, sv.Finish):
            await self._finish(a, c)

    async def _finish(self, a: _Attempt, c: sv.Finish) -> None:
        if a.timer is not None:
            a.timer.cancel()
        self.attempts.pop(a.call_id, None)
        self._by_leg.pop(a.leg, None)
        recording = None
        if a.recording_on and self.sip is not None:
            with contextlib.suppress(Exception):
                await self.sip.stop_record(str(a.recording))
            recording = str(a.recording) if a.recording.exists() else None
        ratings = f"; 过程 {c.process or '-'} 结果 {c.result or '-'}" if c.status.reached else ""
        reason = f"survey {a.survey_id} attempt {a.attempt}: {c.status.value}{ratings}"
        if c.reason:
            reason += f" ({c.reason})"
        record = CallRecord(
            call_id=a.call_id,
            caller=a.number,
            callee="survey",
            worker_id=self.worker_id,
            started_at=a.started_at,
            outcome=Outcome.SURVEY,
            answered_at=a.answered_at,
            ended_at=utcnow(),
            recording_path=recording,
            hangup_by=c.hangup_by,
            reason=reason,
        )
        logger.info("survey call %s ended: %s", a.call_id, reason)
        data = {
            "survey_id": a.survey_id,
            "attempt": a.attempt,
            "ticket": a.ticket,
            "call_id": a.call_id,
            "status": c.status.value,
            "process": c.process or "",
            "result": c.result or "",
            "reason": c.reason,
        }
        # The record first: the control plane links the call to the ticket when it settles the
        # attempt, and the ticket then shows a call with its record.
        await self.deliver(record)
        try:
            await self.bus.publish(ev.SURVEY_ENDED, data)
        except Unavailable as exc:
            # The attempt's lease runs out and the scheduler tries again: nothing is lost but
            # this attempt's answers, which the next attempt asks for again.
            logger.error("survey %s: result not published (%s): the attempt will be repeated", a.survey_id, exc)

    async def _track(self, call_id: CallId, info: dict[str, Any]) -> None:
        try:
            await self.tracker.track_call(self.worker_id, call_id, info)
        except Unavailable as exc:
            logger.warning("survey call %s not tracked in Redis: %s", call_id, exc)
