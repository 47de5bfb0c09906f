"""Ticket statistics: how each unit (承办单位) handles its 工单, the hot topics of the week, and
the tickets of a period as CSV. The queries are a StorePart of SqlTicketStore; the figures are
computed from their rows by the pure functions below.

Sources. The centres score units on 按时办结率, 服务过程满意率 and 办理结果满意率 (001 第二十条;
003 五: 承办数、反馈率、办结率和群众满意率; RULES.md "People and data"); a late return counts as an
overdue case (001 第十一条(六): 超期回退的视为超期办理件); callers rate process and result (001
第十一条(八)); yellow/red lights and 催办 (001 第十二条); 督办 (001 第十五条). The seeds name these
figures but give no formula, so the definitions below are ours, written down once, here.

The period. `since` and `until` are Asia/Shanghai calendar dates, both included: the instants
[since 00:00, until + 1 day 00:00) Beijing time, at most MAX_DAYS days. Per-event figures count
the ticket_events rows whose `at` lies in the period.

The unit of an event is the lead unit (主办单位) at the time: the `lead` of the ticket's latest
转办 row (Dispatch, Redispatch, ReassignUnits) at or before it. Events of a ticket never
dispatched belong to no unit and are not counted. Per unit:
- received: 转办 rows naming it as lead (a ticket sent to it twice counts twice).
- replied: its 反馈 rows (Reply; a reply after 重办 counts again). replied_on_time: those the
  lifecycle recorded as not late, i.e. made at or before the deadline in force at the time of the
  reply (extensions and 续报 move it, 重办 sets a new one); replied_late: the others.
- late_returns: 回退 requests made after the return window (RequestReturn, late).
- returned: approved returns (ApproveReturn); extended: approved extensions (ApproveExtension);
  follow_ups: 续报 commitments (CommitFollowUp); redone: 重办 (RejectReply, Redo: stage redo).
- reminders: 催办 sent (stage remind: the red light's reminder, an emergency's late first report).
- supervisions: 督办 raised (stage supervise, every reason, manual ones each time).
- process / result: the callback (回访) ratings, by value: 1 满意, 2 基本满意, 3 不满意.
- overdue_now: tickets it owes a reply now (dispatched, handling, extension requested, 续报) whose
  deadline has passed; a snapshot at `now`, whatever the period. overdue_open: those of them
  whose deadline fell in the period.
- due (应办结) = replied + late_returns + overdue_open: every case is counted once, in the period
  it was settled (reply, late return) or, while unsettled, in the period its deadline fell in.
- on_time_rate (按时办结率) = replied_on_time / due.
- process_rate, result_rate (满意率) = (满意 + 基本满意) / rated, each of its own ratings.
A rate with a zero denominator is None (no figure), never 0 or 100 %.

Hot topics: the tickets created (受理) in the current window against the window just before it,
of the same length: this week (Monday 00:00 Beijing time to now, against last Monday to the same
moment last week) or the last N days (today and the N-1 days before, to now). Counted by kind,
by place and by area. A place is normalised (NFKC, whitespace and punctuation removed); its area
is the district (…区/…县 but not 小区, 社区, …, after an optional …省/…市 prefix), else the city
(not the 市 of 市场). An empty place counts for no place.

Queries: SQL aggregates grouped by unit, action and the few facts read out of the event's data
(late, ratings: JSON [key, value] pairs read with json_extract on SQLite and
json_extract_path_text on PostgreSQL, the key checked). ticket_events has no index on `at`: a
period scans the table.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import JSON, ColumnElement, and_, case, cast, func, or_, select

from hotline.core.errors import InvalidRequest
from hotline.tickets import schema
from hotline.tickets.codec import ticket_from_json
from hotline.tickets.csvexport import ExportRow, percent, render_csv, render_tickets_csv
from hotline.tickets.export import display_width
from hotline.tickets.mixin import StorePart
from hotline.tickets.model import Kind, Satisfaction, State
from hotline.tickets.workdays import SHANGHAI

MAX_DAYS = 366
DISPATCH_ACTIONS = ("Dispatch", "Redispatch", "ReassignUnits")
_ACTIONS = (
    *DISPATCH_ACTIONS,
    "Reply",
    "RequestReturn",
    "ApproveReturn",
    "ApproveExtension",
    "CommitFollowUp",
    "Callback",
)
_STAGES = ("redo", "remind", "supervise")
OWING = (State.DISPATCHED, State.HANDLING, State.EXTENSION_REQUESTED, State.FOLLOW_UP)
GOOD = (Satisfaction.SATISFIED, Satisfaction.FAIRLY_SATISFIED)

_T = schema.tickets
_E = schema.ticket_events


# ---------------------------------------------------------------- periods


@dataclasses.dataclass(frozen=True, slots=True)
class Period:
    """Asia/Shanghai dates, both included, and the instants they cover: [start, end)."""

    since: date
    until: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.since, time(), SHANGHAI)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.until + timedelta(days=1), time(), SHANGHAI)


def period(since: date, until: date) -> Period:
    """A checked period: InvalidRequest if until is before since or it spans over MAX_DAYS days."""
    if until < since:
        raise InvalidRequest(f"结束日期 until={until.isoformat()} 早于开始日期 since={since.isoformat()}")
    days = (until - since).days + 1
    if days > MAX_DAYS:
        raise InvalidRequest(f"统计区间最长 {MAX_DAYS} 天（since={since} 至 until={until} 共 {days} 天）")
    return Period(since, until)


def parse_date(text: str, name: str) -> date:
    """A YYYY-MM-DD date; InvalidRequest naming the parameter otherwise."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(f"{name} 不是有效日期（应为 YYYY-MM-DD）：{text!r}") from None


def local_day(now: datetime) -> date:
    return now.astimezone(SHANGHAI).date()


def _local_iso(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).isoformat()


# ---------------------------------------------------------------- per-unit figures


@dataclasses.dataclass(frozen=True, slots=True)
class EventCount:
    """One row of the grouped event query: n events of `action` for `unit` with these facts."""

    unit: str
    action: str
    stage: str
    late: str | None
    process: str | None
    result: str | None
    n: int


@dataclasses.dataclass(frozen=True, slots=True)
class OverdueCount:
    unit: str
    overdue_now: int
    overdue_open: int  # of them, the ones whose deadline fell in the period


@dataclasses.dataclass(slots=True)
class UnitFigures:
    """A unit's figures over a period (the module header defines each)."""

    unit: str
    received: int = 0
    replied: int = 0
    replied_on_time: int = 0
    replied_late: int = 0
    late_returns: int = 0
    overdue_now: int = 0
    overdue_open: int = 0
    returned: int = 0
    extended: int = 0
    follow_ups: int = 0
    redone: int = 0
    reminders: int = 0
    supervisions: int = 0
    process: dict[int, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(map(int, Satisfaction), 0))
    result: dict[int, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(map(int, Satisfaction), 0))

    @property
    def due(self) -> int:
        return self.replied + self.late_returns + self.overdue_open

    @property
    def on_time_rate(self) -> float | None:
        return rate(self.replied_on_time, self.due)

    @property
    def process_rate(self) -> float | None:
        return satisfaction_rate(self.process)

    @property
    def result_rate(self) -> float | None:
        return satisfaction_rate(self.result)

    def add(self, other: UnitFigures) -> None:
        """Adds other's counts to these (the total row)."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, int):
                setattr(self, field.name, value + getattr(other, field.name))
            elif isinstance(value, dict):
                for key, n in getattr(other, field.name).items():
                    value[key] += n

    def to_dict(self) -> dict[str, Any]:
        names = {int(s): s.name.lower() for s in Satisfaction}
        data: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("process", "result")
        }
        data["due"] = self.due
        data["on_time_rate"] = self.on_time_rate
        data["process"] = {names[k]: n for k, n in self.process.items()}
        data["result"] = {names[k]: n for k, n in self.result.items()}
        data["process_rate"] = self.process_rate
        data["result_rate"] = self.result_rate
        return data


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


def satisfaction_rate(ratings: dict[int, int]) -> float | None:
    """(满意 + 基本满意) / rated."""
    return rate(sum(ratings[int(s)] for s in GOOD), sum(ratings.values()))


def unit_figures(events: Iterable[EventCount], overdue: Iterable[OverdueCount]) -> list[UnitFigures]:
    """Each unit's figures from the grouped query rows, ordered by unit name."""
    units: dict[str, UnitFigures] = {}

    def of(unit: str) -> UnitFigures:
        return units.setdefault(unit, UnitFigures(unit))

    for row in events:
        f = of(row.unit)
        if row.action in DISPATCH_ACTIONS:
            f.received += row.n
        elif row.action == "Reply":
            f.replied += row.n
            if row.late == "True":
                f.replied_late += row.n
            else:
                f.replied_on_time += row.n
        elif row.action == "RequestReturn":
            f.late_returns += row.n if row.late == "True" else 0
        elif row.action == "ApproveReturn":
            f.returned += row.n
        elif row.action == "ApproveExtension":
            f.extended += row.n
        elif row.action == "CommitFollowUp":
            f.follow_ups += row.n
        elif row.action == "Callback":
            if row.process is not None:
                f.process[int(row.process)] += row.n
            if row.result is not None:
                f.result[int(row.result)] += row.n
        if row.stage == "redo":
            f.redone += row.n
        elif row.stage == "remind":
            f.reminders += row.n
        elif row.stage == "supervise":
            f.supervisions += row.n
    for count in overdue:
        f = of(count.unit)
        f.overdue_now += count.overdue_now
        f.overdue_open += count.overdue_open
    return [units[name] for name in sorted(units)]


@dataclasses.dataclass(frozen=True, slots=True)
class UnitReport:
    period: Period
    now: datetime
    units: list[UnitFigures]

    @property
    def total(self) -> UnitFigures:
        total = UnitFigures("合计")
        for figures in self.units:
            total.add(figures)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.period.since.isoformat(),
            "until": self.period.until.isoformat(),
            "now": _local_iso(self.now),
            "units": [f.to_dict() for f in self.units],
            "total": self.total.to_dict(),
        }


UNITS_HEADER = (
    "单位", "转办数", "回复数", "按时回复数", "超期回复数", "超期回退数", "当前超期数", "应办结数", "按时办结率",
    "回退数", "延期数", "续报数", "重办数", "催办数", "督办数",
    "过程满意", "过程基本满意", "过程不满意", "服务过程满意率",
    "结果满意", "结果基本满意", "结果不满意", "办理结果满意率",
)  # fmt: skip


def units_csv(report: UnitReport) -> bytes:
    """The report as CSV (csvexport's rules), one unit a row and the total last."""
    rows = []
    for f in [*report.units, report.total]:
        counts = [f.received, f.replied, f.replied_on_time, f.replied_late, f.late_returns, f.overdue_now, f.due]
        rows.append(
            [
                f.unit,
                *map(str, counts),
                percent(f.on_time_rate),
                *map(str, [f.returned, f.extended, f.follow_ups, f.redone, f.reminders, f.supervisions]),
                *(str(f.process[int(s)]) for s in Satisfaction),
                percent(f.process_rate),
                *(str(f.result[int(s)]) for s in Satisfaction),
                percent(f.result_rate),
            ]
        )
    return render_csv(UNITS_HEADER, rows)


# ---------------------------------------------------------------- hot topics

_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)
# A district is a short name ending in 区 or 县, but not a 小区 (housing estate), 社区, 园区, 景区,
# 校区, ... that addresses are full of; a city's 市 is not the 市 of 市场 (a market).
_AREA = re.compile(
    r"^(?:[^省市区县]{2,6}省)?(?P<city>[^省市区县]{2,4}市(?!场))?"
    r"(?P<district>[^省市区县]{1,5}?(?<![小社园景校营厂矿商住街])(?:区|县))?"
)


def normalise_place(text: str) -> str:
    """Full-width to half-width, whitespace and punctuation removed: the grouping key of a place."""
    return _NOISE.sub("", unicodedata.normalize("NFKC", text))


def area_of(place: str) -> str | None:
    """The district (…区, …县) of a normalised place, else its city (…市), else None."""
    match = _AREA.match(place)
    if match is None:
        return None
    return match.group("district") or match.group("city")


@dataclasses.dataclass(frozen=True, slots=True)
class Windows:
    """The current window [start, end) and the one before it [previous_start, previous_end)."""

    start: datetime
    end: datetime
    previous_start: datetime
    previous_end: datetime


def hot_windows(now: datetime, days: int | None = None) -> Windows:
    """This week (days None: Monday 00:00 Beijing time to now) or the last `days` days (today
    and the days-1 before it, to now), and the same stretch one week / `days` days earlier."""
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise InvalidRequest(f"days 须在 1 到 {MAX_DAYS} 之间，收到 {days}")
    today = local_day(now)
    if days is None:
        first, span = today - timedelta(days=today.weekday()), timedelta(days=7)
    else:
        first, span = today - timedelta(days=days - 1), timedelta(days=days)
    start = datetime.combine(first, time(), SHANGHAI)
    return Windows(start, now, start - span, now - span)


@dataclasses.dataclass(frozen=True, slots=True)
class Topic:
    key: str
    name: str
    count: int
    previous: int

    @property
    def change(self) -> int:
        return self.count - self.previous

    def to_dict(self) -> dict[str, Any]:
        pct = None if self.previous == 0 else round(self.change / self.previous * 100, 1)
        return {
            "key": self.key,
            "name": self.name,
            "count": self.count,
            "previous": self.previous,
            "change": self.change,
            "change_pct": pct,
        }


def topics(counts: Iterable[tuple[str, str, int, int]], limit: int) -> list[Topic]:
    """(key, name, now, before) merged by key; those counted now, most first (then by key)."""
    now: Counter[str] = Counter()
    before: Counter[str] = Counter()
    names: dict[str, str] = {}
    for key, name, current, previous in counts:
        now[key] += current
        before[key] += previous
        names.setdefault(key, name)
    ranked = sorted((key for key in now if now[key] > 0), key=lambda key: (-now[key], key))
    return [Topic(key, names[key], now[key], before[key]) for key in ranked[:limit]]


@dataclasses.dataclass(frozen=True, slots=True)
class HotTopics:
    windows: Windows
    kinds: list[Topic]
    places: list[Topic]
    areas: list[Topic]

    def to_dict(self) -> dict[str, Any]:
        w = self.windows
        return {
            "since": _local_iso(w.start),
            "until": _local_iso(w.end),
            "previous_since": _local_iso(w.previous_start),
            "previous_until": _local_iso(w.previous_end),
            "kinds": [t.to_dict() for t in self.kinds],
            "places": [t.to_dict() for t in self.places],
            "areas": [t.to_dict() for t in self.areas],
        }


def hot_topics_of(
    windows: Windows, kinds: Iterable[tuple[str, int, int]], places: Iterable[tuple[str, int, int]], limit: int
) -> HotTopics:
    """Hot topics from (kind, now, before) and (raw place, now, before) counts."""
    place_rows = [(normalise_place(raw), now, before) for raw, now, before in places]
    place_rows = [row for row in place_rows if row[0]]
    areas = [(area, area, now, before) for place, now, before in place_rows if (area := area_of(place))]
    return HotTopics(
        windows,
        kinds=topics(((kind, Kind(kind).label, now, before) for kind, now, before in kinds), limit),
        places=topics(((place, place, now, before) for place, now, before in place_rows), limit),
        areas=topics(areas, limit),
    )


# ---------------------------------------------------------------- the queries


@dataclasses.dataclass(frozen=True, slots=True)
class CsvFile:
    """An export: the file's bytes and the ticket numbers in it (for the personal-data audit)."""

    numbers: tuple[str, ...]
    body: bytes


class UnitStatistics(StorePart):
    """Mixed into SqlTicketStore, which provides the connections (`_read`) and the backend."""

    def unit_report(self, since: date, until: date, now: datetime) -> UnitReport:
        """Every unit's figures over the Asia/Shanghai dates since..until (both included)."""
        _check_aware(now)
        p = period(since, until)
        with self._read("unit statistics") as conn:
            events = [EventCount(*row) for row in conn.execute(self._event_counts(p)).all()]
            overdue = [OverdueCount(*row) for row in conn.execute(_overdue_counts(p, now)).all()]
        return UnitReport(p, now, unit_figures(events, overdue))

    def hot_topics(self, now: datetime, days: int | None = None, limit: int = 10) -> HotTopics:
        """The `limit` most frequent kinds, places and areas of tickets created this week (days
        None) or in the last `days` days, with the counts of the window before."""
        _check_aware(now)
        w = hot_windows(now, days)
        current = and_(_T.c.created_at >= w.start, _T.c.created_at < w.end)
        previous = and_(_T.c.created_at >= w.previous_start, _T.c.created_at < w.previous_end)
        between = or_(current, previous)

        def grouped(column: Any) -> Any:
            return (
                select(column, _count_if(current), _count_if(previous)).where(between).group_by(column).order_by(column)
            )

        with self._read("hot topics") as conn:
            kinds = [(str(k), int(a), int(b)) for k, a, b in conn.execute(grouped(_T.c.kind)).all()]
            places = [(str(p), int(a), int(b)) for p, a, b in conn.execute(grouped(_T.c.place)).all()]
        return hot_topics_of(w, kinds, places, limit)

    def export_rows(self, since: date, until: date) -> list[ExportRow]:
        """The tickets created in the period, oldest first, with their figures."""
        p = period(since, until)
        stmt = (
            select(
                _T.c.number,
                _T.c.created_at,
                _T.c.kind,
                _T.c.caller,
                _T.c.place,
                _T.c.content,
                _T.c.lead_unit,
                _T.c.stage,
                _T.c.lifecycle,
            )
            .where(_T.c.created_at >= p.start, _T.c.created_at < p.end)
            .order_by(_T.c.created_at, _T.c.number)
        )
        with self._read("ticket export") as conn:
            rows = conn.execute(stmt).all()
        out = []
        for r in rows:
            t = ticket_from_json(r.lifecycle, ())
            on_time = None
            if t.replied_at is not None:
                on_time = t.deadline is None or t.replied_at <= t.deadline
            out.append(
                ExportRow(
                    number=r.number,
                    created_at=r.created_at,
                    kind=r.kind,
                    caller=r.caller,
                    place=r.place,
                    content=r.content,
                    lead_unit=r.lead_unit,
                    stage=r.stage,
                    deadline=t.deadline,
                    replied_at=t.replied_at,
                    on_time=on_time,
                    process=None if t.process_rating is None else int(t.process_rating),
                    result=None if t.result_rating is None else int(t.result_rating),
                )
            )
        return out

    def tickets_csv(self, since: date, until: date, *, for_units: bool, unmasked: bool = False) -> CsvFile:
        """export_rows as a CSV file (csvexport.py): the hotline's (caller masked, or whole with
        `unmasked`: the caller audits that read first, by the numbers returned) or the units'."""
        rows = self.export_rows(since, until)
        body = render_tickets_csv(rows, for_units=for_units, unmasked=unmasked)
        return CsvFile(tuple(row.number for row in rows), body)

    # -- internals --------------------------------------------------------------------------

    def _event_counts(self, p: Period) -> Any:
        d = _E.alias("d")
        lead_at = (
            select(self._pair(d.c.data, 0, "lead"))
            .where(d.c.ticket_number == _E.c.ticket_number, d.c.seq <= _E.c.seq, d.c.action.in_(DISPATCH_ACTIONS))
            .order_by(d.c.seq.desc())
            .limit(1)
            .scalar_subquery()
        )
        late = case(
            (_E.c.action == "Reply", self._pair(_E.c.data, 0, "late")),
            (_E.c.action == "RequestReturn", self._pair(_E.c.data, 1, "late")),
            else_=None,
        )
        callback = _E.c.action == "Callback"
        inner = (
            select(
                lead_at.label("unit"),
                _E.c.action,
                _E.c.stage,
                late.label("late"),
                case((callback, self._pair(_E.c.data, 0, "process")), else_=None).label("process"),
                case((callback, self._pair(_E.c.data, 1, "result")), else_=None).label("result"),
            )
            .where(_E.c.at >= p.start, _E.c.at < p.end, or_(_E.c.action.in_(_ACTIONS), _E.c.stage.in_(_STAGES)))
            .subquery()
        )
        keys = (inner.c.unit, inner.c.action, inner.c.stage, inner.c.late, inner.c.process, inner.c.result)
        return select(*keys, func.count()).where(inner.c.unit.is_not(None)).group_by(*keys)

    def _pair(self, data: Any, index: int, key: str) -> ColumnElement[Any]:
        """The value of the data's index-th [key, value] pair if its key is `key`, else NULL."""
        if self.backend == "postgresql":
            doc = cast(data, JSON)
            name, value = (func.json_extract_path_text(doc, str(index), str(i)) for i in (0, 1))
        else:
            name, value = (func.json_extract(data, f"$[{index}][{i}]") for i in (0, 1))
        return case((name == key, value), else_=None)


def _overdue_counts(p: Period, now: datetime) -> Any:
    in_period = and_(_T.c.due_at >= p.start, _T.c.due_at < min(p.end, now))
    return (
        select(_T.c.lead_unit, func.count(), _count_if(in_period))
        .where(_T.c.stage.in_([s.value for s in OWING]), _T.c.due_at < now, _T.c.lead_unit.is_not(None))
        .group_by(_T.c.lead_unit)
    )


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidRequest(f"naive datetime {now.isoformat()}: give an aware one")


# ---------------------------------------------------------------- text for the terminal


def render_units_table(report: UnitReport) -> str:
    """The report as a plain table (hotline tickets stats), aligned with Chinese text."""
    header = ["单位", "转办", "回复", "按时", "超期回复", "超期回退", "当前超期", "应办结", "按时办结率"]
    header += ["过程满意率", "结果满意率", "延期", "重办", "催办", "督办"]
    rows = [header]
    for f in [*report.units, report.total]:
        counts = (f.received, f.replied, f.replied_on_time, f.replied_late, f.late_returns, f.overdue_now, f.due)
        rates = (percent(f.on_time_rate), percent(f.process_rate), percent(f.result_rate))
        others = (f.extended, f.redone, f.reminders, f.supervisions)
        rows.append([f.unit, *map(str, counts), *(r or "-" for r in rates), *map(str, others)])
    title = f"{report.period.since.isoformat()} .. {report.period.until.isoformat()} (Asia/Shanghai)"
    return title + "\n" + _table(rows)


def render_hot_topics(hot: HotTopics) -> str:
    """The hot topics as text (hotline tickets hot)."""
    w = hot.windows
    fmt = "%Y-%m-%d %H:%M"
    lines = [
        f"{w.start.astimezone(SHANGHAI).strftime(fmt)} .. {w.end.astimezone(SHANGHAI).strftime(fmt)}, "
        f"against {w.previous_start.astimezone(SHANGHAI).strftime(fmt)} .. "
        f"{w.previous_end.astimezone(SHANGHAI).strftime(fmt)}"
    ]
    for title, items in (("类型", hot.kinds), ("地点", hot.places), ("区域", hot.areas)):
        rows = [[title, "本期", "上期", "变化"]]
        rows += [[t.name, str(t.count), str(t.previous), f"{t.change:+d}"] for t in items]
        lines += ["", _table(rows)]
    return "\n".join(lines)


def _table(rows: list[list[str]]) -> str:
    widths = [max(display_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell + " " * (width - display_width(cell)) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
