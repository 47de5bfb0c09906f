"""schemathesis against the OpenAPI document: every HTTP operation of the agent desktop API, with
generated inputs, against the real app (real redis-server, a SQLite store seeded with an agent, a
call record, a unit and a ticket), signed in as an admin, an agent and a unit account.

Checks, for every response: no 5xx, a status code the document lists for the operation, the
documented content type, and a JSON body that conforms to the documented schema. Each generated
case is sent as each role, and (when the operation has path parameters) a second time with the
seeded ids in the path, so the handlers behind the 404s see real records too.

Bounded: MAX_EXAMPLES cases per operation, no shrinking, no example database. Excluded: the
WebSocket route (/api/v1/ws: an upgrade, not an HTTP exchange; tests/integration/test_api_live.py
covers it). The app runs on 127.0.0.1 in a thread with its own event loop; schemathesis calls
it over HTTP (requests), as any client would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hotline.agent_desktop.api_calls import LIVE_CALLS
from hotline.agent_desktop.api_tickets import LIVE_CALLS as TICKET_LIVE_CALLS
from hotline.agent_desktop.api_tickets import TICKET_SETTINGS, TicketSettings
from hotline.agent_desktop.app import make_app
from hotline.agent_desktop.auth import Auth, Principal, principal_from_json, principal_json
from hotline.agent_desktop.openapi import API_PREFIX, document
from hotline.core.model import Agent, AgentId, CallId, CallRecord, Outcome, WorkerId
from hotline.queue.acd import RedisCallQueue
from hotline.queue.bus import RedisEventBus
from hotline.queue.sessions import RedisSessions
from hotline.tickets.model import Kind
from hotline.tickets.policy import load_policies
from hotline.tickets.records import NewTicket, TicketActor
from hotline.tickets.store import SqlTicketStore
from tests.support import RedisServer

MAX_EXAMPLES = 20
PASSWORD = "密码-long-enough"
POLICIES = load_policies(Path(__file__).resolve().parents[2] / "config" / "policy")
UNIT = "区住建局"
CALLER = "13912345678"
CALL_ID = "call-1"
PRINCIPALS = {
    "admin": Principal("admin", "admin"),
    "agent1": Principal("agent1", "agent", AgentId("a1")),
    "zhujian": Principal("zhujian", "unit", unit=UNIT),
}
ROLES = tuple(PRINCIPALS)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

SCHEMA = schemathesis.openapi.from_dict(document()).exclude(path=f"{API_PREFIX}/ws")


@dataclasses.dataclass
class Served:
    base_url: str
    ids: dict[str, str]  # path parameter -> the seeded record's id
    loop: asyncio.AbstractEventLoop
    sessions: RedisSessions
    tokens: dict[str, str] = dataclasses.field(default_factory=dict)

    def sign_in(self, username: str) -> str:
        response = requests.post(
            f"{self.base_url}{API_PREFIX}/login", json={"username": username, "password": PASSWORD}, timeout=30
        )
        assert response.status_code == 200, response.text
        assert response.json()["account"] == PRINCIPALS[username].to_dict()
        return str(response.json()["token"])

    def another_session(self, username: str) -> str:
        """A new session for the account without signing in (argon2 is slow on purpose)."""
        made = self.sessions.create(PRINCIPALS[username], 3600)
        return asyncio.run_coroutine_threadsafe(made, self.loop).result(10)


def _seed(path: Path) -> str:
    """The store's records; the ticket's number."""
    store = SqlTicketStore(f"sqlite:///{path}", policies=POLICIES.values())
    try:
        now = datetime.now(UTC)
        store.add_agent(Agent(AgentId("a1"), "张伟", "1001"))
        store.add_unit(UNIT)
        store.add_account("admin", PASSWORD, "admin")
        store.add_account("agent1", PASSWORD, "agent", AgentId("a1"))
        store.add_account("zhujian", PASSWORD, "unit", unit=UNIT)
        store.save_call(
            CallRecord(CallId(CALL_ID), CALLER, "12345", WorkerId("w1"), now - timedelta(minutes=5),
                       Outcome.ANSWERED, agent_id=AgentId("a1"))
        )  # fmt: skip
        ticket = store.create_ticket(
            NewTicket(
                caller=CALLER,
                kind=Kind.COMPLAINT,
                content="小区夜间施工噪音扰民",
                caller_name="张三",
                transcript="喂，我们小区晚上施工太吵了",
                place="淄博市张店区华光路88号",
                lead_unit=UNIT,
                call_id=CallId(CALL_ID),
            ),
            TicketActor("a1"),
            now,
            POLICIES["zibo"],
        )
        return ticket.number
    finally:
        store.close()


@pytest.fixture(scope="module")
def served(redis_session: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app as `hotline control` wires it (sessions in Redis), on 127.0.0.1 in its own loop."""
    path = tmp_path_factory.mktemp("schemathesis") / "tickets.db"
    number = _seed(path)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="api-under-test", daemon=True)
    thread.start()

    async def start() -> tuple[web.AppRunner, redis.asyncio.Redis, SqlTicketStore, RedisSessions, str]:
        client = redis.asyncio.Redis.from_url(redis_session.url)
        await client.flushdb()
        store = SqlTicketStore(f"sqlite:///{path}", policies=POLICIES.values())
        bus = RedisEventBus(client)
        sessions = RedisSessions(client, principal_json, principal_from_json)
        app = make_app(RedisCallQueue(client), store, auth=Auth(store, sessions), workers=bus)
        app[LIVE_CALLS] = bus
        app[TICKET_SETTINGS] = TicketSettings(policy="zibo")
        app[TICKET_LIVE_CALLS] = bus
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return runner, client, store, sessions, f"http://{host}:{port}"

    async def stop(runner: web.AppRunner, client: redis.asyncio.Redis, store: SqlTicketStore) -> None:
        await runner.cleanup()
        await client.aclose()
        store.close()

    runner, client, store, sessions, base_url = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        up = Served(base_url, {"agent_id": "a1", "call_id": CALL_ID, "number": number}, loop, sessions)
        up.tokens = {username: up.sign_in(username) for username in ROLES}
        yield up
    finally:
        asyncio.run_coroutine_threadsafe(stop(runner, client, store), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _send(case: schemathesis.Case, served: Served, username: str, session: requests.Session) -> None:
    if case.operation.definition.raw.get("operationId") == "logout":
        token = served.another_session(username)  # signing out must not end the one the others use
    else:
        token = served.tokens[username]
    case.call_and_validate(
        base_url=served.base_url, session=session, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
    )


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_the_seeded_records_are_reachable(served: Served, http: requests.Session) -> None:
    """The seeded variant of each case reaches real records (not only 404s). Runs first: the
    generated cases change the records (a ticket is reassigned, an agent logs in)."""
    number = served.ids["number"]
    for username, path in (
        ("admin", f"/tickets/{number}"),
        ("admin", f"/calls/{CALL_ID}"),
        ("agent1", "/agents/a1"),
        ("agent1", f"/calls/{CALL_ID}/context"),
        ("zhujian", f"/unit/tickets/{number}"),
    ):
        response = http.get(
            f"{served.base_url}{API_PREFIX}{path}", headers={"Authorization": f"Bearer {served.tokens[username]}"}
        )
        assert response.status_code == 200, (username, path, response.text)


@SCHEMA.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    phases=[Phase.explicit, Phase.generate],
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case: schemathesis.Case, served: Served, http: requests.Session) -> None:
    for username in ROLES:
        _send(case, served, username, http)
    seeded: dict[str, Any] = {name: served.ids[name] for name in case.path_parameters or {} if name in served.ids}
    if seeded:
        case.path_parameters = {**(case.path_parameters or {}), **seeded}
        for username in ROLES:
            _send(case, served, username, http)
