"""Contract of TicketStore.call_stats (hotline/tickets/stats.py) on a SQLite file and on
PostgreSQL (see conftest.py): hand-made records, every number checked by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hotline.core.errors import InvalidRequest
from hotline.core.model import AgentId, CallId, CallRecord, Outcome, WorkerId
from hotline.core.ports import CallStats
from hotline.tickets.store import SqlTicketStore

T0 = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
W1 = WorkerId("w1")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def record(
    call_id: str,
    outcome: Outcome,
    start_s: float,
    *,
    queued_s: float | None = None,
    connected_s: float | None = None,
    ended_s: float | None = None,
    related: str | None = None,
) -> CallRecord:
    """A call started start_s after T0; the other times in seconds after its start."""
    start = T0 + timedelta(seconds=start_s)

    def at(offset: float | None) -> datetime | None:
        return None if offset is None else start + timedelta(seconds=offset)

    return CallRecord(
        CallId(call_id), "13800138000", "12345", W1, start, outcome,
        answered_at=start, queued_at=at(queued_s), connected_at=at(connected_s), ended_at=at(ended_s),
        agent_id=AgentId("a1") if connected_s is not None else None,
        related_call_id=None if related is None else CallId(related),
    )  # fmt: skip


# Waits (connected - queued): 10 s, exactly 15 s, 15.001 s, 40 s; talks: 60, 120, 30, 90 s.
RECORDS = [
    record("ans-1", Outcome.ANSWERED, 0, queued_s=2, connected_s=12, ended_s=72),
    record("ans-2", Outcome.ANSWERED, 100, queued_s=2.5, connected_s=17.5, ended_s=137.5),
    record("ans-3", Outcome.ANSWERED, 200, queued_s=1, connected_s=16.001, ended_s=46.001),
    record("ans-4", Outcome.ANSWERED, 300, queued_s=1, connected_s=41, ended_s=131),
    record("aiq-1", Outcome.ABANDONED_IN_QUEUE, 400, queued_s=1, ended_s=30),
    record("aig-queued", Outcome.ABANDONED_IN_GREETING, 500, queued_s=1, ended_s=4),
    record("aig-before", Outcome.ABANDONED_IN_GREETING, 600, ended_s=2),  # never queued: not offered
    record("cb-req", Outcome.CALLBACK_REQUESTED, 700, queued_s=1, ended_s=50),
    # The callback of cb-req: answered (talk 45 s), no queued_at (it was never queued itself).
    record("cb-ans", Outcome.ANSWERED, 900, connected_s=20, ended_s=65, related="cb-req"),
    record("cb-fail", Outcome.CALLBACK_FAILED, 950, related="cb-req"),
    record("failed", Outcome.FAILED, 1000, queued_s=1, ended_s=5),
    record("self", Outcome.SELF_SERVED, 1100, ended_s=40),
    record("yesterday", Outcome.ANSWERED, -3600, queued_s=1, connected_s=2, ended_s=10),  # before `since`
]


@pytest.fixture
def store(ticket_store_url: str) -> Iterator[SqlTicketStore]:
    opened = SqlTicketStore(ticket_store_url)
    for r in RECORDS:
        opened.save_call(r)
    yield opened
    opened.close()


class TestCallStats:
    def test_counts_as_documented(self, store: SqlTicketStore) -> None:
        stats = store.call_stats(T0, 15.0)
        assert stats.since == T0
        assert stats.service_level_s == 15.0
        assert stats.answered == 4
        assert stats.abandoned == 2  # in queue, and in the greeting while queued
        assert stats.callbacks_requested == 1
        assert stats.offered == 7
        assert stats.answered_within_sl == 2  # 10 s and exactly 15 s; 15.001 s is not
        assert stats.callbacks_answered == 1
        assert stats.handled == 5  # the callback talked too
        assert stats.handle_s_total == pytest.approx(60 + 120 + 30 + 90 + 45)
        assert stats.waited == 4
        assert stats.answer_wait_s_total == pytest.approx(10 + 15 + 15.001 + 40)
        assert stats.by_outcome == {
            "abandoned_in_greeting": 2,
            "abandoned_in_queue": 1,
            "answered": 5,
            "callback_failed": 1,
            "callback_requested": 1,
            "failed": 1,
            "self_served": 1,
        }

    def test_ratios(self, store: SqlTicketStore) -> None:
        stats = store.call_stats(T0, 15.0)
        assert stats.answer_rate == pytest.approx(4 / 6)
        assert stats.service_level == pytest.approx(2 / 6)
        assert stats.average_handle_s == pytest.approx(345 / 5)
        assert stats.average_answer_s == pytest.approx(80.001 / 4)

    def test_the_threshold_is_to_the_millisecond(self, store: SqlTicketStore) -> None:
        assert store.call_stats(T0, 15.001).answered_within_sl == 3
        assert store.call_stats(T0, 14.999).answered_within_sl == 1
        assert store.call_stats(T0, 40).answered_within_sl == 4

    def test_since_is_inclusive_and_any_time_zone(self, store: SqlTicketStore) -> None:
        assert store.call_stats(datetime(2026, 11, 22, 8, 0, tzinfo=SHANGHAI), 15).answered == 4
        assert store.call_stats(T0 + timedelta(seconds=100), 15).answered == 3  # ans-2 started at it
        earlier = store.call_stats(T0 - timedelta(days=1), 15)
        assert (earlier.answered, earlier.answered_within_sl, earlier.by_outcome["answered"]) == (5, 3, 6)

    def test_no_calls(self, store: SqlTicketStore) -> None:
        stats = store.call_stats(T0 + timedelta(days=1), 15)
        assert stats == CallStats(since=T0 + timedelta(days=1), service_level_s=15)
        assert stats.offered == 0
        assert (stats.answer_rate, stats.service_level, stats.average_handle_s, stats.average_answer_s) == (
            None, None, None, None,
        )  # fmt: skip

    def test_a_replaced_record_counts_once(self, store: SqlTicketStore) -> None:
        store.save_call(record("aiq-1", Outcome.ANSWERED, 400, queued_s=1, connected_s=3, ended_s=30))
        stats = store.call_stats(T0, 15)
        assert (stats.answered, stats.abandoned, stats.answered_within_sl) == (5, 1, 3)

    @pytest.mark.parametrize("level", [0, -1, float("nan"), float("inf")])
    def test_refuses_a_bad_threshold(self, store: SqlTicketStore, level: float) -> None:
        with pytest.raises(InvalidRequest):
            store.call_stats(T0, level)

    def test_refuses_a_naive_since(self, store: SqlTicketStore) -> None:
        with pytest.raises(InvalidRequest):
            store.call_stats(datetime(2026, 11, 22), 15)
