"""The pure half of the ticket statistics (hotline/tickets/unit_stats.py, csvexport.py): periods,
windows, place normalisation, figures from grouped rows, CSV rules. No database."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime

import pytest

from hotline.core.errors import InvalidRequest
from hotline.tickets.csvexport import guard, mask_number, render_csv
from hotline.tickets.unit_stats import (
    EventCount,
    OverdueCount,
    Period,
    UnitReport,
    area_of,
    hot_windows,
    normalise_place,
    parse_date,
    period,
    satisfaction_rate,
    unit_figures,
    units_csv,
)
from hotline.tickets.workdays import SHANGHAI


def sh(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


class TestPeriods:
    def test_a_period_is_beijing_days_both_included(self) -> None:
        p = period(date(2025, 10, 1), date(2025, 10, 31))
        assert (p.start, p.end) == (sh("2025-10-01 00:00"), sh("2025-11-01 00:00"))
        assert period(date(2025, 10, 1), date(2025, 10, 1)).end == sh("2025-10-02 00:00")

    def test_until_before_since_and_over_366_days_are_refused(self) -> None:
        with pytest.raises(InvalidRequest, match="早于"):
            period(date(2025, 10, 2), date(2025, 10, 1))
        assert period(date(2024, 1, 1), date(2024, 12, 31)).until == date(2024, 12, 31)  # 366 days (leap)
        with pytest.raises(InvalidRequest, match="367"):
            period(date(2024, 1, 1), date(2025, 1, 1))

    @pytest.mark.parametrize("text", ["2025-13-01", "yesterday", "", "2025/10/01"])
    def test_bad_dates_name_the_parameter(self, text: str) -> None:
        with pytest.raises(InvalidRequest, match="since"):
            parse_date(text, "since")
        assert parse_date(" 2025-10-01 ", "since") == date(2025, 10, 1)


class TestWindows:
    def test_this_week_runs_from_monday(self) -> None:
        w = hot_windows(sh("2025-10-19 23:30"))  # a Sunday
        assert (w.start, w.end) == (sh("2025-10-13 00:00"), sh("2025-10-19 23:30"))
        assert (w.previous_start, w.previous_end) == (sh("2025-10-06 00:00"), sh("2025-10-12 23:30"))
        monday = hot_windows(sh("2025-10-13 00:10"))
        assert monday.start == sh("2025-10-13 00:00")

    def test_a_utc_moment_is_read_in_beijing(self) -> None:
        # Sunday 16:30 UTC is already Monday 00:30 in Beijing: a new week.
        w = hot_windows(datetime.fromisoformat("2025-10-19T16:30:00+00:00"))
        assert w.start == sh("2025-10-20 00:00")

    def test_the_last_n_days_include_today(self) -> None:
        w = hot_windows(sh("2025-10-16 15:00"), days=1)
        assert (w.start, w.previous_start, w.previous_end) == (
            sh("2025-10-16 00:00"), sh("2025-10-15 00:00"), sh("2025-10-15 15:00"),
        )  # fmt: skip
        for bad in (0, -1, 367):
            with pytest.raises(InvalidRequest):
                hot_windows(sh("2025-10-16 15:00"), days=bad)


class TestPlaces:
    @pytest.mark.parametrize(
        ("raw", "key"),
        [
            ("淄博市张店区华光路88号", "淄博市张店区华光路88号"),
            (" 淄博市  张店区，华光路８８号。", "淄博市张店区华光路88号"),
            ("张店区-华光路 88 号（东门）", "张店区华光路88号东门"),
            ("  ", ""),
        ],
    )
    def test_normalised(self, raw: str, key: str) -> None:
        assert normalise_place(raw) == key

    @pytest.mark.parametrize(
        ("place", "area"),
        [
            ("淄博市张店区华光路88号", "张店区"),
            ("山东省淄博市周村区丝绸路1号", "周村区"),
            ("张店区车站街道共青团路", "张店区"),
            ("桓台县索镇", "桓台县"),
            ("淄博市人民公园", "淄博市"),
            ("华光路市场门口", None),
            ("淄博市华光路小区3号楼", "淄博市"),
            ("幸福社区", None),
            ("高新区柳泉路", "高新区"),
        ],
    )
    def test_area_is_the_district_else_the_city(self, place: str, area: str | None) -> None:
        assert area_of(place) == area


class TestFigures:
    def test_figures_from_grouped_rows(self) -> None:
        rows = [
            EventCount("甲", "Dispatch", "dispatch", None, None, None, 2),
            EventCount("甲", "Redispatch", "dispatch", None, None, None, 1),
            EventCount("甲", "Reply", "reply", "False", None, None, 3),
            EventCount("甲", "Reply", "reply", "True", None, None, 1),
            EventCount("甲", "RequestReturn", "return", "False", None, None, 5),  # in time: not overdue
            EventCount("甲", "RequestReturn", "return", "True", None, None, 1),
            EventCount("甲", "Callback", "callback", None, "1", "2", 2),
            EventCount("甲", "Callback", "callback", None, "3", "3", 1),
            EventCount("甲", "Redo", "redo", None, None, None, 1),
            EventCount("甲", "RejectReply", "redo", None, None, None, 1),
            EventCount("甲", "red_light", "remind", None, None, None, 2),
            EventCount("甲", "supervision_manual", "supervise", None, None, None, 2),
            EventCount("乙", "ApproveExtension", "extend", None, None, None, 1),
        ]
        by_name = {f.unit: f for f in unit_figures(rows, [OverdueCount("甲", 3, 2), OverdueCount("丙", 1, 0)])}
        assert list(by_name) == sorted(by_name) == ["丙", "乙", "甲"]  # by code point
        a, b = by_name["甲"], by_name["丙"]
        assert (a.unit, a.received, a.replied, a.replied_on_time, a.replied_late) == ("甲", 3, 4, 3, 1)
        assert (a.late_returns, a.overdue_now, a.overdue_open, a.due) == (1, 3, 2, 7)
        assert a.on_time_rate == pytest.approx(3 / 7)
        assert (a.process, a.result) == ({1: 2, 2: 0, 3: 1}, {1: 0, 2: 2, 3: 1})
        assert (a.process_rate, a.result_rate) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
        assert (a.redone, a.reminders, a.supervisions) == (2, 2, 2)
        assert (b.unit, b.extended, b.due, b.on_time_rate, b.process_rate) == ("丙", 0, 0, None, None)

    def test_rates_need_something_to_divide_by(self) -> None:
        assert satisfaction_rate({1: 0, 2: 0, 3: 0}) is None
        assert satisfaction_rate({1: 0, 2: 1, 3: 1}) == 0.5

    def test_units_csv_has_one_row_a_unit_and_the_total(self) -> None:
        units = unit_figures(
            [
                EventCount("甲", "Reply", "reply", "False", None, None, 1),
                EventCount("乙", "Reply", "reply", "True", None, None, 2),
                EventCount("乙", "Callback", "callback", None, "2", "3", 1),
            ],
            [],
        )
        report = UnitReport(Period(date(2025, 10, 1), date(2025, 10, 31)), sh("2025-11-01 09:00"), units)
        header, *rows = list(csv.reader(io.StringIO(units_csv(report).decode("utf-8-sig"), newline="")))
        assert header[0] == "单位" and len(header) == 23
        table = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
        assert list(table) == ["乙", "甲", "合计"]
        assert (table["甲"]["按时办结率"], table["乙"]["按时办结率"], table["合计"]["按时办结率"]) == (
            "100.0%", "0.0%", "33.3%",
        )  # fmt: skip
        assert (table["乙"]["服务过程满意率"], table["乙"]["办理结果满意率"], table["甲"]["服务过程满意率"]) == (
            "100.0%", "0.0%", "",
        )  # fmt: skip


class TestCsvRules:
    @pytest.mark.parametrize("cell", ["=SUM(A1:A9)", "+86 138", "-1", "@cmd", "\tx", "\rx"])
    def test_cells_a_spreadsheet_would_evaluate_are_quoted_as_text(self, cell: str) -> None:
        assert guard(cell) == "'" + cell

    @pytest.mark.parametrize("cell", ["华光路=1号", "138****8000", "", "'already"])
    def test_other_cells_are_left_alone(self, cell: str) -> None:
        assert guard(cell) == cell

    def test_rfc_4180_with_a_bom(self) -> None:
        body = render_csv(["a", "b"], [["逗号,在内", '引号"在内'], ["换行\n在内", "=危险"]])
        assert body.startswith(b"\xef\xbb\xbf") and body.count(b"\r\n") == 3
        assert b'"\xe5\xbc\x95\xe5\x8f\xb7""' in body  # the inner quote doubled
        rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
        assert rows == [["a", "b"], ["逗号,在内", '引号"在内'], ["换行\n在内", "'=危险"]]

    @pytest.mark.parametrize(
        ("number", "masked"),
        [("13800138000", "138****8000"), ("12345", "***45"), ("sip:13800138000@pbx", "sip:138****8000@pbx")],
    )
    def test_numbers_are_masked_like_the_agent_desktop(self, number: str, masked: str) -> None:
        assert mask_number(number) == masked
