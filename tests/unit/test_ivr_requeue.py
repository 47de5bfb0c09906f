"""A connected call sent back to the queue (call controls' transfer to "queue"): the flow's side."""

from __future__ import annotations

import pytest

from hotline.core.model import Outcome
from hotline.ivr import flow as fl

OFFER = fl.OfferReceived("o1", "1001", "sip:1001@127.0.0.1:5060")
SECOND = fl.OfferReceived("o2", "1002", "sip:1002@127.0.0.1:5060")


def connected() -> fl.CallFlow:
    flow = fl.CallFlow(fl.FlowSettings(greeting_s=5.0, ring_timeout_s=20))
    flow.handle(fl.Incoming(), 0.0)
    flow.handle(fl.MediaReady(), 0.0)
    flow.handle(fl.Dtmf("5"), 1.0)
    flow.handle(OFFER, 2.0)
    flow.handle(fl.AgentAnswered("o1"), 3.0)
    assert flow.phase == fl.Phase.CONNECTED
    return flow


def test_requeued_waits_again_with_hold_music_and_takes_the_next_offer() -> None:
    flow = connected()
    assert flow.handle(fl.Requeued(), 10.0) == [fl.Play("hold_music", loop=True)]
    assert flow.phase == fl.Phase.WAITING and flow.agent_id is None and flow.in_queue
    # The first agent's leg ending late is not this call's business any more.
    assert flow.handle(fl.AgentHungUp("o1"), 10.1) == []
    assert flow.handle(OFFER, 10.2) == []  # the settled offer delivered again
    assert flow.handle(SECOND, 11.0) == [fl.DialAgent("o2", "1002", SECOND.agent_uri)]
    out = flow.handle(fl.AgentAnswered("o2"), 12.0)
    assert out == [fl.StopPlay(), fl.Bridge("o2", "1002"), fl.ReportOfferAnswered("o2")]
    assert flow.agent_id == "1002"


def test_a_caller_hanging_up_after_being_requeued_abandons_the_queue() -> None:
    flow = connected()
    flow.handle(fl.Requeued(), 10.0)
    assert flow.handle(fl.CallerHungUp(), 12.0) == [fl.Abandon(), fl.Finish(Outcome.ABANDONED_IN_QUEUE, "caller")]


def test_requeued_outside_a_connected_call_is_an_error() -> None:
    flow = connected()
    flow.handle(fl.Requeued(), 10.0)
    with pytest.raises(fl.FlowError, match="Requeued"):
        flow.handle(fl.Requeued(), 11.0)
