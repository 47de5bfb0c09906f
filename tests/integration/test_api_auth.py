"""Sign-in, sessions and roles of the agent desktop API: every route for every role, refused
ones included, against the real RedisCallQueue (real redis-server) and SQL store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.agent_desktop import api_calls
from hotline.agent_desktop.app import make_app
from hotline.agent_desktop.auth import Auth, MemorySessions, mask_number
from hotline.agent_desktop.openapi import document
from hotline.core.model import Agent, AgentId, CallId, CallRecord, Outcome, WorkerId
from hotline.queue import keys
from hotline.queue.acd import RedisCallQueue
from hotline.tickets.store import SqlTicketStore

API = "/api/v1"
PASSWORD = "密码-long-enough"
W1 = WorkerId("w1")
Client = TestClient[web.Request, web.Application]

# username -> (role, agent)
ACCOUNTS = {
    "agent1": ("agent", "a1"),
    "agent2": ("agent", "a2"),
    "sup": ("supervisor", None),
    "admin": ("admin", None),
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def accounts_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database with the accounts, copied per test (argon2 hashing is slow on purpose)."""
    path = tmp_path_factory.mktemp("accounts") / "tickets.db"
    store = SqlTicketStore(f"sqlite:///{path}")
    store.add_agent(Agent(AgentId("a1"), "张伟", "1001"))
    store.add_agent(Agent(AgentId("a2"), "李娜", "1002"))
    for username, (role, agent) in ACCOUNTS.items():
        store.add_account(username, PASSWORD, role, None if agent is None else AgentId(agent))
    store.add_account("gone", PASSWORD, "supervisor")
    store.set_account_disabled("gone", True)
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
async def queue(redis_url: str) -> AsyncIterator[RedisCallQueue]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield RedisCallQueue(client)
    await client.aclose()


@pytest.fixture
def session_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def auth(store: SqlTicketStore, session_clock: FakeClock) -> Auth:
    return Auth(store, MemorySessions(clock=session_clock), session_ttl_s=3600, failures_per_minute=5)


@pytest.fixture
async def api(queue: RedisCallQueue, store: SqlTicketStore, auth: Auth) -> AsyncIterator[Client]:
    client = TestClient(TestServer(make_app(queue, store, auth=auth, clock_ms=lambda: 1_000)))
    await client.start_server()
    yield client
    await client.close()


async def sign_in(api: Client, username: str, password: str = PASSWORD, status: int = 200) -> Any:
    response = await api.post(f"{API}/login", json={"username": username, "password": password})
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


async def token(api: Client, username: str) -> str:
    return str((await sign_in(api, username))["token"])


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def call(api: Client, method: str, path: str, tok: str | None, status: int, **kwargs: Any) -> Any:
    headers = bearer(tok) if tok else {}
    response = await api.request(method, path, headers=headers, **kwargs)
    assert response.status == status, f"{method} {path}: {response.status} {await response.text()}"
    if status == 200 and response.content_type.startswith("audio/"):
        return await response.read()  # a recording
    assert response.content_type == "application/json"
    return await response.json()


class TestSignIn:
    async def test_sign_in_gives_a_bearer_token(self, api: Client) -> None:
        body = await sign_in(api, "agent1")
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 3600
        assert body["account"] == {"username": "agent1", "role": "agent", "agent_id": "a1"}
        assert len(body["token"]) >= 43  # 32 random bytes, URL-safe base64
        assert await call(api, "GET", f"{API}/me", body["token"], 200) == body["account"]

    @pytest.mark.parametrize(
        ("username", "password"), [("agent1", "wrong password"), ("nobody", PASSWORD), ("gone", PASSWORD)]
    )
    async def test_refused_sign_ins_are_401(self, api: Client, username: str, password: str) -> None:
        body = await sign_in(api, username, password, status=401)
        assert body["error"] == "unauthorized"
        assert "token" not in body

    @pytest.mark.parametrize(
        "body", [{}, {"username": "agent1"}, {"username": 5, "password": PASSWORD}, {"username": "", "password": "x"}]
    )
    async def test_malformed_sign_ins_are_400(self, api: Client, body: dict[str, Any]) -> None:
        assert (await call(api, "POST", f"{API}/login", None, 400, json=body))["error"] == "invalid-request"

    async def test_five_attempts_a_minute_then_429(self, api: Client) -> None:
        for _ in range(5):
            await sign_in(api, "sup", "wrong password", status=401)
        refused = await api.post(f"{API}/login", json={"username": "sup", "password": PASSWORD})
        assert refused.status == 429
        assert (await refused.json())["error"] == "too-many-attempts"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        await sign_in(api, "admin")  # another username is not held up

    async def test_a_success_clears_the_count(self, api: Client) -> None:
        for _ in range(4):
            await sign_in(api, "sup", "wrong password", status=401)
        await sign_in(api, "sup")
        for _ in range(4):
            await sign_in(api, "sup", "wrong password", status=401)
        await sign_in(api, "sup")

    async def test_no_token_is_401_with_www_authenticate(self, api: Client) -> None:
        response = await api.get(f"{API}/agents")
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await response.json())["error"] == "unauthorized"
        for header in ({"Authorization": "Bearer nonsense"}, {"Authorization": "Basic YWRtaW46eA=="}):
            response = await api.get(f"{API}/agents", headers=header)
            assert response.status == 401

    async def test_a_token_in_the_query_is_only_for_the_websocket(self, api: Client) -> None:
        tok = await token(api, "admin")
        await call(api, "GET", f"{API}/agents?token={tok}", None, 401)

    async def test_logout_ends_the_session(self, api: Client) -> None:
        tok = await token(api, "agent1")
        other = await token(api, "agent1")
        assert await call(api, "POST", f"{API}/logout", tok, 200) == {"signed_out": True}
        await call(api, "GET", f"{API}/me", tok, 401)
        await call(api, "POST", f"{API}/logout", tok, 401)
        await call(api, "GET", f"{API}/me", other, 200)  # the other session lives on

    async def test_sessions_expire(self, api: Client, session_clock: FakeClock) -> None:
        tok = await token(api, "sup")
        session_clock.now += 3599
        await call(api, "GET", f"{API}/me", tok, 200)
        session_clock.now += 1
        body = await call(api, "GET", f"{API}/me", tok, 401)
        assert "expired" in body["message"]

    async def test_sign_in_is_off_without_auth(self, queue: RedisCallQueue, store: SqlTicketStore) -> None:
        client = TestClient(TestServer(make_app(queue, store, auth=None)))
        await client.start_server()
        try:
            assert (await call(client, "POST", f"{API}/login", None, 404, json={}))["error"] == "not-found"
            assert (await call(client, "GET", f"{API}/me", None, 200))["role"] == "admin"
        finally:
            await client.close()


# (method, path, body, expected status per role: none, agent1 (a1), agent2 (a2), sup, admin).
# Agent a1 is logged in before each request, so that logout and state changes are legal.
MATRIX: list[tuple[str, str, Any, tuple[int, int, int, int, int]]] = [
    ("GET", "/health", None, (200, 200, 200, 200, 200)),
    ("GET", "/openapi.json", None, (200, 200, 200, 200, 200)),
    ("GET", "/me", None, (401, 200, 200, 200, 200)),
    ("GET", "/agents", None, (401, 200, 200, 200, 200)),
    ("GET", "/agents/a1", None, (401, 200, 403, 200, 200)),
    ("POST", "/agents/a1/login", None, (401, 200, 403, 200, 200)),
    ("POST", "/agents/a1/state", {"state": "paused", "reason": "小休"}, (401, 200, 403, 200, 200)),
    ("POST", "/agents/a1/logout", None, (401, 200, 403, 200, 200)),
    ("GET", "/queue", None, (401, 200, 200, 200, 200)),
    ("GET", "/calls", None, (401, 200, 200, 200, 200)),
    ("GET", "/calls/call-a1", None, (401, 200, 403, 200, 200)),
    ("GET", "/recordings/call-a1?why=quality-check", None, (401, 200, 403, 200, 200)),
    ("GET", "/recordings/call-a1/access", None, (401, 403, 403, 403, 200)),
    ("GET", "/wallboard", None, (401, 403, 403, 200, 200)),
    ("GET", "/reports/units?since=2024-05-01&until=2024-05-31", None, (401, 403, 403, 200, 200)),
    ("GET", "/reports/hot-topics?days=7", None, (401, 403, 403, 200, 200)),
    ("POST", "/logout", None, (401, 200, 200, 200, 200)),
]
ROLES = (None, "agent1", "agent2", "sup", "admin")
# Routes with tests of their own (sign-in above, the WebSocket and metrics in their modules).
ELSEWHERE = {("post", "/login"), ("get", "/ws"), ("get", "/metrics")}
# The units' routes, every role on them included: tests/integration/test_api_units.py.
ELSEWHERE |= {(method, path.removeprefix(API)) for path, item in document()["paths"].items()
              if path.startswith(f"{API}/unit/") for method in item}  # fmt: skip
# The hotline's 工单 routes, every role and its audit rows included: tests/integration/test_api_tickets.py.
ELSEWHERE |= {("post", "/calls/{call_id}/ticket"), ("get", "/calls/{call_id}/context"), ("get", "/tickets"),
              ("get", "/tickets/{number}"), ("post", "/tickets/{number}/events"),
              ("get", "/tickets/{number}/access")}  # fmt: skip
# The CSV export (not JSON), every role included: tests/integration/test_api_reports.py.
ELSEWHERE |= {("get", "/reports/tickets.csv")}
# The controls of a live call (they need a worker tracking it), every role included:
# tests/integration/test_recording_controls.py and test_call_controls*.py.
ELSEWHERE |= {(method, path.removeprefix(API)) for path, item in api_calls.PATHS.items() for method in item}


def test_the_matrix_covers_every_documented_route() -> None:
    documented = {(method, path.removeprefix(API)) for path, item in document()["paths"].items() for method in item}
    covered = {(method.lower(), path.partition("?")[0].replace("a1", "{agent_id}")
                .replace("call-{agent_id}", "{call_id}"))
               for method, path, _, _ in MATRIX}  # fmt: skip
    assert documented - ELSEWHERE == covered


@pytest.mark.parametrize(("method", "path", "body", "expected"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
@pytest.mark.parametrize("username", ROLES, ids=[r or "anonymous" for r in ROLES])
async def test_every_route_for_every_role(
    api: Client,
    queue: RedisCallQueue,
    store: SqlTicketStore,
    username: str | None,
    method: str,
    path: str,
    body: Any,
    expected: tuple[int, ...],
    tmp_path: Path,
) -> None:
    store.save_call(
        CallRecord(CallId("call-a1"), "13800138000", "12345", W1, datetime(2024, 5, 1, tzinfo=UTC),
                   Outcome.ANSWERED, agent_id=AgentId("a1"))
    )  # fmt: skip
    wav = tmp_path / "call-a1.wav"
    wav.write_bytes(b"RIFF")  # the matrix checks who may fetch it, not what it holds
    store.register_recording(CallId("call-a1"), str(wav), format="wav", bytes=4, seconds=0.0, sha256="0" * 64,
                             created_at=datetime(2024, 5, 1, tzinfo=UTC))  # fmt: skip
    agent = store.get_agent(AgentId("a1"))
    assert agent is not None
    await queue.agent_login(agent, 500)
    tok = None if username is None else await token(api, username)
    status = expected[ROLES.index(username)]
    reply = await call(api, method, f"{API}{path}", tok, status, **({} if body is None else {"json": body}))
    if status >= 400:
        assert reply["error"] == {401: "unauthorized", 403: "forbidden"}[status]
        assert reply["message"]
        if method == "POST" and path.startswith("/agents/"):
            assert (await queue.agent_status(AgentId("a1"))).state.value == "available"  # nothing changed


class TestWhatEachRoleSees:
    async def test_an_agent_lists_only_himself(self, api: Client) -> None:
        mine = await call(api, "GET", f"{API}/agents", await token(api, "agent2"), 200)
        assert [a["agent_id"] for a in mine["agents"]] == ["a2"]
        every = await call(api, "GET", f"{API}/agents", await token(api, "sup"), 200)
        assert [a["agent_id"] for a in every["agents"]] == ["a1", "a2"]

    async def test_an_agent_lists_only_his_calls(self, api: Client, store: SqlTicketStore) -> None:
        for n, agent in enumerate(["a1", "a2", "a1", None]):
            store.save_call(
                CallRecord(CallId(f"c{n}"), f"1380013800{n}", "12345", W1, datetime(2024, 5, 1, 8, n, tzinfo=UTC),
                           Outcome.ANSWERED if agent else Outcome.ABANDONED_IN_QUEUE,
                           agent_id=None if agent is None else AgentId(agent))
            )  # fmt: skip
        mine = await call(api, "GET", f"{API}/calls?limit=1", await token(api, "agent1"), 200)
        assert [c["call_id"] for c in mine["calls"]] == ["c2"]
        mine = await call(api, "GET", f"{API}/calls", await token(api, "agent1"), 200)
        assert [(c["call_id"], c["caller"]) for c in mine["calls"]] == [("c2", "13800138002"), ("c0", "13800138000")]
        every = await call(api, "GET", f"{API}/calls", await token(api, "admin"), 200)
        assert [c["call_id"] for c in every["calls"]] == ["c3", "c2", "c1", "c0"]

    async def test_the_queue_shows_callers_masked_to_every_role(self, api: Client, queue: RedisCallQueue) -> None:
        await queue.enqueue(CallId("c1"), W1, "13800138000", 600)
        await queue.enqueue(CallId("c2"), W1, "13900139000", 700)
        as_agent = await call(api, "GET", f"{API}/queue", await token(api, "agent1"), 200)
        assert [c["caller"] for c in as_agent["waiting"]] == ["138****8000", "139****9000"]
        as_sup = await call(api, "GET", f"{API}/queue", await token(api, "sup"), 200)
        assert [c["caller"] for c in as_sup["waiting"]] == ["138****8000", "139****9000"]

    async def test_a_supervisor_change_is_recorded_as_the_supervisor(self, api: Client, redis_url: str) -> None:
        await call(api, "POST", f"{API}/agents/a1/login", await token(api, "agent1"), 200)
        await call(api, "POST", f"{API}/agents/a1/state", await token(api, "sup"), 200,
                   json={"state": "paused", "reason": "培训"})  # fmt: skip
        client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        try:
            entries = await client.xrange(keys.events())
        finally:
            await client.aclose()
        changes = [json.loads(fields["data"]) for _, fields in entries if fields["type"] == "agent.state"]
        assert [(c["state"], c["by"]) for c in changes] == [("available", "agent"), ("paused", "supervisor")]


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("13800138000", "138****8000"),
        ("075512345678", "075****5678"),
        ("1234567", "123****4567"),
        ("110", "*10"),
        ("12", "**"),
        ("", "**"),
        ("sip:13800138000@example.cn", "sip:138****8000@example.cn"),
    ],
)
def test_mask_number(number: str, masked: str) -> None:
    assert mask_number(number) == masked
