"""The callback call flow (hotline/ivr/callback.py): agent first, then the caller."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.core.model import Outcome
from hotline.ivr import callback as cb
from hotline.ivr.flow import FlowError

S = cb.CallbackSettings(ring_timeout_s=20, caller_ring_timeout_s=30)


def started(now: float = 0.0) -> tuple[cb.CallbackFlow, list[cb.Command]]:
    flow = cb.CallbackFlow(S)
    return flow, flow.handle(cb.Start(), now)


def test_agent_first_then_the_caller_then_bridged() -> None:
    flow, out = started()
    assert out == [cb.DialAgent()] and flow.next_deadline() == 20
    assert flow.handle(cb.AgentAnswered(), 5) == [cb.PlayAgent("callback_agent", loop=True), cb.DialCaller()]
    assert flow.next_deadline() == 35
    assert flow.handle(cb.CallerAnswered(), 12) == [cb.Bridge(), cb.ReportOfferAnswered()]
    assert flow.next_deadline() is None
    assert flow.handle(cb.CallerGone("hangup"), 100) == [cb.HangupAgent(), cb.Finish(Outcome.ANSWERED, "caller")]
    assert flow.handle(cb.AgentGone("hangup"), 101) == []  # ended: late events change nothing


def test_the_agent_not_answering_is_his_fault_and_leaves_no_record() -> None:
    flow, _ = started()
    assert flow.handle(cb.Tick(), 19.9) == []
    assert flow.handle(cb.Tick(), 20) == [
        cb.HangupAgent(),
        cb.ReportOfferFailed("no-answer", agent_fault=True),
        cb.Finish(None, "system", "no-answer"),
    ]
    flow, _ = started()
    assert flow.handle(cb.AgentGone("busy"), 3) == [
        cb.ReportOfferFailed("busy", agent_fault=True),
        cb.Finish(None, "agent", "busy"),
    ]


@pytest.mark.parametrize("reason", ["busy", "no-answer", "unreachable"])
def test_the_caller_not_answering_is_reported_for_a_retry(reason: str) -> None:
    flow, _ = started()
    flow.handle(cb.AgentAnswered(), 5)
    assert flow.handle(cb.CallerGone(reason), 9) == [
        cb.HangupAgent(),
        cb.ReportCallbackFailed(reason),
        cb.Finish(Outcome.CALLBACK_FAILED, "caller", reason),
    ]


def test_the_callers_phone_ringing_too_long() -> None:
    flow, _ = started()
    flow.handle(cb.AgentAnswered(), 5)
    assert flow.handle(cb.Tick(), 34) == []
    assert flow.handle(cb.Tick(), 35) == [
        cb.HangupCaller(),
        cb.HangupAgent(),
        cb.ReportCallbackFailed("no-answer"),
        cb.Finish(Outcome.CALLBACK_FAILED, "system", "no-answer"),
    ]


def test_the_agent_leaving_while_the_caller_rings() -> None:
    flow, _ = started()
    flow.handle(cb.AgentAnswered(), 5)
    assert flow.handle(cb.AgentGone("hangup"), 7) == [
        cb.HangupCaller(),
        cb.ReportOfferFailed("agent-hung-up", agent_fault=True),
        cb.Finish(None, "agent", "agent-hung-up"),
    ]


def test_an_unknown_pair_names_event_and_phase() -> None:
    flow = cb.CallbackFlow(S)
    with pytest.raises(FlowError, match=r"CallerAnswered.*new"):
        flow.handle(cb.CallerAnswered(), 0)


EVENTS = st.sampled_from([cb.AgentAnswered(), cb.AgentGone("x"), cb.CallerAnswered(), cb.CallerGone("y"), cb.Tick()])


@given(st.lists(st.tuples(EVENTS, st.floats(0, 5)), max_size=12))
def test_any_sequence_ends_once_and_reports_once(steps: list[tuple[cb.Event, float]]) -> None:
    """Whatever the legs do, exactly one Finish and exactly one report to the queue."""
    flow, _ = started()
    now = 0.0
    out: list[cb.Command] = []
    for event, dt in [*steps, (cb.AgentGone("end"), 1.0), (cb.CallerGone("end"), 1.0), (cb.Tick(), 100.0)]:
        now += dt
        try:
            out += flow.handle(event, now)
        except FlowError:
            continue  # e.g. the caller answering before being dialled: not a reachable pair
    finishes = [c for c in out if isinstance(c, cb.Finish)]
    assert len(finishes) == 1
    reports = [c for c in out if isinstance(c, cb.ReportOfferAnswered | cb.ReportOfferFailed | cb.ReportCallbackFailed)]
    assert len(reports) == 1
    assert flow.phase == cb.CallbackPhase.ENDED


def test_the_agent_hears_why_before_his_leg_is_hung_up() -> None:
    flow = cb.CallbackFlow(cb.CallbackSettings(ring_timeout_s=20, caller_ring_timeout_s=30, agent_failed_s=6))
    flow.handle(cb.Start(), 0)
    flow.handle(cb.AgentAnswered(), 2)
    assert flow.handle(cb.CallerGone("busy"), 3) == [
        cb.PlayAgent("callback_agent_failed"),
        cb.ReportCallbackFailed("busy"),
    ]
    assert flow.next_deadline() == 9
    assert flow.handle(cb.Tick(), 8.9) == []
    assert flow.handle(cb.Tick(), 9) == [cb.HangupAgent(), cb.Finish(Outcome.CALLBACK_FAILED, "caller", "busy")]
    # ... or he hangs up first, having heard enough.
    flow = cb.CallbackFlow(cb.CallbackSettings(agent_failed_s=6))
    flow.handle(cb.Start(), 0)
    flow.handle(cb.AgentAnswered(), 2)
    assert flow.handle(cb.Tick(), 32) == [
        cb.HangupCaller(),
        cb.PlayAgent("callback_agent_failed"),
        cb.ReportCallbackFailed("no-answer"),
    ]
    assert flow.handle(cb.AgentGone("hangup"), 33) == [cb.Finish(Outcome.CALLBACK_FAILED, "system", "no-answer")]
