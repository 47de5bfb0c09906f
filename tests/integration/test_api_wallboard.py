"""The supervisor's wallboard (/api/v1/wallboard) and the Prometheus metrics (/metrics) against a
real redis-server (queue, agents, worker heartbeats) and a SQLite store with hand-made records:
every number checked against the state the test made."""

from __future__ import annotations

import math
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
from hotline.agent_desktop.auth import Auth
from hotline.agent_desktop.wallboard import WallboardSettings
from hotline.core.model import Agent, AgentId, CallId, CallRecord, Outcome, WorkerId
from hotline.core.ports import WorkerRegistry
from hotline.queue.acd import RedisCallQueue
from hotline.queue.asr_latency import RedisAsrLatency
from hotline.queue.bus import RedisEventBus
from hotline.tickets.store import SqlTicketStore

API = "/api/v1"
PASSWORD = "密码-long-enough"
W1, W2 = WorkerId("w1"), WorkerId("w2")
NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)  # 10:00 on 22 November in Shanghai
NOW_MS = int(NOW.timestamp() * 1000)
Client = TestClient[web.Request, web.Application]


def ago_ms(seconds: float) -> int:
    return NOW_MS - int(seconds * 1000)


@pytest.fixture(scope="module")
def accounts_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wallboard") / "tickets.db"
    store = SqlTicketStore(f"sqlite:///{path}")
    for n, name in enumerate(["张伟", "李娜", "王芳"], 1):
        store.add_agent(Agent(AgentId(f"a{n}"), name, f"100{n}"))
    store.add_account("agent1", PASSWORD, "agent", AgentId("a1"))
    store.add_account("sup", PASSWORD, "supervisor")
    store.add_account("admin", PASSWORD, "admin")
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
def queue(client: redis.asyncio.Redis) -> RedisCallQueue:
    return RedisCallQueue(client)


@pytest.fixture
def bus(client: redis.asyncio.Redis) -> RedisEventBus:
    return RedisEventBus(client)


async def serve(
    queue: RedisCallQueue,
    store: SqlTicketStore,
    settings: WallboardSettings | None = None,
    workers: WorkerRegistry | None = None,
    asr: RedisAsrLatency | None = None,
) -> Client:
    app = make_app(
        queue, store, auth=Auth(store), clock_ms=lambda: NOW_MS, wallboard=settings, workers=workers, asr=asr
    )
    api = TestClient(TestServer(app))
    await api.start_server()
    return api


@pytest.fixture
async def api(queue: RedisCallQueue, store: SqlTicketStore, bus: RedisEventBus) -> AsyncIterator[Client]:
    test_client = await serve(queue, store, workers=bus)
    yield test_client
    await test_client.close()


async def token(api: Client, username: str) -> str:
    response = await api.post(f"{API}/login", json={"username": username, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return str((await response.json())["token"])


async def get_json(api: Client, path: str, tok: str | None, status: int = 200) -> Any:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    response = await api.get(path, headers=headers)
    assert response.status == status, await response.text()
    return await response.json()


def record(call_id: str, outcome: Outcome, started: datetime, wait_s: float | None, talk_s: float | None) -> CallRecord:
    queued = started + timedelta(seconds=2)
    connected = None if wait_s is None or talk_s is None else queued + timedelta(seconds=wait_s)
    ended = connected + timedelta(seconds=talk_s) if connected is not None and talk_s is not None else None
    return CallRecord(
        CallId(call_id), "13800138000", "12345", W1, started, outcome, answered_at=started, queued_at=queued,
        connected_at=connected, ended_at=ended or queued + timedelta(seconds=30),
        agent_id=AgentId("a1") if connected else None,
    )  # fmt: skip


async def known_state(queue: RedisCallQueue, store: SqlTicketStore, bus: RedisEventBus) -> None:
    """a1 on a call (answered 280 s ago), a2 paused 120 s ago, a3 logged out; three callers
    waiting 90, 30 and 5 s, one callback entry (arrived 200 s ago); today's records: 3 answered
    (waits 10, 20, 5 s; talks 60, 120, 30 s), 1 abandoned, 1 callback requested; one answered
    a second before the Shanghai day began; workers w1 (2 calls, 1 refused) and w2 alive."""
    agents = {a.agent_id: a for a in store.list_agents()}
    for agent_id in ("a1", "a2", "a3"):
        await queue.agent_login(agents[AgentId(agent_id)], ago_ms(600))
    await queue.agent_pause(AgentId("a2"), "小休", ago_ms(120))
    await queue.agent_logout(AgentId("a3"), ago_ms(60), reason="下班")
    await queue.enqueue(CallId("c0"), W1, "13800000000", ago_ms(300))
    offer = await queue.dispatch_once(ago_ms(290), 20_000)
    assert offer is not None and offer.agent_id == "a1"
    assert await queue.offer_answered(offer.offer_id, ago_ms(280))
    await queue.enqueue(CallId("cb"), W1, "13900000000", ago_ms(200))
    assert await queue.request_callback(CallId("cb"), "13900000000", ago_ms(150))
    for call_id, seconds in (("c1", 90), ("c2", 30), ("c3", 5)):
        await queue.enqueue(CallId(call_id), W2, "13700000000", ago_ms(seconds))
    day = datetime(2026, 11, 21, 16, 0, tzinfo=UTC)  # 00:00 on 22 November in Shanghai
    for r in [
        record("ans-1", Outcome.ANSWERED, NOW - timedelta(hours=1), 10, 60),
        record("ans-2", Outcome.ANSWERED, NOW - timedelta(hours=2), 20, 120),
        record("ans-midnight", Outcome.ANSWERED, day, 5, 30),
        record("yesterday", Outcome.ANSWERED, day - timedelta(seconds=1), 1, 10),
        record("aiq", Outcome.ABANDONED_IN_QUEUE, NOW - timedelta(minutes=30), None, None),
        record("cb-req", Outcome.CALLBACK_REQUESTED, NOW - timedelta(minutes=20), None, None),
    ]:
        store.save_call(r)
    await bus.heartbeat(W1, 60_000, {"calls": 2, "rejected": 1, "pid": 1})
    await bus.heartbeat(W2, 60_000, {"calls": 0, "rejected": 0, "pid": 2})


class TestWallboard:
    async def test_numbers_match_the_state(
        self, api: Client, queue: RedisCallQueue, store: SqlTicketStore, bus: RedisEventBus
    ) -> None:
        await known_state(queue, store, bus)
        board = await get_json(api, f"{API}/wallboard", await token(api, "sup"))
        assert board["generated_at"] == "2026-11-22T02:00:00+00:00"
        assert board["day"] == "2026-11-22"
        assert board["queue"] == {
            "name": "default",
            "waiting": 3,
            "longest_wait_s": 90.0,
            "callbacks_waiting": 1,
            "offered_today": 5,
            "answered_today": 3,
            "abandoned_today": 1,
            "callbacks_requested_today": 1,
            "callbacks_answered_today": 0,
            "service_level": {"fraction": 0.5, "threshold_s": 15.0, "answered_within": 2},
            "answer_rate": 0.75,
            "average_handle_s": 70.0,
            "average_answer_s": 11.7,
        }
        assert board["agents"] == [
            {"agent_id": "a1", "name": "张伟", "state": "on_call", "reason": "", "in_state_s": 280.0,
             "call_id": "c0", "calls_answered": 1, "talk_s": 0.0, "device": "unknown"},
            {"agent_id": "a2", "name": "李娜", "state": "paused", "reason": "小休", "in_state_s": 120.0,
             "call_id": None, "calls_answered": 0, "talk_s": 0.0, "device": "unknown"},
        ]  # fmt: skip
        assert [a["kind"] for a in board["alerts"]] == ["longest_wait"]  # 90 s >= 60 s; 3 callers < 10
        assert board["alerts"][0]["value"] == 90.0
        assert board["alerts"][0]["threshold"] == 60.0
        assert "90" in board["alerts"][0]["message"]

    async def test_alert_thresholds_are_settings(
        self, queue: RedisCallQueue, store: SqlTicketStore, bus: RedisEventBus
    ) -> None:
        await known_state(queue, store, bus)
        settings = WallboardSettings(queue_name="default", service_level_s=20, alert_depth=3, alert_wait_s=0)
        api = await serve(queue, store, settings)
        try:
            board = await get_json(api, f"{API}/wallboard", await token(api, "admin"))
        finally:
            await api.close()
        assert board["alerts"] == [
            {"kind": "queue_depth", "queue": "default", "value": 3, "threshold": 3,
             "message": "排队 3 人，已达告警阈值 3 人"},
        ]  # fmt: skip
        assert board["queue"]["service_level"] == {"fraction": 0.75, "threshold_s": 20, "answered_within": 3}

    async def test_an_empty_day(self, api: Client) -> None:
        board = await get_json(api, f"{API}/wallboard", await token(api, "sup"))
        q = board["queue"]
        assert (q["waiting"], q["longest_wait_s"], q["answered_today"], q["abandoned_today"]) == (0, 0.0, 0, 0)
        assert q["service_level"]["fraction"] is None
        assert (q["answer_rate"], q["average_handle_s"]) == (None, None)
        assert board["agents"] == []
        assert board["alerts"] == []

    async def test_for_supervisors_and_admins_only(self, api: Client) -> None:
        assert (await get_json(api, f"{API}/wallboard", None, 401))["error"] == "unauthorized"
        assert (await get_json(api, f"{API}/wallboard", await token(api, "agent1"), 403))["error"] == "forbidden"
        await get_json(api, f"{API}/wallboard", await token(api, "admin"))

    def test_settings_refuse_nonsense(self) -> None:
        from hotline.core.errors import InvalidRequest

        for bad in ({"service_level_s": 0}, {"alert_depth": -1}, {"alert_wait_s": -1.0}):
            with pytest.raises(InvalidRequest):
                WallboardSettings(**bad)  # type: ignore[arg-type]


# --- Prometheus text exposition -----------------------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_VALUE = r"NaN|[+-]Inf|-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{({_LABEL}(?:,{_LABEL})*)\}})? ({_VALUE})$")
_HELP = re.compile(rf"^# HELP ({_NAME}) \S.*$")
_TYPE = re.compile(rf"^# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)$")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_exposition(text: str) -> tuple[Samples, dict[str, str]]:
    """Every line checked against the format (HELP, then TYPE, then the family's samples);
    returns {(name, labels): value} and {name: type}."""
    assert text.endswith("\n")
    samples: Samples = {}
    types: dict[str, str] = {}
    helped: set[str] = set()
    family = None
    for line in text.splitlines():
        if m := _HELP.match(line):
            assert m.group(1) not in helped, f"two HELP lines for {m.group(1)}"
            helped.add(m.group(1))
            family = None
        elif m := _TYPE.match(line):
            assert m.group(1) in helped and m.group(1) not in types, line
            types[m.group(1)] = m.group(2)
            family = m.group(1)
        else:
            m = _SAMPLE.match(line)
            assert m is not None, f"not a sample line: {line!r}"
            name, labels, value = m.groups()
            own = (family,) if types.get(family or "") != "histogram" else tuple(
                f"{family}{suffix}" for suffix in ("_bucket", "_sum", "_count")
            )  # fmt: skip
            assert name in own, f"{name} outside its family ({family})"
            pairs = frozenset(
                (k, v) for k, v in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels or "")
            )
            assert (name, pairs) not in samples, f"duplicate sample {line!r}"
            samples[(name, pairs)] = float(value)
    return samples, types


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def get_metrics(api: Client, tok: str | None = None) -> tuple[Samples, dict[str, str]]:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    response = await api.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse_exposition(await response.text())


class TestMetrics:
    async def test_numbers_match_the_state(
        self, api: Client, queue: RedisCallQueue, store: SqlTicketStore, bus: RedisEventBus
    ) -> None:
        await known_state(queue, store, bus)
        samples, types = await get_metrics(api)  # no token: public
        q = {"queue": "default"}
        assert sample(samples, "hotline_queue_waiting", **q) == 3
        assert sample(samples, "hotline_queue_longest_wait_seconds", **q) == 90
        assert sample(samples, "hotline_queue_callbacks_waiting", **q) == 1
        agents = {state: sample(samples, "hotline_agents", state=state, **q) for state in
                  ("logged_out", "available", "reserved", "on_call", "wrap_up", "paused")}  # fmt: skip
        assert agents == {"logged_out": 1, "available": 0, "reserved": 0, "on_call": 1, "wrap_up": 0, "paused": 1}
        calls = {dict(labels)["outcome"]: v for (name, labels), v in samples.items() if name == "hotline_calls_total"}
        assert calls == {outcome.value: 0 for outcome in Outcome} | {
            "answered": 3, "abandoned_in_queue": 1, "callback_requested": 1,
        }  # fmt: skip
        assert sample(samples, "hotline_calls_offered_today") == 5
        assert sample(samples, "hotline_service_level_threshold_seconds") == 15
        assert sample(samples, "hotline_service_level_ratio") == 0.5
        assert sample(samples, "hotline_answer_rate_ratio") == 0.75
        assert sample(samples, "hotline_average_handle_seconds") == 70
        assert sample(samples, "hotline_average_answer_seconds") == pytest.approx(35 / 3)
        assert sample(samples, "hotline_workers_alive") == 2
        assert sample(samples, "hotline_worker_calls", worker="w1") == 2
        assert sample(samples, "hotline_worker_calls", worker="w2") == 0
        assert sample(samples, "hotline_worker_rejected_total", worker="w1") == 1
        assert types["hotline_calls_total"] == types["hotline_worker_rejected_total"] == "counter"
        assert types["hotline_queue_waiting"] == types["hotline_agents"] == "gauge"

    async def test_an_empty_day_has_nan_ratios(self, api: Client) -> None:
        samples, _ = await get_metrics(api)
        assert sample(samples, "hotline_queue_waiting", queue="default") == 0
        for name in ("hotline_service_level_ratio", "hotline_answer_rate_ratio", "hotline_average_handle_seconds"):
            assert math.isnan(sample(samples, name))
        assert sample(samples, "hotline_workers_alive") == 0

    async def test_without_a_worker_registry_no_worker_metrics(
        self, queue: RedisCallQueue, store: SqlTicketStore
    ) -> None:
        api = await serve(queue, store)
        try:
            samples, types = await get_metrics(api)
        finally:
            await api.close()
        assert "hotline_queue_waiting" in types
        assert not any(name.startswith("hotline_worker") for name, _ in samples)

    async def test_asr_latency_written_by_the_speech_service_is_a_histogram(
        self, queue: RedisCallQueue, store: SqlTicketStore, client: redis.asyncio.Redis
    ) -> None:
        latency = RedisAsrLatency(client)  # what the speech service records each published text with
        api = await serve(queue, store, asr=latency)
        try:
            samples, types = await get_metrics(api)
            assert types["hotline_asr_latency_seconds"] == "histogram"
            assert sample(samples, "hotline_asr_latency_seconds_count") == 0
            assert sample(samples, "hotline_asr_latency_seconds_bucket", le="+Inf") == 0
            for seconds in (0.3, 0.5, 0.7, 2.5, 2.9, 4.0, 75.0):
                await latency.record(seconds)
            await latency.record(-1.0)  # a clock step backwards: not counted
            samples, _ = await get_metrics(api)
        finally:
            await api.close()
        buckets = {
            dict(labels)["le"]: v
            for (name, labels), v in samples.items()
            if name == "hotline_asr_latency_seconds_bucket"
        }
        assert buckets == {
            "0.5": 2, "1": 3, "2": 3, "3": 5, "5": 6, "8": 6, "13": 6, "20": 6, "30": 6, "60": 6, "+Inf": 7,
        }  # fmt: skip
        assert sample(samples, "hotline_asr_latency_seconds_count") == 7
        assert sample(samples, "hotline_asr_latency_seconds_sum") == pytest.approx(85.9)

    async def test_without_asr_metrics_no_asr_lines(self, api: Client) -> None:
        _, types = await get_metrics(api)
        assert not any(name.startswith("hotline_asr") for name in types)

    async def test_a_token_is_fine_too(self, api: Client) -> None:
        await get_metrics(api, await token(api, "agent1"))

    async def test_label_values_are_escaped(self, queue: RedisCallQueue, store: SqlTicketStore) -> None:
        api = await serve(queue, store, WallboardSettings(queue_name='a"b\\c\nd'))
        try:
            samples, _ = await get_metrics(api)
        finally:
            await api.close()
        assert sample(samples, "hotline_queue_waiting", queue='a\\"b\\\\c\\nd') == 0


def test_settings_come_from_the_configuration() -> None:
    """What `hotline control` passes to make_app (hotline/cli.py run_control)."""
    from hotline import config
    from hotline.core.errors import ConfigError

    defaults = config.load(str(Path(__file__).resolve().parents[2] / "config" / "hotline.yaml"), environ={})
    assert (defaults.wallboard.alert_depth, defaults.wallboard.alert_wait_s) == (10, 60.0)
    assert defaults.queue.service_level_s == 15.0
    changed = config.load(environ={"HOTLINE_CONFIG": "/nonexistent.yaml", "HOTLINE_WALLBOARD__ALERT_WAIT_S": "0"})
    assert changed.wallboard.alert_wait_s == 0.0
    with pytest.raises(ConfigError, match="wallboard"):
        config.load(environ={"HOTLINE_CONFIG": "/nonexistent.yaml", "HOTLINE_WALLBOARD__ALERT_DEPTH": "-1"})
