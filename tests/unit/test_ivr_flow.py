"""The caller's call flow (sans-IO): every rule of hotline/ivr/flow.py's header."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.core.model import Outcome
from hotline.ivr import flow as fl

GREETING = 7.5


def started(now: float = 0.0) -> fl.CallFlow:
    flow = fl.CallFlow(fl.FlowSettings(greeting_s=GREETING, ring_timeout_s=20))
    assert flow.handle(fl.Incoming(), now) == [fl.Answer()]
    assert flow.handle(fl.MediaReady(), now) == [fl.StartRecording(), fl.Enqueue(), fl.Play("greeting")]
    return flow


OFFER = fl.OfferReceived("o1", "1001", "sip:1001@127.0.0.1:5060")


def test_answered_at_once_and_queued_while_the_greeting_plays() -> None:
    flow = started()
    assert flow.phase == fl.Phase.WAITING
    assert flow.next_deadline() == GREETING
    assert flow.handle(fl.Tick(), GREETING - 0.1) == []
    assert flow.handle(fl.Tick(), GREETING) == [fl.Play("hold_music", loop=True)]
    assert flow.next_deadline() is None


def test_any_key_skips_the_greeting_and_digits_are_kept() -> None:
    flow = started()
    assert flow.handle(fl.Dtmf("5"), 1.0) == [fl.Play("hold_music", loop=True)]
    assert flow.handle(fl.Dtmf("#"), 2.0) == []
    assert flow.digits == "5#"


def test_offer_after_greeting_dials_and_bridges_on_answer() -> None:
    flow = started()
    flow.handle(fl.Tick(), GREETING)
    assert flow.handle(OFFER, 8.0) == [fl.DialAgent("o1", "1001", OFFER.agent_uri)]
    assert flow.next_deadline() == 28.0
    out = flow.handle(fl.AgentAnswered("o1"), 9.0)
    assert out == [fl.StopPlay(), fl.Bridge("o1", "1001"), fl.ReportOfferAnswered("o1")]
    assert flow.phase == fl.Phase.CONNECTED and flow.agent_id == "1001"
    assert flow.next_deadline() is None


def test_offer_during_greeting_waits_for_its_end_before_bridging() -> None:
    flow = started()
    flow.handle(OFFER, 1.0)
    assert flow.handle(fl.AgentAnswered("o1"), 2.0) == []
    assert flow.phase == fl.Phase.AGENT_READY
    out = flow.handle(fl.Tick(), GREETING)
    assert out == [fl.StopPlay(), fl.Bridge("o1", "1001"), fl.ReportOfferAnswered("o1")]


def test_a_key_during_agent_ready_connects_at_once() -> None:
    flow = started()
    flow.handle(OFFER, 1.0)
    flow.handle(fl.AgentAnswered("o1"), 2.0)
    out = flow.handle(fl.Dtmf("1"), 2.5)
    assert fl.Bridge("o1", "1001") in out


def test_ring_no_answer_reports_failure_and_keeps_waiting() -> None:
    flow = started()
    flow.handle(fl.Tick(), GREETING)
    flow.handle(OFFER, 8.0)
    assert flow.handle(fl.Tick(), 27.9) == []
    out = flow.handle(fl.Tick(), 28.0)
    assert out == [fl.HangupAgent("o1"), fl.ReportOfferFailed("o1", "no-answer", "1001")]
    assert flow.phase == fl.Phase.WAITING
    # The late hang-up of the cancelled leg changes nothing.
    assert flow.handle(fl.AgentFailed("o1", "no-answer"), 28.1) == []
    assert flow.handle(fl.AgentHungUp("o1"), 28.1) == []
    # A second offer works.
    assert flow.handle(fl.OfferReceived("o2", "1002", "sip:1002@x"), 29.0)[0] == fl.DialAgent(
        "o2", "1002", "sip:1002@x"
    )


def test_busy_agent_reports_failure() -> None:
    flow = started()
    flow.handle(OFFER, 1.0)
    assert flow.handle(fl.AgentFailed("o1", "busy"), 1.5) == [fl.ReportOfferFailed("o1", "busy", "1001")]
    assert flow.phase == fl.Phase.WAITING


def test_second_offer_while_offering_is_refused() -> None:
    flow = started()
    flow.handle(OFFER, 1.0)
    out = flow.handle(fl.OfferReceived("o2", "1002", "sip:1002@x"), 1.1)
    assert out == [fl.ReportOfferFailed("o2", "call is offering")]
    assert flow.offer == OFFER


def test_caller_hangup_in_greeting_is_abandoned_in_greeting() -> None:
    flow = started()
    assert flow.handle(fl.CallerHungUp(), 3.0) == [fl.Abandon(), fl.Finish(Outcome.ABANDONED_IN_GREETING, "caller")]


def test_caller_hangup_before_media_is_abandoned_in_greeting() -> None:
    flow = fl.CallFlow(fl.FlowSettings(greeting_s=GREETING))
    flow.handle(fl.Incoming(), 0)
    assert flow.handle(fl.CallerHungUp(), 0.1) == [fl.Finish(Outcome.ABANDONED_IN_GREETING, "caller")]


def test_caller_hangup_in_queue_is_abandoned_in_queue() -> None:
    flow = started()
    flow.handle(fl.Tick(), GREETING)
    assert flow.handle(fl.CallerHungUp(), 30.0) == [fl.Abandon(), fl.Finish(Outcome.ABANDONED_IN_QUEUE, "caller")]


def test_caller_hangup_while_agent_rings_hangs_up_the_agent() -> None:
    flow = started()
    flow.handle(fl.Tick(), GREETING)
    flow.handle(OFFER, 8.0)
    out = flow.handle(fl.CallerHungUp(), 9.0)
    assert out == [fl.HangupAgent("o1"), fl.Abandon(), fl.Finish(Outcome.ABANDONED_IN_QUEUE, "caller")]


def test_hangups_when_connected() -> None:
    flow = started()
    flow.handle(fl.Dtmf("1"), 1)
    flow.handle(OFFER, 2)
    flow.handle(fl.AgentAnswered("o1"), 3)
    assert flow.handle(fl.AgentHungUp("o1"), 60) == [fl.HangupCaller(), fl.Finish(Outcome.ANSWERED, "agent")]
    flow2 = started()
    flow2.handle(fl.Dtmf("1"), 1)
    flow2.handle(OFFER, 2)
    flow2.handle(fl.AgentAnswered("o1"), 3)
    assert flow2.handle(fl.CallerHungUp(), 60) == [fl.HangupAgent("o1"), fl.Finish(Outcome.ANSWERED, "caller")]


def test_unknown_pair_names_event_and_phase() -> None:
    flow = fl.CallFlow(fl.FlowSettings(greeting_s=GREETING))
    with pytest.raises(fl.FlowError, match=r"MediaReady.*new"):
        flow.handle(fl.MediaReady(), 0)


def test_an_offer_delivered_again_after_it_was_settled_is_ignored() -> None:
    flow = started()
    flow.handle(fl.Dtmf("1"), 1)
    flow.handle(OFFER, 2)
    second = fl.OfferReceived("o2", "a2", "sip:a2@h")
    assert flow.handle(second, 2.1) == [fl.ReportOfferFailed("o2", "call is offering")]
    flow.handle(fl.AgentFailed("o1", "busy"), 3)
    assert flow.handle(second, 4) == []  # refused once: stays refused
    assert flow.handle(OFFER, 4.5) == []  # failed once: stays failed
    assert flow.phase == fl.Phase.WAITING


def test_offer_after_the_end_is_refused_so_the_agent_is_freed() -> None:
    flow = started()
    flow.handle(fl.CallerHungUp(), 1)
    assert flow.handle(OFFER, 2) == [fl.ReportOfferFailed("o1", "call is ended")]


EVENTS = st.sampled_from(
    [
        fl.Dtmf("1"),
        fl.Dtmf("0"),
        fl.Tick(),
        fl.MediaReady(),
        fl.OfferReceived("o1", "a1", "sip:a1@h"),
        fl.OfferReceived("o2", "a2", "sip:a2@h"),
        fl.AgentAnswered("o1"),
        fl.AgentAnswered("o2"),
        fl.AgentFailed("o1", "busy"),
        fl.AgentFailed("o2", "no-answer"),
        fl.AgentHungUp("o1"),
        fl.AgentHungUp("o2"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(EVENTS, st.floats(0, 5)), max_size=25), st.booleans())
def test_any_event_order_after_answer_ends_in_exactly_one_finish(
    steps: list[tuple[fl.Event, float]], caller_hangs_up: bool
) -> None:
    """Whatever the order: no FlowError, one offer at a time, every offer either reported
    answered or failed (never both, never twice), and a caller hang-up ends it with one Finish."""
    flow = started()
    now = 0.0
    commands: list[fl.Command] = []
    for event, dt in steps:
        now += dt
        commands += flow.handle(event, now)
        if flow.phase != fl.Phase.ENDED:
            commands += flow.handle(fl.Tick(), now)
    if caller_hangs_up or flow.phase != fl.Phase.ENDED:
        commands += flow.handle(fl.CallerHungUp(), now + 1)
    finishes = [c for c in commands if isinstance(c, fl.Finish)]
    assert len(finishes) == 1
    answered = [c.offer_id for c in commands if isinstance(c, fl.ReportOfferAnswered)]
    failed = [c.offer_id for c in commands if isinstance(c, fl.ReportOfferFailed)]
    dialled = [c.offer_id for c in commands if isinstance(c, fl.DialAgent)]
    assert len(answered) <= 1
    assert not set(answered) & set(failed) or len(dialled) > len(set(dialled))
    bridges = [c for c in commands if isinstance(c, fl.Bridge)]
    assert len(bridges) == len(answered)
    if bridges:
        assert finishes[0].outcome == Outcome.ANSWERED
    else:
        assert finishes[0].outcome in (Outcome.ABANDONED_IN_QUEUE, Outcome.ABANDONED_IN_GREETING)
    assert flow.handle(fl.CallerHungUp(), now + 2) == []  # nothing after the end
