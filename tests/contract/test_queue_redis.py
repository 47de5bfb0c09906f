"""Contract of the CallQueue port, against RedisCallQueue on a real redis-server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio

from hotline.core.errors import Conflict, InvalidRequest, Unavailable
from hotline.core.model import Agent, AgentId, AgentState, CallId, OfferId, Priority, WorkerId
from hotline.core.ports import CallQueue, Offer
from hotline.queue.acd import RedisCallQueue
from tests.support import RedisServer

W1 = WorkerId("w1")


def agent(n: int, uri: str | None = None) -> Agent:
    return Agent(AgentId(f"a{n}"), name=f"坐席{n}", extension=f"10{n:02d}", sip_uri=uri)


async def ids_waiting(queue: RedisCallQueue) -> list[str]:
    return [w.call_id for w in await queue.waiting()]


@pytest.fixture
async def queue(client: redis.asyncio.Redis) -> RedisCallQueue:
    return RedisCallQueue(client)


async def offer_to(queue: RedisCallQueue, now: int = 1_000, lease: int = 30_000) -> Offer:
    offer = await queue.dispatch_once(now, lease)
    assert offer is not None
    return offer


def test_satisfies_the_port(queue: RedisCallQueue) -> None:
    port: CallQueue = queue  # mypy checks the structure; this checks the object exists
    assert callable(port.dispatch_once)


class TestEnqueue:
    async def test_fifo_by_arrival_not_by_enqueue_order(self, queue: RedisCallQueue) -> None:
        assert await queue.enqueue(CallId("late"), W1, "13800000003", 300) == 1
        assert await queue.enqueue(CallId("early"), W1, "13800000001", 100) == 1
        assert await queue.enqueue(CallId("middle"), W1, "13800000002", 200) == 2
        waiting = await queue.waiting()
        assert [(w.call_id, w.position, w.arrival_ms) for w in waiting] == [
            ("early", 1, 100),
            ("middle", 2, 200),
            ("late", 3, 300),
        ]
        assert waiting[0].caller == "13800000001"
        assert waiting[0].worker_id == W1
        assert waiting[0].offered_to is None

    async def test_ties_broken_by_call_id(self, queue: RedisCallQueue) -> None:
        for call in ("c", "a", "b"):
            await queue.enqueue(CallId(call), W1, "", 500)
        assert await ids_waiting(queue) == ["a", "b", "c"]

    async def test_enqueue_twice_is_a_no_op_returning_the_position(self, queue: RedisCallQueue) -> None:
        await queue.enqueue(CallId("c1"), W1, "x", 100)
        await queue.enqueue(CallId("c2"), W1, "y", 200)
        # a retry with another arrival time, worker and caller changes nothing
        assert await queue.enqueue(CallId("c2"), WorkerId("w9"), "z", 50) == 2
        waiting = await queue.waiting()
        assert [(w.call_id, w.arrival_ms, w.worker_id, w.caller) for w in waiting] == [
            ("c1", 100, "w1", "x"),
            ("c2", 200, "w1", "y"),
        ]

    async def test_enqueue_of_an_offered_or_answered_call_does_not_queue_it_again(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 0)
        await queue.agent_login(agent(2), 0)
        await queue.enqueue(CallId("c1"), W1, "", 100)
        await queue.enqueue(CallId("c2"), W1, "", 200)
        first = await offer_to(queue)
        assert await queue.enqueue(CallId("c1"), W1, "", 100) == 0
        second = await offer_to(queue)
        assert await queue.offer_answered(second.offer_id, 2_000)
        assert await queue.enqueue(CallId("c2"), W1, "", 200) == 0
        assert await queue.waiting() == []
        assert [w.call_id for w in await queue.offered()] == [first.call_id]

    async def test_position(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 0)
        for n in range(3):
            await queue.enqueue(CallId(f"c{n}"), W1, "", 100 + n)
        assert [await queue.position(CallId(f"c{n}")) for n in range(3)] == [1, 2, 3]
        await offer_to(queue)
        assert await queue.position(CallId("c0")) == 0  # being offered
        assert [await queue.position(CallId(f"c{n}")) for n in (1, 2)] == [1, 2]
        assert await queue.position(CallId("nope")) is None

    async def test_invalid_arguments_are_refused(self, queue: RedisCallQueue) -> None:
        with pytest.raises(InvalidRequest):
            await queue.enqueue(CallId("c1"), W1, "", -1)
        with pytest.raises(InvalidRequest):
            await queue.enqueue(CallId(""), W1, "", 1)
        with pytest.raises(InvalidRequest):
            await queue.dispatch_once(1, 0)
        assert await queue.waiting() == []


class TestAgents:
    async def test_unknown_agent_is_logged_out_since_zero(self, queue: RedisCallQueue) -> None:
        status = await queue.agent_status(AgentId("ghost"))
        assert (status.state, status.since_ms, status.call_id) == (AgentState.LOGGED_OUT, 0, None)
        out = await queue.agent_logout(AgentId("ghost"), 5)
        assert (out.state, out.since_ms) == (AgentState.LOGGED_OUT, 0)
        assert await queue.agents() == []

    async def test_login_is_idempotent_and_keeps_the_state(self, queue: RedisCallQueue) -> None:
        first = await queue.agent_login(agent(1), 100)
        assert (first.state, first.since_ms) == (AgentState.AVAILABLE, 100)
        again = await queue.agent_login(agent(1), 500)
        assert (again.state, again.since_ms) == (AgentState.AVAILABLE, 100)
        await queue.enqueue(CallId("c1"), W1, "", 1)
        await offer_to(queue, now=600)
        during_offer = await queue.agent_login(agent(1), 700)
        assert (during_offer.state, during_offer.since_ms, during_offer.call_id) == (
            AgentState.RESERVED,
            600,
            "c1",
        )
        assert [s.agent_id for s in await queue.agents()] == ["a1"]

    async def test_login_again_refreshes_contact_details(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 100)
        moved = Agent(AgentId("a1"), "坐席1", "2001", "sip:2001@10.0.0.9")
        assert (await queue.agent_login(moved, 200)).since_ms == 100
        await queue.enqueue(CallId("c1"), W1, "", 1)
        offer = await offer_to(queue)
        assert (offer.agent_extension, offer.agent_uri) == ("2001", "sip:2001@10.0.0.9")

    async def test_logout_then_login_again(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 100)
        out = await queue.agent_logout(AgentId("a1"), 200)
        assert (out.state, out.since_ms) == (AgentState.LOGGED_OUT, 200)
        assert (await queue.agent_logout(AgentId("a1"), 300)).since_ms == 200  # idempotent
        await queue.enqueue(CallId("c1"), W1, "", 1)
        assert await queue.dispatch_once(400, 1000) is None  # nobody to offer to
        back = await queue.agent_login(agent(1), 500)
        assert (back.state, back.since_ms) == (AgentState.AVAILABLE, 500)
        assert (await offer_to(queue, now=600)).agent_id == "a1"

    async def test_logout_while_reserved_puts_the_call_back_in_place(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 0)
        await queue.enqueue(CallId("c1"), W1, "", 100)
        offer = await offer_to(queue)
        await queue.enqueue(CallId("c2"), W1, "", 200)
        status = await queue.agent_logout(AgentId("a1"), 1_500)
        assert (status.state, status.since_ms, status.call_id) == (AgentState.LOGGED_OUT, 1_500, None)
        assert await ids_waiting(queue) == ["c1", "c2"]
        assert await queue.offered() == []
        assert not await queue.offer_answered(offer.offer_id, 1_600)  # the offer is gone
        assert (await queue.agent_status(AgentId("a1"))).state is AgentState.LOGGED_OUT

    async def test_logout_while_on_call_is_a_conflict(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 0)
        await queue.enqueue(CallId("c1"), W1, "", 100)
        offer = await offer_to(queue)
        assert await queue.offer_answered(offer.offer_id, 2_000)
        with pytest.raises(Conflict):
            await queue.agent_logout(AgentId("a1"), 3_000)
        status = await queue.agent_status(AgentId("a1"))
        assert (status.state, status.since_ms, status.call_id) == (AgentState.ON_CALL, 2_000, "c1")
        await queue.call_finished(CallId("c1"), 4_000)
        assert (await queue.agent_logout(AgentId("a1"), 5_000)).state is AgentState.LOGGED_OUT

    async def test_agents_lists_every_agent_seen(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(2), 10)
        await queue.agent_login(agent(1), 20)
        await queue.agent_logout(AgentId("a2"), 30)
        assert [(s.agent_id, s.state) for s in await queue.agents()] == [
            ("a1", AgentState.AVAILABLE),
            ("a2", AgentState.LOGGED_OUT),
        ]


class TestDispatch:
    async def test_nothing_to_do(self, queue: RedisCallQueue) -> None:
        assert await queue.dispatch_once(1, 1000) is None  # no call, no agent
        await queue.agent_login(agent(1), 0)
        assert await queue.dispatch_once(1, 1000) is None  # no call
        await queue.agent_logout(AgentId("a1"), 1)
        await queue.enqueue(CallId("c1"), W1, "", 1)
        assert await queue.dispatch_once(1, 1000) is None  # no agent
        assert await ids_waiting(queue) == ["c1"]

    async def test_offer_carries_call_and_agent(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1, uri="sip:1001@127.0.0.1:5070"), 0)
        await queue.enqueue(CallId("c1"), WorkerId("w7"), "13800000000", 100)
        offer = await offer_to(queue, now=1_000)
        assert offer.call_id == "c1"
        assert offer.offer_id.startswith("c1:")
        assert (offer.worker_id, offer.agent_id) == ("w7", "a1")
        assert (offer.agent_extension, offer.agent_uri) == ("1001", "sip:1001@127.0.0.1:5070")
        status = await queue.agent_status(AgentId("a1"))
        assert (status.state, status.since_ms, status.call_id) == (AgentState.RESERVED, 1_000, "c1")
        assert await queue.waiting() == []
        [offered] = await queue.offered()
        assert (offered.call_id, offered.offered_to, offered.position) == ("c1", "a1", 0)
        assert await queue.dispatch_once(1_001, 1000) is None  # the only agent is reserved

    async def test_agent_without_uri_gets_none(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 0)
        await queue.enqueue(CallId("c1"), W1, "", 100)
        assert (await offer_to(queue)).agent_uri is None

    async def test_head_goes_to_the_longest_idle_agent(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 300)
        await queue.agent_login(agent(2), 100)
        await queue.agent_login(agent(3), 200)
        for n in range(3):
            await queue.enqueue(CallId(f"c{n}"), W1, "", 1_000 + n)
        offers = [await offer_to(queue, now=2_000 + n) for n in range(3)]
        assert [(o.call_id, o.agent_id) for o in offers] == [("c0", "a2"), ("c1", "a3"), ("c2", "a1")]

    async def test_offer_ids_are_unique_even_for_the_same_call(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 0)
        await queue.enqueue(CallId("c1"), W1, "", 100)
        first = await offer_to(queue)
        assert await queue.offer_failed(first.offer_id, 2_000, "no-answer")
        second = await offer_to(queue, now=3_000)
        assert second.call_id == first.call_id
        assert second.offer_id != first.offer_id


class TestOfferOutcomes:
    async def test_answered(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 0)
        await queue.enqueue(CallId("c1"), W1, "", 100)
        offer = await offer_to(queue)
        assert await queue.offer_answered(offer.offer_id, 2_000)
        status = await queue.agent_status(AgentId("a1"))
        assert (status.state, status.since_ms, status.call_id) == (AgentState.ON_CALL, 2_000, "c1")
        assert await queue.position(CallId("c1")) is None
        assert await queue.offered() == []
        assert await queue.abandon(CallId("c1")) is False  # no longer in the queue

    async def test_duplicate_and_stale_outcomes_change_nothing(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 0)
        await queue.enqueue(CallId("c1"), W1, "", 100)
        offer = await offer_to(queue)
        assert await queue.offer_answered(offer.offer_id, 2_000)
        assert not await queue.offer_answered(offer.offer_id, 2_500)
        assert not await queue.offer_failed(offer.offer_id, 2_600, "no-answer")
        assert not await queue.offer_answered(OfferId("c1:999"), 2_700)
        assert await queue.expire_offers(10**9) == []
        status = await queue.agent_status(AgentId("a1"))
        assert (status.state, status.since_ms, status.call_id) == (AgentState.ON_CALL, 2_000, "c1")
        assert await queue.waiting() == []

    async def test_failed_offer_goes_back_to_its_original_place(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 0)
        await queue.enqueue(CallId("c1"), W1, "", 100)
        offer = await offer_to(queue)
        await queue.enqueue(CallId("c0"), W1, "", 50)  # arrived earlier, enqueued late
        await queue.enqueue(CallId("c2"), W1, "", 200)
        await queue.enqueue(CallId("c3"), W1, "", 300)
        assert await queue.offer_failed(offer.offer_id, 2_000, "no-answer")
        waiting = await queue.waiting()
        assert [(w.call_id, w.arrival_ms, w.position) for w in waiting] == [
            ("c0", 50, 1),
            ("c1", 100, 2),
            ("c2", 200, 3),
            ("c3", 300, 4),
        ]
        assert not await queue.offer_failed(offer.offer_id, 2_100, "no-answer")  # duplicate
        assert len(await queue.waiting()) == 4

    async def test_failed_agent_goes_to_the_back_of_the_idle_line(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 100)
        await queue.agent_login(agent(2), 200)
        await queue.enqueue(CallId("c1"), W1, "", 1_000)
        offer = await offer_to(queue, now=1_500)
        assert offer.agent_id == "a1"
        assert await queue.offer_failed(offer.offer_id, 3_000, "busy")
        status = await queue.agent_status(AgentId("a1"))
        assert (status.state, status.since_ms, status.call_id) == (AgentState.AVAILABLE, 3_000, None)
        again = await offer_to(queue, now=3_001)
        assert (again.call_id, again.agent_id) == ("c1", "a2")

    async def test_call_finished_frees_the_agent(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 100)
        await queue.agent_login(agent(2), 200)
        await queue.enqueue(CallId("c1"), W1, "", 1_000)
        await queue.enqueue(CallId("c2"), W1, "", 1_001)
        offer = await offer_to(queue)
        assert await queue.offer_answered(offer.offer_id, 2_000)
        await queue.call_finished(CallId("c1"), 5_000)
        status = await queue.agent_status(AgentId("a1"))
        assert (status.state, status.since_ms, status.call_id) == (AgentState.AVAILABLE, 5_000, None)
        await queue.call_finished(CallId("c1"), 6_000)  # repeated: no-op
        await queue.call_finished(CallId("unknown"), 6_000)
        assert (await queue.agent_status(AgentId("a1"))).since_ms == 5_000
        # a1 is now idle since 5000, a2 since 200: a2 gets the next call
        assert (await offer_to(queue, now=6_001)).agent_id == "a2"


class TestAbandon:
    async def test_abandon_waiting(self, queue: RedisCallQueue) -> None:
        for n in range(3):
            await queue.enqueue(CallId(f"c{n}"), W1, "", 100 + n)
        assert await queue.abandon(CallId("c1"))
        assert [(w.call_id, w.position) for w in await queue.waiting()] == [("c0", 1), ("c2", 2)]
        assert not await queue.abandon(CallId("c1"))
        assert not await queue.abandon(CallId("never"))
        assert await queue.position(CallId("c1")) is None

    async def test_abandon_while_offered_gives_the_agent_his_turn_back(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 100)
        await queue.agent_login(agent(2), 200)
        await queue.enqueue(CallId("c1"), W1, "", 1_000)
        await queue.enqueue(CallId("c2"), W1, "", 1_001)
        offer = await offer_to(queue, now=1_500)
        assert offer.agent_id == "a1"
        assert await queue.abandon(CallId("c1"))
        status = await queue.agent_status(AgentId("a1"))
        assert (status.state, status.since_ms, status.call_id) == (AgentState.AVAILABLE, 100, None)
        assert not await queue.offer_answered(offer.offer_id, 1_600)  # the worker was too late
        assert (await queue.agent_status(AgentId("a1"))).state is AgentState.AVAILABLE
        assert await queue.offered() == []
        nxt = await offer_to(queue, now=1_700)
        assert (nxt.call_id, nxt.agent_id) == ("c2", "a1")  # still the longest idle


class TestLeases:
    async def test_expired_offers_go_back_like_failed_ones(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 100)
        await queue.agent_login(agent(2), 200)
        await queue.enqueue(CallId("c1"), W1, "", 1_000)
        await queue.enqueue(CallId("c2"), W1, "", 2_000)
        offer = await offer_to(queue, now=10_000, lease=5_000)
        assert await queue.expire_offers(14_999) == []
        assert await queue.expire_offers(15_000) == [offer]
        assert await queue.expire_offers(15_000) == []
        assert await ids_waiting(queue) == ["c1", "c2"]
        status = await queue.agent_status(AgentId("a1"))
        assert (status.state, status.since_ms) == (AgentState.AVAILABLE, 15_000)
        assert not await queue.offer_answered(offer.offer_id, 15_001)
        assert (await offer_to(queue, now=15_002)).agent_id == "a2"

    async def test_only_expired_leases_are_taken_back(self, queue: RedisCallQueue) -> None:
        for n in range(3):
            await queue.agent_login(agent(n), n)
            await queue.enqueue(CallId(f"c{n}"), W1, "", 100 + n)
        short = await offer_to(queue, now=1_000, lease=1_000)
        long = await offer_to(queue, now=1_000, lease=60_000)
        answered = await offer_to(queue, now=1_000, lease=1_000)
        assert await queue.offer_answered(answered.offer_id, 1_500)
        assert await queue.expire_offers(2_000) == [short]
        assert [(w.call_id, w.offered_to) for w in await queue.offered()] == [(long.call_id, long.agent_id)]
        assert (await queue.agent_status(answered.agent_id)).state is AgentState.ON_CALL


class TestNamespaces:
    async def test_keys_live_under_the_prefix_and_queues_are_separate(self, client: redis.asyncio.Redis) -> None:
        one = RedisCallQueue(client, prefix="city-a", queue="q1")
        two = RedisCallQueue(client, prefix="city-a", queue="q2")
        await one.enqueue(CallId("c1"), W1, "", 1)
        await one.agent_login(agent(1), 0)
        await two.enqueue(CallId("c2"), W1, "", 2)
        assert await ids_waiting(one) == ["c1"]
        assert await ids_waiting(two) == ["c2"]
        assert await two.dispatch_once(5, 1000) is None  # a1 logged in to q1 only
        assert (await one.dispatch_once(5, 1000)) is not None
        names = [k.decode() for k in await client.keys("*")]
        # the queue's keys, and the shared event stream the scripts publish agent changes on
        assert "city-a:events" in names
        assert all(name.startswith("city-a:acd:{q") for name in names if name != "city-a:events")

    @pytest.mark.parametrize(("prefix", "name"), [("", "q"), ("a{b", "q"), ("hotline", "q}"), ("hotline", "a b")])
    async def test_invalid_names_are_refused(self, client: redis.asyncio.Redis, prefix: str, name: str) -> None:
        with pytest.raises(InvalidRequest):
            RedisCallQueue(client, prefix=prefix, queue=name)

    async def test_works_with_a_decoding_client(self, redis_url: str) -> None:
        client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        try:
            queue = RedisCallQueue(client)
            await queue.agent_login(agent(1), 0)
            assert await queue.enqueue(CallId("来电-1"), W1, "13800000000", 5) == 1
            offer = await offer_to(queue)
            assert offer.call_id == "来电-1"
            assert (await queue.agent_status(AgentId("a1"))).call_id == "来电-1"
        finally:
            await client.aclose()


class TestRedisDown:
    async def test_public_methods_raise_unavailable_and_recover(self, fresh_redis: RedisServer) -> None:
        client = redis.asyncio.Redis.from_url(fresh_redis.url, socket_connect_timeout=1, socket_timeout=2)
        try:
            queue = RedisCallQueue(client)
            await queue.agent_login(agent(1), 0)
            await queue.enqueue(CallId("c1"), W1, "", 1)
            fresh_redis.stop()
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: queue.enqueue(CallId("c2"), W1, "", 2),
                lambda: queue.abandon(CallId("c1")),
                lambda: queue.position(CallId("c1")),
                lambda: queue.waiting(),
                lambda: queue.offered(),
                lambda: queue.agent_login(agent(2), 3),
                lambda: queue.agent_logout(AgentId("a1"), 3),
                lambda: queue.agent_pause(AgentId("a1"), "小休", 3),
                lambda: queue.agent_resume(AgentId("a1"), 3),
                lambda: queue.wrap_up_done(AgentId("a1"), 3),
                lambda: queue.set_priority(CallId("c1"), Priority.FLAGGED),
                lambda: queue.estimated_wait_s(CallId("c1"), 3),
                lambda: queue.waiting(3),
                lambda: queue.average_handle_ms(),
                lambda: queue.agent_status(AgentId("a1")),
                lambda: queue.agents(),
                lambda: queue.dispatch_once(3, 1000),
                lambda: queue.offer_answered(OfferId("c1:1"), 3),
                lambda: queue.offer_failed(OfferId("c1:1"), 3, "x"),
                lambda: queue.call_finished(CallId("c1"), 3),
                lambda: queue.expire_offers(3),
            ]
            for call in calls:
                with pytest.raises(Unavailable):
                    await call()
            fresh_redis.start()  # same port, empty (no persistence): scripts load again
            assert await queue.enqueue(CallId("c9"), W1, "", 9) == 1
            await queue.agent_login(agent(1), 10)
            assert (await offer_to(queue, now=11)).call_id == "c9"
        finally:
            await client.aclose()
