"""Contract of the CallQueue port's ACD behaviour (priorities, agent states, wrap-up, estimates,
agent.state events) against RedisCallQueue on a real redis-server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio

from hotline.core import events
from hotline.core.errors import IllegalTransition, InvalidRequest
from hotline.core.model import Actor, Agent, AgentId, AgentState, CallId, Priority, WorkerId
from hotline.core.ports import Offer
from hotline.queue.acd import AcdPolicy, RedisCallQueue
from hotline.queue.agent_state import AgentPolicy
from hotline.queue.bus import RedisEventBus
from hotline.queue.estimate import next_handle_average

W1 = WorkerId("w1")
A1, A2 = AgentId("a1"), AgentId("a2")
WRAP = 30_000


def agent(n: int) -> Agent:
    return Agent(AgentId(f"a{n}"), name=f"坐席{n}", extension=f"10{n:02d}")


@pytest.fixture
def queue(client: redis.asyncio.Redis) -> RedisCallQueue:
    return RedisCallQueue(client)


@pytest.fixture
def wrapping(client: redis.asyncio.Redis) -> RedisCallQueue:
    """A queue whose agents wrap up for WRAP ms after each call."""
    return RedisCallQueue(client, policy=AcdPolicy(agent=AgentPolicy(wrap_up_ms=WRAP)))


async def offer_to(queue: RedisCallQueue, now: int = 1_000, lease: int = 30_000) -> Offer:
    offer = await queue.dispatch_once(now, lease)
    assert offer is not None
    return offer


async def order(queue: RedisCallQueue) -> list[tuple[str, int, Priority]]:
    return [(w.call_id, w.position, w.priority) for w in await queue.waiting()]


async def state_of(queue: RedisCallQueue, agent_id: AgentId) -> tuple[AgentState, int, str]:
    status = await queue.agent_status(agent_id)
    return status.state, status.since_ms, status.reason


async def agent_events(client: redis.asyncio.Redis) -> list[dict[str, Any]]:
    """The agent.state events, read as a consumer of the event bus reads them."""
    bus = RedisEventBus(client)
    await bus.ensure_group("test")
    entries = await bus.read_events("test", "t", count=1000)
    return [data for _, kind, data in entries if kind == events.AGENT_STATE]


N, F, E = Priority.NORMAL, Priority.FLAGGED, Priority.EMERGENCY


class TestPriorities:
    async def test_emergency_then_flagged_then_normal_fifo_within_each(self, queue: RedisCallQueue) -> None:
        calls = [("n1", 100, N), ("f1", 200, F), ("e1", 300, E), ("n2", 50, N), ("f2", 150, F), ("e2", 400, E)]
        for call, arrival, priority in calls:
            await queue.enqueue(CallId(call), W1, "", arrival, priority)
        assert await order(queue) == [
            ("e1", 1, E),
            ("e2", 2, E),
            ("f2", 3, F),
            ("f1", 4, F),
            ("n2", 5, N),
            ("n1", 6, N),
        ]
        assert [await queue.position(CallId(c)) for c in ("e1", "f2", "n1")] == [1, 3, 6]
        for n in range(6):
            await queue.agent_login(agent(n), n)
        offered = [(await offer_to(queue, now=1_000 + n)).call_id for n in range(6)]
        assert offered == ["e1", "e2", "f2", "f1", "n2", "n1"]

    async def test_enqueue_reports_the_position_among_every_priority(self, queue: RedisCallQueue) -> None:
        assert await queue.enqueue(CallId("n1"), W1, "", 100) == 1
        assert await queue.enqueue(CallId("f1"), W1, "", 200, F) == 1
        assert await queue.enqueue(CallId("n2"), W1, "", 300) == 3
        assert await queue.enqueue(CallId("e1"), W1, "", 400, E) == 1
        assert await queue.position(CallId("n2")) == 4

    async def test_set_priority_keeps_the_arrival_order(self, queue: RedisCallQueue) -> None:
        for call, arrival, priority in [("n1", 100, N), ("n2", 200, N), ("n3", 300, N), ("f1", 150, F), ("f2", 250, F)]:
            await queue.enqueue(CallId(call), W1, "", arrival, priority)
        assert await queue.set_priority(CallId("n3"), F) is F
        assert [c for c, _, _ in await order(queue)] == ["f1", "f2", "n3", "n1", "n2"]
        assert await queue.set_priority(CallId("n1"), F) is F  # arrived before f1: goes ahead of it
        assert await order(queue) == [("n1", 1, F), ("f1", 2, F), ("f2", 3, F), ("n3", 4, F), ("n2", 5, N)]
        assert [w.arrival_ms for w in await queue.waiting()] == [100, 150, 250, 300, 200]

    async def test_set_priority_never_lowers_and_ignores_calls_not_queued(self, queue: RedisCallQueue) -> None:
        await queue.enqueue(CallId("e1"), W1, "", 100, E)
        await queue.enqueue(CallId("f1"), W1, "", 200, F)
        assert await queue.set_priority(CallId("e1"), F) is E  # a caller pressing 0 keeps the emergency
        assert await queue.set_priority(CallId("f1"), F) is F  # again: nothing changes
        assert await queue.set_priority(CallId("nope"), E) is None
        await queue.agent_login(agent(1), 0)
        offer = await offer_to(queue)
        assert await queue.offer_answered(offer.offer_id, 1_100)
        assert await queue.set_priority(offer.call_id, E) is None  # answered: out of the queue
        assert await order(queue) == [("f1", 1, F)]

    async def test_retried_enqueue_does_not_change_the_priority(self, queue: RedisCallQueue) -> None:
        await queue.enqueue(CallId("c1"), W1, "", 100, N)
        await queue.enqueue(CallId("c2"), W1, "", 200, N)
        assert await queue.enqueue(CallId("c2"), W1, "", 200, E) == 2
        assert await order(queue) == [("c1", 1, N), ("c2", 2, N)]

    async def test_a_failed_offer_keeps_its_place_within_its_priority(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 0)
        await queue.enqueue(CallId("f1"), W1, "", 100, F)
        offer = await offer_to(queue)
        await queue.enqueue(CallId("f2"), W1, "", 200, F)
        await queue.enqueue(CallId("n0"), W1, "", 10, N)
        await queue.enqueue(CallId("e9"), W1, "", 900, E)
        assert await queue.offer_failed(offer.offer_id, 2_000, "no-answer")
        assert [c for c, _, _ in await order(queue)] == ["e9", "f1", "f2", "n0"]

    async def test_an_offered_call_raised_meanwhile_comes_back_raised(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 0)
        await queue.enqueue(CallId("c1"), W1, "", 500)
        offer = await offer_to(queue)
        await queue.enqueue(CallId("f1"), W1, "", 100, F)
        assert await queue.position(CallId("c1")) == 0
        assert await queue.set_priority(CallId("c1"), E) is E
        assert await queue.position(CallId("c1")) == 0  # still being offered
        assert await queue.offer_failed(offer.offer_id, 2_000, "busy")
        assert await order(queue) == [("c1", 1, E), ("f1", 2, F)]

    async def test_invalid_priorities_are_refused(self, queue: RedisCallQueue) -> None:
        with pytest.raises(InvalidRequest):
            await queue.enqueue(CallId("c1"), W1, "", 100, 7)  # type: ignore[arg-type]
        await queue.enqueue(CallId("c1"), W1, "", 100)
        with pytest.raises(InvalidRequest):
            await queue.set_priority(CallId("c1"), -1)  # type: ignore[arg-type]
        assert await order(queue) == [("c1", 1, N)]


class TestPause:
    async def test_pause_and_resume(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 100)
        await queue.enqueue(CallId("c1"), W1, "", 150)
        status = await queue.agent_pause(A1, "小休", 200)
        assert (status.state, status.since_ms, status.reason, status.idle_since_ms) == (
            AgentState.PAUSED,
            200,
            "小休",
            None,
        )
        assert await queue.dispatch_once(300, 1_000) is None  # a paused agent is not offered calls
        assert (await queue.agent_pause(A1, "小休", 400)).since_ms == 200  # the same pause: no change
        assert await state_of(queue, A1) == (AgentState.PAUSED, 200, "小休")
        assert (await queue.agent_pause(A1, "用餐", 500)).since_ms == 500  # another reason: a new pause
        back = await queue.agent_resume(A1, 600)
        assert (back.state, back.since_ms, back.idle_since_ms, back.reason) == (AgentState.AVAILABLE, 600, 600, "")
        assert (await queue.agent_resume(A1, 700)).since_ms == 600  # available already
        assert (await offer_to(queue, now=800)).agent_id == A1

    async def test_resume_puts_him_at_the_back_of_the_idle_line(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 100)
        await queue.agent_login(agent(2), 200)
        await queue.agent_pause(A1, "培训", 300)
        await queue.agent_resume(A1, 400)
        await queue.enqueue(CallId("c1"), W1, "", 500)
        assert (await offer_to(queue)).agent_id == A2

    @pytest.mark.parametrize("reason", ["", "   ", "x" * 65, "小\n休"])
    async def test_a_pause_needs_a_printable_reason(self, queue: RedisCallQueue, reason: str) -> None:
        await queue.agent_login(agent(1), 100)
        with pytest.raises(InvalidRequest):
            await queue.agent_pause(A1, reason, 200)
        assert await state_of(queue, A1) == (AgentState.AVAILABLE, 100, "")

    async def test_requests_the_state_does_not_allow_are_refused_and_change_nothing(
        self, queue: RedisCallQueue
    ) -> None:
        requests: list[Callable[[], Awaitable[object]]] = [
            lambda: queue.agent_pause(A1, "小休", 50),
            lambda: queue.agent_resume(A1, 50),
            lambda: queue.wrap_up_done(A1, 50),
        ]
        for request in requests:
            with pytest.raises(IllegalTransition) as error:
                await request()  # never logged in
            assert error.value.error_id == "illegal-transition" and "logged_out" in error.value.message
        await queue.agent_login(agent(1), 100)
        await queue.enqueue(CallId("c1"), W1, "", 150)
        offer = await offer_to(queue, now=200)
        with pytest.raises(IllegalTransition, match="reserved"):
            await queue.agent_pause(A1, "小休", 300)
        with pytest.raises(IllegalTransition):
            await queue.agent_resume(A1, 300)
        assert await queue.offer_answered(offer.offer_id, 400)
        with pytest.raises(IllegalTransition, match="on_call"):
            await queue.agent_pause(A1, "小休", 500)
        assert (await queue.wrap_up_done(A1, 500)).state is AgentState.ON_CALL  # nothing to end: no change
        assert await state_of(queue, A1) == (AgentState.ON_CALL, 400, "")

    async def test_a_paused_agent_logs_out_and_in_again(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 100)
        await queue.agent_pause(A1, "用餐", 200)
        out = await queue.agent_logout(A1, 300, reason="下班")
        assert (out.state, out.reason) == (AgentState.LOGGED_OUT, "下班")
        assert (await queue.agent_login(agent(1), 400)).state is AgentState.AVAILABLE


class TestAgentFailure:
    async def test_no_answer_pauses_the_agent_and_the_call_keeps_its_place(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 100)
        await queue.agent_login(agent(2), 200)
        await queue.enqueue(CallId("c1"), W1, "", 1_000)
        offer = await offer_to(queue, now=1_500)
        await queue.enqueue(CallId("c2"), W1, "", 1_600)
        assert await queue.offer_failed(offer.offer_id, 2_000, "no-answer", agent_fault=True)
        status = await queue.agent_status(A1)
        assert (status.state, status.since_ms, status.reason, status.call_id) == (
            AgentState.PAUSED,
            2_000,
            "no-answer",
            None,
        )
        assert [c for c, _, _ in await order(queue)] == ["c1", "c2"]
        again = await offer_to(queue, now=2_100)
        assert (again.call_id, again.agent_id) == ("c1", "a2")
        assert await queue.dispatch_once(2_200, 1_000) is None  # a1 stays out of rotation
        assert not await queue.offer_failed(offer.offer_id, 2_300, "no-answer", agent_fault=True)  # duplicate

    async def test_autopause_can_be_switched_off(self, client: redis.asyncio.Redis) -> None:
        queue = RedisCallQueue(client, policy=AcdPolicy(agent=AgentPolicy(pause_on_agent_failure=False)))
        await queue.agent_login(agent(1), 100)
        await queue.enqueue(CallId("c1"), W1, "", 1_000)
        offer = await offer_to(queue, now=1_500)
        assert await queue.offer_failed(offer.offer_id, 2_000, "no-answer", agent_fault=True)
        status = await queue.agent_status(A1)
        assert (status.state, status.since_ms, status.idle_since_ms, status.reason) == (
            AgentState.AVAILABLE,
            2_000,
            2_000,
            "no-answer",
        )

    async def test_an_offer_he_declined_pauses_him_even_without_autopause(self, client: redis.asyncio.Redis) -> None:
        queue = RedisCallQueue(client, policy=AcdPolicy(agent=AgentPolicy(pause_on_agent_failure=False)))
        await queue.agent_login(agent(1), 100)
        await queue.agent_login(agent(2), 200)
        await queue.enqueue(CallId("c1"), W1, "", 1_000)
        offer = await offer_to(queue, now=1_500)
        assert await queue.offer_failed(offer.offer_id, 2_000, "拒接", declined=True)
        assert await state_of(queue, A1) == (AgentState.PAUSED, 2_000, "拒接")
        again = await offer_to(queue, now=2_100)  # the call kept its place, for the next agent
        assert (again.call_id, again.agent_id) == ("c1", "a2")
        assert not await queue.offer_failed(offer.offer_id, 2_300, "拒接", declined=True)  # duplicate

    async def test_a_failure_not_of_the_agent_leaves_him_available(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 100)
        await queue.enqueue(CallId("c1"), W1, "", 1_000)
        offer = await offer_to(queue, now=1_500)
        assert await queue.offer_failed(offer.offer_id, 2_000, "no-such-call")
        assert await state_of(queue, A1) == (AgentState.AVAILABLE, 2_000, "no-such-call")


class TestWrapUp:
    async def answered(self, queue: RedisCallQueue, call: str, now: int) -> Offer:
        await queue.enqueue(CallId(call), W1, "", now)
        offer = await offer_to(queue, now=now)
        assert await queue.offer_answered(offer.offer_id, now)
        return offer

    async def test_it_follows_a_call_and_ends_by_itself(self, wrapping: RedisCallQueue) -> None:
        await wrapping.agent_login(agent(1), 100)
        await self.answered(wrapping, "c1", 1_000)
        await wrapping.call_finished(CallId("c1"), 5_000)
        status = await wrapping.agent_status(A1)
        assert (status.state, status.since_ms, status.call_id, status.wrap_up_until_ms) == (
            AgentState.WRAP_UP,
            5_000,
            "c1",
            5_000 + WRAP,
        )
        await wrapping.enqueue(CallId("c2"), W1, "", 6_000)
        assert await wrapping.dispatch_once(5_000 + WRAP - 1, 1_000) is None  # not offered while wrapping up
        offer = await offer_to(wrapping, now=50_000)  # the dispatcher's tick ended it
        assert (offer.call_id, offer.agent_id) == ("c2", "a1")

    async def test_it_ends_at_its_deadline_whatever_script_notices(self, wrapping: RedisCallQueue) -> None:
        await wrapping.agent_login(agent(1), 100)
        await self.answered(wrapping, "c1", 1_000)
        await wrapping.call_finished(CallId("c1"), 5_000)
        await wrapping.agent_login(agent(2), 90_000)  # any script given the time ends due wrap-ups
        status = await wrapping.agent_status(A1)
        assert (status.state, status.since_ms, status.idle_since_ms, status.call_id) == (
            AgentState.AVAILABLE,
            5_000 + WRAP,
            5_000 + WRAP,
            None,
        )
        await wrapping.enqueue(CallId("c2"), W1, "", 91_000)
        assert (await offer_to(wrapping, now=91_000)).agent_id == A1  # idle since 35 s, a2 since 90 s

    async def test_done_early_by_the_agent(self, wrapping: RedisCallQueue) -> None:
        await wrapping.agent_login(agent(1), 100)
        await self.answered(wrapping, "c1", 1_000)
        await wrapping.call_finished(CallId("c1"), 5_000)
        done = await wrapping.wrap_up_done(A1, 8_000)
        assert (done.state, done.since_ms, done.idle_since_ms) == (AgentState.AVAILABLE, 8_000, 8_000)
        assert (await wrapping.wrap_up_done(A1, 9_000)).since_ms == 8_000  # again: no change
        await wrapping.dispatch_once(5_000 + WRAP + 1, 1_000)  # the old deadline passes: nothing happens
        assert await state_of(wrapping, A1) == (AgentState.AVAILABLE, 8_000, "")

    async def test_resume_does_not_end_a_wrap_up_but_pause_and_logout_do(self, wrapping: RedisCallQueue) -> None:
        await wrapping.agent_login(agent(1), 100)
        await wrapping.agent_login(agent(2), 100)
        await self.answered(wrapping, "c1", 1_000)
        await wrapping.call_finished(CallId("c1"), 5_000)
        with pytest.raises(IllegalTransition):
            await wrapping.agent_resume(A1, 6_000)
        paused = await wrapping.agent_pause(A1, "小休", 7_000)
        assert (paused.state, paused.wrap_up_until_ms) == (AgentState.PAUSED, None)
        await wrapping.agent_resume(A1, 8_000)
        await self.answered(wrapping, "c2", 9_000)  # a2 (idle since 100) takes it
        await wrapping.call_finished(CallId("c2"), 10_000)
        assert (await wrapping.agent_logout(A2, 11_000)).state is AgentState.LOGGED_OUT
        await wrapping.dispatch_once(10**9, 1_000)  # long after: a2's old deadline changes nothing
        assert await state_of(wrapping, A2) == (AgentState.LOGGED_OUT, 11_000, "")

    async def test_a_lost_call_frees_the_agent_at_once(self, wrapping: RedisCallQueue) -> None:
        await wrapping.agent_login(agent(1), 100)
        await self.answered(wrapping, "c1", 1_000)
        await wrapping.call_finished(CallId("c1"), 5_000, lost=True)
        assert await state_of(wrapping, A1) == (AgentState.AVAILABLE, 5_000, "call-lost")


class TestAgentEvents:
    async def test_every_change_is_published_with_who_and_why(
        self, wrapping: RedisCallQueue, client: redis.asyncio.Redis
    ) -> None:
        await wrapping.agent_login(agent(1), 100)
        await wrapping.enqueue(CallId("c1"), W1, "", 150)
        offer = await offer_to(wrapping, now=200)
        await wrapping.offer_answered(offer.offer_id, 300)
        await wrapping.call_finished(CallId("c1"), 400)
        await wrapping.agent_pause(A1, "用餐", 500, by=Actor.SUPERVISOR)
        await wrapping.agent_resume(A1, 600)
        await wrapping.enqueue(CallId("c2"), W1, "", 650)
        offer = await offer_to(wrapping, now=700)
        await wrapping.offer_failed(offer.offer_id, 800, "no-answer", agent_fault=True)
        await wrapping.agent_logout(A1, 900, reason="下班")
        published = await agent_events(client)
        got = [
            (e["previous"], e["state"], e["event"], e["by"], e["reason"], e["call_id"], e["since_ms"])
            for e in published
        ]
        assert got == [
            ("logged_out", "available", "login", "agent", "", None, 100),
            ("available", "reserved", "offer", "system", "", "c1", 200),
            ("reserved", "on_call", "answered", "agent", "", "c1", 300),
            ("on_call", "wrap_up", "call_ended", "system", "", "c1", 400),
            ("wrap_up", "paused", "pause", "supervisor", "用餐", None, 500),
            ("paused", "available", "resume", "agent", "", None, 600),
            ("available", "reserved", "offer", "system", "", "c2", 700),
            ("reserved", "paused", "offer_failed", "system", "no-answer", None, 800),
            ("paused", "logged_out", "logout", "agent", "下班", None, 900),
        ]
        assert {e["agent_id"] for e in published} == {"a1"}

    async def test_the_end_of_a_wrap_up_is_published_at_its_deadline(
        self, wrapping: RedisCallQueue, client: redis.asyncio.Redis
    ) -> None:
        await wrapping.agent_login(agent(1), 100)
        await wrapping.enqueue(CallId("c1"), W1, "", 150)
        offer = await offer_to(wrapping, now=200)
        await wrapping.offer_answered(offer.offer_id, 300)
        await wrapping.call_finished(CallId("c1"), 400)
        await wrapping.expire_offers(400 + WRAP + 5_000)
        last = (await agent_events(client))[-1]
        assert (last["previous"], last["state"], last["event"], last["by"], last["since_ms"]) == (
            "wrap_up",
            "available",
            "wrap_up_expired",
            "system",
            400 + WRAP,
        )

    async def test_requests_that_change_nothing_publish_nothing(
        self, queue: RedisCallQueue, client: redis.asyncio.Redis
    ) -> None:
        await queue.agent_login(agent(1), 100)
        await queue.agent_login(agent(1), 200)
        await queue.agent_resume(A1, 300)
        await queue.wrap_up_done(A1, 300)
        await queue.agent_pause(A1, "小休", 400)
        await queue.agent_pause(A1, "小休", 500)
        await queue.agent_logout(A1, 600)
        await queue.agent_logout(A1, 700)
        assert [e["event"] for e in await agent_events(client)] == ["login", "pause", "logout"]


class TestEstimates:
    async def finish_call(self, queue: RedisCallQueue, call: str, start: int, end: int, lost: bool = False) -> None:
        await queue.enqueue(CallId(call), W1, "", start)
        offer = await offer_to(queue, now=start)
        assert await queue.offer_answered(offer.offer_id, start)
        await queue.call_finished(CallId(call), end, lost=lost)

    async def test_handle_time_average_is_kept_by_call_finished(self, client: redis.asyncio.Redis) -> None:
        queue = RedisCallQueue(client, policy=AcdPolicy(handle_samples=3, default_handle_ms=100_000))
        await queue.agent_login(agent(1), 0)
        assert await queue.average_handle_ms() == 100_000  # before any call
        expected, n = None, 0
        for number, seconds in enumerate([60, 120, 90, 301, 45]):
            start = 1_000_000 * (number + 1)
            await self.finish_call(queue, f"c{number}", start, start + seconds * 1000)
            expected, n = next_handle_average(expected, n, seconds * 1000, 3)
            assert await queue.average_handle_ms() == expected
        assert expected is not None and expected != 45_000
        await self.finish_call(queue, "lost", 9_000_000, 9_001_000, lost=True)
        assert await queue.average_handle_ms() == expected  # a lost call is not averaged

    async def test_estimates_grow_with_the_position(self, client: redis.asyncio.Redis) -> None:
        queue = RedisCallQueue(client, policy=AcdPolicy(default_handle_ms=60_000))
        await queue.agent_login(agent(1), 0)
        await queue.agent_login(agent(2), 0)
        await queue.agent_login(agent(3), 0)
        await queue.agent_pause(AgentId("a3"), "小休", 10)  # paused agents do not count
        for n in range(5):
            await queue.enqueue(CallId(f"c{n}"), W1, "", 100 + n)
        waiting = await queue.waiting(1_000)
        assert [(w.position, w.estimated_wait_s) for w in waiting] == [(1, 0), (2, 0), (3, 60), (4, 60), (5, 120)]
        assert [w.estimated_wait_s for w in await queue.waiting()] == [None] * 5  # no time: no estimate
        for w in waiting:
            assert await queue.estimated_wait_s(w.call_id, 1_000) == w.estimated_wait_s

    async def test_busy_agents_count_from_when_they_free_up(self, wrapping: RedisCallQueue) -> None:
        await wrapping.agent_login(agent(1), 0)
        await wrapping.enqueue(CallId("c0"), W1, "", 100)
        offer = await offer_to(wrapping, now=1_000)
        assert await wrapping.offer_answered(offer.offer_id, 1_000)
        await wrapping.enqueue(CallId("c1"), W1, "", 2_000, F)
        await wrapping.enqueue(CallId("c2"), W1, "", 1_500)
        # a1 answered at 1 s: free after the default handle time (180 s) and wrap-up (30 s), at
        # 211 s, then every 210 s; c1 (flagged) is first in line.
        assert await wrapping.estimated_wait_s(CallId("c1"), 11_000) == 200
        assert await wrapping.estimated_wait_s(CallId("c2"), 11_000) == 410
        await wrapping.call_finished(CallId("c0"), 21_000)  # a 20 s call (the average now), wrap-up until 51 s
        assert [w.estimated_wait_s for w in await wrapping.waiting(41_000)] == [10, 10 + 20 + 30]

    async def test_offered_unknown_and_unstaffed(self, queue: RedisCallQueue) -> None:
        await queue.enqueue(CallId("c1"), W1, "", 100)
        await queue.enqueue(CallId("c2"), W1, "", 200)
        assert await queue.estimated_wait_s(CallId("c1"), 1_000) is None  # nobody logged in
        assert await queue.estimated_wait_s(CallId("nope"), 1_000) is None
        await queue.agent_login(agent(1), 0)
        await offer_to(queue)
        assert await queue.estimated_wait_s(CallId("c1"), 1_000) == 0.0  # being offered
        assert await queue.estimated_wait_s(CallId("c2"), 1_000) == 180  # after a1's call


class TestCallback:
    """The caller presses 1 and hangs up: the entry keeps its place and is called back."""

    async def test_the_entry_keeps_its_place_and_survives_abandon(self, queue: RedisCallQueue) -> None:
        for n, arrival in ((1, 1_000), (2, 2_000), (3, 3_000)):
            await queue.enqueue(CallId(f"c{n}"), W1, f"1380000000{n}", arrival)
        assert await queue.request_callback(CallId("c2"), "13800000002", 4_000)
        assert not await queue.abandon(CallId("c2"))  # its worker ends the call: the entry stays
        waiting = await queue.waiting()
        assert [(w.call_id, w.position, w.callback) for w in waiting] == [
            ("c1", 1, False),
            ("c2", 2, True),
            ("c3", 3, False),
        ]
        assert await queue.position(CallId("c2")) == 2
        assert not await queue.request_callback(CallId("nobody"), "1", 4_000)

    async def test_its_offer_carries_the_number_and_the_longer_lease(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 100)
        await queue.enqueue(CallId("c1"), W1, "13800000001", 1_000)
        await queue.request_callback(CallId("c1"), "13800000001", 1_500)
        offer = await queue.dispatch_once(2_000, 30_000, callback_lease_ms=90_000)
        assert offer is not None
        assert (offer.call_id, offer.callback, offer.caller, offer.attempt, offer.worker_id) == (
            "c1",
            True,
            "13800000001",
            1,
            "",
        )
        assert await queue.expire_offers(91_999) == []
        assert [o.offer_id for o in await queue.expire_offers(92_000)] == [offer.offer_id]
        assert [w.callback for w in await queue.waiting()] == [True]  # back at its place, still a callback

    async def test_an_offer_in_flight_is_withdrawn(self, queue: RedisCallQueue) -> None:
        await queue.agent_login(agent(1), 100)
        await queue.enqueue(CallId("c1"), W1, "13800000001", 1_000)
        offer = await offer_to(queue, now=1_500)
        assert await queue.request_callback(CallId("c1"), "13800000001", 1_600)
        status = await queue.agent_status(A1)
        assert (status.state, status.idle_since_ms) == (AgentState.AVAILABLE, 100)  # keeps his turn
        assert not await queue.offer_failed(offer.offer_id, 1_700, "late")  # the old offer is gone
        again = await offer_to(queue, now=1_800)
        assert again.callback and again.call_id == "c1"

    async def test_a_failed_attempt_waits_for_its_retry_time_without_losing_its_place(
        self, queue: RedisCallQueue
    ) -> None:
        await queue.agent_login(agent(1), 100)
        await queue.enqueue(CallId("c1"), W1, "13800000001", 1_000)
        await queue.request_callback(CallId("c1"), "13800000001", 1_100)
        await queue.enqueue(CallId("c2"), W1, "13800000002", 2_000)
        first = await offer_to(queue, now=3_000)
        assert first.call_id == "c1"
        assert await queue.callback_failed(first.offer_id, 4_000, "no-answer", retry_at_ms=60_000, max_attempts=3) == 1
        assert await state_of(queue, A1) == (AgentState.AVAILABLE, 4_000, "no-answer")  # never paused
        assert [w.call_id for w in await queue.waiting()] == ["c1", "c2"]  # still first in line
        passed_over = await offer_to(queue, now=5_000)
        assert passed_over.call_id == "c2"  # c1 waits for its retry time, c2 is served meanwhile
        assert await queue.offer_answered(passed_over.offer_id, 5_100)
        await queue.call_finished(CallId("c2"), 6_000)
        assert await queue.dispatch_once(59_999, 30_000) is None
        retry = await offer_to(queue, now=60_000)
        assert (retry.call_id, retry.attempt) == ("c1", 2)
        assert await queue.callback_failed(retry.offer_id, 61_000, "busy", retry_at_ms=90_000, max_attempts=3) == 2
        assert await queue.callback_failed(retry.offer_id, 61_100, "busy", retry_at_ms=90_000, max_attempts=3) == -1
        last = await offer_to(queue, now=90_000)
        assert last.attempt == 3
        assert await queue.callback_failed(last.offer_id, 91_000, "no-answer", retry_at_ms=0, max_attempts=3) == 0
        assert await queue.waiting() == []
        assert await queue.position(CallId("c1")) is None

    async def test_answered_callback_is_served_like_any_call(self, wrapping: RedisCallQueue) -> None:
        await wrapping.agent_login(agent(1), 100)
        await wrapping.enqueue(CallId("c1"), W1, "13800000001", 1_000)
        await wrapping.request_callback(CallId("c1"), "13800000001", 1_100)
        offer = await offer_to(wrapping, now=2_000)
        assert await wrapping.offer_answered(offer.offer_id, 20_000)
        assert (await wrapping.agent_status(A1)).state == AgentState.ON_CALL
        await wrapping.call_finished(CallId("c1"), 80_000)
        assert (await wrapping.agent_status(A1)).state == AgentState.WRAP_UP
        assert await wrapping.waiting() == []

    async def test_a_callback_needs_a_number(self, queue: RedisCallQueue) -> None:
        await queue.enqueue(CallId("c1"), W1, "", 1_000)
        for bad in ("", " ", "1 2"):
            with pytest.raises(InvalidRequest):
                await queue.request_callback(CallId("c1"), bad, 2_000)
