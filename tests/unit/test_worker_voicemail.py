"""The worker carries out an overflow to voicemail: the caller leaves the queue at once (abandon,
so no agent is offered him) and the call ends as a VOICEMAIL record (its recording is the
message; the speech service drafts its ticket as for any queued call). Fakes as in
test_ivr_worker.py (a unit test: the queue and SIP sides have their own contract tests)."""

from __future__ import annotations

from pathlib import Path

from hotline.core import events as ev
from hotline.core.model import Outcome
from hotline.runtime.queue_log import QueueLog
from hotline.sip.events import DtmfReceived, LegState, LegStateChanged
from tests.unit.test_ivr_worker import ended, make_worker, start_call, until_async


async def test_overflow_to_voicemail_leaves_the_queue_and_records_a_voicemail(tmp_path: Path) -> None:
    worker, _sip, queue, bus = make_worker(tmp_path)
    call_id = await start_call(worker)
    session = worker.sessions[call_id]
    worker._on_command(ev.CMD_OVERFLOW, {"call_id": call_id, "target": "voicemail", "max_s": 30})
    assert not any(n == "abandon" for n, _ in queue.calls)  # the greeting is never cut
    worker.on_sip_event(DtmfReceived("in-1", "5", "rfc4733"))  # any key skips the greeting
    await until_async(lambda: not session.flow.greeting_playing, timeout=2)
    worker._on_command(ev.CMD_OVERFLOW, {"call_id": call_id, "target": "voicemail", "max_s": 30})
    await until_async(lambda: any(n == "abandon" for n, _ in queue.calls), timeout=2)
    assert session.flow.phase.value == "voicemail"
    worker.on_sip_event(LegStateChanged("in-1", LegState.DISCONNECTED, 200, "Normal call clearing", True))
    await until_async(lambda: ended(bus), timeout=2)
    assert ended(bus)[0]["outcome"] == Outcome.VOICEMAIL.value


def test_a_voicemail_leaves_the_queue_log_with_its_timeout() -> None:
    data = {
        "call_id": "c1",
        "outcome": "voicemail",
        "queued_at": "2026-11-22T02:00:00+00:00",
        "ended_at": "2026-11-22T02:02:00+00:00",
    }
    assert QueueLog("default").lines(ev.CALL_ENDED, data, 0) == ["1795312920|c1|default|NONE|EXITWITHTIMEOUT|1|1|120"]
