"""The 工单 lifecycle (hotline/tickets/lifecycle.py): every row of RULES.md's lifecycle table, both policies.

Dates are worked out by hand from the official 2025 calendar: 10-01..10-08 off (国庆节、中秋节), 09-28
(Sunday) and 10-11 (Saturday) are make-up working days; the day a period starts is not counted. A
deadline is met up to 23:59:59.999999 of its day; what follows a deadline happens from the next 00:00.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.core.errors import DomainError, InvalidRequest
from hotline.tickets import model as m
from hotline.tickets.lifecycle import TRANSITIONS, IllegalTransition, TicketMachine
from hotline.tickets.model import Kind, Light, Satisfaction, State, SupervisionReason
from hotline.tickets.policy import Policy, load_policies, load_policy
from hotline.tickets.workdays import SHANGHAI, WorkCalendar

POLICY_DIR = Path(__file__).resolve().parents[2] / "config" / "policy"
POLICIES = load_policies(POLICY_DIR)
CAL = WorkCalendar()
BOTH = pytest.mark.parametrize("name", ["zibo", "mayors-hotline"])
LEAD, HELPER, OTHER = "区住建局", "区城管局", "区市场监管局"
AGENT = "agent:1001"


def sh(text: str) -> datetime:
    """Asia/Shanghai wall time: '2025-09-30 10:00'."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def end(day: str) -> datetime:
    """The last instant of a Shanghai day (what a deadline is)."""
    return sh(day + " 23:59:59.999999")


@dataclasses.dataclass(frozen=True)
class Expect:
    """Hand-checked dates for a ticket dispatched 2025-09-30 10:00 (a Tuesday before the holiday)."""

    handle: str  # reply deadline
    yellow: str  # yellow light on from
    overdue: str  # overdue (督办) from
    red: str  # red light and 催办 from
    redo_from_1013: str  # redo deadline when the callback is on 2025-10-13
    from_0928: str  # reply deadline when dispatched on the make-up Sunday 2025-09-28
    from_0925: tuple[str, str, str, str]  # dispatched 2025-09-25: deadline, yellow, overdue, red
    from_1013: str  # reply deadline when dispatched 2025-10-13 09:00
    from_1009: str  # reply deadline when dispatched 2025-10-09 10:00


EXPECT = {
    # Zibo, 5 working days: 10-09, 10-10, 10-11 (make-up Saturday), 10-13, 10-14.
    "zibo": Expect(
        handle="2025-10-14",
        yellow="2025-10-14 00:00",  # only 10-14 itself is left
        overdue="2025-10-15 00:00",
        red="2025-10-16 00:00",  # 10-15 was a full working day past the deadline
        redo_from_1013="2025-10-20",  # 10-14, 10-15, 10-16, 10-17, 10-20
        from_0928="2025-10-11",  # 09-29, 09-30, 10-09, 10-10, 10-11
        # 09-26, 09-28, 09-29, 09-30, 10-09; yellow during the holiday; red on the make-up Saturday
        from_0925=("2025-10-09", "2025-10-01 00:00", "2025-10-10 00:00", "2025-10-11 00:00"),
        from_1013="2025-10-20",
        from_1009="2025-10-15",  # 10-10, 10-11, 10-13, 10-14, 10-15
    ),
    # Mayor's hotline, 7 working days: … 10-14, 10-15, 10-16.
    "mayors-hotline": Expect(
        handle="2025-10-16",
        yellow="2025-10-16 00:00",
        overdue="2025-10-17 00:00",
        red="2025-10-18 00:00",  # after the full working day 10-17
        redo_from_1013="2025-10-22",  # 10-14 … 10-17, 10-20, 10-21, 10-22
        from_0928="2025-10-14",  # 09-29, 09-30, 10-09, 10-10, 10-11, 10-13, 10-14
        # 09-26, 09-28, 09-29, 09-30, 10-09, 10-10, 10-11; red skips Sunday 10-12 and Monday 10-13
        from_0925=("2025-10-11", "2025-10-11 00:00", "2025-10-12 00:00", "2025-10-14 00:00"),
        from_1013="2025-10-22",
        from_1009="2025-10-17",  # 10-10, 10-11, 10-13, 10-14, 10-15, 10-16, 10-17
    ),
}


def open_ticket(
    name: str,
    at: str = "2025-09-30 10:00",
    kind: Kind = Kind.COMPLAINT,
    policy: Policy | None = None,
    ticket_id: str = "T1",
    summary: str = "小区路灯不亮",
    **kw: object,
) -> tuple[TicketMachine, list[m.Command]]:
    return TicketMachine.open(
        policy or POLICIES[name],
        CAL,
        ticket_id=ticket_id,
        kind=kind,
        caller="13800000000",
        summary=summary,
        now=sh(at),
        by=AGENT,
        **kw,  # type: ignore[arg-type]
    )


def opened(name: str, at: str = "2025-09-30 10:00", **kw: object) -> TicketMachine:
    return open_ticket(name, at, **kw)[0]  # type: ignore[arg-type]


def dispatched(name: str, at: str = "2025-09-30 10:00", **kw: object) -> TicketMachine:
    machine = opened(name, at, **kw)
    machine.handle(m.Dispatch(AGENT, LEAD, (HELPER,)), sh(at))
    return machine


def handling(name: str, at: str = "2025-09-30 10:00", **kw: object) -> TicketMachine:
    machine = dispatched(name, at, **kw)
    machine.handle(m.Acknowledge(LEAD), sh(at))
    return machine


def replied(name: str, at: str = "2025-10-09 10:00") -> TicketMachine:
    machine = handling(name)
    machine.handle(m.Reply(LEAD, "已修复路灯"), sh(at))
    return machine


def actions(machine: TicketMachine) -> list[str]:
    return [entry.action for entry in machine.ticket.timeline]


# ---------------------------------------------------------------- 受理 accept
@BOTH
def test_accept_records_the_call_and_starts_the_dispatch_clock(name: str) -> None:
    machine, commands = open_ticket(name, kind=Kind.HELP, summary="路灯")
    t = machine.ticket
    assert commands == []
    assert t.state == State.ACCEPTED and t.kind == Kind.HELP
    assert t.dispatch_due == end("2025-10-09")  # 001 第十一条(二): 1 working day; 10-01..08 off
    assert machine.next_deadline() == sh("2025-10-10 00:00")
    [entry] = t.timeline
    assert (entry.actor, entry.stage, entry.action) == (AGENT, m.Stage.ACCEPT, "Open")
    assert entry.at == datetime(2025, 9, 30, 2, 0, tzinfo=UTC)
    assert entry.note == "求助：路灯"


@BOTH
def test_a_consultation_answered_at_once_closes_without_dispatch(name: str) -> None:
    machine = opened(name, kind=Kind.CONSULTATION)
    commands = machine.handle(m.AnswerDirectly(AGENT, "公积金提取请携带身份证到服务大厅办理"), sh("2025-09-30 10:03"))
    assert commands == []  # nothing is sent to any unit
    assert machine.ticket.state == State.CLOSED and machine.ticket.lead_unit is None
    assert machine.ticket.closed_at == sh("2025-09-30 10:03")
    assert machine.next_deadline() is None  # the dispatch clock is gone
    assert machine.handle(m.Tick(), sh("2025-10-20 00:00")) == []
    assert actions(machine) == ["Open", "AnswerDirectly"]


def test_a_kind_the_policy_does_not_let_answer_directly_must_be_dispatched(tmp_path: Path) -> None:
    text = (POLICY_DIR / "zibo.yaml").read_text(encoding="utf-8")
    path = tmp_path / "zibo.yaml"
    path.write_text(text.replace("  complaint: {}", "  complaint: {direct_answer: false}"), encoding="utf-8")
    policy = load_policy(path)
    machine = opened("zibo", policy=policy)
    before = machine.ticket
    with pytest.raises(InvalidRequest, match="投诉不能直接答复"):
        machine.handle(m.AnswerDirectly(AGENT, "答复"), sh("2025-09-30 10:03"))
    assert machine.ticket is before
    consultation = opened("zibo", kind=Kind.CONSULTATION, policy=policy)
    consultation.handle(m.AnswerDirectly(AGENT, "答复"), sh("2025-09-30 10:03"))
    assert consultation.ticket.state == State.CLOSED


# ---------------------------------------------------------------- 转办 dispatch
@BOTH
def test_a_late_dispatch_alerts_the_hotline_once(name: str) -> None:
    machine = opened(name)
    assert machine.handle(m.Tick(), end("2025-10-09")) == []
    assert machine.handle(m.Tick(), sh("2025-10-10 00:00")) == [m.NotifyHotline("T1", "工单超过转办时限仍未转办")]
    assert machine.ticket.timeline[-1].at == sh("2025-10-10 00:00")
    assert machine.handle(m.Tick(), sh("2025-10-13 09:00")) == []
    assert machine.next_deadline() is None


@BOTH
def test_dispatch_notifies_the_lead_and_assisting_units_and_starts_their_clocks(name: str) -> None:
    machine = opened(name)
    commands = machine.handle(m.Dispatch(AGENT, LEAD, (HELPER,)), sh("2025-09-30 10:05"))
    handle = EXPECT[name].handle
    assert commands == [
        m.NotifyUnit("T1", LEAD, "lead", f"主办：投诉工单，请于 {end(handle).astimezone(UTC).isoformat()} 前办结回复"),
        m.NotifyUnit(
            "T1",
            HELPER,
            "assist",
            f"协办：投诉工单，请于 {end(handle).astimezone(UTC).isoformat()} 前办结回复，结果请提交主办单位 {LEAD}",
        ),
    ]
    t = machine.ticket
    assert (t.state, t.lead_unit, t.assisting_units) == (State.DISPATCHED, LEAD, (HELPER,))
    assert t.deadline == end(handle)
    assert t.return_due == end("2025-10-10")  # 2 working days
    assert t.dispatch_due is None


@BOTH
def test_an_emergency_is_dispatched_in_the_same_step_and_reported(name: str) -> None:
    with pytest.raises(InvalidRequest, match="紧急工单须立即转办"):
        opened(name, at="2025-10-01 09:00", emergency=True)
    machine, commands = open_ticket(name, "2025-10-01 09:00", ticket_id="E1", emergency=True, lead_unit="自来水公司")
    assert [type(c) for c in commands] == [m.ReportEmergency, m.NotifyUnit]
    t = machine.ticket
    assert t.state == State.DISPATCHED and t.dispatched_at == sh("2025-10-01 09:00")
    assert t.first_report_due == sh("2025-10-01 11:00")  # 2 wall-clock hours, on a holiday
    assert t.deadline == end("2025-10-11")  # 1–3 working days: 10-09, 10-10, 10-11 (make-up Saturday)
    assert machine.next_deadline() == sh("2025-10-01 11:00:00.000001")
    assert machine.handle(m.Tick(), sh("2025-10-01 11:00")) == []  # exactly two hours: still on time
    assert machine.handle(m.Tick(), sh("2025-10-01 11:00:01")) == [
        m.SendReminder("E1", "自来水公司", "紧急工单：请立即反馈初步处置情况"),
        m.NotifyHotline("E1", "紧急工单：自来水公司 未按时反馈初步处置情况"),
    ]


@BOTH
def test_an_emergency_first_report_in_time_stops_its_clock(name: str) -> None:
    machine, _ = open_ticket(name, "2025-10-01 09:00", ticket_id="E1", emergency=True, lead_unit="燃气公司")
    assert machine.handle(m.FirstReport("燃气公司", "已关阀抢修"), sh("2025-10-01 10:30")) == []
    assert machine.ticket.state == State.HANDLING and machine.ticket.first_report_due is None
    assert machine.handle(m.Tick(), sh("2025-10-01 12:00")) == []
    assert machine.next_deadline() == sh("2025-10-11 00:00")  # the yellow light of the 10-11 result deadline
    with pytest.raises(InvalidRequest, match="只用于紧急工单"):
        handling(name).handle(m.FirstReport(LEAD, "x"), sh("2025-09-30 11:00"))


# ---------------------------------------------------------------- 办理 handle, 反馈 reply
@BOTH
def test_the_reply_deadline_counts_working_days_from_the_day_after_dispatch(name: str) -> None:
    assert dispatched(name).ticket.deadline == end(EXPECT[name].handle)
    assert dispatched(name, at="2025-09-28 10:00").ticket.deadline == end(EXPECT[name].from_0928)
    assert dispatched(name, at="2025-09-25 10:00").ticket.deadline == end(EXPECT[name].from_0925[0])


@BOTH
def test_a_reply_at_the_last_instant_is_on_time(name: str) -> None:
    machine = handling(name)
    commands = machine.handle(m.Reply(LEAD, "已修复"), end(EXPECT[name].handle))
    assert commands == [m.LightChanged("T1", Light.YELLOW), m.ScheduleCallback("T1"), m.LightChanged("T1", Light.NONE)]
    t = machine.ticket
    assert t.state == State.REPLIED and not t.counted_overdue and t.supervision == ()
    assert dict(t.timeline[-1].data) == {"late": "False"}
    assert machine.next_deadline() is None


@BOTH
def test_only_the_lead_unit_replies_and_assisting_units_report_to_it(name: str) -> None:
    machine = handling(name)
    with pytest.raises(InvalidRequest, match="只有主办单位"):
        machine.handle(m.Reply(HELPER, "已修复"), sh("2025-10-09 10:00"))
    assert machine.handle(m.AssistReply(HELPER, "协查完毕"), sh("2025-10-09 10:00")) == [
        m.NotifyUnit("T1", LEAD, "lead", f"协办单位 {HELPER} 已提交结果")
    ]
    with pytest.raises(InvalidRequest, match="不是本工单的协办单位"):
        machine.handle(m.AssistReply(OTHER, "x"), sh("2025-10-09 10:00"))
    with pytest.raises(InvalidRequest, match="不能重复"):
        opened(name).handle(m.Dispatch(AGENT, LEAD, (LEAD,)), sh("2025-09-30 10:05"))


# ---------------------------------------------------------------- lights
@BOTH
def test_yellow_then_overdue_then_red_with_a_single_reminder(name: str) -> None:
    e = EXPECT[name]
    machine = handling(name)
    assert machine.next_deadline() == sh(e.yellow)
    assert machine.handle(m.Tick(), sh(e.yellow) - timedelta(microseconds=1)) == []
    assert machine.light_at(sh(e.yellow) - timedelta(microseconds=1)) == Light.NONE
    assert machine.handle(m.Tick(), sh(e.yellow)) == [m.LightChanged("T1", Light.YELLOW)]
    assert machine.next_deadline() == sh(e.overdue)
    assert machine.handle(m.Tick(), sh(e.overdue)) == [
        m.RaiseSupervision("T1", SupervisionReason.OVERDUE, "超出办理时限未办结")
    ]
    assert machine.ticket.counted_overdue and machine.light_at(sh(e.overdue)) == Light.YELLOW
    assert machine.next_deadline() == sh(e.red)
    assert machine.handle(m.Tick(), sh(e.red)) == [
        m.SendReminder("T1", LEAD, "工单已超期，请尽快办结并回复"),
        m.LightChanged("T1", Light.RED),
    ]
    assert machine.next_deadline() is None
    assert machine.handle(m.Tick(), sh(e.red) + timedelta(days=7)) == []  # the 催办 is sent once
    assert actions(machine)[-4:] == ["yellow_light", "overdue", "supervision_overdue", "red_light"]


@BOTH
def test_lights_across_the_national_day_holiday(name: str) -> None:
    deadline, yellow, overdue, red = EXPECT[name].from_0925
    machine = handling(name, at="2025-09-25 10:00")
    assert machine.ticket.deadline == end(deadline)
    assert machine.light_at(sh(yellow) - timedelta(microseconds=1)) == Light.NONE
    assert machine.light_at(sh(yellow)) == Light.YELLOW
    assert machine.light_at(sh(red) - timedelta(microseconds=1)) == Light.YELLOW
    assert machine.light_at(sh(red)) == Light.RED
    machine.handle(m.Tick(), sh("2025-10-20 09:00"))
    due = {e.action: e.at for e in machine.ticket.timeline}
    assert (due["yellow_light"], due["overdue"], due["red_light"]) == (sh(yellow), sh(overdue), sh(red))


@BOTH
def test_effects_missed_between_events_are_applied_at_their_due_instants(name: str) -> None:
    e = EXPECT[name]
    machine = handling(name)
    commands = machine.handle(m.Reply(LEAD, "已修复"), sh("2025-10-20 09:00"))  # no Tick for three weeks
    assert commands == [
        m.RaiseSupervision("T1", SupervisionReason.OVERDUE, "超出办理时限未办结"),
        m.SendReminder("T1", LEAD, "工单已超期，请尽快办结并回复"),
        m.LightChanged("T1", Light.RED),
        m.ScheduleCallback("T1"),
        m.LightChanged("T1", Light.NONE),
    ]
    timeline = machine.ticket.timeline
    assert [(x.action, x.at) for x in timeline[-5:]] == [
        ("yellow_light", sh(e.yellow)),
        ("overdue", sh(e.overdue)),
        ("supervision_overdue", sh(e.overdue)),
        ("red_light", sh(e.red)),
        ("Reply", sh("2025-10-20 09:00")),
    ]
    assert machine.ticket.counted_overdue


# ---------------------------------------------------------------- 延期 extension
def test_zibo_extension_of_up_to_five_working_days_once_before_the_deadline() -> None:
    machine = handling("zibo")
    with pytest.raises(InvalidRequest, match="不超过 5 个工作日"):
        machine.handle(m.RequestExtension(LEAD, 6, "需协调供电公司"), sh("2025-10-13 10:00"))
    assert machine.handle(m.RequestExtension(LEAD, 5, "需协调供电公司"), end("2025-10-14")) == [
        m.LightChanged("T1", Light.YELLOW),
        m.NotifyHotline("T1", f"{LEAD} 申请延期 5 个工作日：需协调供电公司"),
    ]
    assert machine.ticket.state == State.EXTENSION_REQUESTED
    commands = machine.handle(m.ApproveExtension("supervisor:7"), end("2025-10-14"))
    new = end("2025-10-21")  # 10-15, 10-16, 10-17, 10-20, 10-21
    assert machine.ticket.deadline == new and machine.ticket.state == State.HANDLING
    assert m.InformCaller("T1", "您反映的事项办理期限延长5个工作日，原因：需协调供电公司") in commands
    assert m.NotifyUnit("T1", LEAD, "lead", f"延期已批准，新期限 {new.astimezone(UTC).isoformat()}") in commands
    assert m.LightChanged("T1", Light.NONE) in commands  # no longer one day from the deadline
    with pytest.raises(InvalidRequest, match="最多 1 次"):
        machine.handle(m.RequestExtension(LEAD, 1, "仍需协调"), sh("2025-10-15 10:00"))


def test_zibo_extension_asked_after_the_deadline_is_refused_and_changes_nothing() -> None:
    machine = handling("zibo")
    before = machine.ticket
    with pytest.raises(InvalidRequest, match="延期申请须在"):
        machine.handle(m.RequestExtension(LEAD, 3, "需协调"), sh("2025-10-15 00:00"))
    assert machine.ticket is before  # not even the overdue effect was kept


@BOTH
def test_provincial_tickets_ask_for_extension_a_working_day_before_the_deadline(name: str) -> None:
    e = EXPECT[name]
    machine = handling(name, provincial=True)
    latest = CAL.previous_working_day(date.fromisoformat(e.handle)).isoformat()
    assert latest == {"zibo": "2025-10-13", "mayors-hotline": "2025-10-15"}[name]
    with pytest.raises(InvalidRequest, match="延期申请须在"):
        machine.handle(m.RequestExtension(LEAD, 2, "需协调"), sh(e.handle + " 00:00"))
    machine.handle(m.RequestExtension(LEAD, 2, "需协调"), end(latest))
    assert machine.ticket.state == State.EXTENSION_REQUESTED


def test_mayors_hotline_extensions_up_to_thirty_working_days_in_all() -> None:
    machine = handling("mayors-hotline")
    with pytest.raises(InvalidRequest, match="最长 30 个工作日"):
        machine.handle(m.RequestExtension(LEAD, 24, "疑难"), sh("2025-10-15 10:00"))  # 7 + 24 > 30
    machine.handle(m.RequestExtension(LEAD, 10, "疑难"), sh("2025-10-15 10:00"))
    machine.handle(m.ApproveExtension("supervisor:7"), sh("2025-10-15 11:00"))
    assert machine.ticket.deadline == end("2025-10-30")  # 10-17, 10-20 … 10-24, 10-27 … 10-30
    machine.handle(m.RequestExtension(LEAD, 13, "仍疑难"), sh("2025-10-29 10:00"))
    machine.handle(m.ApproveExtension("supervisor:7"), sh("2025-10-29 11:00"))
    assert machine.ticket.deadline == end("2025-11-18")  # 10-31, 11-03 … 11-07, 11-10 … 11-14, 11-17, 11-18
    assert machine.ticket.granted_working_days == 30
    with pytest.raises(InvalidRequest, match="最长 30 个工作日"):
        machine.handle(m.RequestExtension(LEAD, 1, "再延"), sh("2025-11-10 10:00"))


@BOTH
def test_a_refused_extension_keeps_the_deadline(name: str) -> None:
    machine = handling(name)
    machine.handle(m.RequestExtension(LEAD, 3, "需协调"), sh("2025-10-10 10:00"))
    commands = machine.handle(m.RefuseExtension("supervisor:7", "事项简单，应按期办结"), sh("2025-10-10 11:00"))
    assert commands == [m.NotifyUnit("T1", LEAD, "lead", "延期未获批准：事项简单，应按期办结")]
    assert machine.ticket.state == State.HANDLING and machine.ticket.deadline == end(EXPECT[name].handle)
    assert machine.ticket.pending_extension is None


# ---------------------------------------------------------------- 回退 return
@BOTH
def test_a_return_within_two_working_days_is_not_overdue(name: str) -> None:
    machine = dispatched(name)
    commands = machine.handle(m.RequestReturn(LEAD, "不属本单位职责", OTHER), sh("2025-10-10 23:00"))
    assert commands == [m.NotifyHotline("T1", f"{LEAD} 申请回退，建议 {OTHER}：不属本单位职责")]
    assert machine.ticket.state == State.RETURN_REQUESTED and not machine.ticket.counted_overdue


@BOTH
def test_a_late_return_counts_as_overdue(name: str) -> None:
    machine = handling(name)
    machine.handle(m.RequestReturn(LEAD, "不属本单位职责", OTHER), sh("2025-10-11 09:00"))  # window ended 10-10
    assert machine.ticket.counted_overdue
    assert machine.ticket.timeline[-1].note == "不属本单位职责（超期回退，视为超期办理件）"
    provincial = handling(name, provincial=True)  # 1 working day: ended 10-09
    provincial.handle(m.RequestReturn(LEAD, "不属本单位职责", OTHER), sh("2025-10-10 09:00"))
    assert provincial.ticket.counted_overdue


@BOTH
def test_an_approved_return_is_dispatched_again_with_new_clocks(name: str) -> None:
    machine = dispatched(name)
    machine.handle(m.RequestReturn(LEAD, "不属本单位职责", OTHER), sh("2025-10-09 10:00"))
    with pytest.raises(InvalidRequest, match="不能再转办给"):
        machine.handle(m.ApproveReturn("supervisor:7", "属实", LEAD), sh("2025-10-11 10:00"))
    machine.handle(m.ApproveReturn("supervisor:7", "属实"), sh("2025-10-11 10:00"))
    t = machine.ticket
    assert (t.state, t.lead_unit, t.deadline) == (State.ACCEPTED, None, None)
    assert t.dispatch_due == end("2025-10-13")  # from the make-up Saturday: Monday
    machine.handle(m.Dispatch(AGENT, OTHER), sh("2025-10-13 09:00"))
    assert machine.ticket.deadline == end(EXPECT[name].from_1013)
    assert machine.ticket.return_due == end("2025-10-15")


@BOTH
def test_a_return_approved_with_a_unit_goes_straight_to_it_and_a_refused_one_stays(name: str) -> None:
    machine = dispatched(name)
    machine.handle(m.RequestReturn(LEAD, "不属本单位职责", OTHER), sh("2025-10-09 09:00"))
    commands = machine.handle(m.ApproveReturn("supervisor:7", "属实", OTHER), sh("2025-10-09 10:00"))
    assert [(c.unit, c.role) for c in commands if isinstance(c, m.NotifyUnit)] == [(OTHER, "lead")]
    assert machine.ticket.deadline == end(EXPECT[name].from_1009)
    refused = dispatched(name)
    refused.handle(m.RequestReturn(LEAD, "不属本单位职责", OTHER), sh("2025-10-09 09:00"))
    commands = refused.handle(m.RefuseReturn("supervisor:7", "属本单位职责"), sh("2025-10-09 10:00"))
    assert commands == [m.NotifyUnit("T1", LEAD, "lead", "回退未获批准：属本单位职责")]
    assert refused.ticket.state == State.HANDLING and refused.ticket.deadline == end(EXPECT[name].handle)


# ---------------------------------------------------------------- 续报 follow-up
@BOTH
def test_a_follow_up_commits_a_later_date_that_becomes_the_deadline(name: str) -> None:
    machine = handling(name)
    with pytest.raises(InvalidRequest, match="须晚于办理期限"):
        machine.handle(
            m.CommitFollowUp(LEAD, date.fromisoformat(EXPECT[name].handle), "需招标"), sh("2025-10-13 10:00")
        )
    commands = machine.handle(m.CommitFollowUp(LEAD, date(2025, 10, 31), "需招标更换灯杆"), sh("2025-10-13 10:00"))
    assert m.InformCaller("T1", "您反映的事项承办单位承诺于2025-10-31前办结：需招标更换灯杆") in commands
    assert machine.ticket.state == State.FOLLOW_UP and machine.ticket.deadline == end("2025-10-31")
    assert machine.next_deadline() == sh("2025-10-31 00:00")  # yellow: only 10-31 itself is left
    machine.handle(m.Progress(LEAD, "已完成招标"), sh("2025-10-20 10:00"))
    assert machine.ticket.timeline[-1].stage == m.Stage.FOLLOW_UP
    machine.handle(m.Reply(LEAD, "已更换灯杆"), sh("2025-10-30 10:00"))
    assert machine.ticket.state == State.REPLIED and not machine.ticket.counted_overdue


@BOTH
def test_a_follow_up_after_the_deadline_is_refused(name: str) -> None:
    machine = handling(name)
    with pytest.raises(InvalidRequest, match="续报须在办理期限"):
        machine.handle(m.CommitFollowUp(LEAD, date(2025, 11, 30), "需招标"), sh(EXPECT[name].overdue))


# ---------------------------------------------------------------- 回访 callback, 办结 close, 重办 redo
@BOTH
def test_a_satisfied_callback_closes_the_ticket(name: str) -> None:
    machine = replied(name)
    assert (
        machine.handle(m.Callback(AGENT, Satisfaction.SATISFIED, Satisfaction.FAIRLY_SATISFIED), sh("2025-10-10 15:00"))
        == []
    )
    t = machine.ticket
    assert (t.state, t.process_rating, t.result_rating) == (
        State.CLOSED,
        Satisfaction.SATISFIED,
        Satisfaction.FAIRLY_SATISFIED,
    )
    assert t.closed_at == sh("2025-10-10 15:00")
    assert actions(machine)[-2:] == ["Callback", "Close"]
    assert dict(t.timeline[-2].data) == {"process": "1", "result": "2"}


@BOTH
def test_unsatisfied_with_a_reasonable_demand_goes_back_to_the_unit(name: str) -> None:
    machine = replied(name)
    cb = m.Callback(AGENT, Satisfaction.FAIRLY_SATISFIED, Satisfaction.UNSATISFIED, demand_reasonable=True)
    commands = machine.handle(cb, sh("2025-10-13 15:00"))
    assert commands == [m.NotifyUnit("T1", LEAD, "lead", "重办：来电人对办理结果不满意且诉求合理")]
    t = machine.ticket
    assert (t.state, t.redo_count, t.unsatisfied_results) == (State.HANDLING, 1, 1)
    assert t.deadline == end(EXPECT[name].redo_from_1013)
    assert t.timeline[-1].stage == m.Stage.REDO


@BOTH
def test_unsatisfied_without_a_reasonable_demand_is_closed(name: str) -> None:
    machine = replied(name)
    machine.handle(m.Callback(AGENT, Satisfaction.UNSATISFIED, Satisfaction.UNSATISFIED), sh("2025-10-13 15:00"))
    assert machine.ticket.state == State.CLOSED
    assert machine.ticket.timeline[-1].note == "答复内容符合法律、法规和政策规定，予以办结"


@BOTH
def test_an_unclear_reply_is_rejected_for_redo(name: str) -> None:
    machine = replied(name)
    machine.handle(m.RejectReply("supervisor:7", "回复不明确"), sh("2025-10-13 15:00"))
    assert machine.ticket.state == State.HANDLING and machine.ticket.redo_count == 1
    assert machine.ticket.deadline == end(EXPECT[name].redo_from_1013)


# ---------------------------------------------------------------- 终止 terminate
@BOTH
def test_termination_is_reviewed_by_the_hotline(name: str) -> None:
    machine = handling(name)
    ground = m.TerminationGround.INFORMATION_REFUSED
    commands = machine.handle(m.RequestTermination(LEAD, ground, "来电人拒绝提供地址"), sh("2025-10-09 10:00"))
    assert commands == [m.NotifyHotline("T1", f"{LEAD} 申请终止办理（诉求人拒绝提供相关信息）：来电人拒绝提供地址")]
    assert machine.ticket.state == State.TERMINATION_REQUESTED
    machine.handle(m.ApproveTermination("supervisor:7", "材料属实"), sh("2025-10-09 11:00"))
    assert machine.ticket.state == State.TERMINATED and machine.ticket.closed_at == sh("2025-10-09 11:00")
    assert machine.next_deadline() is None
    with pytest.raises(IllegalTransition):
        machine.handle(m.SameMatter(AGENT, "138"), sh("2025-10-10 11:00"))
    refused = handling(name)
    refused.handle(m.RequestTermination(LEAD, m.TerminationGround.UNLAWFUL_DEMAND, "x"), sh("2025-10-09 10:00"))
    refused.handle(m.RefuseTermination("supervisor:7", "诉求合法"), sh("2025-10-09 11:00"))
    assert refused.ticket.state == State.HANDLING and refused.ticket.deadline == end(EXPECT[name].handle)


# ---------------------------------------------------------------- 督办 supervision
@BOTH
def test_supervision_after_two_redos_and_two_unsatisfied_results(name: str) -> None:
    machine = replied(name)
    unsatisfied = m.Callback(AGENT, Satisfaction.UNSATISFIED, Satisfaction.UNSATISFIED, demand_reasonable=True)
    first = machine.handle(unsatisfied, sh("2025-10-09 15:00"))
    assert not any(isinstance(c, m.RaiseSupervision) for c in first)
    machine.handle(m.Reply(LEAD, "再次处理"), sh("2025-10-10 10:00"))
    second = machine.handle(unsatisfied, sh("2025-10-10 15:00"))
    raised = [c.reason for c in second if isinstance(c, m.RaiseSupervision)]
    assert raised == [SupervisionReason.REOPENED, SupervisionReason.UNSATISFIED]
    assert machine.ticket.supervision == (SupervisionReason.REOPENED, SupervisionReason.UNSATISFIED)


@BOTH
def test_supervision_when_the_matter_is_reported_again_and_by_many(name: str) -> None:
    machine = handling(name)
    assert machine.handle(m.SameMatter(AGENT, "13800000000"), sh("2025-10-09 10:00")) == []
    commands = machine.handle(m.SameMatter(AGENT, "13800000000"), sh("2025-10-09 11:00"))  # 3rd report
    assert commands == [m.RaiseSupervision("T1", SupervisionReason.REPEATED, "多次反映")]
    assert machine.ticket.callers == ("13800000000",)
    machine.handle(m.SameMatter(AGENT, "13900000000"), sh("2025-10-09 12:00"))
    commands = machine.handle(m.SameMatter(AGENT, "13700000000"), sh("2025-10-09 13:00"))  # 3rd caller
    assert commands == [m.RaiseSupervision("T1", SupervisionReason.MANY_CALLERS, "多个诉求人集中反映")]
    assert machine.handle(m.Supervise("supervisor:7", "领导交办"), sh("2025-10-09 14:00")) == [
        m.RaiseSupervision("T1", SupervisionReason.MANUAL, "领导交办")
    ]


@BOTH
def test_a_closed_matter_raised_again_is_not_accepted_but_counts(name: str) -> None:
    machine = replied(name)
    machine.handle(m.Callback(AGENT, Satisfaction.SATISFIED, Satisfaction.SATISFIED), sh("2025-10-10 15:00"))
    commands = machine.handle(m.SameMatter(AGENT, "13800000000"), sh("2025-10-20 10:00"))
    assert commands == [m.InformCaller("T1", "该事项已按规定办理完毕并答复，以同一事实和理由再次反映的不再受理")]
    assert machine.ticket.state == State.CLOSED and machine.ticket.reports == 2


# ---------------------------------------------------------------- multi-unit
@BOTH
def test_the_hotline_settles_a_dispute_with_a_new_lead_unit(name: str) -> None:
    machine = handling(name)
    commands = machine.handle(m.ReassignUnits("supervisor:7", OTHER, (LEAD,), "职责在市场监管"), sh("2025-10-09 10:00"))
    assert [(c.unit, c.role) for c in commands if isinstance(c, m.NotifyUnit)] == [(OTHER, "lead"), (LEAD, "assist")]
    t = machine.ticket
    assert (t.state, t.lead_unit, t.assisting_units) == (State.DISPATCHED, OTHER, (LEAD,))
    assert t.deadline == end(EXPECT[name].from_1009)
    assert t.timeline[-1].note == "职责争议由热线裁定：职责在市场监管"
    with pytest.raises(InvalidRequest, match="只有主办单位"):
        machine.handle(m.Reply(LEAD, "已处理"), sh("2025-10-09 11:00"))


# ---------------------------------------------------------------- the machine's own rules
def test_an_unknown_state_event_pair_raises_naming_both() -> None:
    machine = opened("zibo")
    with pytest.raises(IllegalTransition) as caught:
        machine.handle(m.Callback(AGENT, Satisfaction.SATISFIED, Satisfaction.SATISFIED), sh("2025-09-30 11:00"))
    assert "accepted" in caught.value.message and "Callback" in caught.value.message
    assert caught.value.error_id == "illegal-transition" and caught.value.status == 409
    closed = replied("zibo")
    closed.handle(m.Callback(AGENT, Satisfaction.SATISFIED, Satisfaction.SATISFIED), sh("2025-10-10 15:00"))
    with pytest.raises(IllegalTransition, match=r"closed.*Reply"):
        closed.handle(m.Reply(LEAD, "x"), sh("2025-10-11 15:00"))


def test_time_must_be_aware_and_never_go_back() -> None:
    machine = handling("zibo")
    before = machine.ticket
    with pytest.raises(InvalidRequest, match="没有时区"):
        machine.handle(m.Tick(), datetime(2025, 10, 9, 10, 0))
    with pytest.raises(InvalidRequest, match="时间倒流"):
        machine.handle(m.Progress(LEAD, "x"), sh("2025-09-30 09:59"))
    assert machine.ticket is before


def test_the_timeline_records_who_what_when_and_why() -> None:
    machine = replied("zibo")
    machine.handle(m.Callback(AGENT, Satisfaction.SATISFIED, Satisfaction.SATISFIED), sh("2025-10-10 15:00"))
    rows = [
        (e.actor, e.stage.label, e.action, e.at.astimezone(SHANGHAI).strftime("%m-%d %H:%M"))
        for e in machine.ticket.timeline
    ]
    assert rows == [
        (AGENT, "受理", "Open", "09-30 10:00"),
        (AGENT, "转办", "Dispatch", "09-30 10:00"),
        (LEAD, "办理", "Acknowledge", "09-30 10:00"),
        (LEAD, "反馈", "Reply", "10-09 10:00"),
        (AGENT, "回访", "Callback", "10-10 15:00"),
        (AGENT, "办结", "Close", "10-10 15:00"),
    ]
    assert machine.ticket.timeline[1].note == "转办"
    assert machine.ticket.timeline[3].note == "已修复路灯"
    assert all(entry.at.tzinfo == UTC for entry in machine.ticket.timeline)


def test_the_transition_table_names_only_real_events_and_every_event_has_a_row() -> None:
    events = {cls.__name__ for cls in m.Event.__args__}  # type: ignore[attr-defined]
    assert {event for _, event in TRANSITIONS} == events
    for (state, _), targets in TRANSITIONS.items():
        assert isinstance(state, State) and all(isinstance(t, State) for t in targets)


# ---------------------------------------------------------------- property: random event sequences
UNITS = st.sampled_from([LEAD, LEAD, LEAD, HELPER, OTHER])  # mostly the lead unit, sometimes a wrong one
TEXT = st.sampled_from(["处理中", "已办结", "情况说明", ""])  # "" breaks the rule that reasons are given
EVENTS: dict[str, st.SearchStrategy[m.Event]] = {
    "AnswerDirectly": st.builds(m.AnswerDirectly, st.just(AGENT), TEXT),
    "Dispatch": st.builds(m.Dispatch, st.just(AGENT), UNITS, st.lists(UNITS, max_size=2).map(tuple)),
    "Acknowledge": st.builds(m.Acknowledge, UNITS),
    "FirstReport": st.builds(m.FirstReport, UNITS, TEXT),
    "Progress": st.builds(m.Progress, UNITS, TEXT),
    "AssistReply": st.builds(m.AssistReply, UNITS, TEXT),
    "RequestReturn": st.builds(m.RequestReturn, UNITS, TEXT, UNITS),
    "ApproveReturn": st.builds(m.ApproveReturn, st.just(AGENT), TEXT, st.none() | UNITS),
    "RefuseReturn": st.builds(m.RefuseReturn, st.just(AGENT), TEXT),
    "RequestExtension": st.builds(m.RequestExtension, UNITS, st.integers(-1, 8) | st.integers(9, 31), TEXT),
    "ApproveExtension": st.builds(m.ApproveExtension, st.just(AGENT)),
    "RefuseExtension": st.builds(m.RefuseExtension, st.just(AGENT), TEXT),
    "CommitFollowUp": st.builds(m.CommitFollowUp, UNITS, st.dates(date(2025, 9, 1), date(2026, 6, 30)), TEXT),
    "Reply": st.builds(m.Reply, UNITS, TEXT),
    "RejectReply": st.builds(m.RejectReply, st.just(AGENT), TEXT),
    "Callback": st.builds(
        m.Callback, st.just(AGENT), st.sampled_from(Satisfaction), st.sampled_from(Satisfaction), st.booleans()
    ),
    "RequestTermination": st.builds(m.RequestTermination, UNITS, st.sampled_from(m.TerminationGround), TEXT),
    "ApproveTermination": st.builds(m.ApproveTermination, st.just(AGENT), TEXT),
    "RefuseTermination": st.builds(m.RefuseTermination, st.just(AGENT), TEXT),
    "ReassignUnits": st.builds(m.ReassignUnits, st.just(AGENT), UNITS, st.lists(UNITS, max_size=1).map(tuple), TEXT),
    "SameMatter": st.builds(m.SameMatter, st.just(AGENT), st.sampled_from(["138", "139", "137"])),
    "Supervise": st.builds(m.Supervise, st.just(AGENT), TEXT),
    "Tick": st.just(m.Tick()),
}


def test_every_event_has_a_strategy() -> None:
    assert set(EVENTS) == {cls.__name__ for cls in m.Event.__args__}  # type: ignore[attr-defined]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(POLICIES)),
    kind=st.sampled_from(Kind),
    emergency=st.booleans(),
    provincial=st.booleans(),
    data=st.data(),
)
def test_random_event_sequences_keep_the_timeline_and_states_sound(
    name: str, kind: Kind, emergency: bool, provincial: bool, data: st.DataObject
) -> None:
    now = sh("2025-09-26 09:00")
    lead = LEAD if emergency else None
    machine, _ = open_ticket(name, "2025-09-26 09:00", kind, emergency=emergency, provincial=provincial, lead_unit=lead)
    for _ in range(data.draw(st.integers(0, 40), label="steps")):
        # mostly an event the state accepts (so that deep states are reached), sometimes any event at all
        accepted = sorted(event for state, event in TRANSITIONS if state == machine.ticket.state)
        names = st.sampled_from(accepted) if data.draw(st.integers(0, 9)) else st.sampled_from(sorted(EVENTS))
        event = data.draw(names.flatmap(EVENTS.__getitem__), label="event")
        minutes = st.integers(-30, 120) | st.integers(0, 4 * 24 * 60)  # a while, or days; rarely back in time
        now += timedelta(minutes=data.draw(minutes, label="minutes later"))
        before = machine.ticket
        try:
            commands = machine.handle(event, now)
        except DomainError:
            assert machine.ticket is before  # a refused event leaves no trace
            continue
        after = machine.ticket
        assert after.state in TRANSITIONS[(before.state, type(event).__name__)]
        assert after.timeline[: len(before.timeline)] == before.timeline  # append-only
        times = [entry.at for entry in after.timeline]
        assert times == sorted(times) and times[-1] <= now
        assert len(set(after.supervision)) == len(after.supervision)
        deadline = machine.next_deadline()
        assert deadline is None or deadline > now  # everything due has been applied
        # one 催办 per deadline: each red light is for another deadline, and each sends one reminder
        reds = [dict(entry.data)["deadline"] for entry in after.timeline if entry.action == "red_light"]
        assert len(reds) == len(set(reds))
        sent = [c for c in commands if isinstance(c, m.SendReminder) and c.message.startswith("工单已超期")]
        assert len(sent) == len(reds) - sum(entry.action == "red_light" for entry in before.timeline)
