"""API part: reports for supervisors and admins (the wallboard uses them): each unit's figures
over a period, the hot topics of the week, the tickets of a period as CSV.

Rules of this module:
- Supervisors and admins only; an agent gets 403 before any parameter is looked at.
- Periods are Asia/Shanghai dates, both included (`since`, `until`, YYYY-MM-DD): by default the
  current month up to today. A bad date, until before since or a period over 366 days is 400
  invalid-request with a message saying which (the store checks the range).
- What each figure counts is defined once, in hotline/tickets/unit_stats.py's header.
- The CSV is the hotline's (caller numbers masked, 138****8000) or, with `audience=units`, the
  units' (no caller number at all); never the transcript. It is personal data: not cached, and
  every download is logged with who asked for which period. Only an admin may ask for the
  numbers unmasked (`unmasked=true`; anyone else 403), and then every ticket in the file is
  recorded in the personal-data audit (privacy.py) before the first byte is sent: no audit, no
  file (503).
- The ticket store is synchronous: called in a thread. The reports come from the store only if it
  has them (an isinstance check on ReportSource, as for recordings); else 404.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, date, datetime
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from aiohttp import web

from hotline.agent_desktop import openapi
from hotline.agent_desktop.app import CLOCK_MS, STORE
from hotline.agent_desktop.auth import ADMIN, Forbidden, principal
from hotline.agent_desktop.privacy import audit_read
from hotline.agent_desktop.responses import in_thread, json_reply
from hotline.core.errors import InvalidRequest, NotFound

logger = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
AUDIENCES = ("hotline", "units")
NO_CACHE = {"Cache-Control": "no-store, private", "X-Content-Type-Options": "nosniff"}


class ReportView(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class CsvView(Protocol):
    """An export (hotline.tickets.unit_stats.CsvFile)."""

    @property
    def numbers(self) -> tuple[str, ...]: ...
    @property
    def body(self) -> bytes: ...


@runtime_checkable
class ReportSource(Protocol):
    """What the reports need of the ticket store (hotline.tickets.unit_stats.UnitStatistics)."""

    def unit_report(self, since: date, until: date, now: datetime) -> ReportView: ...

    def hot_topics(self, now: datetime, days: int | None = None, limit: int = 10) -> ReportView: ...

    def tickets_csv(self, since: date, until: date, *, for_units: bool, unmasked: bool = False) -> CsvView: ...


REPORTS = web.AppKey["ReportSource | None"]("reports")


def _source(request: web.Request) -> ReportSource:
    principal(request).require_supervisor("reports")
    source = request.app[REPORTS]
    if source is None:
        raise NotFound("this process's ticket store keeps no report figures")
    return source


def _now(request: web.Request) -> datetime:
    return datetime.fromtimestamp(request.app[CLOCK_MS]() / 1000, UTC)


def _date(request: web.Request, name: str, default: date) -> date:
    text = request.query.get(name)
    if text is None or not text.strip():
        return default
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(f"{name} 不是有效日期（应为 YYYY-MM-DD）：{text!r}") from None


def _period(request: web.Request) -> tuple[date, date]:
    today = _now(request).astimezone(SHANGHAI).date()
    return _date(request, "since", today.replace(day=1)), _date(request, "until", today)


async def units_report(request: web.Request) -> web.Response:
    source = _source(request)
    since, until = _period(request)
    report = await in_thread(source.unit_report, since, until, _now(request))
    return json_reply(report.to_dict())


async def hot_topics(request: web.Request) -> web.Response:
    source = _source(request)
    text = request.query.get("days")
    days = None
    if text is not None and text.strip():
        try:
            days = int(text)
        except ValueError:
            raise InvalidRequest(f"days 须为整数（天数），收到 {text!r}") from None
    topics = await in_thread(source.hot_topics, _now(request), days)
    return json_reply(topics.to_dict())


async def tickets_csv(request: web.Request) -> web.Response:
    source = _source(request)
    since, until = _period(request)
    audience = request.query.get("audience", "hotline")
    if audience not in AUDIENCES:
        raise InvalidRequest(f"audience 须为 {' 或 '.join(AUDIENCES)}，收到 {audience!r}")
    unmasked = request.query.get("unmasked", "false")
    if unmasked not in ("true", "false"):
        raise InvalidRequest(f"unmasked 须为 true 或 false，收到 {unmasked!r}")
    who = principal(request)
    if unmasked == "true" and who.role != ADMIN:
        raise Forbidden(f"不打码的来电号码只有管理员可以导出；{who.username} 是 {who.role}")
    export = functools.partial(source.tickets_csv, for_units=audience == "units", unmasked=unmasked == "true")
    csv_file = await in_thread(export, since, until)
    if unmasked == "true":
        await audit_read(request, "ticket", csv_file.numbers, ("caller",))  # before the first byte
    what = f"{audience}{', unmasked' if unmasked == 'true' else ''}, {len(csv_file.numbers)} tickets"
    logger.info("ticket export %s..%s (%s) by %s (%s)", since, until, what, who.username or "anonymous", who.role)
    name = f"tickets-{audience}-{since.isoformat()}-{until.isoformat()}.csv"
    return web.Response(
        body=csv_file.body,
        headers={
            **NO_CACHE,
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


_P = openapi.API_PREFIX
_DATE = {"type": "string", "format": "date"}
_SINCE = {
    "name": "since", "in": "query", "required": False, "schema": _DATE,
    "description": "first day, Asia/Shanghai (default: the 1st of the current month)",
}  # fmt: skip
_UNTIL = {
    "name": "until", "in": "query", "required": False, "schema": _DATE,
    "description": "last day, included (default: today); at most 366 days after since",
}  # fmt: skip
_RATE = {"type": "number", "nullable": True, "description": "0..1; null when nothing to divide by"}
_RATINGS = {
    "type": "object",
    "properties": {k: {"type": "integer"} for k in ("satisfied", "fairly_satisfied", "unsatisfied")},
}
_COUNTS = (
    "received", "replied", "replied_on_time", "replied_late", "late_returns", "overdue_now", "overdue_open",
    "returned", "extended", "follow_ups", "redone", "reminders", "supervisions", "due",
)  # fmt: skip
_TOPIC = {
    "type": "object",
    "required": ["key", "name", "count", "previous", "change", "change_pct"],
    "properties": {
        "key": {"type": "string"},
        "name": {"type": "string"},
        "count": {"type": "integer"},
        "previous": {"type": "integer", "description": "in the window before, of the same length"},
        "change": {"type": "integer"},
        "change_pct": {"type": "number", "nullable": True},
    },
}

SCHEMAS: dict[str, Any] = {
    "UnitFigures": {
        "type": "object",
        "description": "definitions: hotline/tickets/unit_stats.py",
        "required": ["unit", *_COUNTS, "on_time_rate", "process", "result", "process_rate", "result_rate"],
        "properties": {
            "unit": {"type": "string"},
            **{name: {"type": "integer"} for name in _COUNTS},
            "on_time_rate": {**_RATE, "description": "按时办结率 = replied_on_time / due"},
            "process": _RATINGS,
            "result": _RATINGS,
            "process_rate": {**_RATE, "description": "服务过程满意率 = (满意 + 基本满意) / rated"},
            "result_rate": {**_RATE, "description": "办理结果满意率 = (满意 + 基本满意) / rated"},
        },
    },
    "UnitReport": {
        "type": "object",
        "required": ["since", "until", "now", "units", "total"],
        "properties": {
            "since": _DATE,
            "until": _DATE,
            "now": {"type": "string", "format": "date-time"},
            "units": {"type": "array", "items": openapi.ref("UnitFigures")},
            "total": openapi.ref("UnitFigures"),
        },
    },
    "Topic": _TOPIC,
    "HotTopics": {
        "type": "object",
        "required": ["since", "until", "previous_since", "previous_until", "kinds", "places", "areas"],
        "properties": {
            **{
                name: {"type": "string", "format": "date-time"}
                for name in ("since", "until", "previous_since", "previous_until")
            },
            **{name: {"type": "array", "items": openapi.ref("Topic")} for name in ("kinds", "places", "areas")},
        },
    },
}

PATHS: dict[str, Any] = {
    f"{_P}/reports/units": {
        "get": {
            "summary": "Each unit's figures over a period: 按时办结率, 满意率, overdue, 催办, 督办",
            "operationId": "unitsReport",
            "parameters": [_SINCE, _UNTIL],
            "responses": {
                "200": openapi.json_body(openapi.ref("UnitReport"), "the units, by name, and their total"),
                **openapi.errors(400, 404, 503),
            },
        }
    },
    f"{_P}/reports/hot-topics": {
        "get": {
            "summary": "Hot topics: the most frequent kinds, places and areas this week or in the last N days",
            "operationId": "hotTopics",
            "parameters": [
                {
                    "name": "days",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 366},
                    "description": "the last N days including today (default: this week, Monday to now)",
                }
            ],
            "responses": {
                "200": openapi.json_body(openapi.ref("HotTopics"), "the topics, most frequent first"),
                **openapi.errors(400, 404, 503),
            },
        }
    },
    f"{_P}/reports/tickets.csv": {
        "get": {
            "summary": "The tickets created in a period as CSV (UTF-8 with BOM; supervisors, admins)",
            "description": "The hotline's file has caller numbers masked (unmasked=true: admins, audited); "
            "audience=units leaves them out. "
            "Cells that a spreadsheet would evaluate (= + - @) are prefixed with '.",
            "operationId": "ticketsCsv",
            "parameters": [
                _SINCE,
                _UNTIL,
                {
                    "name": "audience",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": list(AUDIENCES), "default": "hotline"},
                },
                {
                    "name": "unmasked",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "boolean", "default": False},
                    "description": "admins only, hotline file only: whole caller numbers; each ticket's read "
                    "is recorded in the personal-data audit first",
                },
            ],
            "responses": {
                "200": {
                    "description": "the CSV file (attachment)",
                    "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
                },
                **openapi.errors(400, 404, 503),
            },
        }
    },
}
RESTRICTED: frozenset[str] = frozenset({"unitsReport", "hotTopics", "ticketsCsv"})


def add_routes(app: web.Application) -> None:
    """Adds this part's routes to the API application."""
    store = app[STORE]
    app[REPORTS] = store if isinstance(store, ReportSource) else None
    app.router.add_get(f"{_P}/reports/units", units_report)
    app.router.add_get(f"{_P}/reports/hot-topics", hot_topics)
    app.router.add_get(f"{_P}/reports/tickets.csv", tickets_csv)
