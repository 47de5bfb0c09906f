"""A ring_all group in the caller's flow (sans-IO): every offer of the group is dialled as it
comes, the first agent to answer takes the call and the other legs are hung up at once; a leg
that fails is reported and the others ring on; the ring timeout and the caller's hang-up end
them all. A property test: whatever the order of events, at most one agent is ever bridged and
every offer of the group is settled exactly once (answered, or reported failed, or hung up)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.core.model import Outcome
from hotline.ivr import flow as fl

GREETING = 7.5
GROUP = ("o1", "o2", "o3")


def offer(n: int) -> fl.OfferReceived:
    return fl.OfferReceived(f"o{n}", f"a{n}", f"sip:100{n}@127.0.0.1", GROUP)


def ringing() -> fl.CallFlow:
    flow = fl.CallFlow(fl.FlowSettings(greeting_s=GREETING, ring_timeout_s=20))
    flow.handle(fl.Incoming(), 0.0)
    flow.handle(fl.MediaReady(), 0.0)
    flow.handle(fl.Tick(), GREETING)
    assert flow.handle(offer(1), 10.0) == [fl.DialAgent("o1", "a1", "sip:1001@127.0.0.1", ring=True)]
    assert flow.handle(offer(2), 10.1) == [fl.DialAgent("o2", "a2", "sip:1002@127.0.0.1", ring=True)]
    assert flow.handle(offer(3), 10.2) == [fl.DialAgent("o3", "a3", "sip:1003@127.0.0.1", ring=True)]
    assert flow.handle(offer(2), 10.3) == []  # delivered again: ignored
    return flow


def test_the_first_to_answer_wins_and_the_other_legs_are_hung_up() -> None:
    flow = ringing()
    out = flow.handle(fl.AgentAnswered("o2"), 12.0)
    assert sorted(c.offer_id for c in out[:2] if isinstance(c, fl.HangupAgent)) == ["o1", "o3"]
    assert out[2:] == [fl.StopPlay(), fl.Bridge("o2", "a2"), fl.ReportOfferAnswered("o2")]
    assert flow.agent_id == "a2"
    assert flow.handle(fl.AgentAnswered("o1"), 12.1) == [fl.HangupAgent("o1")]  # answered too late
    assert flow.handle(fl.AgentFailed("o3", "cancelled"), 12.2) == []  # its leg's end: nothing to report


def test_a_failed_leg_is_reported_and_the_others_ring_on() -> None:
    flow = ringing()
    assert flow.handle(fl.AgentFailed("o1", "busy"), 11.0) == [fl.ReportOfferFailed("o1", "busy", "a1")]
    assert flow.handle(fl.AgentFailed("o3", "busy"), 11.5) == [fl.ReportOfferFailed("o3", "busy", "a3")]
    assert flow.phase == fl.Phase.OFFERING
    assert flow.handle(fl.AgentFailed("o2", "no-answer"), 12.0) == [fl.ReportOfferFailed("o2", "no-answer", "a2")]
    assert flow.phase == fl.Phase.WAITING


def test_the_ring_timeout_ends_every_leg() -> None:
    flow = ringing()
    out = flow.handle(fl.Tick(), 30.0)
    reported = [c for c in out if isinstance(c, fl.ReportOfferFailed)]
    assert sorted(c.offer_id for c in reported) == list(GROUP)
    assert sorted(c.offer_id for c in out if isinstance(c, fl.HangupAgent)) == list(GROUP)
    assert flow.phase == fl.Phase.WAITING


def test_the_caller_hanging_up_hangs_up_every_leg() -> None:
    flow = ringing()
    out = flow.handle(fl.CallerHungUp(), 11.0)
    assert sorted(c.offer_id for c in out if isinstance(c, fl.HangupAgent)) == list(GROUP)
    assert out[-2:] == [fl.Abandon(), fl.Finish(Outcome.ABANDONED_IN_QUEUE, "caller")]


def test_an_offer_of_another_group_is_refused() -> None:
    flow = ringing()
    stranger = fl.OfferReceived("x1", "a9", "sip:1009@127.0.0.1", ("x1", "x2"))
    assert flow.handle(stranger, 11.0) == [fl.ReportOfferFailed("x1", "call is offering")]


EVENTS = st.lists(
    st.one_of(
        st.builds(lambda n: ("answer", n), st.integers(1, 3)),
        st.builds(lambda n, r: ("fail", n, r), st.integers(1, 3), st.sampled_from(["busy", "no-answer"])),
        st.builds(lambda n: ("offer", n), st.integers(1, 3)),
        st.just(("tick",)),
        st.just(("hangup",)),
    ),
    max_size=12,
)


@settings(max_examples=300)
@given(events=EVENTS)
def test_at_most_one_agent_is_ever_bridged_and_each_offer_is_settled_once(events: list[tuple[object, ...]]) -> None:
    flow = fl.CallFlow(fl.FlowSettings(greeting_s=GREETING, ring_timeout_s=20))
    flow.handle(fl.Incoming(), 0.0)
    flow.handle(fl.MediaReady(), 0.0)
    flow.handle(fl.Tick(), GREETING)
    out: list[fl.Command] = list(flow.handle(offer(1), 10.0))
    now = 10.0
    for event in events:
        now += 1.0
        match event:
            case ("answer", n):
                out += flow.handle(fl.AgentAnswered(f"o{n}"), now)
            case ("fail", n, reason):
                out += flow.handle(fl.AgentFailed(f"o{n}", str(reason)), now)
            case ("offer", n):
                out += flow.handle(offer(int(str(n))), now)
            case ("tick",):
                out += flow.handle(fl.Tick(), now + 30.0)
                now += 30.0
            case ("hangup",):
                out += flow.handle(fl.CallerHungUp(), now)
    bridged = [c.offer_id for c in out if isinstance(c, fl.Bridge)]
    answered = [c.offer_id for c in out if isinstance(c, fl.ReportOfferAnswered)]
    failed = [c.offer_id for c in out if isinstance(c, fl.ReportOfferFailed)]
    dialled = [c.offer_id for c in out if isinstance(c, fl.DialAgent)]
    assert len(bridged) <= 1 and bridged == answered  # no call connected to two agents
    assert len(dialled) == len(set(dialled))  # each agent's phone rung once
    assert len(failed) == len(set(failed))  # each offer reported failed at most once
    assert not set(answered) & set(failed)
