"""The JSON and table shapes of `hotline tickets list`."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime, timedelta

from hotline.core.model import AgentId, CallId, CallRecord, Outcome, WorkerId
from hotline.tickets.export import MAX_CELL_WIDTH, call_record_json, display_width, render_calls_table

T0 = datetime(2024, 5, 1, 17, 30, 5, 250000, tzinfo=UTC)  # 2024-05-02 01:30:05 in Shanghai


def record(call_id: str = "c-1", **changes: object) -> CallRecord:
    fields: dict[str, object] = {
        "call_id": CallId(call_id),
        "caller": "13800138000",
        "callee": "12345",
        "worker_id": WorkerId("w-1"),
        "started_at": T0,
        "outcome": Outcome.ANSWERED,
        "ended_at": T0 + timedelta(minutes=2, seconds=5),
        "agent_id": AgentId("a-7"),
        "reason": "噪音扰民",
    }
    fields.update(changes)
    return CallRecord(**fields)  # type: ignore[arg-type]


def columns(line: str) -> int:
    """Terminal width as a test-side count: CJK wide/fullwidth characters are two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in line)


def column_starts(line: str) -> list[int]:
    """Terminal column where each cell of a table line starts (cells are split by 2+ spaces)."""
    starts, col, blanks = [0], 0, 0
    for ch in line:
        if ch != " " and blanks >= 2:
            starts.append(col)
        blanks = blanks + 1 if ch == " " else 0
        col += columns(ch)
    return starts


class TestCallRecordJson:
    def test_is_to_dict_plus_the_local_start_time(self) -> None:
        rec = record()
        data = call_record_json(rec)
        assert data.pop("started_at_local") == "2024-05-02T01:30:05+08:00"  # next day in Shanghai
        assert data == rec.to_dict()

    def test_round_trips_through_json_with_chinese_kept(self) -> None:
        rec = record(reason="市民反映：路灯不亮", recording_path=None, agent_id=None, ended_at=None)
        text = json.dumps(call_record_json(rec), ensure_ascii=False)
        assert "路灯不亮" in text
        loaded = json.loads(text)
        assert loaded["started_at"] == "2024-05-01T17:30:05.250000+00:00"
        assert loaded["agent_id"] is None and loaded["ended_at"] is None
        del loaded["started_at_local"]
        assert CallRecord.from_dict(loaded) == rec


class TestDisplayWidth:
    def test_counts_wide_characters_twice_and_combining_marks_not_at_all(self) -> None:
        assert display_width("abc") == 3
        assert display_width("张三") == 4
        assert display_width("１２") == 4  # fullwidth digits
        assert display_width("e\u0301") == 1  # e + combining acute
        assert display_width("") == 0


class TestRenderCallsTable:
    def test_exact_layout_of_a_simple_table(self) -> None:
        text = render_calls_table([record(reason="")])
        assert text == (
            "STARTED (Asia/Shanghai)  CALL ID  CALLER       OUTCOME   AGENT  DURATION  REASON\n"
            "2024-05-02 01:30:05      c-1      13800138000  answered  a-7    2:05      -"
        )

    def test_columns_line_up_with_chinese_text(self) -> None:
        rows = [
            record("c-1", reason="噪音扰民", agent_id=AgentId("李")),
            record("c-2222222", reason="路灯", caller="95588"),
            record("c-3", reason="plain ascii", agent_id=None, ended_at=None, outcome=Outcome.FAILED),
        ]
        lines = render_calls_table(rows).splitlines()
        assert len(lines) == 4
        header_starts = column_starts(lines[0])
        assert len(header_starts) == 7
        for line in lines[1:]:
            # Each row's cells start where the header's do (the last cell, REASON, included).
            assert column_starts(line) == header_starts, line
        assert "李" in lines[1] and "-" in lines[3]

    def test_newlines_in_a_reason_stay_on_one_line(self) -> None:
        text = render_calls_table([record(reason="第一行\n第二行\tend")])
        lines = text.splitlines()
        assert len(lines) == 2
        assert lines[1].endswith("第一行 第二行 end")

    def test_long_reasons_are_cut_to_the_maximum_width(self) -> None:
        text = render_calls_table([record(reason="很长的诉求内容" * 20)])
        reason = text.splitlines()[1].rsplit("  ", 1)[1]
        assert reason.endswith("...")
        assert columns(reason) <= MAX_CELL_WIDTH
        assert columns(reason) >= MAX_CELL_WIDTH - 1  # cut at the limit, not far before it

    def test_durations(self) -> None:
        long_call = record(ended_at=T0 + timedelta(hours=1, minutes=2, seconds=3))
        short_call = record(ended_at=T0 + timedelta(seconds=7))
        lines = render_calls_table([long_call, short_call]).splitlines()
        assert "1:02:03" in lines[1]
        assert "0:07" in lines[2]

    def test_no_records_is_the_header_alone(self) -> None:
        assert render_calls_table([]) == ("STARTED (Asia/Shanghai)  CALL ID  CALLER  OUTCOME  AGENT  DURATION  REASON")
