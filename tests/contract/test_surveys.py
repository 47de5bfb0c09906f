"""回访 rounds in the ticket store (hotline/tickets/surveys.py) and the leader's ticket jobs
(hotline/runtime/ticket_jobs.py) on a real store (SQLite and PostgreSQL) and a real Redis bus.

Dates follow test_ticket_ledger.py: Zibo's policy across the 2025 National Day week."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis.asyncio

from hotline.core import events as ev
from hotline.core.model import CallId, WorkerId
from hotline.queue.bus import RedisEventBus
from hotline.runtime.ticket_jobs import SURVEY_ACTOR, TicketJobs, TicketJobSettings
from hotline.tickets import model as m
from hotline.tickets.model import State
from hotline.tickets.store import SqlTicketStore
from hotline.tickets.surveys import SurveyJob
from tests.contract.test_ticket_ledger import AGENT, HOTLINE, LEAD, POLICIES, UNIT, ZIBO, complaint, sh

T0 = sh("2025-10-09 10:00")  # a working Thursday after the holiday
LEASE = timedelta(minutes=5)


@pytest.fixture
def store(ticket_store_url: str) -> Iterator[SqlTicketStore]:
    opened = SqlTicketStore(ticket_store_url, policies=POLICIES.values())
    yield opened
    opened.close()


def replied(store: SqlTicketStore, at: datetime = T0, **changes: Any) -> str:
    t = store.create_ticket(complaint(lead_unit=LEAD, **changes), AGENT, at, ZIBO)
    store.apply(t.number, m.Acknowledge(LEAD), UNIT, at + timedelta(hours=1))
    store.apply(t.number, m.Reply(LEAD, "已协调施工单位停止夜间施工"), UNIT, at + timedelta(hours=2))
    return t.number


def settle(
    store: SqlTicketStore, job: SurveyJob, outcome: str, process: int | None, result: int | None, at: datetime
) -> Any:
    call = CallId(f"sv-{job.survey_id}-{job.attempt}")
    return store.survey_attempt_ended(
        job.survey_id, job.attempt, call, outcome, process, result, at, at + timedelta(hours=2), 3
    )


def test_a_reply_opens_a_round_that_is_claimed_once(store: SqlTicketStore) -> None:
    number = replied(store)
    (survey,) = store.surveys(number)
    assert (survey.round, survey.status, survey.attempts) == (1, "pending", 0)
    assert store.claim_due_survey(T0, LEASE) is None  # due when the reply was stored
    at = T0 + timedelta(hours=2)
    job = store.claim_due_survey(at, LEASE)
    assert job == SurveyJob(survey.id, number, "13800138000", 1)
    assert store.claim_due_survey(at, LEASE) is None  # claimed: nobody dials it twice
    assert store.surveys(number)[0].status == "calling"


def test_no_consent_is_never_dialled(store: SqlTicketStore) -> None:
    number = replied(store, consent_callback=False)
    assert [s.status for s in store.surveys(number)] == ["no_consent"]
    assert store.claim_due_survey(T0 + timedelta(days=3), LEASE) is None


def test_not_reached_is_retried_then_given_up(store: SqlTicketStore) -> None:
    number = replied(store)
    at = T0 + timedelta(hours=3)
    for attempt in (1, 2, 3):
        job = store.claim_due_survey(at, LEASE)
        assert job is not None and job.attempt == attempt
        survey = settle(store, job, "no-answer", None, None, at)
        if attempt < 3:
            assert (survey.status, survey.next_attempt_at) == ("pending", at + timedelta(hours=2))
            assert store.claim_due_survey(at + timedelta(hours=1), LEASE) is None  # not before retry_at
            at += timedelta(hours=2)
    assert (survey.status, survey.attempts, survey.last_outcome) == ("unreachable", 3, "no-answer")
    assert [c.role for c in store.ticket_calls(number)].count("survey") == 3


def test_a_late_or_repeated_report_changes_nothing(store: SqlTicketStore) -> None:
    number = replied(store)
    at = T0 + timedelta(hours=3)
    job = store.claim_due_survey(at, LEASE)
    assert job is not None
    first = settle(store, job, "completed", 1, 2, at)
    assert (first.status, first.process, first.result) == ("completed", 1, 2)
    again = settle(store, job, "no-answer", None, None, at + timedelta(minutes=1))
    assert (again.status, again.process, again.result) == ("completed", 1, 2)
    assert store.surveys(number)[0].last_outcome == "completed"


def test_an_expired_lease_counts_the_attempt_and_is_claimed_again(store: SqlTicketStore) -> None:
    replied(store)
    at = T0 + timedelta(hours=3)
    job = store.claim_due_survey(at, LEASE)
    assert job is not None
    assert store.claim_due_survey(at + LEASE - timedelta(seconds=1), LEASE) is None
    again = store.claim_due_survey(at + LEASE, LEASE)
    assert again is not None and (again.survey_id, again.attempt) == (job.survey_id, 2)
    # the lost attempt's own report, arriving now, is ignored
    assert settle(store, job, "completed", 1, 1, at + LEASE).status == "calling"


def test_a_round_whose_ticket_left_reply_is_cancelled(store: SqlTicketStore) -> None:
    number = replied(store)
    store.apply(
        number, m.RejectReply("热线中心", "答复不清楚，请补充处理结果"), HOTLINE, T0 + timedelta(hours=2, minutes=30)
    )
    assert store.claim_due_survey(T0 + timedelta(hours=3), LEASE) is None
    assert [s.status for s in store.surveys(number)] == ["cancelled"]
    # the unit replies again: a second round
    store.apply(number, m.Reply(LEAD, "已补充：施工许可已收回"), UNIT, T0 + timedelta(hours=4))
    assert [(s.round, s.status) for s in store.surveys(number)] == [(2, "pending"), (1, "cancelled")]


def test_bad_reports_are_refused(store: SqlTicketStore) -> None:
    replied(store)
    job = store.claim_due_survey(T0 + timedelta(hours=3), LEASE)
    assert job is not None
    with pytest.raises(Exception, match="survey outcome"):
        settle(store, job, "maybe", None, None, T0)
    with pytest.raises(Exception, match="rating"):
        settle(store, job, "completed", 4, 1, T0)


# ---------------------------------------------------------------- the leader's jobs


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def bus(client: redis.asyncio.Redis) -> RedisEventBus:
    return RedisEventBus(client)


async def test_the_survey_goes_to_the_least_loaded_worker_within_the_hours(
    store: SqlTicketStore, bus: RedisEventBus
) -> None:
    number = replied(store)
    clock = Clock(sh("2025-10-09 20:30"))  # after hours: nobody is called
    jobs = TicketJobs(TicketJobSettings(), store, bus, clock)
    await bus.heartbeat(WorkerId("w1"), 60_000, {"calls": 5})
    await bus.heartbeat(WorkerId("w2"), 60_000, {"calls": 1})
    assert await jobs.survey_step() is False
    clock.now = sh("2025-10-10 09:00")
    assert await jobs.survey_step() is True
    assert await jobs.survey_step() is False  # one round, one attempt
    assert await bus.read_commands(WorkerId("w1"), "0") == []
    ((_, kind, data),) = await bus.read_commands(WorkerId("w2"), "0")
    assert kind == ev.CMD_SURVEY
    assert (data["ticket"], data["caller"], int(data["attempt"])) == (number, "13800138000", 1)


@pytest.mark.parametrize(("process", "result"), [(1, 1), (3, 2)])
async def test_ratings_close_the_ticket(store: SqlTicketStore, bus: RedisEventBus, process: int, result: int) -> None:
    number = replied(store)
    clock = Clock(sh("2025-10-09 15:00"))
    jobs = TicketJobs(TicketJobSettings(), store, bus, clock)
    job = store.claim_due_survey(clock.now, LEASE)
    assert job is not None
    report = {"survey_id": job.survey_id, "attempt": 1, "call_id": "c-sv-1", "status": "completed"}
    await jobs.survey_ended(report | {"process": process, "result": result})
    t = store.get_ticket(number)
    assert t is not None and t.ticket.state == State.CLOSED
    assert (int(t.ticket.process_rating or 0), int(t.ticket.result_rating or 0)) == (process, result)
    callback = [r for r in store.timeline(number) if r.action == "Callback"]
    assert len(callback) == 1 and callback[0].actor == SURVEY_ACTOR.name
    assert store.surveys(number)[0].status == "completed"


async def test_unsatisfied_result_waits_for_a_supervisor(store: SqlTicketStore, bus: RedisEventBus) -> None:
    number = replied(store)
    clock = Clock(sh("2025-10-09 15:00"))
    jobs = TicketJobs(TicketJobSettings(), store, bus, clock)
    job = store.claim_due_survey(clock.now, LEASE)
    assert job is not None
    report = {"survey_id": job.survey_id, "attempt": 1, "call_id": "c-sv-1", "status": "completed"}
    await jobs.survey_ended(report | {"process": "2", "result": "3"})
    t = store.get_ticket(number)
    assert t is not None and t.ticket.state == State.REPLIED  # not closed, not redone: a person decides
    assert store.surveys(number, status="review")[0].result == 3
    _, entries = await bus.read_after("0", 0)
    alerts = [d for _, kind, d in entries if kind == ev.ALERT]
    assert alerts[-1]["alert"] == "survey-unsatisfied" and alerts[-1]["ticket"] == number
    # the supervisor finds the demand reasonable: 重办, back to the unit
    decision = m.Callback("热线中心", m.Satisfaction(2), m.Satisfaction(3), demand_reasonable=True)
    redone = store.apply(number, decision, HOTLINE, clock.now + timedelta(hours=1))
    assert redone.ticket.state == State.HANDLING


async def test_the_clock_sends_the_red_light_reminder(store: SqlTicketStore, bus: RedisEventBus) -> None:
    t = store.create_ticket(complaint(lead_unit=LEAD), AGENT, sh("2025-09-30 10:00"), ZIBO)
    clock = Clock(sh("2025-10-20 10:00"))  # long past the deadline and its red light
    jobs = TicketJobs(TicketJobSettings(), store, bus, clock)
    assert await jobs.clock_step() == 1
    after = store.get_ticket(t.number)
    assert after is not None and after.ticket.light == m.Light.RED
    rows = store.timeline(t.number)
    actions = [r.action for r in rows]
    # the yellow and red lights, the overdue count and its 督办, each dated when it fell due
    assert {"yellow_light", "red_light", "overdue"} <= set(actions), actions
    red = next(r for r in rows if r.action == "red_light")
    assert "自动催办" in red.reason and red.at < sh("2025-10-20 10:00")
    assert await jobs.clock_step() == 0  # nothing more is due now
    assert store.tickets_due(clock.now) == []


def test_dataclass_fields_are_what_the_worker_reads() -> None:
    assert [f.name for f in dataclasses.fields(SurveyJob)] == ["survey_id", "ticket_number", "caller", "attempt"]
