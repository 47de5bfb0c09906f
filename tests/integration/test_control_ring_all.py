"""The control plane's dispatcher with a ring_all queue, on a real redis-server: one dispatch
sends every offer of the call's group to the caller's worker, each naming the whole group."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio

from hotline.core import events as ev
from hotline.core.model import Agent, AgentId, AgentState, CallId, WorkerId
from hotline.core.ports import Offer
from hotline.queue.acd import AcdPolicy, RedisCallQueue
from hotline.queue.bus import RedisEventBus
from hotline.queue.routing import Strategy
from hotline.runtime.control import Control, ControlSettings
from hotline.runtime.legs import epoch_ms
from hotline.tickets.store import SqlTicketStore

W1 = WorkerId("w1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlTicketStore]:
    s = SqlTicketStore(f"sqlite:///{tmp_path / 't.db'}")
    yield s
    s.close()


async def test_one_dispatch_rings_the_whole_group(client: redis.asyncio.Redis, store: SqlTicketStore) -> None:
    queue = RedisCallQueue(client, policy=AcdPolicy(strategy=Strategy.RING_ALL))
    bus = RedisEventBus(client)

    def uri(offer: Offer) -> str:
        return f"sip:{offer.agent_extension}@127.0.0.1"

    ctl = Control(ControlSettings(), queue, bus, store, uri)
    now = epoch_ms()
    for n in (1, 2):
        await queue.agent_login(Agent(AgentId(f"a{n}"), f"坐席{n}", f"100{n}"), now - 1_000 * n)
    await queue.enqueue(CallId("c1"), W1, "13800000001", now)
    assert await ctl.dispatch_step()
    sent = [(k, d) for _, k, d in await bus.read_commands(W1, "0", 0)]
    assert [(k, d["agent_id"], d["agent_uri"]) for k, d in sent] == [
        (ev.CMD_OFFER, "a2", "sip:1002@127.0.0.1"),
        (ev.CMD_OFFER, "a1", "sip:1001@127.0.0.1"),
    ]
    assert sent[0][1]["group"] == sent[1][1]["group"] == [sent[0][1]["offer_id"], sent[1][1]["offer_id"]]
    assert ctl.offers_sent == 2
    assert {s.state for s in await queue.agents()} == {AgentState.RESERVED}
    assert not await ctl.dispatch_step()
