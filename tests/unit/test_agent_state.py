"""The agent state machine (sans-IO): its table, each transition, and random event sequences."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given

from hotline.core.errors import IllegalTransition
from hotline.core.model import Actor, AgentId, AgentState, CallId, OfferId
from hotline.queue import agent_state as ag
from hotline.queue.agent_state import (
    AgentMachine,
    AgentPolicy,
    Answered,
    CallEnded,
    Changed,
    JoinIdleLine,
    LeaveIdleLine,
    Login,
    Logout,
    Offer,
    OfferFailed,
    OfferWithdrawn,
    Pause,
    RequeueCall,
    Resume,
    StartWrapUpTimer,
    StopWrapUpTimer,
    Tick,
    TransferTaken,
    WrapUpDone,
)

A1 = AgentId("a1")
C1, O1 = CallId("c1"), OfferId("c1:1")
S = AgentState


def machine(wrap_up_ms: int = 0, pause: bool = True) -> AgentMachine:
    return AgentMachine(A1, AgentPolicy(wrap_up_ms=wrap_up_ms, pause_on_agent_failure=pause))


def changed(commands: list[ag.Command]) -> list[Changed]:
    return [c for c in commands if isinstance(c, Changed)]


def in_state(state: AgentState, wrap_up_ms: int = 30_000) -> AgentMachine:
    """A machine brought to `state` through legal events (login at 100, offer at 200, ...)."""
    m = machine(wrap_up_ms=wrap_up_ms)
    path: dict[AgentState, list[ag.Event]] = {
        S.LOGGED_OUT: [],
        S.AVAILABLE: [Login()],
        S.RESERVED: [Login(), Offer(C1, O1)],
        S.ON_CALL: [Login(), Offer(C1, O1), Answered(O1)],
        S.WRAP_UP: [Login(), Offer(C1, O1), Answered(O1), CallEnded(C1)],
        S.PAUSED: [Login(), Pause("小休")],
    }
    for n, event in enumerate(path[state]):
        m.handle(event, 100 * (n + 1))
    assert m.state is state
    return m


# One instance of every event, for walking the whole table.
EVERY_EVENT: list[ag.Event] = [
    Login(),
    Logout(),
    Offer(C1, O1),
    Answered(O1),
    OfferFailed(O1, "no-answer", agent_fault=True),
    OfferWithdrawn(O1),
    TransferTaken(C1),
    CallEnded(C1),
    Pause("用餐"),
    Resume(),
    WrapUpDone(),
    Tick(),
]


def test_every_event_has_a_name_in_the_table_and_every_state_a_row() -> None:
    assert {e.name for e in EVERY_EVENT} == ag.EVENT_NAMES
    assert {state for state, _ in ag.TRANSITIONS} == set(AgentState)
    for (state, _event), targets in ag.TRANSITIONS.items():
        assert targets, state


@pytest.mark.parametrize("state", list(AgentState))
@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda e: e.name)
def test_a_pair_outside_the_table_raises_naming_both(state: AgentState, event: ag.Event) -> None:
    m = in_state(state)
    before = m.status()
    if (state, event.name) in ag.TRANSITIONS:
        m.handle(event, 10_000)  # legal: no error (what it does is tested below)
        return
    with pytest.raises(IllegalTransition) as error:
        m.handle(event, 10_000)
    assert event.name in str(error.value) and state.value in str(error.value)
    assert error.value.error_id == "illegal-transition"
    assert m.status() == before  # nothing changed


class TestLoginLogout:
    def test_login_makes_him_available_idle_since_now(self) -> None:
        m = machine()
        out = m.handle(Login(Actor.SUPERVISOR), 1_000)
        assert out == [
            JoinIdleLine(1_000),
            Changed(A1, S.LOGGED_OUT, S.AVAILABLE, "login", Actor.SUPERVISOR, "", None, 1_000),
        ]
        status = m.status()
        assert (status.state, status.since_ms, status.idle_since_ms) == (S.AVAILABLE, 1_000, 1_000)

    @pytest.mark.parametrize("state", [s for s in AgentState if s is not S.LOGGED_OUT])
    def test_login_again_keeps_every_state(self, state: AgentState) -> None:
        m = in_state(state)
        before = m.status()
        assert m.handle(Login(), 9_000) == []
        assert m.status() == before

    @pytest.mark.parametrize("state", [S.AVAILABLE, S.WRAP_UP, S.PAUSED])
    def test_logout(self, state: AgentState) -> None:
        m = in_state(state)
        out = m.handle(Logout(reason="下班"), 9_000)
        assert changed(out) == [Changed(A1, state, S.LOGGED_OUT, "logout", Actor.AGENT, "下班", None, 9_000)]
        assert (LeaveIdleLine() in out) == (state is S.AVAILABLE)
        assert (StopWrapUpTimer() in out) == (state is S.WRAP_UP)
        assert m.next_deadline() is None
        assert m.handle(Logout(), 9_500) == []  # idempotent
        assert m.since_ms == 9_000

    def test_logout_while_reserved_puts_the_call_back(self) -> None:
        m = in_state(S.RESERVED)
        out = m.handle(Logout(), 9_000)
        assert out[0] == RequeueCall(C1, O1, ag.AGENT_LOGGED_OUT)
        assert (m.state, m.call_id, m.offer_id) == (S.LOGGED_OUT, None, None)

    def test_logout_on_a_call_is_illegal(self) -> None:
        with pytest.raises(IllegalTransition, match="logout"):
            in_state(S.ON_CALL).handle(Logout(), 9_000)


class TestOffers:
    def test_offer_answer(self) -> None:
        m = in_state(S.AVAILABLE)  # login at 100
        out = m.handle(Offer(C1, O1), 500)
        assert out == [LeaveIdleLine(), Changed(A1, S.AVAILABLE, S.RESERVED, "offer", Actor.SYSTEM, "", C1, 500)]
        assert (m.status().call_id, m.status().idle_since_ms) == (C1, None)
        out = m.handle(Answered(O1), 900)
        assert out == [Changed(A1, S.RESERVED, S.ON_CALL, "answered", Actor.AGENT, "", C1, 900)]

    def test_withdrawn_offer_gives_him_back_his_turn(self) -> None:
        m = in_state(S.AVAILABLE)  # since 100, idle since 100
        m.handle(Offer(C1, O1), 500)
        out = m.handle(OfferWithdrawn(O1), 700)
        assert out == [
            JoinIdleLine(100),
            Changed(A1, S.RESERVED, S.AVAILABLE, "offer_withdrawn", Actor.SYSTEM, ag.ABANDONED, None, 100),
        ]
        assert (m.since_ms, m.status().idle_since_ms) == (100, 100)

    def test_withdrawn_for_a_callback_says_so(self) -> None:
        m = in_state(S.RESERVED)
        out = m.handle(OfferWithdrawn(O1, ag.CALLBACK_REQUESTED), 700)
        assert changed(out)[0].reason == m.reason == "callback"

    @pytest.mark.parametrize("reason", ["no-answer", "busy", "not-registered"])
    def test_agent_side_failure_pauses_him_with_the_reason(self, reason: str) -> None:
        m = in_state(S.RESERVED)
        out = m.handle(OfferFailed(O1, reason, agent_fault=True), 5_000)
        assert out == [Changed(A1, S.RESERVED, S.PAUSED, "offer_failed", Actor.SYSTEM, reason, None, 5_000)]
        assert (m.state, m.reason, m.call_id) == (S.PAUSED, reason, None)

    def test_agent_side_failure_without_autopause_keeps_him_available_at_the_back(self) -> None:
        m = machine(pause=False)
        m.handle(Login(), 100)
        m.handle(Offer(C1, O1), 200)
        out = m.handle(OfferFailed(O1, "no-answer", agent_fault=True), 5_000)
        assert out[0] == JoinIdleLine(5_000)
        assert (m.state, m.reason, m.status().idle_since_ms) == (S.AVAILABLE, "no-answer", 5_000)

    @pytest.mark.parametrize("pause", [True, False])
    def test_an_offer_he_declined_pauses_him_by_his_choice_whatever_the_policy(self, pause: bool) -> None:
        m = machine(pause=pause)
        m.handle(Login(), 100)
        m.handle(Offer(C1, O1), 200)
        out = m.handle(OfferFailed(O1, "拒接", declined=True), 5_000)
        assert out == [Changed(A1, S.RESERVED, S.PAUSED, "offer_failed", Actor.AGENT, "拒接", None, 5_000)]
        assert (m.state, m.reason, m.call_id) == (S.PAUSED, "拒接", None)

    def test_other_failures_make_him_available_idle_since_now(self) -> None:
        m = in_state(S.RESERVED)
        m.handle(OfferFailed(O1, "lease-expired"), 5_000)
        assert (m.state, m.since_ms, m.status().idle_since_ms, m.reason) == (S.AVAILABLE, 5_000, 5_000, "lease-expired")

    @pytest.mark.parametrize(
        "event", [Answered(OfferId("x:9")), OfferFailed(OfferId("x:9"), "busy"), OfferWithdrawn(OfferId("x:9"))]
    )
    def test_an_event_about_another_offer_is_refused(self, event: ag.Event) -> None:
        m = in_state(S.RESERVED)
        with pytest.raises(IllegalTransition, match="x:9"):
            m.handle(event, 5_000)
        assert (m.state, m.offer_id) == (S.RESERVED, O1)


class TestWrapUp:
    def test_call_end_starts_wrap_up_which_ends_by_itself_at_its_deadline(self) -> None:
        m = in_state(S.ON_CALL, wrap_up_ms=30_000)
        out = m.handle(CallEnded(C1), 10_000)
        assert out == [
            StartWrapUpTimer(40_000),
            Changed(A1, S.ON_CALL, S.WRAP_UP, "call_ended", Actor.SYSTEM, "", C1, 10_000),
        ]
        assert m.next_deadline() == 40_000
        assert m.status().wrap_up_until_ms == 40_000
        assert m.status().call_id == C1  # the call being wrapped up
        assert m.handle(Tick(), 39_999) == []
        out = m.handle(Tick(), 45_000)  # late tick: the wrap-up still ended at its deadline
        assert out == [
            StopWrapUpTimer(),
            JoinIdleLine(40_000),
            Changed(A1, S.WRAP_UP, S.AVAILABLE, ag.WRAP_UP_EXPIRED, Actor.SYSTEM, "", None, 40_000),
        ]
        assert (m.since_ms, m.status().idle_since_ms, m.next_deadline()) == (40_000, 40_000, None)

    def test_done_early_by_the_agent(self) -> None:
        m = in_state(S.WRAP_UP)
        out = m.handle(WrapUpDone(), 12_000)
        assert changed(out) == [Changed(A1, S.WRAP_UP, S.AVAILABLE, "wrap_up_done", Actor.AGENT, "", None, 12_000)]
        assert m.status().idle_since_ms == 12_000
        assert m.handle(WrapUpDone(), 12_500) == []  # already done: nothing
        assert m.handle(Tick(), 10**9) == []  # the timer was stopped

    def test_no_wrap_up_time_means_available_at_once(self) -> None:
        m = in_state(S.ON_CALL, wrap_up_ms=0)
        m.handle(CallEnded(C1), 10_000)
        assert (m.state, m.since_ms, m.status().idle_since_ms) == (S.AVAILABLE, 10_000, 10_000)

    def test_a_lost_call_frees_him_at_once(self) -> None:
        m = in_state(S.ON_CALL, wrap_up_ms=30_000)
        out = m.handle(CallEnded(C1, lost=True), 10_000)
        assert changed(out)[0].reason == ag.CALL_LOST
        assert (m.state, m.next_deadline()) == (S.AVAILABLE, None)

    def test_the_end_of_another_call_is_refused(self) -> None:
        with pytest.raises(IllegalTransition, match="c9"):
            in_state(S.ON_CALL).handle(CallEnded(CallId("c9")), 10_000)

    def test_pause_during_wrap_up_stops_the_timer(self) -> None:
        m = in_state(S.WRAP_UP)
        out = m.handle(Pause("培训"), 12_000)
        assert out[0] == StopWrapUpTimer()
        assert (m.state, m.reason, m.next_deadline()) == (S.PAUSED, "培训", None)


class TestPause:
    def test_pause_and_resume(self) -> None:
        m = in_state(S.AVAILABLE)
        out = m.handle(Pause("小休"), 1_000)
        assert out == [LeaveIdleLine(), Changed(A1, S.AVAILABLE, S.PAUSED, "pause", Actor.AGENT, "小休", None, 1_000)]
        assert m.handle(Pause("小休"), 1_500) == []  # the same pause: nothing
        out = m.handle(Pause("用餐", Actor.SUPERVISOR), 2_000)  # another reason: a new pause
        assert out == [Changed(A1, S.PAUSED, S.PAUSED, "pause", Actor.SUPERVISOR, "用餐", None, 2_000)]
        out = m.handle(Resume(), 3_000)
        assert out == [JoinIdleLine(3_000), Changed(A1, S.PAUSED, S.AVAILABLE, "resume", Actor.AGENT, "", None, 3_000)]
        assert m.handle(Resume(), 3_500) == []  # available already

    @pytest.mark.parametrize("state", [S.LOGGED_OUT, S.RESERVED, S.ON_CALL])
    def test_no_pause_while_logged_out_ringing_or_talking(self, state: AgentState) -> None:
        with pytest.raises(IllegalTransition):
            in_state(state).handle(Pause("小休"), 9_000)

    @pytest.mark.parametrize("state", [S.LOGGED_OUT, S.RESERVED, S.ON_CALL, S.WRAP_UP])
    def test_resume_only_ends_a_pause(self, state: AgentState) -> None:
        with pytest.raises(IllegalTransition):
            in_state(state).handle(Resume(), 9_000)


class TestTransferTaken:
    def test_from_the_transfer_pause_to_the_call_as_if_answered(self) -> None:
        m = machine(wrap_up_ms=30_000)
        m.handle(Login(), 100)
        m.handle(Pause(ag.TRANSFER_PAUSE, Actor.SYSTEM), 200)
        out = m.handle(TransferTaken(C1), 300)
        assert out == [Changed(A1, S.PAUSED, S.ON_CALL, "transfer_taken", Actor.AGENT, "", C1, 300)]
        status = m.status()
        assert (status.state, status.call_id, status.calls_answered) == (S.ON_CALL, C1, 1)
        assert m.handle(TransferTaken(C1), 400) == []  # a repeat
        m.handle(CallEnded(C1), 1_300)
        status = m.status()
        assert (status.state, status.call_id, status.talk_ms) == (S.WRAP_UP, C1, 1_000)

    @pytest.mark.parametrize("state", [S.PAUSED, S.ON_CALL])
    def test_only_from_the_transfer_pause(self, state: AgentState) -> None:
        m = in_state(state)  # paused for 小休, or on another offer's call
        before = m.status()
        assert m.handle(TransferTaken(CallId("c2")), 10_000) == []
        assert m.status() == before

    @pytest.mark.parametrize("state", [S.LOGGED_OUT, S.AVAILABLE, S.RESERVED, S.WRAP_UP])
    def test_illegal_elsewhere(self, state: AgentState) -> None:
        with pytest.raises(IllegalTransition):
            in_state(state).handle(TransferTaken(C1), 10_000)

    def test_the_first_agents_wrap_up_says_who_took_the_call(self) -> None:
        m = in_state(S.ON_CALL)
        out = changed(m.handle(CallEnded(C1, transferred_to=AgentId("a2")), 10_000))
        assert (out[0].state, out[0].reason, out[0].call_id) == (S.WRAP_UP, f"{ag.TRANSFERRED}a2", C1)


class TestCounts:
    """What the fewest_calls and least_talk_time strategies read: counted since his login."""

    def test_answered_calls_and_talk_time_add_up_until_the_next_login(self) -> None:
        m = machine()
        m.handle(Login(), 100)
        for n, (answered, ended, lost) in enumerate([(1_000, 61_000, False), (70_000, 80_000, True)]):
            offer = OfferId(f"c{n}:1")
            m.handle(Offer(CallId(f"c{n}"), offer), answered - 500)
            m.handle(Answered(offer), answered)
            m.handle(CallEnded(CallId(f"c{n}"), lost=lost), ended)
        m.handle(Offer(C1, O1), 90_000)
        m.handle(OfferFailed(O1, "no-answer"), 95_000)  # not answered: not counted
        assert (m.status().calls_answered, m.status().talk_ms) == (2, 70_000)
        m.handle(Login(), 100_000)  # logged in already: nothing resets
        m.handle(Logout(), 150_000)
        assert (m.status().calls_answered, m.status().talk_ms) == (2, 70_000)  # kept while out
        m.handle(Login(), 200_000)
        assert (m.status().calls_answered, m.status().talk_ms) == (0, 0)


def test_changed_as_event_data() -> None:
    change = Changed(A1, S.PAUSED, S.AVAILABLE, "resume", Actor.AGENT, "", None, 5)
    assert change.to_dict() == {
        "agent_id": "a1",
        "previous": "paused",
        "state": "available",
        "event": "resume",
        "by": "agent",
        "reason": "",
        "call_id": None,
        "since_ms": 5,
    }


# ---------------------------------------------------------------- random sequences
EVENTS = st.one_of(
    st.just(Login()),
    st.builds(Logout, reason=st.sampled_from(["", "下班"])),
    st.just(Offer(C1, O1)),
    st.just(Answered(O1)),
    st.builds(OfferFailed, st.just(O1), st.sampled_from(["no-answer", "lease-expired"]), st.booleans()),
    st.just(OfferWithdrawn(O1)),
    st.just(TransferTaken(C1)),
    st.builds(CallEnded, st.just(C1), st.booleans(), st.sampled_from([None, AgentId("a2")])),
    st.builds(Pause, st.sampled_from(["小休", "用餐", ag.TRANSFER_PAUSE]), st.sampled_from(list(Actor))),
    st.just(Resume()),
    st.just(WrapUpDone()),
    st.just(Tick()),
)


@given(steps=st.lists(st.tuples(EVENTS, st.integers(0, 20_000)), max_size=40), wrap_up=st.sampled_from([0, 10_000]))
def test_any_sequence_keeps_the_books_straight(steps: list[tuple[ag.Event, int]], wrap_up: int) -> None:
    """Whatever happens: in the idle line iff available, a timer iff in wrap-up, one Changed per
    change that says what changed, and an illegal event changes nothing."""
    m = machine(wrap_up_ms=wrap_up)
    now, idle, timer = 0, False, False
    for event, dt in steps:
        now += dt
        before = m.status()
        try:
            out = m.handle(event, now)
        except IllegalTransition:
            assert (before.state, event.name) not in ag.TRANSITIONS  # one offer, one call: ids always match
            assert m.status() == before
            continue
        after = m.status()
        assert after.state in ag.TRANSITIONS[(before.state, event.name)]
        for command in out:
            if isinstance(command, JoinIdleLine):
                assert not idle
                idle = True
            elif isinstance(command, LeaveIdleLine):
                assert idle
                idle = False
            elif isinstance(command, StartWrapUpTimer):
                assert not timer
                timer = True
            elif isinstance(command, StopWrapUpTimer):
                assert timer
                timer = False
        assert idle == (after.state is S.AVAILABLE)
        assert timer == (after.state is S.WRAP_UP) == (m.next_deadline() is not None)
        changes = changed(out)
        if (before.state, before.reason, before.since_ms) == (after.state, after.reason, after.since_ms):
            assert changes == [] and out == []
        else:
            assert len(changes) == 1 and out[-1] == changes[0]
            change = changes[0]
            assert (change.previous, change.state, change.since_ms, change.reason, change.call_id) == (
                before.state,
                after.state,
                after.since_ms,
                after.reason,
                after.call_id,
            )
        assert (after.call_id is not None) == (after.state in (S.RESERVED, S.ON_CALL, S.WRAP_UP))
