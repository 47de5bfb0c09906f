"""The control plane's ticket writer catalogues each saved call's recording (size, length,
SHA-256), on a real redis-server and a SQLite store; a recording it cannot read never costs the
call record."""

from __future__ import annotations

import hashlib
import logging
import wave
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio

from hotline.core import events as ev
from hotline.core.model import AgentId, CallId, CallRecord, Outcome, WorkerId
from hotline.queue.acd import RedisCallQueue
from hotline.queue.bus import RedisEventBus
from hotline.runtime.control import TICKET_GROUP, Control, ControlSettings
from hotline.tickets.store import SqlTicketStore

STARTED = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlTicketStore]:
    s = SqlTicketStore(f"sqlite:///{tmp_path / 't.db'}")
    yield s
    s.close()


def record(call_id: str, path: Path | None) -> CallRecord:
    return CallRecord(
        CallId(call_id), "13800138000", "12345", WorkerId("w1"), STARTED, Outcome.ANSWERED,
        agent_id=AgentId("a1"), recording_path=None if path is None else str(path),
    )  # fmt: skip


def make_wav(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(4 * int(8000 * seconds)))
    return path


async def test_saved_calls_get_their_recordings_catalogued(
    client: redis.asyncio.Redis, store: SqlTicketStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bus = RedisEventBus(client)
    ctl = Control(ControlSettings(), RedisCallQueue(client), bus, store, lambda offer: "sip:x@127.0.0.1",
                  recordings=store)  # fmt: skip
    await bus.ensure_group(TICKET_GROUP)
    wav = make_wav(tmp_path / "2026" / "05" / "01" / "c1.wav", 1.5)
    await bus.publish(ev.CALL_ENDED, record("c1", wav).to_dict())
    await bus.publish(ev.CALL_ENDED, record("c2", tmp_path / "lost.wav").to_dict())  # the file never came
    await bus.publish(ev.CALL_ENDED, record("c3", None).to_dict())  # not recorded
    await bus.publish(ev.CALL_ENDED, record("c1", wav).to_dict())  # delivered twice
    assert await ctl.ticket_step(block_ms=100) == 4
    assert ctl.records_written == 4
    assert {c.call_id for c in store.list_calls()} == {"c1", "c2", "c3"}
    catalogued = store.get_recording(CallId("c1"))
    assert catalogued is not None
    assert (catalogued.path, catalogued.format, catalogued.bytes, catalogued.seconds, catalogued.created_at) == (
        str(wav), "wav", wav.stat().st_size, 1.5, STARTED,
    )  # fmt: skip
    assert catalogued.sha256 == hashlib.sha256(wav.read_bytes()).hexdigest()
    assert store.get_recording(CallId("c2")) is None and store.get_recording(CallId("c3")) is None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "recording of call c2" in errors[0].getMessage()
    assert await ctl.ticket_step(block_ms=0, pending=True) == 0  # everything was acknowledged
