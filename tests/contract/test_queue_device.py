"""Contract of the agents' device state in RedisCallQueue on a real redis-server: the control
plane records each softphone as registered or unreachable (set_device); an AVAILABLE agent whose
phone is unreachable keeps his state and place but is not offered calls, and next_match (the
watchdog's question) does not count him, until his phone is registered again."""

from __future__ import annotations

import pytest
import redis.asyncio

from hotline.core.errors import InvalidRequest
from hotline.core.model import Agent, AgentId, AgentState, CallId, WorkerId
from hotline.queue.acd import AcdPolicy, RedisCallQueue
from hotline.queue.routing import Strategy

W1 = WorkerId("w1")
A1, A2 = AgentId("a1"), AgentId("a2")


def agent(n: int) -> Agent:
    return Agent(AgentId(f"a{n}"), name=f"坐席{n}", extension=f"100{n}")


async def test_an_unreachable_agent_is_passed_over_until_his_phone_registers(client: redis.asyncio.Redis) -> None:
    queue = RedisCallQueue(client)
    await queue.agent_login(agent(1), 100)  # idle longest
    await queue.agent_login(agent(2), 200)
    status = await queue.set_device(A1, "unreachable", 300)
    assert (status.device, status.extension, status.state, status.idle_since_ms) == (
        "unreachable",
        "1001",
        AgentState.AVAILABLE,
        100,
    )
    await queue.enqueue(CallId("c1"), W1, "138", 400)
    await queue.enqueue(CallId("c2"), W1, "139", 500)
    assert await queue.next_match(600) == ("c1", "a2")
    offer = await queue.dispatch_once(600, 30_000)
    assert offer is not None and offer.agent_id == "a2"
    assert await queue.next_match(700) is None  # a1 does not count: no stall to report
    assert await queue.dispatch_once(700, 30_000) is None
    assert (await queue.set_device(A1, "registered", 800)).device == "registered"
    offer = await queue.dispatch_once(900, 30_000)
    assert offer is not None and (offer.call_id, offer.agent_id) == ("c2", "a1")
    assert (await queue.agent_status(A1)).device == "registered"


async def test_a_ring_all_group_leaves_out_unreachable_phones(client: redis.asyncio.Redis) -> None:
    queue = RedisCallQueue(client, policy=AcdPolicy(strategy=Strategy.RING_ALL))
    for n in (1, 2):
        await queue.agent_login(agent(n), 100 * n)
    await queue.set_device(A2, "unreachable", 300)
    await queue.enqueue(CallId("c1"), W1, "138", 400)
    offer = await queue.dispatch_once(500, 30_000)
    assert offer is not None and (offer.agent_id, offer.ring) == ("a1", ())


async def test_device_values_and_unknown_agents(client: redis.asyncio.Redis) -> None:
    queue = RedisCallQueue(client)
    with pytest.raises(InvalidRequest, match="device must be one of"):
        await queue.set_device(A1, "ringing", 100)
    status = await queue.set_device(A1, "registered", 100)  # never logged in: nothing stored
    assert (status.state, status.device) == (AgentState.LOGGED_OUT, "")
    assert await queue.agents() == []
    await queue.agent_login(agent(1), 200)
    await queue.set_device(A1, "unreachable", 300)
    assert (await queue.set_device(A1, "", 400)).device == ""  # unknown again: offered as before
