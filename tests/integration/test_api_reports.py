"""The reports part of the agent desktop API (hotline/agent_desktop/api_reports.py) on a real
aiohttp server, real redis-server and a SQLite ticket store holding the contract test's scenario:
every route for every role, parameter checks, the CSV as a download."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.agent_desktop.app import make_app
from hotline.agent_desktop.auth import Auth, MemorySessions
from hotline.core.model import Agent, AgentId
from hotline.queue.acd import RedisCallQueue
from hotline.tickets.store import SqlTicketStore
from tests.contract.test_unit_stats import NOW, POLICIES, A, B, build

API = "/api/v1"
PASSWORD = "密码-long-enough"
NOW_MS = int(NOW.timestamp() * 1000)  # 2025-10-28 12:00 Beijing time
Client = TestClient[web.Request, web.Application]
ROLES = {"agent1": ("agent", "a1"), "sup": ("supervisor", None), "admin": ("admin", None)}
ROUTES = [
    f"{API}/reports/units?since=2025-09-30&until=2025-10-31",
    f"{API}/reports/hot-topics",
    f"{API}/reports/tickets.csv?since=2025-09-30&until=2025-10-31",
]


@pytest.fixture(scope="module")
def scenario_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Accounts and the scenario once (argon2 is slow on purpose), copied per test."""
    path = tmp_path_factory.mktemp("reports") / "tickets.db"
    store = SqlTicketStore(f"sqlite:///{path}", policies=POLICIES.values())
    store.add_agent(Agent(AgentId("a1"), "张伟", "1001"))
    for username, (role, agent) in ROLES.items():
        store.add_account(username, PASSWORD, role, None if agent is None else AgentId(agent))
    build(store)
    store.close()
    return path


@pytest.fixture
def store(scenario_db: Path, tmp_path: Path) -> Iterator[SqlTicketStore]:
    path = tmp_path / "tickets.db"
    path.write_bytes(scenario_db.read_bytes())
    s = SqlTicketStore(f"sqlite:///{path}", policies=POLICIES.values())
    yield s
    s.close()


@pytest.fixture
async def api(redis_url: str, store: SqlTicketStore) -> AsyncIterator[Client]:
    client = redis.asyncio.Redis.from_url(redis_url)
    auth = Auth(store, MemorySessions(), session_ttl_s=3600, failures_per_minute=5)
    test_client = TestClient(TestServer(make_app(RedisCallQueue(client), store, auth=auth, clock_ms=lambda: NOW_MS)))
    await test_client.start_server()
    yield test_client
    await test_client.close()
    await client.aclose()


async def token(api: Client, username: str) -> str:
    response = await api.post(f"{API}/login", json={"username": username, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return str((await response.json())["token"])


async def get(api: Client, path: str, username: str | None, status: int) -> Any:
    headers = {"Authorization": f"Bearer {await token(api, username)}"} if username else {}
    response = await api.get(path, headers=headers)
    assert response.status == status, f"{path}: {response.status} {await response.text()}"
    if response.content_type == "text/csv":
        return response
    assert response.content_type == "application/json"
    return await response.json()


class TestRoles:
    @pytest.mark.parametrize("path", ROUTES)
    async def test_agents_are_refused_and_strangers_unauthorised(self, api: Client, path: str) -> None:
        assert (await get(api, path, "agent1", 403))["error"] == "forbidden"
        assert (await get(api, path, None, 401))["error"] == "unauthorized"

    @pytest.mark.parametrize("username", ["sup", "admin"])
    @pytest.mark.parametrize("path", ROUTES)
    async def test_supervisors_and_admins_get_them(self, api: Client, path: str, username: str) -> None:
        await get(api, path, username, 200)


class TestUnits:
    async def test_the_unit_figures(self, api: Client) -> None:
        body = await get(api, ROUTES[0], "sup", 200)
        assert (body["since"], body["until"], body["now"]) == ("2025-09-30", "2025-10-31", "2025-10-28T12:00:00+08:00")
        units = {u["unit"]: u for u in body["units"]}
        assert list(units) == sorted([A, B])
        a = units[A]
        assert (a["received"], a["replied"], a["replied_on_time"], a["due"], a["on_time_rate"]) == (3, 3, 2, 4, 0.5)
        assert (a["overdue_now"], a["reminders"], a["supervisions"]) == (1, 1, 2)
        assert a["process"] == {"satisfied": 1, "fairly_satisfied": 0, "unsatisfied": 1}
        assert body["total"]["unit"] == "合计" and body["total"]["received"] == 6

    async def test_the_default_period_is_this_month_to_today(self, api: Client) -> None:
        body = await get(api, f"{API}/reports/units", "admin", 200)
        assert (body["since"], body["until"]) == ("2025-10-01", "2025-10-28")

    @pytest.mark.parametrize(
        ("query", "words"),
        [
            ("since=2025-13-01", "since"),
            ("until=tomorrow", "until"),
            ("since=2025-10-02&until=2025-10-01", "早于"),
            ("since=2024-01-01&until=2025-10-01", "366"),
        ],
    )
    async def test_bad_periods_are_400_with_a_message(self, api: Client, query: str, words: str) -> None:
        for route in ("units", "tickets.csv"):
            body = await get(api, f"{API}/reports/{route}?{query}", "sup", 400)
            assert body["error"] == "invalid-request" and words in body["message"]


class TestHotTopics:
    async def test_this_week_by_default(self, api: Client) -> None:
        body = await get(api, f"{API}/reports/hot-topics", "sup", 200)
        # NOW is Tuesday 10-28: this week from Monday 10-27; no ticket was created since.
        assert (body["since"], body["previous_since"]) == ("2025-10-27T00:00:00+08:00", "2025-10-20T00:00:00+08:00")
        assert body["kinds"] == body["places"] == body["areas"] == []

    async def test_the_last_n_days(self, api: Client) -> None:
        body = await get(api, f"{API}/reports/hot-topics?days=30", "sup", 200)
        # 09-29 .. now: the six tickets (T1-T4 on 09-30, T5, T6 on 10-09).
        assert [(k["key"], k["count"], k["previous"]) for k in body["kinds"]] == [
            ("complaint", 4, 0), ("consultation", 1, 0), ("help", 1, 0),
        ]  # fmt: skip
        assert [(t["name"], t["count"]) for t in body["areas"]] == [("张店区", 6)]

    @pytest.mark.parametrize("days", ["0", "367", "abc", "1.5"])
    async def test_bad_days_are_400(self, api: Client, days: str) -> None:
        body = await get(api, f"{API}/reports/hot-topics?days={days}", "sup", 400)
        assert body["error"] == "invalid-request" and "days" in body["message"]


class TestCsv:
    async def test_the_hotline_file_is_an_attachment_with_masked_callers(self, api: Client) -> None:
        response = await get(api, ROUTES[2], "sup", 200)
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert response.headers["Content-Disposition"] == (
            'attachment; filename="tickets-hotline-2025-09-30-2025-10-31.csv"'
        )
        assert "no-store" in response.headers["Cache-Control"]
        body = await response.read()
        assert body.startswith(b"\xef\xbb\xbf") and b"13800138000" not in body
        header, *rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
        assert len(rows) == 6 and rows[0][header.index("来电号码")] == "138****8000"

    async def test_the_units_file_has_no_caller(self, api: Client) -> None:
        response = await get(api, ROUTES[2] + "&audience=units", "admin", 200)
        body = await response.read()
        header = next(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
        assert "来电号码" not in header and b"138****8000" not in body and "王女士".encode() not in body

    async def test_an_unknown_audience_is_400(self, api: Client) -> None:
        body = await get(api, ROUTES[2] + "&audience=public", "sup", 400)
        assert "audience" in body["message"]
        body = await get(api, ROUTES[2] + "&unmasked=yes", "admin", 400)
        assert "unmasked" in body["message"]

    async def test_only_admins_get_whole_numbers_and_each_ticket_is_audited(
        self, api: Client, store: SqlTicketStore
    ) -> None:
        path = f"{API}/reports/tickets.csv?since=2025-10-09&until=2025-10-09&unmasked=true"
        assert (await get(api, path, "sup", 403))["error"] == "forbidden"
        numbers = [row.number for row in store.export_rows(date(2025, 10, 9), date(2025, 10, 9))]
        assert all(store.personal_reads("ticket", n) == [] for n in numbers)  # a refusal leaves no trace
        body = await (await get(api, path, "admin", 200)).read()
        header, *rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
        assert [row[header.index("来电号码")] for row in rows] == ["13800138000", "13900139000"]
        for number in numbers:
            [read] = store.personal_reads("ticket", number)
            assert (read.who, read.role, read.fields) == ("admin", "admin", ("caller",))
            assert read.route == f"GET {API}/reports/tickets.csv"
        body = await get(api, path + "&audience=units", "admin", 400)  # the units' file has no numbers
        assert body["error"] == "invalid-request"
