"""The worker carries out the flow's new commands (fakes for SIP, the queue and the bus)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hotline.core import events as ev
from hotline.core.model import CallId, Outcome, Priority, WorkerId
from hotline.ivr.loader import load_flow
from hotline.runtime.worker import Prompt, Worker, WorkerSettings
from hotline.sip.events import DtmfReceived, IncomingCall, LegState, LegStateChanged, MediaReady

CONFIG = Path(__file__).resolve().parents[2] / "config" / "ivr"


async def until_async(predicate: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.01)


class FakeSip:
    active_legs = 0

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def answer(self, leg_id: str, code: int = 200) -> None:
        self.calls.append(("answer", leg_id))

    async def hangup(self, leg_id: str, code: int = 603) -> None:
        self.calls.append(("hangup", leg_id))

    async def play(self, leg_id: str, wav_path: str, loop: bool = False) -> None:
        self.calls.append(("play", wav_path))

    async def stop_play(self, leg_id: str) -> None:
        self.calls.append(("stop_play", leg_id))

    async def record(self, leg_id: str, wav_path: str) -> None:
        self.calls.append(("record", wav_path))

    async def stop_record(self, wav_path: str) -> None:
        pass

    async def dial(self, uri: str, leg_id: str, headers: dict[str, str] | None = None) -> None:
        self.calls.append(("dial", uri))

    async def bridge(self, leg_a: str, leg_b: str) -> None:
        self.calls.append(("bridge", leg_a))


class FakeQueue:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        async def method(*args: Any, **kw: Any) -> Any:
            self.calls.append((name, args[1:] if name == "set_priority" else args[:1]))
            return {"position": 3, "estimated_wait_s": 90.0, "request_callback": True}.get(name)

        return method


class FakeBus:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    async def publish(self, kind: str, data: dict[str, Any]) -> str:
        self.published.append((kind, data))
        return "1-0"

    async def track_call(self, *args: Any) -> None:
        pass

    async def untrack_call(self, *args: Any) -> None:
        pass


def make_worker(tmp_path: Path, flow: str = "default", **kw: Any) -> tuple[Worker, FakeSip, FakeQueue, FakeBus]:
    prompts = {name: Prompt(f"/p/{name}.wav", 2.0) for name in ("greeting", "hold_music", "callback_confirmed")}
    settings = WorkerSettings(
        worker_id=WorkerId("w0"),
        recordings_dir=tmp_path / "rec",
        spool_dir=tmp_path / "spool",
        prompts=prompts,
        ivr_flow=load_flow(CONFIG / f"{flow}.yaml"),
    )
    queue, bus, sip = FakeQueue(), FakeBus(), FakeSip()
    worker = Worker(settings, queue, bus, **kw)  # type: ignore[arg-type]
    worker.attach(sip)
    return worker, sip, queue, bus


async def start_call(worker: Worker) -> CallId:
    worker.on_sip_event(IncomingCall("in-1", "13800138000", "12345", "sip-1", "sip:13800138000@127.0.0.1"))
    worker.on_sip_event(MediaReady("in-1"))
    (call_id,) = worker.sessions
    return call_id


def ended(bus: FakeBus) -> list[dict[str, Any]]:
    return [data for kind, data in bus.published if kind == ev.CALL_ENDED]


async def test_priority_key_raises_in_the_queue_after_the_enqueue(tmp_path: Path) -> None:
    worker, _sip, queue, _ = make_worker(tmp_path)
    await start_call(worker)
    worker.on_sip_event(DtmfReceived("in-1", "0", "rfc4733"))
    await until_async(lambda: ("set_priority", (Priority.FLAGGED,)) in queue.calls, timeout=2)
    names = [name for name, _ in queue.calls]
    assert names.index("enqueue") < names.index("set_priority")


async def test_callback_key_requests_a_callback_and_never_abandons(tmp_path: Path) -> None:
    worker, _sip, queue, bus = make_worker(tmp_path)
    await start_call(worker)
    worker.on_sip_event(DtmfReceived("in-1", "1", "rfc4733"))
    await until_async(lambda: any(n == "request_callback" for n, _ in queue.calls), timeout=2)
    # The caller hangs up while the confirmation plays.
    worker.on_sip_event(LegStateChanged("in-1", LegState.DISCONNECTED, 200, "Normal call clearing", True))
    await until_async(lambda: ended(bus), timeout=2)
    assert ended(bus)[0]["outcome"] == Outcome.CALLBACK_REQUESTED.value
    await asyncio.sleep(0)
    assert not any(n == "abandon" for n, _ in queue.calls)


async def test_speech_commands_feed_the_flow_and_lookups_reach_the_ticket_store(tmp_path: Path) -> None:
    looked_up: list[str] = []

    async def status(number: str) -> str | None:
        looked_up.append(number)
        return "handling"

    worker, _sip, queue, _ = make_worker(tmp_path, "menu", ticket_status=status)
    call_id = await start_call(worker)
    session = worker.sessions[call_id]
    worker._on_command(ev.CMD_SPEECH, {"call_id": call_id, "text": "你好", "final": True, "kb": []})
    await until_async(lambda: session.flow.node_name == "language", timeout=2)  # speech skipped the welcome
    for digit in "12":  # Mandarin, then ticket status
        worker.on_sip_event(DtmfReceived("in-1", digit, "rfc4733"))
    assert session.language == "zh-CN" or session.flow.language == "zh-CN"
    for digit in "123456#":
        worker.on_sip_event(DtmfReceived("in-1", digit, "rfc4733"))
    await until_async(lambda: looked_up == ["123456"], timeout=2)
    await until_async(lambda: session.flow.served, timeout=2)
    assert not any(n == "enqueue" for n, _ in queue.calls)  # the menu flow queues only on request
