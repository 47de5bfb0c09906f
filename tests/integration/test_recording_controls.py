"""Recording controls across processes' boundaries: the pause route of the API, the command on the
worker's Redis stream, the worker muting the recorders and marking the gap, FLAC at call end, the
ticket writer cataloguing gaps; and a real small filesystem (a tmpfs of a few MB mounted by the
test) running out of room: calls go on unrecorded, an alert is raised, the gap says why.

Real redis-server, real SQLite ticket store, real aiohttp server, real sox. The SIP endpoint is a
fake that writes real WAV files (the real endpoint's muting is checked end to end in
tests/e2e/test_recording_pause_e2e.py)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis.asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.agent_desktop.api_calls import LIVE_CALLS
from hotline.agent_desktop.app import make_app
from hotline.agent_desktop.auth import Auth, MemorySessions
from hotline.core import events as ev
from hotline.core.model import Agent, AgentId, CallId, CallRecord, Outcome, WorkerId
from hotline.queue.acd import RedisCallQueue
from hotline.queue.bus import RedisEventBus
from hotline.recordings.space import SpaceGuard
from hotline.runtime.control import Control, ControlSettings
from hotline.runtime.worker import Prompt, Worker, WorkerSettings
from hotline.sip.events import IncomingCall, LegState, LegStateChanged, MediaReady
from hotline.tickets.store import SqlTicketStore
from tests.support import until_async

API = "/api/v1"
PASSWORD = "密码-long-enough"
Client = TestClient[web.Request, web.Application]
ACCOUNTS = {"agent1": ("agent", "a1"), "agent2": ("agent", "a2"), "sup": ("supervisor", None)}


# ------------------------------------------------------------------ the API route


@pytest.fixture(scope="module")
def accounts_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("accounts") / "tickets.db"
    store = SqlTicketStore(f"sqlite:///{path}")
    store.add_agent(Agent(AgentId("a1"), "张伟", "1001", sip_uri="sip:1001@127.0.0.1"))
    store.add_agent(Agent(AgentId("a2"), "李娜", "1002", sip_uri="sip:1002@127.0.0.1"))
    for username, (role, agent) in ACCOUNTS.items():
        store.add_account(username, PASSWORD, role, None if agent is None else AgentId(agent))
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


async def test_the_calls_agent_and_supervisors_pause_others_get_403_and_404(
    api: Client, client: redis.asyncio.Redis, store: SqlTicketStore
) -> None:
    call = "20261122T010000-0000aaaa"
    await live_call_with_agent(client, store, call)
    path = f"{API}/calls/{call}/recording"
    agent1, agent2, sup = [await token(api, u) for u in ("agent1", "agent2", "sup")]

    response = await api.post(path, json={"paused": True}, headers=agent1)
    assert response.status == 202, await response.text()
    assert await response.json() == {"call_id": call, "paused": True, "worker_id": "w1"}
    response = await api.post(path, json={"paused": True}, headers=agent2)
    assert response.status == 403 and (await response.json())["error"] == "forbidden"
    response = await api.post(path, json={"paused": False}, headers=sup)
    assert response.status == 202
    response = await api.post(f"{API}/calls/no-such-call/recording", json={"paused": True}, headers=agent1)
    assert response.status == 404 and (await response.json())["error"] == "no-such-call"
    for bad in ({"paused": "yes"}, {}, {"paused": True, "why": "x"}):
        response = await api.post(path, json=bad, headers=agent1)
        assert response.status == 400, bad
    response = await api.post(path, json={"paused": True})
    assert response.status == 401
    assert await commands(client) == [
        (ev.CMD_RECORDING, {"call_id": call, "paused": True, "by": "agent1"}),
        (ev.CMD_RECORDING, {"call_id": call, "paused": False, "by": "sup"}),
    ]
    # Finished (no worker runs it any more): 404, even for its own agent.
    await RedisEventBus(client).untrack_call(WorkerId("w1"), CallId(call))
    response = await api.post(path, json={"paused": True}, headers=agent1)
    assert response.status == 404


async def test_the_recording_view_shows_gaps_or_why_it_is_missing(
    api: Client, store: SqlTicketStore, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from hotline.recordings.gaps import Gap

    started = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
    for call, agent in (("c-paused", "a1"), ("c-missing", "a1"), ("c-other", "a2")):
        store.save_call(CallRecord(CallId(call), "13800138000", "12345", WorkerId("w1"), started, Outcome.ANSWERED,
                                   agent_id=AgentId(agent)))  # fmt: skip
    store.register_recording(CallId("c-paused"), str(tmp_path / "x.flac"), format="flac", bytes=100, seconds=9.5,
                             sha256="cd" * 32, created_at=started)  # fmt: skip
    store.add_recording_gaps(CallId("c-paused"), [Gap(1200, 3400, "agent1", "paused")], started)
    store.add_recording_gaps(CallId("c-missing"), [Gap(0, None, "system", "disk-low")], started)
    agent1 = await token(api, "agent1")
    response = await api.get(f"{API}/calls/c-paused/recording", headers=agent1)
    assert response.status == 200
    body = await response.json()
    assert body["missing"] is None and body["recording"]["format"] == "flac" and "path" not in body["recording"]
    assert body["gaps"] == [{"start_ms": 1200, "end_ms": 3400, "reason": "paused", "by": "agent1"}]
    body = await (await api.get(f"{API}/calls/c-missing/recording", headers=agent1)).json()
    assert body["recording"] is None and body["missing"] == "disk-low"
    assert (await api.get(f"{API}/calls/c-other/recording", headers=agent1)).status == 403
    assert (await api.get(f"{API}/calls/nope/recording", headers=agent1)).status == 404


# ------------------------------------------------------------------ the worker


class FileSip:
    """A SIP endpoint whose recorders write real mono WAVs (1 s of tone each) when stopped."""

    active_legs = 0

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.recording: set[str] = set()

    async def answer(self, leg_id: str, code: int = 200) -> None:
        self.calls.append(("answer", leg_id))

    async def hangup(self, leg_id: str, code: int = 603) -> None:
        self.calls.append(("hangup", leg_id))

    async def play(self, leg_id: str, wav_path: str, loop: bool = False) -> None:
        pass

    async def stop_play(self, leg_id: str) -> None:
        pass

    async def record(self, leg_id: str, wav_path: str) -> None:
        self.calls.append(("record", Path(wav_path).name))
        self.recording.add(wav_path)

    async def stop_record(self, wav_path: str) -> None:
        if wav_path not in self.recording:
            return
        self.recording.discard(wav_path)
        self.calls.append(("stop", Path(wav_path).name))
        tone = (3000 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype("<i2")
        with wave.open(wav_path, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(tone.tobytes())

    async def mute_record(self, wav_path: str, muted: bool) -> None:
        self.calls.append(("mute", Path(wav_path).name, muted))

    async def dial(self, uri: str, leg_id: str, headers: dict[str, str] | None = None) -> None:
        pass

    async def bridge(self, leg_a: str, leg_b: str) -> None:
        pass


@contextlib.asynccontextmanager
async def running_worker(
    client: redis.asyncio.Redis, recordings: Path, tmp_path: Path, **settings: Any
) -> AsyncIterator[tuple[Worker, FileSip]]:
    prompts = {name: Prompt(f"/p/{name}.wav", 30.0) for name in ("greeting", "hold_music")}
    worker_settings = WorkerSettings(
        worker_id=WorkerId("w1"), recordings_dir=recordings, spool_dir=tmp_path / "spool", prompts=prompts, **settings
    )
    worker = Worker(worker_settings, RedisCallQueue(client), RedisEventBus(client))
    sip = FileSip()
    worker.attach(sip)
    task = asyncio.create_task(worker.run())
    await until_async(lambda: RedisEventBus(client).alive_workers(), timeout=5)
    try:
        yield worker, sip
    finally:
        worker.stop()
        await task


def incoming(worker: Worker, leg: str, caller: str) -> CallId:
    before = set(worker.sessions)
    worker.on_sip_event(IncomingCall(leg, caller, "12345", f"sip-{leg}", f"sip:{caller}@127.0.0.1"))
    worker.on_sip_event(MediaReady(leg))
    (call_id,) = set(worker.sessions) - before
    return call_id


async def write_records(client: redis.asyncio.Redis, store: SqlTicketStore) -> None:
    """The control plane's ticket writer, once over what the workers published."""
    control = Control(ControlSettings(), RedisCallQueue(client), RedisEventBus(client), store, lambda o: "",
                      recordings=store)  # fmt: skip
    await control.bus.ensure_group("tickets")
    await control.ticket_step(block_ms=0)


async def published(client: redis.asyncio.Redis, kind: str) -> list[dict[str, Any]]:
    raw = await client.xrange("hotline:events")
    found = []
    for _id, fields in raw:
        entry = {k.decode(): v.decode() for k, v in fields.items()}
        got_kind, data = ev.decode(entry)
        if got_kind == kind:
            found.append(data)
    return found


async def test_pause_command_mutes_both_legs_and_the_flac_and_gap_are_catalogued(
    client: redis.asyncio.Redis, store: SqlTicketStore, tmp_path: Path
) -> None:
    recordings = tmp_path / "rec"
    async with running_worker(client, recordings, tmp_path, recording_format="flac") as (worker, sip):
        call = incoming(worker, "in-1", "13800138000")
        await until_async(lambda: asyncio.sleep(0, ("record", f"{call}.caller.wav") in sip.calls), timeout=5)
        bus = RedisEventBus(client)

        async def muted() -> bool:  # sent until the worker's command loop has it (pausing is idempotent)
            if ("mute", f"{call}.caller.wav", True) not in sip.calls:
                await bus.send_command(WorkerId("w1"), ev.CMD_RECORDING, {"call_id": call, "paused": True, "by": "a"})
                await asyncio.sleep(0.05)
            return ("mute", f"{call}.caller.wav", True) in sip.calls

        await until_async(muted, timeout=5)
        await bus.send_command(WorkerId("w1"), ev.CMD_RECORDING, {"call_id": call, "paused": True, "by": "b"})
        await asyncio.sleep(0.3)  # a second pause: no second gap (checked below), no new mute
        assert [c for c in sip.calls if c[0] == "mute"] == [("mute", f"{call}.caller.wav", True)]
        # The caller hangs up while paused: the gap is closed at the end of the call.
        worker.on_sip_event(LegStateChanged("in-1", LegState.DISCONNECTED, 200, "BYE", True))
        await until_async(lambda: published(client, ev.CALL_ENDED), timeout=5)
    (ended,) = await published(client, ev.CALL_ENDED)
    flac = Path(ended["recording_path"])
    flac_bytes = await asyncio.to_thread(lambda: flac.stat().st_size)
    assert flac.suffix == ".flac" and flac_bytes > 0
    assert not await asyncio.to_thread(lambda: list(flac.parent.glob("*.wav")))  # the WAV and leg files are gone
    (gap,) = ended["recording_gaps"]
    assert gap["by"] == "a" and gap["reason"] == "paused" and gap["end_ms"] >= gap["start_ms"]
    await write_records(client, store)
    recording = store.get_recording(CallId(call))
    assert recording is not None and recording.format == "flac" and recording.path == str(flac)
    assert recording.seconds == 1.0 and recording.bytes == flac_bytes
    assert [g.to_dict() for g in recording.gaps] == [
        {"start_ms": gap["start_ms"], "end_ms": gap["end_ms"], "reason": "paused", "by": "a"}
    ]


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs mounted for the test (needs root, or CAP_SYS_ADMIN): a real full disk."""
    mount = tmp_path / "volume"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    assert done.returncode == 0, f"cannot mount a tmpfs (root needed): {done.stderr.decode()}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_volume_alerts_and_calls_go_on_unrecorded(
    client: redis.asyncio.Redis, store: SqlTicketStore, tmp_path: Path, small_volume: Path
) -> None:
    recordings = small_volume / "recordings"
    guard = SpaceGuard(2)  # 2 MB of the 4 MB tmpfs; the real statvfs
    async with running_worker(client, recordings, tmp_path, recording_space=guard) as (worker, sip):
        first = incoming(worker, "in-1", "13800138001")
        await until_async(lambda: asyncio.sleep(0, ("record", f"{first}.caller.wav") in sip.calls), timeout=5)
        # The volume fills up mid-call: the worker's check stops the recorder and alerts.
        (small_volume / "filler").write_bytes(b"\0" * (3 * 1024 * 1024))
        await until_async(lambda: asyncio.sleep(0, ("stop", f"{first}.caller.wav") in sip.calls), timeout=10)
        # A new call is answered and queued, but not recorded.
        second = incoming(worker, "in-2", "13800138002")
        await until_async(lambda: asyncio.sleep(0, ("answer", "in-2") in sip.calls), timeout=5)
        await until_async(lambda: RedisCallQueue(client).position(second), timeout=5)
        assert not any(c[0] == "record" and second in c[1] for c in sip.calls)
        for leg in ("in-1", "in-2"):
            worker.on_sip_event(LegStateChanged(leg, LegState.DISCONNECTED, 200, "BYE", True))
        await until_async(lambda: len_is(published(client, ev.CALL_ENDED), 2), timeout=5)
    alerts = await published(client, ev.ALERT)
    assert [a["alert"] for a in alerts] == ["recordings-disk-low"]  # one per episode
    assert alerts[0]["min_free_mb"] == 2 and alerts[0]["free_mb"] < 2 and "录音" in alerts[0]["message"]
    ended = {e["call_id"]: e for e in await published(client, ev.CALL_ENDED)}
    # Both answered and queued (hanging up in the 30 s greeting), never refused or dropped.
    assert ended[first]["outcome"] == ended[second]["outcome"] == "abandoned_in_greeting"
    assert ended[first]["recording_path"] and ended[first]["recording_missing"] == ""
    assert ended[second]["recording_path"] is None and ended[second]["recording_missing"] == "disk-low"
    await write_records(client, store)
    cut = store.recording_gaps(first)
    assert [(g.reason, g.by, g.end_ms is not None) for g in cut] == [("disk-low", "system", True)]
    assert [(g.start_ms, g.end_ms, g.reason) for g in store.recording_gaps(second)] == [(0, None, "disk-low")]
    assert store.get_call(second) is not None


async def len_is(items: Any, n: int) -> bool:
    return len(await items) == n


async def test_playback_names_the_gaps_in_a_header(api: Client, store: SqlTicketStore, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from hotline.recordings.catalog import register
    from hotline.recordings.gaps import Gap

    started = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
    wav = tmp_path / "c-gap.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0" * 32000)
    store.save_call(CallRecord(CallId("c-gap"), "13800138000", "12345", WorkerId("w1"), started, Outcome.ANSWERED,
                               agent_id=AgentId("a1")))  # fmt: skip
    await register(store, "c-gap", wav, started)
    store.add_recording_gaps(CallId("c-gap"), [Gap(100, 400, "agent1", "paused"), Gap(700, None, "system", "disk-low")],
                             started)  # fmt: skip
    response = await api.get(f"{API}/recordings/c-gap", params={"why": "质检"}, headers=await token(api, "sup"))
    assert response.status == 200
    assert response.headers["X-Recording-Gaps"] == "100-400 paused, 700- disk-low"
    assert await response.read() == wav.read_bytes()
