"""Call controls across processes' boundaries: the API routes (who may ask, what the worker is sent,
a target agent paused), and the worker's CallControls carrying the commands out on a connected
call: who hears whom after each command, the hold music, the legs dialled and hung up, the
queue's agent states, and the call record.

Real redis-server, real SQLite ticket store, real aiohttp server, the real queue and bus. The
SIP endpoint is a fake that keeps the links it is given (what reaches the conference bridge is
checked with the real endpoint and real peers in tests/e2e/test_call_controls_e2e.py and
tests/e2e/test_supervisor_listen_e2e.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.agent_desktop.api_calls import LIVE_CALLS
from hotline.agent_desktop.app import make_app
from hotline.agent_desktop.auth import Auth, MemorySessions
from hotline.core import events as ev
from hotline.core.model import Agent, AgentId, AgentState, CallId, WorkerId
from hotline.core.ports import Offer
from hotline.queue.acd import AcdPolicy, RedisCallQueue
from hotline.queue.agent_state import TRANSFERRED, AgentPolicy
from hotline.queue.bus import RedisEventBus
from hotline.runtime.callback import CallbackConfig
from hotline.runtime.legs import epoch_ms
from hotline.runtime.worker import CallSession, Prompt, Worker, WorkerSettings
from hotline.sip.events import DtmfReceived, IncomingCall, LegState, LegStateChanged, MediaReady
from hotline.tickets.store import SqlTicketStore
from tests.support import until_async

API = "/api/v1"
PASSWORD = "密码-long-enough"
Client = TestClient[web.Request, web.Application]
ACCOUNTS = {"agent1": ("agent", "a1"), "agent2": ("agent", "a2"), "sup": ("supervisor", None)}
CALLER, AGENT = "in-1", "out-{call}-1"


# ------------------------------------------------------------------ the API routes


@pytest.fixture(scope="module")
def accounts_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("accounts") / "tickets.db"
    store = SqlTicketStore(f"sqlite:///{path}")
    store.add_agent(Agent(AgentId("a1"), "张伟", "1001", sip_uri="sip:1001@127.0.0.1"))
    store.add_agent(Agent(AgentId("a2"), "李娜", "1002"))
    for username, (role, agent) in ACCOUNTS.items():
        store.add_account(username, PASSWORD, role, None if agent is None else AgentId(agent))
    store.add_account("admin", PASSWORD, "admin")
    store.add_unit("市住建局")
    store.add_account("zhujian", PASSWORD, "unit", None, "市住建局")
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
async def api(client: redis.asyncio.Redis, store: SqlTicketStore) -> AsyncIterator[Client]:
    auth = Auth(store, MemorySessions(), session_ttl_s=3600)
    app = make_app(RedisCallQueue(client), store, auth=auth)
    app[LIVE_CALLS] = RedisEventBus(client)  # as `hotline control` does
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    yield test_client
    await test_client.close()


async def token(api: Client, username: str) -> dict[str, str]:
    response = await api.post(f"{API}/login", json={"username": username, "password": PASSWORD})
    assert response.status == 200
    return {"Authorization": f"Bearer {(await response.json())['token']}"}


async def live_call_with_agent(client: redis.asyncio.Redis, store: SqlTicketStore, call_id: str) -> None:
    """A call on worker w1, answered by agent a1, as the real queue records it."""
    queue, bus = RedisCallQueue(client), RedisEventBus(client)
    agent = store.get_agent(AgentId("a1"))
    assert agent is not None
    await queue.agent_login(agent, 1_000)
    await queue.enqueue(CallId(call_id), WorkerId("w1"), "13800138000", 2_000)
    offer = await queue.dispatch_once(3_000, 30_000)
    assert offer is not None and offer.agent_id == "a1"
    assert await queue.offer_answered(offer.offer_id, 4_000)
    await bus.track_call(WorkerId("w1"), CallId(call_id), {"call_id": call_id, "caller": "13800138000"})


async def commands(client: redis.asyncio.Redis) -> list[tuple[str, dict[str, Any]]]:
    return [(kind, data) for _id, kind, data in await RedisEventBus(client).read_commands(WorkerId("w1"), "0")]


async def error(response: Any) -> tuple[int, str]:
    return response.status, (await response.json())["error"]


async def test_controls_are_for_the_calls_agent_and_supervisors_monitor_for_supervisors_only(
    api: Client, client: redis.asyncio.Redis, store: SqlTicketStore
) -> None:
    call = "20261122T020000-0000cccc"
    await live_call_with_agent(client, store, call)
    path = f"{API}/calls/{call}"
    agent1, agent2, sup = [await token(api, u) for u in ("agent1", "agent2", "sup")]
    sup_uri = "sip:9001@127.0.0.1:5099"

    response = await api.post(f"{path}/hold", headers=agent1)
    assert response.status == 202, await response.text()
    assert await response.json() == {"call_id": call, "action": "hold", "worker_id": "w1"}
    for sent in (
        api.post(f"{path}/resume", headers=sup),
        api.post(f"{path}/mute", json={"muted": True}, headers=agent1),
        api.post(f"{path}/dtmf", json={"digits": "123#"}, headers=agent1),
        api.post(f"{path}/conference", json={"number": "12315"}, headers=agent1),
        api.post(f"{path}/transfer", json={"target": "number:12333", "mode": "attended"}, headers=agent1),
        api.post(f"{path}/transfer/complete", headers=agent1),
        api.post(f"{path}/transfer/cancel", headers=agent1),
        api.post(f"{path}/hangup", headers=agent1),
        api.post(f"{path}/monitor", json={"mode": "whisper", "supervisor_uri": sup_uri}, headers=sup),
    ):
        response = await sent
        assert response.status == 202, await response.text()
    assert await error(await api.post(f"{path}/hold", headers=agent2)) == (403, "forbidden")
    monitor = {"mode": "listen", "supervisor_uri": sup_uri}
    assert await error(await api.post(f"{path}/monitor", json=monitor, headers=agent1)) == (403, "forbidden")
    assert await error(await api.post(f"{API}/calls/nope/hold", headers=agent1)) == (404, "no-such-call")
    assert (await api.post(f"{path}/hold")).status == 401
    for route, bad in (
        ("mute", {"muted": "yes"}),
        ("dtmf", {"digits": "12x"}),
        ("dtmf", {}),
        ("conference", {"number": "sip:evil@x"}),
        ("monitor", {"mode": "spy", "supervisor_uri": sup_uri}),
        ("monitor", {"mode": "listen", "supervisor_uri": "http://x"}),
        ("transfer", {"target": "elsewhere"}),
        ("transfer", {"target": "number:12315", "mode": "warm"}),
        ("transfer", {"target": "number:1-2"}),
        ("hold", {"why": 1}),
    ):
        response = await api.post(f"{path}/{route}", json=bad, headers=sup)
        assert await error(response) == (400, "invalid-request"), (route, bad)
    response = await api.post(f"{path}/transfer", json={"target": "queue"}, headers=agent1)
    assert response.status == 202

    sent = await commands(client)
    assert {kind for kind, _ in sent} == {ev.CMD_CALL_CONTROL}
    assert [(d["action"], d["by"]) for _, d in sent] == [
        ("hold", "agent1"), ("hold", "sup"), ("mute", "agent1"), ("dtmf", "agent1"), ("conference", "agent1"),
        ("transfer", "agent1"), ("transfer-complete", "agent1"), ("transfer-cancel", "agent1"),
        ("hangup", "agent1"), ("monitor", "sup"), ("transfer", "agent1"),
    ]  # fmt: skip
    assert sent[-1][1] == {"call_id": call, "action": "transfer", "by": "agent1", "mode": "blind", "queue": True}
    by_action = {d["action"]: d for _, d in sent[:-1]}
    assert [d["held"] for _, d in sent if d["action"] == "hold"] == [True, False]
    assert by_action["dtmf"]["digits"] == "123#" and by_action["conference"]["number"] == "12315"
    assert by_action["transfer"] | {"by": ""} == {
        "call_id": call, "action": "transfer", "by": "", "mode": "attended", "number": "12333"
    }  # fmt: skip
    assert by_action["monitor"]["mode"] == "whisper" and by_action["monitor"]["uri"] == sup_uri


async def test_transfer_to_an_agent_pauses_him_and_hands_him_the_controls(
    api: Client, client: redis.asyncio.Redis, store: SqlTicketStore
) -> None:
    call = "20261122T020000-0000dddd"
    await live_call_with_agent(client, store, call)
    queue = RedisCallQueue(client)
    agent2 = store.get_agent(AgentId("a2"))
    assert agent2 is not None
    path = f"{API}/calls/{call}/transfer"
    agent1, agent2_token = await token(api, "agent1"), await token(api, "agent2")

    body = {"target": "agent:a2", "mode": "blind"}
    assert await error(await api.post(path, json=body, headers=agent1)) == (409, "agent-not-available")  # logged out
    await queue.agent_login(agent2, 5_000)
    response = await api.post(path, json=body, headers=agent1)
    assert response.status == 202, await response.text()
    status = await queue.agent_status(AgentId("a2"))
    assert status.state is AgentState.PAUSED and status.reason == ev.TRANSFER_PAUSE
    assert await error(await api.post(path, json=body, headers=agent1)) == (409, "agent-not-available")
    assert await error(await api.post(path, json={"target": "agent:zz"}, headers=agent1)) == (404, "no-such-agent")
    assert await error(await api.post(path, json={"target": "agent:a1"}, headers=agent1)) == (400, "invalid-request")
    ((_, sent),) = await commands(client)
    assert sent == {
        "call_id": call, "action": "transfer", "by": "agent1", "mode": "blind", "agent_id": "a2", "uri": "",
        "extension": "1002",
    }  # fmt: skip
    # Agent 2 has no call in the queue (he is paused): the controls are his once the worker
    # names him in the live-call registry, and no longer agent 1's.
    assert await error(await api.post(f"{API}/calls/{call}/hold", headers=agent2_token)) == (403, "forbidden")
    await RedisEventBus(client).track_call(WorkerId("w1"), CallId(call), {"call_id": call, "agent_id": "a2"})
    assert (await api.post(f"{API}/calls/{call}/hold", headers=agent2_token)).status == 202
    assert await error(await api.post(f"{API}/calls/{call}/hold", headers=agent1)) == (403, "forbidden")


@pytest.mark.parametrize(("action", "kind"), [("reject", ev.CMD_REJECT), ("answer", ev.CMD_ANSWER)])
async def test_reject_and_answer_are_for_the_agent_whose_phone_rings_with_the_call(
    api: Client, client: redis.asyncio.Redis, store: SqlTicketStore, action: str, kind: str
) -> None:
    call = "20261122T020000-0000eeee"
    queue, bus = RedisCallQueue(client), RedisEventBus(client)
    for agent_id in ("a1", "a2"):
        agent = store.get_agent(AgentId(agent_id))
        assert agent is not None
        await queue.agent_login(agent, 1_000 if agent_id == "a1" else 1_500)  # a1 is idle longest
    await queue.enqueue(CallId(call), WorkerId("w1"), "13800138000", 2_000)
    offer = await queue.dispatch_once(3_000, 30_000)
    assert offer is not None and offer.agent_id == "a1"
    path = f"{API}/calls/{call}/{action}"
    assert await error(await api.post(path, headers=await token(api, "agent1"))) == (404, "no-such-call")  # no worker
    await bus.track_call(WorkerId("w1"), CallId(call), {"call_id": call, "caller": "13800138000"})

    assert (await api.post(path)).status == 401
    for username in ("agent2", "sup", "admin", "zhujian"):  # his phone does not ring with it
        assert await error(await api.post(path, headers=await token(api, username))) == (403, "forbidden"), username
    agent1 = await token(api, "agent1")
    assert await error(await api.post(path, json={"why": "busy"}, headers=agent1)) == (400, "invalid-request")
    assert await commands(client) == []
    response = await api.post(path, headers=agent1)
    assert response.status == 202, await response.text()
    assert await response.json() == {"call_id": call, "action": action, "worker_id": "w1"}
    assert await commands(client) == [(kind, {"call_id": call, "agent_id": "a1", "by": "agent1"})]
    # The API changes nothing itself: the worker hangs up his leg, the queue hears of it from the flow.
    assert (await queue.agent_status(AgentId("a1"))).state is AgentState.RESERVED
    assert await queue.offer_answered(offer.offer_id, 4_000)  # he picked up after all
    assert await error(await api.post(path, headers=agent1)) == (409, "not-ringing")


# ------------------------------------------------------------------ the worker


class LinkSip:
    """A SIP endpoint that keeps what it is asked: the links, the hold music, the legs."""

    active_legs = 0

    def __init__(self) -> None:
        self.links: set[tuple[str, str]] = set()
        self.music: dict[str, tuple[str, str | None]] = {}  # leg -> (wav, recorder it also feeds)
        self.calls: list[tuple[Any, ...]] = []
        self.headers: dict[str, dict[str, str]] = {}  # leg -> the headers it was dialled with

    async def answer(self, leg_id: str, code: int = 200) -> None:
        self.calls.append(("answer", leg_id))

    async def hangup(self, leg_id: str, code: int = 603) -> None:
        self.calls.append(("hangup", leg_id, code))

    async def play(self, leg_id: str, wav_path: str, loop: bool = False) -> None:
        self.calls.append(("play", leg_id, Path(wav_path).name))

    async def play_hold(self, leg_id: str, wav_path: str, recorder_path: str | None = None) -> None:
        self.music[leg_id] = (wav_path, recorder_path)

    async def stop_play(self, leg_id: str) -> None:
        self.music.pop(leg_id, None)

    async def record(self, leg_id: str, wav_path: str) -> None:
        self.calls.append(("record", leg_id, Path(wav_path).name))

    async def stop_record(self, wav_path: str) -> None:
        pass

    async def keep_recorder(self, leg_id: str, wav_path: str) -> bool:
        self.calls.append(("keep", leg_id, Path(wav_path).name))
        return True

    async def mute_record(self, wav_path: str, muted: bool) -> None:
        pass

    async def dial(self, uri: str, leg_id: str, headers: dict[str, str] | None = None) -> None:
        self.calls.append(("dial", leg_id, uri))
        self.headers[leg_id] = dict(headers or {})

    async def bridge(self, leg_a: str, leg_b: str) -> None:
        self.links |= {(leg_a, leg_b), (leg_b, leg_a)}

    async def relink(
        self, add: frozenset[tuple[str, str]] = frozenset(), remove: frozenset[tuple[str, str]] = frozenset()
    ) -> None:
        self.links = (self.links - remove) | add

    async def send_dtmf(self, leg_id: str, digits: str) -> None:
        self.calls.append(("dtmf", leg_id, digits))

    def dialled(self, role: str) -> list[str]:
        return [c[1] for c in self.calls if c[0] == "dial" and c[1].startswith(role)]


class Call:
    """One connected call on a worker with a LinkSip: caller in-1, agent a1 on out-<call>-1."""

    def __init__(self, worker: Worker, sip: LinkSip, session: CallSession) -> None:
        self.worker, self.sip, self.session = worker, sip, session
        self.id = session.call_id
        self.caller = CALLER
        self.agent = AGENT.format(call=self.id)

    async def control(self, action: str, **data: Any) -> dict[str, Any]:
        """Sends a call-control command and returns its call.control outcome."""
        before = len(await self.outcomes())
        self.worker.controls.command(self.session, {"call_id": self.id, "action": action, "by": "t", **data})
        got = await until_async(lambda: self._outcome_after(before), timeout=5)
        assert isinstance(got, dict)
        return got

    async def _outcome_after(self, before: int) -> dict[str, Any] | None:
        outcomes = await self.outcomes()
        return outcomes[before] if len(outcomes) > before else None

    async def outcomes(self) -> list[dict[str, Any]]:
        return await published(self.worker.bus, ev.CALL_CONTROL)

    def leg(self, leg_id: str, state: LegState, code: int = 200) -> None:
        self.worker.on_sip_event(LegStateChanged(leg_id, state, code, "", True))


async def published(bus: Any, kind: str) -> list[dict[str, Any]]:
    raw = await bus._client.xrange("hotline:events")
    found = []
    for _id, fields in raw:
        got_kind, data = ev.decode({k.decode(): v.decode() for k, v in fields.items()})
        if got_kind == kind:
            found.append(data)
    return found


@pytest.fixture
async def connected(client: redis.asyncio.Redis, store: SqlTicketStore, tmp_path: Path) -> AsyncIterator[Call]:
    """A call answered by agent a1 through the real queue, on a worker whose endpoint is a LinkSip."""
    async with ringing_call(client, RedisCallQueue(client), store, tmp_path) as call:
        call.leg(call.agent, LegState.CONFIRMED)
        await until_async(lambda: asyncio.sleep(0, (call.caller, call.agent) in call.sip.links), timeout=5)
        await until_async(lambda: _on_call(call.worker.queue, "a1"), timeout=5)
        yield call


@contextlib.asynccontextmanager
async def ringing_call(
    client: redis.asyncio.Redis,
    queue: RedisCallQueue,
    store: SqlTicketStore,
    tmp_path: Path,
    ring_timeout_s: float = 2.0,
) -> AsyncIterator[Call]:
    """A call offered to agent a1 through the real queue, his phone ringing (a2 paused), on a
    worker whose endpoint is a LinkSip."""
    bus = RedisEventBus(client)
    for agent_id in ("a1", "a2"):
        agent = store.get_agent(AgentId(agent_id))
        assert agent is not None
        await queue.agent_login(agent, 1_000)
    await queue.agent_pause(AgentId("a2"), "小休", 1_000)  # the call goes to a1
    prompts = {name: Prompt(f"/p/{name}.wav", 30.0) for name in ("greeting", "hold_music")}
    settings = WorkerSettings(
        worker_id=WorkerId("w1"), recordings_dir=tmp_path / "rec", spool_dir=tmp_path / "spool", prompts=prompts,
        ring_timeout_s=ring_timeout_s, callback=CallbackConfig(dial_template="sip:{number}@127.0.0.1:5060"),
    )  # fmt: skip
    worker = Worker(settings, queue, bus)
    sip = LinkSip()
    worker.attach(sip)
    running = asyncio.create_task(worker.run())
    await until_async(lambda: bus.alive_workers(), timeout=5)
    worker.on_sip_event(IncomingCall(CALLER, "13800138000", "12345", "sip-1", "sip:13800138000@127.0.0.1"))
    worker.on_sip_event(MediaReady(CALLER))
    worker.on_sip_event(DtmfReceived(CALLER, "5", "rfc4733"))  # skips the greeting
    (session,) = worker.sessions.values()
    offer = await until_async(lambda: queue.dispatch_once(5_000, 30_000), timeout=5)
    assert isinstance(offer, Offer) and offer.agent_id == "a1"
    data = {"call_id": session.call_id, "offer_id": offer.offer_id, "agent_id": "a1", "agent_uri": "sip:1001@x"}

    async def dialled() -> bool:  # sent until the worker's command loop has it (offers are idempotent)
        if not sip.dialled("out-"):
            await bus.send_command(WorkerId("w1"), ev.CMD_OFFER, data)
            await asyncio.sleep(0.05)
        return bool(sip.dialled("out-"))

    await until_async(dialled, timeout=5)
    try:
        yield Call(worker, sip, session)
    finally:
        worker.stop()
        await running


async def _on_call(queue: RedisCallQueue, agent: str) -> bool:
    return (await queue.agent_status(AgentId(agent))).state is AgentState.ON_CALL


async def state_of(call: Call, agent: str) -> tuple[AgentState, str]:
    status = await call.worker.queue.agent_status(AgentId(agent))
    return status.state, status.reason


async def ended(call: Call) -> dict[str, Any]:
    call.leg(call.caller, LegState.DISCONNECTED)
    records = await until_async(lambda: published(call.worker.bus, ev.CALL_ENDED), timeout=5)
    assert isinstance(records, list)
    (record,) = records
    return record


async def test_hold_and_mute_change_who_hears_whom_and_hold_music_goes_into_the_recording(
    connected: Call,
) -> None:
    call, sip = connected, connected.sip
    caller, agent = call.caller, call.agent
    assert (await call.control("hold", held=True))["status"] == "done"
    assert sip.links == set()
    assert ("keep", caller, f"{call.id}.agent.wav") in sip.calls  # the agent channel outlives agents
    (music, recorder) = sip.music[caller]
    assert music == "/p/hold_music.wav" and recorder is not None and recorder.endswith(".agent.wav")
    assert (await call.control("hold", held=True))["status"] == "done"  # again: nothing changes
    assert sip.links == set() and caller in sip.music
    await call.control("hold", held=False)
    assert sip.links == {(caller, agent), (agent, caller)} and caller not in sip.music
    await call.control("mute", muted=True)
    assert sip.links == {(caller, agent)}  # the caller no longer hears the agent
    await call.control("mute", muted=False)
    assert sip.links == {(caller, agent), (agent, caller)}
    assert (await call.control("dtmf", digits="12#"))["status"] == "done"
    assert ("dtmf", caller, "12#") in sip.calls
    assert (await call.control("dtmf", digits="x"))["status"] == "failed"
    record = await ended(call)
    assert record["agent_id"] == "a1" and record["reason"] == ""


async def test_listen_whisper_barge_and_a_conference(connected: Call) -> None:
    call, sip = connected, connected.sip
    caller, agent = call.caller, call.agent
    await call.control("monitor", mode="listen", uri="sip:9001@127.0.0.1:5099")
    (sup,) = sip.dialled("mon-")
    assert ("dial", sup, "sip:9001@127.0.0.1:5099") in sip.calls
    talk = {(caller, agent), (agent, caller)}
    assert sip.links == talk  # nothing for him before he answers
    call.leg(sup, LegState.CONFIRMED)
    await until_async(lambda: asyncio.sleep(0, (caller, sup) in sip.links), timeout=5)
    assert sip.links == talk | {(caller, sup), (agent, sup)}
    await call.control("monitor", mode="whisper", uri="sip:9001@127.0.0.1:5099")  # the same leg, relinked
    assert sip.links == talk | {(caller, sup), (agent, sup), (sup, agent)}
    assert not [c for c in sip.calls if c[0] == "record" and c[1] == sup]  # a whisper is never recorded
    await call.control("monitor", mode="barge", uri="sip:9001@127.0.0.1:5099")
    assert sip.links == talk | {(caller, sup), (agent, sup), (sup, agent), (sup, caller)}
    assert sip.dialled("mon-") == [sup]

    await call.control("conference", number="12315")
    (dept,) = sip.dialled("con-")
    assert ("dial", dept, "sip:12315@127.0.0.1:5060") in sip.calls
    call.leg(dept, LegState.CONFIRMED)
    await until_async(lambda: asyncio.sleep(0, (dept, caller) in sip.links), timeout=5)
    assert {(caller, dept), (dept, caller), (agent, dept), (dept, agent), (dept, sup), (sup, dept)} <= sip.links
    assert ("record", dept, f"{call.id}.agent.wav") in sip.calls
    call.leg(sup, LegState.DISCONNECTED)  # the supervisor hangs up
    await until_async(lambda: asyncio.sleep(0, not any(sup in link for link in sip.links)), timeout=5)
    await ended(call)
    assert ("hangup", dept, 200) in sip.calls  # legs dialled for the call end with it


async def test_attended_transfer_consults_then_hands_the_caller_over(connected: Call) -> None:
    call, sip = connected, connected.sip
    caller, agent = call.caller, call.agent
    queue = call.worker.queue
    await queue.agent_resume(AgentId("a2"), 6_000)
    await queue.agent_pause(AgentId("a2"), ev.TRANSFER_PAUSE, 6_000)  # as the API does
    started = await call.control("transfer", mode="attended", agent_id="a2", uri="", extension="1002")
    assert started["status"] == "done"
    (target,) = sip.dialled("tar-")
    assert ("dial", target, "sip:1002@127.0.0.1:5060") in sip.calls
    assert sip.links == set() and caller in sip.music  # the caller hears music meanwhile
    assert (await call.control("transfer-complete"))["status"] == "failed"  # not answered yet
    call.leg(target, LegState.CONFIRMED)
    await until_async(lambda: asyncio.sleep(0, (agent, target) in sip.links), timeout=5)
    assert sip.links == {(agent, target), (target, agent)}  # consult
    assert (await call.control("transfer-complete"))["status"] == "done"
    assert sip.links == {(caller, target), (target, caller)} and caller not in sip.music
    assert ("hangup", agent, 200) in sip.calls
    assert ("record", target, f"{call.id}.agent.wav") in sip.calls
    assert call.session.agent_leg == target
    # The queue knows: a1 released (wrap-up 0 s in this queue), a2 on the call as if answered.
    assert await state_of(call, "a1") == (AgentState.AVAILABLE, f"{TRANSFERRED}a2")
    status = await queue.agent_status(AgentId("a2"))
    assert (status.state, status.call_id, status.calls_answered) == (AgentState.ON_CALL, call.id, 1)
    tracked = await call.worker.bus.tracked_calls(WorkerId("w1"))
    assert tracked[call.id]["agent_id"] == "a2"
    call.leg(agent, LegState.DISCONNECTED)  # the released leg's end: not the call's
    await asyncio.sleep(0.1)
    assert call.id in call.worker.sessions
    # The new agent hangs up: the call ends as an agent's hang-up, the record names him.
    call.leg(target, LegState.DISCONNECTED)
    records = await until_async(lambda: published(call.worker.bus, ev.CALL_ENDED), timeout=5)
    assert isinstance(records, list)
    (record,) = records
    assert record["agent_id"] == "a2" and record["hangup_by"] == "agent" and record["outcome"] == "answered"
    assert record["reason"] == "transferred a1 -> agent:a2 (attended)"
    await until_async(lambda: _available(queue, "a2"), timeout=5)


async def test_a_blind_transfer_to_an_agent_gives_him_the_call_in_the_queue(
    client: redis.asyncio.Redis, store: SqlTicketStore, tmp_path: Path
) -> None:
    queue = RedisCallQueue(client, policy=AcdPolicy(agent=AgentPolicy(wrap_up_ms=60_000)))
    async with ringing_call(client, queue, store, tmp_path) as call:
        sip, caller, agent = call.sip, call.caller, call.agent
        call.leg(agent, LegState.CONFIRMED)
        await until_async(lambda: _on_call(queue, "a1"), timeout=5)
        await queue.agent_resume(AgentId("a2"), 6_000)
        await queue.agent_pause(AgentId("a2"), ev.TRANSFER_PAUSE, 6_000)  # as the API does
        assert (await call.control("transfer", mode="blind", agent_id="a2", uri="sip:1002@x"))["status"] == "done"
        (target,) = sip.dialled("tar-")
        assert await state_of(call, "a2") == (AgentState.PAUSED, ev.TRANSFER_PAUSE)  # ringing
        assert (await state_of(call, "a1"))[0] is AgentState.ON_CALL
        call.leg(target, LegState.CONFIRMED)
        await until_async(lambda: asyncio.sleep(0, (caller, target) in sip.links), timeout=5)
        await until_async(lambda: _on_call(queue, "a2"), timeout=5)
        first, second = await queue.agent_status(AgentId("a1")), await queue.agent_status(AgentId("a2"))
        assert (first.state, first.call_id, first.reason) == (AgentState.WRAP_UP, call.id, f"{TRANSFERRED}a2")
        assert (second.state, second.call_id, second.reason, second.calls_answered) == (
            AgentState.ON_CALL,
            call.id,
            "",
            1,
        )
        record = await ended(call)
        assert record["agent_id"] == "a2" and record["reason"] == "transferred a1 -> agent:a2 (blind)"
        # The call's end is his: wrap-up on it, and it stays so (nobody resumes him).
        await until_async(lambda: _state_is(queue, "a2", AgentState.WRAP_UP), timeout=5)
        await asyncio.sleep(0.2)
        second = await queue.agent_status(AgentId("a2"))
        assert (second.state, second.call_id) == (AgentState.WRAP_UP, call.id)
        assert (await queue.agent_status(AgentId("a1"))).since_ms == first.since_ms  # his wrap-up unchanged


async def _state_is(queue: Any, agent: str, state: AgentState) -> bool:
    return (await queue.agent_status(AgentId(agent))).state is state


async def _available(queue: Any, agent: str) -> bool:
    return (await queue.agent_status(AgentId(agent))).state is AgentState.AVAILABLE


async def test_a_blind_transfer_that_fails_puts_the_caller_back_with_the_agent(connected: Call) -> None:
    call, sip = connected, connected.sip
    caller, agent = call.caller, call.agent
    await call.control("transfer", mode="blind", number="12333")
    (target,) = sip.dialled("tar-")
    assert sip.links == set() and caller in sip.music
    assert (await call.control("transfer", mode="blind", number="12345"))["status"] == "failed"  # one at a time
    call.leg(target, LegState.DISCONNECTED, 486)
    await until_async(lambda: asyncio.sleep(0, (caller, agent) in sip.links), timeout=5)
    assert sip.links == {(caller, agent), (agent, caller)} and caller not in sip.music
    outcomes = await call.outcomes()
    assert {"action": "transfer", "status": "failed", "detail": "number:12333: busy"}.items() <= outcomes[-1].items()
    # A second try rings out: hung up after ring_timeout (2 s here), the caller back again.
    await call.control("transfer", mode="blind", number="12334")
    (_, second) = sip.dialled("tar-")
    await until_async(lambda: asyncio.sleep(0, ("hangup", second, 487) in sip.calls), timeout=5)
    call.leg(second, LegState.DISCONNECTED, 487)
    await until_async(lambda: asyncio.sleep(0, (caller, agent) in sip.links), timeout=5)
    record = await ended(call)
    assert record["agent_id"] == "a1"
    assert record["reason"] == "transfer to number:12333 failed: busy; transfer to number:12334 failed: no-answer"


async def test_the_first_agent_hanging_up_during_a_blind_transfer_hands_the_call_over(connected: Call) -> None:
    call, sip = connected, connected.sip
    caller, agent = call.caller, call.agent
    await call.control("transfer", mode="blind", number="12333")
    (target,) = sip.dialled("tar-")
    call.leg(agent, LegState.DISCONNECTED)  # he hangs up while the target rings
    await asyncio.sleep(0.1)
    assert call.id in call.worker.sessions and caller in sip.music
    call.leg(target, LegState.CONFIRMED)
    await until_async(lambda: asyncio.sleep(0, (caller, target) in sip.links), timeout=5)
    assert sip.links == {(caller, target), (target, caller)} and caller not in sip.music
    record = await ended(call)
    assert record["agent_id"] == "a1" and record["reason"] == "transferred a1 -> number:12333 (blind)"


async def test_controls_of_a_call_not_connected_are_refused(connected: Call) -> None:
    call = connected
    call.leg(call.caller, LegState.DISCONNECTED)
    await until_async(lambda: asyncio.sleep(0, call.session.finished), timeout=5)
    outcome = await call.control("hold", held=True)
    assert outcome["status"] == "failed" and "not connected" in outcome["detail"]


async def test_a_transfer_for_a_call_gone_resumes_the_target_agent(connected: Call) -> None:
    call = connected
    queue = call.worker.queue
    await queue.agent_resume(AgentId("a2"), 6_000)
    await queue.agent_pause(AgentId("a2"), ev.TRANSFER_PAUSE, 6_000)  # as the API does
    data = {"call_id": "20261122T000000-gone", "action": "transfer", "agent_id": "a2", "by": "t"}
    call.worker.controls.command(None, data)
    await until_async(lambda: _available(queue, "a2"), timeout=5)
    (outcome,) = await call.outcomes()
    assert outcome["call_id"] == "20261122T000000-gone" and outcome["status"] == "failed"


async def test_a_transfer_to_the_queue_puts_the_call_back_at_its_place_for_the_next_agent(connected: Call) -> None:
    call, sip = connected, connected.sip
    caller, agent = call.caller, call.agent
    queue, bus = call.worker.queue, call.worker.bus
    assert call.session.queued_at is not None
    arrived = int(call.session.queued_at.timestamp() * 1000)
    await queue.enqueue(CallId("20261122T235959-later"), WorkerId("w9"), "13900000000", arrived + 60_000)
    outcome = await call.control("transfer", mode="blind", queue=True)
    assert outcome["status"] == "done" and outcome["detail"] == "1"  # ahead of the later caller
    assert ("hangup", agent, 200) in sip.calls and not any(agent in link for link in sip.links)
    assert call.session.flow.phase.value == "waiting"
    await until_async(lambda: asyncio.sleep(0, ("play", caller, "hold_music.wav") in sip.calls), timeout=5)
    waiting = await queue.waiting()
    assert [(w.call_id, w.arrival_ms) for w in waiting] == [
        (call.id, arrived),
        ("20261122T235959-later", arrived + 60_000),
    ]
    assert (await state_of(call, "a1"))[0] is AgentState.AVAILABLE  # released (wrap-up 0 s here)
    # Agent 2 takes it as any queued call: offered, dialled, bridged, recorded in the same file.
    await queue.agent_resume(AgentId("a2"), 9_000)
    offer = await until_async(lambda: queue.dispatch_once(10_000, 30_000), timeout=5)
    assert isinstance(offer, Offer) and (offer.call_id, offer.agent_id) == (call.id, "a2")
    data = {"call_id": call.id, "offer_id": offer.offer_id, "agent_id": "a2", "agent_uri": "sip:1002@x"}
    await bus.send_command(WorkerId("w1"), ev.CMD_OFFER, data)
    await until_async(lambda: asyncio.sleep(0, len(sip.dialled("out-")) == 2), timeout=5)
    second = sip.dialled("out-")[1]
    call.leg(second, LegState.CONFIRMED)
    await until_async(lambda: asyncio.sleep(0, (caller, second) in sip.links), timeout=5)
    assert ("record", second, f"{call.id}.agent.wav") in sip.calls
    assert (await call.control("hold", held=True))["status"] == "done"  # his controls work as usual
    assert not any(second in link for link in sip.links)
    record = await ended(call)
    assert record["agent_id"] == "a2" and record["reason"] == "transferred a1 -> queue"


async def test_an_agent_rejecting_the_ringing_call_is_paused_and_the_caller_goes_to_the_next_agent(
    client: redis.asyncio.Redis, store: SqlTicketStore, tmp_path: Path
) -> None:
    # A phone that fails an offer would leave its agent available with this policy: a reject is
    # not such a failure, its agent is paused all the same.
    queue = RedisCallQueue(client, policy=AcdPolicy(agent=AgentPolicy(pause_on_agent_failure=False)))
    async with ringing_call(client, queue, store, tmp_path) as call:
        sip, bus = call.sip, RedisEventBus(client)
        ((offered,),) = [await queue.offered()]
        assert offered.offered_to == "a1"

        async def reject(agent_id: str) -> dict[str, Any]:  # sent as the API sends it
            before = len(await call.outcomes())
            data = {"call_id": call.id, "agent_id": agent_id, "by": f"agent-{agent_id}"}
            await bus.send_command(WorkerId("w1"), ev.CMD_REJECT, data)
            got = await until_async(lambda: call._outcome_after(before), timeout=5)
            assert isinstance(got, dict)
            return got

        refused = await reject("a2")  # nothing rings at his phone
        assert (refused["action"], refused["status"]) == ("reject", "failed")
        assert not [c for c in sip.calls if c[0] == "hangup"]
        done = await reject("a1")
        assert (done["action"], done["status"], done["by"]) == ("reject", "done", "agent-a1")
        assert ("hangup", call.agent, 603) in sip.calls
        call.leg(call.agent, LegState.DISCONNECTED, 487)  # his phone stops ringing

        async def paused() -> bool:
            return await state_of(call, "a1") == (AgentState.PAUSED, ev.REJECT_PAUSE)

        await until_async(paused, timeout=5)
        states = [d for d in await published(bus, ev.AGENT_STATE) if d["agent_id"] == "a1"]
        assert (states[-1]["state"], states[-1]["by"]) == ("paused", "agent")  # his choice, not his phone
        # The caller kept his place (his arrival time) and is offered to the next agent.
        ((waiting,),) = [await queue.waiting()]
        assert (waiting.call_id, waiting.arrival_ms, waiting.position) == (call.id, offered.arrival_ms, 1)
        now = epoch_ms()
        await queue.agent_resume(AgentId("a2"), now)
        offer = await queue.dispatch_once(now, 30_000)
        assert isinstance(offer, Offer) and (offer.call_id, offer.agent_id) == (call.id, "a2")
        data = {"call_id": call.id, "offer_id": offer.offer_id, "agent_id": "a2", "agent_uri": "sip:1002@x"}
        await bus.send_command(WorkerId("w1"), ev.CMD_OFFER, data)
        await until_async(lambda: asyncio.sleep(0, len(sip.dialled("out-")) == 2), timeout=5)
        second = sip.dialled("out-")[1]
        assert ("dial", second, "sip:1002@x") in sip.calls
        call.leg(second, LegState.CONFIRMED)
        await until_async(lambda: _on_call(queue, "a2"), timeout=5)
        assert await state_of(call, "a1") == (AgentState.PAUSED, ev.REJECT_PAUSE)


async def test_answering_from_the_desk_redials_the_phone_asking_it_to_pick_up(
    client: redis.asyncio.Redis, store: SqlTicketStore, tmp_path: Path
) -> None:
    queue = RedisCallQueue(client)
    async with ringing_call(client, queue, store, tmp_path, ring_timeout_s=60.0) as call:
        sip, bus, session = call.sip, RedisEventBus(client), call.session
        assert "Call-Info" not in sip.headers[call.agent]  # an offer rings as usual

        async def answer(agent_id: str) -> dict[str, Any]:  # sent as the API sends it
            before = len(await call.outcomes())
            data = {"call_id": call.id, "agent_id": agent_id, "by": f"agent-{agent_id}"}
            await bus.send_command(WorkerId("w1"), ev.CMD_ANSWER, data)
            got = await until_async(lambda: call._outcome_after(before), timeout=5)
            assert isinstance(got, dict)
            return got

        refused = await answer("a2")  # nothing rings at his phone
        assert (refused["action"], refused["status"]) == ("answer", "failed")
        assert not [c for c in sip.calls if c[0] == "hangup"] and len(sip.dialled("out-")) == 1
        done = await answer("a1")
        assert (done["action"], done["status"], done["by"]) == ("answer", "done", "agent-a1")
        assert ("hangup", call.agent, 487) in sip.calls  # a CANCEL to the ringing phone
        first, second = sip.dialled("out-")
        assert first == call.agent and ("dial", second, "sip:1001@x") in sip.calls
        assert sip.headers[second] == {
            "X-Hotline-Call-Id": call.id,
            "Call-Info": "<sip:127.0.0.1>;answer-after=0",
            "Alert-Info": "<http://127.0.0.1>;info=alert-autoanswer",
            "Answer-Mode": "Auto",
        }
        assert session.agent_leg == second and call.agent not in call.worker.by_leg
        # The cancelled leg's end reaches neither the flow nor the queue.
        call.leg(call.agent, LegState.DISCONNECTED, 487)  # handled at once: the flow would have moved
        assert session.flow.phase.name == "OFFERING" and session.agent_leg == second
        assert await state_of(call, "a1") == (AgentState.RESERVED, "")
        ((offered,),) = [await queue.offered()]
        assert offered.offered_to == "a1"
        assert (await answer("a1"))["status"] == "done"  # asked again: the new leg is redialled
        third = sip.dialled("out-")[2]
        assert ("hangup", second, 487) in sip.calls and session.agent_leg == third
        # The phone picks up by itself: bridged, the agent on the call.
        call.leg(third, LegState.CONFIRMED)
        await until_async(lambda: asyncio.sleep(0, (call.caller, third) in sip.links), timeout=5)
        await until_async(lambda: _on_call(queue, "a1"), timeout=5)
        assert (await answer("a1"))["status"] == "failed"  # answered: nothing rings any more
        record = await ended(call)
        assert (record["outcome"], record["agent_id"]) == ("answered", "a1")


async def test_a_phone_that_fails_the_answering_leg_fails_the_offer(
    client: redis.asyncio.Redis, store: SqlTicketStore, tmp_path: Path
) -> None:
    queue = RedisCallQueue(client)
    async with ringing_call(client, queue, store, tmp_path, ring_timeout_s=60.0) as call:
        sip, bus = call.sip, RedisEventBus(client)
        data = {"call_id": call.id, "agent_id": "a1", "by": "agent1"}
        await bus.send_command(WorkerId("w1"), ev.CMD_ANSWER, data)
        await until_async(lambda: asyncio.sleep(0, len(sip.dialled("out-")) == 2), timeout=5)
        second = sip.dialled("out-")[1]
        call.leg(call.agent, LegState.DISCONNECTED, 487)  # the cancelled leg: nobody's business
        assert await state_of(call, "a1") == (AgentState.RESERVED, "")
        call.leg(second, LegState.DISCONNECTED, 486)  # but his phone is busy for the new one

        async def back_in_queue() -> bool:
            return [w.call_id for w in await queue.waiting()] == [call.id]

        await until_async(back_in_queue, timeout=5)  # the offer failed as any other: the caller waits on
        assert (await state_of(call, "a1"))[0] is not AgentState.RESERVED
        assert call.session.agent_leg is None and call.session.flow.phase.name == "WAITING"
