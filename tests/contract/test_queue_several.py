"""Contract of several queues served by the same agents (one ACD, hotline/queue/keys.py) against
RedisCallQueue on a real redis-server: each queue's own lines, rules and wrap-up, dispatch over
all of them (routing.choose_across), positions within a queue, overflow to another queue (full
queue at enqueue, max wait through move_to_queue) and the keys of a single queue unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis.asyncio

from hotline.core.errors import InvalidRequest
from hotline.core.model import Agent, AgentId, AgentState, CallId, Priority, WorkerId
from hotline.core.ports import QUEUE_FULL
from hotline.queue import keys
from hotline.queue.acd import AcdPolicy, RedisCallQueue
from hotline.queue.agent_state import AgentPolicy

W1 = WorkerId("w1")
S = 1_000


def agent(n: int, **skills: int) -> Agent:
    return Agent(AgentId(f"a{n}"), name=f"坐席{n}", extension=f"10{n:02d}", skills=dict(skills))


def acd(client: redis.asyncio.Redis, first: dict[str, Any] | None = None, **others: dict[str, Any]) -> RedisCallQueue:
    """The ACD "hotline" (its first queue) with the other queues given by name."""
    return RedisCallQueue(
        client,
        queue="hotline",
        policy=AcdPolicy(**(first or {})),
        queues={name: AcdPolicy(**policy) for name, policy in others.items()},
    )


async def ids(queue: RedisCallQueue, name: str | None = None) -> list[tuple[str, str, int]]:
    return [(w.call_id, w.queue, w.position) for w in await queue.waiting(queue=name)]


class TestConstruction:
    def test_an_overflow_queue_must_be_another_configured_queue(self, client: redis.asyncio.Redis) -> None:
        with pytest.raises(InvalidRequest, match="queue:nowhere"):
            acd(client, {"overflow_target": "queue:nowhere", "max_length": 1})
        with pytest.raises(InvalidRequest, match="queue:en"):
            acd(client, en={"overflow_target": "queue:en", "max_length": 1})
        with pytest.raises(InvalidRequest, match="twice"):
            acd(client, hotline={})

    async def test_an_unknown_queue_is_refused(self, client: redis.asyncio.Redis) -> None:
        queue = acd(client, en={})
        with pytest.raises(InvalidRequest, match="no queue 'fr'"):
            await queue.enqueue(CallId("c1"), W1, "", 100, queue="fr")
        with pytest.raises(InvalidRequest, match="no queue 'fr'"):
            await queue.waiting(queue="fr")


class TestLinesAndPositions:
    async def test_each_queue_has_its_own_line_and_positions(self, client: redis.asyncio.Redis) -> None:
        queue = acd(client, en={}, complaint={})
        assert await queue.enqueue(CallId("h1"), W1, "", 100) == 1  # "": the first queue
        assert await queue.enqueue(CallId("e1"), W1, "", 150, queue="en") == 1
        assert await queue.enqueue(CallId("h2"), W1, "", 200, queue="hotline") == 2
        assert await queue.enqueue(CallId("e2"), W1, "", 50, queue="en") == 1  # reported late: first
        assert await queue.enqueue(CallId("x1"), W1, "", 300, priority=Priority.EMERGENCY, queue="complaint") == 1
        # all queues: priority first, then arrival, whatever the queue; positions within a queue
        assert await ids(queue) == [
            ("x1", "complaint", 1),
            ("e2", "en", 1),
            ("h1", "hotline", 1),
            ("e1", "en", 2),
            ("h2", "hotline", 2),
        ]
        assert await ids(queue, "en") == [("e2", "en", 1), ("e1", "en", 2)]
        assert [await queue.position(CallId(c)) for c in ("h2", "e1", "x1")] == [2, 2, 1]
        # a retried enqueue (to another queue even) changes nothing
        assert await queue.enqueue(CallId("h1"), W1, "", 100, queue="en") == 1
        assert (await ids(queue, "hotline"))[0] == ("h1", "hotline", 1)

    async def test_the_first_queue_keeps_the_keys_a_single_queue_had(self, client: redis.asyncio.Redis) -> None:
        queue = acd(client, en={})
        await queue.enqueue(CallId("h1"), W1, "", 100)
        await queue.enqueue(CallId("e1"), W1, "", 100, queue="en", priority=Priority.FLAGGED)
        own = keys.acd(queue="hotline")
        assert await client.zrange(own.waiting, 0, -1) == [b"h1"]
        assert await client.zrange("hotline:acd:{hotline}:q:en:waiting:flagged", 0, -1) == [b"e1"]
        assert keys.queue_lines(acd_name="hotline", queue="en").band(Priority.FLAGGED) == (
            "hotline:acd:{hotline}:q:en:waiting:flagged"
        )

    async def test_an_entry_written_before_queues_had_names_is_the_first_queues(
        self, client: redis.asyncio.Redis
    ) -> None:
        own = keys.acd(queue="hotline")
        old = {"call_id": "old", "worker_id": "w1", "caller": "", "arrival_ms": 100, "priority": 0}
        await client.hset(own.calls, "old", json.dumps({**old, "state": "waiting", "attempts": 0}))
        await client.zadd(own.waiting, {"old": 100})
        queue = acd(client, en={})
        assert await ids(queue) == [("old", "hotline", 1)]
        await queue.agent_login(agent(1), 1_000)
        offer = await queue.dispatch_once(1_000, 30 * S)
        assert offer is not None and (offer.call_id, offer.queue) == ("old", "hotline")


class TestDispatchOverQueues:
    async def test_an_agent_of_several_queues_takes_the_longest_waiting_call(self, client: redis.asyncio.Redis) -> None:
        queue = acd(client, {"required_skills": ("zh",)}, en={"required_skills": ("en",)})
        await queue.enqueue(CallId("zh1"), W1, "", 300)
        await queue.enqueue(CallId("en1"), W1, "", 200, queue="en")
        await queue.enqueue(CallId("zh2"), W1, "", 100)
        await queue.agent_login(agent(1, zh=1, en=1), 1_000)
        got = [await queue.dispatch_once(1_000 + n, 30 * S) for n in range(3)]
        assert [o.call_id for o in got if o] == ["zh2"]  # one agent, one offer
        assert got[0] is not None and got[0].queue == "hotline"

    async def test_each_queue_needs_its_own_skills_and_a_rare_skill_holds_up_nobody(
        self, client: redis.asyncio.Redis
    ) -> None:
        queue = acd(client, {"required_skills": ("zh",)}, en={"required_skills": ("en",)})
        await queue.enqueue(CallId("en1"), W1, "", 100, queue="en")  # nobody speaks English
        await queue.enqueue(CallId("zh1"), W1, "", 200)
        await queue.agent_login(agent(1, zh=2), 1_000)
        await queue.agent_login(agent(2, zh=1, en=1), 1_001)
        first = await queue.dispatch_once(2_000, 30 * S)
        assert first is not None and (first.call_id, first.agent_id) == ("en1", "a2")  # the only one with en
        second = await queue.dispatch_once(2_000, 30 * S)
        assert second is not None and (second.call_id, second.agent_id) == ("zh1", "a1")
        assert await queue.next_match(2_000) is None

    async def test_a_higher_priority_of_any_queue_goes_first(self, client: redis.asyncio.Redis) -> None:
        queue = acd(client, en={})
        await queue.enqueue(CallId("h1"), W1, "", 100)
        await queue.enqueue(CallId("e1"), W1, "", 900, queue="en", priority=Priority.FLAGGED)
        await queue.agent_login(agent(1), 1_000)
        assert await queue.next_match(1_000) == ("e1", "a1")
        offer = await queue.dispatch_once(1_000, 30 * S)
        assert offer is not None and offer.call_id == "e1"

    async def test_each_queue_has_its_own_strategy(self, client: redis.asyncio.Redis) -> None:
        queue = acd(client, {}, pro={"strategy": "skills_weighted", "required_skills": ("law",)})
        await queue.agent_login(agent(1, law=1), 1_000)  # idle longest
        await queue.agent_login(agent(2, law=5), 2_000)
        await queue.enqueue(CallId("p1"), W1, "", 3_000, queue="pro")
        offer = await queue.dispatch_once(3_000, 30 * S)
        assert offer is not None and offer.agent_id == "a2"  # the pro queue: the best lawyer
        await queue.offer_failed(offer.offer_id, 3_001, "busy")  # a2 back, idle since now
        await queue.abandon(CallId("p1"))
        await queue.agent_login(agent(3, law=9), 4_000)
        await queue.enqueue(CallId("h1"), W1, "", 5_000)
        offer = await queue.dispatch_once(5_000, 30 * S)
        assert offer is not None and offer.agent_id == "a1"  # the first queue: the longest idle

    async def test_the_wrap_up_is_the_queue_of_the_call(self, client: redis.asyncio.Redis) -> None:
        queue = acd(client, {"agent": AgentPolicy(wrap_up_ms=0)}, slow={"agent": AgentPolicy(wrap_up_ms=30 * S)})
        await queue.agent_login(agent(1), 1_000)
        for call, name, now in (("h1", "hotline", 2_000), ("s1", "slow", 10_000)):
            await queue.enqueue(CallId(call), W1, "", now, queue=name)
            offer = await queue.dispatch_once(now, 30 * S)
            assert offer is not None and await queue.offer_answered(offer.offer_id, now)
            await queue.call_finished(CallId(call), now + 5_000)
        status = await queue.agent_status(AgentId("a1"))
        assert status.state is AgentState.WRAP_UP and status.wrap_up_until_ms == 15_000 + 30 * S


class TestOverflowBetweenQueues:
    async def test_a_full_queue_overflows_to_its_overflow_queue(self, client: redis.asyncio.Redis) -> None:
        queue = acd(
            client,
            {"max_length": 1, "overflow_target": "queue:spare"},
            spare={"max_length": 1, "overflow_target": "queue:hotline"},
        )
        assert await queue.enqueue(CallId("c1"), W1, "", 100) == 1
        assert await queue.enqueue(CallId("c2"), W1, "", 200) == 1  # into spare
        assert await queue.enqueue(CallId("c3"), W1, "", 300) == QUEUE_FULL  # both full: a cycle ends
        assert await ids(queue) == [("c1", "hotline", 1), ("c2", "spare", 1)]
        assert await queue.overflow_due(10**6) == []  # no max wait: nothing more to do

    async def test_a_full_queue_overflowing_to_callback_queues_the_call_for_the_control_plane(
        self, client: redis.asyncio.Redis
    ) -> None:
        queue = acd(client, {"max_length": 1, "overflow_target": "callback"})
        assert await queue.enqueue(CallId("c1"), W1, "138", 100) == 1
        assert await queue.enqueue(CallId("c2"), W1, "139", 200) == 2  # over the limit, marked
        [due] = await queue.overflow_due(201)  # at once, without a max wait
        assert (due.call_id, due.overflow_now) == ("c2", True)
        assert await queue.request_callback(CallId("c2"), "139", 300)
        assert await queue.overflow_due(301) == []  # a callback now: done

    async def test_max_wait_moves_the_call_keeping_its_arrival_and_restarts_the_wait(
        self, client: redis.asyncio.Redis
    ) -> None:
        queue = acd(
            client,
            {"max_wait_s": 60, "overflow_target": "queue:spare"},
            spare={"max_wait_s": 60, "overflow_target": "callback"},
        )
        await queue.enqueue(CallId("early"), W1, "", 1_000)
        await queue.enqueue(CallId("s1"), W1, "", 20_000, queue="spare")
        await queue.enqueue(CallId("s2"), W1, "", 40_000, queue="spare")
        [due] = await queue.overflow_due(61_000)
        assert (due.call_id, due.queue) == ("early", "hotline")
        assert await queue.move_to_queue(CallId("early"), "spare", 61_000) == 1  # arrived first: ahead
        assert await ids(queue, "spare") == [("early", "spare", 1), ("s1", "spare", 2), ("s2", "spare", 3)]
        # its wait in spare counts from the move, the others' from their arrival
        assert [c.call_id for c in await queue.overflow_due(100_000)] == ["s1", "s2"]
        assert [c.call_id for c in await queue.overflow_due(121_000)] == ["early", "s1", "s2"]

    async def test_move_to_queue_leaves_offered_calls_and_callbacks_and_respects_a_full_queue(
        self, client: redis.asyncio.Redis
    ) -> None:
        queue = acd(client, {}, spare={"max_length": 1})
        await queue.enqueue(CallId("o1"), W1, "", 100)
        await queue.enqueue(CallId("cb"), W1, "", 200)
        await queue.enqueue(CallId("w1"), W1, "", 300)
        await queue.enqueue(CallId("full"), W1, "", 50, queue="spare")
        assert await queue.request_callback(CallId("cb"), "138", 400)
        await queue.agent_login(agent(1), 500)
        offer = await queue.dispatch_once(600, 30 * S)
        assert offer is not None and offer.call_id == "full"  # the longest waiting, in spare
        await queue.agent_logout(AgentId("a1"), 700)  # back in place
        assert await queue.move_to_queue(CallId("w1"), "spare", 800) == QUEUE_FULL
        assert await queue.move_to_queue(CallId("cb"), "spare", 800) == 0
        assert await queue.move_to_queue(CallId("nobody"), "spare", 800) is None
        assert await queue.move_to_queue(CallId("w1"), "hotline", 800) == 3  # where it is: no change
        await queue.agent_login(agent(1), 900)
        offer = await queue.dispatch_once(1_000, 30 * S)
        assert offer is not None and offer.call_id == "full"
        assert await queue.move_to_queue(CallId("full"), "hotline", 1_000) == 0  # offered: stays
