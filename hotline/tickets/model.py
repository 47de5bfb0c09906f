"""The vocabulary of the 工单 (ticket) lifecycle: data, ports, events and commands.

- Data: Ticket and its TimelineEntry, plain frozen dataclasses and enums that the ticket store
  persists. Times are aware UTC datetimes. Labels (.label) are what people read.
- Ports: what the lifecycle needs of a city policy (TicketRules, SupervisionRules, TicketPolicy;
  policy.py loads them) and of a working-day calendar (WorkingCalendar; workdays.py).
- Events in and commands out of lifecycle.TicketMachine.handle().
Only the standard library and hotline.core are imported here.
"""

from __future__ import annotations

import dataclasses
import enum
from datetime import date, datetime
from typing import Protocol

from hotline.core.errors import InvalidRequest


class State(enum.StrEnum):
    ACCEPTED = "accepted"  # 受理: waiting to be dispatched
    DISPATCHED = "dispatched"  # 转办: sent to the lead unit, not yet signed for
    HANDLING = "handling"  # 办理 (also after 重办)
    EXTENSION_REQUESTED = "extension_requested"  # 延期: the hotline decides
    RETURN_REQUESTED = "return_requested"  # 回退: the hotline reviews
    FOLLOW_UP = "follow_up"  # 续报: the unit committed a date
    TERMINATION_REQUESTED = "termination_requested"  # 终止: the hotline reviews
    REPLIED = "replied"  # 反馈: waiting for the callback (回访)
    CLOSED = "closed"  # 办结
    TERMINATED = "terminated"  # 终止

    @property
    def label(self) -> str:
        return _STATE_LABELS[self]


class Kind(enum.StrEnum):
    """Kinds of request (001 第三条; 002 1–5)."""

    CONSULTATION = "consultation"  # 咨询
    HELP = "help"  # 求助
    COMPLAINT = "complaint"  # 投诉
    REPORT = "report"  # 举报
    SUGGESTION = "suggestion"  # 意见建议
    PRAISE = "praise"  # 表扬

    @property
    def label(self) -> str:
        return _KIND_LABELS[self]

    @classmethod
    def parse(cls, text: str) -> Kind:
        """A kind from its id ("complaint") or its Chinese name ("投诉")."""
        for kind in cls:
            if text.strip() in (kind.value, kind.label):
                return kind
        choices = ", ".join(f"{k.value} ({k.label})" for k in cls)
        raise InvalidRequest(f"unknown kind of request {text!r}; one of: {choices}")


class Stage(enum.StrEnum):
    """What a timeline entry is about."""

    ACCEPT = "accept"
    DISPATCH = "dispatch"
    HANDLE = "handle"
    EXTEND = "extend"
    RETURN = "return"
    FOLLOW_UP = "follow_up"
    REPLY = "reply"
    CALLBACK = "callback"
    REDO = "redo"
    CLOSE = "close"
    TERMINATE = "terminate"
    LIGHT = "light"
    REMIND = "remind"
    SUPERVISE = "supervise"

    @property
    def label(self) -> str:
        return _STAGE_LABELS[self]


class Light(enum.StrEnum):
    NONE = "none"
    YELLOW = "yellow"  # 黄灯
    RED = "red"  # 红灯


class Satisfaction(enum.IntEnum):
    """A callback rating of the process or the result (001 第十一条(八))."""

    SATISFIED = 1  # 满意
    FAIRLY_SATISFIED = 2  # 基本满意
    UNSATISFIED = 3  # 不满意

    @property
    def label(self) -> str:
        return ("满意", "基本满意", "不满意")[self.value - 1]


class SupervisionReason(enum.StrEnum):
    OVERDUE = "overdue"  # 超出办理时限未办结 (001 第十五条(一); 004 第二十二条(二))
    REOPENED = "reopened"  # 多次重办 (000)
    REPEATED = "repeated"  # 多次反弹、重复投诉 (001 第十五条(二); 004 第二十二条(三))
    MANY_CALLERS = "many_callers"  # 多个诉求人集中反映 (004 第二十二条(三))
    UNSATISFIED = "unsatisfied"  # 群众满意率不高 (001 第十五条(四))
    MANUAL = "manual"  # 其他需要督办的事项 (001 第十五条(六))

    @property
    def label(self) -> str:
        return _SUPERVISION_LABELS[self]


class TerminationGround(enum.StrEnum):
    """004 第十五条(五)(六)."""

    INFORMATION_REFUSED = "information_refused"  # 诉求人拒绝提供相关信息
    UNLAWFUL_DEMAND = "unlawful_demand"  # 解释说明后仍坚持不合法、违背公序良俗的诉求

    @property
    def label(self) -> str:
        return "诉求人拒绝提供相关信息" if self == TerminationGround.INFORMATION_REFUSED else "诉求不合法或违背公序良俗"


_STATE_LABELS = {
    State.ACCEPTED: "已受理",
    State.DISPATCHED: "已转办",
    State.HANDLING: "办理中",
    State.EXTENSION_REQUESTED: "延期待审",
    State.RETURN_REQUESTED: "回退待审",
    State.FOLLOW_UP: "续报中",
    State.TERMINATION_REQUESTED: "终止待审",
    State.REPLIED: "已反馈",
    State.CLOSED: "已办结",
    State.TERMINATED: "已终止",
}
_KIND_LABELS = {
    Kind.CONSULTATION: "咨询",
    Kind.HELP: "求助",
    Kind.COMPLAINT: "投诉",
    Kind.REPORT: "举报",
    Kind.SUGGESTION: "意见建议",
    Kind.PRAISE: "表扬",
}
_STAGE_LABELS = {
    Stage.ACCEPT: "受理",
    Stage.DISPATCH: "转办",
    Stage.HANDLE: "办理",
    Stage.EXTEND: "延期",
    Stage.RETURN: "回退",
    Stage.FOLLOW_UP: "续报",
    Stage.REPLY: "反馈",
    Stage.CALLBACK: "回访",
    Stage.REDO: "重办",
    Stage.CLOSE: "办结",
    Stage.TERMINATE: "终止",
    Stage.LIGHT: "亮灯",
    Stage.REMIND: "催办",
    Stage.SUPERVISE: "督办",
}
_SUPERVISION_LABELS = {
    SupervisionReason.OVERDUE: "超出办理时限未办结",
    SupervisionReason.REOPENED: "多次重办",
    SupervisionReason.REPEATED: "多次反映",
    SupervisionReason.MANY_CALLERS: "多个诉求人集中反映",
    SupervisionReason.UNSATISFIED: "办理结果不满意",
    SupervisionReason.MANUAL: "其他需要督办的事项",
}


# ---------------------------------------------------------------- the policy and calendar ports
@dataclasses.dataclass(frozen=True, slots=True)
class TicketRules:
    """The clocks and options of one ticket, resolved from a city policy (kind, emergency, provincial)."""

    dispatch_working_days: int  # 转办
    dispatch_hours: int | None  # emergency dispatch clock instead of working days; 0 = in the same step
    handle_working_days: int  # 办理 (emergency: the result deadline)
    first_report_hours: int | None  # emergency first report, wall-clock hours
    extension_max_working_days: int | None  # per extension; None: only the total caps it
    extension_max_count: int | None
    extension_max_total_working_days: int | None  # handle + all extensions
    extension_request_lead_working_days: int  # ask at the latest this many working days before the deadline
    return_window_working_days: int  # 回退
    yellow_before_working_days: int
    red_after_working_days: int
    redo_handle_working_days: int  # 重办
    direct_answer: bool  # may be answered at once and closed without dispatch


@dataclasses.dataclass(frozen=True, slots=True)
class SupervisionRules:
    """When a ticket is put under 督办 (None: never for that reason)."""

    on_overdue: bool
    redo_count: int | None
    repeat_reports: int | None  # reports of the matter, the first call included
    distinct_callers: int | None
    unsatisfied_results: int | None


class TicketPolicy(Protocol):
    """What the lifecycle needs of a city policy (hotline.tickets.policy.Policy)."""

    @property
    def name(self) -> str: ...

    @property
    def supervision(self) -> SupervisionRules: ...

    def rules(self, kind: Kind, *, emergency: bool = False, provincial: bool = False) -> TicketRules: ...


class WorkingCalendar(Protocol):
    """What the lifecycle needs of a working-day calendar (hotline.tickets.workdays.WorkCalendar)."""

    def add_working_days(self, start: datetime, n: int) -> datetime: ...

    def working_days_before(self, moment: datetime, n: int) -> datetime: ...

    def add_hours(self, start: datetime, hours: float) -> datetime: ...

    def end_of_day(self, day: date) -> datetime: ...


# ---------------------------------------------------------------- data model
@dataclasses.dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime  # UTC
    actor: str  # who: an agent, a unit, "system"
    stage: Stage
    action: str  # what: the event or effect, e.g. "Dispatch", "red_light"
    note: str = ""  # why / what was said, for people (Chinese)
    data: tuple[tuple[str, str], ...] = ()  # details: units, deadlines, ratings


@dataclasses.dataclass(frozen=True, slots=True)
class ExtensionRequest:
    working_days: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Ticket:
    """A 工单. Replaced, never mutated: the machine builds the next version from this one."""

    ticket_id: str
    kind: Kind
    caller: str
    summary: str
    accepted_at: datetime
    timeline: tuple[TimelineEntry, ...]
    emergency: bool = False
    provincial: bool = False
    state: State = State.ACCEPTED
    lead_unit: str | None = None
    assisting_units: tuple[str, ...] = ()
    dispatch_due: datetime | None = None
    dispatched_at: datetime | None = None
    deadline: datetime | None = None  # the reply deadline that binds the unit now
    return_due: datetime | None = None
    first_report_due: datetime | None = None  # while the emergency first report is outstanding
    granted_working_days: int = 0  # handle + approved extensions of the current unit period
    extensions: int = 0
    pending_extension: ExtensionRequest | None = None
    counted_overdue: bool = False
    redo_count: int = 0
    unsatisfied_results: int = 0
    reports: int = 1
    callers: tuple[str, ...] = ()
    process_rating: Satisfaction | None = None
    result_rating: Satisfaction | None = None
    replied_at: datetime | None = None
    closed_at: datetime | None = None
    light: Light = Light.NONE
    supervision: tuple[SupervisionReason, ...] = ()
    fired: tuple[str, ...] = ()  # time-driven effects already applied, "name@due"


# ---------------------------------------------------------------- events
@dataclasses.dataclass(frozen=True, slots=True)
class AnswerDirectly:
    by: str
    answer: str


@dataclasses.dataclass(frozen=True, slots=True)
class Dispatch:
    by: str
    lead_unit: str
    assisting_units: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Acknowledge:
    by: str  # the lead unit signs for the ticket


@dataclasses.dataclass(frozen=True, slots=True)
class FirstReport:
    by: str
    text: str  # 初步处置情况 (emergency tickets)


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    by: str
    text: str  # 阶段性工作情况 / 续报


@dataclasses.dataclass(frozen=True, slots=True)
class AssistReply:
    by: str  # an assisting unit
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class RequestReturn:
    by: str
    reason: str
    suggested_unit: str


@dataclasses.dataclass(frozen=True, slots=True)
class ApproveReturn:
    by: str
    reason: str
    lead_unit: str | None = None  # re-dispatch at once to this unit
    assisting_units: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class RefuseReturn:
    by: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class RequestExtension:
    by: str
    working_days: int
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class ApproveExtension:
    by: str
    note: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class RefuseExtension:
    by: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class CommitFollowUp:
    by: str
    until: date  # the committed date (Asia/Shanghai calendar day)
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    by: str
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class RejectReply:
    by: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Callback:
    by: str
    process: Satisfaction
    result: Satisfaction
    demand_reasonable: bool = False  # the hotline's judgement, when the result is 不满意
    note: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class RequestTermination:
    by: str
    ground: TerminationGround
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class ApproveTermination:
    by: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class RefuseTermination:
    by: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class ReassignUnits:
    """The hotline settles a dispute over responsibility: a new lead unit, new clocks."""

    by: str
    lead_unit: str
    assisting_units: tuple[str, ...]
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class SameMatter:
    by: str
    caller: str  # who reported the same matter again (possibly the same caller)
    note: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Supervise:
    by: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: lights, reminders and overdue checks."""


Event = (
    AnswerDirectly
    | Dispatch
    | Acknowledge
    | FirstReport
    | Progress
    | AssistReply
    | RequestReturn
    | ApproveReturn
    | RefuseReturn
    | RequestExtension
    | ApproveExtension
    | RefuseExtension
    | CommitFollowUp
    | Reply
    | RejectReply
    | Callback
    | RequestTermination
    | ApproveTermination
    | RefuseTermination
    | ReassignUnits
    | SameMatter
    | Supervise
    | Tick
)


# ---------------------------------------------------------------- commands
@dataclasses.dataclass(frozen=True, slots=True)
class NotifyUnit:
    ticket_id: str
    unit: str
    role: str  # "lead" (主办) or "assist" (协办)
    message: str  # never the caller's identity (001 第十七条)


@dataclasses.dataclass(frozen=True, slots=True)
class NotifyHotline:
    ticket_id: str
    message: str  # a review to do, or the hotline's own clock ran out


@dataclasses.dataclass(frozen=True, slots=True)
class InformCaller:
    ticket_id: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class ReportEmergency:
    ticket_id: str  # 向市政府有关部门、单位报告 (001 第十三条)


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleCallback:
    ticket_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class SendReminder:
    ticket_id: str
    unit: str
    message: str  # 催办单


@dataclasses.dataclass(frozen=True, slots=True)
class LightChanged:
    ticket_id: str
    light: Light


@dataclasses.dataclass(frozen=True, slots=True)
class RaiseSupervision:
    ticket_id: str
    reason: SupervisionReason
    note: str = ""


Command = (
    NotifyUnit
    | NotifyHotline
    | InformCaller
    | ReportEmergency
    | ScheduleCallback
    | SendReminder
    | LightChanged
    | RaiseSupervision
)
