"""The live events WebSocket (/api/v1/ws) against a real redis-server: auth, filtering by role,
slow clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.agent_desktop.app import make_app
from hotline.agent_desktop.auth import Auth
from hotline.agent_desktop.live import SLOW_CLIENT, LiveHub
from hotline.core import events
from hotline.core.model import Agent, AgentId
from hotline.queue import keys
from hotline.queue.acd import RedisCallQueue
from hotline.queue.bus import RedisEventBus
from hotline.tickets.store import SqlTicketStore

API = "/api/v1"
PASSWORD = "密码-long-enough"
Client = TestClient[web.Request, web.Application]


@pytest.fixture(scope="module")
def accounts_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("live") / "tickets.db"
    store = SqlTicketStore(f"sqlite:///{path}")
    store.add_agent(Agent(AgentId("a1"), "张伟", "1001"))
    store.add_agent(Agent(AgentId("a2"), "李娜", "1002"))
    store.add_account("agent1", PASSWORD, "agent", AgentId("a1"))
    store.add_account("sup", PASSWORD, "supervisor")
    store.close()
    return path


@pytest.fixture
def store(accounts_db: Path, tmp_path: Path) -> Iterator[SqlTicketStore]:
    path = tmp_path / "tickets.db"
    path.write_bytes(accounts_db.read_bytes())
    s = SqlTicketStore(f"sqlite:///{path}")
    yield s
    s.close()


@pytest.fixture
def bus(client: redis.asyncio.Redis) -> RedisEventBus:
    return RedisEventBus(client)


@pytest.fixture
def hub(bus: RedisEventBus) -> LiveHub:
    return LiveHub(bus, block_ms=50, max_queue=50)


@pytest.fixture
async def api(client: redis.asyncio.Redis, store: SqlTicketStore, hub: LiveHub) -> AsyncIterator[Client]:
    app = make_app(RedisCallQueue(client), store, auth=Auth(store), live=hub)
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    await asyncio.wait_for(hub.started.wait(), 5)
    yield test_client
    await test_client.close()


async def token(api: Client, username: str) -> str:
    response = await api.post(f"{API}/login", json={"username": username, "password": PASSWORD})
    assert response.status == 200
    return str((await response.json())["token"])


async def connect(api: Client, username: str) -> aiohttp.ClientWebSocketResponse:
    ws = await api.ws_connect(f"{API}/ws?token={await token(api, username)}")
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello" and hello["data"]["username"] == username
    return ws


async def received(ws: aiohttp.ClientWebSocketResponse, until_type: str = "alert") -> list[dict[str, Any]]:
    """Messages up to and including the first of type until_type."""
    got = []
    while True:
        message = await ws.receive_json(timeout=5)
        got.append(message)
        if message["type"] == until_type:
            return got


async def test_without_a_token_the_upgrade_is_refused(api: Client) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.ws_connect(f"{API}/ws")
    assert refused.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await api.ws_connect(f"{API}/ws?token=forged")


async def test_a_bearer_header_works_too(api: Client) -> None:
    ws = await api.ws_connect(f"{API}/ws", headers={"Authorization": f"Bearer {await token(api, 'sup')}"})
    assert (await ws.receive_json(timeout=5))["type"] == "hello"
    await ws.close()


async def test_events_are_filtered_by_role(api: Client, bus: RedisEventBus) -> None:
    agent = await connect(api, "agent1")
    sup = await connect(api, "sup")
    await bus.publish(events.CALL_QUEUED, {"call_id": "c1", "caller": "13800138000", "worker_id": "w1"})
    await bus.publish(events.AGENT_STATE, {"agent_id": "a2", "state": "available", "call_id": None})
    await bus.publish(events.AGENT_STATE, {"agent_id": "a1", "state": "reserved", "call_id": "c1"})
    await bus.publish(events.CALL_DRAFT, {"call_id": "c1", "text": "路灯坏了", "final": False})
    await bus.publish(events.CALL_DRAFT, {"call_id": "c9", "text": "别人的电话", "final": False})
    await bus.publish(events.CALL_ENDED, {"call_id": "c1", "caller": "13800138000", "agent_id": "a1"})
    await bus.publish(events.ALERT, {"alert": "dispatch-stalled", "details": ""})
    await bus.publish(events.AGENT_STATE, {"agent_id": "a1", "state": "available", "call_id": None})
    every = await received(sup)
    assert [(m["type"], m["data"].get("call_id")) for m in every] == [
        ("call.queued", "c1"),
        ("agent.state", None),
        ("agent.state", "c1"),
        ("call.draft", "c1"),
        ("call.draft", "c9"),
        ("call.ended", "c1"),
        ("alert", None),
    ]
    assert every[0]["data"]["caller"] == "138****8000"  # live views are masked for every role
    assert all(m["id"] for m in every)
    mine = await received(agent, until_type="agent.state")  # his reserved state
    mine += await received(agent, until_type="agent.state")  # ... up to his available
    assert [(m["type"], m["data"].get("call_id")) for m in mine] == [
        ("agent.state", "c1"),
        ("call.draft", "c1"),
        ("call.ended", "c1"),
        ("agent.state", None),
    ]
    assert mine[2]["data"]["caller"] == "138****8000"  # his own call too: the whole number is an audited read
    await agent.close()
    await sup.close()


async def test_a_slow_client_is_closed_and_the_others_keep_up(api: Client, hub: LiveHub) -> None:
    slow = await connect(api, "sup")
    (slow_client,) = hub.clients
    fast = await connect(api, "sup")
    # Fill one client's queue to its bound without letting its sender run: the next event kicks it.
    for _ in range(hub.max_queue):
        slow_client.queue.put_nowait('{"type": "filler"}')
    hub.publish("1-1", events.ALERT, {"alert": "test", "details": "overflow"})
    assert slow_client.kicked.is_set()
    assert [c.kicked.is_set() for c in hub.clients if c is not slow_client] == [False]
    assert (await fast.receive_json(timeout=5))["data"]["details"] == "overflow"
    while True:
        message = await slow.receive(timeout=5)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            break
    assert slow.close_code == SLOW_CLIENT
    assert not fast.closed
    await fast.close()


async def test_the_reader_survives_a_malformed_entry(
    api: Client, client: redis.asyncio.Redis, bus: RedisEventBus
) -> None:
    sup = await connect(api, "sup")
    await client.xadd(keys.events(), {"garbage": "1"})
    await bus.publish(events.ALERT, {"alert": "after", "details": ""})
    assert (await received(sup))[-1]["data"]["alert"] == "after"
    await sup.close()
