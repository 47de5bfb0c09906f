"""What `hotline tickets deadline` prints: one clock of a policy, worked out from a start time.

deadline_report(policy, calendar, kind, stage, start) gives the deadline, the instants the yellow
and red lights come on (for the clocks that have lights: the unit's reply), all as Asia/Shanghai
ISO strings to the second, and a line in Chinese for people. A deadline is met up to and including
its instant (23:59:59 of its last day, workdays.py); a light is on from its instant on.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hotline.core.errors import InvalidRequest
from hotline.tickets.lifecycle import red_light_at, yellow_light_at
from hotline.tickets.model import Kind, TicketRules, WorkingCalendar
from hotline.tickets.policy import Policy

SHANGHAI = ZoneInfo("Asia/Shanghai")
_WEEKDAYS = "一二三四五六日"


# stage id -> (Chinese name, emergency clock?, what the clock is)
STAGES: dict[str, tuple[str, bool, str]] = {
    "dispatch": ("转办", False, "热线平台转办时限"),
    "handle": ("办理", False, "承办单位办结回复时限"),
    "return": ("回退", False, "承办单位申请回退时限"),
    "extension": ("延期", False, "承办单位申请延期的最晚时间"),
    "redo": ("重办", False, "重办回复时限"),
    "emergency-dispatch": ("紧急转办", True, "紧急工单转办时限"),
    "emergency-report": ("紧急初报", True, "紧急工单反馈初步处置情况时限"),
    "emergency-result": ("紧急办结", True, "紧急工单反馈处置结果时限"),
}


def parse_stage(text: str) -> str:
    """A stage id from its id ("handle") or Chinese name ("办理")."""
    for stage, (label, _, _) in STAGES.items():
        if text.strip() in (stage, label):
            return stage
    choices = ", ".join(f"{stage} ({label})" for stage, (label, _, _) in STAGES.items())
    raise InvalidRequest(f"unknown stage {text!r}; one of: {choices}")


def parse_local(text: str) -> datetime:
    """'2025-09-30 10:00' (Asia/Shanghai) or an ISO time with an offset, as an aware datetime."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidRequest(f"cannot read the time {text!r}; write e.g. 2025-09-30 10:00") from exc
    return value.replace(tzinfo=SHANGHAI) if value.tzinfo is None else value


def deadline_report(
    policy: Policy,
    calendar: WorkingCalendar,
    kind: str,
    stage: str,
    start: datetime,
    *,
    provincial: bool = False,
) -> dict[str, Any]:
    """The deadline of one clock of `policy` for a ticket of `kind`, started at `start`."""
    the_kind, the_stage = Kind.parse(kind), parse_stage(stage)
    stage_label, emergency, what = STAGES[the_stage]
    rules = policy.rules(the_kind, emergency=emergency, provincial=provincial)
    if start.tzinfo is None:
        raise InvalidRequest(f"start {start.isoformat()} has no time zone")
    start = start.astimezone(SHANGHAI)
    period, deadline, lights = _clock(calendar, rules, the_stage, start)
    deadline = deadline.astimezone(SHANGHAI)
    yellow = red = None
    if lights:
        yellow = max(start, yellow_light_at(calendar, rules, deadline) + timedelta(microseconds=1))
        red = red_light_at(calendar, rules, deadline) + timedelta(microseconds=1)
    head = f"{policy.title}·{the_kind.label}·{stage_label}"
    if provincial:
        head += "（省级工单）"
    text = f"{head}：{what}，自 {_human(start)} 起算，{_period_text(period)}，期限 {_human(deadline)}"
    if yellow is not None and red is not None:
        text += f"；黄灯 {_human(yellow.astimezone(SHANGHAI))} 起，红灯 {_human(red.astimezone(SHANGHAI))} 起并自动催办"
    return {
        "policy": policy.name,
        "kind": the_kind.value,
        "stage": the_stage,
        "provincial": provincial,
        "emergency": emergency,
        "start": _iso(start),
        "period": period,
        "deadline": _iso(deadline),
        "yellow_light": _iso(yellow) if yellow is not None else None,
        "red_light": _iso(red) if red is not None else None,
        "text": text + "。",
    }


def _clock(
    calendar: WorkingCalendar, rules: TicketRules, stage: str, start: datetime
) -> tuple[dict[str, int], datetime, bool]:
    """(period, deadline, whether the reply lights apply)."""
    if stage == "dispatch" or (stage == "emergency-dispatch" and rules.dispatch_hours is None):
        days = rules.dispatch_working_days
        return {"working_days": days}, calendar.add_working_days(start, days), False
    if stage == "emergency-dispatch":
        assert rules.dispatch_hours is not None
        return {"hours": rules.dispatch_hours}, calendar.add_hours(start, rules.dispatch_hours), False
    if stage in ("handle", "emergency-result"):
        days = rules.handle_working_days
        return {"working_days": days}, calendar.add_working_days(start, days), True
    if stage == "redo":
        days = rules.redo_handle_working_days
        return {"working_days": days}, calendar.add_working_days(start, days), True
    if stage == "return":
        days = rules.return_window_working_days
        return {"working_days": days}, calendar.add_working_days(start, days), False
    if stage == "extension":
        handle = calendar.add_working_days(start, rules.handle_working_days)
        lead = rules.extension_request_lead_working_days
        return {"working_days_before_deadline": lead}, calendar.working_days_before(handle, lead), False
    if rules.first_report_hours is None:
        raise InvalidRequest("this policy has no emergency first-report clock")
    return {"hours": rules.first_report_hours}, calendar.add_hours(start, rules.first_report_hours), False


def _period_text(period: dict[str, int]) -> str:
    if "hours" in period:
        return "立即（同一步骤内）" if period["hours"] == 0 else f"{period['hours']}小时（自然时间）"
    if "working_days_before_deadline" in period:
        lead = period["working_days_before_deadline"]
        return "办理期限届满前" if lead == 0 else f"办理期限前{lead}个工作日"
    return f"当日不计，{period['working_days']}个工作日"


def _iso(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).isoformat(timespec="seconds")


def _human(moment: datetime) -> str:
    local = moment.astimezone(SHANGHAI)
    return f"{local.year}年{local.month}月{local.day}日（星期{_WEEKDAYS[local.weekday()]}）{local:%H:%M}"
