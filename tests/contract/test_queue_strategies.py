"""Contract of the queue's routing (skills, widening, strategies, max length, overflow) against
RedisCallQueue on a real redis-server. The rules: hotline/queue/routing.py."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import hypothesis.strategies as st
import pytest
import redis.asyncio
from hypothesis import HealthCheck, given, settings

from hotline.core.errors import InvalidRequest
from hotline.core.model import Agent, AgentId, CallId, Priority, WorkerId
from hotline.core.ports import QUEUE_FULL, Offer
from hotline.queue import routing
from hotline.queue.acd import AcdPolicy, RedisCallQueue
from hotline.queue.routing import Strategy

W1 = WorkerId("w1")
A1, A2, A3 = AgentId("a1"), AgentId("a2"), AgentId("a3")
S = 1_000  # ms per second


def agent(n: int, **skills: int) -> Agent:
    return Agent(AgentId(f"a{n}"), name=f"坐席{n}", extension=f"10{n:02d}", skills=dict(skills))


def make(client: redis.asyncio.Redis, **policy: Any) -> RedisCallQueue:
    return RedisCallQueue(client, policy=AcdPolicy(**policy))


async def offered(queue: RedisCallQueue, now: int) -> tuple[str, str] | None:
    offer = await queue.dispatch_once(now, 30 * S)
    return None if offer is None else (offer.call_id, offer.agent_id)


async def serve(queue: RedisCallQueue, call: str, now: int, talk_ms: int = 1) -> Offer:
    """Enqueue, offer, answer and finish one call; returns its offer."""
    await queue.enqueue(CallId(call), W1, "", now)
    offer = await queue.dispatch_once(now, 30 * S)
    assert offer is not None
    assert await queue.offer_answered(offer.offer_id, now)
    await queue.call_finished(CallId(call), now + talk_ms)
    return offer


class TestPolicy:
    def test_defaults_are_todays_queue(self) -> None:
        policy = AcdPolicy()
        assert (policy.strategy, policy.required_skills, policy.skill_steps) == (Strategy.LONGEST_IDLE, (), ((0, 1),))
        assert (policy.max_length, policy.max_wait_s, policy.overflow_target) == (None, None, "")
        assert (policy.service_level_s, policy.announce_interval_s) == (15.0, None)

    def test_values_from_configuration_are_normalised(self) -> None:
        policy = AcdPolicy(
            strategy="skills_weighted",  # type: ignore[arg-type]
            required_skills=["zh", "complaint", "zh"],  # type: ignore[arg-type]
            skill_steps=[[0, 3], [30, 2], [60, 1], [120, 0]],  # type: ignore[arg-type]
            max_wait_s=90,
            overflow_target="queue:overflow",
        )
        assert policy.strategy is Strategy.SKILLS_WEIGHTED
        assert policy.required_skills == ("complaint", "zh")
        assert policy.skill_steps == ((0, 3), (30, 2), (60, 1), (120, 0))
        assert policy.max_wait_ms == 90_000
        hash(policy)

    def test_ring_all_is_a_strategy(self) -> None:
        assert AcdPolicy(strategy="ring_all").strategy is Strategy.RING_ALL  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "bad",
        [
            {"strategy": "random"},
            {"skill_steps": []},
            {"skill_steps": [(5, 1)]},  # must start at 0
            {"skill_steps": [(0, 1), (30, 2)]},  # a wait never narrows what a call accepts
            {"skill_steps": [(0, 2), (0, 1)]},  # after_s must increase
            {"skill_steps": [(0, -1)]},
            {"skill_steps": [(0, 101)]},
            {"required_skills": ["two words"]},
            {"required_skills": "zh"},
            {"max_length": 0},
            {"max_wait_s": 0},
            {"announce_interval_s": -5},
            {"service_level_s": 0},
            {"overflow_target": "elsewhere"},
            {"overflow_target": "queue:"},
        ],
    )
    def test_invalid_policies_are_refused(self, bad: dict[str, Any]) -> None:
        with pytest.raises(InvalidRequest):
            AcdPolicy(**bad)

    async def test_invalid_skills_are_refused(self, client: redis.asyncio.Redis) -> None:
        queue = make(client)
        with pytest.raises(InvalidRequest):
            await queue.agent_login(agent(1, **{"bad skill": 1}), 0)
        with pytest.raises(InvalidRequest):
            await queue.agent_login(Agent(A1, "", "1001", skills={"zh": 101}), 0)
        with pytest.raises(InvalidRequest):
            await queue.enqueue(CallId("c1"), W1, "", 0, skills=("",))
        assert await queue.agents() == [] and await queue.waiting() == []


class TestSkills:
    async def test_a_call_goes_to_an_agent_with_its_skills(self, client: redis.asyncio.Redis) -> None:
        queue = make(client)
        await queue.agent_login(agent(1), 0)  # idle the longest, but no English
        await queue.agent_login(agent(2, **{"language:en": 1}), 10)
        await queue.enqueue(CallId("c1"), W1, "", 100, skills=("language:en",))
        offer = await queue.dispatch_once(1 * S, 30 * S)
        assert offer is not None and (offer.call_id, offer.agent_id, offer.skills) == ("c1", "a2", ("language:en",))

    async def test_the_call_needs_the_queues_skills_and_its_own(self, client: redis.asyncio.Redis) -> None:
        queue = make(client, required_skills=("zh",))
        await queue.agent_login(agent(1, complaint=1), 0)
        await queue.agent_login(agent(2, zh=1), 1)
        await queue.agent_login(agent(3, zh=1, complaint=1), 2)
        await queue.enqueue(CallId("c1"), W1, "", 100, skills=("complaint",))
        await queue.enqueue(CallId("c2"), W1, "", 200)
        assert await offered(queue, 1 * S) == ("c1", "a3")
        assert await offered(queue, 1 * S) == ("c2", "a2")
        assert await offered(queue, 1 * S) is None  # a1 lacks zh

    async def test_a_call_needing_a_rare_skill_does_not_block_the_line(self, client: redis.asyncio.Redis) -> None:
        queue = make(client)
        await queue.agent_login(agent(1), 0)
        await queue.enqueue(CallId("rare"), W1, "", 100, Priority.EMERGENCY, skills=("language:bo",))
        await queue.enqueue(CallId("n1"), W1, "", 200)
        assert [(w.call_id, w.position, w.skills) for w in await queue.waiting()] == [
            ("rare", 1, ("language:bo",)),
            ("n1", 2, ()),
        ]
        assert await offered(queue, 1 * S) == ("n1", "a1")
        assert await queue.position(CallId("rare")) == 1  # keeps its place for the right agent
        await queue.agent_login(agent(2, **{"language:bo": 2}), 2 * S)
        assert await offered(queue, 3 * S) == ("rare", "a2")

    async def test_a_higher_band_call_the_agent_can_take_goes_first(self, client: redis.asyncio.Redis) -> None:
        queue = make(client)
        await queue.agent_login(agent(1, zh=1), 0)
        await queue.enqueue(CallId("n1"), W1, "", 100)
        await queue.enqueue(CallId("f1"), W1, "", 900, Priority.FLAGGED, skills=("en",))  # nobody speaks it
        await queue.enqueue(CallId("e1"), W1, "", 950, Priority.EMERGENCY, skills=("zh",))
        assert await offered(queue, 1 * S) == ("e1", "a1")

    async def test_the_accepted_level_widens_with_the_wait(self, client: redis.asyncio.Redis) -> None:
        queue = make(client, required_skills=("complaint",), skill_steps=((0, 3), (30, 2), (60, 1), (120, 0)))
        await queue.agent_login(agent(1), 0)  # no complaint skill at all
        await queue.agent_login(agent(2, complaint=1), 1)
        await queue.agent_login(agent(3, complaint=2), 2)
        await queue.enqueue(CallId("c1"), W1, "", 0)
        await queue.enqueue(CallId("c2"), W1, "", 0)
        await queue.enqueue(CallId("c3"), W1, "", 0)
        assert await offered(queue, 29_999) is None  # level 3 wanted: nobody
        assert await offered(queue, 30 * S) == ("c1", "a3")  # level 2
        assert await offered(queue, 59_999) is None
        assert await offered(queue, 60 * S) == ("c2", "a2")  # level 1
        assert await offered(queue, 119_999) is None
        assert await offered(queue, 120 * S) == ("c3", "a1")  # level 0: any agent of the queue

    async def test_a_callback_widens_from_its_original_arrival(self, client: redis.asyncio.Redis) -> None:
        queue = make(client, required_skills=("complaint",), skill_steps=((0, 2), (60, 0)))
        await queue.enqueue(CallId("c1"), W1, "", 0)
        assert await queue.request_callback(CallId("c1"), "13800000000", 50 * S)
        await queue.agent_login(agent(1), 55 * S)
        assert await offered(queue, 59 * S) is None
        offer = await queue.dispatch_once(60 * S, 30 * S)
        assert offer is not None and (offer.call_id, offer.callback) == ("c1", True)

    async def test_logging_in_again_changes_the_skills(self, client: redis.asyncio.Redis) -> None:
        queue = make(client)
        await queue.agent_login(agent(1), 0)
        await queue.enqueue(CallId("c1"), W1, "", 100, skills=("en",))
        assert await offered(queue, 1 * S) is None
        status = await queue.agent_login(agent(1, en=2), 2 * S)
        assert (status.skills, status.since_ms) == ({"en": 2}, 0)  # same state, new skills
        assert (await queue.agent_status(A1)).skills == {"en": 2}
        assert await offered(queue, 3 * S) == ("c1", "a1")

    async def test_any_printable_skill_name_works(self, client: redis.asyncio.Redis) -> None:
        queue = make(client, required_skills=("投诉",))
        await queue.agent_login(agent(1, **{"语言:粤语": 2}), 0)
        await queue.agent_login(agent(2, **{"投诉": 1, "语言:粤语": 1, "it's": 1}), 1)
        await queue.enqueue(CallId("c1"), W1, "", 100, skills=("语言:粤语", "it's"))
        assert await offered(queue, 1 * S) == ("c1", "a2")
        assert (await queue.agent_status(A2)).skills == {"投诉": 1, "语言:粤语": 1, "it's": 1}

    async def test_retried_enqueue_keeps_the_skills(self, client: redis.asyncio.Redis) -> None:
        queue = make(client)
        assert await queue.enqueue(CallId("c1"), W1, "", 100, skills=("en", "complaint", "en")) == 1
        assert await queue.enqueue(CallId("c1"), W1, "", 100, skills=()) == 1
        assert [w.skills for w in await queue.waiting()] == [("complaint", "en")]


class TestStrategies:
    async def test_longest_idle_by_default_whatever_the_skills(self, client: redis.asyncio.Redis) -> None:
        queue = make(client)
        await queue.agent_login(agent(2, zh=5), 10)
        await queue.agent_login(agent(1, zh=1), 0)
        await queue.enqueue(CallId("c1"), W1, "", 100, skills=("zh",))
        assert await offered(queue, 1 * S) == ("c1", "a1")

    async def test_round_robin_goes_around_in_agent_order(self, client: redis.asyncio.Redis) -> None:
        queue = make(client, strategy="round_robin")
        for n, since in ((3, 0), (1, 10), (2, 20)):  # a3 idle the longest
            await queue.agent_login(agent(n), since)
        picked = [(await serve(queue, f"c{n}", 1 * S + n)).agent_id for n in range(5)]
        assert picked == ["a1", "a2", "a3", "a1", "a2"]

    async def test_round_robin_orders_agents_by_code_point(self, client: redis.asyncio.Redis) -> None:
        queue = make(client, strategy="round_robin")
        for n, agent_id in enumerate(["坐席", "b", "B", "a"]):
            await queue.agent_login(Agent(AgentId(agent_id), agent_id, f"10{n}"), n)
        picked = [(await serve(queue, f"c{n}", 1 * S + n)).agent_id for n in range(5)]
        assert picked == ["B", "a", "b", "坐席", "B"]

    async def test_round_robin_passes_over_busy_and_unskilled_agents(self, client: redis.asyncio.Redis) -> None:
        queue = make(client, strategy="round_robin")
        await queue.agent_login(agent(1, en=1), 0)
        await queue.agent_login(agent(2), 0)
        await queue.agent_login(agent(3, en=1), 0)
        await queue.agent_login(agent(4), 0)
        await queue.enqueue(CallId("c1"), W1, "", 100)
        assert await offered(queue, 1 * S) == ("c1", "a1")  # a1 now reserved
        await queue.enqueue(CallId("c2"), W1, "", 200, skills=("en",))
        assert await offered(queue, 1 * S) == ("c2", "a3")  # a2 lacks en
        await queue.enqueue(CallId("c3"), W1, "", 300)
        assert await offered(queue, 1 * S) == ("c3", "a4")
        await queue.enqueue(CallId("c4"), W1, "", 400)
        assert await offered(queue, 1 * S) == ("c4", "a2")  # wraps around past a1 (reserved)

    async def test_round_robin_remembers_across_a_restart(self, client: redis.asyncio.Redis) -> None:
        queue = make(client, strategy="round_robin")
        for n in (1, 2, 3):
            await queue.agent_login(agent(n), 0)
        assert (await serve(queue, "c1", 1 * S)).agent_id == "a1"
        assert (await serve(queue, "c2", 2 * S)).agent_id == "a2"
        restarted = make(client, strategy="round_robin")  # another process, same Redis
        assert (await serve(restarted, "c3", 3 * S)).agent_id == "a3"
        assert (await serve(restarted, "c4", 4 * S)).agent_id == "a1"

    async def test_fewest_calls_since_login(self, client: redis.asyncio.Redis) -> None:
        queue = make(client, strategy="fewest_calls")
        await queue.agent_login(agent(1), 0)
        await queue.agent_login(agent(2), 1)
        assert (await serve(queue, "c1", 1 * S)).agent_id == "a1"  # 0 each: the longest idle
        assert (await serve(queue, "c2", 2 * S)).agent_id == "a2"
        assert (await serve(queue, "c3", 3 * S)).agent_id == "a1"  # 1 each: a1 idle since 3 s
        assert [(s.agent_id, s.calls_answered) for s in await queue.agents()] == [("a1", 2), ("a2", 1)]
        assert (await serve(queue, "c4", 4 * S)).agent_id == "a2"
        assert (await serve(queue, "c5", 5 * S)).agent_id == "a1"  # 2 each, a1 idle the longest
        await queue.agent_logout(A1, 6 * S)
        assert (await queue.agent_status(A1)).calls_answered == 3  # kept until he logs in again
        await queue.agent_login(agent(1), 7 * S)
        assert (await queue.agent_status(A1)).calls_answered == 0
        assert (await serve(queue, "c6", 8 * S)).agent_id == "a1"

    async def test_fewest_calls_is_not_least_talk_time(self, client: redis.asyncio.Redis) -> None:
        for strategy, expected in (("fewest_calls", "a2"), ("least_talk_time", "a1")):
            await client.flushdb()
            queue = make(client, strategy=strategy)
            await queue.agent_login(agent(1), 0)
            await serve(queue, "c1", 1 * S, talk_ms=1)
            await serve(queue, "c2", 2 * S, talk_ms=1)
            await queue.agent_login(agent(2), 3 * S)
            assert (await serve(queue, "c3", 4 * S, talk_ms=100 * S)).agent_id == "a2"  # 0 calls, 0 talk
            assert (await serve(queue, "c4", 200 * S)).agent_id == expected, strategy

    async def test_least_talk_time(self, client: redis.asyncio.Redis) -> None:
        queue = make(client, strategy="least_talk_time")
        await queue.agent_login(agent(1), 0)
        await queue.agent_login(agent(2), 1)
        await queue.agent_login(agent(3), 2)
        assert (await serve(queue, "c1", 1 * S, talk_ms=300 * S)).agent_id == "a1"
        assert (await serve(queue, "c2", 400 * S, talk_ms=60 * S)).agent_id == "a2"
        assert (await serve(queue, "c3", 500 * S, talk_ms=120 * S)).agent_id == "a3"
        assert [(s.agent_id, s.talk_ms) for s in await queue.agents()] == [
            ("a1", 300 * S),
            ("a2", 60 * S),
            ("a3", 120 * S),
        ]
        assert (await serve(queue, "c4", 700 * S, talk_ms=1)).agent_id == "a2"

    async def test_a_lost_call_counts_its_talk_time(self, client: redis.asyncio.Redis) -> None:
        queue = make(client, strategy="least_talk_time")
        await queue.agent_login(agent(1), 0)
        await queue.enqueue(CallId("c1"), W1, "", 0)
        offer = await queue.dispatch_once(1 * S, 30 * S)
        assert offer is not None and await queue.offer_answered(offer.offer_id, 2 * S)
        await queue.call_finished(CallId("c1"), 12 * S, lost=True)
        assert (await queue.agent_status(A1)).talk_ms == 10 * S

    async def test_skills_weighted_prefers_the_most_skilled(self, client: redis.asyncio.Redis) -> None:
        queue = make(client, strategy="skills_weighted", required_skills=("zh",))
        await queue.agent_login(agent(1, zh=1, complaint=1), 0)
        await queue.agent_login(agent(2, zh=3, complaint=2, en=9), 1)  # en is not needed: no weight
        await queue.agent_login(agent(3, zh=2, complaint=3), 2)
        await queue.agent_login(agent(4, zh=9), 3)  # no complaint skill: not eligible
        await queue.enqueue(CallId("c1"), W1, "", 100, skills=("complaint",))
        await queue.enqueue(CallId("c2"), W1, "", 200, skills=("complaint",))
        await queue.enqueue(CallId("c3"), W1, "", 300)
        assert await offered(queue, 1 * S) == ("c1", "a2")  # 5, before a3 (5, idle less long)
        assert await offered(queue, 1 * S) == ("c2", "a3")
        assert await offered(queue, 1 * S) == ("c3", "a4")


class TestMaxLength:
    async def test_a_full_queue_refuses_new_calls(self, client: redis.asyncio.Redis) -> None:
        queue = make(client, max_length=2)
        await queue.agent_login(agent(1), 0)
        assert await queue.enqueue(CallId("c1"), W1, "", 100) == 1
        assert await queue.enqueue(CallId("c2"), W1, "", 200) == 2
        assert await queue.enqueue(CallId("c3"), W1, "", 300) == QUEUE_FULL
        assert await queue.enqueue(CallId("c2"), W1, "", 200) == 2  # a retry of a queued call is fine
        assert await queue.position(CallId("c3")) is None
        offer = await queue.dispatch_once(1 * S, 30 * S)
        assert offer is not None
        assert await queue.enqueue(CallId("c3"), W1, "", 300) == QUEUE_FULL  # an offered call counts
        assert await queue.offer_answered(offer.offer_id, 2 * S)
        assert await queue.enqueue(CallId("c3"), W1, "", 300) == 2

    async def test_callbacks_hold_their_place_in_the_count(self, client: redis.asyncio.Redis) -> None:
        queue = make(client, max_length=1)
        await queue.enqueue(CallId("c1"), W1, "", 100)
        assert await queue.request_callback(CallId("c1"), "13800000000", 1 * S)
        assert await queue.enqueue(CallId("c2"), W1, "", 200) == QUEUE_FULL


class TestOverflow:
    async def test_calls_waiting_past_the_max_wait_are_due(self, client: redis.asyncio.Redis) -> None:
        queue = make(client, max_wait_s=60, overflow_target="voicemail")
        await queue.enqueue(CallId("n1"), W1, "", 0)
        await queue.enqueue(CallId("n2"), W1, "", 10 * S)
        await queue.enqueue(CallId("e1"), W1, "", 5 * S, Priority.EMERGENCY)
        await queue.enqueue(CallId("cb"), W1, "", 1)
        await queue.enqueue(CallId("of"), W1, "", 2)
        await queue.request_callback(CallId("cb"), "13800000000", 1 * S)  # hung up already
        await queue.agent_login(agent(1, x=1), 0)
        await queue.set_priority(CallId("of"), Priority.EMERGENCY)
        offer = await queue.dispatch_once(3 * S, 300 * S)
        assert offer is not None and offer.call_id == "of"  # offered: being served
        assert await queue.overflow_due(59_999) == []
        assert [w.call_id for w in await queue.overflow_due(65 * S)] == ["e1", "n1"]
        due = await queue.overflow_due(70 * S)
        assert [(w.call_id, w.position) for w in due] == [("e1", 1), ("n1", 2), ("n2", 4)]

    async def test_nothing_is_due_without_a_max_wait(self, client: redis.asyncio.Redis) -> None:
        queue = make(client)
        await queue.enqueue(CallId("c1"), W1, "", 0)
        assert await queue.overflow_due(10**9) == []


class TestRoutingSpec:
    """The pure rules the Lua script mirrors (the property test checks them against Redis)."""

    def test_min_level_follows_the_steps(self) -> None:
        steps = routing.steps_ms(((0, 3), (30, 2), (60.5, 1)))
        assert [routing.min_level(steps, w) for w in (-5, 0, 29_999, 30_000, 60_499, 60_500, 10**9)] == [
            3,
            3,
            3,
            2,
            2,
            1,
            1,
        ]

    def test_level_zero_accepts_anyone(self) -> None:
        assert routing.eligible({}, ["zh"], 0)
        assert not routing.eligible({}, ["zh"], 1)
        assert routing.eligible({"zh": 1}, [], 5)


# --- property: dispatch follows routing.choose under every strategy --------------------------

SKILLS = ["zh", "en", "complaint"]
STEP_SETS = [((0, 1),), ((0, 3), (30, 2), (60, 1), (120, 0)), ((0, 2), (45, 0))]


@dataclasses.dataclass(frozen=True)
class Scenario:
    strategy: Strategy
    required: tuple[str, ...]
    steps: tuple[tuple[float, int], ...]
    agents: list[tuple[dict[str, int], list[int]]]  # skills, talk ms of the calls he answered
    resume_order: list[int]  # who becomes available first (idle the longest)
    calls: list[tuple[Priority, int, tuple[str, ...]]]  # priority, arrival (s before start), skills
    waits: list[int]  # seconds passing before each dispatch


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n_agents = draw(st.integers(1, 5))
    agents = [
        (
            draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 3), max_size=3)),
            draw(st.lists(st.integers(0, 100_000), max_size=3)),
        )
        for _ in range(n_agents)
    ]
    calls = draw(
        st.lists(
            st.tuples(
                st.sampled_from(list(Priority)),
                st.integers(0, 150),
                st.lists(st.sampled_from(SKILLS), unique=True, max_size=2).map(lambda s: tuple(sorted(s))),
            ),
            min_size=1,
            max_size=8,
        )
    )
    return Scenario(
        strategy=draw(st.sampled_from(list(Strategy))),
        required=tuple(sorted(draw(st.sets(st.sampled_from(SKILLS), max_size=1)))),
        steps=draw(st.sampled_from(STEP_SETS)),
        agents=agents,
        resume_order=draw(st.permutations(range(n_agents))),
        calls=calls,
        waits=draw(st.lists(st.integers(0, 70), min_size=len(calls) + 1, max_size=len(calls) + 1)),
    )


async def _play(client: redis.asyncio.Redis, sc: Scenario) -> None:
    await client.flushdb()
    queue = make(client, strategy=sc.strategy, required_skills=sc.required, skill_steps=sc.steps)
    now = 1_000_000
    last_offered: str | None = None
    # Each agent answers his past calls alone (the others paused), then pauses himself. The past
    # is served by the same queue under the default policy (no required skills): the scripts
    # take the policy, the keys hold the state.
    past = make(client)
    for n, (levels, talks) in enumerate(sc.agents):
        await queue.agent_login(agent(n, **levels), now)
        for m, talk in enumerate(talks):
            now += 1
            await serve(past, f"past-{n}-{m}", now, talk_ms=talk)
            now += talk
            last_offered = f"a{n}"
        await queue.agent_pause(AgentId(f"a{n}"), "小休", now)
    idle: dict[str, int] = {}
    for n in sc.resume_order:
        now += 1
        await queue.agent_resume(AgentId(f"a{n}"), now)
        idle[f"a{n}"] = now
    candidates = {
        f"a{n}": routing.Candidate(f"a{n}", idle[f"a{n}"], levels, len(talks), sum(talks))
        for n, (levels, talks) in enumerate(sc.agents)
    }
    assert [(s.agent_id, s.calls_answered, s.talk_ms, s.skills) for s in await queue.agents()] == [
        (c.agent_id, c.calls_answered, c.talk_ms, c.skills)
        for c in sorted(candidates.values(), key=lambda c: c.agent_id)
    ]
    waiting: dict[str, tuple[Priority, int, tuple[str, ...]]] = {}
    for n, (priority, before_s, skills) in enumerate(sc.calls):
        arrival = now - before_s * S
        assert await queue.enqueue(CallId(f"c{n}"), W1, "", arrival, priority, skills) >= 1
        waiting[f"c{n}"] = (priority, arrival, skills)
    steps = routing.steps_ms(sc.steps)
    for wait in sc.waits:
        now += wait * S
        order = sorted(waiting, key=lambda c: (-waiting[c][0], waiting[c][1], c))
        calls = [routing.Waiting(c, waiting[c][1], waiting[c][2]) for c in order]
        expected = routing.choose(
            calls,
            list(candidates.values()),
            strategy=sc.strategy,
            required=sc.required,
            steps=steps,
            now_ms=now,
            last_offered=last_offered,
        )
        offer = await queue.dispatch_once(now, 30 * S)
        if expected is None:
            assert offer is None
            for c in order:  # no available agent is eligible for a waiting call
                needed = set(sc.required) | set(waiting[c][2])
                level = routing.min_level(steps, now - waiting[c][1])
                assert not any(routing.eligible(a.skills, needed, level) for a in candidates.values())
            continue
        assert offer is not None
        assert (offer.call_id, offer.agent_id) == (expected[0].call_id, expected[1].agent_id)
        group = offer.ring or (offer,)
        if sc.strategy is Strategy.RING_ALL:  # every eligible available agent rings, each reserved
            needed = sorted(set(sc.required) | set(waiting[offer.call_id][2]))
            level = routing.min_level(steps, now - waiting[offer.call_id][1])
            ring = routing.ring_group(list(candidates.values()), needed, level)
            assert [o.agent_id for o in group] == [a.agent_id for a in ring]
        del waiting[offer.call_id]
        for each in group:
            del candidates[each.agent_id]
        last_offered = offer.agent_id


# Each example flushes the database first, so the function-scoped redis_url is safe to share.
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(sc=scenarios())
def test_dispatch_follows_the_routing_rules(redis_url: str, sc: Scenario) -> None:
    """Random agents (skills, past calls and talk), random calls (priority, arrival, skills) and
    time passing: every offer is routing.choose's pick under the strategy, and an offer is only
    missing when no available agent is eligible for any waiting call."""

    async def run() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            await _play(client, sc)
        finally:
            await client.aclose()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
