"""Contract of RedisCallQueue.transfer_taken on a real redis-server: the agent a call was
transferred to takes it as if he had answered an offer of it, the first agent wraps up."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio

from hotline.core import events
from hotline.core.model import Actor, Agent, AgentId, AgentState, CallId, WorkerId
from hotline.queue.acd import AcdPolicy, RedisCallQueue
from hotline.queue.agent_state import TRANSFERRED, AgentPolicy
from hotline.queue.bus import RedisEventBus

W1 = WorkerId("w1")
A1, A2, A3 = AgentId("a1"), AgentId("a2"), AgentId("a3")
C1 = CallId("c1")
WRAP = 30_000


def agent(n: int) -> Agent:
    return Agent(AgentId(f"a{n}"), name=f"坐席{n}", extension=f"10{n:02d}")


@pytest.fixture
def queue(client: redis.asyncio.Redis) -> RedisCallQueue:
    return RedisCallQueue(client, policy=AcdPolicy(agent=AgentPolicy(wrap_up_ms=WRAP)))


async def connected(queue: RedisCallQueue, *others: int) -> None:
    """a1 answered c1 at 1 s; the others are logged in later (a1 is the longest idle), a2 paused
    for the transfer at 2 s, as the API does."""
    await queue.agent_login(agent(1), 100)
    await queue.enqueue(C1, W1, "", 500)
    offer = await queue.dispatch_once(1_000, 30_000)
    assert offer is not None and offer.agent_id == A1
    assert await queue.offer_answered(offer.offer_id, 1_000)
    for n in others:
        await queue.agent_login(agent(n), 1_500)
    await queue.agent_pause(A2, events.TRANSFER_PAUSE, 2_000, by=Actor.SYSTEM)


async def agent_events(client: redis.asyncio.Redis) -> list[dict[str, Any]]:
    bus = RedisEventBus(client)
    await bus.ensure_group("test")
    entries = await bus.read_events("test", "t", count=1000)
    return [data for _, kind, data in entries if kind == events.AGENT_STATE]


async def test_the_target_takes_the_call_and_the_first_agent_wraps_up(
    queue: RedisCallQueue, client: redis.asyncio.Redis
) -> None:
    await connected(queue, 2)
    assert await queue.transfer_taken(C1, A1, A2, 5_000) is True
    first, target = await queue.agent_status(A1), await queue.agent_status(A2)
    assert (first.state, first.call_id, first.reason, first.talk_ms) == (
        AgentState.WRAP_UP,
        "c1",
        f"{TRANSFERRED}a2",
        4_000,
    )
    assert (target.state, target.since_ms, target.call_id, target.reason, target.calls_answered) == (
        AgentState.ON_CALL,
        5_000,
        "c1",
        "",
        1,
    )
    taken = [e for e in await agent_events(client) if e["agent_id"] == "a2"][-1]
    assert (taken["previous"], taken["state"], taken["event"], taken["call_id"]) == (
        "paused",
        "on_call",
        "transfer_taken",
        "c1",
    )
    assert await queue.transfer_taken(C1, A1, A2, 6_000) is True  # a repeat changes nothing
    assert (await queue.agent_status(A2)).since_ms == 5_000
    # The call's end is the target's: wrap-up, his talk time counted; the first agent unchanged.
    await queue.call_finished(C1, 65_000)
    target = await queue.agent_status(A2)
    assert (target.state, target.call_id, target.talk_ms, target.calls_answered) == (
        AgentState.WRAP_UP,
        "c1",
        60_000,
        1,
    )
    assert (await queue.agent_status(A1)).talk_ms == 4_000


async def test_the_target_is_never_offered_another_call_while_on_it(queue: RedisCallQueue) -> None:
    await connected(queue, 2)
    assert await queue.transfer_taken(C1, A1, A2, 5_000)
    await queue.enqueue(CallId("c2"), W1, "", 6_000)
    assert await queue.dispatch_once(7_000, 30_000) is None  # a1 wraps up, a2 is on c1


async def test_a_first_agent_released_already(queue: RedisCallQueue) -> None:
    await connected(queue, 2)
    await queue.call_finished(C1, 3_000)  # his leg ended while the transfer rang: wrap-up
    assert await queue.transfer_taken(C1, A1, A2, 5_000, released=True) is True
    assert (await queue.agent_status(A1)).since_ms == 3_000
    target = await queue.agent_status(A2)
    assert (target.state, target.call_id) == (AgentState.ON_CALL, "c1")


async def test_the_call_already_ended_resumes_the_target(queue: RedisCallQueue) -> None:
    await connected(queue, 2)
    await queue.call_finished(C1, 3_000)
    assert await queue.transfer_taken(C1, A1, A2, 5_000) is None
    target = await queue.agent_status(A2)
    assert (target.state, target.since_ms, target.call_id) == (AgentState.AVAILABLE, 5_000, None)
    assert (await queue.agent_status(A1)).state is AgentState.WRAP_UP


async def test_a_target_not_in_the_transfer_pause_changes_nothing(queue: RedisCallQueue) -> None:
    await connected(queue, 2, 3)
    await queue.agent_pause(A2, "小休", 3_000)
    assert await queue.transfer_taken(C1, A1, A2, 5_000) is False
    assert await queue.transfer_taken(C1, A1, A3, 5_000) is False  # available
    assert await queue.transfer_taken(C1, A1, AgentId("a9"), 5_000) is False  # never seen
    assert [(s.agent_id, s.state, s.call_id) for s in await queue.agents()] == [
        ("a1", AgentState.ON_CALL, "c1"),
        ("a2", AgentState.PAUSED, None),
        ("a3", AgentState.AVAILABLE, None),
    ]


async def test_a_chained_transfer_moves_the_call_again(queue: RedisCallQueue) -> None:
    await connected(queue, 2, 3)
    assert await queue.transfer_taken(C1, A1, A2, 5_000)
    await queue.agent_pause(A3, events.TRANSFER_PAUSE, 6_000, by=Actor.SYSTEM)
    assert await queue.transfer_taken(C1, A1, A3, 7_000) is None  # a1 no longer has it: a3 resumed
    await queue.agent_pause(A3, events.TRANSFER_PAUSE, 8_000, by=Actor.SYSTEM)
    assert await queue.transfer_taken(C1, A2, A3, 9_000) is True
    states = {s.agent_id: (s.state, s.call_id, s.reason) for s in await queue.agents()}
    assert states == {
        "a1": (AgentState.WRAP_UP, "c1", f"{TRANSFERRED}a2"),
        "a2": (AgentState.WRAP_UP, "c1", f"{TRANSFERRED}a3"),
        "a3": (AgentState.ON_CALL, "c1", ""),
    }
