"""What becomes of a call whose worker died, decided once for the control plane (which sees the
worker's heartbeat expire) and for the worker's own next incarnation (restarted under the same
id before anyone noticed): whoever comes first settles it, the other finds nothing left.

- A caller still waiting in the queue, whose number can be dialled, keeps the place: the entry
  becomes a callback (issue: "its waiting callers become callback entries at their original
  place"); the record says callback_requested, by the system.
- Anything else (a call with an agent, a caller being offered... with a withheld number, a
  callback attempt in flight) is closed: the queue entry removed (a callback entry stays: it is
  not the attempt's to remove), the agent freed at once, the record failed ("worker died").
- A 回访 survey attempt touches no queue: its record says survey, "worker died".
"""

from __future__ import annotations

from typing import Any

from hotline.core.model import CallId, CallRecord, Outcome, WorkerId, lost_call_record
from hotline.core.ports import CallQueue
from hotline.runtime.callback import DIALABLE
from hotline.runtime.legs import epoch_ms

KEPT_REASON = "worker died while the caller waited: called back at the same place"


async def settle_lost_call(queue: CallQueue, worker_id: WorkerId, call_id: CallId, info: dict[str, Any]) -> CallRecord:
    """Settles the queue side of one lost call and returns its record (not yet saved)."""
    if info.get("survey_id"):
        # A 回访 attempt: nobody waits in the queue; its lease in the ticket store runs out and
        # the scheduler tries it again.
        return lost_call_record(call_id, worker_id, info, "worker died during the survey call", Outcome.SURVEY)
    now_ms = epoch_ms()
    # A callback attempt is tracked under its own id; the queue knows it by the original.
    queue_call_id = CallId(str(info.get("queue_call_id") or call_id))
    caller = str(info.get("caller") or "")
    waiting_caller = "queue_call_id" not in info and DIALABLE.match(caller)
    if waiting_caller and await queue.request_callback(call_id, caller, now_ms):
        return lost_call_record(call_id, worker_id, info, KEPT_REASON, Outcome.CALLBACK_REQUESTED)
    await queue.abandon(queue_call_id)
    await queue.call_finished(queue_call_id, now_ms, lost=True)  # the agent is free at once
    return lost_call_record(call_id, worker_id, info, "worker died")
