"""Live events over WebSocket (GET /api/v1/ws): the event stream, filtered by role.

Rules of this module:
- One reader task per app reads the events stream with plain XREAD (no consumer group), so the
  clients of every control process see every event. Each event goes to each client as one JSON
  text message {"id": stream id, "type": kind, "data": {...}}; the first message is
  {"type": "hello", "data": the principal}.
- What a client sees: supervisors and admins everything; an agent the events of his own agent
  (agent.state, agent.autopaused, offer.*, call.ended of his calls) and the drafts of calls
  offered to him (call.draft). Caller numbers are shown as Principal.caller allows.
- Each client has a bounded queue. When it is full the client is too slow: it is disconnected
  with close code 4008 and loses nothing silently; the reader never waits for a client.
- aiohttp pings every `heartbeat_s` and drops a client that does not answer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from hotline.agent_desktop.auth import Principal, principal
from hotline.agent_desktop.responses import dumps
from hotline.core import events
from hotline.core.errors import DomainError, NotFound

logger = logging.getLogger(__name__)

SLOW_CLIENT = 4008  # close code: the client's queue overflowed
GOING_AWAY = 1001
_OWN_AGENT_KINDS = frozenset(
    {events.AGENT_STATE, events.AGENT_AUTOPAUSED, events.OFFER_ANSWERED, events.OFFER_FAILED, events.CALL_ENDED}
)
_MAX_OWNERS = 10_000  # calls remembered with their agent (for call.draft)

Entry = tuple[str, str, dict[str, Any]]


class EventFeed(Protocol):
    """The events stream read by everyone (hotline.queue.bus.RedisEventBus.read_after)."""

    async def read_after(self, last_id: str, block_ms: int, count: int = 100) -> tuple[str, list[Entry]]:
        """Events after last_id ("$": from now); returns the id to pass next time, and the events."""


@dataclasses.dataclass(eq=False)
class LiveClient:
    who: Principal
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str]
    kicked: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


class LiveHub:
    """The reader task and the connected clients of one app."""

    def __init__(
        self,
        feed: EventFeed,
        *,
        max_queue: int = 1000,
        block_ms: int = 1000,
        heartbeat_s: float = 20.0,
        retry_s: float = 1.0,
    ) -> None:
        self._feed = feed
        self.max_queue = max_queue
        self._block_ms = block_ms
        self.heartbeat_s = heartbeat_s
        self._retry_s = retry_s
        self.clients: set[LiveClient] = set()
        self._owners: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.started = asyncio.Event()  # the reader has fixed its start ("$" resolved)

    async def run(self) -> None:
        """Reads the stream until cancelled; a Redis outage is logged and retried."""
        last = "$"
        while True:
            try:
                last, entries = await self._feed.read_after(last, self._block_ms)
            except DomainError as exc:
                logger.warning("live feed: reading events failed (%s); retrying", exc.message)
                await asyncio.sleep(self._retry_s)
                continue
            self.started.set()
            for entry_id, kind, data in entries:
                self.publish(entry_id, kind, data)

    def publish(self, entry_id: str, kind: str, data: dict[str, Any]) -> None:
        """Queues the event for every client allowed to see it; kicks the ones that are full."""
        self._track(kind, data)
        for client in list(self.clients):
            view = self.view(client.who, kind, data)
            if view is None or client.kicked.is_set():
                continue
            try:
                client.queue.put_nowait(dumps({"id": entry_id, "type": kind, "data": view}))
            except asyncio.QueueFull:
                logger.warning("live feed: %s is too slow, disconnecting", client.who.username or "a client")
                client.kicked.set()

    def view(self, who: Principal, kind: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """The event's data as `who` may see it, or None."""
        call_id = data.get("call_id")
        owner = data.get("agent_id") if kind in _OWN_AGENT_KINDS else self._owners.get(str(call_id))
        if not who.supervises:
            mine = (kind in _OWN_AGENT_KINDS or kind == events.CALL_DRAFT) and who.owns(owner)
            if not mine:
                return None
        caller = data.get("caller")
        if isinstance(caller, str):
            return {**data, "caller": who.caller(caller)}
        return data

    def join(self, who: Principal, ws: web.WebSocketResponse) -> LiveClient:
        client = LiveClient(who, ws, asyncio.Queue(self.max_queue))
        self.clients.add(client)
        return client

    def leave(self, client: LiveClient) -> None:
        self.clients.discard(client)

    def _track(self, kind: str, data: dict[str, Any]) -> None:
        call_id, agent_id = data.get("call_id"), data.get("agent_id")
        if kind in _OWN_AGENT_KINDS and isinstance(call_id, str) and call_id and isinstance(agent_id, str):
            self._owners[call_id] = agent_id
            self._owners.move_to_end(call_id)
            while len(self._owners) > _MAX_OWNERS:
                self._owners.popitem(last=False)


LIVE = web.AppKey["LiveHub | None"]("live")


async def websocket(request: web.Request) -> web.StreamResponse:
    hub = request.app[LIVE]
    if hub is None:
        raise NotFound("this process has no live event feed")
    who = principal(request)
    ws = web.WebSocketResponse(heartbeat=hub.heartbeat_s, max_msg_size=4096)
    await ws.prepare(request)
    client = hub.join(who, ws)
    tasks: list[asyncio.Task[Any]] = []
    try:
        await ws.send_str(dumps({"type": "hello", "data": who.to_dict()}))
        tasks = [
            asyncio.create_task(_pump(client)),
            asyncio.create_task(_drain(ws)),
            asyncio.create_task(client.kicked.wait()),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.leave(client)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if client.kicked.is_set():
        await ws.close(code=SLOW_CLIENT, message=b"too slow: events were dropped")
    else:
        await ws.close()
    return ws


async def _pump(client: LiveClient) -> None:
    while True:
        await client.ws.send_str(await client.queue.get())


async def _drain(ws: web.WebSocketResponse) -> None:
    """Reads (and ignores) what the client sends, until it closes."""
    async for msg in ws:
        if msg.type is WSMsgType.ERROR:
            break


async def live_context(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the reader task while the app runs."""
    hub = app[LIVE]
    task = None if hub is None else asyncio.create_task(hub.run(), name="live-feed")
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def close_clients(app: web.Application) -> None:
    """on_shutdown: tell every client the server goes away."""
    hub = app[LIVE]
    if hub is not None:
        for client in list(hub.clients):
            await client.ws.close(code=GOING_AWAY, message=b"server shutting down")
