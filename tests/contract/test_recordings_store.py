"""The recordings catalogue of SqlTicketStore (hotline/tickets/recordings_meta.py): registration,
legal holds, expiry by kind, purge marks and the access audit, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from hotline.core.errors import InvalidRequest
from hotline.core.model import CallId
from hotline.tickets import schema
from hotline.tickets.model import Kind
from hotline.tickets.policy import load_policies
from hotline.tickets.recordings_meta import NoSuchRecording, Recording
from hotline.tickets.records import NewTicket, TicketActor
from hotline.tickets.store import SqlTicketStore

POLICIES = load_policies(Path(__file__).resolve().parents[2] / "config" / "policy")
NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
SHA = "ab" * 32


@pytest.fixture
def store(ticket_store_url: str) -> Iterator[SqlTicketStore]:
    opened = SqlTicketStore(ticket_store_url, policies=POLICIES.values())
    yield opened
    opened.close()


def register(
    store: SqlTicketStore, call_id: str, days_old: float, kind: str | None = None, **changes: Any
) -> Recording:
    facts: dict[str, Any] = {
        "format": "wav",
        "bytes": 1000,
        "seconds": 12.5,
        "sha256": SHA,
        "created_at": NOW - timedelta(days=days_old),
        "kind": kind,
    }
    facts.update(changes)
    return store.register_recording(CallId(call_id), f"/rec/{call_id}.wav", **facts)


def ticket(store: SqlTicketStore, kind: Kind, *calls: str) -> str:
    new = NewTicket(caller="13800138000", kind=kind, content="小区夜间施工噪音扰民", call_id=CallId(calls[0]))
    number = store.create_ticket(new, TicketActor("agent-1"), NOW - timedelta(days=400), POLICIES["zibo"]).number
    for call_id in calls[1:]:
        store.link_call(number, CallId(call_id), "callback")
    return number


def expired(store: SqlTicketStore, default: int = 180, **by_kind: int) -> list[str]:
    return [e.call_id for e in store.recordings_expired(NOW, default, by_kind)]


class TestRegistration:
    def test_round_trip(self, store: SqlTicketStore) -> None:
        made = register(store, "c1", 1, kind="complaint")
        assert made == Recording(
            CallId("c1"), "/rec/c1.wav", "wav", 1000, 12.5, SHA, NOW - timedelta(days=1), "complaint", False, None
        )
        assert store.get_recording(CallId("c1")) == made
        assert store.get_recording(CallId("nope")) is None

    def test_registering_again_updates_the_file_but_keeps_hold_kind_and_purge(self, store: SqlTicketStore) -> None:
        register(store, "c1", 1, kind="complaint")
        store.set_legal_hold("c1", "admin", "诉讼保全")
        store.mark_purged(CallId("c1"), NOW)
        again = register(store, "c1", 0, bytes=2000, sha256="cd" * 32)
        assert (again.bytes, again.sha256, again.kind, again.legal_hold, again.purged_at) == (
            2000, "cd" * 32, "complaint", True, NOW,
        )  # fmt: skip
        assert again.created_at == NOW - timedelta(days=1)  # the first registration's

    @pytest.mark.parametrize(
        "changes",
        [
            {"format": "mp3"},
            {"sha256": "xyz"},
            {"sha256": "AB" * 32},
            {"bytes": -1},
            {"created_at": datetime(2026, 1, 1)},
        ],
    )
    def test_bad_facts_are_refused(self, store: SqlTicketStore, changes: dict[str, Any]) -> None:
        with pytest.raises(InvalidRequest):
            register(store, "c1", 1, **changes)
        assert store.get_recording(CallId("c1")) is None


class TestLegalHold:
    def test_a_hold_on_a_call_and_its_release_are_logged(self, store: SqlTicketStore) -> None:
        register(store, "c1", 1)
        assert store.set_legal_hold("c1", "admin", "法院调取") == ["c1"]
        assert store.get_recording(CallId("c1")).legal_hold  # type: ignore[union-attr]
        assert store.set_legal_hold("c1", "admin", "结案", hold=False) == ["c1"]
        assert not store.get_recording(CallId("c1")).legal_hold  # type: ignore[union-attr]
        assert [(h.scope, h.hold, h.who, h.why) for h in store.hold_log("c1")] == [
            ("call", True, "admin", "法院调取"),
            ("call", False, "admin", "结案"),
        ]

    def test_a_hold_on_a_ticket_covers_its_calls_recordings(self, store: SqlTicketStore) -> None:
        for call_id in ("c1", "c2", "c3"):
            register(store, call_id, 1)
        number = ticket(store, Kind.COMPLAINT, "c1", "c2", "c-not-recorded")
        assert store.set_legal_hold(number, "sup", "信访复查") == ["c1", "c2"]
        stored = store.get_ticket(number)
        assert stored is not None and stored.legal_hold
        assert [(h.scope, h.who) for h in store.hold_log(number)] == [("ticket", "sup")]
        # The recordings' own flags are untouched: releasing the ticket restores them as they were.
        assert not store.get_recording(CallId("c1")).legal_hold  # type: ignore[union-attr]

    def test_unknown_targets_and_missing_reasons_are_refused(self, store: SqlTicketStore) -> None:
        register(store, "c1", 1)
        with pytest.raises(NoSuchRecording):
            store.set_legal_hold("nothing", "admin", "x")
        with pytest.raises(InvalidRequest):
            store.set_legal_hold("c1", "admin", "  ")
        with pytest.raises(InvalidRequest):
            store.set_legal_hold("c1", "", "x")
        assert store.hold_log("c1") == []


class TestExpiry:
    def test_by_age_kind_and_hold(self, store: SqlTicketStore) -> None:
        register(store, "young", 179)
        register(store, "old", 181)
        register(store, "old-complaint", 200, kind="complaint")  # kept 365 days
        register(store, "very-old-complaint", 366, kind="complaint")
        register(store, "old-held", 400)
        store.set_legal_hold("old-held", "admin", "诉讼")
        register(store, "old-purged", 400)
        store.mark_purged(CallId("old-purged"))
        # The ticket's kind counts: a consultation recording of a complaint's callback is kept longer.
        register(store, "old-callback", 200, kind="consultation")
        ticket(store, Kind.COMPLAINT, "intake-x", "old-callback")
        # A held ticket keeps its calls' recordings whatever their age.
        register(store, "old-held-ticket", 900)
        held = ticket(store, Kind.HELP, "old-held-ticket")
        store.set_legal_hold(held, "sup", "督办")
        assert expired(store, complaint=365) == ["very-old-complaint", "old"]
        got = {e.call_id: (e.kind, e.retention_days) for e in store.recordings_expired(NOW, 180, {"complaint": 365})}
        assert got == {"very-old-complaint": ("complaint", 365), "old": (None, 180)}
        store.set_legal_hold(held, "sup", "督办结束", hold=False)
        assert expired(store, complaint=365) == ["old-held-ticket", "very-old-complaint", "old"]

    def test_a_shorter_kind_retention_applies_and_the_longest_of_several_wins(self, store: SqlTicketStore) -> None:
        register(store, "praise", 40, kind="praise")
        register(store, "both", 40, kind="praise")
        ticket(store, Kind.REPORT, "both")
        assert expired(store, praise=30) == ["praise"]  # a report without its own retention: 180 days
        assert expired(store, praise=30, report=20) == ["both", "praise"]  # 30 days, the longer
        assert expired(store, praise=30, report=60) == ["praise"]

    def test_exactly_at_the_retention_is_expired(self, store: SqlTicketStore) -> None:
        register(store, "edge", 180)
        register(store, "just-under", 180 - 1 / 86400)
        assert expired(store) == ["edge"]

    def test_bad_arguments(self, store: SqlTicketStore) -> None:
        with pytest.raises(InvalidRequest):
            store.recordings_expired(NOW, 0)
        with pytest.raises(InvalidRequest):
            store.recordings_expired(NOW, 180, {"complaint": -1})
        with pytest.raises(InvalidRequest):
            store.recordings_expired(datetime(2026, 1, 1), 180)

    def test_mark_purged_is_idempotent(self, store: SqlTicketStore) -> None:
        register(store, "c1", 1)
        store.mark_purged(CallId("c1"), NOW)
        store.mark_purged(CallId("c1"), NOW + timedelta(days=1))
        assert store.get_recording(CallId("c1")).purged_at == NOW  # type: ignore[union-attr]
        with pytest.raises(NoSuchRecording):
            store.mark_purged(CallId("nope"))


class TestAccessAudit:
    def test_each_access_is_a_row(self, store: SqlTicketStore) -> None:
        register(store, "c1", 1)
        first = store.audit_access(CallId("c1"), "sup", "supervisor", "play", " 质检抽查 ", "10.0.0.5", NOW)
        second = store.audit_access(CallId("c1"), "admin", "admin", "download", "法院调取", at=NOW + timedelta(1))
        assert first.why == "质检抽查" and second.id > first.id
        assert store.access_log(CallId("c1")) == [first, second]
        assert [(r.who, r.role, r.action, r.why, r.client, r.at) for r in store.access_log(CallId("c1"))] == [
            ("sup", "supervisor", "play", "质检抽查", "10.0.0.5", NOW),
            ("admin", "admin", "download", "法院调取", "", NOW + timedelta(1)),
        ]
        assert store.access_log(CallId("c2")) == []

    def test_refused_accesses_leave_no_row(self, store: SqlTicketStore) -> None:
        register(store, "c1", 1)
        register(store, "gone", 1)
        store.mark_purged(CallId("gone"))
        for call_id, why, action, error in [
            ("c1", "", "play", InvalidRequest),
            ("c1", "   ", "play", InvalidRequest),
            ("c1", "x" * 501, "play", InvalidRequest),
            ("c1", "质检", "delete", InvalidRequest),
            ("nope", "质检", "play", NoSuchRecording),
            ("gone", "质检", "play", NoSuchRecording),
        ]:
            with pytest.raises(error):
                store.audit_access(CallId(call_id), "sup", "supervisor", action, why)
        assert store.access_log(CallId("c1")) == [] and store.access_log(CallId("gone")) == []

    @pytest.mark.parametrize("table", ["recording_access", "recording_holds"])
    def test_the_logs_are_append_only(self, store: SqlTicketStore, ticket_store_url: str, table: str) -> None:
        register(store, "c1", 1)
        store.audit_access(CallId("c1"), "sup", "supervisor", "play", "质检")
        store.set_legal_hold("c1", "admin", "诉讼")
        engine = sqlalchemy.create_engine(ticket_store_url, poolclass=sqlalchemy.pool.NullPool)
        t = schema.metadata.tables[table]
        try:
            for statement in (sqlalchemy.update(t).values(who="someone else"), sqlalchemy.delete(t)):
                with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"), engine.begin() as conn:
                    conn.execute(statement)
            with engine.connect() as conn:
                assert conn.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(t)).scalar_one() == 1
        finally:
            engine.dispose()
