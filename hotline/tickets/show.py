"""What `hotline tickets show NUMBER` prints: one 工单 with its calls, the intake call's draft
transcript and its timeline, as JSON (--json) or as text for an operator's terminal.

Times are stored in UTC; people read Asia/Shanghai, so the text shows local times and the JSON
gives ISO 8601 with the +08:00 offset. Only the standard library, hotline.core and the ticket
records are used here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from hotline.core.model import CallRecord
from hotline.tickets.export import local_time
from hotline.tickets.records import StoredTicket, TicketCall, TicketLink, TimelineRow


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else local_time(moment).isoformat()


def ticket_view(
    stored: StoredTicket,
    calls: Sequence[TicketCall],
    records: dict[str, CallRecord],
    draft: dict[str, Any] | None,
    links: Sequence[TicketLink],
    timeline: Sequence[TimelineRow],
) -> dict[str, Any]:
    """The JSON of `tickets show --json`: the ticket, its calls (with their records when the
    calls have ended), the intake call's draft, linked tickets and the timeline."""
    t = stored.ticket
    return {
        "number": stored.number,
        "status": stored.status.value,
        "stage": t.state.value,
        "stage_label": t.state.label,
        "kind": t.kind.value,
        "kind_label": t.kind.label,
        "caller": t.caller,
        "caller_name": stored.caller_name,
        "channel": stored.channel,
        "content": t.summary,
        "transcript": stored.transcript,
        "place": stored.place,
        "emergency": t.emergency,
        "provincial": t.provincial,
        "lead_unit": t.lead_unit,
        "assisting_units": list(t.assisting_units),
        "light": t.light.value,
        "due_at": _iso(stored.due_at),
        "yellow_at": _iso(stored.yellow_at),
        "red_at": _iso(stored.red_at),
        "policy": stored.policy,
        "consent": {
            "recording": stored.consent_recording,
            "callback": stored.consent_callback,
            "disclose": stored.consent_disclose,
        },
        "legal_hold": stored.legal_hold,
        # 回访 ratings (1 满意, 2 基本满意, 3 不满意), the last callback's; None before one
        "process_rating": None if t.process_rating is None else int(t.process_rating),
        "result_rating": None if t.result_rating is None else int(t.result_rating),
        "version": stored.version,
        "created_at": _iso(stored.created_at),
        "updated_at": _iso(stored.updated_at),
        "calls": [
            {
                "call_id": c.call_id,
                "role": c.role,
                "linked_at": _iso(c.linked_at),
                "record": records[c.call_id].to_dict() if c.call_id in records else None,
            }
            for c in calls
        ],
        "intake_draft": draft,
        "links": [
            {"other": link.other, "relation": link.relation, "reason": link.reason, "outgoing": link.outgoing}
            for link in links
        ],
        "timeline": [{**row.to_dict(), "at": _iso(row.at)} for row in timeline],
    }


def render_ticket(view: dict[str, Any]) -> str:
    """The view as text (no trailing newline)."""

    def when(text: str | None) -> str:
        return "-" if text is None else datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M")

    lines = [
        f"工单 {view['number']}  {view['kind_label']}{'（紧急）' if view['emergency'] else ''}  "
        f"{view['stage_label']} ({view['status']})",
        f"来电人: {view['caller']}" + (f" {view['caller_name']}" if view["caller_name"] else ""),
        f"诉求: {view['content']}",
    ]
    if view["place"]:
        lines.append(f"地点: {view['place']}")
    if view["lead_unit"]:
        assisting = "、".join(view["assisting_units"])
        lines.append(f"主办: {view['lead_unit']}" + (f"  协办: {assisting}" if assisting else ""))
    if view.get("process_rating") is not None or view.get("result_rating") is not None:
        labels = {1: "满意", 2: "基本满意", 3: "不满意", None: "-"}
        process, result = labels[view.get("process_rating")], labels[view.get("result_rating")]
        lines.append(f"回访: 服务过程 {process}，办理结果 {result}")
    lines.append(
        f"期限: {when(view['due_at'])}  黄灯: {when(view['yellow_at'])}  红灯: {when(view['red_at'])}  "
        f"灯: {view['light']}  政策: {view['policy']}  版本: {view['version']}"
    )
    if view["calls"]:
        lines.append("通话:")
        for call in view["calls"]:
            record = call["record"]
            outcome = f"  {record['outcome']}" if record else ""
            lines.append(f"  {call['role']:<9} {call['call_id']}  {when(call['linked_at'])}{outcome}")
    draft = view["intake_draft"]
    if draft and draft.get("transcript"):
        lines.append(f"受理通话转写 ({draft.get('engine', '')}): {draft['transcript']}")
    elif view["transcript"]:
        lines.append(f"转写: {view['transcript']}")
    for link in view["links"]:
        arrow = "->" if link["outgoing"] else "<-"
        lines.append(f"关联 {arrow} {link['other']} ({link['relation']}): {link['reason']}")
    lines.append("时间线:")
    for row in view["timeline"]:
        change = f"{row['from_state'] or '-'}→{row['to_state']}"
        reason = f"  {row['reason']}" if row["reason"] else ""
        who = f"{row['actor']} ({row['actor_role']})"
        lines.append(f"  {row['seq']:>3} {when(row['at'])}  {who}  {row['action']}  {change}{reason}")
    return "\n".join(lines)
