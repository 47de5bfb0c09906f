"""Tickets and unit figures as CSV files that Excel in China opens correctly.

Rules of this module:
- UTF-8 with a byte-order mark (Excel reads a BOM-less UTF-8 file as GBK and garbles Chinese),
  RFC 4180 records: CRLF line ends, a field quoted when it holds a comma, a quote or a line
  break, quotes doubled inside.
- Formula injection (OWASP "CSV injection"): a cell starting with = + - @, a tab or a carriage
  return is prefixed with ' so that a spreadsheet shows it as text and never evaluates it.
  Caller-supplied text (content, place) goes into these files, so every cell is guarded.
- Two audiences. The hotline's file has the caller's number masked (138****8000), or whole when
  an admin asks for it (the API audits that read per ticket first, privacy.py). The units' file
  never has the caller's number, name or transcript (001 第十七条: caller information is never
  shown to the party complained about). Neither has the transcript or the caller's name.
- Times are Asia/Shanghai wall time, to the second; ratings and kinds in Chinese.
Only the standard library and the ticket model are used here.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable, Sequence
from datetime import datetime

from hotline.core.errors import InvalidRequest
from hotline.tickets.model import Kind, Satisfaction, State
from hotline.tickets.workdays import SHANGHAI

BOM = "\ufeff"
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


@dataclasses.dataclass(frozen=True, slots=True)
class ExportRow:
    """One ticket of an export, with its figures (unit_stats.UnitStatistics.export_rows)."""

    number: str
    created_at: datetime
    kind: str  # Kind value
    caller: str  # unmasked here; masked or left out when written
    place: str
    content: str
    lead_unit: str | None
    stage: str  # State value
    deadline: datetime | None  # the reply deadline in force (after extensions, 续报, 重办)
    replied_at: datetime | None  # the latest reply, None once a 重办 reopened the ticket
    on_time: bool | None  # replied at or before that deadline; None: not replied
    process: int | None  # callback ratings, 1 满意 2 基本满意 3 不满意
    result: int | None


def guard(value: str) -> str:
    """A cell as text a spreadsheet never evaluates as a formula."""
    return "'" + value if value.startswith(_DANGEROUS) else value


def mask_number(number: str) -> str:
    """13800138000 -> 138****8000 (the agent desktop's rule, hotline.agent_desktop.auth)."""
    if number.startswith("sip:") and "@" in number:
        user, _, host = number[4:].partition("@")
        return f"sip:{mask_number(user)}@{host}"
    if len(number) >= 7:
        return f"{number[:3]}****{number[-4:]}"
    return "*" * (len(number) - 2) + number[-2:] if len(number) > 2 else "**"


def render_csv(header: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    """The file's bytes: BOM, header, rows; every cell guarded."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([guard(cell) for cell in header])
    for row in rows:
        writer.writerow([guard(cell) for cell in row])
    return (BOM + out.getvalue()).encode("utf-8")


TICKET_HEADER = (
    "工单编号", "受理时间", "类型", "来电号码", "地点", "诉求内容", "主办单位", "状态",
    "办理期限", "回复时间", "按时回复", "服务过程评价", "办理结果评价",
)  # fmt: skip
_CALLER_COLUMN = TICKET_HEADER.index("来电号码")


def render_tickets_csv(rows: Iterable[ExportRow], *, for_units: bool, unmasked: bool = False) -> bytes:
    """The tickets as CSV: for the hotline (caller masked, or whole if `unmasked`) or for units
    (no caller at all; InvalidRequest with `unmasked`)."""
    if for_units and unmasked:
        raise InvalidRequest("给承办单位的导出文件不含来电号码，不能选择不打码")
    header = list(TICKET_HEADER)
    if for_units:
        del header[_CALLER_COLUMN]
    return render_csv(header, (_ticket_cells(row, for_units, unmasked) for row in rows))


def _ticket_cells(row: ExportRow, for_units: bool, unmasked: bool) -> list[str]:
    cells = [
        row.number,
        local(row.created_at),
        Kind(row.kind).label,
        row.caller if unmasked else mask_number(row.caller),
        row.place,
        row.content,
        row.lead_unit or "",
        State(row.stage).label,
        local(row.deadline),
        local(row.replied_at),
        "" if row.on_time is None else ("是" if row.on_time else "否"),
        "" if row.process is None else Satisfaction(row.process).label,
        "" if row.result is None else Satisfaction(row.result).label,
    ]
    if for_units:
        del cells[_CALLER_COLUMN]
    return cells


def local(moment: datetime | None) -> str:
    """Asia/Shanghai wall time to the second ("" for None)."""
    return "" if moment is None else moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def percent(rate: float | None) -> str:
    return "" if rate is None else f"{rate * 100:.1f}%"
