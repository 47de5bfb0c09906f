"""The agent desktop REST API against the real RedisCallQueue (real redis-server) and SQL store."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.agent_desktop.app import make_app
from hotline.agent_desktop.openapi import document
from hotline.core.model import Agent, AgentId, CallId, CallRecord, Outcome, Priority, WorkerId
from hotline.queue.acd import AcdPolicy, RedisCallQueue
from hotline.queue.agent_state import AgentPolicy
from hotline.tickets.store import SqlTicketStore
from tests.support import RedisServer

API = "/api/v1"
W1 = WorkerId("w1")


class Clock:
    """The API's clock, set by the test."""

    def __init__(self) -> None:
        self.now_ms = 1_000

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlTicketStore]:
    s = SqlTicketStore(f"sqlite:///{tmp_path / 'tickets.db'}")
    s.add_agent(Agent(AgentId("a1"), "张伟", "1001", "sip:1001@127.0.0.1:5070"))
    s.add_agent(Agent(AgentId("a2"), "李娜", "1002"))
    yield s
    s.close()


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[RedisCallQueue]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield RedisCallQueue(client)
    await client.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def serve(app: web.Application) -> TestClient[web.Request, web.Application]:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def api(
    queue: RedisCallQueue, store: SqlTicketStore, clock: Clock
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    client = await serve(make_app(queue, store, auth=None, clock_ms=clock))
    yield client
    await client.close()


Client = TestClient[web.Request, web.Application]


async def get_json(api: Client, path: str, status: int = 200) -> Any:
    response = await api.get(path)
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


async def post_json(api: Client, path: str, status: int = 200, **kwargs: Any) -> Any:
    response = await api.post(path, **kwargs)
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


def record(n: int, started: datetime) -> CallRecord:
    return CallRecord(
        call_id=CallId(f"call-{n}"),
        caller=f"1380000000{n}",
        callee="12345",
        worker_id=W1,
        started_at=started,
        outcome=Outcome.ANSWERED,
        agent_id=AgentId("a1"),
        reason="已办结",
    )


async def test_health(api: Client) -> None:
    assert await get_json(api, f"{API}/health") == {"status": "ok", "checks": {"queue": "ok", "store": "ok"}}


class TestAgents:
    async def test_list_merges_registry_and_live_state(self, api: Client) -> None:
        before = await get_json(api, f"{API}/agents")
        assert [(a["agent_id"], a["state"], a["since_ms"]) for a in before["agents"]] == [
            ("a1", "logged_out", 0),
            ("a2", "logged_out", 0),
        ]
        await post_json(api, f"{API}/agents/a2/login")
        after = await get_json(api, f"{API}/agents")
        assert after["agents"][1] == {
            "agent_id": "a2",
            "name": "李娜",
            "extension": "1002",
            "sip_uri": None,
            "state": "available",
            "reason": "",
            "since_ms": 1_000,
            "since": "1970-01-01T00:00:01+00:00",
            "call_id": None,
            "idle_since_ms": 1_000,
            "wrap_up_until_ms": None,
            "registered": True,
            "device": "unknown",
        }
        assert after["agents"][0]["state"] == "logged_out"

    async def test_login_is_idempotent(self, api: Client, clock: Clock) -> None:
        first = await post_json(api, f"{API}/agents/a1/login")
        assert (first["state"], first["since_ms"], first["sip_uri"]) == (
            "available",
            1_000,
            "sip:1001@127.0.0.1:5070",
        )
        clock.now_ms = 5_000
        again = await post_json(api, f"{API}/agents/a1/login")
        assert (again["state"], again["since_ms"]) == ("available", 1_000)
        assert (await get_json(api, f"{API}/agents/a1"))["since_ms"] == 1_000

    async def test_unknown_agent(self, api: Client) -> None:
        body = await post_json(api, f"{API}/agents/nobody/login", status=404)
        assert body["error"] == "no-such-agent"
        assert body["message"]
        assert (await get_json(api, f"{API}/agents/nobody", status=404))["error"] == "no-such-agent"
        assert (await post_json(api, f"{API}/agents/nobody/logout", status=404))["error"] == "no-such-agent"

    async def test_get_one_agent(self, api: Client) -> None:
        body = await get_json(api, f"{API}/agents/a1")
        assert (body["agent_id"], body["name"], body["state"], body["registered"]) == (
            "a1",
            "张伟",
            "logged_out",
            True,
        )

    async def test_logout(self, api: Client, clock: Clock, queue: RedisCallQueue) -> None:
        await post_json(api, f"{API}/agents/a1/login")
        clock.now_ms = 2_000
        body = await post_json(api, f"{API}/agents/a1/logout", json={"reason": "午休"})
        assert (body["state"], body["since_ms"], body["reason"]) == ("logged_out", 2_000, "午休")
        assert (await queue.agent_status(AgentId("a1"))).since_ms == 2_000

    async def test_logout_on_call_is_a_conflict(self, api: Client, queue: RedisCallQueue) -> None:
        await post_json(api, f"{API}/agents/a1/login")
        await queue.enqueue(CallId("c1"), W1, "13800000000", 1_100)
        offer = await queue.dispatch_once(1_200, 30_000)
        assert offer is not None
        assert await queue.offer_answered(offer.offer_id, 1_300)
        body = await post_json(api, f"{API}/agents/a1/logout", status=409)
        assert body["error"] == "conflict"
        on_call = await get_json(api, f"{API}/agents/a1")
        assert (on_call["state"], on_call["call_id"]) == ("on_call", "c1")
        await queue.call_finished(CallId("c1"), 1_400)
        assert (await post_json(api, f"{API}/agents/a1/logout"))["state"] == "logged_out"

    @pytest.mark.parametrize(
        "body",
        [b"{not json", b"[1, 2]", b'"text"', b'{"reason": 5}', b"\xff\xfe"],
        ids=["malformed", "array", "string", "bad-reason", "not-utf8"],
    )
    async def test_bad_logout_body(self, api: Client, body: bytes) -> None:
        await post_json(api, f"{API}/agents/a1/login")
        reply = await post_json(
            api, f"{API}/agents/a1/logout", status=400, data=body, headers={"Content-Type": "application/json"}
        )
        assert reply["error"] == "invalid-request"
        assert (await get_json(api, f"{API}/agents/a1"))["state"] == "available"  # nothing changed

    async def test_malformed_login_body(self, api: Client) -> None:
        reply = await post_json(
            api, f"{API}/agents/a1/login", status=400, data=b"{", headers={"Content-Type": "application/json"}
        )
        assert reply["error"] == "invalid-request"
        assert (await get_json(api, f"{API}/agents/a1"))["state"] == "logged_out"


async def test_queue_lists_waiting_calls_in_order(api: Client, queue: RedisCallQueue) -> None:
    assert await get_json(api, f"{API}/queue") == {"waiting": [], "count": 0, "queues": {"default": 0}, "offered": []}
    await queue.enqueue(CallId("c2"), W1, "13900000000", 2_000)
    await queue.enqueue(CallId("c1"), W1, "13800000000", 1_000)
    body = await get_json(api, f"{API}/queue")
    assert body["count"] == 2
    assert [(c["call_id"], c["position"], c["caller"], c["arrival_ms"]) for c in body["waiting"]] == [
        ("c1", 1, "13800000000", 1_000),  # sign-in off: whole (tests/integration/test_api_auth.py: masked)
        ("c2", 2, "13900000000", 2_000),
    ]


async def test_queue_shows_priority_waited_and_estimated_wait(api: Client, queue: RedisCallQueue, clock: Clock) -> None:
    await post_json(api, f"{API}/agents/a1/login")  # at 1 s
    await queue.enqueue(CallId("c1"), W1, "13800000001", 1_500)
    await queue.enqueue(CallId("c2"), W1, "13800000002", 2_000)
    offer = await queue.dispatch_once(2_500, 30_000)
    assert offer is not None and offer.call_id == "c1"
    assert await queue.offer_answered(offer.offer_id, 3_000)
    await queue.enqueue(CallId("c3"), W1, "13800000003", 4_000)
    await queue.enqueue(CallId("e1"), W1, "13800000004", 5_000, Priority.EMERGENCY)
    assert await queue.set_priority(CallId("c3"), Priority.FLAGGED) is Priority.FLAGGED
    clock.now_ms = 63_000  # a1 has talked for 60 s of the default 180
    body = await get_json(api, f"{API}/queue")
    got = [(c["call_id"], c["position"], c["priority"], c["waited_s"], c["estimated_wait_s"]) for c in body["waiting"]]
    assert got == [
        ("e1", 1, "emergency", 58.0, 120.0),
        ("c3", 2, "flagged", 59.0, 300.0),
        ("c2", 3, "normal", 61.0, 480.0),
    ]


async def test_queue_lists_the_calls_ringing_at_agents_with_their_wait(
    api: Client, queue: RedisCallQueue, clock: Clock
) -> None:
    await post_json(api, f"{API}/agents/a1/login")  # at 1 s
    await queue.enqueue(CallId("c1"), W1, "13800000001", 1_500)
    await queue.enqueue(CallId("c2"), W1, "13800000002", 2_000)
    offer = await queue.dispatch_once(2_500, 30_000)
    assert offer is not None and offer.call_id == "c1"
    clock.now_ms = 11_500
    body = await get_json(api, f"{API}/queue")
    assert [c["call_id"] for c in body["waiting"]] == ["c2"]  # the offered call is not waiting any more
    assert body["offered"] == [
        {
            "call_id": "c1", "worker_id": W1, "caller": "13800000001", "arrival_ms": 1_500, "offered_to": "a1",
            "priority": "normal", "waited_s": 10.0, "callback": False, "queue": "default",
        }
    ]  # fmt: skip
    assert await queue.offer_answered(offer.offer_id, 12_000)
    assert (await get_json(api, f"{API}/queue"))["offered"] == []


class TestAgentState:
    async def state(self, api: Client, body: Any, status: int = 200, agent: str = "a1") -> Any:
        return await post_json(api, f"{API}/agents/{agent}/state", status=status, json=body)

    async def test_pause_and_resume(self, api: Client, clock: Clock, queue: RedisCallQueue) -> None:
        await post_json(api, f"{API}/agents/a1/login")
        clock.now_ms = 2_000
        paused = await self.state(api, {"state": "paused", "reason": "用餐"})
        assert (paused["state"], paused["reason"], paused["since_ms"]) == ("paused", "用餐", 2_000)
        shown = await get_json(api, f"{API}/agents/a1")
        assert (shown["state"], shown["reason"], shown["since"]) == ("paused", "用餐", "1970-01-01T00:00:02+00:00")
        await queue.enqueue(CallId("c1"), W1, "13800000000", 2_100)
        assert await queue.dispatch_once(2_200, 30_000) is None  # not offered while paused
        clock.now_ms = 3_000
        back = await self.state(api, {"state": "available"})
        assert (back["state"], back["reason"], back["since_ms"], back["idle_since_ms"]) == (
            "available",
            "",
            3_000,
            3_000,
        )
        offer = await queue.dispatch_once(3_100, 30_000)
        assert offer is not None and offer.agent_id == "a1"

    async def test_wrap_up_done(self, store: SqlTicketStore, redis_url: str, clock: Clock) -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        queue = RedisCallQueue(client, policy=AcdPolicy(agent=AgentPolicy(wrap_up_ms=60_000)))
        api = await serve(make_app(queue, store, auth=None, clock_ms=clock))
        try:
            await post_json(api, f"{API}/agents/a1/login")
            await queue.enqueue(CallId("c1"), W1, "13800000000", 1_100)
            offer = await queue.dispatch_once(1_200, 30_000)
            assert offer is not None
            assert await queue.offer_answered(offer.offer_id, 1_300)
            await queue.call_finished(CallId("c1"), 9_000)
            wrapping = await get_json(api, f"{API}/agents/a1")
            assert (wrapping["state"], wrapping["call_id"], wrapping["wrap_up_until_ms"]) == ("wrap_up", "c1", 69_000)
            refused = await self.state(api, {"state": "available"}, status=409)  # a pause ends with available
            assert refused["error"] == "illegal-transition"
            clock.now_ms = 20_000
            done = await self.state(api, {"state": "wrap_up_done"})
            assert (done["state"], done["since_ms"], done["call_id"]) == ("available", 20_000, None)
            again = await self.state(api, {"state": "wrap_up_done"})  # already done: unchanged
            assert again["since_ms"] == 20_000
        finally:
            await api.close()
            await client.aclose()

    async def test_illegal_transitions_are_409(self, api: Client, queue: RedisCallQueue) -> None:
        body = await self.state(api, {"state": "paused", "reason": "小休"}, status=409)  # logged out
        assert body["error"] == "illegal-transition"
        assert "logged_out" in body["message"]
        await post_json(api, f"{API}/agents/a1/login")
        await queue.enqueue(CallId("c1"), W1, "13800000000", 1_100)
        offer = await queue.dispatch_once(1_200, 30_000)
        assert offer is not None and await queue.offer_answered(offer.offer_id, 1_300)
        for request in ({"state": "paused", "reason": "小休"}, {"state": "available"}):
            assert (await self.state(api, request, status=409))["error"] == "illegal-transition"
        assert (await get_json(api, f"{API}/agents/a1"))["state"] == "on_call"

    async def test_unknown_agent_is_404(self, api: Client) -> None:
        body = await self.state(api, {"state": "available"}, status=404, agent="nobody")
        assert body["error"] == "no-such-agent"

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"state": "busy"},
            {"state": "logged_out"},
            {"state": None},
            {"state": "paused"},
            {"state": "paused", "reason": ""},
            {"state": "paused", "reason": "  "},
            {"state": "paused", "reason": 5},
            {"state": "paused", "reason": "x" * 65},
            {"state": "paused", "reason": "小\n休"},
            {"state": "available", "why": "typo"},
            [1, 2],
        ],
        ids=lambda b: repr(b)[:40],
    )
    async def test_invalid_requests_are_400_and_change_nothing(self, api: Client, body: Any) -> None:
        await post_json(api, f"{API}/agents/a1/login")
        reply = await self.state(api, body, status=400)
        assert reply["error"] == "invalid-request"
        assert reply["message"]
        shown = await get_json(api, f"{API}/agents/a1")
        assert (shown["state"], shown["reason"]) == ("available", "")

    async def test_malformed_json_is_400(self, api: Client) -> None:
        await post_json(api, f"{API}/agents/a1/login")
        reply = await post_json(
            api, f"{API}/agents/a1/state", status=400, data=b"{", headers={"Content-Type": "application/json"}
        )
        assert reply["error"] == "invalid-request"


class TestCalls:
    async def test_list_newest_first_with_limit(self, api: Client, store: SqlTicketStore) -> None:
        start = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
        for n in range(5):
            store.save_call(record(n, start + timedelta(minutes=n)))
        body = await get_json(api, f"{API}/calls?limit=2")
        assert [c["call_id"] for c in body["calls"]] == ["call-4", "call-3"]
        every = await get_json(api, f"{API}/calls")
        assert [c["call_id"] for c in every["calls"]] == [f"call-{n}" for n in (4, 3, 2, 1, 0)]
        assert every["calls"][0]["reason"] == "已办结"

    @pytest.mark.parametrize("limit", ["0", "1001", "-5", "ten", "1.5", ""])
    async def test_invalid_limit(self, api: Client, limit: str) -> None:
        body = await get_json(api, f"{API}/calls?limit={limit}", status=400)
        assert body["error"] == "invalid-request"

    async def test_limit_bounds_are_accepted(self, api: Client) -> None:
        assert (await get_json(api, f"{API}/calls?limit=1"))["calls"] == []
        assert (await get_json(api, f"{API}/calls?limit=1000"))["calls"] == []

    async def test_get_call(self, api: Client, store: SqlTicketStore) -> None:
        saved = record(7, datetime(2024, 5, 1, 8, 0, tzinfo=UTC))
        store.save_call(saved)
        body = await get_json(api, f"{API}/calls/call-7")
        assert CallRecord.from_dict(body) == saved
        missing = await get_json(api, f"{API}/calls/call-8", status=404)
        assert missing["error"] == "no-such-call"


class TestErrors:
    async def test_unknown_route_is_json_404(self, api: Client) -> None:
        body = await get_json(api, f"{API}/nothing-here", status=404)
        assert body["error"] == "not-found"
        assert (await get_json(api, "/nothing-here", status=404))["error"] == "not-found"  # "/" is the web page's

    async def test_wrong_method_is_json_405(self, api: Client) -> None:
        response = await api.delete(f"{API}/queue")
        assert response.status == 405
        assert (await response.json())["error"] == "method-not-allowed"
        assert "GET" in response.headers["Allow"]

    async def test_redis_down_is_503(self, store: SqlTicketStore, fresh_redis: RedisServer) -> None:
        client = redis.asyncio.Redis.from_url(fresh_redis.url, socket_connect_timeout=1, socket_timeout=2)
        api = await serve(make_app(RedisCallQueue(client), store, auth=None))
        try:
            assert (await get_json(api, f"{API}/queue"))["count"] == 0
            fresh_redis.stop()
            assert (await get_json(api, f"{API}/queue", status=503))["error"] == "unavailable"
            assert (await post_json(api, f"{API}/agents/a1/login", status=503))["error"] == "unavailable"
            health = await get_json(api, f"{API}/health", status=503)
            assert health["status"] == "degraded"
            assert health["checks"]["store"] == "ok"
            assert health["checks"]["queue"].startswith("unavailable")
            # the store still answers
            assert (await get_json(api, f"{API}/calls"))["calls"] == []
            fresh_redis.start()
            assert (await get_json(api, f"{API}/health"))["status"] == "ok"
        finally:
            await api.close()
            await client.aclose()

    async def test_closed_store_is_503(self, queue: RedisCallQueue, tmp_path: Path) -> None:
        store = SqlTicketStore(f"sqlite:///{tmp_path / 'closed.db'}")
        api = await serve(make_app(queue, store, auth=None))
        try:
            store.close()
            assert (await get_json(api, f"{API}/calls", status=503))["error"] == "unavailable"
            assert (await get_json(api, f"{API}/health", status=503))["checks"]["queue"] == "ok"
        finally:
            await api.close()


def _router_operations(app: web.Application) -> set[tuple[str, str]]:
    operations = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue  # aiohttp adds HEAD to every GET
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        assert path, route
        if not path.startswith(f"{API}/") and path != "/metrics":
            continue  # the web page's static files and redirects (web.py) are not the API
        operations.add((route.method.lower(), path))
    return operations


async def test_openapi_document_lists_exactly_the_routes(api: Client) -> None:
    served = await get_json(api, f"{API}/openapi.json")
    assert served == document()
    assert served["openapi"].startswith("3.0")
    documented = {(method, path) for path, item in served["paths"].items() for method in item}
    assert api.app is not None
    assert documented == _router_operations(api.app)
    # every path parameter of a route is declared
    for path, item in served["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for operation in item.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, path
            assert operation["responses"], path
