"""The SessionStore port: RedisSessions against a real redis-server and MemorySessions, the same
contract; then two agent desktop apps (two control processes) sharing one Redis."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.agent_desktop.app import make_app
from hotline.agent_desktop.auth import (
    Auth,
    MemorySessions,
    Principal,
    SessionStore,
    principal_from_json,
    principal_json,
)
from hotline.core.errors import InvalidRequest
from hotline.core.model import Agent, AgentId
from hotline.queue.acd import RedisCallQueue
from hotline.queue.sessions import RedisSessions, session_key
from hotline.tickets.store import SqlTicketStore
from tests.support import until_async

API = "/api/v1"
PASSWORD = "密码-long-enough"
PREFIX = "sess-test"
Client = TestClient[web.Request, web.Application]

PRINCIPALS = [
    Principal("agent1", "agent", AgentId("a1")),
    Principal("sup", "supervisor"),
    Principal("zhujian", "unit", unit="市住建局"),
    Principal("", "admin", open=True),
]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestSessionStore:
    """The contract every SessionStore keeps (see hotline.agent_desktop.auth)."""

    @pytest.fixture(params=["redis", "memory"])
    async def store_and_clock(
        self, request: pytest.FixtureRequest, client: redis.asyncio.Redis
    ) -> AsyncIterator[tuple[SessionStore, FakeClock | None]]:
        if request.param == "redis":
            yield RedisSessions(client, principal_json, principal_from_json, prefix=PREFIX), None
        else:
            clock = FakeClock()
            yield MemorySessions(clock), clock

    @pytest.mark.parametrize("who", PRINCIPALS, ids=lambda p: p.role + ("-open" if p.open else ""))
    async def test_a_principal_round_trips_every_field(
        self, store_and_clock: tuple[SessionStore, FakeClock | None], who: Principal
    ) -> None:
        sessions, _ = store_and_clock
        token = await sessions.create(who, 3600)
        assert await sessions.get(token) == who

    async def test_tokens_are_distinct_and_unknown_ones_are_none(
        self, store_and_clock: tuple[SessionStore, FakeClock | None]
    ) -> None:
        sessions, _ = store_and_clock
        first = await sessions.create(PRINCIPALS[0], 3600)
        second = await sessions.create(PRINCIPALS[0], 3600)
        assert first != second and len(first) >= 40
        assert await sessions.get("forged") is None
        assert await sessions.get(first[:-1]) is None

    async def test_delete_ends_one_session_and_is_idempotent(
        self, store_and_clock: tuple[SessionStore, FakeClock | None]
    ) -> None:
        sessions, _ = store_and_clock
        gone = await sessions.create(PRINCIPALS[1], 3600)
        kept = await sessions.create(PRINCIPALS[1], 3600)
        await sessions.delete(gone)
        await sessions.delete(gone)
        await sessions.delete("never-existed")
        assert await sessions.get(gone) is None
        assert await sessions.get(kept) == PRINCIPALS[1]

    async def test_a_session_expires(self, store_and_clock: tuple[SessionStore, FakeClock | None]) -> None:
        sessions, clock = store_and_clock
        short = await sessions.create(PRINCIPALS[0], 0.2)
        long = await sessions.create(PRINCIPALS[0], 3600)
        assert await sessions.get(short) == PRINCIPALS[0]
        if clock is not None:
            clock.now += 0.2
        else:  # Redis's own clock expires the key: poll, never a bare sleep

            async def expired() -> bool:
                return await sessions.get(short) is None

            await until_async(expired, timeout=5)
        assert await sessions.get(short) is None
        assert await sessions.get(long) == PRINCIPALS[0]


class TestRedisSessionsStorage:
    async def test_only_the_digest_is_stored_with_a_ttl(self, client: redis.asyncio.Redis) -> None:
        sessions = RedisSessions(client, principal_json, principal_from_json, prefix=PREFIX)
        token = await sessions.create(PRINCIPALS[2], 600)
        stored = [k.decode() for k in await client.keys("*")]
        digest = hashlib.sha256(token.encode()).hexdigest()
        assert stored == [session_key(digest, PREFIX)] == [f"{PREFIX}:session:{digest}"]
        assert all(token not in k for k in stored)
        value = await client.get(stored[0])
        assert value is not None and token.encode() not in value
        assert 0 < await client.pttl(stored[0]) <= 600_000

    async def test_a_malformed_entry_is_no_session(self, client: redis.asyncio.Redis) -> None:
        sessions = RedisSessions(client, principal_json, principal_from_json, prefix=PREFIX)
        token = await sessions.create(PRINCIPALS[0], 600)
        key = session_key(hashlib.sha256(token.encode()).hexdigest(), PREFIX)
        for bad in (b"not json", b"[]", b'{"username": 1, "role": "agent"}', b"\xff"):
            await client.set(key, bad)
            assert await sessions.get(token) is None

    async def test_bad_prefix_and_ttl_are_refused(self, client: redis.asyncio.Redis) -> None:
        with pytest.raises(InvalidRequest):
            RedisSessions(client, principal_json, principal_from_json, prefix="has space")
        with pytest.raises(InvalidRequest):
            await RedisSessions(client, principal_json, principal_from_json, prefix=PREFIX).create(PRINCIPALS[0], 0)


# --- two control processes sharing one Redis ------------------------------------------------


@pytest.fixture(scope="module")
def accounts_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sessions") / "tickets.db"
    store = SqlTicketStore(f"sqlite:///{path}")
    store.add_agent(Agent(AgentId("a1"), "张伟", "1001"))
    store.add_unit("市住建局")
    store.add_account("agent1", PASSWORD, "agent", AgentId("a1"))
    store.add_account("zhujian", PASSWORD, "unit", unit="市住建局")
    store.close()
    return path


@pytest.fixture
def db_url(accounts_db: Path, tmp_path: Path) -> str:
    path = tmp_path / "tickets.db"
    path.write_bytes(accounts_db.read_bytes())
    return f"sqlite:///{path}"


@pytest.fixture
def stores(db_url: str) -> Iterator[tuple[SqlTicketStore, SqlTicketStore]]:
    one, two = SqlTicketStore(db_url), SqlTicketStore(db_url)
    yield one, two
    one.close()
    two.close()


async def _control(redis_url: str, store: SqlTicketStore, ttl_s: float) -> tuple[Client, redis.asyncio.Redis]:
    """One control process's API: its own Redis client, the shared sessions."""
    client = redis.asyncio.Redis.from_url(redis_url)
    auth = Auth(store, RedisSessions(client, principal_json, principal_from_json, prefix=PREFIX), session_ttl_s=ttl_s)
    api = TestClient(TestServer(make_app(RedisCallQueue(client), store, auth=auth)))
    await api.start_server()
    return api, client


@pytest.fixture
async def two_controls(
    redis_url: str, stores: tuple[SqlTicketStore, SqlTicketStore], request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Client, Client]]:
    ttl_s = getattr(request, "param", 3600.0)
    one, c1 = await _control(redis_url, stores[0], ttl_s)
    two, c2 = await _control(redis_url, stores[1], ttl_s)
    yield one, two
    for api, client in ((one, c1), (two, c2)):
        await api.close()
        await client.aclose()


async def _sign_in(api: Client, username: str) -> dict[str, str]:
    response = await api.post(f"{API}/login", json={"username": username, "password": PASSWORD})
    assert response.status == 200
    return {"Authorization": f"Bearer {(await response.json())['token']}"}


async def test_a_token_from_one_process_works_on_the_other(two_controls: tuple[Client, Client]) -> None:
    one, two = two_controls
    for username, expected in (
        ("agent1", {"username": "agent1", "role": "agent", "agent_id": "a1"}),
        ("zhujian", {"username": "zhujian", "role": "unit", "agent_id": None, "unit": "市住建局"}),
    ):
        bearer = await _sign_in(one, username)
        for api in (one, two):
            response = await api.get(f"{API}/me", headers=bearer)
            assert response.status == 200
            assert await response.json() == expected
    # the unit account's allow-list holds on the other process too: its principal kept the role
    response = await two.get(f"{API}/agents", headers=await _sign_in(one, "zhujian"))
    assert response.status == 403


async def test_signing_out_on_one_ends_the_session_on_both(two_controls: tuple[Client, Client]) -> None:
    one, two = two_controls
    bearer = await _sign_in(one, "agent1")
    other = await _sign_in(two, "agent1")
    assert (await two.post(f"{API}/logout", headers=bearer)).status == 200
    for api in (one, two):
        response = await api.get(f"{API}/me", headers=bearer)
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"
        assert (await api.get(f"{API}/me", headers=other)).status == 200  # his other session lives on


@pytest.mark.parametrize("two_controls", [0.5], indirect=True)
async def test_a_session_expires_on_both(two_controls: tuple[Client, Client]) -> None:
    one, two = two_controls
    bearer = await _sign_in(one, "agent1")
    assert (await two.get(f"{API}/me", headers=bearer)).status == 200

    async def refused_on_both() -> bool:
        return all([(await api.get(f"{API}/me", headers=bearer)).status == 401 for api in (one, two)])

    await until_async(refused_on_both, timeout=5)
