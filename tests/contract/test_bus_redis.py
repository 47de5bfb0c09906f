"""Contract of the EventBus port and the worker registry, against RedisEventBus on real Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio

from hotline.core import events
from hotline.core.errors import InvalidRequest, Unavailable
from hotline.core.model import CallId, WorkerId
from hotline.core.ports import EventBus
from hotline.queue import keys
from hotline.queue.bus import RedisEventBus
from tests.support import RedisServer, until_async

W1 = WorkerId("w1")
W2 = WorkerId("w2")
GROUP = "control"


@pytest.fixture
async def bus(client: redis.asyncio.Redis) -> RedisEventBus:
    return RedisEventBus(client)


def test_satisfies_the_port(bus: RedisEventBus) -> None:
    port: EventBus = bus
    assert callable(port.publish)


class TestEvents:
    async def test_published_events_reach_the_group(self, bus: RedisEventBus) -> None:
        await bus.ensure_group(GROUP)
        first = await bus.publish(events.CALL_QUEUED, {"call_id": "c1", "queued_at": "2024-01-01T00:00:00+00:00"})
        second = await bus.publish(events.CALL_STARTED, {"call_id": "c2", "caller": "市民"})
        got = await bus.read_events(GROUP, "cp-1", count=10)
        assert got == [
            (first, "call.queued", {"call_id": "c1", "queued_at": "2024-01-01T00:00:00+00:00"}),
            (second, "call.started", {"call_id": "c2", "caller": "市民"}),
        ]
        assert await bus.read_events(GROUP, "cp-1", count=10) == []  # delivered once

    async def test_ack_clears_pending(self, bus: RedisEventBus, client: redis.asyncio.Redis) -> None:
        await bus.ensure_group(GROUP)
        entry_id = await bus.publish(events.CALL_ENDED, {"call_id": "c1"})
        await bus.read_events(GROUP, "cp-1")
        # not acked: re-read as pending (what a restarted consumer does first)
        assert [e[0] for e in await bus.read_events(GROUP, "cp-1", pending=True)] == [entry_id]
        await bus.ack(GROUP, entry_id)
        await bus.ack(GROUP, entry_id)  # idempotent
        assert await bus.read_events(GROUP, "cp-1", pending=True) == []
        assert (await client.xpending(keys.events(), GROUP))["pending"] == 0

    async def test_group_created_late_sees_earlier_events(self, bus: RedisEventBus) -> None:
        entry_id = await bus.publish(events.CALL_STARTED, {"call_id": "c1"})
        await bus.ensure_group(GROUP)
        await bus.ensure_group(GROUP)  # idempotent
        assert [e[0] for e in await bus.read_events(GROUP, "cp-1")] == [entry_id]

    async def test_missing_group_is_created_on_read(self, bus: RedisEventBus) -> None:
        entry_id = await bus.publish(events.CALL_STARTED, {"call_id": "c1"})
        assert [e[0] for e in await bus.read_events("fresh", "cp-1")] == [entry_id]

    async def test_consumers_of_a_group_share_the_work(self, bus: RedisEventBus) -> None:
        await bus.ensure_group(GROUP)
        published = [await bus.publish(events.CALL_QUEUED, {"call_id": f"c{n}"}) for n in range(6)]
        one = await bus.read_events(GROUP, "cp-1", count=4)
        two = await bus.read_events(GROUP, "cp-2", count=4)
        assert (len(one), len(two)) == (4, 2)
        assert sorted(e[0] for e in one + two) == sorted(published)

    async def test_malformed_entries_are_acked_logged_and_skipped(
        self, bus: RedisEventBus, client: redis.asyncio.Redis, caplog: pytest.LogCaptureFixture
    ) -> None:
        await bus.ensure_group(GROUP)
        stream = keys.events()
        await client.xadd(stream, {"no-type": "x"})
        await client.xadd(stream, {"type": "call.queued", "data": "{not json"})
        await client.xadd(stream, {"type": "call.queued", "data": "[1, 2]"})
        await client.xadd(stream, {"type": b"\xff\xfe", "data": "{}"})
        good = await bus.publish(events.CALL_QUEUED, {"call_id": "c1"})
        with caplog.at_level(logging.ERROR, logger="hotline.queue.bus"):
            got = await bus.read_events(GROUP, "cp-1", count=10)
        assert got == [(good, "call.queued", {"call_id": "c1"})]
        assert sum("malformed event" in r.message for r in caplog.records) == 4
        assert (await client.xpending(stream, GROUP))["pending"] == 1  # only the good one

    async def test_blocking_read_wakes_on_publish(self, bus: RedisEventBus, client: redis.asyncio.Redis) -> None:
        await bus.ensure_group(GROUP)
        assert await bus.read_events(GROUP, "cp-1", block_ms=100) == []  # times out empty
        reader = asyncio.create_task(bus.read_events(GROUP, "cp-1", block_ms=10_000))

        async def reader_blocked() -> bool:
            listing = await client.client_list()
            return any(c.get("cmd") == "xreadgroup" for c in listing)

        await until_async(reader_blocked)
        entry_id = await bus.publish(events.CALL_STARTED, {"call_id": "c1"})
        got = await asyncio.wait_for(reader, 5)
        assert [e[0] for e in got] == [entry_id]

    async def test_stream_is_trimmed(self, client: redis.asyncio.Redis) -> None:
        bus = RedisEventBus(client, events_maxlen=100)
        for n in range(1_000):
            await bus.publish(events.CALL_QUEUED, {"call_id": f"c{n}"})
        length = await client.xlen(keys.events())
        assert 100 <= length < 300


class TestCommands:
    async def test_commands_reach_only_their_worker_in_order(self, bus: RedisEventBus) -> None:
        a = await bus.send_command(W1, events.CMD_OFFER, {"call_id": "c1", "agent_uri": "sip:1001@k"})
        await bus.send_command(W2, events.CMD_HANGUP, {"call_id": "c9"})
        b = await bus.send_command(W1, events.CMD_HANGUP, {"call_id": "c1", "reason": "挂断"})
        got = await bus.read_commands(W1, "0")
        assert got == [
            (a, "offer", {"call_id": "c1", "agent_uri": "sip:1001@k"}),
            (b, "hangup", {"call_id": "c1", "reason": "挂断"}),
        ]
        assert await bus.read_commands(W1, b) == []
        assert await bus.read_commands(W1, a) == [got[1]]
        assert [e[2]["call_id"] for e in await bus.read_commands(W2, "0")] == ["c9"]

    async def test_a_reader_of_new_commands_misses_none_between_its_reads(self, bus: RedisEventBus) -> None:
        """The worker starts from newest_command_id, not "$" on every read: a command sent
        while it was not blocked in a read (here: between two reads) is still read."""
        assert await bus.newest_command_id(W1) == "0-0"
        old = await bus.send_command(W1, events.CMD_HANGUP, {"call_id": "c0"})
        start = await bus.newest_command_id(W1)
        assert start == old
        assert await bus.read_commands(W1, start, block_ms=50) == []  # a read that timed out
        sent = await bus.send_command(W1, events.CMD_HANGUP, {"call_id": "c1"})  # between reads
        assert await bus.read_commands(W1, "$", block_ms=50) == []  # what "$" would have lost
        assert await bus.read_commands(W1, start, block_ms=50) == [(sent, "hangup", {"call_id": "c1"})]

    async def test_malformed_commands_are_deleted_and_skipped(
        self, bus: RedisEventBus, client: redis.asyncio.Redis
    ) -> None:
        stream = keys.worker_commands(W1)
        good = await bus.send_command(W1, events.CMD_HANGUP, {"call_id": "c1"})
        await client.xadd(stream, {"type": "hangup", "data": "nope"})
        await client.xadd(stream, {"junk": "1"})
        assert [e[0] for e in await bus.read_commands(W1, "0")] == [good]
        # the trailing malformed entries are gone, so reading on from `good` finds nothing
        assert await client.xlen(stream) == 1
        assert await bus.read_commands(W1, good) == []

    async def test_blocking_read_of_commands(self, bus: RedisEventBus, client: redis.asyncio.Redis) -> None:
        reader = asyncio.create_task(bus.read_commands(W1, "$", block_ms=10_000))

        async def reader_blocked() -> bool:
            return any(c.get("cmd") == "xread" for c in await client.client_list())

        await until_async(reader_blocked)
        entry_id = await bus.send_command(W1, events.CMD_HANGUP, {"call_id": "c1"})
        assert [e[0] for e in await asyncio.wait_for(reader, 5)] == [entry_id]


class TestWorkerRegistry:
    async def test_heartbeat_expires_but_worker_stays_known(self, bus: RedisEventBus) -> None:
        await bus.heartbeat(W1, 60_000, {"sip": "127.0.0.1:5080", "capacity": 30})
        await bus.heartbeat(W2, 300, {"sip": "127.0.0.1:5082"})
        assert await bus.alive_workers() == {
            "w1": {"sip": "127.0.0.1:5080", "capacity": 30},
            "w2": {"sip": "127.0.0.1:5082"},
        }

        async def w2_dead() -> bool:
            return W2 not in await bus.alive_workers()

        await until_async(w2_dead, timeout=5)
        assert set(await bus.alive_workers()) == {"w1"}
        assert await bus.known_workers() == {"w1", "w2"}

    async def test_tracked_calls(self, bus: RedisEventBus) -> None:
        await bus.track_call(W1, CallId("c1"), {"caller": "13800000000", "state": "queued"})
        await bus.track_call(W1, CallId("c2"), {"caller": "13900000000"})
        await bus.track_call(W1, CallId("c1"), {"caller": "13800000000", "state": "bridged"})
        await bus.track_call(W2, CallId("c3"), {})
        assert await bus.tracked_calls(W1) == {
            "c1": {"caller": "13800000000", "state": "bridged"},
            "c2": {"caller": "13900000000"},
        }
        await bus.untrack_call(W1, CallId("c2"))
        await bus.untrack_call(W1, CallId("c2"))  # idempotent
        assert list(await bus.tracked_calls(W1)) == ["c1"]
        assert await bus.tracked_calls(WorkerId("w-none")) == {}
        # tracking makes a worker known even before its first heartbeat (so it can be cleaned up)
        assert await bus.known_workers() == {"w1", "w2"}
        assert await bus.alive_workers() == {}

    async def test_forget_worker_removes_every_trace(self, bus: RedisEventBus, client: redis.asyncio.Redis) -> None:
        await bus.heartbeat(W1, 60_000, {})
        await bus.track_call(W1, CallId("c1"), {})
        await bus.send_command(W1, events.CMD_HANGUP, {"call_id": "c1"})
        await bus.heartbeat(W2, 60_000, {})
        await bus.forget_worker(W1)
        await bus.forget_worker(W1)  # idempotent
        assert await bus.known_workers() == {"w2"}
        assert set(await bus.alive_workers()) == {"w2"}
        assert await bus.tracked_calls(W1) == {}
        assert await bus.read_commands(W1, "0") == []
        assert not [k for k in await client.keys("*") if b":w1:" in k]

    async def test_invalid_input_is_refused(self, bus: RedisEventBus, client: redis.asyncio.Redis) -> None:
        with pytest.raises(InvalidRequest):
            await bus.heartbeat(W1, 0, {})
        with pytest.raises(InvalidRequest):
            await bus.send_command(WorkerId("w 1"), events.CMD_HANGUP, {})
        with pytest.raises(InvalidRequest):
            await bus.track_call(WorkerId(""), CallId("c1"), {})
        assert await client.keys("*") == []

    async def test_keys_live_under_the_prefix(self, client: redis.asyncio.Redis) -> None:
        bus = RedisEventBus(client, prefix="city-b")
        await bus.publish(events.CALL_STARTED, {"call_id": "c1"})
        await bus.send_command(W1, events.CMD_HANGUP, {"call_id": "c1"})
        await bus.heartbeat(W1, 60_000, {})
        await bus.track_call(W1, CallId("c1"), {})
        names = [k.decode() for k in await client.keys("*")]
        assert len(names) == 5
        assert all(name.startswith("city-b:") for name in names)
        assert await RedisEventBus(client).known_workers() == set()  # another prefix sees nothing


class TestRedisDown:
    async def test_public_methods_raise_unavailable_and_recover(self, fresh_redis: RedisServer) -> None:
        client = redis.asyncio.Redis.from_url(fresh_redis.url, socket_connect_timeout=1, socket_timeout=2)
        try:
            bus = RedisEventBus(client)
            await bus.ensure_group(GROUP)
            fresh_redis.stop()
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: bus.publish(events.CALL_STARTED, {}),
                lambda: bus.send_command(W1, events.CMD_HANGUP, {}),
                lambda: bus.ensure_group(GROUP),
                lambda: bus.read_events(GROUP, "cp-1"),
                lambda: bus.read_events(GROUP, "cp-1", block_ms=500),
                lambda: bus.ack(GROUP, "1-0"),
                lambda: bus.read_commands(W1, "0"),
                lambda: bus.heartbeat(W1, 1000, {}),
                lambda: bus.known_workers(),
                lambda: bus.alive_workers(),
                lambda: bus.forget_worker(W1),
                lambda: bus.track_call(W1, CallId("c1"), {}),
                lambda: bus.untrack_call(W1, CallId("c1")),
                lambda: bus.tracked_calls(W1),
            ]
            for call in calls:
                with pytest.raises(Unavailable):
                    await call()
            fresh_redis.start()  # empty again: the consumer group is recreated on read
            entry_id = await bus.publish(events.CALL_STARTED, {"call_id": "c1"})
            assert [e[0] for e in await bus.read_events(GROUP, "cp-1")] == [entry_id]
        finally:
            await client.aclose()
