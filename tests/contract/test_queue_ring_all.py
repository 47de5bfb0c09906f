"""Contract of the ring_all strategy against RedisCallQueue on a real redis-server: one offer group
per call, offered to every eligible available agent at once (each RESERVED with his own offer),
the first to answer takes the call and the others are released in the same step.

The invariant, as it reads for ring_all: no call is connected to two agents, and an agent is in
at most one offer. A call is offered to the agents of its one group at a time (never to two
groups); the property test at the end drives random interleavings and checks it after every step,
with the group of each dispatch against routing.ring_group."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import hypothesis.strategies as st
import pytest
import redis
import redis.asyncio
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from hotline.core.model import Agent, AgentId, AgentState, CallId, Priority, WorkerId
from hotline.core.ports import Offer
from hotline.queue import routing
from hotline.queue.acd import AcdPolicy, RedisCallQueue
from hotline.queue.agent_state import AgentPolicy

T = TypeVar("T")
W1 = WorkerId("w1")
S = 1_000


def agent(n: int, **skills: int) -> Agent:
    return Agent(AgentId(f"a{n}"), name=f"坐席{n}", extension=f"10{n:02d}", skills=dict(skills))


def ring_all(client: redis.asyncio.Redis, **policy: Any) -> RedisCallQueue:
    return RedisCallQueue(client, policy=AcdPolicy(strategy=routing.Strategy.RING_ALL, **policy))


async def states(queue: RedisCallQueue) -> dict[str, tuple[str, str | None]]:
    return {s.agent_id: (s.state.value, s.call_id) for s in await queue.agents()}


async def rung(queue: RedisCallQueue, now: int) -> Offer:
    offer = await queue.dispatch_once(now, 30 * S)
    assert offer is not None
    return offer


class TestRingAll:
    async def test_every_eligible_available_agent_rings_at_once(self, client: redis.asyncio.Redis) -> None:
        queue = ring_all(client, required_skills=("zh",))
        for n, skills in ((1, {"zh": 1}), (2, {"zh": 2}), (3, {"en": 1}), (4, {"zh": 1})):
            await queue.agent_login(agent(n, **skills), 100 * n)
        await queue.agent_pause(AgentId("a4"), "小休", 500)
        await queue.enqueue(CallId("c1"), W1, "138", 1_000)
        await queue.enqueue(CallId("c2"), W1, "139", 1_100)
        offer = await rung(queue, 2_000)
        assert [(o.agent_id, o.call_id) for o in offer.ring] == [("a1", "c1"), ("a2", "c1")]  # longest idle first
        assert offer.ring[0].offer_id == offer.offer_id and offer.ring[0].ring == ()
        assert len({o.offer_id for o in offer.ring}) == 2
        assert await states(queue) == {
            "a1": ("reserved", "c1"),
            "a2": ("reserved", "c1"),
            "a3": ("available", None),
            "a4": ("paused", None),
        }
        assert await queue.position(CallId("c1")) == 0
        assert await queue.dispatch_once(2_001, 30 * S) is None  # nobody left for c2

    async def test_the_first_to_answer_takes_the_call_and_the_others_keep_their_turn(
        self, client: redis.asyncio.Redis
    ) -> None:
        queue = ring_all(client)
        for n in (1, 2, 3):
            await queue.agent_login(agent(n), 100 * n)
        await queue.enqueue(CallId("c1"), W1, "138", 1_000)
        offer = await rung(queue, 2_000)
        o1, o2, o3 = offer.ring
        assert await queue.offer_answered(o2.offer_id, 3_000)
        assert await states(queue) == {"a1": ("available", None), "a2": ("on_call", "c1"), "a3": ("available", None)}
        a1 = await queue.agent_status(AgentId("a1"))
        assert a1.idle_since_ms == 100  # his turn kept: he did nothing wrong
        assert not await queue.offer_answered(o1.offer_id, 3_001)  # too late: his leg is cancelled
        assert not await queue.offer_failed(o3.offer_id, 3_002, "cancelled")
        assert await queue.waiting() == [] and await queue.offered() == []

    async def test_the_call_goes_back_only_when_every_phone_failed(self, client: redis.asyncio.Redis) -> None:
        queue = ring_all(client, agent=AgentPolicy(pause_on_agent_failure=True))
        for n in (1, 2):
            await queue.agent_login(agent(n), 100 * n)
        await queue.enqueue(CallId("c1"), W1, "138", 1_000)
        o1, o2 = (await rung(queue, 2_000)).ring
        assert await queue.offer_failed(o1.offer_id, 3_000, "busy", agent_fault=True)
        assert await queue.position(CallId("c1")) == 0  # a2 still rings
        [offered] = await queue.offered()
        assert offered.offered_to == "a2"
        assert await queue.offer_failed(o2.offer_id, 4_000, "no-answer", agent_fault=True)
        assert await queue.position(CallId("c1")) == 1
        assert await states(queue) == {"a1": ("paused", None), "a2": ("paused", None)}

    async def test_a_caller_hanging_up_releases_the_whole_group(self, client: redis.asyncio.Redis) -> None:
        queue = ring_all(client)
        for n in (1, 2):
            await queue.agent_login(agent(n), 100 * n)
        await queue.enqueue(CallId("c1"), W1, "138", 1_000)
        await rung(queue, 2_000)
        assert await queue.abandon(CallId("c1"))
        statuses = {s.agent_id: s for s in await queue.agents()}
        assert [(s.state, s.idle_since_ms) for s in statuses.values()] == [
            (AgentState.AVAILABLE, 100),
            (AgentState.AVAILABLE, 200),
        ]

    async def test_leases_and_logouts_release_one_offer_at_a_time(self, client: redis.asyncio.Redis) -> None:
        queue = ring_all(client)
        for n in (1, 2, 3):
            await queue.agent_login(agent(n), 100 * n)
        await queue.enqueue(CallId("c1"), W1, "138", 1_000)
        await rung(queue, 2_000)
        await queue.agent_logout(AgentId("a1"), 3_000)
        assert await queue.position(CallId("c1")) == 0
        expired = await queue.expire_offers(2_000 + 30 * S)
        assert sorted(o.agent_id for o in expired) == ["a2", "a3"]
        assert await queue.position(CallId("c1")) == 1
        assert await states(queue) == {"a1": ("logged_out", None), "a2": ("available", None), "a3": ("available", None)}

    async def test_a_full_ring_all_queue_counts_a_group_once(self, client: redis.asyncio.Redis) -> None:
        queue = ring_all(client, max_length=2)
        for n in (1, 2):
            await queue.agent_login(agent(n), 100 * n)
        await queue.enqueue(CallId("c1"), W1, "138", 1_000)
        await rung(queue, 2_000)
        assert await queue.enqueue(CallId("c2"), W1, "139", 2_100) == 1
        assert await queue.enqueue(CallId("c3"), W1, "137", 2_200) == -1

    async def test_a_callback_entry_rings_one_agent(self, client: redis.asyncio.Redis) -> None:
        queue = ring_all(client)
        for n in (1, 2):
            await queue.agent_login(agent(n), 100 * n)
        await queue.enqueue(CallId("c1"), W1, "138", 1_000, priority=Priority.NORMAL)
        assert await queue.request_callback(CallId("c1"), "13800000000", 1_500)
        offer = await rung(queue, 2_000)
        assert (offer.callback, offer.agent_id, offer.ring) == (True, "a1", ())


# --- property test -------------------------------------------------------------------------

CALLS = [CallId(f"c{n}") for n in range(4)]
AGENTS = [AgentId(f"a{n}") for n in range(4)]
SKILLS = st.dictionaries(st.sampled_from(["zh", "en"]), st.integers(1, 2), max_size=2)


class RingAllMachine(RuleBasedStateMachine):
    """Random interleavings on one ring_all queue; the invariants after every step."""

    loop: asyncio.AbstractEventLoop
    url: str

    def __init__(self) -> None:
        super().__init__()
        sync = redis.Redis.from_url(self.url)
        sync.flushdb()
        sync.close()
        self.client = redis.asyncio.Redis.from_url(self.url)
        policy = AcdPolicy(
            strategy=routing.Strategy.RING_ALL,
            required_skills=("zh",),
            skill_steps=((0, 2), (0.05, 1)),
            agent=AgentPolicy(wrap_up_ms=10, pause_on_agent_failure=True),
        )
        self.queue = RedisCallQueue(self.client, policy=policy)
        self.now = 1_000
        self.offers: list[Offer] = []  # every offer ever made (maybe stale)
        self.connected: dict[str, str] = {}  # call -> agent, as offer_answered reported
        self.gone: set[str] = set()  # calls that left the queue (answered or abandoned)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.client.aclose())

    @rule(who=st.sampled_from(AGENTS), skills=SKILLS, dt=st.integers(0, 5))
    def login(self, who: AgentId, skills: dict[str, int], dt: int) -> None:
        self.now += dt
        self.run(self.queue.agent_login(Agent(who, who, "1000", skills=skills), self.now))

    @rule(who=st.sampled_from(AGENTS), dt=st.integers(0, 5))
    def logout(self, who: AgentId, dt: int) -> None:
        self.now += dt
        try:
            self.run(self.queue.agent_logout(who, self.now))
        except Exception as exc:  # on a call: he must finish it first
            assert "finish the call" in str(exc)

    @rule(who=st.sampled_from(AGENTS), dt=st.integers(0, 5))
    def resume(self, who: AgentId, dt: int) -> None:
        self.now += dt
        try:
            self.run(self.queue.agent_resume(who, self.now))
        except Exception as exc:
            assert "no transition" in str(exc)

    @rule(call=st.sampled_from(CALLS), priority=st.sampled_from(list(Priority)), dt=st.integers(0, 5))
    def enqueue(self, call: CallId, priority: Priority, dt: int) -> None:
        self.now += dt
        if call in self.gone:
            return  # a call id is never reused
        self.run(self.queue.enqueue(call, W1, "138", self.now, priority))

    @rule(dt=st.integers(0, 40))
    def dispatch(self, dt: int) -> None:
        self.now += dt
        before = self.run(self.queue.agents())
        waiting = self.run(self.queue.waiting())
        offer = self.run(self.queue.dispatch_once(self.now, 50))
        if offer is None:
            return
        group = offer.ring or (offer,)
        self.offers += group
        # the group is the spec's: every eligible available agent, longest idle first
        call = next(w for w in waiting if w.call_id == offer.call_id)
        # a wrap-up due by now ends first (at its deadline), in the dispatch script itself
        candidates = [
            routing.Candidate(s.agent_id, s.idle_since_ms or 0, s.skills)
            for s in before
            if s.state is AgentState.AVAILABLE
        ] + [
            routing.Candidate(s.agent_id, s.wrap_up_until_ms, s.skills)
            for s in before
            if s.state is AgentState.WRAP_UP and s.wrap_up_until_ms is not None and s.wrap_up_until_ms <= self.now
        ]
        level = routing.min_level(((0, 2), (50, 1)), self.now - call.arrival_ms)
        expected = routing.ring_group(candidates, ["zh"], level)
        assert [o.agent_id for o in group] == [a.agent_id for a in expected]

    @precondition(lambda self: bool(self.offers))
    @rule(pick=st.integers(0, 1000), dt=st.integers(0, 5))
    def answer(self, pick: int, dt: int) -> None:
        self.now += dt
        offer = self.offers[pick % len(self.offers)]
        if self.run(self.queue.offer_answered(offer.offer_id, self.now)):
            assert offer.call_id not in self.connected, "a call connected to two agents"
            self.connected[offer.call_id] = offer.agent_id
            self.gone.add(offer.call_id)

    @precondition(lambda self: bool(self.offers))
    @rule(pick=st.integers(0, 1000), dt=st.integers(0, 5), fault=st.booleans())
    def fail(self, pick: int, dt: int, fault: bool) -> None:
        self.now += dt
        offer = self.offers[pick % len(self.offers)]
        self.run(self.queue.offer_failed(offer.offer_id, self.now, "no-answer", agent_fault=fault))

    @rule(call=st.sampled_from(CALLS))
    def abandon(self, call: CallId) -> None:
        if self.run(self.queue.abandon(call)):
            self.gone.add(call)

    @rule(dt=st.integers(0, 60))
    def expire(self, dt: int) -> None:
        self.now += dt
        self.run(self.queue.expire_offers(self.now))

    @precondition(lambda self: bool(self.connected))
    @rule(pick=st.integers(0, 1000), dt=st.integers(0, 30))
    def finish(self, pick: int, dt: int) -> None:
        self.now += dt
        calls = sorted(self.connected)
        call = calls[pick % len(calls)]
        self.run(self.queue.call_finished(CallId(call), self.now))
        del self.connected[call]

    @invariant()
    def no_call_with_two_agents_and_no_agent_in_two_offers(self) -> None:
        statuses = self.run(self.queue.agents())
        waiting = self.run(self.queue.waiting())
        offered = self.run(self.queue.offered())
        reserved = [s for s in statuses if s.state is AgentState.RESERVED]
        on_call = [s for s in statuses if s.state is AgentState.ON_CALL]
        # an agent is in at most one offer: each reserved agent holds one call, and every live
        # offer (in the leases) belongs to a distinct reserved agent of that call
        live = self.run(self.client.zrange(self.queue._keys.leases, 0, -1))
        offers = self.run(self.client.hgetall(self.queue._keys.offers))
        assert len(live) == len(offers) == len(reserved)
        holders = [json.loads(raw)["agent_id"] for raw in offers.values()]
        assert sorted(holders) == sorted(s.agent_id for s in reserved)
        for raw in offers.values():
            data = json.loads(raw)
            status = next(s for s in reserved if s.agent_id == data["agent_id"])
            assert status.call_id == data["call_id"]
        # no call connected to two agents; on-call agents are exactly the connected calls
        assert len({s.call_id for s in on_call}) == len(on_call)
        assert {s.call_id: s.agent_id for s in on_call} == self.connected
        # every offered call has its reserved agents, every waiting call none; no call twice
        offered_calls = {w.call_id for w in offered}
        assert {s.call_id for s in reserved} == offered_calls
        places = [w.call_id for w in waiting] + [w.call_id for w in offered] + [s.call_id for s in on_call]
        assert len(places) == len(set(places))
        assert not (set(places) - set(self.connected)) & self.gone
        keys_ = [(-w.priority, w.arrival_ms, w.call_id) for w in waiting]
        assert keys_ == sorted(keys_)


@pytest.mark.timeout(900)
def test_ring_all_never_connects_a_call_twice_nor_offers_an_agent_two_calls(redis_url: str) -> None:
    class OnThisServer(RingAllMachine):
        url = redis_url

    OnThisServer.loop = asyncio.new_event_loop()
    try:
        run_state_machine_as_test(
            OnThisServer, settings=settings(max_examples=80, stateful_step_count=40, deadline=None)
        )
    finally:
        OnThisServer.loop.close()
