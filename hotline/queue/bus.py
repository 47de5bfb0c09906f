"""RedisEventBus: the EventBus port on Redis streams, plus the worker registry.

Events (worker -> control plane) go to one stream read by consumer groups; commands (control
plane -> worker) go to one stream per worker, read with plain XREAD by that worker alone.
Entries are hotline.core.events.encode() dicts. A malformed entry is logged and dropped (acked in
a group, deleted from a command stream) and never reaches the caller or stops a reader.

Workers announce themselves with heartbeats (a key that expires) and keep a hash of their live
calls, so the control plane can close the calls of a worker that stopped beating.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis.asyncio
import redis.exceptions

from hotline.core import events
from hotline.core.errors import InvalidRequest
from hotline.core.model import CallId, WorkerId
from hotline.queue import keys
from hotline.queue.client import reply, text, translate_errors

logger = logging.getLogger(__name__)

EVENTS_MAXLEN = 100_000
COMMANDS_MAXLEN = 10_000

Entry = tuple[str, str, dict[str, Any]]


def _decode_fields(fields: dict[Any, Any] | None) -> tuple[str, dict[str, Any]]:
    if fields is None:
        raise ValueError("stream entry was deleted")
    try:
        as_text = {text(k): text(v) for k, v in fields.items()}
    except UnicodeDecodeError as exc:
        raise ValueError(f"stream entry is not UTF-8: {exc}") from exc
    return events.decode(as_text)


def _decode_entries(raw: Any, what: str, stream: str) -> tuple[list[Entry], list[str]]:
    """(entry id, kind, data) of the well-formed entries of an XREAD/XREADGROUP/XAUTOCLAIM
    entry list, and the ids of the malformed ones (logged), for the caller to ack or delete."""
    good: list[Entry] = []
    bad: list[str] = []
    for raw_id, fields in raw:
        entry_id = text(raw_id)
        try:
            kind, data = _decode_fields(fields)
        except ValueError as exc:
            logger.error("dropping malformed %s %s on %s: %s", what, entry_id, stream, exc)
            bad.append(entry_id)
            continue
        good.append((entry_id, kind, data))
    return good, bad


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


class RedisEventBus:
    """Streams and worker registry under `prefix` (implements hotline.core.ports.EventBus)."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        prefix: str = keys.DEFAULT_PREFIX,
        *,
        events_maxlen: int = EVENTS_MAXLEN,
        commands_maxlen: int = COMMANDS_MAXLEN,
    ) -> None:
        """Streams are trimmed approximately (whole radix-tree nodes) to about the maxlens."""
        self._client = client
        self._events_maxlen = events_maxlen
        self._commands_maxlen = commands_maxlen
        self._prefix = prefix
        self._events = keys.events(prefix)
        self._workers = keys.workers(prefix)

    # --- publishing ----------------------------------------------------------------------

    async def publish(self, kind: str, data: dict[str, Any]) -> str:
        """Appends an event for the control plane; returns the stream entry id."""
        with translate_errors("publish"):
            fields: dict[Any, Any] = events.encode(kind, data)
            entry_id = await self._client.xadd(self._events, fields, maxlen=self._events_maxlen, approximate=True)
        return text(entry_id)

    async def send_command(self, worker_id: WorkerId, kind: str, data: dict[str, Any]) -> str:
        """Appends a command to one worker's stream; returns the stream entry id."""
        stream = keys.worker_commands(worker_id, self._prefix)
        with translate_errors("send_command"):
            fields: dict[Any, Any] = events.encode(kind, data)
            entry_id = await self._client.xadd(stream, fields, maxlen=self._commands_maxlen, approximate=True)
        return text(entry_id)

    # --- consuming events ----------------------------------------------------------------

    async def ensure_group(self, group: str, start_id: str = "0") -> None:
        """Creates the consumer group on the events stream if it does not exist.

        A new group starts at the beginning of the stream by default: consumers are idempotent
        by id, so replaying old events is harmless, while missing the ones published before the
        group existed would lose calls.
        """
        with translate_errors("ensure_group"):
            try:
                await self._client.xgroup_create(self._events, group, id=start_id, mkstream=True)
            except redis.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read_events(
        self, group: str, consumer: str, count: int = 100, block_ms: int = 0, pending: bool = False
    ) -> list[Entry]:
        """Up to `count` events as (entry id, kind, data); ack each once it is handled.

        block_ms > 0 waits that long for new events (the client's socket timeout, if any, must
        be longer); 0 returns at once. pending=True re-reads this consumer's delivered but
        unacknowledged events instead (do that once at start-up, after a crash).
        If the group is missing (e.g. Redis restarted empty) it is created again.
        """
        start = "0" if pending else ">"
        block = block_ms if block_ms > 0 else None
        with translate_errors("read_events"):
            try:
                reply = await self._client.xreadgroup(group, consumer, {self._events: start}, count=count, block=block)
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                logger.warning("consumer group %s missing on %s: creating it", group, self._events)
                await self.ensure_group(group)
                reply = await self._client.xreadgroup(group, consumer, {self._events: start}, count=count, block=block)
            good, bad = _decode_entries([e for _s, es in reply or [] for e in es], "event", self._events)
            if bad:
                await self._client.xack(self._events, group, *bad)
        return good

    async def _newest_id(self) -> str:
        """The id of the newest event ("0-0" for an empty stream): "$" made explicit, so that
        nothing published between two blocking reads is missed."""
        newest = await self._client.xrevrange(self._events, count=1)
        return text(newest[0][0]) if newest else "0-0"

    async def wait_events(self, last_id: str, block_ms: int) -> str:
        """Waits up to block_ms for an event after last_id ("$": after now) on the events stream,
        without consuming it; returns the id of the newest event seen (last_id if none came).
        The dispatcher sleeps on this, so a new call or a freed agent wakes it at once."""
        with translate_errors("wait_events"):
            if last_id == "$":
                last_id = await self._newest_id()
            reply = await self._client.xread({self._events: last_id}, count=1000, block=max(1, block_ms))
        for _stream, entries in reply or []:
            if entries:
                last_id = text(entries[-1][0])
        return last_id

    async def read_after(self, last_id: str, block_ms: int, count: int = 100) -> tuple[str, list[Entry]]:
        """Events after last_id ("$": after now) with plain XREAD, no consumer group: every reader
        sees every event (the agent desktop's live feed). Returns the id to pass next time and
        the events as (entry id, kind, data); malformed ones are logged and skipped."""
        with translate_errors("read_after"):
            if last_id == "$":
                last_id = await self._newest_id()
            reply = await self._client.xread({self._events: last_id}, count=count, block=max(1, block_ms))
        good: list[Entry] = []
        for _stream, entries in reply or []:
            for raw_id, fields in entries:
                last_id = text(raw_id)
                try:
                    kind, data = _decode_fields(fields)
                except ValueError as exc:
                    logger.error("skipping malformed event %s on %s: %s", last_id, self._events, exc)
                    continue
                good.append((last_id, kind, data))
        return last_id, good

    async def claim_stale(self, group: str, consumer: str, min_idle_ms: int, count: int = 100) -> list[Entry]:
        """Takes over, for `consumer`, events delivered to any consumer of the group that stayed
        unacknowledged for min_idle_ms (that consumer died: a control process killed mid-write
        under another name); returns them as read_events does. Ack each once handled."""
        if min_idle_ms < 0 or count <= 0:
            raise InvalidRequest(f"min_idle_ms must be >= 0 and count > 0, got {min_idle_ms}, {count}")
        claimed: list[Entry] = []
        cursor = "0-0"
        with translate_errors("claim_stale"):
            while len(claimed) < count:
                try:
                    result = await self._client.xautoclaim(
                        self._events, group, consumer, min_idle_ms, start_id=cursor, count=count - len(claimed)
                    )
                except redis.exceptions.ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    return claimed
                cursor = text(result[0])
                # An entry trimmed from the stream meanwhile comes back without fields (dropped).
                kept = [(raw_id, fields) for raw_id, fields in result[1] if fields is not None]
                good, bad = _decode_entries(kept, "event", self._events)
                claimed.extend(good)
                if bad:
                    await self._client.xack(self._events, group, *bad)
                if cursor == "0-0":
                    break
        return claimed

    async def ack(self, group: str, entry_id: str) -> None:
        """Marks an event as handled by the group (idempotent)."""
        with translate_errors("ack"):
            await self._client.xack(self._events, group, entry_id)

    # --- consuming commands (the worker side) --------------------------------------------

    async def read_commands(
        self, worker_id: WorkerId, last_id: str = "0", block_ms: int = 0, count: int = 100
    ) -> list[Entry]:
        """Commands to this worker after `last_id`, as (entry id, kind, data).

        Pass the id of the last entry returned as the next last_id ("$" for only new ones).
        block_ms as in read_events. Malformed entries are deleted from the stream and skipped.
        """
        stream = keys.worker_commands(worker_id, self._prefix)
        block = block_ms if block_ms > 0 else None
        with translate_errors("read_commands"):
            reply = await self._client.xread({stream: last_id}, count=count, block=block)
            good, bad = _decode_entries([e for _s, es in reply or [] for e in es], "command", stream)
            if bad:
                # Deleted, so a reader whose last good entry precedes them does not see them again.
                await self._client.xdel(stream, *bad)
        return good

    async def newest_command_id(self, worker_id: WorkerId) -> str:
        """The id of the newest command to this worker ("0-0" if none): where a reader that
        wants only new commands starts. Passing "$" to every blocking read instead would miss a
        command sent between two reads."""
        stream = keys.worker_commands(worker_id, self._prefix)
        with translate_errors("newest_command_id"):
            newest = await self._client.xrevrange(stream, count=1)
        return text(newest[0][0]) if newest else "0-0"

    # --- worker registry -----------------------------------------------------------------

    async def heartbeat(self, worker_id: WorkerId, ttl_ms: int, info: dict[str, Any]) -> None:
        """The worker is alive for ttl_ms more, with `info` (address, capacity, ...)."""
        if ttl_ms <= 0:
            raise InvalidRequest(f"ttl_ms must be positive, got {ttl_ms}")
        with translate_errors("heartbeat"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(keys.worker_alive(worker_id, self._prefix), _dumps(info), px=ttl_ms)
                pipe.sadd(self._workers, worker_id)
                await pipe.execute()

    async def known_workers(self) -> set[WorkerId]:
        """Every worker seen (heartbeat or tracked call) and not forgotten, alive or not."""
        with translate_errors("known_workers"):
            members = await reply(self._client.smembers(self._workers))
        return {WorkerId(text(member)) for member in members}

    async def alive_workers(self) -> dict[WorkerId, dict[str, Any]]:
        """The workers whose heartbeat has not expired, with the info of their last beat."""
        known = sorted(await self.known_workers())
        if not known:
            return {}
        with translate_errors("alive_workers"):
            values = await self._client.mget([keys.worker_alive(w, self._prefix) for w in known])
        alive: dict[WorkerId, dict[str, Any]] = {}
        for worker_id, raw in zip(known, values, strict=True):
            if raw is None:
                continue
            try:
                info = json.loads(text(raw))
            except ValueError:
                info = {}
            alive[worker_id] = info if isinstance(info, dict) else {}
        return alive

    async def forget_worker(self, worker_id: WorkerId) -> None:
        """Removes every trace of a worker (after its calls were closed)."""
        with translate_errors("forget_worker"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.srem(self._workers, worker_id)
                pipe.delete(
                    keys.worker_alive(worker_id, self._prefix),
                    keys.worker_calls(worker_id, self._prefix),
                    keys.worker_commands(worker_id, self._prefix),
                )
                await pipe.execute()

    async def track_call(self, worker_id: WorkerId, call_id: CallId, info: dict[str, Any]) -> None:
        """Records a live call of the worker (insert or replace by call id)."""
        with translate_errors("track_call"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(keys.worker_calls(worker_id, self._prefix), call_id, _dumps(info))
                # Known even if it dies before its first heartbeat, so its calls get closed.
                pipe.sadd(self._workers, worker_id)
                await pipe.execute()

    async def untrack_call(self, worker_id: WorkerId, call_id: CallId) -> None:
        """The call ended normally (idempotent)."""
        with translate_errors("untrack_call"):
            await reply(self._client.hdel(keys.worker_calls(worker_id, self._prefix), call_id))

    async def tracked_calls(self, worker_id: WorkerId) -> dict[CallId, dict[str, Any]]:
        """The worker's live calls: call id -> the info given to track_call."""
        with translate_errors("tracked_calls"):
            raw = await reply(self._client.hgetall(keys.worker_calls(worker_id, self._prefix)))
        calls: dict[CallId, dict[str, Any]] = {}
        for call_id, value in raw.items():
            try:
                info = json.loads(text(value))
            except ValueError:
                logger.error("malformed tracked call %s of worker %s", text(call_id), worker_id)
                info = {}
            calls[CallId(text(call_id))] = info if isinstance(info, dict) else {}
        return calls
