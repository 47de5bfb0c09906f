"""Property test: random interleavings of queue operations against a real redis-server.

A reference model predicts every result: plain Python for the calls, offers and the handle-time
average, and the sans-IO agent_state.AgentMachine for every agent (the spec the Lua scripts
mirror). After every step the Redis state must match it, every agent.state event the scripts
published must be the model's Changed, and the ACD invariants must hold: no agent holds two
offers or calls, no call is offered to two agents, no entry is lost or duplicated, the waiting
calls are ordered by priority and by arrival within a priority.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from typing import Any, TypeVar

import hypothesis.strategies as st
import pytest
import redis
import redis.asyncio
from hypothesis import settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from hotline.core import events
from hotline.core.errors import Conflict, IllegalTransition
from hotline.core.model import Actor, Agent, AgentId, AgentState, CallId, OfferId, Priority, WorkerId
from hotline.queue import agent_state as ag
from hotline.queue import keys
from hotline.queue.acd import AcdPolicy, RedisCallQueue
from hotline.queue.estimate import next_handle_average

T = TypeVar("T")

CALLS = [CallId(f"c{n}") for n in range(5)]
AGENTS = [AgentId(f"a{n}") for n in range(3)]
W = WorkerId("w1")
# Time passing between steps; 0 (where shrinking heads) makes equal timestamps, i.e. ties.
DT = st.integers(0, 9)
# Mostly a live offer, sometimes any offer ever made (stale): calls get answered often enough to
# reach wrap-up and the handle-time average.
LIVE = st.sampled_from([True, True, True, False])
REASONS = st.sampled_from(["小休", "用餐", "培训"])
FAILURES = st.sampled_from(["no-answer", "busy", "not-registered", "no-such-call"])
SAMPLES = 3  # handle-time window, small so the exponential part is reached
# What agents ask for themselves (or a supervisor for them).
REQUESTS = st.one_of(
    st.builds(ag.Pause, REASONS, st.sampled_from(list(Actor))),
    st.builds(ag.Resume),
    st.builds(ag.WrapUpDone),
)


@dataclasses.dataclass
class ModelEntry:
    arrival: int
    priority: Priority
    offer: OfferId | None = None  # None while waiting


@dataclasses.dataclass(frozen=True)
class ModelOffer:
    call: CallId
    agent: AgentId
    expires: int


class Model:
    """What the queue must do: calls in plain Python, agents as AgentMachines."""

    def __init__(self, policy: ag.AgentPolicy) -> None:
        self.policy = policy
        self.entries: dict[CallId, ModelEntry] = {}
        self.machines: dict[AgentId, ag.AgentMachine] = {}
        self.idle: dict[AgentId, int] = {}  # from JoinIdleLine / LeaveIdleLine
        self.timers: dict[AgentId, int] = {}  # from StartWrapUpTimer / StopWrapUpTimer
        self.offers: dict[OfferId, ModelOffer] = {}
        self.oncall: dict[CallId, AgentId] = {}
        self.published: list[dict[str, Any]] = []  # Changed not yet seen on the stream
        self.handle: tuple[int | None, int] = (None, 0)

    def waiting(self) -> list[CallId]:
        waiting = [c for c, e in self.entries.items() if e.offer is None]
        return sorted(waiting, key=lambda c: (-self.entries[c].priority, self.entries[c].arrival, c))

    def available(self) -> list[AgentId]:
        return sorted(self.idle, key=lambda a: (self.idle[a], a))

    def apply(self, agent: AgentId, event: ag.Event, now: int) -> None:
        """Feeds the agent's machine and carries out its commands on the model."""
        for command in self.machines[agent].handle(event, now):
            match command:
                case ag.JoinIdleLine(idle_since_ms=since):
                    assert agent not in self.idle
                    self.idle[agent] = since
                case ag.LeaveIdleLine():
                    del self.idle[agent]
                case ag.StartWrapUpTimer(until_ms=until):
                    self.timers[agent] = until
                case ag.StopWrapUpTimer():
                    del self.timers[agent]
                case ag.RequeueCall(call_id=call, offer_id=offer):
                    del self.offers[offer]
                    self.entries[call].offer = None
                case ag.Changed():
                    self.published.append(command.to_dict())

    def tick(self, now: int) -> None:
        """What every script given the time does first: end the wrap-ups due."""
        for agent in sorted((a for a, t in self.timers.items() if t <= now), key=lambda a: (self.timers[a], a)):
            self.apply(agent, ag.Tick(), now)

    def fail(self, offer_id: OfferId, now: int, reason: str, agent_fault: bool) -> None:
        offer = self.offers.pop(offer_id)
        self.entries[offer.call].offer = None
        self.apply(offer.agent, ag.OfferFailed(offer_id, reason, agent_fault), now)


class QueueMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop  # one per test, owned (and closed) by the test function
    policy: ag.AgentPolicy

    def __init__(self, url: str) -> None:
        super().__init__()
        sync = redis.Redis.from_url(url)
        sync.flushdb()
        sync.close()
        self.client = redis.asyncio.Redis.from_url(url)
        self.queue = RedisCallQueue(self.client, policy=AcdPolicy(agent=self.policy, handle_samples=SAMPLES))
        self.model = Model(self.policy)
        self.now = 1_000
        self.seen_offers: list[OfferId] = []
        self.stream_seen = "0-0"

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def pick_offer(self, pick: int, live: bool) -> OfferId:
        """A live offer if asked and there is one, else any offer ever made (maybe stale)."""
        choices = sorted(self.model.offers) if live and self.model.offers else self.seen_offers
        return choices[pick % len(choices)]

    def teardown(self) -> None:
        self.run(self.client.aclose())

    def advance(self, dt: int) -> None:
        """Time passes and a script is given it: due wrap-ups end first (in Redis and model)."""
        self.now += dt
        self.model.tick(self.now)

    @initialize(
        agents=st.lists(st.sampled_from(AGENTS), unique=True, max_size=len(AGENTS)),
        calls=st.lists(st.sampled_from(CALLS), unique=True, max_size=len(CALLS)),
    )
    def busy_start(self, agents: list[AgentId], calls: list[CallId]) -> None:
        """Most runs start with agents at work and callers waiting: busier runs reach more states."""
        for agent in agents:
            self.login(agent, 1, Actor.AGENT)
        for call in calls:
            self.enqueue(call, 0, Priority.NORMAL)

    @rule(step=st.integers(0, 150))
    def tick(self, step: int) -> None:
        self.now += step

    # --- calls ---------------------------------------------------------------------------

    @rule(call=st.sampled_from(CALLS), offset=st.integers(-30, 30), priority=st.sampled_from(list(Priority)))
    def enqueue(self, call: CallId, offset: int, priority: Priority) -> None:
        arrival = max(0, self.now + offset)  # late-reported and equal arrivals happen
        got = self.run(self.queue.enqueue(call, W, "138", arrival, priority))
        m = self.model
        if call in m.oncall or (call in m.entries and m.entries[call].offer is not None):
            assert got == 0
            return
        if call not in m.entries:
            m.entries[call] = ModelEntry(arrival, priority)
        assert got == m.waiting().index(call) + 1

    @rule(call=st.sampled_from(CALLS), level=st.sampled_from(list(Priority)))
    def set_priority(self, call: CallId, level: Priority) -> None:
        got = self.run(self.queue.set_priority(call, level))
        entry = self.model.entries.get(call)
        if entry is None:
            assert got is None
            return
        entry.priority = max(entry.priority, level)
        assert got is entry.priority

    @rule(call=st.sampled_from(CALLS))
    def abandon(self, call: CallId) -> None:
        got = self.run(self.queue.abandon(call))
        m = self.model
        entry = m.entries.pop(call, None)
        assert got == (entry is not None)
        if entry is not None and entry.offer is not None:
            offer = m.offers.pop(entry.offer)
            m.apply(offer.agent, ag.OfferWithdrawn(entry.offer), self.now)

    @precondition(lambda self: any(e.offer for e in self.model.entries.values()))
    @rule(pick=st.integers(0, 10_000))
    def abandon_offered(self, pick: int) -> None:
        offered = sorted(c for c, e in self.model.entries.items() if e.offer)
        self.abandon(offered[pick % len(offered)])

    # --- agents --------------------------------------------------------------------------

    @rule(agent=st.sampled_from(AGENTS), dt=DT, by=st.sampled_from(list(Actor)))
    def login(self, agent: AgentId, dt: int, by: Actor) -> None:
        self.advance(dt)
        status = self.run(self.queue.agent_login(Agent(agent, agent, f"ext-{agent}"), self.now, by))
        m = self.model
        m.machines.setdefault(agent, ag.AgentMachine(agent, m.policy))
        m.apply(agent, ag.Login(by), self.now)
        assert status == m.machines[agent].status()

    @rule(agent=st.sampled_from(AGENTS), dt=DT, reason=st.sampled_from(["", "下班"]))
    def logout(self, agent: AgentId, dt: int, reason: str) -> None:
        self.advance(dt)
        m = self.model
        machine = m.machines.get(agent)
        if machine is not None and machine.state is AgentState.ON_CALL:
            try:
                self.run(self.queue.agent_logout(agent, self.now, reason=reason))
            except Conflict:
                return
            raise AssertionError("logout of an agent on a call must be a conflict")
        status = self.run(self.queue.agent_logout(agent, self.now, reason=reason))
        if machine is None:
            assert (status.state, status.since_ms) == (AgentState.LOGGED_OUT, 0)
            return
        m.apply(agent, ag.Logout(reason=reason), self.now)
        assert status == machine.status()

    def request(self, agent: AgentId, event: ag.Pause | ag.Resume | ag.WrapUpDone) -> None:
        machine = self.model.machines.get(agent)
        match event:
            case ag.Pause(reason=reason, by=by):
                call = self.queue.agent_pause(agent, reason, self.now, by)
            case ag.Resume(by=by):
                call = self.queue.agent_resume(agent, self.now, by)
            case ag.WrapUpDone(by=by):
                call = self.queue.wrap_up_done(agent, self.now, by)
        if machine is None or (machine.state, event.name) not in ag.TRANSITIONS:
            with pytest.raises(IllegalTransition):
                self.run(call)
            return
        status = self.run(call)
        self.model.apply(agent, event, self.now)
        assert status == machine.status()

    @rule(agent=st.sampled_from(AGENTS), dt=DT, event=REQUESTS)
    def agent_request(self, agent: AgentId, dt: int, event: ag.Pause | ag.Resume | ag.WrapUpDone) -> None:
        self.advance(dt)
        self.request(agent, event)

    # --- offers --------------------------------------------------------------------------

    @rule(lease=st.integers(1, 120), dt=DT)
    def dispatch(self, lease: int, dt: int) -> None:
        self.advance(dt)
        offer = self.run(self.queue.dispatch_once(self.now, lease))
        m = self.model
        waiting, available = m.waiting(), m.available()
        if not waiting or not available:
            assert offer is None
            return
        assert offer is not None
        assert (offer.call_id, offer.agent_id) == (waiting[0], available[0])
        assert offer.offer_id not in self.seen_offers
        self.seen_offers.append(offer.offer_id)
        m.offers[offer.offer_id] = ModelOffer(offer.call_id, offer.agent_id, self.now + lease)
        m.entries[offer.call_id].offer = offer.offer_id
        m.apply(offer.agent_id, ag.Offer(offer.call_id, offer.offer_id), self.now)

    @precondition(lambda self: bool(self.seen_offers))
    @rule(pick=st.integers(0, 10_000), dt=DT, live=LIVE)
    def answer(self, pick: int, dt: int, live: bool) -> None:
        self.answer_offer(self.pick_offer(pick, live), dt)

    def answer_offer(self, offer_id: OfferId, dt: int) -> None:
        self.advance(dt)
        got = self.run(self.queue.offer_answered(offer_id, self.now))
        m = self.model
        assert got == (offer_id in m.offers)
        if got:
            offer = m.offers.pop(offer_id)
            del m.entries[offer.call]
            m.oncall[offer.call] = offer.agent
            m.apply(offer.agent, ag.Answered(offer_id), self.now)

    @precondition(lambda self: bool(self.seen_offers))
    @rule(pick=st.integers(0, 10_000), dt=DT, live=LIVE, reason=FAILURES, agent_fault=st.booleans())
    def fail(self, pick: int, dt: int, live: bool, reason: str, agent_fault: bool) -> None:
        self.advance(dt)
        offer_id = self.pick_offer(pick, live)
        got = self.run(self.queue.offer_failed(offer_id, self.now, reason, agent_fault))
        assert got == (offer_id in self.model.offers)
        if got:
            self.model.fail(offer_id, self.now, reason, agent_fault)

    @rule(call=st.sampled_from(CALLS), dt=DT, lost=st.booleans())
    def finish(self, call: CallId, dt: int, lost: bool) -> None:
        self.advance(dt)
        self.run(self.queue.call_finished(call, self.now, lost=lost))
        m = self.model
        agent = m.oncall.pop(call, None)
        if agent is None:
            return
        if not lost:
            m.handle = next_handle_average(*m.handle, self.now - m.machines[agent].since_ms, SAMPLES)
        m.apply(agent, ag.CallEnded(call, lost), self.now)

    @precondition(lambda self: bool(self.model.oncall))
    @rule(pick=st.integers(0, 10_000), dt=DT, lost=st.booleans())
    def finish_answered(self, pick: int, dt: int, lost: bool) -> None:
        answered = sorted(self.model.oncall)
        self.finish(answered[pick % len(answered)], dt, lost)

    @precondition(lambda self: bool(self.model.waiting()) and bool(self.model.available()))
    @rule(dt=DT, talk=st.integers(0, 60))
    def serve_one(self, dt: int, talk: int) -> None:
        """A whole call in one step (offer, answer, hang-up): with swarm testing the three rules
        rarely meet, and wrap-up and the handle-time average are reached through them."""
        self.dispatch(120, dt)
        offer_id = self.seen_offers[-1]
        call = self.model.offers[offer_id].call
        self.answer_offer(offer_id, 0)
        self.finish(call, talk, lost=False)

    @rule(dt=DT)
    def expire(self, dt: int) -> None:
        self.advance(dt)
        expired = self.run(self.queue.expire_offers(self.now))
        m = self.model
        due = sorted(
            (o for o, offer in m.offers.items() if offer.expires <= self.now), key=lambda o: (m.offers[o].expires, o)
        )
        assert [o.offer_id for o in expired] == due
        for offer_id in due:
            m.fail(offer_id, self.now, "lease-expired", False)

    # --- after every step ------------------------------------------------------------------

    @invariant()
    def matches_the_model_and_keeps_the_rules(self) -> None:
        m = self.model
        waiting = self.run(self.queue.waiting())
        offered = self.run(self.queue.offered())
        statuses = {s.agent_id: s for s in self.run(self.queue.agents())}

        # priority first, FIFO by arrival within a priority, positions 1..n, no duplicates
        keys_ = [(-w.priority, w.arrival_ms, w.call_id) for w in waiting]
        assert keys_ == sorted(keys_)
        assert [w.position for w in waiting] == list(range(1, len(waiting) + 1))
        assert [w.call_id for w in waiting] == m.waiting()
        assert [w.priority for w in waiting] == [m.entries[c].priority for c in m.waiting()]

        # each offered call is held by exactly one RESERVED agent, who holds only it
        offered_to = {w.call_id: w.offered_to for w in offered}
        assert len(offered_to) == len(offered)
        reserved = {s.agent_id: s.call_id for s in statuses.values() if s.state is AgentState.RESERVED}
        assert {call: agent for agent, call in reserved.items()} == offered_to
        assert len(set(reserved.values())) == len(reserved)

        # an agent on a call holds exactly one call, and no call has two agents
        on_call = [s.call_id for s in statuses.values() if s.state is AgentState.ON_CALL]
        assert None not in on_call
        assert len(set(on_call)) == len(on_call)

        # no entry lost or duplicated: every live call is in exactly one place
        places = [w.call_id for w in waiting] + list(offered_to) + on_call
        assert len(places) == len(set(places))
        assert set(places) == set(m.entries) | set(m.oncall)

        # every agent exactly as his machine says (state, since, call, reason, idle line, wrap-up)
        assert set(statuses) == set(m.machines)
        for agent_id, status in statuses.items():
            assert status == m.machines[agent_id].status(), agent_id
        assert {a for a, s in statuses.items() if s.state is AgentState.AVAILABLE} == set(m.idle)
        for call in CALLS:
            position = self.run(self.queue.position(call))
            if call in m.entries:
                entry = m.entries[call]
                assert position == (0 if entry.offer else m.waiting().index(call) + 1)
            else:
                assert position is None

        # every change of an agent was published, in order, as the machine's Changed
        assert self.published_since_last_step() == m.published
        m.published.clear()

        average, _ = m.handle
        assert self.run(self.queue.average_handle_ms()) == (average if average is not None else 180_000)

    def published_since_last_step(self) -> list[dict[str, Any]]:
        entries = self.run(self.client.xrange(keys.events(), f"({self.stream_seen}", "+"))
        result = []
        for raw_id, fields in entries:
            self.stream_seen = raw_id.decode()
            kind, data = events.decode({k.decode(): v.decode() for k, v in fields.items()})
            assert kind == events.AGENT_STATE
            result.append(data)
        return result


POLICIES = {
    "wrap-up-and-autopause": ag.AgentPolicy(wrap_up_ms=20, pause_on_agent_failure=True),
    "no-wrap-up-no-autopause": ag.AgentPolicy(wrap_up_ms=0, pause_on_agent_failure=False),
}


# Passing takes seconds; a failure is shrunk for minutes (each step is a dozen Redis round
# trips), which the default per-test timeout would cut off before the counterexample is printed.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("policy", list(POLICIES.values()), ids=list(POLICIES))
def test_random_interleavings_keep_the_queue_consistent(redis_url: str, policy: ag.AgentPolicy) -> None:
    class OnThisServer(QueueMachine):
        def __init__(self) -> None:
            super().__init__(redis_url)

    OnThisServer.policy = policy
    OnThisServer.loop = asyncio.new_event_loop()
    try:
        run_state_machine_as_test(
            OnThisServer,
            settings=settings(max_examples=100, stateful_step_count=50, deadline=None),
        )
    finally:
        OnThisServer.loop.close()
