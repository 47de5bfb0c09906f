"""Property test: random interleavings of queue operations against a real redis-server.

A small reference model predicts every result; after every step the Redis state must match it
and keep the ACD invariants: no agent holds two offers or calls, no call is offered to two
agents, no entry is lost or duplicated, waiting entries stay in FIFO order.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from typing import Any, TypeVar

import hypothesis.strategies as st
import redis
import redis.asyncio
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from hotline.core.errors import Conflict
from hotline.core.model import Agent, AgentId, AgentState, CallId, OfferId, WorkerId
from hotline.queue.acd import RedisCallQueue

T = TypeVar("T")

CALLS = [CallId(f"c{n}") for n in range(5)]
AGENTS = [AgentId(f"a{n}") for n in range(3)]
W = WorkerId("w1")
# Time passing between steps; 0 (where shrinking heads) makes equal timestamps, i.e. ties.
DT = st.integers(0, 9)


@dataclasses.dataclass
class ModelAgent:
    state: AgentState
    since: int
    idle_since: int = 0
    prev_since: int = 0
    call: CallId | None = None
    offer: OfferId | None = None


@dataclasses.dataclass
class ModelEntry:
    arrival: int
    offer: OfferId | None = None  # None while waiting


@dataclasses.dataclass(frozen=True)
class ModelOffer:
    call: CallId
    agent: AgentId
    expires: int


class Model:
    """What the queue must do, in plain Python."""

    def __init__(self) -> None:
        self.entries: dict[CallId, ModelEntry] = {}
        self.agents: dict[AgentId, ModelAgent] = {}
        self.offers: dict[OfferId, ModelOffer] = {}
        self.oncall: dict[CallId, AgentId] = {}

    def waiting(self) -> list[CallId]:
        waiting = [c for c, e in self.entries.items() if e.offer is None]
        return sorted(waiting, key=lambda c: (self.entries[c].arrival, c))

    def available(self) -> list[AgentId]:
        free = [a for a, s in self.agents.items() if s.state is AgentState.AVAILABLE]
        return sorted(free, key=lambda a: (self.agents[a].idle_since, a))

    def make_available(self, agent: AgentId, since: int, idle_since: int) -> None:
        self.agents[agent] = ModelAgent(AgentState.AVAILABLE, since, idle_since)

    def fail(self, offer_id: OfferId, now: int) -> None:
        offer = self.offers.pop(offer_id)
        self.entries[offer.call].offer = None
        self.make_available(offer.agent, now, now)


class QueueMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop  # one per test, owned (and closed) by the test function

    def __init__(self, url: str) -> None:
        super().__init__()
        sync = redis.Redis.from_url(url)
        sync.flushdb()
        sync.close()
        self.client = redis.asyncio.Redis.from_url(url)
        self.queue = RedisCallQueue(self.client)
        self.model = Model()
        self.now = 1_000
        self.seen_offers: list[OfferId] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def pick_offer(self, pick: int, live: bool) -> OfferId:
        """A live offer if asked and there is one, else any offer ever made (maybe stale)."""
        choices = sorted(self.model.offers) if live and self.model.offers else self.seen_offers
        return choices[pick % len(choices)]

    def teardown(self) -> None:
        self.run(self.client.aclose())

    @rule(step=st.integers(0, 150))
    def tick(self, step: int) -> None:
        self.now += step

    @rule(call=st.sampled_from(CALLS), offset=st.integers(-30, 30))
    def enqueue(self, call: CallId, offset: int) -> None:
        arrival = max(0, self.now + offset)  # late-reported and equal arrivals happen
        got = self.run(self.queue.enqueue(call, W, "138", arrival))
        m = self.model
        if call in m.oncall or (call in m.entries and m.entries[call].offer is not None):
            assert got == 0
            return
        if call not in m.entries:
            m.entries[call] = ModelEntry(arrival)
        assert got == m.waiting().index(call) + 1

    @rule(call=st.sampled_from(CALLS))
    def abandon(self, call: CallId) -> None:
        got = self.run(self.queue.abandon(call))
        m = self.model
        entry = m.entries.pop(call, None)
        assert got == (entry is not None)
        if entry is not None and entry.offer is not None:
            offer = m.offers.pop(entry.offer)
            agent = m.agents[offer.agent]
            m.make_available(offer.agent, agent.prev_since, agent.idle_since)

    @precondition(lambda self: any(e.offer for e in self.model.entries.values()))
    @rule(pick=st.integers(0, 10_000))
    def abandon_offered(self, pick: int) -> None:
        offered = sorted(c for c, e in self.model.entries.items() if e.offer)
        self.abandon(offered[pick % len(offered)])

    @rule(agent=st.sampled_from(AGENTS), dt=DT)
    def login(self, agent: AgentId, dt: int) -> None:
        self.now += dt
        status = self.run(self.queue.agent_login(Agent(agent, agent, f"ext-{agent}"), self.now))
        m = self.model
        if agent not in m.agents or m.agents[agent].state is AgentState.LOGGED_OUT:
            m.make_available(agent, self.now, self.now)
        assert status.state is m.agents[agent].state

    @rule(agent=st.sampled_from(AGENTS), dt=DT)
    def logout(self, agent: AgentId, dt: int) -> None:
        self.now += dt
        m = self.model
        current = m.agents.get(agent)
        if current is not None and current.state is AgentState.ON_CALL:
            try:
                self.run(self.queue.agent_logout(agent, self.now))
            except Conflict:
                return
            raise AssertionError("logout of an agent on a call must be a conflict")
        status = self.run(self.queue.agent_logout(agent, self.now))
        assert status.state is AgentState.LOGGED_OUT
        if current is None or current.state is AgentState.LOGGED_OUT:
            return
        if current.offer is not None:
            offer = m.offers.pop(current.offer)
            m.entries[offer.call].offer = None
        m.agents[agent] = ModelAgent(AgentState.LOGGED_OUT, self.now)

    @rule(lease=st.integers(1, 120), dt=DT)
    def dispatch(self, lease: int, dt: int) -> None:
        self.now += dt
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
        before = m.agents[offer.agent_id]
        m.agents[offer.agent_id] = ModelAgent(
            AgentState.RESERVED, self.now, before.idle_since, before.since, offer.call_id, offer.offer_id
        )

    @precondition(lambda self: bool(self.seen_offers))
    @rule(pick=st.integers(0, 10_000), dt=DT, live=st.booleans())
    def answer(self, pick: int, dt: int, live: bool) -> None:
        self.now += dt
        offer_id = self.pick_offer(pick, live)
        got = self.run(self.queue.offer_answered(offer_id, self.now))
        m = self.model
        assert got == (offer_id in m.offers)
        if got:
            offer = m.offers.pop(offer_id)
            del m.entries[offer.call]
            m.oncall[offer.call] = offer.agent
            m.agents[offer.agent] = ModelAgent(AgentState.ON_CALL, self.now, call=offer.call)

    @precondition(lambda self: bool(self.seen_offers))
    @rule(pick=st.integers(0, 10_000), dt=DT, live=st.booleans())
    def fail(self, pick: int, dt: int, live: bool) -> None:
        self.now += dt
        offer_id = self.pick_offer(pick, live)
        got = self.run(self.queue.offer_failed(offer_id, self.now, "no-answer"))
        assert got == (offer_id in self.model.offers)
        if got:
            self.model.fail(offer_id, self.now)

    @rule(call=st.sampled_from(CALLS), dt=DT)
    def finish(self, call: CallId, dt: int) -> None:
        self.now += dt
        self.run(self.queue.call_finished(call, self.now))
        agent = self.model.oncall.pop(call, None)
        if agent is not None:
            self.model.make_available(agent, self.now, self.now)

    @rule(dt=DT)
    def expire(self, dt: int) -> None:
        self.now += dt
        expired = self.run(self.queue.expire_offers(self.now))
        m = self.model
        due = {o for o, offer in m.offers.items() if offer.expires <= self.now}
        assert {o.offer_id for o in expired} == due
        assert len(expired) == len(due)
        for offer_id in sorted(due):
            m.fail(offer_id, self.now)

    @invariant()
    def matches_the_model_and_keeps_the_rules(self) -> None:
        m = self.model
        waiting = self.run(self.queue.waiting())
        offered = self.run(self.queue.offered())
        statuses = {s.agent_id: s for s in self.run(self.queue.agents())}

        # FIFO order among waiting entries, positions 1..n, no duplicates
        keys = [(w.arrival_ms, w.call_id) for w in waiting]
        assert keys == sorted(keys)
        assert [w.position for w in waiting] == list(range(1, len(waiting) + 1))
        assert [w.call_id for w in waiting] == m.waiting()

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

        # agent states and times as the model says
        assert set(statuses) == set(m.agents)
        for agent_id, status in statuses.items():
            expected = m.agents[agent_id]
            got = (status.state, status.since_ms, status.call_id)
            assert got == (expected.state, expected.since, expected.call), f"{agent_id}: {got} != {expected}"
        for call in CALLS:
            position = self.run(self.queue.position(call))
            if call in m.entries:
                entry = m.entries[call]
                assert position == (0 if entry.offer else m.waiting().index(call) + 1)
            else:
                assert position is None


def test_random_interleavings_keep_the_queue_consistent(redis_url: str) -> None:
    class OnThisServer(QueueMachine):
        def __init__(self) -> None:
            super().__init__(redis_url)

    OnThisServer.loop = asyncio.new_event_loop()
    try:
        run_state_machine_as_test(
            OnThisServer,
            settings=settings(max_examples=30, stateful_step_count=50, deadline=None),
        )
    finally:
        OnThisServer.loop.close()
