"""Contract of the 工单 half of SqlTicketStore (hotline/tickets/ledger.py) and of the call drafts,
run on a SQLite file and on PostgreSQL (see conftest.py).

Dates follow tests/unit/test_lifecycle.py: the official 2025 calendar (10-01..10-08 off, 10-11 a
make-up Saturday), Zibo's policy (dispatch 1 working day, handle 5, one extension of up to 5).
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from hotline.core.errors import ConfigError, Conflict, InvalidRequest, NotFound
from hotline.core.model import CallId, TicketStatus
from hotline.tickets import model as m
from hotline.tickets import schema
from hotline.tickets.lifecycle import IllegalTransition, TicketMachine
from hotline.tickets.model import Kind, Light, Satisfaction, State
from hotline.tickets.policy import load_policies
from hotline.tickets.recordings_meta import RecordingCatalogue
from hotline.tickets.records import ActorRole, NewTicket, NoSuchTicket, StaleTicket, StoredTicket, TicketActor
from hotline.tickets.store import SqlTicketStore
from hotline.tickets.workdays import SHANGHAI, WorkCalendar
from tests.contract.conftest import PostgresServer

POLICIES = load_policies(Path(__file__).resolve().parents[2] / "config" / "policy")
ZIBO = POLICIES["zibo"]
LEAD, HELPER = "区住建局", "区城管局"
AGENT = TicketActor("agent-1001")
HOTLINE = TicketActor("热线中心", ActorRole.SUPERVISOR)
UNIT = TicketActor(LEAD, ActorRole.UNIT)
SYSTEM = TicketActor("system", ActorRole.SYSTEM)


def sh(text: str) -> datetime:
    """Asia/Shanghai wall time: '2025-09-30 10:00'."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


T0 = sh("2025-09-30 10:00")


def complaint(**changes: Any) -> NewTicket:
    base = NewTicket(
        caller="13800138000",
        kind=Kind.COMPLAINT,
        content="小区夜间施工噪音扰民，请求处理",
        caller_name="王女士",
        transcript="喂，你好，我们小区晚上一直在施工……",
        place="淄博市张店区华光路88号",
        consent_recording=True,
        call_id=CallId("20250930T020000-aaaa0001"),
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def store(ticket_store_url: str) -> Iterator[SqlTicketStore]:
    opened = SqlTicketStore(ticket_store_url, policies=POLICIES.values())
    yield opened
    opened.close()


def raw_engine(url: str) -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)


def event_rows(url: str) -> list[tuple[Any, ...]]:
    engine = raw_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sqlalchemy.select(schema.ticket_events).order_by("seq")).all()]
    finally:
        engine.dispose()


# The path of one ticket through every phone status, as (event, actor, time, status after).
def happy_path() -> list[tuple[m.Event, TicketActor, datetime]]:
    return [
        (m.Dispatch(HOTLINE.name, LEAD, (HELPER,)), HOTLINE, sh("2025-09-30 11:00")),
        (m.Acknowledge(LEAD), UNIT, sh("2025-10-09 09:00")),
        (m.RequestExtension(LEAD, 3, "需协调多个部门"), UNIT, sh("2025-10-10 09:00")),
        (m.ApproveExtension(HOTLINE.name), HOTLINE, sh("2025-10-10 10:00")),
        (m.Reply(LEAD, "已责令施工单位夜间停工"), UNIT, sh("2025-10-13 09:00")),
    ]


class TestTicketLedgerContract:
    """Every test runs on SQLite and on PostgreSQL."""

    # -- creating -------------------------------------------------------------------------

    def test_a_new_ticket_round_trips_with_every_field(self, store: SqlTicketStore) -> None:
        new = complaint()
        created = store.create_ticket(new, AGENT, T0, ZIBO)
        assert created.number == "25093000001"
        assert re.fullmatch(r"\d+", created.number)
        t = created.ticket
        assert (t.kind, t.caller, t.summary, t.state) == (Kind.COMPLAINT, new.caller, new.content, State.ACCEPTED)
        assert t.accepted_at == T0 and t.accepted_at.tzinfo is UTC
        assert created.status == TicketStatus.ACCEPTED and created.version == 1 and created.policy == "zibo"
        assert created.due_at == t.dispatch_due == sh("2025-10-09 23:59:59.999999")  # 1 working day
        assert created.yellow_at is None and created.red_at is None
        assert (created.caller_name, created.transcript, created.place) == (new.caller_name, new.transcript, new.place)
        assert (created.consent_recording, created.consent_callback, created.consent_disclose) == (True, True, False)
        assert created.channel == "phone" and created.legal_hold is False
        loaded = store.get_ticket(created.number)
        assert loaded == dataclasses.replace(created, commands=())
        assert [(c.call_id, c.role) for c in store.ticket_calls(created.number)] == [(new.call_id, "intake")]
        [row] = store.timeline(created.number)
        assert (row.seq, row.action, row.from_state, row.to_state, row.actor, row.actor_role, row.recorded_by) == (
            1, "Open", None, "accepted", AGENT.name, "agent", AGENT.name,
        )  # fmt: skip
        assert store.get_ticket("25093099999") is None

    def test_numbers_are_the_shanghai_day_and_a_daily_sequence(self, store: SqlTicketStore) -> None:
        first = store.create_ticket(complaint(call_id=None), AGENT, T0, ZIBO)
        second = store.create_ticket(complaint(call_id=None), AGENT, T0 + timedelta(minutes=1), ZIBO)
        # 16:30 UTC on 09-30 is 00:30 on 10-01 in Shanghai: a new day, a new sequence.
        next_day = store.create_ticket(complaint(call_id=None), AGENT, datetime(2025, 9, 30, 16, 30, tzinfo=UTC), ZIBO)
        assert [first.number, second.number, next_day.number] == ["25093000001", "25093000002", "25100100001"]

    def test_numbers_are_unique_under_concurrency(self, store: SqlTicketStore, ticket_store_url: str) -> None:
        other = SqlTicketStore(ticket_store_url, policies=POLICIES.values())  # a second pool, like a second process
        numbers: list[str] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        def work(index: int) -> None:
            target = store if index % 2 else other
            try:
                barrier.wait()
                for i in range(5):
                    new = complaint(call_id=CallId(f"c-{index}-{i}"), caller=f"1380000{index:04d}")
                    numbers.append(target.create_ticket(new, AGENT, T0, ZIBO).number)
            except BaseException as error:  # reported below, with the thread's traceback
                errors.append(error)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        other.close()
        assert errors == []
        assert sorted(numbers) == [f"250930{i:05d}" for i in range(1, 41)]  # unique and without gaps

    def test_a_consultation_answered_at_once_is_closed_without_dispatch(self, store: SqlTicketStore) -> None:
        new = complaint(
            kind=Kind.CONSULTATION, content="公积金提取需要哪些材料", answer="携带身份证和购房合同到公积金中心办理"
        )
        created = store.create_ticket(new, AGENT, T0, ZIBO)
        assert created.ticket.state == State.CLOSED and created.status == TicketStatus.CLOSED
        assert created.ticket.lead_unit is None and created.ticket.dispatched_at is None
        assert created.due_at is None and created.next_alarm_at is None
        rows = store.timeline(created.number)
        assert [(r.action, r.from_state, r.to_state) for r in rows] == [
            ("Open", None, "accepted"),
            ("AnswerDirectly", "accepted", "closed"),
        ]
        assert store.tickets_due(T0 + timedelta(days=365)) == []

    def test_a_creation_the_lifecycle_refuses_stores_nothing_and_keeps_the_number(self, store: SqlTicketStore) -> None:
        strict = dataclasses.replace(
            ZIBO, name="strict", defaults=dataclasses.replace(ZIBO.defaults, direct_answer=False)
        )
        with pytest.raises(InvalidRequest):
            store.create_ticket(complaint(answer="直接答复"), AGENT, T0, strict)
        with pytest.raises(InvalidRequest):  # an emergency must be dispatched at once: needs its lead unit
            store.create_ticket(complaint(emergency=True), AGENT, T0, ZIBO)
        with pytest.raises(InvalidRequest):
            store.create_ticket(complaint(content="  "), AGENT, T0, ZIBO)
        with pytest.raises(InvalidRequest, match="naive"):
            store.create_ticket(complaint(), AGENT, datetime(2025, 9, 30, 10, 0), ZIBO)
        assert store.recent_tickets() == []
        assert store.create_ticket(complaint(), AGENT, T0, ZIBO).number == "25093000001"

    def test_an_emergency_with_its_lead_unit_is_dispatched_at_once(self, store: SqlTicketStore) -> None:
        created = store.create_ticket(complaint(emergency=True, lead_unit=LEAD), AGENT, T0, ZIBO)
        assert created.ticket.state == State.DISPATCHED and created.status == TicketStatus.DISPATCHED
        assert any(isinstance(c, m.ReportEmergency) for c in created.commands)
        assert created.due_at == sh("2025-10-11 23:59:59.999999")  # 3 working days: 10-09, 10-10, 10-11 (make-up)

    # -- the lifecycle, persisted ---------------------------------------------------------

    def test_the_lifecycle_survives_reopening_the_store(self, store: SqlTicketStore, ticket_store_url: str) -> None:
        created = store.create_ticket(complaint(), AGENT, T0, ZIBO)
        machine, _ = TicketMachine.open(
            ZIBO, WorkCalendar(), ticket_id=created.number, kind=Kind.COMPLAINT, caller=created.ticket.caller,
            summary=created.ticket.summary, now=T0, by=AGENT.name,
        )  # fmt: skip
        steps = happy_path()
        for event, actor, at in steps[:2]:
            store.apply(created.number, event, actor, at)
            machine.handle(event, at)
        store.close()
        reopened = SqlTicketStore(ticket_store_url, policies=POLICIES.values())
        try:
            loaded = reopened.get_ticket(created.number)
            assert loaded is not None and loaded.ticket == machine.ticket and loaded.version == 3
            for event, actor, at in steps[2:]:
                applied = reopened.apply(created.number, event, actor, at)
                expected = machine.handle(event, at)
                assert list(applied.commands) == expected
            final = reopened.get_ticket(created.number)
            assert final is not None and final.ticket == machine.ticket
            assert final.ticket.state == State.REPLIED and final.ticket.extensions == 1
            rows = reopened.timeline(created.number)
            assert [r.seq for r in rows] == list(range(1, len(machine.ticket.timeline) + 1))
            assert tuple(r.entry() for r in rows) == machine.ticket.timeline
        finally:
            reopened.close()

    def test_a_store_without_the_tickets_policy_says_so(self, store: SqlTicketStore, ticket_store_url: str) -> None:
        created = store.create_ticket(complaint(), AGENT, T0, ZIBO)
        bare = SqlTicketStore(ticket_store_url)
        try:
            assert bare.ticket_status(created.number) == "accepted"  # reading needs no policy
            with pytest.raises(ConfigError, match="zibo"):
                bare.apply(created.number, m.Dispatch(HOTLINE.name, LEAD), HOTLINE, T0)
        finally:
            bare.close()

    @pytest.mark.parametrize(
        ("steps", "status"),
        [
            (0, TicketStatus.ACCEPTED),
            (1, TicketStatus.DISPATCHED),
            (2, TicketStatus.HANDLING),
            (3, TicketStatus.HANDLING),  # extension asked for, not yet granted
            (4, TicketStatus.EXTENDED),
            (5, TicketStatus.REPLIED),
        ],
    )
    def test_ticket_status_along_the_path(self, store: SqlTicketStore, steps: int, status: TicketStatus) -> None:
        number = store.create_ticket(complaint(), AGENT, T0, ZIBO).number
        for event, actor, at in happy_path()[:steps]:
            store.apply(number, event, actor, at)
        assert store.ticket_status(number) == status
        assert status.value in ("accepted", "dispatched", "handling", "extended", "replied")

    def test_ticket_status_survey_closed_follow_up_and_terminated(self, store: SqlTicketStore) -> None:
        number = store.create_ticket(complaint(), AGENT, T0, ZIBO).number
        for event, actor, at in happy_path():
            store.apply(number, event, actor, at)
        store.link_call(number, CallId("survey-call"), "survey", now=sh("2025-10-13 10:00"))
        assert store.ticket_status(number) == "survey"
        callback = m.Callback("回访员", Satisfaction.SATISFIED, Satisfaction.SATISFIED)
        store.apply(number, callback, AGENT, sh("2025-10-13 10:05"))
        assert store.ticket_status(number) == "closed"

        follow = store.create_ticket(complaint(call_id=None), AGENT, T0, ZIBO).number
        for event, actor, at in happy_path()[:2]:
            store.apply(follow, event, actor, at)
        store.apply(follow, m.CommitFollowUp(LEAD, date(2025, 10, 31), "需等待检测结果"), UNIT, sh("2025-10-10 09:00"))
        assert store.ticket_status(follow) == "extended"

        stopped = store.create_ticket(complaint(call_id=None), AGENT, T0, ZIBO).number
        for event, actor, at in happy_path()[:2]:
            store.apply(stopped, event, actor, at)
        ground = m.TerminationGround.INFORMATION_REFUSED
        store.apply(stopped, m.RequestTermination(LEAD, ground, "来电人拒绝提供地址"), UNIT, sh("2025-10-10 09:00"))
        assert store.ticket_status(stopped) == "handling"
        store.apply(stopped, m.ApproveTermination(HOTLINE.name, "同意终止"), HOTLINE, sh("2025-10-10 10:00"))
        assert store.ticket_status(stopped) == "terminated"
        assert store.ticket_status("25093099999") is None

    def test_an_illegal_event_changes_nothing(self, store: SqlTicketStore) -> None:
        created = store.create_ticket(complaint(), AGENT, T0, ZIBO)
        with pytest.raises(IllegalTransition, match="accepted"):
            store.apply(created.number, m.Acknowledge(LEAD), UNIT, T0)
        with pytest.raises(InvalidRequest):  # a rule broken: the time runs backwards
            store.apply(created.number, m.Dispatch(HOTLINE.name, LEAD), HOTLINE, T0 - timedelta(hours=1))
        assert store.get_ticket(created.number) == dataclasses.replace(created, commands=())
        with pytest.raises(NoSuchTicket):
            store.apply("25093099999", m.Dispatch(HOTLINE.name, LEAD), HOTLINE, T0)

    # -- optimistic concurrency -----------------------------------------------------------

    def test_a_stale_version_is_a_clear_conflict(self, store: SqlTicketStore) -> None:
        created = store.create_ticket(complaint(), AGENT, T0, ZIBO)
        seen = created.version
        store.apply(created.number, m.Dispatch(HOTLINE.name, LEAD), HOTLINE, T0, expected_version=seen)
        with pytest.raises(StaleTicket, match=created.number) as caught:
            store.apply(created.number, m.Supervise(HOTLINE.name, "群众关注"), HOTLINE, T0, expected_version=seen)
        assert isinstance(caught.value, Conflict) and caught.value.error_id == "stale-ticket"
        after = store.get_ticket(created.number)
        assert after is not None and after.version == seen + 1 and after.ticket.supervision == ()

    def test_of_two_concurrent_applies_only_one_wins(self, store: SqlTicketStore, ticket_store_url: str) -> None:
        number = store.create_ticket(complaint(), AGENT, T0, ZIBO).number
        other = SqlTicketStore(ticket_store_url, policies=POLICIES.values())
        barrier = threading.Barrier(2)
        outcomes: list[object] = []

        def dispatch(target: SqlTicketStore, unit: str) -> None:
            barrier.wait()
            try:
                outcomes.append(target.apply(number, m.Dispatch(HOTLINE.name, unit), HOTLINE, T0))
            except Conflict as error:  # StaleTicket, or IllegalTransition once the winner committed
                outcomes.append(error)

        threads = [threading.Thread(target=dispatch, args=a) for a in ((store, LEAD), (other, HELPER))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        other.close()
        winners = [o for o in outcomes if isinstance(o, StoredTicket)]
        assert len(outcomes) == 2 and len(winners) == 1
        final = store.get_ticket(number)
        assert final is not None and final.version == 2
        assert final.ticket.lead_unit == winners[0].ticket.lead_unit
        assert [r.action for r in store.timeline(number)] == ["Open", "Dispatch"]

    # -- the timeline is append-only ------------------------------------------------------

    def test_earlier_timeline_rows_never_change(self, store: SqlTicketStore, ticket_store_url: str) -> None:
        number = store.create_ticket(complaint(), AGENT, T0, ZIBO).number
        store.apply(number, m.Dispatch(HOTLINE.name, LEAD), HOTLINE, T0)
        before = event_rows(ticket_store_url)
        for event, actor, at in happy_path()[1:]:
            store.apply(number, event, actor, at)
        after = event_rows(ticket_store_url)
        assert after[: len(before)] == before and len(after) > len(before)
        rows = store.timeline(number)
        with pytest.raises(dataclasses.FrozenInstanceError):
            rows[0].reason = "改写"  # type: ignore[misc]
        # Recordings are purged by their retention (RecordingCatalogue.mark_purged marks a
        # recording's row, never the timeline, whose rows the database itself refuses to change).
        recordings = {name for name in dir(RecordingCatalogue) if not name.startswith("_")}
        public = {name for name in dir(store) if not name.startswith("_")} - recordings
        assert not {name for name in public if re.search(r"delete|remove|rewrite|edit|update|purge", name)}

    @pytest.mark.parametrize(
        "statement",
        ["UPDATE ticket_events SET reason = '改写' WHERE seq = 1", "DELETE FROM ticket_events WHERE seq = 1"],
    )
    def test_the_database_refuses_to_rewrite_the_timeline(
        self, store: SqlTicketStore, ticket_store_url: str, statement: str
    ) -> None:
        number = store.create_ticket(complaint(), AGENT, T0, ZIBO).number
        before = event_rows(ticket_store_url)
        engine = raw_engine(ticket_store_url)
        try:
            with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(sqlalchemy.text(statement))
        finally:
            engine.dispose()
        assert event_rows(ticket_store_url) == before
        assert len(store.timeline(number)) == 1

    # -- clocks and the due scan ----------------------------------------------------------

    def test_clocks_and_tickets_due(self, store: SqlTicketStore) -> None:
        number = store.create_ticket(complaint(), AGENT, T0, ZIBO).number
        dispatched = store.apply(number, m.Dispatch(HOTLINE.name, LEAD), HOTLINE, sh("2025-09-30 11:00"))
        assert dispatched.due_at == sh("2025-10-14 23:59:59.999999")
        assert dispatched.yellow_at == sh("2025-10-13 23:59:59.999999")
        assert dispatched.red_at == sh("2025-10-15 23:59:59.999999")
        assert store.tickets_due(sh("2025-10-13 23:59:59")) == []
        yellow_time = sh("2025-10-14 08:00")
        assert store.tickets_due(yellow_time) == [number]
        ticked = store.apply(number, m.Tick(), SYSTEM, yellow_time)
        assert ticked.ticket.light == Light.YELLOW and ticked.version == 3
        assert store.timeline(number)[-1].actor_role == "system"
        assert store.tickets_due(yellow_time) == []
        again = store.apply(number, m.Tick(), SYSTEM, yellow_time)  # nothing due: no new version
        assert again.version == 3
        assert store.tickets_due(sh("2025-10-16 00:00")) == [number]

    # -- caller history and links ---------------------------------------------------------

    def test_tickets_for_caller(self, store: SqlTicketStore) -> None:
        a = store.create_ticket(complaint(call_id=None), AGENT, T0, ZIBO)
        b = store.create_ticket(complaint(call_id=None, kind=Kind.HELP), AGENT, T0 + timedelta(days=2), ZIBO)
        store.create_ticket(complaint(call_id=None, caller="13900000000"), AGENT, T0, ZIBO)
        found = store.tickets_for_caller("13800138000", T0)
        assert [t.number for t in found] == [b.number, a.number]
        assert (found[0].kind, found[0].status, found[0].stage) == ("help", TicketStatus.ACCEPTED, "accepted")
        assert found[1].content == a.ticket.summary and found[1].created_at == T0
        assert [t.number for t in store.tickets_for_caller("13800138000", T0 + timedelta(days=1))] == [b.number]
        assert store.tickets_for_caller("10000", T0) == []

    def test_call_and_ticket_links(self, store: SqlTicketStore) -> None:
        a = store.create_ticket(complaint(), AGENT, T0, ZIBO).number
        b = store.create_ticket(complaint(call_id=None), AGENT, T0, ZIBO).number
        store.link_call(a, CallId("cb-1"), "callback", now=T0 + timedelta(hours=1))
        store.link_call(a, CallId("cb-1"), "survey", now=T0 + timedelta(hours=2))  # same call again: role changes
        assert [(c.call_id, c.role) for c in store.ticket_calls(a)] == [
            ("20250930T020000-aaaa0001", "intake"),
            ("cb-1", "survey"),
        ]
        with pytest.raises(NotFound):
            store.link_call("25093099999", CallId("x"), "callback")
        with pytest.raises(InvalidRequest):
            store.link_call(a, CallId("x"), "Not A Role")
        store.link_tickets(b, a, "同一来电人就同一事项再次反映", "repeat", now=T0)
        store.link_tickets(b, a, "再次记录", "repeat", now=T0)  # idempotent
        [from_b] = store.linked_tickets(b)
        [from_a] = store.linked_tickets(a)
        assert (from_b.other, from_b.relation, from_b.outgoing, from_b.reason) == (
            a,
            "repeat",
            True,
            "同一来电人就同一事项再次反映",
        )
        assert (from_a.other, from_a.outgoing) == (b, False)
        with pytest.raises(InvalidRequest):
            store.link_tickets(a, a, "自己")
        with pytest.raises(InvalidRequest):
            store.link_tickets(a, b, "理由", "sibling")
        with pytest.raises(NoSuchTicket):
            store.link_tickets(a, "25093099999", "理由")

    # -- call drafts ----------------------------------------------------------------------

    def test_call_drafts_upsert(self, store: SqlTicketStore) -> None:
        call = CallId("20250930T020000-aaaa0001")
        assert store.get_call_draft(call) is None
        store.save_call_draft(call, "喂你好", {"kind": "complaint", "place": None}, "vosk")
        first = store.get_call_draft(call)
        assert first is not None
        assert (first["call_id"], first["transcript"], first["draft"], first["engine"]) == (
            call, "喂你好", {"kind": "complaint", "place": None}, "vosk",
        )  # fmt: skip
        assert datetime.fromisoformat(first["updated_at"]).tzinfo is not None
        store.save_call_draft(call, "喂你好，我要投诉噪音", {"kind": "complaint", "urgency": "normal"}, "whisper")
        second = store.get_call_draft(call)
        assert second is not None and second["transcript"] == "喂你好，我要投诉噪音"
        assert second["draft"] == {"kind": "complaint", "urgency": "normal"} and second["engine"] == "whisper"
        with pytest.raises(InvalidRequest):
            store.save_call_draft(call, "x", {"when": object()}, "vosk")
        assert store.get_call_draft(call) == second


class TestPostgresVersionCheck:
    """SQLite takes the write lock before reading, so nobody can change a row between an apply's
    read and its write; on PostgreSQL someone can, and the version check must catch it."""

    @pytest.fixture
    def database_url(self, postgres_server: PostgresServer) -> Iterator[str]:
        with postgres_server.fresh_database() as url:
            yield url

    def test_the_version_check_catches_a_change_made_between_read_and_write(
        self, database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        ticket_store_url = database_url
        store = SqlTicketStore(database_url, policies=POLICIES.values())
        number = store.create_ticket(complaint(), AGENT, T0, ZIBO).number
        real_load = SqlTicketStore._load

        def load_then_someone_else_writes(self: SqlTicketStore, conn: Any, wanted: str) -> StoredTicket:
            loaded = real_load(self, conn, wanted)
            engine = raw_engine(ticket_store_url)
            with engine.begin() as other:
                other.execute(sqlalchemy.update(schema.tickets).values(version=schema.tickets.c.version + 1))
            engine.dispose()
            monkeypatch.setattr(SqlTicketStore, "_load", real_load)
            return loaded

        monkeypatch.setattr(SqlTicketStore, "_load", load_then_someone_else_writes)
        with pytest.raises(StaleTicket):
            store.apply(number, m.Dispatch(HOTLINE.name, LEAD), HOTLINE, T0)
        assert store.ticket_status(number) == "accepted"
        assert len(store.timeline(number)) == 1
        store.close()
