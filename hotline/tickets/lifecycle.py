"""The 工单 (ticket) lifecycle of a 12345 hotline, sans-IO: events in, commands out, time passed in.

Rules of this module (RULES.md "Ticket lifecycle"; every number is the city policy's, see policy.py):
- 受理: a ticket opens in ACCEPTED. If its kind may be answered directly (direct_answer: the knowledge base
  answers a consultation), AnswerDirectly closes it with no dispatch. Otherwise the hotline dispatches it within
  dispatch_working_days (or dispatch_hours). An emergency ticket whose policy says dispatch_hours == 0 is
  dispatched in the same step as it is opened, and the government is told (ReportEmergency).
- 转办: one lead unit and any assisting units, each notified. The unit's clocks start at dispatch (自接到转办工单
  之日起): the reply deadline (handle_working_days; for emergencies the result deadline), the return window and,
  for emergencies, the first report (first_report_hours, wall clock).
- 办理: the lead unit signs for the ticket and handles it; assisting units send their part to the lead unit.
- 延期: the lead unit asks for at most extension_max_working_days, at most extension_max_count times, with
  handle + extensions <= extension_max_total_working_days, no later than extension_request_lead_working_days
  before the deadline (0: up to the deadline itself). The hotline approves (deadline moved by that many working
  days from the old one, caller told why) or refuses (deadline unchanged).
- 回退: a unit that is not responsible returns the ticket with reason and suggested unit. After the return window
  it still may, but the ticket is counted overdue. The hotline approves (back to ACCEPTED, or on to a new unit)
  or refuses (the unit keeps it, deadline unchanged).
- 续报: before its deadline a unit that cannot finish in time commits a later date; the end of that date becomes
  the deadline and the caller is told. The unit reports progress until it replies.
- 反馈: the lead unit replies and a callback (回访) is scheduled; the hotline may reject an unclear reply (重办).
- 回访: the caller rates process and result (1 满意, 2 基本满意, 3 不满意). Result 不满意 with a reasonable demand:
  重办, back to the lead unit with redo_handle_working_days from now. Otherwise the ticket is 办结.
- 终止: the unit asks to stop (the caller refuses needed information, or keeps an unlawful demand after it was
  explained); the hotline reviews it (approve: 终止; refuse: back to handling).
- Lights while the unit owes a reply: yellow once only yellow_before_working_days are left (from
  working_days_before(deadline, n)); red once the deadline is red_after_working_days working days past, with
  one 催办 reminder per deadline. A late dispatch and a late emergency first report alert the hotline once.
- 督办, once per reason: overdue (if on_overdue), redo count, repeated reports, distinct callers on the matter,
  unsatisfied results, each at the policy's threshold (null: never); the hotline may also raise it by hand.
- A matter reported again after 办结 is not accepted again (the caller is told); it still counts for 督办.
- Time: `now` must be aware and not earlier than the last timeline entry; records are in UTC. Time-driven effects
  are applied before and after every event, so they never depend on how often Tick arrives; each is recorded at
  the instant it became due (or at the last entry's time, if that is later). A deadline is met up to and
  including its instant; the effect is due one microsecond later (next_deadline() returns that instant).
- The timeline is append-only: every accepted event adds entries (who, what, when, why); none is ever changed.
- A (state, event) pair not in TRANSITIONS raises IllegalTransition naming both; an event that breaks a rule
  raises InvalidRequest. Either way the ticket is left exactly as it was.
- Only the standard library and hotline.core are imported (and model.py): the calendar and the policy come in as
  Protocols (model.WorkingCalendar, model.TicketPolicy).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hotline.core.errors import Conflict, InvalidRequest
from hotline.tickets.model import (
    Acknowledge,
    AnswerDirectly,
    ApproveExtension,
    ApproveReturn,
    ApproveTermination,
    AssistReply,
    Callback,
    Command,
    CommitFollowUp,
    Dispatch,
    Event,
    ExtensionRequest,
    FirstReport,
    InformCaller,
    Kind,
    Light,
    LightChanged,
    NotifyHotline,
    NotifyUnit,
    Progress,
    RaiseSupervision,
    ReassignUnits,
    RefuseExtension,
    RefuseReturn,
    RefuseTermination,
    RejectReply,
    Reply,
    ReportEmergency,
    RequestExtension,
    RequestReturn,
    RequestTermination,
    SameMatter,
    Satisfaction,
    ScheduleCallback,
    SendReminder,
    Stage,
    State,
    Supervise,
    SupervisionReason,
    Tick,
    Ticket,
    TicketPolicy,
    TicketRules,
    TimelineEntry,
    WorkingCalendar,
)

_S = State
_OPEN = tuple(s for s in State if s not in (State.CLOSED, State.TERMINATED))
_UNIT_OWES = (State.DISPATCHED, State.HANDLING, State.EXTENSION_REQUESTED, State.FOLLOW_UP)

# (state, event) -> the states the event may lead to. Anything else raises IllegalTransition.
TRANSITIONS: dict[tuple[State, str], tuple[State, ...]] = {
    (_S.ACCEPTED, "AnswerDirectly"): (_S.CLOSED,),
    (_S.ACCEPTED, "Dispatch"): (_S.DISPATCHED,),
    (_S.DISPATCHED, "Acknowledge"): (_S.HANDLING,),
    (_S.DISPATCHED, "FirstReport"): (_S.HANDLING,),
    (_S.DISPATCHED, "RequestReturn"): (_S.RETURN_REQUESTED,),
    (_S.DISPATCHED, "Reply"): (_S.REPLIED,),
    (_S.DISPATCHED, "AssistReply"): (_S.DISPATCHED,),
    (_S.DISPATCHED, "ReassignUnits"): (_S.DISPATCHED,),
    (_S.HANDLING, "FirstReport"): (_S.HANDLING,),
    (_S.HANDLING, "Progress"): (_S.HANDLING,),
    (_S.HANDLING, "AssistReply"): (_S.HANDLING,),
    (_S.HANDLING, "RequestReturn"): (_S.RETURN_REQUESTED,),
    (_S.HANDLING, "RequestExtension"): (_S.EXTENSION_REQUESTED,),
    (_S.HANDLING, "CommitFollowUp"): (_S.FOLLOW_UP,),
    (_S.HANDLING, "RequestTermination"): (_S.TERMINATION_REQUESTED,),
    (_S.HANDLING, "Reply"): (_S.REPLIED,),
    (_S.HANDLING, "ReassignUnits"): (_S.DISPATCHED,),
    (_S.EXTENSION_REQUESTED, "ApproveExtension"): (_S.HANDLING,),
    (_S.EXTENSION_REQUESTED, "RefuseExtension"): (_S.HANDLING,),
    (_S.EXTENSION_REQUESTED, "FirstReport"): (_S.EXTENSION_REQUESTED,),
    (_S.EXTENSION_REQUESTED, "Progress"): (_S.EXTENSION_REQUESTED,),
    (_S.EXTENSION_REQUESTED, "AssistReply"): (_S.EXTENSION_REQUESTED,),
    (_S.EXTENSION_REQUESTED, "Reply"): (_S.REPLIED,),
    (_S.FOLLOW_UP, "Progress"): (_S.FOLLOW_UP,),
    (_S.FOLLOW_UP, "AssistReply"): (_S.FOLLOW_UP,),
    (_S.FOLLOW_UP, "RequestTermination"): (_S.TERMINATION_REQUESTED,),
    (_S.FOLLOW_UP, "Reply"): (_S.REPLIED,),
    (_S.RETURN_REQUESTED, "ApproveReturn"): (_S.ACCEPTED, _S.DISPATCHED),
    (_S.RETURN_REQUESTED, "RefuseReturn"): (_S.HANDLING,),
    (_S.TERMINATION_REQUESTED, "ApproveTermination"): (_S.TERMINATED,),
    (_S.TERMINATION_REQUESTED, "RefuseTermination"): (_S.HANDLING,),
    (_S.REPLIED, "Callback"): (_S.CLOSED, _S.HANDLING),
    (_S.REPLIED, "RejectReply"): (_S.HANDLING,),
    **{(s, "Supervise"): (s,) for s in _OPEN},
    **{(s, "SameMatter"): (s,) for s in (*_OPEN, _S.CLOSED)},
    **{(s, "Tick"): (s,) for s in State},
}


class IllegalTransition(Conflict):
    """An event that the ticket's current state does not accept."""

    error_id = "illegal-transition"


def yellow_light_at(calendar: WorkingCalendar, rules: TicketRules, deadline: datetime) -> datetime:
    """The last instant before the yellow light (it is on strictly after this)."""
    return calendar.working_days_before(deadline, rules.yellow_before_working_days)


def red_light_at(calendar: WorkingCalendar, rules: TicketRules, deadline: datetime) -> datetime:
    """The last instant before the red light and its 催办 reminder."""
    return calendar.add_working_days(deadline, rules.red_after_working_days)


_TICK = timedelta(microseconds=1)  # a deadline is met up to its instant; its effect is due just after


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidRequest(f"时间 {now.isoformat()} 没有时区")


def _light(calendar: WorkingCalendar, rules: TicketRules, ticket: Ticket, now: datetime) -> Light:
    if ticket.state not in _UNIT_OWES or ticket.deadline is None:
        return Light.NONE
    if now > red_light_at(calendar, rules, ticket.deadline):
        return Light.RED
    if now > yellow_light_at(calendar, rules, ticket.deadline):
        return Light.YELLOW
    return Light.NONE


def _text(value: str, what: str) -> str:
    if not value.strip():
        raise InvalidRequest(f"{what}不能为空")
    return value.strip()


class _Step:
    """The next version of a ticket being built by one handle() call; discarded if a rule is broken."""

    def __init__(self, ticket: Ticket, now: datetime) -> None:
        self.ticket = ticket
        self.now = now
        self.commands: list[Command] = []

    def record(
        self, actor: str, stage: Stage, action: str, note: str = "", at: datetime | None = None, **data: object
    ) -> None:
        last = self.ticket.timeline[-1].at if self.ticket.timeline else self.now
        when = max(at if at is not None else self.now, last)
        pairs = tuple((k, v.isoformat() if isinstance(v, datetime) else str(v)) for k, v in data.items())
        entry = TimelineEntry(_utc(when), actor, stage, action, note, pairs)
        self.ticket = dataclasses.replace(self.ticket, timeline=(*self.ticket.timeline, entry))

    def emit(self, command: Command) -> None:
        self.commands.append(command)


class TicketMachine:
    """One ticket's lifecycle. `handle(event, now)` returns the commands to carry out, in order."""

    def __init__(self, ticket: Ticket, policy: TicketPolicy, calendar: WorkingCalendar) -> None:
        self._ticket = ticket
        self.policy = policy
        self.calendar = calendar
        self.rules = policy.rules(ticket.kind, emergency=ticket.emergency, provincial=ticket.provincial)
        self._handlers: dict[type, Callable[[_Step, Event], None]] = {
            AnswerDirectly: self._on_answer_directly,
            Dispatch: self._on_dispatch,
            Acknowledge: self._on_acknowledge,
            FirstReport: self._on_first_report,
            Progress: self._on_progress,
            AssistReply: self._on_assist_reply,
            RequestReturn: self._on_request_return,
            ApproveReturn: self._on_approve_return,
            RefuseReturn: self._on_refuse_return,
            RequestExtension: self._on_request_extension,
            ApproveExtension: self._on_approve_extension,
            RefuseExtension: self._on_refuse_extension,
            CommitFollowUp: self._on_commit_follow_up,
            Reply: self._on_reply,
            RejectReply: self._on_reject_reply,
            Callback: self._on_callback,
            RequestTermination: self._on_request_termination,
            ApproveTermination: self._on_approve_termination,
            RefuseTermination: self._on_refuse_termination,
            ReassignUnits: self._on_reassign_units,
            SameMatter: self._on_same_matter,
            Supervise: self._on_supervise,
            Tick: lambda step, event: None,
        }

    @classmethod
    def open(
        cls,
        policy: TicketPolicy,
        calendar: WorkingCalendar,
        *,
        ticket_id: str,
        kind: Kind,
        caller: str,
        summary: str,
        now: datetime,
        by: str,
        emergency: bool = False,
        provincial: bool = False,
        lead_unit: str | None = None,
        assisting_units: tuple[str, ...] = (),
    ) -> tuple[TicketMachine, list[Command]]:
        """受理: a new ticket. An emergency ticket with an immediate dispatch clock needs its lead unit now."""
        _check_aware(now)
        ticket = Ticket(
            _text(ticket_id, "工单编号"), kind, caller, summary, _utc(now), (), emergency, provincial, callers=(caller,)
        )
        machine = cls(ticket, policy, calendar)
        step = _Step(ticket, _utc(now))
        note = f"{kind.label}{'（紧急）' if emergency else ''}：{summary}"
        step.record(by, Stage.ACCEPT, "Open", note, kind=kind.value, emergency=emergency, provincial=provincial)
        if emergency:
            step.emit(ReportEmergency(ticket.ticket_id))
        immediate = emergency and machine.rules.dispatch_hours == 0
        if lead_unit is not None:
            machine._dispatch(step, by, lead_unit, assisting_units, "即时转办")
        elif immediate:
            raise InvalidRequest("紧急工单须立即转办：受理时请指定主办单位")
        else:
            step.ticket = dataclasses.replace(step.ticket, dispatch_due=machine._dispatch_due(step.now))
        step.commands += machine._settle(step)
        machine._ticket = step.ticket
        return machine, step.commands

    # ------------------------------------------------------------ public
    @property
    def ticket(self) -> Ticket:
        return self._ticket

    def handle(self, event: Event, now: datetime) -> list[Command]:
        state, name = self._ticket.state, type(event).__name__
        targets = TRANSITIONS.get((state, name))
        if targets is None:
            raise IllegalTransition(
                f"工单 {self._ticket.ticket_id}: 状态 {state.value}（{state.label}）不接受事件 {name}"
            )
        _check_aware(now)
        last = self._ticket.timeline[-1].at
        if now < last:
            raise InvalidRequest(f"时间倒流：{now.isoformat()} 早于上一条记录 {last.isoformat()}")
        step = _Step(self._ticket, _utc(now))
        step.commands += self._settle(step)
        self._handlers[type(event)](step, event)
        step.commands += self._settle(step)
        if step.ticket.state not in targets:  # pragma: no cover - a bug in a handler, not a caller's mistake
            raise RuntimeError(f"{name} led from {state} to {step.ticket.state}, not in {targets}")
        self._ticket = step.ticket
        return step.commands

    def next_deadline(self) -> datetime | None:
        """The earliest instant at which a Tick would change something, or None."""
        pending = [fire for fire, key, _ in self._alarms(self._ticket) if key not in self._ticket.fired]
        return min(pending) if pending else None

    def light_at(self, now: datetime) -> Light:
        """The light the ticket shows at `now` (only while the unit owes a reply)."""
        return _light(self.calendar, self.rules, self._ticket, now)

    # ------------------------------------------------------------ time-driven effects
    def _alarms(self, ticket: Ticket) -> list[tuple[datetime, str, str]]:
        """(due instant, key, name) of the time-driven effects of the ticket's state."""
        out: list[tuple[datetime, str, str]] = []

        def add(name: str, due: datetime) -> None:
            out.append((_utc(due) + _TICK, f"{name}@{_utc(due).isoformat()}", name))

        if ticket.state == State.ACCEPTED and ticket.dispatch_due is not None:
            add("dispatch_late", ticket.dispatch_due)
        if ticket.state in _UNIT_OWES and ticket.deadline is not None:
            if ticket.first_report_due is not None:
                add("first_report_late", ticket.first_report_due)
            add("yellow_light", yellow_light_at(self.calendar, self.rules, ticket.deadline))
            add("overdue", ticket.deadline)
            add("red_light", red_light_at(self.calendar, self.rules, ticket.deadline))
        return sorted(out)

    def _settle(self, step: _Step) -> list[Command]:
        """Apply every time-driven effect due by step.now, then the light and 督办 thresholds."""
        before = len(step.commands)
        for fire, key, name in self._alarms(step.ticket):
            if fire > step.now or key in step.ticket.fired:
                continue
            step.ticket = dataclasses.replace(step.ticket, fired=(*step.ticket.fired, key))
            self._fire(step, name, fire)
        light = _light(self.calendar, self.rules, step.ticket, step.now)
        if light != step.ticket.light:
            step.ticket = dataclasses.replace(step.ticket, light=light)
            step.emit(LightChanged(step.ticket.ticket_id, light))
        self._check_thresholds(step)
        new = step.commands[before:]
        del step.commands[before:]
        return new

    def _fire(self, step: _Step, name: str, at: datetime) -> None:
        t = step.ticket
        unit = t.lead_unit or ""
        if name == "dispatch_late":
            step.record("system", Stage.DISPATCH, name, "超过转办时限仍未转办", at, due=t.dispatch_due)
            step.emit(NotifyHotline(t.ticket_id, "工单超过转办时限仍未转办"))
        elif name == "first_report_late":
            step.record("system", Stage.REMIND, name, "紧急工单未按时反馈初步处置情况", at, unit=unit)
            step.emit(SendReminder(t.ticket_id, unit, "紧急工单：请立即反馈初步处置情况"))
            step.emit(NotifyHotline(t.ticket_id, f"紧急工单：{unit} 未按时反馈初步处置情况"))
        elif name == "yellow_light":
            note = f"距办结时限仅剩{self.rules.yellow_before_working_days}个工作日，尚未回复：黄灯"
            step.record("system", Stage.LIGHT, name, note, at, deadline=t.deadline)
        elif name == "overdue":
            step.ticket = dataclasses.replace(t, counted_overdue=True)
            step.record("system", Stage.HANDLE, name, "已超过办理时限未回复", at, deadline=t.deadline)
            if self.policy.supervision.on_overdue:
                self._raise(step, SupervisionReason.OVERDUE, at)
        elif name == "red_light":
            note = "超过办结时限仍未回复：红灯，自动催办"
            step.record("system", Stage.REMIND, name, note, at, unit=unit, deadline=t.deadline)
            step.emit(SendReminder(t.ticket_id, unit, "工单已超期，请尽快办结并回复"))

    def _check_thresholds(self, step: _Step) -> None:
        t, rules = step.ticket, self.policy.supervision
        checks = (
            (SupervisionReason.REOPENED, rules.redo_count, t.redo_count),
            (SupervisionReason.REPEATED, rules.repeat_reports, t.reports),
            (SupervisionReason.MANY_CALLERS, rules.distinct_callers, len(t.callers)),
            (SupervisionReason.UNSATISFIED, rules.unsatisfied_results, t.unsatisfied_results),
        )
        for reason, threshold, value in checks:
            if threshold is not None and value >= threshold:
                self._raise(step, reason)

    def _raise(
        self, step: _Step, reason: SupervisionReason, at: datetime | None = None, by: str = "system", note: str = ""
    ) -> None:
        if reason in step.ticket.supervision and reason != SupervisionReason.MANUAL:
            return
        if reason not in step.ticket.supervision:
            step.ticket = dataclasses.replace(step.ticket, supervision=(*step.ticket.supervision, reason))
        step.record(by, Stage.SUPERVISE, f"supervision_{reason.value}", note or reason.label, at)
        step.emit(RaiseSupervision(step.ticket.ticket_id, reason, note or reason.label))

    # ------------------------------------------------------------ helpers
    def _dispatch_due(self, now: datetime) -> datetime:
        if self.rules.dispatch_hours is not None:
            return _utc(self.calendar.add_hours(now, self.rules.dispatch_hours))
        return _utc(self.calendar.add_working_days(now, self.rules.dispatch_working_days))

    def _dispatch(
        self, step: _Step, by: str, lead: str, assisting: tuple[str, ...], note: str, action: str = "Dispatch"
    ) -> None:
        """转办 to a lead unit (and assisting units): new unit clocks from now."""
        lead = _text(lead, "主办单位")
        assisting = tuple(_text(unit, "协办单位") for unit in assisting)
        if lead in assisting or len(set(assisting)) != len(assisting):
            raise InvalidRequest("主办单位与协办单位不能重复")
        now, rules, cal = step.now, self.rules, self.calendar
        deadline = _utc(cal.add_working_days(now, rules.handle_working_days))
        first_report = None
        if step.ticket.emergency and rules.first_report_hours is not None:
            first_report = _utc(cal.add_hours(now, rules.first_report_hours))
        step.ticket = dataclasses.replace(
            step.ticket,
            state=State.DISPATCHED,
            lead_unit=lead,
            assisting_units=assisting,
            dispatch_due=None,
            dispatched_at=now,
            deadline=deadline,
            return_due=_utc(cal.add_working_days(now, rules.return_window_working_days)),
            first_report_due=first_report,
            granted_working_days=rules.handle_working_days,
            extensions=0,
            pending_extension=None,
        )
        step.record(by, Stage.DISPATCH, action, note, lead=lead, assisting=",".join(assisting), deadline=deadline)
        what = f"{step.ticket.kind.label}工单，请于 {deadline.isoformat()} 前办结回复"
        step.emit(NotifyUnit(step.ticket.ticket_id, lead, "lead", f"主办：{what}"))
        for unit in assisting:
            step.emit(NotifyUnit(step.ticket.ticket_id, unit, "assist", f"协办：{what}，结果请提交主办单位 {lead}"))

    def _require_lead(self, step: _Step, by: str) -> str:
        if by != step.ticket.lead_unit:
            raise InvalidRequest(f"只有主办单位 {step.ticket.lead_unit} 可以这样做（来自 {by}）")
        return by

    def _redo(self, step: _Step, by: str, note: str, action: str) -> None:
        """重办: back to the lead unit with a new handling clock."""
        rules = self.rules
        deadline = _utc(self.calendar.add_working_days(step.now, rules.redo_handle_working_days))
        step.ticket = dataclasses.replace(
            step.ticket,
            state=State.HANDLING,
            deadline=deadline,
            redo_count=step.ticket.redo_count + 1,
            granted_working_days=rules.redo_handle_working_days,
            extensions=0,
            replied_at=None,
        )
        step.record(by, Stage.REDO, action, note, deadline=deadline, redo_count=step.ticket.redo_count)
        step.emit(NotifyUnit(step.ticket.ticket_id, step.ticket.lead_unit or "", "lead", f"重办：{note}"))

    def _close(self, step: _Step, by: str, action: str, note: str, state: State = State.CLOSED) -> None:
        step.ticket = dataclasses.replace(step.ticket, state=state, closed_at=step.now, dispatch_due=None)
        stage = Stage.CLOSE if state == State.CLOSED else Stage.TERMINATE
        step.record(by, stage, action, note)

    # ------------------------------------------------------------ handlers (one per event type)
    def _on_answer_directly(self, step: _Step, event: Event) -> None:
        assert isinstance(event, AnswerDirectly)
        if not self.rules.direct_answer:
            raise InvalidRequest(f"按 {self.policy.name} 政策，{step.ticket.kind.label}不能直接答复办结，须转办")
        self._close(step, event.by, "AnswerDirectly", _text(event.answer, "答复内容"))

    def _on_dispatch(self, step: _Step, event: Event) -> None:
        assert isinstance(event, Dispatch)
        self._dispatch(step, event.by, event.lead_unit, event.assisting_units, "转办")

    def _on_acknowledge(self, step: _Step, event: Event) -> None:
        assert isinstance(event, Acknowledge)
        self._require_lead(step, event.by)
        step.ticket = dataclasses.replace(step.ticket, state=State.HANDLING)
        step.record(event.by, Stage.HANDLE, "Acknowledge", "承办单位签收")

    def _on_first_report(self, step: _Step, event: Event) -> None:
        assert isinstance(event, FirstReport)
        if not step.ticket.emergency:
            raise InvalidRequest("初步处置情况只用于紧急工单")
        self._require_lead(step, event.by)
        state = State.HANDLING if step.ticket.state == State.DISPATCHED else step.ticket.state
        step.ticket = dataclasses.replace(step.ticket, state=state, first_report_due=None)
        step.record(event.by, Stage.HANDLE, "FirstReport", _text(event.text, "初步处置情况"))

    def _on_progress(self, step: _Step, event: Event) -> None:
        assert isinstance(event, Progress)
        self._require_lead(step, event.by)
        stage = Stage.FOLLOW_UP if step.ticket.state == State.FOLLOW_UP else Stage.HANDLE
        step.record(event.by, stage, "Progress", _text(event.text, "进展"))

    def _on_assist_reply(self, step: _Step, event: Event) -> None:
        assert isinstance(event, AssistReply)
        if event.by not in step.ticket.assisting_units:
            raise InvalidRequest(f"{event.by} 不是本工单的协办单位")
        step.record(event.by, Stage.HANDLE, "AssistReply", _text(event.text, "协办结果"))
        step.emit(
            NotifyUnit(step.ticket.ticket_id, step.ticket.lead_unit or "", "lead", f"协办单位 {event.by} 已提交结果")
        )

    def _on_request_return(self, step: _Step, event: Event) -> None:
        assert isinstance(event, RequestReturn)
        self._require_lead(step, event.by)
        reason, suggested = _text(event.reason, "回退理由"), _text(event.suggested_unit, "建议承办单位")
        late = step.ticket.return_due is not None and step.now > step.ticket.return_due
        note = reason + ("（超期回退，视为超期办理件）" if late else "")
        step.ticket = dataclasses.replace(
            step.ticket, state=State.RETURN_REQUESTED, counted_overdue=step.ticket.counted_overdue or late
        )
        step.record(event.by, Stage.RETURN, "RequestReturn", note, suggested_unit=suggested, late=late)
        step.emit(NotifyHotline(step.ticket.ticket_id, f"{event.by} 申请回退，建议 {suggested}：{reason}"))

    def _on_approve_return(self, step: _Step, event: Event) -> None:
        assert isinstance(event, ApproveReturn)
        returned_by = step.ticket.lead_unit
        if event.lead_unit is not None and event.lead_unit == returned_by:
            raise InvalidRequest(f"回退已批准，不能再转办给 {returned_by}")
        if event.lead_unit is None and self.rules.dispatch_hours == 0:
            raise InvalidRequest("紧急工单须立即重新转办：请指定新的主办单位")
        step.record(event.by, Stage.RETURN, "ApproveReturn", _text(event.reason, "审核意见"), unit=returned_by or "")
        if event.lead_unit is not None:
            self._dispatch(step, event.by, event.lead_unit, event.assisting_units, "回退后重新转办", "Redispatch")
            return
        step.ticket = dataclasses.replace(
            step.ticket,
            state=State.ACCEPTED,
            lead_unit=None,
            assisting_units=(),
            dispatch_due=self._dispatch_due(step.now),
            deadline=None,
            return_due=None,
            first_report_due=None,
        )

    def _on_refuse_return(self, step: _Step, event: Event) -> None:
        assert isinstance(event, RefuseReturn)
        reason = _text(event.reason, "审核意见")
        step.ticket = dataclasses.replace(step.ticket, state=State.HANDLING)
        step.record(event.by, Stage.RETURN, "RefuseReturn", reason)
        step.emit(NotifyUnit(step.ticket.ticket_id, step.ticket.lead_unit or "", "lead", f"回退未获批准：{reason}"))

    def _on_request_extension(self, step: _Step, event: Event) -> None:
        assert isinstance(event, RequestExtension)
        self._require_lead(step, event.by)
        t, rules, days = step.ticket, self.rules, event.working_days
        assert t.deadline is not None
        reason = _text(event.reason, "延期理由")
        if days < 1:
            raise InvalidRequest("延期至少1个工作日")
        if rules.extension_max_working_days is not None and days > rules.extension_max_working_days:
            raise InvalidRequest(f"延期一般不超过 {rules.extension_max_working_days} 个工作日（申请 {days}）")
        if rules.extension_max_count is not None and t.extensions >= rules.extension_max_count:
            raise InvalidRequest(f"已延期 {t.extensions} 次，最多 {rules.extension_max_count} 次；请续报")
        cap = rules.extension_max_total_working_days
        if cap is not None and t.granted_working_days + days > cap:
            raise InvalidRequest(f"办理期限连同延期最长 {cap} 个工作日（已 {t.granted_working_days}，申请 {days}）")
        latest = _utc(self.calendar.working_days_before(t.deadline, rules.extension_request_lead_working_days))
        if step.now > latest:
            raise InvalidRequest(f"延期申请须在 {latest.isoformat()} 前提出（办理期限 {t.deadline.isoformat()}）")
        step.ticket = dataclasses.replace(
            t, state=State.EXTENSION_REQUESTED, pending_extension=ExtensionRequest(days, reason)
        )
        step.record(event.by, Stage.EXTEND, "RequestExtension", reason, working_days=days)
        step.emit(NotifyHotline(t.ticket_id, f"{event.by} 申请延期 {days} 个工作日：{reason}"))

    def _on_approve_extension(self, step: _Step, event: Event) -> None:
        assert isinstance(event, ApproveExtension)
        t = step.ticket
        assert t.deadline is not None and t.pending_extension is not None
        request = t.pending_extension
        deadline = _utc(self.calendar.add_working_days(t.deadline, request.working_days))
        step.ticket = dataclasses.replace(
            t,
            state=State.HANDLING,
            deadline=deadline,
            pending_extension=None,
            extensions=t.extensions + 1,
            granted_working_days=t.granted_working_days + request.working_days,
        )
        step.record(event.by, Stage.EXTEND, "ApproveExtension", event.note or request.reason, deadline=deadline)
        step.emit(NotifyUnit(t.ticket_id, t.lead_unit or "", "lead", f"延期已批准，新期限 {deadline.isoformat()}"))
        step.emit(
            InformCaller(t.ticket_id, f"您反映的事项办理期限延长{request.working_days}个工作日，原因：{request.reason}")
        )

    def _on_refuse_extension(self, step: _Step, event: Event) -> None:
        assert isinstance(event, RefuseExtension)
        reason = _text(event.reason, "审核意见")
        step.ticket = dataclasses.replace(step.ticket, state=State.HANDLING, pending_extension=None)
        step.record(event.by, Stage.EXTEND, "RefuseExtension", reason)
        step.emit(NotifyUnit(step.ticket.ticket_id, step.ticket.lead_unit or "", "lead", f"延期未获批准：{reason}"))

    def _on_commit_follow_up(self, step: _Step, event: Event) -> None:
        assert isinstance(event, CommitFollowUp)
        self._require_lead(step, event.by)
        t = step.ticket
        assert t.deadline is not None
        reason = _text(event.reason, "续报理由")
        if step.now > t.deadline:
            raise InvalidRequest(f"续报须在办理期限 {t.deadline.isoformat()} 前提出")
        until = _utc(self.calendar.end_of_day(event.until))
        if until <= t.deadline:
            raise InvalidRequest(f"承诺办结日期 {event.until.isoformat()} 须晚于办理期限，否则请按期回复")
        step.ticket = dataclasses.replace(t, state=State.FOLLOW_UP, deadline=until)
        step.record(event.by, Stage.FOLLOW_UP, "CommitFollowUp", reason, until=event.until.isoformat())
        step.emit(InformCaller(t.ticket_id, f"您反映的事项承办单位承诺于{event.until.isoformat()}前办结：{reason}"))

    def _on_reply(self, step: _Step, event: Event) -> None:
        assert isinstance(event, Reply)
        self._require_lead(step, event.by)
        t = step.ticket
        late = t.deadline is not None and step.now > t.deadline
        step.ticket = dataclasses.replace(
            t, state=State.REPLIED, replied_at=step.now, pending_extension=None, first_report_due=None
        )
        step.record(event.by, Stage.REPLY, "Reply", _text(event.text, "办理结果"), late=late)
        step.emit(ScheduleCallback(t.ticket_id))

    def _on_reject_reply(self, step: _Step, event: Event) -> None:
        assert isinstance(event, RejectReply)
        self._redo(step, event.by, _text(event.reason, "审核意见"), "RejectReply")

    def _on_callback(self, step: _Step, event: Event) -> None:
        assert isinstance(event, Callback)
        process, result = Satisfaction(event.process), Satisfaction(event.result)
        unsatisfied = result == Satisfaction.UNSATISFIED
        step.ticket = dataclasses.replace(
            step.ticket,
            process_rating=process,
            result_rating=result,
            unsatisfied_results=step.ticket.unsatisfied_results + unsatisfied,
        )
        note = event.note or f"服务过程 {process.label}，办理结果 {result.label}"
        step.record(event.by, Stage.CALLBACK, "Callback", note, process=int(process), result=int(result))
        if unsatisfied and event.demand_reasonable:
            self._redo(step, event.by, "来电人对办理结果不满意且诉求合理", "Redo")
        elif unsatisfied:
            self._close(step, event.by, "Close", "答复内容符合法律、法规和政策规定，予以办结")
        else:
            self._close(step, event.by, "Close", "来电人满意，办结")

    def _on_request_termination(self, step: _Step, event: Event) -> None:
        assert isinstance(event, RequestTermination)
        self._require_lead(step, event.by)
        reason = _text(event.reason, "终止理由")
        step.ticket = dataclasses.replace(step.ticket, state=State.TERMINATION_REQUESTED)
        step.record(event.by, Stage.TERMINATE, "RequestTermination", reason, ground=event.ground.value)
        step.emit(NotifyHotline(step.ticket.ticket_id, f"{event.by} 申请终止办理（{event.ground.label}）：{reason}"))

    def _on_approve_termination(self, step: _Step, event: Event) -> None:
        assert isinstance(event, ApproveTermination)
        self._close(step, event.by, "ApproveTermination", _text(event.reason, "审核意见"), State.TERMINATED)

    def _on_refuse_termination(self, step: _Step, event: Event) -> None:
        assert isinstance(event, RefuseTermination)
        reason = _text(event.reason, "审核意见")
        step.ticket = dataclasses.replace(step.ticket, state=State.HANDLING)
        step.record(event.by, Stage.TERMINATE, "RefuseTermination", reason)
        step.emit(NotifyUnit(step.ticket.ticket_id, step.ticket.lead_unit or "", "lead", f"终止未获批准：{reason}"))

    def _on_reassign_units(self, step: _Step, event: Event) -> None:
        assert isinstance(event, ReassignUnits)
        note = f"职责争议由热线裁定：{_text(event.reason, '裁定理由')}"
        self._dispatch(step, event.by, event.lead_unit, event.assisting_units, note, "ReassignUnits")

    def _on_same_matter(self, step: _Step, event: Event) -> None:
        assert isinstance(event, SameMatter)
        t = step.ticket
        callers = t.callers if event.caller in t.callers else (*t.callers, event.caller)
        step.ticket = dataclasses.replace(t, reports=t.reports + 1, callers=callers)
        closed = t.state == State.CLOSED
        step.record(
            event.by, Stage.ACCEPT, "SameMatter", event.note or ("已办结事项再次反映" if closed else "同一事项再次反映")
        )
        if closed:
            step.emit(InformCaller(t.ticket_id, "该事项已按规定办理完毕并答复，以同一事实和理由再次反映的不再受理"))

    def _on_supervise(self, step: _Step, event: Event) -> None:
        assert isinstance(event, Supervise)
        self._raise(step, SupervisionReason.MANUAL, by=event.by, note=_text(event.reason, "督办理由"))
