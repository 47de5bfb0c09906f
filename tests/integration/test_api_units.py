"""The units' side of the API (/api/v1/unit/..., hotline/agent_desktop/api_units.py) with unit
accounts, against the real RedisCallQueue (real redis-server) and a SQLite ticket store: what a
unit reads and does, what it may not reach, and that no response ever tells it who called."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
import redis.asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.agent_desktop.app import make_app
from hotline.agent_desktop.auth import Auth, MemorySessions
from hotline.agent_desktop.openapi import document
from hotline.core.model import Agent, AgentId, CallId, CallRecord, Outcome, WorkerId
from hotline.queue.acd import RedisCallQueue
from hotline.tickets import model as m
from hotline.tickets.model import Kind
from hotline.tickets.policy import load_policies
from hotline.tickets.records import ActorRole, NewTicket, TicketActor
from hotline.tickets.store import SqlTicketStore
from hotline.tickets.workdays import SHANGHAI

API = "/api/v1"
PASSWORD = "密码-long-enough"
POLICIES = load_policies(Path(__file__).resolve().parents[2] / "config" / "policy")
LEAD, HELPER, OTHER = "区住建局", "区城管局", "区水务局"
CALLER, NAME = "13912345678", "张三丰"
HOTLINE = TicketActor("热线中心", ActorRole.SUPERVISOR)
Client = TestClient[web.Request, web.Application]

# username -> (role, agent, unit)
ACCOUNTS: dict[str, tuple[str, str | None, str | None]] = {
    "zhujian": ("unit", None, LEAD),
    "chengguan": ("unit", None, HELPER),
    "shuiwu": ("unit", None, OTHER),
    "agent1": ("agent", "a1", None),
    "sup": ("supervisor", None, None),
    "admin": ("admin", None, None),
}


@pytest.fixture(scope="module")
def accounts_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database with units and accounts, copied per test (argon2 is slow on purpose)."""
    path = tmp_path_factory.mktemp("units") / "tickets.db"
    store = SqlTicketStore(f"sqlite:///{path}")
    store.add_agent(Agent(AgentId("a1"), "张伟", "1001"))
    for unit in (LEAD, HELPER, OTHER):
        store.add_unit(unit)
    for username, (role, agent, unit) in ACCOUNTS.items():
        store.add_account(username, PASSWORD, role, None if agent is None else AgentId(agent), unit)
    store.close()
    return path


@pytest.fixture
def store(accounts_db: Path, tmp_path: Path) -> Iterator[SqlTicketStore]:
    path = tmp_path / "tickets.db"
    path.write_bytes(accounts_db.read_bytes())
    s = SqlTicketStore(f"sqlite:///{path}", policies=POLICIES.values())
    yield s
    s.close()


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[RedisCallQueue]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield RedisCallQueue(client)
    await client.aclose()


@pytest.fixture
async def api(queue: RedisCallQueue, store: SqlTicketStore) -> AsyncIterator[Client]:
    auth = Auth(store, MemorySessions(), session_ttl_s=3600, failures_per_minute=50)
    client = TestClient(TestServer(make_app(queue, store, auth=auth)))
    await client.start_server()
    yield client
    await client.close()


@dataclasses.dataclass
class Tickets:
    mine: str  # LEAD leads, HELPER assists
    other: str  # OTHER leads
    emergency: str  # LEAD leads, an emergency


def new(lead: str, assisting: tuple[str, ...] = (), emergency: bool = False, call: str = "call-1") -> NewTicket:
    """A ticket from the call `call` (each call is the intake of one ticket at most)."""
    return NewTicket(
        caller=CALLER,
        kind=Kind.COMPLAINT,
        content=f"小区夜间施工噪音扰民，{NAME}请回电 {CALLER}",
        caller_name=NAME,
        transcript=f"喂，我是{NAME}，我的电话是{CALLER}",
        place="淄博市张店区华光路88号",
        lead_unit=lead,
        assisting_units=assisting,
        emergency=emergency,
        call_id=CallId(call),
    )


@pytest.fixture
def tickets(store: SqlTicketStore) -> Tickets:
    now, agent, zibo = datetime.now(UTC), TicketActor("a1"), POLICIES["zibo"]
    store.save_call(
        CallRecord(CallId("call-1"), CALLER, "12345", WorkerId("w1"), now - timedelta(minutes=5), Outcome.ANSWERED,
                   agent_id=AgentId("a1"))
    )  # fmt: skip
    return Tickets(
        mine=store.create_ticket(new(LEAD, (HELPER,)), agent, now, zibo).number,
        other=store.create_ticket(new(OTHER, call="call-2"), agent, now, zibo).number,
        emergency=store.create_ticket(new(LEAD, emergency=True, call="call-3"), agent, now, zibo).number,
    )


async def token(api: Client, username: str) -> str:
    response = await api.post(f"{API}/login", json={"username": username, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return str((await response.json())["token"])


async def call(api: Client, method: str, path: str, tok: str | None, status: int, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    response = await api.request(method, f"{API}{path}", headers=headers, **kwargs)
    text = await response.text()
    assert response.status == status, f"{method} {path}: {response.status} {text}"
    assert response.content_type == "application/json"
    return await response.json()


def private(text: str) -> None:
    assert CALLER not in text, text
    assert NAME not in text, text
    assert "我的电话是" not in text, text  # the transcript


class TestReading:
    async def test_a_unit_lists_the_tickets_it_leads_or_assists(self, api: Client, tickets: Tickets) -> None:
        lead = await call(api, "GET", "/unit/tickets", await token(api, "zhujian"), 200)
        assert [(t["number"], t["role"]) for t in lead["tickets"]] == [
            (tickets.emergency, "lead"),
            (tickets.mine, "lead"),
        ]
        helper = await call(api, "GET", "/unit/tickets", await token(api, "chengguan"), 200)
        assert [(t["number"], t["role"]) for t in helper["tickets"]] == [(tickets.mine, "assist")]
        other = await call(
            api, "GET", "/unit/tickets?state=dispatched&light=none&limit=1", await token(api, "shuiwu"), 200
        )
        assert [t["number"] for t in other["tickets"]] == [tickets.other]
        assert (await call(api, "GET", "/unit/tickets?state=closed", await token(api, "shuiwu"), 200))["tickets"] == []
        for query in ("state=nonsense", "light=blue", "limit=x", "limit=0"):
            body = await call(api, "GET", f"/unit/tickets?{query}", await token(api, "zhujian"), 400)
            assert body["error"] == "invalid-request"

    async def test_a_unit_reads_its_ticket_without_the_caller(self, api: Client, tickets: Tickets) -> None:
        view = await call(api, "GET", f"/unit/tickets/{tickets.mine}", await token(api, "zhujian"), 200)
        assert view["content"] == "小区夜间施工噪音扰民，***请回电 ***"
        assert (view["stage"], view["role"], view["version"], view["place"]) == (
            "dispatched", "lead", 1, "淄博市张店区华光路88号",
        )  # fmt: skip
        assert [e["action"] for e in view["timeline"]] == ["Open", "Dispatch"]
        assert not {"caller", "caller_name", "transcript", "callers", "consent_disclose"} & set(view)

    async def test_other_units_tickets_are_not_found_like_missing_ones(self, api: Client, tickets: Tickets) -> None:
        tok = await token(api, "zhujian")
        for number in (tickets.other, "99999999999"):
            body = await call(api, "GET", f"/unit/tickets/{number}", tok, 404)
            assert body == {"error": "no-such-ticket", "message": f"没有编号为 {number} 的工单"}
            body = await call(api, "POST", f"/unit/tickets/{number}/acknowledge", tok, 404)
            assert body["error"] == "no-such-ticket"


class TestActions:
    async def test_the_lead_units_handling(self, api: Client, store: SqlTicketStore, tickets: Tickets) -> None:
        tok, n = await token(api, "zhujian"), tickets.mine
        view = await call(api, "POST", f"/unit/tickets/{n}/acknowledge", tok, 200, json={"version": 1})
        assert (view["stage"], view["version"]) == ("handling", 2)
        stale = await call(api, "POST", f"/unit/tickets/{n}/progress", tok, 409, json={"text": "x", "version": 1})
        assert stale["error"] == "stale-ticket"
        again = await call(api, "POST", f"/unit/tickets/{n}/acknowledge", tok, 409)
        assert again["error"] == "illegal-transition"
        await call(api, "POST", f"/unit/tickets/{n}/progress", tok, 200, json={"text": "已派员到现场"})
        for bad in ({"text": ""}, {"text": 5}, {"text": "x", "extra": 1}, {"text": "x", "version": "2"}):
            body = await call(api, "POST", f"/unit/tickets/{n}/progress", tok, 400, json=bad)
            assert body["error"] == "invalid-request"
        view = await call(api, "POST", f"/unit/tickets/{n}/extension", tok, 200,
                          json={"working_days": 2, "reason": "需协调多个部门"})  # fmt: skip
        assert view["stage"] == "extension_requested"
        assert view["pending_extension"] == {"working_days": 2, "reason": "需协调多个部门"}
        store.apply(n, m.RefuseExtension(HOTLINE.name, "请按期办结"), HOTLINE, datetime.now(UTC))
        deadline = datetime.fromisoformat(view["deadline"]).astimezone(SHANGHAI).date()
        until = (deadline + timedelta(days=3)).isoformat()
        view = await call(api, "POST", f"/unit/tickets/{n}/follow-up", tok, 200,
                          json={"until": until, "reason": "需等待材料"})  # fmt: skip
        assert view["stage"] == "follow_up"
        helper = await token(api, "chengguan")
        await call(api, "POST", f"/unit/tickets/{n}/assist-reply", helper, 200, json={"text": "已配合执法"})
        view = await call(api, "POST", f"/unit/tickets/{n}/reply", tok, 200, json={"text": "已责令施工方夜间停工"})
        assert view["stage"] == "replied"
        assert view["timeline"][-1]["actor"] == LEAD and view["timeline"][-1]["actor_role"] == "unit"
        assert store.timeline(n)[-1].recorded_by == "zhujian"

    async def test_return_terminate_and_first_report(
        self, api: Client, store: SqlTicketStore, tickets: Tickets
    ) -> None:
        tok = await token(api, "zhujian")
        view = await call(api, "POST", f"/unit/tickets/{tickets.emergency}/first-report", tok, 200,
                          json={"text": "已到场处置"})  # fmt: skip
        assert (view["stage"], view["first_report_due"]) == ("handling", None)
        view = await call(api, "POST", f"/unit/tickets/{tickets.emergency}/terminate", tok, 200,
                          json={"ground": "unlawful_demand", "reason": "诉求不合法"})  # fmt: skip
        assert view["stage"] == "termination_requested"
        body = await call(api, "POST", f"/unit/tickets/{tickets.mine}/terminate", tok, 400,
                          json={"ground": "bored", "reason": "x"})  # fmt: skip
        assert body["error"] == "invalid-request"
        view = await call(api, "POST", f"/unit/tickets/{tickets.mine}/return", tok, 200,
                          json={"reason": "不属本单位职责", "suggested_unit": OTHER})  # fmt: skip
        assert view["stage"] == "return_requested"
        body = await call(api, "POST", f"/unit/tickets/{tickets.mine}/follow-up", tok, 400,
                          json={"until": "next week", "reason": "x"})  # fmt: skip
        assert body["error"] == "invalid-request"

    async def test_an_assisting_unit_only_assists(self, api: Client, tickets: Tickets) -> None:
        helper = await token(api, "chengguan")
        for action, body in (
            ("acknowledge", {}),
            ("reply", {"text": "x"}),
            ("return", {"reason": "x", "suggested_unit": OTHER}),
        ):
            refused = await call(api, "POST", f"/unit/tickets/{tickets.mine}/{action}", helper, 403, json=body)
            assert refused["error"] == "forbidden"
            assert "主办单位" in refused["message"]
        lead = await token(api, "zhujian")
        refused = await call(api, "POST", f"/unit/tickets/{tickets.mine}/assist-reply", lead, 403, json={"text": "x"})
        assert refused["error"] == "forbidden"
        await call(api, "POST", f"/unit/tickets/{tickets.mine}/assist-reply", helper, 200, json={"text": "已配合"})


class TestWhoMayReachWhat:
    # Hotline routes a unit account must never reach, whatever their future.
    HOTLINE_ROUTES: ClassVar[list[tuple[str, str]]] = [
        ("GET", "/agents"), ("GET", "/agents/a1"), ("POST", "/agents/a1/login"), ("GET", "/queue"),
        ("GET", "/calls"), ("GET", "/calls/call-1"), ("GET", "/wallboard"), ("GET", "/recordings/call-1?why=x"),
        ("GET", "/ws"), ("GET", "/tickets"), ("GET", "/nonexistent"),
    ]  # fmt: skip

    async def test_a_unit_account_reaches_only_its_own_routes(self, api: Client, tickets: Tickets) -> None:
        tok = await token(api, "zhujian")
        for method, path in self.HOTLINE_ROUTES:
            body = await call(api, method, path, tok, 403)
            assert body["error"] == "forbidden"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await api.ws_connect(f"{API}/ws?token={tok}")
        assert refused.value.status == 403
        me = await call(api, "GET", "/me", tok, 200)
        assert me == {"username": "zhujian", "role": "unit", "agent_id": None, "unit": LEAD}
        await call(api, "GET", "/health", tok, 200)
        await call(api, "POST", "/logout", tok, 200)
        await call(api, "GET", "/unit/tickets", tok, 401)

    @pytest.mark.parametrize("username", ["agent1", "sup", "admin", None])
    async def test_the_unit_routes_are_for_unit_accounts(
        self, api: Client, tickets: Tickets, username: str | None
    ) -> None:
        tok = None if username is None else await token(api, username)
        status = 401 if username is None else 403
        await call(api, "GET", "/unit/tickets", tok, status)
        await call(api, "GET", f"/unit/tickets/{tickets.mine}", tok, status)
        await call(api, "POST", f"/unit/tickets/{tickets.mine}/acknowledge", tok, status)
        await call(api, "GET", "/unit/notices", tok, status)

    async def test_with_sign_in_off_the_unit_routes_are_closed(
        self, queue: RedisCallQueue, store: SqlTicketStore, tickets: Tickets
    ) -> None:
        client = TestClient(TestServer(make_app(queue, store, auth=None)))
        await client.start_server()
        try:
            await call(client, "GET", "/unit/tickets", None, 403)
        finally:
            await client.close()

    async def test_the_document_marks_the_unit_routes_restricted(self) -> None:
        paths = document()["paths"]
        unit_ops = [op for path, item in paths.items() if path.startswith(f"{API}/unit/") for op in item.values()]
        assert len(unit_ops) == 12
        assert all("403" in op["responses"] and "401" in op["responses"] for op in unit_ops)


# Bodies for the POST routes of the sweep below (anything else gets {}).
BODIES: dict[str, dict[str, Any]] = {
    "progress": {"text": "进展"}, "first-report": {"text": "首报"}, "assist-reply": {"text": "协办"},
    "reply": {"text": "结果"}, "extension": {"working_days": 1, "reason": "理由"},
    "return": {"reason": "理由", "suggested_unit": OTHER}, "terminate": {"ground": "unlawful_demand", "reason": "理由"},
    "follow-up": {"until": "2099-01-01", "reason": "理由"},
}  # fmt: skip


async def test_no_route_tells_a_unit_who_called(api: Client, store: SqlTicketStore, tickets: Tickets) -> None:
    """Every route of the OpenAPI document (all parts, present and future), for the lead unit and
    an assisting unit, with real ids: the caller's number, name and transcript appear in no
    response; nor over the WebSocket; nor in the notices (the webhook bodies)."""
    store.apply(tickets.mine, m.Supervise(HOTLINE.name, f"{NAME}多次来电（{CALLER}）"), HOTLINE, datetime.now(UTC))
    ids = {"number": tickets.mine, "agent_id": "a1", "call_id": "call-1"}
    seen = 0
    for username in ("zhujian", "chengguan"):
        tok = await token(api, username)
        for path, item in document()["paths"].items():
            if path in (f"{API}/logout", f"{API}/login"):
                continue  # signing out ends the sweep's session; signing in is covered above
            concrete = re.sub(r"{(\w+)}", lambda match: ids.get(match.group(1), tickets.mine), path)
            for method in item:
                body = BODIES.get(concrete.rsplit("/", 1)[-1], {}) if method == "post" else None
                response = await api.request(
                    method.upper(), concrete, headers={"Authorization": f"Bearer {tok}"},
                    json=body, params={"why": "核查"} if "recordings" in path else None,
                )  # fmt: skip
                private(await response.text())
                seen += 1
        response = await api.get(f"{API}/ws", headers={"Authorization": f"Bearer {tok}", "Upgrade": "websocket"})
        assert response.status == 403
        private(await response.text())
    assert seen >= 2 * 14
    for unit in (LEAD, HELPER):
        notices = store.unit_notices(unit)
        assert notices
        private(str(notices))
    private(str(store.outbox()))
