"""The control plane's overflow between queues, on a real redis-server and a SQLite ticket store:
a caller past his queue's max wait moves to the overflow queue with his arrival time, a full
overflow queue keeps him where he is until it has room, and each queue's own target is used."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio

from hotline.core import events as ev
from hotline.core.model import CallId, WorkerId
from hotline.core.ports import Offer
from hotline.queue.acd import AcdPolicy, RedisCallQueue
from hotline.queue.bus import RedisEventBus
from hotline.runtime.control import Control, ControlSettings
from hotline.runtime.legs import epoch_ms
from hotline.tickets.store import SqlTicketStore

W1 = WorkerId("w1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlTicketStore]:
    s = SqlTicketStore(f"sqlite:///{tmp_path / 't.db'}")
    yield s
    s.close()


def uri(offer: Offer) -> str:
    return f"sip:{offer.agent_extension}@127.0.0.1"


async def test_callers_past_the_max_wait_move_to_the_overflow_queue(
    client: redis.asyncio.Redis, store: SqlTicketStore
) -> None:
    targets = {"hotline": "queue:spare", "spare": "callback"}
    queue = RedisCallQueue(
        client,
        queue="hotline",
        policy=AcdPolicy(max_wait_s=60, overflow_target=targets["hotline"]),
        queues={"spare": AcdPolicy(max_wait_s=30, max_length=2, overflow_target=targets["spare"])},
    )
    bus = RedisEventBus(client)
    ctl = Control(ControlSettings(overflow_targets=targets), queue, bus, store, uri)
    now = epoch_ms()
    await queue.enqueue(CallId("s1"), W1, "13800000001", now - 20_000, queue="spare")
    await queue.enqueue(CallId("long"), W1, "13800000002", now - 61_000)
    await queue.enqueue(CallId("longer"), W1, "13800000003", now - 70_000)
    await queue.enqueue(CallId("fresh"), W1, "13800000004", now - 1_000)
    assert await ctl.overflow_step() == 1  # spare holds 2: one moved, the other waits for room
    assert [(w.call_id, w.queue, w.position) for w in await queue.waiting(queue="spare")] == [
        ("longer", "spare", 1),
        ("s1", "spare", 2),
    ]
    assert [w.call_id for w in await queue.waiting(queue="hotline")] == ["long", "fresh"]
    assert await bus.read_commands(W1, "0", 0) == []  # a move needs nothing of the worker
    await queue.abandon(CallId("s1"))
    assert await ctl.overflow_step() == 1
    assert [w.call_id for w in await queue.waiting(queue="spare")] == ["longer", "long"]
    # in spare their wait starts again: spare's own target (callback) only after 30 s there
    assert await ctl.overflow_step() == 0
    # a caller coming to the full spare queue is queued all the same and sent to spare's target
    assert await queue.enqueue(CallId("s2"), W1, "13800000005", now - 1_000, queue="spare") == 3
    assert await ctl.overflow_step() == 1
    assert [(k, d["call_id"], d["target"]) for _, k, d in await bus.read_commands(W1, "0", 0)] == [
        (ev.CMD_OVERFLOW, "s2", "callback")
    ]
    quiet = Control(ControlSettings(), queue, bus, store, uri)  # no targets at all: nothing done
    assert await quiet.overflow_step() == 0


async def test_voicemail_callers_are_sent_to_their_worker_with_the_queues_longest_message(
    client: redis.asyncio.Redis, store: SqlTicketStore
) -> None:
    queue = RedisCallQueue(
        client,
        queue="hotline",
        policy=AcdPolicy(max_wait_s=60, max_length=2, overflow_target="voicemail"),
    )
    bus = RedisEventBus(client)
    settings = ControlSettings(overflow_targets={"hotline": "voicemail"}, voicemail_max_s={"hotline": 90.0})
    ctl = Control(settings, queue, bus, store, uri)
    now = epoch_ms()
    await queue.enqueue(CallId("long"), W1, "anonymous", now - 61_000)  # no number needed for a message
    await queue.enqueue(CallId("fresh"), W1, "13800000002", now - 1_000)
    assert await queue.enqueue(CallId("over"), W1, "13800000003", now) == 3  # full: queued, overflowed at once
    assert await ctl.overflow_step() == 2
    got = [(k, d["call_id"], d["target"], d["max_s"]) for _, k, d in await bus.read_commands(W1, "0", 0)]
    assert got == [(ev.CMD_OVERFLOW, "long", "voicemail", 90.0), (ev.CMD_OVERFLOW, "over", "voicemail", 90.0)]
    # the worker's flow takes the caller out of the queue (Abandon): nothing is sent again
    await queue.abandon(CallId("long"))
    await queue.abandon(CallId("over"))
    assert await ctl.overflow_step() == 0
