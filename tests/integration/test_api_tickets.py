"""The hotline's 工单 routes of the agent desktop API (api_tickets.py) and the personal-data audit
of every unmasked read (privacy.py): every route for every role, refused ones included, the
audit rows each leaves, wrap-ups of recorded and of live calls, repeats, lifecycle actions.
Real redis-server, real SQL store (SQLite), a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
import sqlalchemy
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.agent_desktop.api_tickets import LIVE_CALLS, TICKET_SETTINGS, TicketSettings, mask_name
from hotline.agent_desktop.app import make_app
from hotline.agent_desktop.auth import Auth, MemorySessions
from hotline.agent_desktop.openapi import document
from hotline.core.model import Agent, AgentId, CallId, CallRecord, Outcome, WorkerId
from hotline.queue.acd import RedisCallQueue
from hotline.queue.bus import RedisEventBus
from hotline.tickets.policy import load_policies
from hotline.tickets.store import SqlTicketStore
from hotline.tickets.workdays import SHANGHAI

API = "/api/v1"
PASSWORD = "密码-long-enough"
W1 = WorkerId("w1")
Client = TestClient[web.Request, web.Application]
ACCOUNTS = {"agent1": ("agent", "a1"), "agent2": ("agent", "a2"), "sup": ("supervisor", None), "admin": ("admin", None)}
ROLES = (None, "agent1", "agent2", "sup", "admin")
ZIBO = load_policies(Path(__file__).resolve().parents[2] / "config" / "policy")["zibo"]
NOW = datetime(2025, 10, 13, 10, 0, tzinfo=SHANGHAI)
NOW_MS = int(NOW.timestamp() * 1000)
STARTED = datetime(2025, 10, 13, 1, 30, tzinfo=UTC)
A1_CALLER, A2_CALLER, LIVE_CALLER = "13800138000", "13900139000", "13700137000"
WRAP_UP = {"kind": "complaint", "content": "小区夜间施工噪音扰民", "place": "张店区华光路88号", "caller_name": "王女士"}


@pytest.fixture(scope="module")
def accounts_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database with the accounts, copied per test (argon2 hashing is slow on purpose)."""
    path = tmp_path_factory.mktemp("accounts") / "tickets.db"
    store = SqlTicketStore(f"sqlite:///{path}")
    store.add_agent(Agent(AgentId("a1"), "张伟", "1001", "sip:1001@127.0.0.1:5070"))
    store.add_agent(Agent(AgentId("a2"), "李娜", "1002", "sip:1002@127.0.0.1:5070"))
    for username, (role, agent) in ACCOUNTS.items():
        store.add_account(username, PASSWORD, role, None if agent is None else AgentId(agent))
    store.close()
    return path


def record(call_id: str, caller: str, agent: str) -> CallRecord:
    return CallRecord(CallId(call_id), caller, "12345", W1, STARTED, Outcome.ANSWERED, agent_id=AgentId(agent))


@pytest.fixture
def db_path(accounts_db: Path, tmp_path: Path) -> Path:
    path = tmp_path / "tickets.db"
    path.write_bytes(accounts_db.read_bytes())
    return path


@pytest.fixture
def store(db_path: Path) -> Iterator[SqlTicketStore]:
    s = SqlTicketStore(f"sqlite:///{db_path}", policies=[ZIBO])
    for call_id, caller, agent in [
        ("call-a1", A1_CALLER, "a1"),
        ("call-a1b", A1_CALLER, "a1"),
        ("call-a2", A2_CALLER, "a2"),
    ]:
        s.save_call(record(call_id, caller, agent))
    yield s
    s.close()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def queue(redis_client: redis.asyncio.Redis) -> RedisCallQueue:
    return RedisCallQueue(redis_client)


@pytest.fixture
def bus(redis_client: redis.asyncio.Redis) -> RedisEventBus:
    return RedisEventBus(redis_client)


@pytest.fixture
async def api(queue: RedisCallQueue, bus: RedisEventBus, store: SqlTicketStore) -> AsyncIterator[Client]:
    auth = Auth(store, MemorySessions(), session_ttl_s=3600)
    app = make_app(queue, store, auth=auth, clock_ms=lambda: NOW_MS)
    app[TICKET_SETTINGS] = TicketSettings(policy="zibo")
    app[LIVE_CALLS] = bus
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def token(api: Client, username: str) -> str:
    response = await api.post(f"{API}/login", json={"username": username, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return str((await response.json())["token"])


async def call(api: Client, method: str, path: str, tok: str | None, status: int, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    response = await api.request(method, f"{API}{path}", headers=headers, **kwargs)
    assert response.status == status, f"{method} {path}: {response.status} {await response.text()}"
    assert response.content_type == "application/json"
    return await response.json()


def audit_rows(db_path: Path) -> list[tuple[str, str, str, str, str]]:
    """(who, role, subject_type, subject, fields) of every audit row, oldest first."""
    engine = sqlalchemy.create_engine(f"sqlite:///{db_path}", poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sqlalchemy.text("SELECT who, role, subject_type, subject, fields FROM personal_data_access ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def wrap_up(store: SqlTicketStore, call_id: str, caller: str, agent: str, **changes: Any) -> str:
    result = store.accept_call(CallId(call_id), caller, {**WRAP_UP, **changes}, (agent, "agent"), NOW, "zibo", {})
    return str(result["ticket"]["number"])


# (method, path, body, status per role, audit rows per role) for ROLES: none, agent1 (a1),
# agent2 (a2), sup, admin. Before each request, call-a1 (a1's) and call-a2 (a2's) are wrapped up
# into {a1} and {a2}; call-a1b (a1's) is not.
MATRIX: list[tuple[str, str, Any, tuple[int, ...], tuple[int, ...]]] = [
    ("POST", "/calls/call-a1b/ticket", WRAP_UP, (401, 201, 403, 201, 201), (0, 1, 0, 1, 1)),
    ("GET", "/calls/call-a1b/context", None, (401, 200, 403, 200, 200), (0, 1, 0, 1, 1)),
    ("GET", "/tickets", None, (401, 200, 200, 200, 200), (0, 1, 1, 2, 2)),
    ("GET", "/tickets/{a1}", None, (401, 200, 200, 200, 200), (0, 1, 0, 1, 1)),
    ("POST", "/tickets/{a1}/events", {"action": "dispatch", "lead_unit": "区住建局", "version": 1},
     (401, 403, 403, 200, 200), (0, 0, 0, 1, 1)),
    ("GET", "/tickets/{a1}/access", None, (401, 403, 403, 403, 200), (0, 0, 0, 0, 0)),
    ("GET", "/calls", None, (401, 200, 200, 200, 200), (0, 2, 1, 3, 3)),
    ("GET", "/calls/call-a1", None, (401, 200, 403, 200, 200), (0, 1, 0, 1, 1)),
]  # fmt: skip
MINE = {"acceptCall", "callContext", "listTickets", "getTicket", "ticketAction", "ticketAccess"}


def test_the_matrix_covers_this_parts_routes() -> None:
    operations = {op["operationId"]: (method, path) for path, item in document()["paths"].items()
                  for method, op in item.items()}  # fmt: skip
    covered = {(m.lower(), API + p.replace("{a1}", "{number}").replace("call-a1b", "{call_id}")
                .replace("call-a1", "{call_id}")) for m, p, *_ in MATRIX}  # fmt: skip
    assert {operations[name] for name in MINE} <= covered


@pytest.mark.parametrize(
    ("method", "path", "body", "expected", "audited"), MATRIX, ids=[f"{m} {p}" for m, p, *_ in MATRIX]
)
@pytest.mark.parametrize("username", ROLES, ids=[r or "anonymous" for r in ROLES])
async def test_every_route_for_every_role(
    api: Client,
    store: SqlTicketStore,
    db_path: Path,
    username: str | None,
    method: str,
    path: str,
    body: Any,
    expected: tuple[int, ...],
    audited: tuple[int, ...],
) -> None:
    numbers = {"a1": wrap_up(store, "call-a1", A1_CALLER, "a1"),
               "a2": wrap_up(store, "call-a2", A2_CALLER, "a2", content="路灯坏了", kind="help")}  # fmt: skip
    tok = None if username is None else await token(api, username)
    status = expected[ROLES.index(username)]
    before = len(audit_rows(db_path))
    reply = await call(api, method, path.format(**numbers), tok, status, **({} if body is None else {"json": body}))
    assert len(audit_rows(db_path)) - before == audited[ROLES.index(username)]
    if status >= 400:
        assert reply["error"] == {401: "unauthorized", 403: "forbidden"}[status]
        assert store.intake_ticket_number(CallId("call-a1b")) is None  # nothing was made
        ticket = store.get_ticket(numbers["a1"])
        assert ticket is not None and ticket.version == 1  # nothing changed


class TestWrapUp:
    async def test_a_wrap_up_is_idempotent_per_call(self, api: Client, store: SqlTicketStore) -> None:
        store.save_call_draft(CallId("call-a1"), "喂，我们小区晚上施工太吵了", {}, "whisper")
        tok = await token(api, "agent1")
        body = {**WRAP_UP, "lead_unit": "区住建局", "assisting_units": ["区城管局"], "consent_disclose": True}
        first = await call(api, "POST", "/calls/call-a1/ticket", tok, 201, json=body)
        ticket = first["ticket"]
        assert first["created"] is True
        assert (ticket["caller"], ticket["caller_name"], ticket["owner"]) == (A1_CALLER, "王女士", "a1")
        assert (ticket["stage"], ticket["lead_unit"], ticket["light"]) == ("dispatched", "区住建局", "none")
        assert ticket["deadline"] and ticket["number"].startswith("251013")
        assert ticket["transcript"] == "喂，我们小区晚上施工太吵了"
        assert ticket["consent"] == {"recording": True, "callback": True, "disclose": True}
        assert ticket["timeline"][0]["actor"] == "a1" and ticket["timeline"][0]["actor_role"] == "agent"
        again = await call(api, "POST", "/calls/call-a1/ticket", await token(api, "sup"), 200, json=WRAP_UP)
        assert again["created"] is False and again["ticket"]["number"] == ticket["number"]

    async def test_a_repeat_is_linked_at_once(self, api: Client, store: SqlTicketStore) -> None:
        first = wrap_up(store, "call-a1", A1_CALLER, "a1")
        tok = await token(api, "agent1")
        draft = {"kind": {"value": "投诉"}, "place": {"label": "张店区华光路"}, "summary": {"text": "施工噪音扰民"}}
        store.save_call_draft(CallId("call-a1b"), "我们小区晚上施工噪音扰民", draft, "whisper")
        context = await call(api, "GET", "/calls/call-a1b/context", tok, 200)
        assert context["matter"] == {"kind": "complaint", "place": "张店区华光路", "content": "施工噪音扰民"}
        assert (context["caller"], context["live"], context["ticket"]) == (A1_CALLER, False, None)
        assert [h["number"] for h in context["history"]] == [first]
        assert [(c["number"], c["relation"], c["same_matter"]) for c in context["candidates"]] == [
            (first, "repeat", True)
        ]
        typed = await call(api, "GET", "/calls/call-a1b/context?kind=help&content=路灯坏了", tok, 200)
        assert [(c["number"], c["same_matter"]) for c in typed["candidates"]] == [(first, False)]
        await call(api, "GET", "/calls/call-a1b/context?kind=gossip", tok, 400)
        second = await call(api, "POST", "/calls/call-a1b/ticket", tok, 201, json=WRAP_UP)
        assert [(link["number"], link["relation"]) for link in second["links"]] == [(first, "repeat")]
        assert second["same_matter"] == first
        after = await call(api, "GET", "/calls/call-a1b/context", tok, 200)
        assert after["ticket"] == second["ticket"]["number"]
        assert [h["number"] for h in after["history"]] == [first]  # the call's own ticket is not history
        earlier = store.get_ticket(first)
        assert earlier is not None and earlier.ticket.reports == 2

    async def test_a_live_call_takes_its_caller_from_the_queue_and_the_workers(
        self, api: Client, store: SqlTicketStore, queue: RedisCallQueue, bus: RedisEventBus, db_path: Path
    ) -> None:
        sup = await token(api, "sup")
        await queue.enqueue(CallId("live-wait"), W1, LIVE_CALLER, NOW_MS - 5_000)
        waiting = await call(api, "GET", "/calls/live-wait/context", sup, 200)
        assert (waiting["caller"], waiting["live"], waiting["agent_id"]) == (LIVE_CALLER, True, None)
        await call(api, "GET", "/calls/live-wait/context", await token(api, "agent1"), 403)  # nobody's call yet
        # Offered to a1 and answered: the queue forgets the caller, the worker's live calls know him.
        agent = store.get_agent(AgentId("a1"))
        assert agent is not None
        await queue.agent_login(agent, NOW_MS - 4_000)
        offer = await queue.dispatch_once(NOW_MS - 3_000, lease_ms=20_000)
        assert offer is not None and offer.call_id == "live-wait"
        assert await queue.offer_answered(offer.offer_id, NOW_MS - 2_000)
        await call(api, "POST", "/calls/live-wait/ticket", sup, 404, json=WRAP_UP)  # no worker tracks it
        await bus.heartbeat(W1, 60_000, {"calls": 1})
        await bus.track_call(W1, CallId("live-wait"), {"call_id": "live-wait", "caller": LIVE_CALLER})
        await call(api, "POST", "/calls/live-wait/ticket", await token(api, "agent2"), 403, json=WRAP_UP)
        made = await call(api, "POST", "/calls/live-wait/ticket", await token(api, "agent1"), 201, json=WRAP_UP)
        assert (made["ticket"]["caller"], made["ticket"]["owner"]) == (LIVE_CALLER, "a1")
        assert audit_rows(db_path)[-1] == ("agent1", "agent", "ticket", made["ticket"]["number"], "caller,caller_name")

    async def test_unknown_calls_are_404(self, api: Client) -> None:
        sup = await token(api, "sup")
        assert (await call(api, "POST", "/calls/nope/ticket", sup, 404, json=WRAP_UP))["error"] == "no-such-call"
        assert (await call(api, "GET", "/calls/nope/context", sup, 404))["error"] == "no-such-call"

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"kind": "gossip", "content": "x"},
            {"kind": "complaint"},
            {"kind": "complaint", "content": "  "},
            {**WRAP_UP, "emergency": "yes"},
            {**WRAP_UP, "assisting_units": "区城管局"},
            {**WRAP_UP, "caller": "110"},  # the caller's number comes from the call, never the form
        ],
    )
    async def test_malformed_wrap_ups_are_400_and_make_nothing(
        self, api: Client, store: SqlTicketStore, body: dict[str, Any]
    ) -> None:
        reply = await call(api, "POST", "/calls/call-a1/ticket", await token(api, "agent1"), 400, json=body)
        assert reply["error"] == "invalid-request"
        assert store.intake_ticket_number(CallId("call-a1")) is None

    async def test_an_unknown_related_ticket_is_404(self, api: Client) -> None:
        body = {**WRAP_UP, "related_ticket": "25101399999"}
        reply = await call(api, "POST", "/calls/call-a1/ticket", await token(api, "sup"), 404, json=body)
        assert reply["error"] == "no-such-ticket"


class TestReading:
    async def test_an_agent_sees_other_callers_masked_and_unaudited(
        self, api: Client, store: SqlTicketStore, db_path: Path
    ) -> None:
        number = wrap_up(store, "call-a1", A1_CALLER, "a1")
        store.save_call_draft(CallId("call-a1"), "我的电话是13800138000", {"phones": [{"value": A1_CALLER}]}, "w")
        seen = await call(api, "GET", f"/tickets/{number}", await token(api, "agent2"), 200)
        assert (seen["caller"], seen["caller_name"]) == ("138****8000", "王**")
        assert [c["record"]["caller"] for c in seen["calls"]] == ["138****8000"]
        assert seen["intake_draft"]["draft"]["phones"] == [{"value": "138****8000"}]
        listed = await call(api, "GET", "/tickets", await token(api, "agent2"), 200)
        assert [(t["caller"], t["caller_name"]) for t in listed["tickets"]] == [("138****8000", "王**")]
        assert audit_rows(db_path) == []
        whole = await call(api, "GET", f"/tickets/{number}", await token(api, "agent1"), 200)
        assert (whole["caller"], whole["caller_name"]) == (A1_CALLER, "王女士")
        assert audit_rows(db_path) == [("agent1", "agent", "ticket", number, "caller,caller_name")]

    async def test_lists_filter_and_refuse_unknown_filters(self, api: Client, store: SqlTicketStore) -> None:
        a1 = wrap_up(store, "call-a1", A1_CALLER, "a1", lead_unit="区住建局")
        a2 = wrap_up(store, "call-a2", A2_CALLER, "a2", kind="help", content="路灯坏了", place="人民路")
        sup = await token(api, "sup")

        async def numbers(query: str) -> list[str]:
            return [t["number"] for t in (await call(api, "GET", f"/tickets?{query}", sup, 200))["tickets"]]

        assert await numbers("") == [a2, a1]
        assert await numbers("state=dispatched") == [a1]
        assert await numbers("stage=accept&kind=help") == [a2]
        assert await numbers("unit=区住建局&light=none") == [a1]
        assert await numbers("limit=1") == [a2]
        for query in ("state=lost", "stage=x", "light=blue", "kind=gossip", "limit=0", "limit=x", "colour=red"):
            assert (await call(api, "GET", f"/tickets?{query}", sup, 400))["error"] == "invalid-request"

    async def test_the_access_log_lists_the_tickets_and_its_calls_reads(
        self, api: Client, store: SqlTicketStore
    ) -> None:
        number = wrap_up(store, "call-a1", A1_CALLER, "a1")
        await call(api, "GET", f"/tickets/{number}", await token(api, "sup"), 200)
        await call(api, "GET", "/calls/call-a1", await token(api, "agent1"), 200)
        await call(api, "GET", "/calls/call-a2", await token(api, "sup"), 200)  # another call: not listed
        log = await call(api, "GET", f"/tickets/{number}/access", await token(api, "admin"), 200)
        assert [
            (r["who"], r["role"], r["subject_type"], r["subject"], r["fields"], r["route"]) for r in log["access"]
        ] == [
            ("sup", "supervisor", "ticket", number, ["caller", "caller_name"], "GET /api/v1/tickets/{number}"),
            ("agent1", "agent", "call", "call-a1", ["caller"], "GET /api/v1/calls/{call_id}"),
        ]
        assert all(r["client"] == "127.0.0.1" for r in log["access"])
        assert (await call(api, "GET", "/tickets/25101399999/access", await token(api, "admin"), 404))[
            "error"
        ] == "no-such-ticket"
        assert (await call(api, "GET", "/tickets/25101399999", await token(api, "sup"), 404))[
            "error"
        ] == "no-such-ticket"


class TestActions:
    async def test_versions_states_and_fields_are_checked(self, api: Client, store: SqlTicketStore) -> None:
        number = wrap_up(store, "call-a1", A1_CALLER, "a1")
        sup = await token(api, "sup")
        path = f"/tickets/{number}/events"
        stale = await call(api, "POST", path, sup, 409, json={"action": "dispatch", "lead_unit": "U", "version": 9})
        assert stale["error"] == "stale-ticket"
        illegal = await call(api, "POST", path, sup, 409, json={"action": "approve_extension", "version": 1})
        assert illegal["error"] == "illegal-transition"
        for body in (
            {"action": "dispatch", "lead_unit": "U"},  # no version
            {"action": "dispatch", "version": 1},  # no lead unit
            {"action": "dispatch", "lead_unit": "U", "version": 1, "reason": "r"},  # not a dispatch field
            {"action": "acknowledge", "version": 1},  # the unit's, not the hotline's
            {"action": "callback", "process": 4, "result": 1, "version": 1},
            {"action": "supervise", "reason": 5, "version": 1},
        ):
            assert (await call(api, "POST", path, sup, 400, json=body))["error"] == "invalid-request"
        done = await call(api, "POST", path, sup, 200, json={"action": "dispatch", "lead_unit": "U", "version": 1})
        assert (done["stage"], done["lead_unit"], done["version"]) == ("dispatched", "U", 2)
        supervised = await call(api, "POST", path, await token(api, "admin"), 200,
                                json={"action": "supervise", "reason": "领导批示", "version": 2})  # fmt: skip
        assert supervised["timeline"][-1]["action"] == "supervision_manual"
        assert supervised["timeline"][-1]["actor"] == "admin"


def test_mask_name() -> None:
    assert (mask_name("王女士"), mask_name("王"), mask_name(""), mask_name(None)) == ("王**", "王*", "", None)


async def test_with_sign_in_off_reads_are_audited_as_anonymous(
    queue: RedisCallQueue, store: SqlTicketStore, db_path: Path
) -> None:
    app = make_app(queue, store, auth=None, clock_ms=lambda: NOW_MS)
    app[TICKET_SETTINGS] = TicketSettings(policy="zibo")
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        made = await call(client, "POST", "/calls/call-a1/ticket", None, 201, json=WRAP_UP)
        assert made["ticket"]["timeline"][0]["actor"] == "api"
    finally:
        await client.close()
    assert audit_rows(db_path) == [
        ("anonymous (api.auth off)", "admin", "ticket", made["ticket"]["number"], "caller,caller_name")
    ]
