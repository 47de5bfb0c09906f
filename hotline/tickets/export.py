"""How call records look outside the store: the JSON of `hotline tickets list --json` and the
plain table of `hotline tickets list`.

Records keep UTC; people read Asia/Shanghai time, so both shapes add the local start time.
Only the standard library and hotline.core are used here.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hotline.core.model import CallRecord

LOCAL_ZONE = ZoneInfo("Asia/Shanghai")

# Widest a free-text cell (reason) may be, in terminal columns, before it is cut short with "...".
# (ASCII dots, not "…": that character is East Asian "ambiguous" width, two columns wide in many
# Chinese terminals.)
MAX_CELL_WIDTH = 40
_CUT_MARK = "..."

_COLUMNS = ("STARTED (Asia/Shanghai)", "CALL ID", "CALLER", "OUTCOME", "AGENT", "DURATION", "REASON")


def local_time(value: datetime) -> datetime:
    """A record's UTC time as people in China read it."""
    return value.astimezone(LOCAL_ZONE)


def call_record_json(record: CallRecord) -> dict[str, Any]:
    """CallRecord.to_dict() plus "started_at_local": ISO 8601 in Asia/Shanghai (+08:00)."""
    data = record.to_dict()
    data["started_at_local"] = local_time(record.started_at).isoformat(timespec="seconds")
    return data


def render_calls_table(records: Iterable[CallRecord]) -> str:
    """A plain text table, one call a line, columns aligned in a terminal even with Chinese text.

    No trailing newline (for print()); with no records it is the header line alone.
    """
    rows = [list(_COLUMNS)] + [_row(record) for record in records]
    widths = [max(display_width(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = [_join(row, widths) for row in rows]
    return "\n".join(lines)


def display_width(text: str) -> int:
    """Terminal columns `text` takes: wide (CJK) characters count 2, combining marks 0.

    East Asian "ambiguous" characters count 1, as wcwidth and most terminals do.
    """
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _row(record: CallRecord) -> list[str]:
    return [
        local_time(record.started_at).strftime("%Y-%m-%d %H:%M:%S"),
        _cell(record.call_id),
        _cell(record.caller),
        record.outcome.value,
        _cell(record.agent_id or "-"),
        _duration(record),
        _cell(record.reason or "-"),
    ]


def _duration(record: CallRecord) -> str:
    if record.ended_at is None:
        return "-"
    seconds = max(0, round((record.ended_at - record.started_at).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _cell(text: str) -> str:
    """One line, at most MAX_CELL_WIDTH columns (a newline in a reason must not break the table)."""
    flat = " ".join(text.split())
    if display_width(flat) <= MAX_CELL_WIDTH:
        return flat
    room = MAX_CELL_WIDTH - len(_CUT_MARK)
    cut: list[str] = []
    for char in flat:
        room -= display_width(char)
        if room < 0:
            break
        cut.append(char)
    return "".join(cut) + _CUT_MARK


def _join(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [cell + " " * (width - display_width(cell)) for cell, width in zip(cells, widths, strict=True)]
    return "  ".join(padded).rstrip()
