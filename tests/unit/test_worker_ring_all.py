"""The worker rings a ring_all group: one leg per offer at once; the first to answer becomes the
agent leg and is bridged, the other legs are hung up (487) and only the winner's offer is
reported answered. Fakes as in test_ivr_worker.py (the queue side: test_queue_ring_all.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hotline.core import events as ev
from hotline.sip.events import DtmfReceived, LegState, LegStateChanged
from tests.unit.test_ivr_worker import make_worker, start_call, until_async

GROUP = ["o1", "o2", "o3"]


async def ring_the_group(worker: Any, call_id: str) -> None:
    """The caller skips the greeting and GROUP's offers (agents a1-a3, phones 1001-1003) ring."""
    session = worker.sessions[call_id]
    worker.on_sip_event(DtmfReceived("in-1", "5", "rfc4733"))  # skips the greeting
    await until_async(lambda: not session.flow.greeting_playing, timeout=2)
    for n, offer in enumerate(GROUP, 1):
        data = {
            "call_id": call_id,
            "offer_id": offer,
            "agent_id": f"a{n}",
            "agent_uri": f"sip:100{n}@h",
            "group": GROUP,
        }
        worker._on_command(ev.CMD_OFFER, data)
    await until_async(lambda: len(session.ringing) == 3, timeout=2)


async def test_the_first_leg_to_answer_is_bridged_and_the_others_are_hung_up(tmp_path: Path) -> None:
    worker, sip, queue, _ = make_worker(tmp_path)
    call_id = await start_call(worker)
    session = worker.sessions[call_id]
    await ring_the_group(worker, call_id)
    assert [uri for kind, uri in sip.calls if kind == "dial"] == ["sip:1001@h", "sip:1002@h", "sip:1003@h"]
    legs = {offer: leg for leg, offer in session.ringing.items()}
    worker.on_sip_event(LegStateChanged(legs["o2"], LegState.CONFIRMED, 200, "OK", False))
    await until_async(lambda: ("bridge", "in-1") in sip.calls, timeout=2)
    await until_async(lambda: ("hangup", legs["o1"]) in sip.calls and ("hangup", legs["o3"]) in sip.calls, timeout=2)
    assert session.agent_leg == legs["o2"] and session.flow.agent_id == "a2"
    assert ("hangup", legs["o2"]) not in sip.calls
    answered = [args for name, args in queue.calls if name == "offer_answered"]
    assert answered == [("o2",)]
    # a loser's phone answered all the same before the cancel reached it: hung up, never bridged
    hung_up = sip.calls.count(("hangup", legs["o1"]))
    worker.on_sip_event(LegStateChanged(legs["o1"], LegState.CONFIRMED, 200, "OK", False))
    await until_async(lambda: sip.calls.count(("hangup", legs["o1"])) == hung_up + 1, timeout=2)
    assert [c for c in sip.calls if c[0] == "bridge"] == [("bridge", "in-1")]
    assert session.agent_leg == legs["o2"]


async def test_an_agent_of_the_group_answering_from_the_desk_swaps_his_leg_unseen(tmp_path: Path) -> None:
    # The answer command (hotline/runtime/call_controls.py) cancels his ringing leg and rings his
    # phone again asking it to pick up; the cancelled leg's end is nobody's business.
    worker, sip, queue, bus = make_worker(tmp_path)
    call_id = await start_call(worker)
    session = worker.sessions[call_id]
    await ring_the_group(worker, call_id)
    old = {offer: leg for leg, offer in session.ringing.items()}
    worker._on_command(ev.CMD_ANSWER, {"call_id": call_id, "agent_id": "a2", "by": "agent2"})
    await until_async(lambda: [d for k, d in bus.published if k == ev.CALL_CONTROL], timeout=2)
    ((outcome,),) = [[d for k, d in bus.published if k == ev.CALL_CONTROL]]
    assert (outcome["action"], outcome["status"], outcome["detail"]) == ("answer", "done", "agent:a2")
    new = {offer: leg for leg, offer in session.ringing.items()}
    assert new["o1"] == old["o1"] and new["o3"] == old["o3"] and new["o2"] != old["o2"]
    assert ("hangup", old["o2"]) in sip.calls
    assert [uri for kind, uri in sip.calls if kind == "dial"][-1] == "sip:1002@h"
    worker.on_sip_event(LegStateChanged(old["o2"], LegState.DISCONNECTED, 487, "Request Terminated", False))
    ringing = {o.offer_id for o in (session.flow.offer, *session.flow.others.values()) if o is not None}
    assert ringing == set(GROUP)  # the flow still rings all three
    assert not [c for c in queue.calls if c[0] == "offer_failed"]
    worker.on_sip_event(LegStateChanged(new["o2"], LegState.CONFIRMED, 200, "OK", False))  # it picked up
    await until_async(lambda: ("bridge", "in-1") in sip.calls, timeout=2)
    assert session.agent_leg == new["o2"] and session.flow.agent_id == "a2"
    await until_async(lambda: ("hangup", old["o1"]) in sip.calls and ("hangup", old["o3"]) in sip.calls, timeout=2)
    assert [args for name, args in queue.calls if name == "offer_answered"] == [("o2",)]
    assert not [c for c in queue.calls if c[0] == "offer_failed"]
