"""The statistics half of SqlTicketStore: what the call records say about the service (the
supervisor's wallboard and the Prometheus metrics).

Rules of this module:
- One aggregate query, grouped by outcome, over the calls started at or after an instant
  (`calls.started_at` is indexed): counts and sums are made in the database, never by loading
  records. What each number counts is written down once, on hotline.core.ports.CallStats.
- Durations are whole milliseconds computed in SQL, the same on both backends: PostgreSQL
  subtracts `timestamptz` values; SQLite stores UTC text (schema.py), which `julianday` reads.
  Rounding to the millisecond removes julianday's floating-point noise, so that a wait of
  exactly the service-level threshold counts as within it on both.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, extract, func, select

from hotline.core.errors import InvalidRequest
from hotline.core.model import Outcome
from hotline.core.ports import CallStats
from hotline.tickets import schema
from hotline.tickets.mixin import StorePart

_C = schema.calls.c


class CallStatistics(StorePart):
    """Mixed into SqlTicketStore, which provides the connections (`_read`) and the backend."""

    def call_stats(self, since: datetime, service_level_s: float) -> CallStats:
        """The calls started at or after `since` (aware), counted as CallStats documents;
        `service_level_s`: the threshold of answered_within_sl (positive seconds)."""
        if since.utcoffset() is None:
            raise InvalidRequest("call_stats: since is a naive datetime; use an aware one")
        if isinstance(service_level_s, bool) or not math.isfinite(service_level_s) or service_level_s <= 0:
            raise InvalidRequest(f"service_level_s must be a positive number of seconds, got {service_level_s!r}")
        threshold_ms = round(service_level_s * 1000)
        inbound = _C.related_call_id.is_(None)
        queued = and_(inbound, _C.queued_at.is_not(None))
        waited = and_(queued, _C.connected_at.is_not(None))
        handled = and_(_C.connected_at.is_not(None), _C.ended_at.is_not(None))
        wait_ms = self._ms_between(_C.queued_at, _C.connected_at)
        handle_ms = self._ms_between(_C.connected_at, _C.ended_at)
        stmt = (
            select(
                _C.outcome,
                func.count().label("n"),
                _count_if(inbound).label("inbound"),
                _count_if(queued).label("queued"),
                _count_if(and_(waited, wait_ms <= threshold_ms)).label("within"),
                _count_if(waited).label("waited"),
                _sum_if(waited, wait_ms).label("wait_ms"),
                _count_if(handled).label("handled"),
                _sum_if(handled, handle_ms).label("handle_ms"),
            )
            .where(_C.started_at >= since)
            .group_by(_C.outcome)
        )
        with self._read("call_stats") as conn:
            rows = {row.outcome: row for row in conn.execute(stmt).all()}
        answered = rows.get(Outcome.ANSWERED.value)
        in_queue = rows.get(Outcome.ABANDONED_IN_QUEUE.value)
        in_greeting = rows.get(Outcome.ABANDONED_IN_GREETING.value)
        callback = rows.get(Outcome.CALLBACK_REQUESTED.value)
        return CallStats(
            since=since,
            service_level_s=service_level_s,
            answered=_int(answered, "inbound"),
            abandoned=_int(in_queue, "inbound") + _int(in_greeting, "queued"),
            callbacks_requested=_int(callback, "inbound"),
            answered_within_sl=_int(answered, "within"),
            callbacks_answered=_int(answered, "n") - _int(answered, "inbound"),
            handled=_int(answered, "handled"),
            handle_s_total=_int(answered, "handle_ms") / 1000,
            waited=_int(answered, "waited"),
            answer_wait_s_total=_int(answered, "wait_ms") / 1000,
            by_outcome={outcome: int(row.n) for outcome, row in sorted(rows.items())},
        )

    def _ms_between(self, start: Any, end: Any) -> ColumnElement[Any]:
        """Whole milliseconds from `start` to `end` (two datetime columns), in SQL."""
        if self.backend == "postgresql":
            return func.round(extract("epoch", end - start) * 1000)
        return func.round((func.julianday(end) - func.julianday(start)) * 86_400_000)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _sum_if(condition: ColumnElement[bool], value: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


def _int(row: Any, name: str) -> int:
    return 0 if row is None else int(getattr(row, name))
