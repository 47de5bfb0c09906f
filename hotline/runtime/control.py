"""The control plane: dispatcher, ticket writer, dead-worker monitor (`hotline control`).

- Dispatcher: reserves the longest-idle available agent for the head of the queue (one Lua
  script in the queue adapter) and tells the caller's worker to dial that agent.
- Offer leases: an offer nobody answered or reported within its lease goes back to the queue.
- Ticket writer: every call.ended record on the event stream becomes a row in the ticket store;
  the entry is acknowledged only after the row is written (a crash re-delivers, the write is
  idempotent by call id).
- Dead workers: a worker whose heartbeat expired has its live calls closed as failed records,
  their queue entries removed and their agents freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from hotline.core import events as ev
from hotline.core.errors import DomainError, Unavailable
from hotline.core.model import CallId, CallRecord, WorkerId, lost_call_record
from hotline.core.ports import CallQueue, Offer, TicketStore

logger = logging.getLogger(__name__)

TICKET_GROUP = "tickets"


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


@dataclasses.dataclass(frozen=True, slots=True)
class ControlSettings:
    consumer: str = "control-1"
    dispatch_interval_s: float = 0.1
    ring_timeout_s: float = 20.0
    lease_margin_s: float = 10.0  # an offer's lease = ring timeout + this
    monitor_interval_s: float = 1.0


def epoch_ms() -> int:
    return int(time.time() * 1000)


class Control:
    def __init__(
        self,
        settings: ControlSettings,
        queue: CallQueue,
        bus: ControlBus,
        store: TicketStore,
        agent_uri: Callable[[Offer], str],
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.bus = bus
        self.store = store
        self.agent_uri = agent_uri
        self.offers_sent = 0
        self.records_written = 0
        self.failed_closed = 0

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._forever(self.dispatch_step, self.settings.dispatch_interval_s), name="dispatch"),
            asyncio.create_task(self._ticket_loop(), name="tickets"),
            asyncio.create_task(self._forever(self.monitor_step, self.settings.monitor_interval_s), name="monitor"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

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
    async def dispatch_step(self) -> bool:
        """Makes at most one offer; True if it made one (so the loop goes on at once)."""
        lease_ms = int((self.settings.ring_timeout_s + self.settings.lease_margin_s) * 1000)
        offer = await self.queue.dispatch_once(epoch_ms(), lease_ms)
        if offer is None:
            return False
        try:
            uri = self.agent_uri(offer)
        except DomainError as exc:
            logger.warning("offer %s: %s", offer.offer_id, exc)
            await self.queue.offer_failed(offer.offer_id, epoch_ms(), "no-uri")
            return True
        data = {
            "call_id": offer.call_id,
            "offer_id": offer.offer_id,
            "agent_id": offer.agent_id,
            "agent_uri": uri,
        }
        await self.bus.send_command(offer.worker_id, ev.CMD_OFFER, data)
        self.offers_sent += 1
        logger.info("offer %s: call %s -> agent %s (%s)", offer.offer_id, offer.call_id, offer.agent_id, uri)
        return True

    # ------------------------------------------------------------ tickets
    async def _ticket_loop(self) -> None:
        while True:
            try:
                await self.bus.ensure_group(TICKET_GROUP)
                while await self.ticket_step(block_ms=0, pending=True):
                    pass
                while True:
                    await self.ticket_step(block_ms=1000)
            except Unavailable as exc:
                logger.warning("ticket writer: %s", exc)
                await asyncio.sleep(1)

    async def ticket_step(self, block_ms: int = 1000, pending: bool = False) -> int:
        """Writes the next call records; returns how many entries it handled.

        pending=True re-reads those delivered to this consumer before a crash or a store
        outage but never acknowledged."""
        consumer = self.settings.consumer
        entries = await self.bus.read_events(TICKET_GROUP, consumer, 50, block_ms, pending)
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
            await self.bus.ack(TICKET_GROUP, entry_id)
        self.records_written += written
        return len(entries)

    # ------------------------------------------------------------ dead workers and leases
    async def monitor_step(self) -> bool:
        for offer in await self.queue.expire_offers(epoch_ms()):
            logger.warning("offer %s expired; call %s back in the queue", offer.offer_id, offer.call_id)
        known = await self.bus.known_workers()
        alive = set(await self.bus.alive_workers())
        for worker in sorted(known - alive):
            await self.close_dead_worker(WorkerId(worker))
        return False

    async def close_dead_worker(self, worker_id: WorkerId) -> int:
        calls = await self.bus.tracked_calls(worker_id)
        for call_id, info in calls.items():
            await self._close_failed(worker_id, CallId(call_id), info)
        await self.bus.forget_worker(worker_id)
        if calls:
            logger.error("worker %s died: %d calls closed as failed", worker_id, len(calls))
        return len(calls)

    async def _close_failed(self, worker_id: WorkerId, call_id: CallId, info: dict[str, Any]) -> None:
        existing = await asyncio.to_thread(self.store.get_call, call_id)
        if existing is None:
            record = lost_call_record(call_id, worker_id, info, "worker died")
            await asyncio.to_thread(self.store.save_call, record)
            self.failed_closed += 1
        await self.queue.abandon(call_id)
        await self.queue.call_finished(call_id, epoch_ms(), lost=True)  # the agent is free at once
        await self.bus.untrack_call(worker_id, call_id)
