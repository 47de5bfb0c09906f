"""Recordings through the agent desktop API: every playback leaves exactly one audit row (who,
when, why), refused requests leave none, and there is no other way to a file. Real redis-server,
real SQL store (SQLite), real WAV files."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.agent_desktop.app import make_app
from hotline.agent_desktop.auth import Auth, MemorySessions
from hotline.core.model import Agent, AgentId, CallId, CallRecord, Outcome, WorkerId, utcnow
from hotline.queue.acd import RedisCallQueue
from hotline.recordings.catalog import describe
from hotline.tickets.store import SqlTicketStore

API = "/api/v1"
PASSWORD = "密码-long-enough"
Client = TestClient[web.Request, web.Application]
ACCOUNTS = {"agent1": ("agent", "a1"), "agent2": ("agent", "a2"), "sup": ("supervisor", None), "admin": ("admin", None)}
STARTED = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def accounts_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database with the accounts, copied per test (argon2 hashing is slow on purpose)."""
    path = tmp_path_factory.mktemp("accounts") / "tickets.db"
    store = SqlTicketStore(f"sqlite:///{path}")
    store.add_agent(Agent(AgentId("a1"), "张伟", "1001"))
    store.add_agent(Agent(AgentId("a2"), "李娜", "1002"))
    for username, (role, agent) in ACCOUNTS.items():
        store.add_account(username, PASSWORD, role, None if agent is None else AgentId(agent))
    store.close()
    return path


def write_wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(range(256)) * 1000)  # 256 kB: more than one chunk
    return path


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "recordings" / "2026" / "05" / "01" / "call-a1.wav")


@pytest.fixture
def store(accounts_db: Path, tmp_path: Path, recording: Path) -> Iterator[SqlTicketStore]:
    path = tmp_path / "tickets.db"
    path.write_bytes(accounts_db.read_bytes())
    s = SqlTicketStore(f"sqlite:///{path}")
    s.save_call(CallRecord(CallId("call-a1"), "13800138000", "12345", WorkerId("w1"), STARTED, Outcome.ANSWERED,
                           agent_id=AgentId("a1"), recording_path=str(recording)))  # fmt: skip
    info = describe(recording)
    s.register_recording(CallId("call-a1"), str(recording), format=info.format, bytes=info.bytes,
                         seconds=info.seconds, sha256=info.sha256, created_at=STARTED)  # fmt: skip
    yield s
    s.close()


@pytest.fixture
async def api(redis_url: str, store: SqlTicketStore) -> AsyncIterator[Client]:
    client = redis.asyncio.Redis.from_url(redis_url)
    auth = Auth(store, MemorySessions(), session_ttl_s=3600)
    test_client = TestClient(TestServer(make_app(RedisCallQueue(client), store, auth=auth)))
    await test_client.start_server()
    yield test_client
    await test_client.close()
    await client.aclose()


async def token(api: Client, username: str) -> dict[str, str]:
    response = await api.post(f"{API}/login", json={"username": username, "password": PASSWORD})
    assert response.status == 200
    return {"Authorization": f"Bearer {(await response.json())['token']}"}


async def error(api: Client, path: str, headers: dict[str, str], status: int) -> str:
    response = await api.get(path, headers=headers)
    assert response.status == status, await response.text()
    body = await response.json()
    assert body["message"]
    return str(body["error"])


@pytest.mark.parametrize("username", ["sup", "admin", "agent1"])
async def test_every_playback_leaves_exactly_one_audit_row(
    api: Client, store: SqlTicketStore, recording: Path, username: str
) -> None:
    headers = await token(api, username)
    for n in range(1, 3):
        before = utcnow()
        response = await api.get(f"{API}/recordings/call-a1", params={"why": f"质检抽查 {n}"}, headers=headers)
        assert response.status == 200
        assert await response.read() == await asyncio.to_thread(recording.read_bytes)
        assert response.headers["Content-Type"] == "audio/wav"
        assert "no-store" in response.headers["Cache-Control"]
        assert "ETag" not in response.headers and "Last-Modified" not in response.headers
        assert response.headers["Content-Disposition"].startswith("inline")
        log = store.access_log(CallId("call-a1"))
        assert len(log) == n
        row = log[-1]
        role = ACCOUNTS[username][0]
        assert (row.who, row.role, row.action, row.why, row.client) == (
            username,
            role,
            "play",
            f"质检抽查 {n}",
            "127.0.0.1",
        )
        assert before <= row.at <= utcnow()


async def test_a_download_is_audited_as_one(api: Client, store: SqlTicketStore) -> None:
    response = await api.get(
        f"{API}/recordings/call-a1", params={"why": "法院调取", "action": "download"}, headers=await token(api, "admin")
    )
    assert response.status == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="call-a1.wav"'
    assert [(r.action, r.why) for r in store.access_log(CallId("call-a1"))] == [("download", "法院调取")]


async def test_refused_requests_leave_no_audit_row(api: Client, store: SqlTicketStore) -> None:
    path = f"{API}/recordings/call-a1?why=好奇"
    assert await error(api, path, {}, 401) == "unauthorized"
    assert await error(api, path, await token(api, "agent2"), 403) == "forbidden"  # not his call
    sup = await token(api, "sup")
    for no_reason in (
        f"{API}/recordings/call-a1",
        f"{API}/recordings/call-a1?why=",
        f"{API}/recordings/call-a1?why=%20",
    ):
        assert await error(api, no_reason, sup, 400) == "reason-required"
    assert await error(api, f"{path}&action=delete", sup, 400) == "invalid-request"
    assert await error(api, f"{API}/recordings/nope?why=x", sup, 404) == "no-such-recording"
    assert store.access_log(CallId("call-a1")) == []


async def test_purged_or_lost_recordings_are_404_and_not_audited(
    api: Client, store: SqlTicketStore, recording: Path
) -> None:
    sup = await token(api, "sup")
    await asyncio.to_thread(recording.unlink)
    assert await error(api, f"{API}/recordings/call-a1?why=质检", sup, 404) == "no-such-recording"
    store.mark_purged(CallId("call-a1"))
    assert await error(api, f"{API}/recordings/call-a1?why=质检", sup, 404) == "no-such-recording"
    assert store.access_log(CallId("call-a1")) == []


async def test_only_admins_read_the_access_log(api: Client) -> None:
    admin = await token(api, "admin")
    for why in ("质检", "投诉复核"):
        assert (await api.get(f"{API}/recordings/call-a1", params={"why": why}, headers=admin)).status == 200
    response = await api.get(f"{API}/recordings/call-a1/access", headers=admin)
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    assert body["call_id"] == "call-a1"
    assert [(r["who"], r["role"], r["action"], r["why"]) for r in body["access"]] == [
        ("admin", "admin", "play", "质检"),
        ("admin", "admin", "play", "投诉复核"),
    ]
    assert all(r["at"].endswith("+00:00") for r in body["access"])
    for username in ("sup", "agent1"):
        assert await error(api, f"{API}/recordings/call-a1/access", await token(api, username), 403) == "forbidden"
    assert await error(api, f"{API}/recordings/nope/access", admin, 404) == "no-such-recording"


async def test_there_is_no_file_route(api: Client, recording: Path) -> None:
    assert api.app is not None
    assert not [r for r in api.app.router.resources() if isinstance(r, web.StaticResource)]
    admin = await token(api, "admin")
    relative = recording.relative_to(recording.parents[4])
    for path in (f"/{relative}", f"/var/{relative}", f"{API}/{relative}", f"{API}/recordings/{relative}"):
        response = await api.get(path, headers=admin)
        assert response.status == 404, path
        assert response.content_type == "application/json"
