"""Contract of the statistics part of SqlTicketStore (hotline/tickets/unit_stats.py): per-unit
figures, hot topics and the CSV export, on SQLite and on PostgreSQL.

Tickets are built through the real ledger (create_ticket + apply) around the 2025 National Day
holiday (10-01..10-08 off, 10-11 a make-up Saturday) under Zibo's policy (handle 5 working days,
return window 2, one extension), so that working days decide every deadline. Every expected
figure is counted by hand in the comments.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from hotline.cli import main
from hotline.core.errors import InvalidRequest
from hotline.tickets import model as m
from hotline.tickets.model import Kind, Satisfaction
from hotline.tickets.policy import load_policies
from hotline.tickets.records import ActorRole, NewTicket, TicketActor
from hotline.tickets.store import SqlTicketStore
from hotline.tickets.workdays import SHANGHAI

POLICIES = load_policies(Path(__file__).resolve().parents[2] / "config" / "policy")
ZIBO = POLICIES["zibo"]
A, B = "区住建局", "区城管局"
AGENT = TicketActor("agent-1001")
HOTLINE = TicketActor("热线中心", ActorRole.SUPERVISOR)
SYSTEM = TicketActor("system", ActorRole.SYSTEM)
S1, S2, S3 = Satisfaction.SATISFIED, Satisfaction.FAIRLY_SATISFIED, Satisfaction.UNSATISFIED


def sh(text: str) -> datetime:
    """Asia/Shanghai wall time: '2025-09-30 10:00'."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


NOW = sh("2025-10-28 12:00")


def unit(name: str) -> TicketActor:
    return TicketActor(name, ActorRole.UNIT)


def new(**changes: Any) -> NewTicket:
    fields: dict[str, Any] = {
        "caller": "13800138000",
        "kind": Kind.COMPLAINT,
        "content": "小区夜间施工噪音扰民",
        "caller_name": "王女士",
        "transcript": "喂，你好，我们小区晚上一直在施工……",
        "place": "淄博市张店区华光路88号",
    }
    fields.update(changes)
    return NewTicket(**fields)


@pytest.fixture
def store(ticket_store_url: str) -> Iterator[SqlTicketStore]:
    opened = SqlTicketStore(ticket_store_url, policies=POLICIES.values())
    yield opened
    opened.close()


def run(store: SqlTicketStore, number: str, *steps: tuple[m.Event, TicketActor, str]) -> None:
    for event, actor, at in steps:
        store.apply(number, event, actor, sh(at))


def build(store: SqlTicketStore) -> dict[str, str]:
    """The scenario; returns the ticket numbers by name."""
    t: dict[str, str] = {}
    # T1 -> A 09-30 11:00; deadline 5 working days: 10-09, 10-10, 10-11, 10-13, 10-14 (end of day).
    # Replied 10-14 20:00: on time. Callback: process 满意, result 基本满意 -> closed.
    t["T1"] = store.create_ticket(new(content='=1+1 施工, 噪音\n"夜间"'), AGENT, sh("2025-09-30 10:00"), ZIBO).number
    run(
        store, t["T1"],
        (m.Dispatch(HOTLINE.name, A), HOTLINE, "2025-09-30 11:00"),
        (m.Reply(A, "已责令停工"), unit(A), "2025-10-14 20:00"),
        (m.Callback(HOTLINE.name, S1, S2), HOTLINE, "2025-10-15 10:00"),
    )  # fmt: skip
    # T2 -> A at creation 09-30 10:05 (deadline 10-14); extension of 3 approved 10-10 -> 10-17.
    # Replied 10-16: late against 10-14, on time against the deadline in force (10-17).
    # Callback 10-17: 不满意/不满意, reasonable -> 重办, deadline 10-20..10-24 (5 working days).
    # Replied again 10-27 09:00: late (overdue since 10-24 end of day: 督办 on_overdue).
    t["T2"] = store.create_ticket(
        new(lead_unit=A, place="张店区华光路88号"), AGENT, sh("2025-09-30 10:05"), ZIBO
    ).number
    run(
        store, t["T2"],
        (m.Acknowledge(A), unit(A), "2025-10-09 09:00"),
        (m.RequestExtension(A, 3, "需协调多个部门"), unit(A), "2025-10-10 09:00"),
        (m.ApproveExtension(HOTLINE.name), HOTLINE, "2025-10-10 10:00"),
        (m.Reply(A, "已协调处理"), unit(A), "2025-10-16 09:00"),
        (m.Callback(HOTLINE.name, S3, S3, demand_reasonable=True), HOTLINE, "2025-10-17 10:00"),
        (m.Reply(A, "已再次处理"), unit(A), "2025-10-27 09:00"),
    )  # fmt: skip
    # T3 -> B 09-30 11:00; B returns it 10-10 10:00 (window: 10-09, 10-10: in time); approved and
    # sent to A 10-10 11:00; A's deadline 10-11, 10-13, 10-14, 10-15, 10-16. A never replies: the
    # scheduler's Tick at NOW records overdue (10-16 end) with its 督办 and the red light's 催办
    # (10-17 end).
    t["T3"] = store.create_ticket(new(), AGENT, sh("2025-09-30 10:10"), ZIBO).number
    run(
        store, t["T3"],
        (m.Dispatch(HOTLINE.name, B), HOTLINE, "2025-09-30 11:00"),
        (m.RequestReturn(B, "不属于本单位职责", A), unit(B), "2025-10-10 10:00"),
        (m.ApproveReturn(HOTLINE.name, "同意", lead_unit=A), HOTLINE, "2025-10-10 11:00"),
        (m.Tick(), SYSTEM, "2025-10-28 12:00"),
    )  # fmt: skip
    # T4 -> B 09-30 11:00; returned 10-13 09:00, after the window (10-10 end): a late return,
    # approved without a new unit (back to 受理).
    t["T4"] = store.create_ticket(new(kind=Kind.HELP), AGENT, sh("2025-09-30 10:15"), ZIBO).number
    run(
        store, t["T4"],
        (m.Dispatch(HOTLINE.name, B), HOTLINE, "2025-09-30 11:00"),
        (m.RequestReturn(B, "不属于本单位职责", "区水务局"), unit(B), "2025-10-13 09:00"),
        (m.ApproveReturn(HOTLINE.name, "同意"), HOTLINE, "2025-10-13 10:00"),
    )  # fmt: skip
    # T5: a consultation answered at once: never dispatched, no unit.
    t["T5"] = store.create_ticket(
        new(kind=Kind.CONSULTATION, answer="请携带身份证办理"), AGENT, sh("2025-10-09 08:00"), ZIBO
    ).number
    # T6 -> B at creation 10-09 09:00: deadline 10-10, 10-11, 10-13, 10-14, 10-15. 续报 on 10-14
    # commits 10-20; replied 10-18: after 10-15 but on time against the deadline in force.
    # Callback: process 基本满意, result 满意.
    t["T6"] = store.create_ticket(new(lead_unit=B, caller="13900139000"), AGENT, sh("2025-10-09 09:00"), ZIBO).number
    run(
        store, t["T6"],
        (m.Acknowledge(B), unit(B), "2025-10-09 10:00"),
        (m.CommitFollowUp(B, date(2025, 10, 20), "需等待检测结果"), unit(B), "2025-10-14 10:00"),
        (m.Reply(B, "检测合格，已答复"), unit(B), "2025-10-18 10:00"),
        (m.Callback(HOTLINE.name, S2, S1), HOTLINE, "2025-10-19 10:00"),
    )  # fmt: skip
    return t


def figures(store: SqlTicketStore, since: date, until: date) -> dict[str, dict[str, Any]]:
    report = store.unit_report(since, until, NOW).to_dict()
    return {row["unit"]: row for row in [*report["units"], report["total"]]}


def ratings(s1: int, s2: int, s3: int) -> dict[str, int]:
    return {"satisfied": s1, "fairly_satisfied": s2, "unsatisfied": s3}


class TestUnitReport:
    def test_every_figure_over_the_whole_scenario(self, store: SqlTicketStore) -> None:
        build(store)
        got = figures(store, date(2025, 9, 30), date(2025, 10, 31))
        assert set(got) == {A, B, "合计"}
        assert got[A] == {
            "unit": A,
            "received": 3,  # T1, T2, T3 (redispatched to A)
            "replied": 3,  # T1, T2 twice
            "replied_on_time": 2,  # T1, T2's first (within its extension)
            "replied_late": 1,  # T2 after 重办
            "late_returns": 0,
            "overdue_now": 1,  # T3
            "overdue_open": 1,  # T3's deadline 10-16 lies in the period
            "returned": 0,
            "extended": 1,  # T2
            "follow_ups": 0,
            "redone": 1,  # T2
            "reminders": 1,  # T3's red light
            "supervisions": 2,  # overdue: T2 (10-24), T3 (10-16)
            "due": 4,  # 3 replies + T3 still owed
            "on_time_rate": 0.5,
            "process": ratings(1, 0, 1),  # T1 满意, T2 不满意
            "result": ratings(0, 1, 1),  # T1 基本满意, T2 不满意
            "process_rate": 0.5,
            "result_rate": 0.5,
        }
        assert got[B] == {
            "unit": B,
            "received": 3,  # T3, T4, T6
            "replied": 1,  # T6
            "replied_on_time": 1,  # within its 续报 date
            "replied_late": 0,
            "late_returns": 1,  # T4
            "overdue_now": 0,
            "overdue_open": 0,
            "returned": 2,  # T3, T4 (approved)
            "extended": 0,
            "follow_ups": 1,  # T6
            "redone": 0,
            "reminders": 0,
            "supervisions": 0,
            "due": 2,  # T6's reply + T4's late return
            "on_time_rate": 0.5,
            "process": ratings(0, 1, 0),
            "result": ratings(1, 0, 0),
            "process_rate": 1.0,
            "result_rate": 1.0,
        }
        total = got["合计"]
        assert (total["received"], total["replied"], total["due"], total["on_time_rate"]) == (6, 4, 6, 0.5)
        assert total["process"] == ratings(1, 1, 1) and total["result_rate"] == pytest.approx(2 / 3)

    def test_a_shorter_period_counts_only_its_events(self, store: SqlTicketStore) -> None:
        build(store)
        got = figures(store, date(2025, 10, 15), date(2025, 10, 20))
        a, b = got[A], got[B]
        # A: T2's first reply (10-16); T1's (10-14) and T2's second (10-27) are outside.
        assert (a["received"], a["replied"], a["replied_on_time"], a["replied_late"]) == (0, 1, 1, 0)
        # T3 is still owed and its deadline (10-16) is in the period.
        assert (a["overdue_now"], a["overdue_open"], a["due"], a["on_time_rate"]) == (1, 1, 2, 0.5)
        # Callbacks T1 (10-15) and T2 (10-17); T2's 重办 10-17; T3's 督办 (10-17 00:00) and 催办
        # (10-18 00:00), recorded at the instants they fell due; T2's 督办 (10-25) is outside.
        assert (a["process"], a["result"], a["redone"]) == (ratings(1, 0, 1), ratings(0, 1, 1), 1)
        assert (a["supervisions"], a["reminders"], a["extended"]) == (1, 1, 0)
        # B: T6's reply (10-18) and callback (10-19); its 续报 (10-14) and T4's return are outside.
        assert (b["replied"], b["follow_ups"], b["late_returns"], b["returned"], b["due"]) == (1, 0, 0, 0, 1)
        assert (b["on_time_rate"], b["process_rate"], b["result_rate"]) == (1.0, 1.0, 1.0)

    def test_a_period_ending_before_the_deadline_has_no_overdue_open(self, store: SqlTicketStore) -> None:
        build(store)
        a = figures(store, date(2025, 10, 1), date(2025, 10, 15))[A]
        assert (a["overdue_now"], a["overdue_open"]) == (1, 0)  # T3's deadline is 10-16
        assert (a["replied"], a["due"], a["on_time_rate"]) == (1, 1, 1.0)  # T1

    def test_the_period_is_beijing_days(self, store: SqlTicketStore) -> None:
        build(store)
        # T1's reply at 10-14 20:00 Beijing is 12:00 UTC; 10-14 alone holds it, 10-15 does not.
        assert figures(store, date(2025, 10, 14), date(2025, 10, 14))[A]["replied"] == 1
        # T3's 督办 at 10-17 00:00 Beijing is 10-16 16:00 UTC; its 催办 at 10-18 00:00 Beijing is
        # 10-17 16:00 UTC: a UTC day would put both on the wrong day.
        day17, day18 = (figures(store, d, d)[A] for d in (date(2025, 10, 17), date(2025, 10, 18)))
        assert (day17["supervisions"], day17["reminders"], day18["supervisions"], day18["reminders"]) == (1, 0, 0, 1)
        # Before anything happened, A is listed only for what it owes now (a snapshot).
        before = figures(store, date(2025, 9, 1), date(2025, 9, 29))[A]
        assert (before["received"], before["replied"], before["overdue_now"], before["overdue_open"]) == (0, 0, 1, 0)

    def test_an_empty_period_has_no_rates(self, store: SqlTicketStore) -> None:
        report = store.unit_report(date(2025, 1, 1), date(2025, 1, 31), NOW).to_dict()
        assert report["units"] == []
        assert report["total"]["on_time_rate"] is None and report["total"]["process_rate"] is None

    @pytest.mark.parametrize(
        ("since", "until", "message"),
        [(date(2025, 10, 2), date(2025, 10, 1), "早于"), (date(2025, 1, 1), date(2026, 1, 2), "366")],
    )
    def test_bad_periods_are_refused(self, store: SqlTicketStore, since: date, until: date, message: str) -> None:
        with pytest.raises(InvalidRequest, match=message):
            store.unit_report(since, until, NOW)
        with pytest.raises(InvalidRequest, match=message):
            store.export_rows(since, until)

    def test_a_year_of_366_days_is_allowed(self, store: SqlTicketStore) -> None:
        assert store.unit_report(date(2024, 1, 1), date(2024, 12, 31), NOW).units == []


class TestHotTopics:
    def make(self, store: SqlTicketStore, at: str, kind: Kind, place: str) -> None:
        store.create_ticket(new(kind=kind, place=place), AGENT, sh(at), ZIBO)

    def test_this_week_against_last_week(self, store: SqlTicketStore) -> None:
        now = sh("2025-10-16 15:00")  # a Thursday: this week is 10-13 00:00 .. now
        for at, kind, place in [
            ("2025-10-13 09:00", Kind.COMPLAINT, "淄博市张店区华光路88号"),
            ("2025-10-14 10:00", Kind.COMPLAINT, " 淄博市 张店区，华光路88号。"),
            ("2025-10-15 11:00", Kind.COMPLAINT, "张店区华光路８８号"),
            ("2025-10-16 09:00", Kind.HELP, ""),
            ("2025-10-08 10:00", Kind.COMPLAINT, "淄博市张店区华光路88号"),  # last week
            ("2025-10-09 14:00", Kind.CONSULTATION, "周村区丝绸路1号"),  # last week, before 15:00
            ("2025-10-09 16:00", Kind.COMPLAINT, "周村区丝绸路1号"),  # after last week's "now"
            ("2025-10-16 15:00", Kind.REPORT, "桓台县"),  # at now: not yet in
        ]:
            self.make(store, at, kind, place)
        got = store.hot_topics(now).to_dict()
        assert (got["since"], got["until"]) == ("2025-10-13T00:00:00+08:00", "2025-10-16T15:00:00+08:00")
        assert (got["previous_since"], got["previous_until"]) == (
            "2025-10-06T00:00:00+08:00", "2025-10-09T15:00:00+08:00",
        )  # fmt: skip
        assert got["kinds"] == [
            {"key": "complaint", "name": "投诉", "count": 3, "previous": 1, "change": 2, "change_pct": 200.0},
            {"key": "help", "name": "求助", "count": 1, "previous": 0, "change": 1, "change_pct": None},
        ]
        assert [(t["name"], t["count"], t["previous"]) for t in got["places"]] == [
            ("淄博市张店区华光路88号", 2, 1),
            ("张店区华光路88号", 1, 0),
        ]
        assert [(t["name"], t["count"], t["previous"]) for t in got["areas"]] == [("张店区", 3, 1)]

    def test_the_last_n_days(self, store: SqlTicketStore) -> None:
        now = sh("2025-10-16 15:00")  # 3 days: 10-14 00:00 .. now, against 10-11 00:00 .. 10-13 15:00
        self.make(store, "2025-10-13 09:00", Kind.COMPLAINT, "周村区丝绸路1号")
        self.make(store, "2025-10-14 09:00", Kind.COMPLAINT, "周村区丝绸路1号")
        self.make(store, "2025-10-15 09:00", Kind.COMPLAINT, "周村区 丝绸路1号")
        got = store.hot_topics(now, days=3).to_dict()
        assert got["since"] == "2025-10-14T00:00:00+08:00"
        assert [(t["key"], t["count"], t["previous"], t["change_pct"]) for t in got["kinds"]] == [
            ("complaint", 2, 1, 100.0)
        ]
        assert [(t["name"], t["count"]) for t in got["places"]] == [("周村区丝绸路1号", 2)]
        with pytest.raises(InvalidRequest):
            store.hot_topics(now, days=0)


def parse(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


class TestCsvExport:
    def test_export_rows_carry_the_figures(self, store: SqlTicketStore) -> None:
        t = build(store)
        rows = {r.number: r for r in store.export_rows(date(2025, 9, 30), date(2025, 10, 31))}
        assert list(rows) == [t[k] for k in ("T1", "T2", "T3", "T4", "T5", "T6")]  # by creation
        t1, t2, t3, t6 = rows[t["T1"]], rows[t["T2"]], rows[t["T3"]], rows[t["T6"]]
        assert (t1.on_time, t1.deadline, t1.process, t1.result) == (True, sh("2025-10-14 23:59:59.999999"), 1, 2)
        assert (t2.on_time, t2.deadline, t2.replied_at) == (
            False,
            sh("2025-10-24 23:59:59.999999"),
            sh("2025-10-27 09:00"),
        )
        assert (t3.on_time, t3.lead_unit, t3.stage) == (None, A, "dispatched")
        assert (t6.on_time, t6.deadline) == (True, sh("2025-10-20 23:59:59.999999"))
        assert store.export_rows(date(2025, 10, 9), date(2025, 10, 9)) == [rows[t["T5"]], t6]

    def test_the_hotline_file_masks_callers_and_guards_formulas(self, store: SqlTicketStore) -> None:
        t = build(store)
        body = store.tickets_csv(date(2025, 9, 30), date(2025, 10, 31), for_units=False).body
        assert b"\r\n" in body and b"13800138000" not in body
        header, *rows = parse(body)
        assert header[:4] == ["工单编号", "受理时间", "类型", "来电号码"]
        first = dict(zip(header, rows[0], strict=True))
        assert first == {
            "工单编号": t["T1"],
            "受理时间": "2025-09-30 10:00:00",
            "类型": "投诉",
            "来电号码": "138****8000",
            "地点": "淄博市张店区华光路88号",
            "诉求内容": '\'=1+1 施工, 噪音\n"夜间"',  # quoted, quotes doubled, newline kept; guarded
            "主办单位": A,
            "状态": "已办结",
            "办理期限": "2025-10-14 23:59:59",
            "回复时间": "2025-10-14 20:00:00",
            "按时回复": "是",
            "服务过程评价": "满意",
            "办理结果评价": "基本满意",
        }
        assert [r[header.index("按时回复")] for r in rows] == ["是", "否", "", "", "", "是"]

    def test_unmasked_is_for_the_hotline_file_only(self, store: SqlTicketStore) -> None:
        build(store)
        body = store.tickets_csv(date(2025, 10, 9), date(2025, 10, 9), for_units=False, unmasked=True).body
        header, *rows = parse(body)
        assert [row[header.index("来电号码")] for row in rows] == ["13800138000", "13900139000"]  # T5, T6
        with pytest.raises(InvalidRequest):
            store.tickets_csv(date(2025, 10, 9), date(2025, 10, 9), for_units=True, unmasked=True)

    def test_the_units_file_has_no_caller_at_all(self, store: SqlTicketStore) -> None:
        t = build(store)
        exported = store.tickets_csv(date(2025, 9, 30), date(2025, 10, 31), for_units=True)
        body = exported.body
        assert exported.numbers == tuple(t[k] for k in ("T1", "T2", "T3", "T4", "T5", "T6"))
        header, *rows = parse(body)
        assert "来电号码" not in header and len(header) == 12 and len(rows) == 6
        for secret in ("13800138000", "138****8000", "13900139000", "139****9000", "王女士", "喂，你好"):
            assert secret.encode() not in body


class TestCli:
    """`hotline tickets stats | hot | export` against the same store (both backends)."""

    @pytest.fixture
    def config_file(self, tmp_path: Path, ticket_store_url: str) -> str:
        path = tmp_path / "hotline.yaml"
        policies = Path(__file__).resolve().parents[2] / "config" / "policy"
        path.write_text(
            f"data_dir: {tmp_path / 'var'}\npolicies_dir: {policies}\ntickets_url: '{ticket_store_url}'\n",
            encoding="utf-8",
        )
        return str(path)

    def run(self, config_file: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        code = main(["--config", config_file, "tickets", *args])
        out, err = capsys.readouterr()
        return code, out, err

    def test_stats_hot_and_export(
        self, store: SqlTicketStore, config_file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        build(store)
        period_args = ("--since", "2025-09-30", "--until", "2025-10-31")
        code, out, err = self.run(config_file, capsys, "stats", *period_args, "--json")
        assert code == 0, err
        units = {u["unit"]: u for u in json.loads(out)["units"]}
        assert (units[A]["replied_on_time"], units[A]["due"], units[B]["late_returns"]) == (2, 4, 1)
        code, out, err = self.run(config_file, capsys, "stats", *period_args)
        assert code == 0 and out.startswith("2025-09-30 .. 2025-10-31") and "50.0%" in out and "合计" in out
        code, out, err = self.run(config_file, capsys, "hot", "--days", "7", "--json")
        assert code == 0 and json.loads(out)["kinds"] == []  # nothing created in the last week (now)
        target = tmp_path / "units.csv"
        code, out, err = self.run(config_file, capsys, "export", *period_args, "--csv", str(target), "--for-units")
        assert code == 0, err
        header, *rows = parse(target.read_bytes())
        assert "来电号码" not in header and len(rows) == 6

    def test_a_bad_date_is_an_error(self, config_file: str, capsys: pytest.CaptureFixture[str]) -> None:
        code, _, err = self.run(config_file, capsys, "stats", "--since", "2025-10-32")
        assert code == 1 and "--since" in err
