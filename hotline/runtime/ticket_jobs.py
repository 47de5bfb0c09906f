"""The ticket store's time-driven jobs, run by the control plane's leader.

- The lifecycle's clock: every ticket for which time changed something (a light, a 催办 reminder
  when the red light comes on, overdue 督办, a late dispatch or first report) gets a Tick
  applied by the system actor, so these effects are in the timeline when they fall due and not
  only when someone next touches the ticket. The lifecycle itself dates each effect at the
  instant it became due, so a late run changes no date; the ledger writes the commands (the
  reminder to the unit) in the same transaction.
- 回访: a replied ticket's survey round (hotline/tickets/surveys.py) is claimed when due, inside
  the allowed hours (Asia/Shanghai, config survey.hours; never at night), and sent to the live
  worker with the fewest calls (ev.CMD_SURVEY), which dials the caller (runtime/survey.py). The
  worker's `survey.ended` event settles the attempt: both ratings given -> the ticket gets the
  Callback event (满意 / 基本满意: 办结); a result rated 不满意 is left for a supervisor, who
  decides whether the demand is reasonable (重办) or the answer stands (办结): an alert says so.
  Not reached -> retried after retry_s (within the hours), at most max_attempts, then an alert.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any, Protocol

from hotline.core import events as ev
from hotline.core.errors import DomainError, Unavailable
from hotline.core.model import CallId, WorkerId, utcnow
from hotline.tickets.model import Callback, Satisfaction, Tick
from hotline.tickets.records import SYSTEM, ActorRole, TicketActor
from hotline.tickets.workdays import SHANGHAI

logger = logging.getLogger(__name__)

SURVEY_ACTOR = TicketActor("回访", ActorRole.SYSTEM)
DEFAULT_HOURS = ((time(9, 0), time(12, 0)), (time(14, 0), time(20, 0)))


def parse_hours(spans: list[str] | tuple[str, ...]) -> tuple[tuple[time, time], ...]:
    """["09:00-12:00", "14:00-20:00"] -> the windows; ValueError naming a bad one."""
    windows = []
    for span in spans:
        start, sep, end = str(span).partition("-")
        try:
            if not sep:
                raise ValueError
            window = (time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))
        except ValueError:
            raise ValueError(f"survey hours: {span!r} is not HH:MM-HH:MM") from None
        if window[0] >= window[1]:
            raise ValueError(f"survey hours: {span!r} ends before it starts")
        windows.append(window)
    if not windows:
        raise ValueError("survey hours: at least one window is needed")
    return tuple(sorted(windows))


def next_allowed(now: datetime, hours: tuple[tuple[time, time], ...]) -> datetime:
    """`now` if it is inside a window (Asia/Shanghai local time), else the start of the next."""
    local = now.astimezone(SHANGHAI)
    for day in range(2):
        date = local.date() + timedelta(days=day)
        for start, end in hours:
            opens = datetime.combine(date, start, SHANGHAI)
            closes = datetime.combine(date, end, SHANGHAI)
            if local < closes:
                return now if local >= opens else opens.astimezone(now.tzinfo)
    raise AssertionError("unreachable: some window opens within two days")


@dataclasses.dataclass(frozen=True, slots=True)
class TicketJobSettings:
    clock_interval_s: float = 30.0  # how often due tickets get their Tick
    survey_interval_s: float = 5.0
    survey_hours: tuple[tuple[time, time], ...] = DEFAULT_HOURS
    survey_retry_s: float = 7200.0
    survey_max_attempts: int = 3
    survey_lease_s: float = 300.0  # an attempt not reported by then is lost (and retried)
    surveys: bool = True


class JobStore(Protocol):
    def tickets_due(self, now: datetime) -> list[str]: ...
    def apply(self, number: str, event: Any, actor: TicketActor, now: datetime, **kw: Any) -> Any: ...
    def claim_due_survey(self, now: datetime, lease: timedelta) -> Any: ...
    def survey_attempt_ended(
        self,
        survey_id: int,
        attempt: int,
        call_id: CallId,
        outcome: str,
        process: int | None,
        result: int | None,
        now: datetime,
        retry_at: datetime,
        max_attempts: int,
    ) -> Any: ...


class JobBus(Protocol):
    async def send_command(self, worker_id: WorkerId, kind: str, data: dict[str, Any]) -> str: ...
    async def alive_workers(self) -> dict[WorkerId, dict[str, Any]]: ...
    async def publish(self, kind: str, data: dict[str, Any]) -> str: ...


class TicketJobs:
    def __init__(
        self, settings: TicketJobSettings, store: JobStore, bus: JobBus, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.clock = clock
        self.ticks_applied = 0
        self.surveys_sent = 0

    async def clock_step(self) -> int:
        """Applies Tick to every due ticket; returns how many changed."""
        now = self.clock()
        changed = 0
        for number in await asyncio.to_thread(self.store.tickets_due, now):
            try:
                await asyncio.to_thread(self.store.apply, number, Tick(), SYSTEM, now)
            except Unavailable:
                raise
            except DomainError as exc:
                logger.warning("ticket %s: tick refused: %s", number, exc)
                continue
            changed += 1
        self.ticks_applied += changed
        return changed

    async def survey_step(self) -> bool:
        """Sends at most one due survey attempt to a worker; True if it sent one."""
        if not self.settings.surveys:
            return False
        now = self.clock()
        if next_allowed(now, self.settings.survey_hours) > now:
            return False  # outside the hours nobody is called; due rounds wait
        alive = await self.bus.alive_workers()
        if not alive:
            return False
        lease = timedelta(seconds=self.settings.survey_lease_s)
        job = await asyncio.to_thread(self.store.claim_due_survey, now, lease)
        if job is None:
            return False
        worker = min(sorted(alive), key=lambda w: int(alive[w].get("calls") or 0))
        data = {"survey_id": job.survey_id, "attempt": job.attempt, "ticket": job.ticket_number, "caller": job.caller}
        await self.bus.send_command(worker, ev.CMD_SURVEY, data)
        self.surveys_sent += 1
        logger.info(
            "survey %s of ticket %s: attempt %d on worker %s", job.survey_id, job.ticket_number, job.attempt, worker
        )
        return True

    async def survey_ended(self, data: dict[str, Any]) -> None:
        """Settles an attempt the worker reported (ev.SURVEY_ENDED); see the module's rules."""
        now = self.clock()
        status = str(data.get("status") or "")
        outcome = status if status in ("completed", "incomplete", "no-answer", "busy", "unreachable") else "unreachable"
        process, result = _rating(data.get("process")), _rating(data.get("result"))
        retry_at = now + timedelta(seconds=self.settings.survey_retry_s)
        settled = await asyncio.to_thread(
            self.store.survey_attempt_ended,
            int(data["survey_id"]),
            int(data.get("attempt") or 0),
            CallId(str(data.get("call_id") or "")),
            outcome,
            process,
            result,
            now,
            retry_at,
            self.settings.survey_max_attempts,
        )
        number = settled.ticket_number
        if settled.status == "completed" and process is not None and result is not None:
            event = Callback(SURVEY_ACTOR.name, Satisfaction(process), Satisfaction(result))
            try:
                await asyncio.to_thread(self.store.apply, number, event, SURVEY_ACTOR, now)
            except Unavailable:
                raise
            except DomainError as exc:
                logger.warning("ticket %s: survey ratings not applied: %s", number, exc)
            else:
                logger.info("ticket %s: 回访 process %d result %d: closed", number, process, result)
        elif settled.status in ("review", "unreachable"):
            alert = {
                "alert": "survey-unsatisfied" if settled.status == "review" else "survey-unreachable",
                "ticket": number,
                "survey_id": settled.id,
                "attempts": settled.attempts,
                "process": process or "",
                "result": result or "",
            }
            logger.warning("ticket %s: 回访 %s: a supervisor decides", number, settled.status)
            try:
                await self.bus.publish(ev.ALERT, alert)
            except Unavailable as exc:
                logger.warning("alert not published: %s", exc)


def _rating(value: Any) -> int | None:
    try:
        rating = int(value)
    except (TypeError, ValueError):
        return None
    return rating if rating in (1, 2, 3) else None
