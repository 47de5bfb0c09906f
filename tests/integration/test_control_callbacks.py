"""The control plane with callbacks, on a real redis-server and a SQLite ticket store: a callback
entry's turn goes to the least-loaded live worker; a dead worker's waiting callers keep their
place as callbacks while its connected calls are closed as failed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from hotline.core import events as ev
from hotline.core.model import Agent, AgentId, AgentState, CallId, CallRecord, Outcome, WorkerId, utcnow
from hotline.core.ports import Offer
from hotline.queue.acd import AcdPolicy, RedisCallQueue
from hotline.queue.bus import RedisEventBus
from hotline.queue.leader import RedisLease
from hotline.runtime.callback import CallbackConfig, CallbackRunner
from hotline.runtime.control import Control, ControlSettings
from hotline.runtime.legs import epoch_ms
from hotline.tickets.store import SqlTicketStore

W1, W2 = WorkerId("w1"), WorkerId("w2")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlTicketStore]:
    s = SqlTicketStore(f"sqlite:///{tmp_path / 't.db'}")
    yield s
    s.close()


def control(client: redis.asyncio.Redis, store: SqlTicketStore) -> tuple[Control, RedisCallQueue, RedisEventBus]:
    queue, bus = RedisCallQueue(client), RedisEventBus(client)

    def uri(offer: Offer) -> str:
        return f"sip:{offer.agent_extension}@127.0.0.1:5060"

    return Control(ControlSettings(), queue, bus, store, uri), queue, bus


async def commands(bus: RedisEventBus, worker: WorkerId) -> list[tuple[str, dict[str, object]]]:
    return [(kind, data) for _, kind, data in await bus.read_commands(worker, "0", 0)]


async def test_a_callbacks_turn_goes_to_the_least_loaded_live_worker(
    client: redis.asyncio.Redis, store: SqlTicketStore
) -> None:
    ctl, queue, bus = control(client, store)
    await bus.heartbeat(W1, 10_000, {"calls": 7})
    await bus.heartbeat(W2, 10_000, {"calls": 2})
    await queue.enqueue(CallId("c1"), W1, "13800000001", epoch_ms() - 5_000)
    assert await queue.request_callback(CallId("c1"), "13800000001", epoch_ms())
    await queue.agent_login(Agent(AgentId("a1"), "坐席1", "1001"), epoch_ms())
    assert await ctl.dispatch_step()
    assert await commands(bus, W1) == []
    [(kind, data)] = await commands(bus, W2)
    assert kind == ev.CMD_CALLBACK
    assert (data["call_id"], data["agent_id"], data["caller"], data["attempt"]) == ("c1", "a1", "13800000001", 1)
    assert data["agent_uri"] == "sip:1001@127.0.0.1:5060"
    assert (await queue.agent_status(AgentId("a1"))).state == AgentState.RESERVED


async def test_no_live_worker_puts_the_callback_back(client: redis.asyncio.Redis, store: SqlTicketStore) -> None:
    ctl, queue, _ = control(client, store)
    await queue.enqueue(CallId("c1"), W1, "13800000001", epoch_ms() - 5_000)
    await queue.request_callback(CallId("c1"), "13800000001", epoch_ms())
    await queue.agent_login(Agent(AgentId("a1"), "坐席1", "1001"), epoch_ms())
    assert not await ctl.dispatch_step()
    assert [(w.call_id, w.callback) for w in await queue.waiting()] == [("c1", True)]
    assert (await queue.agent_status(AgentId("a1"))).state == AgentState.AVAILABLE


async def test_a_dead_workers_waiting_callers_keep_their_place(
    client: redis.asyncio.Redis, store: SqlTicketStore
) -> None:
    """w1 dies with three calls: one waiting (dialable number), one waiting from an anonymous
    caller, one connected to an agent. w2's caller, who came later, stays behind the first."""
    ctl, queue, bus = control(client, store)
    now = epoch_ms()
    started = utcnow().isoformat()
    for call_id, caller in (("wait", "13800000001"), ("anon", "anonymous"), ("talk", "13800000003")):
        await bus.track_call(W1, CallId(call_id), {"caller": caller, "callee": "12345", "started_at": started})
    await queue.enqueue(CallId("talk"), W1, "13800000003", now - 9_000)
    await queue.enqueue(CallId("wait"), W1, "13800000001", now - 8_000)
    await queue.enqueue(CallId("anon"), W1, "anonymous", now - 7_000)
    await queue.enqueue(CallId("later"), W2, "13800000004", now - 6_000)
    await queue.agent_login(Agent(AgentId("a1"), "坐席1", "1001"), now - 20_000)
    offer = await queue.dispatch_once(now, 30_000)
    assert offer is not None and offer.call_id == "talk"
    assert await queue.offer_answered(offer.offer_id, now)

    assert await ctl.close_dead_worker(W1) == 3

    waiting = await queue.waiting()
    assert [(w.call_id, w.position, w.callback) for w in waiting] == [("wait", 1, True), ("later", 2, False)]
    assert (await queue.agent_status(AgentId("a1"))).state == AgentState.AVAILABLE  # freed at once
    outcomes = {c: store.get_call(CallId(c)) for c in ("wait", "anon", "talk")}
    assert {c: r.outcome for c, r in outcomes.items() if r} == {
        "wait": Outcome.CALLBACK_REQUESTED,
        "anon": Outcome.FAILED,
        "talk": Outcome.FAILED,
    }
    assert await bus.tracked_calls(W1) == {}


# ---------------------------------------------------------------- several control processes
def lead_control(
    client: redis.asyncio.Redis, store: SqlTicketStore, name: str, **settings: float
) -> tuple[Control, RedisCallQueue, RedisEventBus]:
    queue, bus = RedisCallQueue(client), RedisEventBus(client)

    def uri(offer: Offer) -> str:
        return f"sip:{offer.agent_extension}@127.0.0.1:5060"

    config = ControlSettings(consumer=name, **settings)  # type: ignore[arg-type]
    return Control(config, queue, bus, store, uri, lease=RedisLease(client, "dispatcher")), queue, bus


async def test_one_dispatcher_at_a_time_and_a_takeover_when_it_stops(
    client: redis.asyncio.Redis, store: SqlTicketStore
) -> None:
    first, queue, bus = lead_control(client, store, "c1", leader_ttl_s=0.5)
    second, _, _ = lead_control(client, store, "c2", leader_ttl_s=0.5)
    await first.leadership_step()
    await second.leadership_step()
    assert (first.is_leader, second.is_leader) == (True, False)
    await bus.heartbeat(W1, 10_000, {"calls": 0})
    await queue.enqueue(CallId("c1"), W1, "13800000001", epoch_ms())
    await queue.agent_login(Agent(AgentId("a1"), "坐席1", "1001"), epoch_ms())
    assert not await second.dispatch_step()  # a standby never dispatches
    assert [w.call_id for w in await queue.waiting()] == ["c1"]
    # The leader stops renewing (killed): the standby takes over once the lease ran out.
    await asyncio.sleep(0.6)
    await second.leadership_step()
    assert second.is_leader
    await first.leadership_step()
    assert not first.is_leader  # it came back: the role stays with the new holder
    assert await second.dispatch_step()
    [(kind, data)] = await commands(bus, W1)
    assert (kind, data["call_id"]) == (ev.CMD_OFFER, "c1")


async def test_records_a_dead_consumer_read_are_written_by_another(
    client: redis.asyncio.Redis, store: SqlTicketStore
) -> None:
    survivor, _, bus = lead_control(client, store, "c2", claim_idle_s=0.2)
    await bus.ensure_group("tickets")
    record = CallRecord(
        call_id=CallId("lost-in-flight"),
        caller="13800000001",
        callee="12345",
        worker_id=W1,
        started_at=utcnow(),
        outcome=Outcome.ABANDONED_IN_QUEUE,
        ended_at=utcnow(),
    )
    await bus.publish(ev.CALL_ENDED, record.to_dict())
    # Another control process reads it and is killed before writing (never acknowledged).
    assert len(await bus.read_events("tickets", "control-dead-4242", 10)) == 1
    assert await survivor.claim_step() == 0  # not idle long enough yet: its reader may be busy
    await asyncio.sleep(0.3)
    assert await survivor.claim_step() == 1
    saved = store.get_call(CallId("lost-in-flight"))
    assert saved is not None and saved.outcome == Outcome.ABANDONED_IN_QUEUE
    assert await survivor.claim_step() == 0  # acknowledged: nobody writes it again


async def test_the_watchdog_alerts_once_when_calls_and_agents_wait_without_offers(
    client: redis.asyncio.Redis, store: SqlTicketStore
) -> None:
    ctl, queue, bus = lead_control(client, store, "c1", watchdog_s=0.3)
    await ctl.leadership_step()
    await bus.ensure_group("alerts-test")
    await queue.enqueue(CallId("c1"), W1, "13800000001", epoch_ms())
    assert not await ctl.watchdog_step() and ctl.alerts == []  # no agent: nothing to dispatch
    await queue.agent_login(Agent(AgentId("a1"), "坐席1", "1001"), epoch_ms())
    await ctl.watchdog_step()
    assert ctl.alerts == []  # the stall clock starts now
    await asyncio.sleep(0.4)  # the dispatcher is stuck (its step is never run here)
    await ctl.watchdog_step()
    await ctl.watchdog_step()
    assert [(a["alert"], a["waiting"], a["available"]) for a in ctl.alerts] == [("dispatch-stalled", 1, 1)]
    alerts = [d for _, k, d in await bus.read_events("alerts-test", "t", 100) if k == ev.ALERT]
    assert [a["alert"] for a in alerts] == ["dispatch-stalled"]
    await bus.heartbeat(W1, 10_000, {"calls": 0})
    assert await ctl.dispatch_step()  # dispatching again clears the stall
    assert not ctl._stalled


async def test_the_queue_log_has_one_asterisk_style_line_per_event(
    client: redis.asyncio.Redis, store: SqlTicketStore, tmp_path: Path
) -> None:
    """Agent a1 logs in; call c1 enters, rings a1 who does not answer (paused), a2 answers it;
    c2 enters and is abandoned; c3 presses 1 for a callback. The events come from the queue's
    own scripts and the records a worker publishes; the log reads as Asterisk's queue_log."""
    log = tmp_path / "queue_log"
    ctl, queue, bus = lead_control(client, store, "c1", queue_log=log)  # type: ignore[arg-type]
    t0 = epoch_ms()
    start = utcnow()
    await queue.agent_login(Agent(AgentId("a1"), "坐席1", "1001"), t0)
    await queue.agent_login(Agent(AgentId("a2"), "坐席2", "1002"), t0 + 1)
    for n in (1, 2, 3):
        await bus.publish(
            ev.CALL_QUEUED, {"call_id": f"c{n}", "queued_at": start.isoformat(), "caller": f"1380000000{n}"}
        )
        await queue.enqueue(CallId(f"c{n}"), W1, f"1380000000{n}", t0 + n)
    first = await queue.dispatch_once(t0 + 2_000, 30_000)
    assert first is not None and first.agent_id == "a1"
    await queue.offer_failed(first.offer_id, t0 + 17_000, "no-answer", agent_fault=True)
    second = await queue.dispatch_once(t0 + 18_000, 30_000)
    assert second is not None and (second.call_id, second.agent_id) == ("c1", "a2")
    await queue.offer_answered(second.offer_id, t0 + 21_000)
    await queue.abandon(CallId("c2"))
    await queue.request_callback(CallId("c3"), "13800000003", t0 + 22_000)
    base = {"callee": "12345", "worker_id": W1, "started_at": start.isoformat(), "queued_at": start.isoformat()}
    ended = [
        {"call_id": "c2", "caller": "13800000002", "outcome": "abandoned_in_queue", "ended_at": start.isoformat()},
        {"call_id": "c3", "caller": "13800000003", "outcome": "callback_requested", "ended_at": start.isoformat()},
    ]
    for data in ended:
        await bus.publish(ev.CALL_ENDED, base | data)
    while await ctl.queue_log_step(block_ms=0):
        pass
    lines = log.read_text().splitlines()
    events = [line.split("|")[1:5] + line.split("|")[5:6] for line in lines]
    assert [(e[0], e[2], e[3]) for e in events] == [
        ("NONE", "a1", "ADDMEMBER"),
        ("NONE", "a2", "ADDMEMBER"),
        ("c1", "NONE", "ENTERQUEUE"),
        ("c2", "NONE", "ENTERQUEUE"),
        ("c3", "NONE", "ENTERQUEUE"),
        ("c1", "a1", "RINGNOANSWER"),
        ("NONE", "a1", "PAUSE"),
        ("c1", "a2", "CONNECT"),
        ("c2", "NONE", "ABANDON"),
        ("c3", "NONE", "EXITWITHKEY"),
    ], lines
    assert all(e[1] == "default" for e in events)
    ring = next(line for line in lines if "|RINGNOANSWER|" in line)
    assert ring.endswith("|15000")  # rang from the offer to the failure, in ms
    assert next(line for line in lines if "|PAUSE|" in line).endswith("|no-answer")


async def test_an_event_wakes_the_idle_dispatcher_at_once(client: redis.asyncio.Redis, store: SqlTicketStore) -> None:
    """The dispatcher sleeps up to dispatch_interval_s (here 30 s) when it has nothing to do, on
    the event stream: the agent.state event of a login wakes it, no polling delay."""
    ctl, queue, bus = lead_control(client, store, "c1", dispatch_interval_s=30.0)
    await ctl.leadership_step()
    await bus.heartbeat(W1, 60_000, {"calls": 0})
    await queue.enqueue(CallId("c1"), W1, "13800000001", epoch_ms())
    loop = asyncio.create_task(ctl._dispatch_loop())
    try:
        await asyncio.sleep(0.3)  # asleep: a call waits but no agent
        assert await commands(bus, W1) == []
        await queue.agent_login(Agent(AgentId("a1"), "坐席1", "1001"), epoch_ms())
        started = asyncio.get_running_loop().time()
        while not await commands(bus, W1):
            assert asyncio.get_running_loop().time() - started < 5, "the login did not wake the dispatcher"
            await asyncio.sleep(0.02)
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop


async def test_a_withheld_number_gives_up_at_once_without_ringing_the_agent(
    client: redis.asyncio.Redis, tmp_path: Path
) -> None:
    queue, bus = RedisCallQueue(client), RedisEventBus(client)
    records: list[CallRecord] = []

    async def deliver(record: CallRecord) -> None:
        records.append(record)

    def spawn(coro: Any, name: str) -> None:
        tasks.append(asyncio.ensure_future(coro))

    tasks: list[asyncio.Future[Any]] = []
    runner = CallbackRunner(
        W1,
        CallbackConfig(dial_template="sip:{number}@127.0.0.1:5060"),
        queue,
        bus,
        deliver,
        tmp_path,
        lambda name: None,
        lambda name: 0.0,
        lambda now: CallId("cb-1"),
        spawn,
    )
    await queue.enqueue(CallId("c1"), W1, "anonymous", epoch_ms())
    assert await queue.request_callback(CallId("c1"), "anonymous", epoch_ms())
    await queue.agent_login(Agent(AgentId("a1"), "坐席1", "1001"), epoch_ms())
    offer = await queue.dispatch_once(epoch_ms(), 60_000)
    assert offer is not None and offer.callback
    runner.start(
        {
            "call_id": "c1",
            "offer_id": offer.offer_id,
            "agent_id": "a1",
            "agent_uri": "sip:1001@x",
            "caller": "anonymous",
            "attempt": 1,
        }
    )
    await asyncio.gather(*tasks)
    [record] = records
    assert (record.outcome, record.reason, record.related_call_id) == (
        Outcome.CALLBACK_FAILED,
        "undialable; the number cannot be dialled: callback given up",
        "c1",
    )
    assert await queue.waiting() == []
    assert (await queue.agent_status(AgentId("a1"))).state == AgentState.AVAILABLE
    assert runner.active == 0


async def test_the_watchdog_stays_quiet_when_no_free_agent_has_the_skill(
    client: redis.asyncio.Redis, store: SqlTicketStore
) -> None:
    ctl, queue, _ = lead_control(client, store, "c1", watchdog_s=0.2)
    await ctl.leadership_step()
    await queue.enqueue(CallId("en"), W1, "13800000001", epoch_ms(), skills=("language:en",))
    await queue.agent_login(Agent(AgentId("a1"), "坐席1", "1001", skills={"投诉": 3}), epoch_ms())
    assert await queue.next_match(epoch_ms()) is None
    for _ in range(3):
        await ctl.watchdog_step()
        await asyncio.sleep(0.15)
    assert ctl.alerts == []  # nothing the rules allow to dispatch: not a stall
    await queue.agent_login(Agent(AgentId("a2"), "Agent 2", "1002", skills={"language:en": 1}), epoch_ms())
    assert await queue.next_match(epoch_ms()) == ("en", "a2")
    await ctl.watchdog_step()
    await asyncio.sleep(0.3)
    await ctl.watchdog_step()
    assert [a["example"] for a in ctl.alerts] == [{"call_id": "en", "agent_id": "a2"}]


async def test_reconcile_settles_what_no_worker_has(client: redis.asyncio.Redis, store: SqlTicketStore) -> None:
    """A Redis restored from an older AOF, or a worker forgotten before its calls were closed:
    the queue holds calls no worker tracks. The leader settles the old ones like a dead
    worker's, leaves the young ones and those of live workers alone, and frees an agent whose
    call no worker has."""
    ctl, queue, bus = control(client, store)
    now = epoch_ms()
    await bus.heartbeat(W2, 60_000, {"calls": 1})
    await queue.enqueue(CallId("ghost-old"), WorkerId("ghost"), "13800000001", now - 60_000)
    await queue.enqueue(CallId("ghost-anon"), WorkerId("ghost"), "anonymous", now - 59_000)
    await queue.enqueue(CallId("ghost-young"), WorkerId("ghost"), "13800000003", now - 1_000)
    await queue.enqueue(CallId("live-untracked"), W2, "13800000004", now - 50_000)
    await queue.enqueue(CallId("talking"), WorkerId("ghost"), "13800000005", now - 120_000)
    await queue.agent_login(Agent(AgentId("a1"), "坐席1", "1001"), now - 200_000)
    offer = await queue.dispatch_once(now - 100_000, 30_000)
    assert offer is not None and offer.call_id == "talking"
    assert await queue.offer_answered(offer.offer_id, now - 90_000)

    assert await ctl.reconcile_step() == 3
    assert [(w.call_id, w.callback) for w in await queue.waiting()] == [
        ("ghost-old", True),
        ("live-untracked", False),
        ("ghost-young", False),
    ]
    kept, anon = store.get_call(CallId("ghost-old")), store.get_call(CallId("ghost-anon"))
    assert kept is not None and kept.outcome == Outcome.CALLBACK_REQUESTED
    assert anon is not None and anon.outcome == Outcome.FAILED
    assert (await queue.agent_status(AgentId("a1"))).state == AgentState.AVAILABLE
    assert await ctl.reconcile_step() == 0  # settled once


async def test_callers_past_the_max_wait_are_sent_to_the_overflow_callback(
    client: redis.asyncio.Redis, store: SqlTicketStore
) -> None:
    queue = RedisCallQueue(client, policy=AcdPolicy(max_wait_s=60, overflow_target="callback"))
    bus = RedisEventBus(client)

    def uri(offer: Offer) -> str:
        return f"sip:{offer.agent_extension}@127.0.0.1"

    ctl = Control(ControlSettings(overflow_target="callback"), queue, bus, store, uri)
    now = epoch_ms()
    await queue.enqueue(CallId("long"), W1, "13800000001", now - 61_000)
    await queue.enqueue(CallId("hidden"), W1, "anonymous", now - 62_000)
    await queue.enqueue(CallId("fresh"), W2, "13800000003", now - 10_000)
    await queue.enqueue(CallId("kept"), W2, "13800000004", now - 90_000)
    assert await queue.request_callback(CallId("kept"), "13800000004", now)  # a callback already
    assert await ctl.overflow_step() == 1
    assert [(k, d["call_id"], d["target"]) for k, d in await commands(bus, W1)] == [
        (ev.CMD_OVERFLOW, "long", "callback")
    ]
    assert await commands(bus, W2) == []
    quiet = Control(ControlSettings(), queue, bus, store, uri)  # no overflow target: nothing sent
    assert await quiet.overflow_step() == 0
