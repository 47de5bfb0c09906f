"""The control plane: dispatcher, ticket writer, dead-worker monitor (`hotline control`).

- Dispatcher: reserves the longest-idle available agent for the head of the queue (one Lua
  script in the queue adapter) and tells the caller's worker to dial that agent.
- Offer leases: an offer nobody answered or reported within its lease goes back to the queue.
- Ticket writer: every call.ended record on the event stream becomes a row in the ticket store;
  the entry is acknowledged only after the row is written (a crash re-delivers, the write is
  idempotent by call id).
- Dead workers: a worker whose heartbeat expired has its live calls closed: a caller still
  waiting keeps the place as a callback entry (the number is known); a call with an agent is
  closed as a failed record and its agent freed.
- Callbacks: a callback entry's offer goes to the live worker with the fewest calls, which
  dials the agent, then the caller (hotline/runtime/callback.py).
- Several control processes may run. The dispatcher, lease expiry and dead-worker monitor run
  on the one holding the "dispatcher" lease in Redis; another takes over within a lease (a few
  seconds) of its death. Correctness never rests on the lease: every queue change is atomic and
  idempotent, so two dispatchers for a moment do no harm. Every process writes tickets (one
  consumer group); events a dead process had read but not acknowledged are claimed by the
  others after claim_idle_s.
- Ticket jobs (runtime/ticket_jobs.py), on the leader: the lifecycle's clock (lights, 催办,
  督办) and the 回访 survey calls; every process settles the surveys' results it reads from the
  event stream (with the call records, in the same consumer group).
- Webhooks, on the leader: the units' notices (the ticket store's outbox) POSTed to their
  webhooks (hotline/tickets/webhooks.py); the store's claims keep two deliverers apart anyway.
- Watchdog: while leader, if calls are waiting (not for a callback's retry time) and agents
  are available but no offer was made for watchdog_s, it raises an alert (log and event),
  once per stall. An agent whose softphone is unreachable does not count.
- Devices, on the leader: every device_interval_s each logged-in agent's softphone is looked
  up at Kamailio's registrar (device_probe); registered / unreachable is recorded in his queue
  state, and dispatch passes over an unreachable one.
- Overflow, on the leader: callers past their queue's max wait (or queued over a full queue)
  go to the queue's overflow target: another queue, callback, voicemail (overflow_step).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from hotline.core import events as ev
from hotline.core.errors import DomainError, Unavailable
from hotline.core.model import AgentState, CallId, CallRecord, WorkerId
from hotline.core.ports import CallQueue, Offer, TicketStore
from hotline.recordings import catalog
from hotline.runtime.callback import DIALABLE
from hotline.runtime.legs import epoch_ms
from hotline.runtime.lost import settle_lost_call
from hotline.runtime.queue_log import QueueLog
from hotline.runtime.ticket_jobs import TicketJobs

logger = logging.getLogger(__name__)

TICKET_GROUP = "tickets"
QUEUE_LOG_GROUP = "queue-log"
# Whether the softphone of an extension is registered (True/False), None: no answer.
DeviceProbe = Callable[[str], Awaitable[bool | None]]


class ControlBus(Protocol):
    """What the control plane needs of hotline.queue.bus.RedisEventBus."""

    async def send_command(self, worker_id: WorkerId, kind: str, data: dict[str, Any]) -> str: ...
    async def ensure_group(self, group: str) -> None: ...
    async def read_events(
        self, group: str, consumer: str, count: int, block_ms: int, pending: bool = False
    ) -> list[tuple[str, str, dict[str, Any]]]: ...
    async def ack(self, group: str, entry_id: str) -> None: ...
    async def known_workers(self) -> set[WorkerId]: ...
    async def alive_workers(self) -> dict[WorkerId, dict[str, Any]]: ...
    async def tracked_calls(self, worker_id: WorkerId) -> dict[CallId, dict[str, Any]]: ...
    async def untrack_call(self, worker_id: WorkerId, call_id: CallId) -> None: ...
    async def forget_worker(self, worker_id: WorkerId) -> None: ...
    async def claim_stale(
        self, group: str, consumer: str, min_idle_ms: int, count: int = 100
    ) -> list[tuple[str, str, dict[str, Any]]]: ...
    async def publish(self, kind: str, data: dict[str, Any]) -> str: ...
    async def wait_events(self, last_id: str, block_ms: int) -> str: ...


class Webhooks(Protocol):
    """What the control plane needs of hotline.tickets.webhooks.WebhookDelivery."""

    async def step(self) -> int: ...
    async def close(self) -> None: ...


class Lease(Protocol):
    """What the control plane needs of hotline.queue.leader.RedisLease."""

    async def acquire(self, holder: str, ttl_ms: int) -> bool: ...
    async def release(self, holder: str) -> bool: ...


@dataclasses.dataclass(frozen=True, slots=True)
class ControlSettings:
    consumer: str = "control-1"
    dispatch_interval_s: float = 0.5  # the longest the idle dispatcher sleeps (events wake it)
    ring_timeout_s: float = 20.0
    lease_margin_s: float = 10.0  # an offer's lease = ring timeout + this
    callback_ring_timeout_s: float = 30.0  # a callback's lease adds the caller's ring time
    monitor_interval_s: float = 1.0
    leader_ttl_s: float = 5.0  # the dispatcher lease; renewed every third of it
    claim_idle_s: float = 30.0  # a ticket event unacknowledged this long is taken over
    watchdog_s: float = 10.0  # no offer this long with calls and agents waiting: alert
    overflow_target: str = ""  # what a caller who waited the queue's max_wait_s becomes ("callback")
    # Per queue (name -> "queue:<name>", "callback"): where its overflowing callers go; a queue
    # not named here uses overflow_target.
    overflow_targets: dict[str, str] = dataclasses.field(default_factory=dict)
    voicemail_max_s: dict[str, float] = dataclasses.field(default_factory=dict)  # per queue; none: the flow's
    reconcile_interval_s: float = 30.0  # the leader reconciles the queue with the workers' calls
    queue_log: Path | None = None  # where the queue_log lines go (None: not written)
    queue_name: str = "default"
    webhook_interval_s: float = 1.0  # the longest the idle webhook delivery sleeps
    device_interval_s: float = 5.0  # how often the leader probes the agents' softphones


class Control:
    def __init__(
        self,
        settings: ControlSettings,
        queue: CallQueue,
        bus: ControlBus,
        store: TicketStore,
        agent_uri: Callable[[Offer], str],
        lease: Lease | None = None,
        recordings: catalog.RecordingRegistry | None = None,
        jobs: TicketJobs | None = None,
        webhooks: Webhooks | None = None,
        device_probe: DeviceProbe | None = None,
    ) -> None:
        self.settings = settings
        # Whether an agent's softphone (by extension) is registered at Kamailio: True, False, or
        # None (no answer: Kamailio itself is down, nothing is concluded). None: not probed.
        self.device_probe = device_probe
        self.webhooks = webhooks  # the units' notices to their webhooks (leader only)
        self.jobs = jobs  # the ticket clock and the 回访 calls (leader only); None: not run here
        self.recordings = recordings  # the catalogue each saved call's recording is registered in
        self.queue = queue
        self.bus = bus
        self.store = store
        self.agent_uri = agent_uri
        self.lease = lease
        self.is_leader = lease is None  # without a lease (tests, a single process) it always leads
        self.offers_sent = 0
        self.records_written = 0
        self.failed_closed = 0
        self.alerts: list[dict[str, Any]] = []
        self._last_offer = time.monotonic()
        self._stalled = False
        self._queue_log = QueueLog(settings.queue_name)
        self._next_reconcile = 0.0

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._dispatch_loop(), name="dispatch"),
            asyncio.create_task(self._ticket_loop(), name="tickets"),
            asyncio.create_task(self._forever(self.monitor_step, self.settings.monitor_interval_s), name="monitor"),
            asyncio.create_task(self._forever(self.watchdog_step, 1.0), name="watchdog"),
        ]
        if self.settings.queue_log is not None:
            tasks.append(asyncio.create_task(self._queue_log_loop(), name="queue-log"))
        if self.jobs is not None:
            js = self.jobs.settings
            tasks.append(asyncio.create_task(self._forever(self.ticket_clock_step, js.clock_interval_s), name="clock"))
            tasks.append(asyncio.create_task(self._forever(self.survey_step, js.survey_interval_s), name="surveys"))
        if self.webhooks is not None:
            every = self.settings.webhook_interval_s
            tasks.append(asyncio.create_task(self._forever(self.webhook_step, every), name="webhooks"))
        if self.lease is not None:
            tasks.append(asyncio.create_task(self._forever(self.leadership_step, self.settings.leader_ttl_s / 3)))
        if self.device_probe is not None:
            every = self.settings.device_interval_s
            tasks.append(asyncio.create_task(self._forever(self.device_step, every), name="devices"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.lease is not None and self.is_leader:
                with contextlib.suppress(Exception):
                    await self.lease.release(self.settings.consumer)
            if self.webhooks is not None:
                await self.webhooks.close()

    # ------------------------------------------------------------ leadership and watchdog
    async def leadership_step(self) -> bool:
        """Takes or renews the dispatcher lease; returns False (the loop sleeps a third of it)."""
        assert self.lease is not None
        try:
            leader = await self.lease.acquire(self.settings.consumer, int(self.settings.leader_ttl_s * 1000))
        except Unavailable as exc:
            leader = False
            logger.warning("dispatcher lease: %s", exc)
        if leader != self.is_leader:
            logger.warning("%s %s the dispatcher", self.settings.consumer, "is now" if leader else "is no longer")
            self._last_offer = time.monotonic()
            self._stalled = False
            self._next_reconcile = 0.0  # a new leader reconciles first
        self.is_leader = leader
        return False

    async def watchdog_step(self) -> bool:
        """Proves the dispatcher dispatches: an alert when calls and agents wait with no offer."""
        if not self.is_leader:
            return False
        now = epoch_ms()
        # Only a pair the routing rules would match is a stall: a call needing a skill no free
        # agent has, or a callback waiting for its retry time, is not the dispatcher's fault.
        match = await self.queue.next_match(now)
        idle_s = time.monotonic() - self._last_offer
        if match is None:
            self._last_offer = time.monotonic()  # nothing to dispatch is not a stall
            self._stalled = False
            return False
        if idle_s >= self.settings.watchdog_s and not self._stalled:
            self._stalled = True
            waiting = await self.queue.waiting()
            available = [
                a
                for a in await self.queue.agents()
                if a.state == AgentState.AVAILABLE and a.device != "unreachable"  # not offered calls
            ]
            alert = {
                "alert": "dispatch-stalled",
                "waiting": len(waiting),
                "available": len(available),
                "example": {"call_id": match[0], "agent_id": match[1]},
                "seconds": round(idle_s, 1),
                "by": self.settings.consumer,
            }
            self.alerts.append(alert)
            logger.error(
                "ALERT dispatch stalled: call %s could go to agent %s (%d waiting, %d available), no offer for %.0f s",
                match[0],
                match[1],
                len(waiting),
                len(available),
                idle_s,
            )
            with contextlib.suppress(Unavailable):
                await self.bus.publish(ev.ALERT, alert)
        return False

    async def device_step(self) -> bool:
        """The leader probes every logged-in agent's softphone at Kamailio's registrar and records
        what changed (registered / unreachable): an unreachable available agent is not offered
        calls. An agent Kamailio gave no answer about keeps what he had. Returns False."""
        if not self.is_leader or self.device_probe is None:
            return False
        agents = [a for a in await self.queue.agents() if a.state != AgentState.LOGGED_OUT and a.extension]
        found = await asyncio.gather(*(self.device_probe(a.extension) for a in agents), return_exceptions=True)
        for status, got in zip(agents, found, strict=True):
            if isinstance(got, BaseException) or got is None:
                continue
            device = "registered" if got else "unreachable"
            if device != status.device:
                await self.queue.set_device(status.agent_id, device, epoch_ms())
                log = logger.warning if device == "unreachable" else logger.info
                log("agent %s: softphone %s %s", status.agent_id, status.extension, device)
        return False

    async def _forever(self, step: Callable[[], Any], interval: float) -> None:
        while True:
            try:
                busy = await step()
            except DomainError as exc:
                logger.warning("%s: %s", getattr(step, "__name__", step), exc)
                busy = False
            except Exception:
                logger.exception("%s failed", getattr(step, "__name__", step))
                busy = False
            if not busy:
                await asyncio.sleep(interval)

    # ------------------------------------------------------------ dispatch
    async def _dispatch_loop(self) -> None:
        """Dispatches while there is something to dispatch; otherwise sleeps until an event
        (a call queued, an agent's state changed) or dispatch_interval_s, whichever is first."""
        last_id = "$"
        interval_ms = int(self.settings.dispatch_interval_s * 1000)
        while True:
            try:
                busy = await self.dispatch_step()
            except DomainError as exc:
                logger.warning("dispatch_step: %s", exc)
                busy = False
            except Exception:
                logger.exception("dispatch_step failed")
                busy = False
            if busy:
                continue
            try:
                last_id = await self.bus.wait_events(last_id, interval_ms)
            except Unavailable:
                await asyncio.sleep(self.settings.dispatch_interval_s)

    async def dispatch_step(self) -> bool:
        """Makes at most one offer; True if it made one (so the loop goes on at once)."""
        if not self.is_leader:
            return False
        lease_ms = int((self.settings.ring_timeout_s + self.settings.lease_margin_s) * 1000)
        callback_lease_ms = lease_ms + int(self.settings.callback_ring_timeout_s * 1000)
        offer = await self.queue.dispatch_once(epoch_ms(), lease_ms, callback_lease_ms)
        if offer is None:
            return False
        self._last_offer = time.monotonic()
        self._stalled = False
        # A ring_all group: each offer to the caller's worker, which rings them all at once
        # (the first to answer wins; the queue releases the others when he is reported).
        group = [o.offer_id for o in offer.ring]
        for each in offer.ring or (offer,):
            try:
                uri = self.agent_uri(each)
            except DomainError as exc:
                logger.warning("offer %s: %s", each.offer_id, exc)
                await self.queue.offer_failed(each.offer_id, epoch_ms(), "no-uri")
                continue
            data: dict[str, Any] = {
                "call_id": each.call_id,
                "offer_id": each.offer_id,
                "agent_id": each.agent_id,
                "agent_uri": uri,
            }
            if group:
                data["group"] = group
            if each.callback:
                return await self._send_callback(each, data)
            await self.bus.send_command(each.worker_id, ev.CMD_OFFER, data)
            self.offers_sent += 1
            logger.info("offer %s: call %s -> agent %s (%s)", each.offer_id, each.call_id, each.agent_id, uri)
        return True

    async def _send_callback(self, offer: Offer, data: dict[str, Any]) -> bool:
        """A callback entry's turn: the live worker with the fewest calls dials it (agent first)."""
        alive = await self.bus.alive_workers()
        if not alive:
            logger.warning("callback %s: no live worker to dial it; back in the queue", offer.call_id)
            await self.queue.offer_failed(offer.offer_id, epoch_ms(), "no-worker")
            return False
        worker = min(sorted(alive), key=lambda w: int(alive[w].get("calls") or 0))
        data |= {"caller": offer.caller, "attempt": offer.attempt}
        await self.bus.send_command(worker, ev.CMD_CALLBACK, data)
        self.offers_sent += 1
        logger.info(
            "callback offer %s: call %s, attempt %d, agent %s, on worker %s",
            offer.offer_id,
            offer.call_id,
            offer.attempt,
            offer.agent_id,
            worker,
        )
        return True

    # ------------------------------------------------------------ ticket jobs (leader only)
    async def ticket_clock_step(self) -> bool:
        if self.is_leader and self.jobs is not None:
            await self.jobs.clock_step()
        return False

    async def survey_step(self) -> bool:
        """One due 回访 attempt to a worker; True if one was sent (the loop goes on at once)."""
        if not self.is_leader or self.jobs is None:
            return False
        return await self.jobs.survey_step()

    async def webhook_step(self) -> bool:
        """On the leader, one round of the units' webhook deliveries; True if it sent any."""
        if not self.is_leader or self.webhooks is None:
            return False
        return await self.webhooks.step() > 0

    # ------------------------------------------------------------ tickets
    async def _ticket_loop(self) -> None:
        while True:
            try:
                await self.bus.ensure_group(TICKET_GROUP)
                while await self.ticket_step(block_ms=0, pending=True):
                    pass
                next_claim = 0.0
                while True:
                    if time.monotonic() >= next_claim:
                        while await self.claim_step():
                            pass
                        next_claim = time.monotonic() + self.settings.claim_idle_s / 3
                    await self.ticket_step(block_ms=1000)
            except Unavailable as exc:
                logger.warning("ticket writer: %s", exc)
                await asyncio.sleep(1)

    async def claim_step(self) -> int:
        """Writes the records another (dead) consumer read but never acknowledged."""
        idle_ms = int(self.settings.claim_idle_s * 1000)
        entries = await self.bus.claim_stale(TICKET_GROUP, self.settings.consumer, idle_ms, 50)
        if entries:
            logger.warning("ticket writer: took over %d events left unacknowledged", len(entries))
        return await self._write_records(entries)

    async def ticket_step(self, block_ms: int = 1000, pending: bool = False) -> int:
        """Writes the next call records; returns how many entries it handled.

        pending=True re-reads those delivered to this consumer before a crash or a store
        outage but never acknowledged."""
        consumer = self.settings.consumer
        entries = await self.bus.read_events(TICKET_GROUP, consumer, 50, block_ms, pending)
        return await self._write_records(entries)

    async def _write_records(self, entries: list[tuple[str, str, dict[str, Any]]]) -> int:
        written = 0
        for entry_id, kind, data in entries:
            if kind == ev.CALL_ENDED:
                try:
                    record = CallRecord.from_dict(data)
                except (KeyError, ValueError) as exc:
                    logger.error("malformed call record %s dropped: %s", entry_id, exc)
                else:
                    try:
                        if data.get("only_if_new") and await asyncio.to_thread(self.store.get_call, record.call_id):
                            pass  # a record of the real end exists: keep it
                        else:
                            await asyncio.to_thread(self.store.save_call, record)
                    except Unavailable:
                        raise  # not acknowledged: delivered again once the store is back
                    except DomainError as exc:
                        logger.error("call record %s refused by the store, dropped: %s", entry_id, exc)
                    else:
                        written += 1
                        if self.recordings is not None:
                            await self._register_recording(record, data)
            elif kind == ev.SURVEY_ENDED and self.jobs is not None:
                try:
                    await self.jobs.survey_ended(data)
                except Unavailable:
                    raise  # not acknowledged: delivered again once the store is back
                except (DomainError, KeyError, ValueError) as exc:
                    logger.error("survey result %s dropped: %s", entry_id, exc)
            await self.bus.ack(TICKET_GROUP, entry_id)
        self.records_written += written
        return len(entries)

    async def _register_recording(self, record: CallRecord, data: dict[str, Any]) -> None:
        """Catalogues the call's recording (size, length, SHA-256; the file is read in a thread)
        and its gaps (paused, or missing and why). The call record is saved already: a store
        outage re-delivers the entry (every write is idempotent by call id); any other failure is
        logged and costs only the catalogue entry."""
        assert self.recordings is not None
        try:
            if record.recording_path:
                await catalog.register(self.recordings, record.call_id, Path(record.recording_path), record.started_at)
            if isinstance(self.recordings, catalog.GapRegistry):
                await catalog.register_gaps(self.recordings, record.call_id, data, record.started_at)
        except Unavailable:
            raise
        except Exception:
            logger.exception("recording of call %s (%s) not catalogued", record.call_id, record.recording_path)

    # ------------------------------------------------------------ queue log
    async def _queue_log_loop(self) -> None:
        while True:
            try:
                await self.bus.ensure_group(QUEUE_LOG_GROUP)
                while await self.queue_log_step(block_ms=0, pending=True):
                    pass
                while True:
                    await self.queue_log_step(block_ms=1000)
            except Unavailable as exc:
                logger.warning("queue log: %s", exc)
                await asyncio.sleep(1)
            except OSError as exc:
                logger.error("queue log: %s", exc)  # a full disk never stops the control plane
                await asyncio.sleep(5)

    async def queue_log_step(self, block_ms: int = 1000, pending: bool = False) -> int:
        """Appends the next events to the queue log; returns how many events it read."""
        assert self.settings.queue_log is not None
        entries = await self.bus.read_events(QUEUE_LOG_GROUP, self.settings.consumer, 200, block_ms, pending)
        if not entries:
            return 0
        now = epoch_ms()
        lines = [line for _, kind, data in entries for line in self._queue_log.lines(kind, data, now)]
        if lines:
            path = self.settings.queue_log
            await asyncio.to_thread(_append_lines, path, lines)
        for entry_id, _, _ in entries:
            await self.bus.ack(QUEUE_LOG_GROUP, entry_id)
        return len(entries)

    # ------------------------------------------------------------ dead workers and leases
    async def monitor_step(self) -> bool:
        if not self.is_leader:
            return False
        if time.monotonic() >= self._next_reconcile:
            self._next_reconcile = time.monotonic() + self.settings.reconcile_interval_s
            await self.reconcile_step()
        for offer in await self.queue.expire_offers(epoch_ms()):
            logger.warning("offer %s expired; call %s back in the queue", offer.offer_id, offer.call_id)
        await self.overflow_step()
        known = await self.bus.known_workers()
        alive = set(await self.bus.alive_workers())
        for worker in sorted(known - alive):
            await self.close_dead_worker(WorkerId(worker))
        return False

    async def overflow_step(self) -> int:
        """Callers who waited their queue's max_wait_s (or came to a full queue) go to its
        overflow target; returns how many were sent. "queue:<name>": the entry moves to that
        queue with its arrival time (queue.move_to_queue; a full one is tried again next step).
        "callback": the caller's worker tells him he will be called back at his place and hangs
        up (the flow requests the callback, as when he presses 1); a caller whose number cannot
        be dialled keeps waiting. "voicemail": his worker takes him out of the queue and records
        his message (the flow's voicemail). Sent again each step until it took effect (the entry
        became a callback, or left the queue): the flow acts on it once."""
        targets = self.settings.overflow_targets
        if not self.settings.overflow_target and not any(targets.values()):
            return 0
        sent = moved = 0
        for call in await self.queue.overflow_due(epoch_ms()):
            target = targets.get(call.queue, self.settings.overflow_target)
            if target.startswith("queue:"):
                got = await self.queue.move_to_queue(call.call_id, target.removeprefix("queue:"), epoch_ms())
                if got is not None and got > 0:
                    logger.info("overflow: call %s moved from queue %s to %s", call.call_id, call.queue, target)
                    moved += 1
                continue
            data: dict[str, Any] = {"call_id": call.call_id, "target": target}
            if target == "voicemail" and call.worker_id:
                data["max_s"] = self.settings.voicemail_max_s.get(call.queue, 0.0)
            elif target != "callback" or not DIALABLE.match(call.caller) or not call.worker_id:
                continue
            await self.bus.send_command(call.worker_id, ev.CMD_OVERFLOW, data)
            sent += 1
        if sent:
            logger.warning("overflow: %d callers sent to their queue's overflow (callback, voicemail)", sent)
        return sent + moved

    async def reconcile_step(self, min_age_ms: int = 30_000) -> int:
        """Reconciles the queue with the workers' live calls; returns how many things it fixed.

        Run by the leader when it takes the lease and every reconcile_interval_s. What the
        queue holds that no worker tracks (a worker forgotten before its calls were closed, a
        Redis restored from an older AOF, a crash between two steps) is settled like a dead
        worker's call (runtime/lost.py): a waiting caller of a worker that is not alive keeps
        the place as a callback; an agent on a call no worker has is freed. Anything younger
        than min_age_ms is left alone (a worker tracks a call a moment after it queues it)."""
        now = epoch_ms()
        alive = await self.bus.alive_workers()
        live: set[str] = set()
        for worker in await self.bus.known_workers():
            for call_id, info in (await self.bus.tracked_calls(worker)).items():
                live.add(call_id)
                if info.get("queue_call_id"):
                    live.add(str(info["queue_call_id"]))
        fixed = 0
        for entry in await self.queue.waiting():
            if entry.callback or entry.call_id in live or entry.worker_id in alive:
                continue
            if now - entry.arrival_ms < min_age_ms:
                continue
            info = {"caller": entry.caller, "callee": "", "started_at": ""}
            record = await settle_lost_call(self.queue, entry.worker_id, entry.call_id, info)
            if await asyncio.to_thread(self.store.get_call, entry.call_id) is None:
                await asyncio.to_thread(self.store.save_call, record)
            logger.error(
                "reconcile: call %s of worker %s, known to no worker: %s",
                entry.call_id,
                entry.worker_id,
                record.outcome,
            )
            fixed += 1
        for agent in await self.queue.agents():
            if agent.state != AgentState.ON_CALL or agent.call_id is None or agent.call_id in live:
                continue
            if now - agent.since_ms < min_age_ms:
                continue
            await self.queue.call_finished(agent.call_id, now, lost=True)
            logger.error(
                "reconcile: agent %s was on call %s, which no worker has: freed", agent.agent_id, agent.call_id
            )
            fixed += 1
        return fixed

    async def close_dead_worker(self, worker_id: WorkerId) -> int:
        calls = await self.bus.tracked_calls(worker_id)
        for call_id, info in calls.items():
            await self._close_failed(worker_id, CallId(call_id), info)
        await self.bus.forget_worker(worker_id)
        if calls:
            logger.error("worker %s died: %d calls closed as failed", worker_id, len(calls))
        return len(calls)

    async def _close_failed(self, worker_id: WorkerId, call_id: CallId, info: dict[str, Any]) -> None:
        """Closes one call of a dead worker (hotline/runtime/lost.py says how)."""
        record = await settle_lost_call(self.queue, worker_id, call_id, info)
        if await asyncio.to_thread(self.store.get_call, call_id) is None:
            await asyncio.to_thread(self.store.save_call, record)
            self.failed_closed += 1
        await self.bus.untrack_call(worker_id, call_id)


def _append_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
