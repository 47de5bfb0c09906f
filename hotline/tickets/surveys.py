"""The 回访 half of SqlTicketStore: which replied tickets are to be surveyed, their attempts, the
ratings.

Rules of this module (001 第十一条(八)(九)(十); the call itself is hotline/ivr/survey.py, the
scheduling hotline/runtime/survey_scheduler.py):
- A round opens in the transaction in which the unit's reply is stored (the lifecycle's
  ScheduleCallback; `open_round`): status pending, due at once (the scheduler moves it into the
  allowed hours), or no_consent if the caller did not agree to be called back (the hotline
  then closes the ticket by hand).
- `claim_due` hands out due rounds one at a time: pending and due, or calling with an expired
  lease (the worker died mid-call: that attempt counts). A claim is an UPDATE ... WHERE status
  and version columns still match, so two schedulers never dial one round. A round whose ticket
  is no longer 反馈 (the hotline rejected the reply, or rated it by hand) is cancelled instead.
- `attempt_ended` settles an attempt: both ratings given -> completed, or review when the
  result is 不满意 (重办 is proposed to a supervisor, who decides whether the demand is
  reasonable); not reached or incomplete -> pending again at retry_at, or unreachable after
  max_attempts. An attempt is settled once, by its number: a repeated or late report is ignored.
- Every attempt's call is linked to the ticket (role survey).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select, update

from hotline.core.errors import InvalidRequest
from hotline.core.model import CallId
from hotline.tickets import schema
from hotline.tickets.mixin import StorePart
from hotline.tickets.model import Command, ScheduleCallback, State
from hotline.tickets.records import NoSuchTicket

_S = schema.surveys
_T = schema.tickets
_C = schema.ticket_calls

PENDING, CALLING, COMPLETED, REVIEW = "pending", "calling", "completed", "review"
UNREACHABLE, NO_CONSENT, CANCELLED = "unreachable", "no_consent", "cancelled"
STATUSES = (PENDING, CALLING, COMPLETED, REVIEW, UNREACHABLE, NO_CONSENT, CANCELLED)
OUTCOMES = ("completed", "incomplete", "no-answer", "busy", "unreachable", "lost")


@dataclasses.dataclass(frozen=True, slots=True)
class SurveyRound:
    id: int
    ticket_number: str
    round: int
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_call_id: str | None
    last_outcome: str
    process: int | None
    result: int | None
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "ticket_number": self.ticket_number,
            "round": self.round,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "last_call_id": self.last_call_id,
            "last_outcome": self.last_outcome,
            "process": self.process,
            "result": self.result,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class SurveyJob:
    """A claimed attempt: what the worker needs to dial it."""

    survey_id: int
    ticket_number: str
    caller: str
    attempt: int


def open_round(conn: Connection, number: str, commands: tuple[Command, ...] | list[Command], now: datetime) -> None:
    """Opens a survey round if the lifecycle asked for a callback (called by the ledger inside
    the transaction that stores the reply)."""
    if not any(isinstance(c, ScheduleCallback) for c in commands):
        return
    consent = conn.execute(select(_T.c.consent_callback).where(_T.c.number == number)).scalar_one()
    last = conn.execute(select(func.max(_S.c.round)).where(_S.c.ticket_number == number)).scalar()
    conn.execute(
        _S.insert().values(
            ticket_number=number,
            round=int(last or 0) + 1,
            status=PENDING if consent else NO_CONSENT,
            attempts=0,
            next_attempt_at=now if consent else None,
            claimed_until=None,
            last_call_id=None,
            last_outcome="",
            process=None,
            result=None,
            created_at=now,
            updated_at=now,
        )
    )


class SurveyBook(StorePart):
    """Mixed into SqlTicketStore (see the module's rules)."""

    def claim_due_survey(self, now: datetime, lease: timedelta) -> SurveyJob | None:
        """The next due round, claimed for one attempt (its lease ends at now + lease); None if
        nothing is due."""
        while True:
            with self._write("claiming a survey") as conn:
                due = (_S.c.status == PENDING) & (_S.c.next_attempt_at <= now) | (_S.c.status == CALLING) & (
                    _S.c.claimed_until <= now
                )
                row = conn.execute(
                    select(_S, _T.c.caller, _T.c.stage)
                    .join(_T, _T.c.number == _S.c.ticket_number)
                    .where(due)
                    .order_by(_S.c.next_attempt_at, _S.c.id)
                    .limit(1)
                ).first()
                if row is None:
                    return None
                guard = (_S.c.id == row.id) & (_S.c.status == row.status) & (_S.c.attempts == row.attempts)
                if row.stage != State.REPLIED.value:
                    conn.execute(update(_S).where(guard).values(status=CANCELLED, next_attempt_at=None, updated_at=now))
                    continue
                changed = conn.execute(
                    update(_S)
                    .where(guard)
                    .values(
                        status=CALLING,
                        attempts=row.attempts + 1,
                        claimed_until=now + lease,
                        last_outcome="lost" if row.status == CALLING else row.last_outcome,
                        updated_at=now,
                    )
                )
                if changed.rowcount != 1:
                    continue  # another scheduler took it first
                return SurveyJob(row.id, row.ticket_number, row.caller, row.attempts + 1)

    def survey_call_started(self, survey_id: int, call_id: CallId, now: datetime) -> None:
        """Links the attempt's call to the ticket (role survey) as soon as it is dialled."""
        with self._write(f"survey {survey_id}: call {call_id}") as conn:
            number = self._survey_ticket(conn, survey_id)
            conn.execute(update(_S).where(_S.c.id == survey_id).values(last_call_id=call_id, updated_at=now))
            self._link(conn, number, call_id, now)

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
    ) -> SurveyRound:
        """Settles one attempt (see the module's rules) and returns the round as it now is."""
        if outcome not in OUTCOMES:
            raise InvalidRequest(f"survey outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
        for rating in (process, result):
            if rating is not None and rating not in (1, 2, 3):
                raise InvalidRequest(f"a rating is 1, 2 or 3, not {rating}")
        with self._write(f"survey {survey_id}: attempt ended ({outcome})") as conn:
            row = conn.execute(select(_S).where(_S.c.id == survey_id)).first()
            if row is None:
                raise NoSuchTicket(f"没有编号为 {survey_id} 的回访")
            self._link(conn, row.ticket_number, call_id, now)
            if row.status != CALLING or row.attempts != attempt:
                return _round(row)  # settled already (a repeated report, or a later attempt runs)
            done = outcome == "completed" and process is not None and result is not None
            values: dict[str, object] = {
                "last_call_id": call_id,
                "last_outcome": outcome,
                "claimed_until": None,
                "updated_at": now,
            }
            if done:
                values |= {"status": REVIEW if result == 3 else COMPLETED, "process": process, "result": result}
                values["next_attempt_at"] = None
            elif row.attempts >= max_attempts:
                values |= {"status": UNREACHABLE, "next_attempt_at": None}
            else:
                values |= {"status": PENDING, "next_attempt_at": retry_at}
            conn.execute(update(_S).where(_S.c.id == survey_id).values(**values))
            return _round(conn.execute(select(_S).where(_S.c.id == survey_id)).one())

    def surveys(self, number: str | None = None, status: str | None = None, limit: int = 100) -> list[SurveyRound]:
        """Survey rounds, newest first: of one ticket, and/or in one status."""
        if status is not None and status not in STATUSES:
            raise InvalidRequest(f"survey status {status!r} is not one of {', '.join(STATUSES)}")
        stmt = select(_S).order_by(_S.c.created_at.desc(), _S.c.id.desc()).limit(limit)
        if number is not None:
            stmt = stmt.where(_S.c.ticket_number == number)
        if status is not None:
            stmt = stmt.where(_S.c.status == status)
        with self._read("surveys") as conn:
            return [_round(r) for r in conn.execute(stmt).all()]

    # -- internals --------------------------------------------------------------------------

    def _survey_ticket(self, conn: Connection, survey_id: int) -> str:
        number = conn.execute(select(_S.c.ticket_number).where(_S.c.id == survey_id)).scalar()
        if number is None:
            raise NoSuchTicket(f"没有编号为 {survey_id} 的回访")
        return str(number)

    def _link(self, conn: Connection, number: str, call_id: CallId, now: datetime) -> None:
        known = conn.execute(select(_C.c.call_id).where(_C.c.ticket_number == number, _C.c.call_id == call_id)).first()
        if known is None:
            conn.execute(_C.insert().values(ticket_number=number, call_id=call_id, role="survey", linked_at=now))


def _round(row: object) -> SurveyRound:
    r = row._mapping  # type: ignore[attr-defined]
    return SurveyRound(
        id=int(r["id"]),
        ticket_number=str(r["ticket_number"]),
        round=int(r["round"]),
        status=str(r["status"]),
        attempts=int(r["attempts"]),
        next_attempt_at=r["next_attempt_at"],
        last_call_id=r["last_call_id"],
        last_outcome=str(r["last_outcome"]),
        process=r["process"],
        result=r["result"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )
