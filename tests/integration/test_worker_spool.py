"""A call that ends while Redis is away is spooled to disk and delivered when Redis is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio

from hotline.core import events as ev
from hotline.core.model import CallId, CallRecord, Outcome, WorkerId, utcnow
from hotline.queue import keys
from hotline.queue.acd import RedisCallQueue
from hotline.queue.bus import RedisEventBus
from hotline.runtime.worker import Prompt, Worker, WorkerSettings
from tests.support import RedisServer, until_async


def make_worker(client: redis.asyncio.Redis, tmp: Path) -> Worker:
    settings = WorkerSettings(
        worker_id=WorkerId("w9"),
        recordings_dir=tmp / "rec",
        spool_dir=tmp / "spool",
        prompts={"greeting": Prompt("/nonexistent.wav", 5.0)},
    )
    return Worker(settings, RedisCallQueue(client), RedisEventBus(client))


def record(n: int) -> CallRecord:
    return CallRecord(
        call_id=CallId(f"c{n}"),
        caller="13800138000",
        callee="12345",
        worker_id=WorkerId("w9"),
        started_at=utcnow(),
        outcome=Outcome.ABANDONED_IN_QUEUE,
        ended_at=utcnow(),
        hangup_by="caller",
    )


async def test_records_spooled_while_redis_is_down_arrive_later(fresh_redis: RedisServer, tmp_path: Path) -> None:
    client = redis.asyncio.Redis.from_url(fresh_redis.url, socket_connect_timeout=1, socket_timeout=2)
    worker = make_worker(client, tmp_path)
    fresh_redis.stop()
    await worker.deliver(record(1))
    await worker.deliver(record(2))
    spool = tmp_path / "spool" / "w9.jsonl"
    assert len(spool.read_text().splitlines()) == 2  # nothing lost, on disk
    run = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(1.5)  # the spool loop tries while Redis is still down: kept
        assert spool.exists() and len(spool.read_text().splitlines()) == 2
        fresh_redis.start()
        # The restarted (empty) Redis receives both records on the event stream, in order.
        await until_async(lambda: _ended(client, 2), timeout=15)
        await until_async(lambda: _async(not spool.exists()), timeout=5)
    finally:
        worker.stop()
        await run
        await client.aclose()


async def _ended(client: redis.asyncio.Redis, n: int) -> bool:
    try:
        entries = await client.xrange(keys.events("hotline"))
    except redis.exceptions.ConnectionError:
        return False
    decoded = [ev.decode({k.decode(): v.decode() for k, v in fields.items()}) for _, fields in entries]
    ended = [data["call_id"] for kind, data in decoded if kind == ev.CALL_ENDED]
    assert ended in (["c1", "c2"][: len(ended)], ["c1", "c2"]), ended  # in order, never out of it
    return len(ended) >= n


async def _async(value: object) -> object:
    return value


async def test_a_call_is_recorded_exactly_once(redis_url: str, tmp_path: Path) -> None:
    """Shutdown ends a call as failed while the hang-up it causes makes the flow end it again:
    only the first end counts (a second record used to overwrite the first)."""
    from hotline.ivr import flow as fl
    from hotline.runtime.worker import CallSession
    from hotline.sip.events import IncomingCall

    client = redis.asyncio.Redis.from_url(redis_url)
    worker = make_worker(client, tmp_path)
    session = CallSession(
        call_id=CallId("c7"),
        caller_leg="in1",
        incoming=IncomingCall("in1", "13800138000", "12345", "sip-call-id", "<sip:13800138000@x>"),
        flow=fl.CallFlow(fl.FlowSettings(greeting_s=5.0)),
        started_at=utcnow(),
    )
    await worker._finish(session, fl.Finish(Outcome.FAILED, "system", "worker stopped"))
    await worker._finish(session, fl.Finish(Outcome.ABANDONED_IN_QUEUE, "caller"))
    entries = await client.xrange(keys.events("hotline"))
    decoded = [ev.decode({k.decode(): v.decode() for k, v in fields.items()}) for _, fields in entries]
    ended = [data for kind, data in decoded if kind == ev.CALL_ENDED]
    assert [(d["call_id"], d["outcome"], d["reason"]) for d in ended] == [("c7", "failed", "worker stopped")]
    await client.aclose()
