"""Several queues on the API: GET /api/v1/queue names each call's queue and counts every queue,
the wallboard has each queue's callers now beside the totals, and /metrics one series per queue;
against a real redis-server and a SQLite store. The single-queue responses are unchanged (the
other suites check them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio

from hotline.agent_desktop.wallboard import WallboardSettings
from hotline.core.model import Agent, AgentId, CallId, WorkerId
from hotline.queue.acd import AcdPolicy, RedisCallQueue
from hotline.tickets.store import SqlTicketStore
from tests.integration.test_api_wallboard import (
    API,
    PASSWORD,
    Client,
    ago_ms,
    get_json,
    get_metrics,
    sample,
    serve,
    token,
)

W1 = WorkerId("w1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlTicketStore]:
    s = SqlTicketStore(f"sqlite:///{tmp_path / 'tickets.db'}")
    s.add_account("sup", PASSWORD, "supervisor")
    yield s
    s.close()


@pytest.fixture
def queue(client: redis.asyncio.Redis) -> RedisCallQueue:
    return RedisCallQueue(client, queue="hotline", policy=AcdPolicy(), queues={"en": AcdPolicy(), "idle": AcdPolicy()})


@pytest.fixture
async def api(queue: RedisCallQueue, store: SqlTicketStore) -> AsyncIterator[Client]:
    settings = WallboardSettings(queue_name="hotline", queues=(("hotline", 15.0), ("en", 20.0), ("idle", 15.0)))
    test_client = await serve(queue, store, settings)
    yield test_client
    await test_client.close()


async def fill(queue: RedisCallQueue) -> None:
    await queue.enqueue(CallId("h1"), W1, "13800000001", ago_ms(90))
    await queue.enqueue(CallId("e1"), W1, "13800000002", ago_ms(60), queue="en")
    await queue.enqueue(CallId("h2"), W1, "13800000003", ago_ms(30))
    await queue.enqueue(CallId("e2"), W1, "13800000004", ago_ms(10), queue="en")
    assert await queue.request_callback(CallId("e2"), "13800000004", ago_ms(5))


async def test_the_queue_route_names_each_calls_queue(api: Client, queue: RedisCallQueue) -> None:
    await fill(queue)
    body = await get_json(api, f"{API}/queue", await token(api, "sup"))
    assert [(c["call_id"], c["queue"], c["position"]) for c in body["waiting"]] == [
        ("h1", "hotline", 1),
        ("e1", "en", 1),
        ("h2", "hotline", 2),
        ("e2", "en", 2),
    ]
    assert (body["count"], body["queues"]) == (4, {"hotline": 2, "en": 2, "idle": 0})


async def test_the_wallboard_and_the_metrics_show_each_queue(api: Client, queue: RedisCallQueue) -> None:
    await fill(queue)
    board = await get_json(api, f"{API}/wallboard", await token(api, "sup"))
    assert (board["queue"]["name"], board["queue"]["waiting"], board["queue"]["longest_wait_s"]) == ("hotline", 3, 90)
    assert board["queues"] == [
        {"name": "hotline", "waiting": 2, "longest_wait_s": 90, "callbacks_waiting": 0, "service_level_s": 15},
        {"name": "en", "waiting": 1, "longest_wait_s": 60, "callbacks_waiting": 1, "service_level_s": 20},
        {"name": "idle", "waiting": 0, "longest_wait_s": 0, "callbacks_waiting": 0, "service_level_s": 15},
    ]
    samples, _ = await get_metrics(api)
    waiting = {q: sample(samples, "hotline_queue_waiting", queue=q) for q in ("hotline", "en", "idle")}
    assert waiting == {"hotline": 2, "en": 1, "idle": 0}
    assert sample(samples, "hotline_queue_longest_wait_seconds", queue="en") == 60
    assert sample(samples, "hotline_queue_callbacks_waiting", queue="en") == 1


async def test_the_agents_device_state_is_shown(api: Client, queue: RedisCallQueue, store: SqlTicketStore) -> None:
    store.add_agent(Agent(AgentId("a1"), "张伟", "1001"))
    await queue.agent_login(Agent(AgentId("a1"), "张伟", "1001"), ago_ms(60))
    tok = await token(api, "sup")
    assert (await get_json(api, f"{API}/agents/a1", tok))["device"] == "unknown"
    await queue.set_device(AgentId("a1"), "unreachable", ago_ms(1))
    assert (await get_json(api, f"{API}/agents/a1", tok))["device"] == "unreachable"
    board = await get_json(api, f"{API}/wallboard", tok)
    assert [(a["agent_id"], a["state"], a["device"]) for a in board["agents"]] == [("a1", "available", "unreachable")]
