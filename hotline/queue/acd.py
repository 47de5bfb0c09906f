"""RedisCallQueue: the CallQueue port on Redis (minimal ACD: one FIFO queue, longest-idle agent).

Every change that touches several keys is one Lua script from hotline/queue/lua/ (common.lua is
prepended to each, it holds the shared rules); reads that need a consistent view of several keys
use MULTI. Every write is idempotent by id: enqueue by call id, offer outcomes by offer id, agent
changes by agent id, so a retried or duplicated message changes nothing the second time.

Times are passed in (epoch ms), never read from a clock here. No redis type or exception leaves
this module: connection trouble is Unavailable, anything else from Redis is a DomainError.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
from typing import Any

import redis.asyncio

from hotline.core.errors import Conflict, InvalidRequest
from hotline.core.model import Agent, AgentId, AgentState, CallId, OfferId, WorkerId
from hotline.core.ports import AgentStatus, Offer, WaitingCall
from hotline.queue import keys
from hotline.queue.client import reply, text, translate_errors

logger = logging.getLogger(__name__)

# Lua numbers are doubles printed with 14 significant digits (cjson, redis.call): epoch ms fit.
MAX_MS = 10**14 - 1
EXPIRE_BATCH = 1000


def load_lua(name: str) -> str:
    """The source of lua/<name>.lua with the shared common.lua in front of it."""
    folder = importlib.resources.files("hotline.queue").joinpath("lua")
    common = folder.joinpath("common.lua").read_text(encoding="utf-8")
    return common + "\n" + folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")


_SCRIPTS = (
    "enqueue",
    "abandon",
    "dispatch",
    "offer_answered",
    "offer_failed",
    "expire_offers",
    "call_finished",
    "agent_login",
    "agent_logout",
)


def _ms(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MS:
        raise InvalidRequest(f"{name} must be an integer of epoch ms in 0..{MAX_MS}, got {value!r}")
    return value


def _id(name: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{name} must be a non-empty string, got {value!r}")
    return value


def _status(data: dict[str, Any]) -> AgentStatus:
    call_id = data.get("call_id")
    return AgentStatus(
        agent_id=AgentId(str(data["agent_id"])),
        state=AgentState(data["state"]),
        since_ms=int(data.get("since_ms", 0)),
        call_id=CallId(str(call_id)) if call_id else None,
    )


def _offer(data: dict[str, Any]) -> Offer:
    return Offer(
        offer_id=OfferId(str(data["offer_id"])),
        call_id=CallId(str(data["call_id"])),
        worker_id=WorkerId(str(data["worker_id"])),
        agent_id=AgentId(str(data["agent_id"])),
        agent_extension=str(data["agent_extension"]),
        agent_uri=str(data["agent_uri"]) if data.get("agent_uri") else None,
    )


def _logged_out(agent_id: AgentId) -> AgentStatus:
    return AgentStatus(agent_id=agent_id, state=AgentState.LOGGED_OUT, since_ms=0)


class RedisCallQueue:
    """The ACD queue `queue` in Redis under `prefix` (implements hotline.core.ports.CallQueue).

    Queue order is FIFO by arrival ms (ties by call id); the agent offered a call is the one
    idle the longest. `position`, `enqueue` and friends report 0 for a call being offered.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        prefix: str = keys.DEFAULT_PREFIX,
        queue: str = keys.DEFAULT_QUEUE,
    ) -> None:
        self._client = client
        self._keys = keys.acd(prefix, queue)
        self._all_keys = self._keys.all()
        self._scripts = {name: client.register_script(load_lua(name)) for name in _SCRIPTS}

    async def _run(self, name: str, *args: str | int) -> Any:
        with translate_errors(name):
            return await self._scripts[name](keys=self._all_keys, args=list(args))

    # --- queue entries -------------------------------------------------------------------

    async def enqueue(self, call_id: CallId, worker_id: WorkerId, caller: str, arrival_ms: int) -> int:
        """Adds the call (no-op if present); returns its 1-based position.

        0 means the call is not waiting because it is already offered or answered: a retried
        enqueue never queues a call twice.
        """
        position = await self._run(
            "enqueue",
            _id("call_id", call_id),
            _id("worker_id", worker_id),
            caller,
            _ms("arrival_ms", arrival_ms),
        )
        return int(position)

    async def abandon(self, call_id: CallId) -> bool:
        """Removes a waiting or offered entry (caller hung up); True if it was there.

        A reserved agent gets back exactly the state he had before the offer (same since and
        idle-since), so he keeps his turn among idle agents.
        """
        return bool(await self._run("abandon", _id("call_id", call_id)))

    async def position(self, call_id: CallId) -> int | None:
        """1-based position of a waiting call; 0 while it is offered; None if not queued."""
        with translate_errors("position"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zrank(self._keys.waiting, call_id)
                pipe.hexists(self._keys.calls, call_id)
                rank, present = await pipe.execute()
        if rank is not None:
            return int(rank) + 1
        return 0 if present else None

    async def _entries(self) -> tuple[list[str], dict[str, dict[str, Any]]]:
        with translate_errors("waiting"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zrange(self._keys.waiting, 0, -1)
                pipe.hgetall(self._keys.calls)
                order, raw = await pipe.execute()
        entries = {text(k): json.loads(text(v)) for k, v in raw.items()}
        return [text(member) for member in order], entries

    async def waiting(self) -> list[WaitingCall]:
        """The calls waiting for an agent, in the order they will be offered (offered excluded)."""
        order, entries = await self._entries()
        result: list[WaitingCall] = []
        for call_id in order:
            entry = entries.get(call_id)
            if entry is None:
                continue  # dispatch repairs this; never written by the scripts
            result.append(
                WaitingCall(
                    call_id=CallId(call_id),
                    worker_id=WorkerId(str(entry["worker_id"])),
                    caller=str(entry["caller"]),
                    arrival_ms=int(entry["arrival_ms"]),
                    position=len(result) + 1,
                )
            )
        return result

    async def offered(self) -> list[WaitingCall]:
        """The calls offered to an agent right now (position 0, offered_to set), oldest first."""
        _, entries = await self._entries()
        offered = [entry for entry in entries.values() if entry.get("state") == "offered"]
        offered.sort(key=lambda entry: (int(entry["arrival_ms"]), str(entry["call_id"])))
        return [
            WaitingCall(
                call_id=CallId(str(entry["call_id"])),
                worker_id=WorkerId(str(entry["worker_id"])),
                caller=str(entry["caller"]),
                arrival_ms=int(entry["arrival_ms"]),
                position=0,
                offered_to=AgentId(str(entry["agent_id"])),
            )
            for entry in offered
        ]

    # --- agents --------------------------------------------------------------------------

    async def agent_login(self, agent: Agent, now_ms: int) -> AgentStatus:
        """The agent becomes AVAILABLE; an agent already logged in keeps his state."""
        raw = await self._run(
            "agent_login",
            _id("agent_id", agent.agent_id),
            agent.name,
            _id("extension", agent.extension),
            agent.sip_uri or "",
            _ms("now_ms", now_ms),
        )
        return _status(json.loads(text(raw)))

    async def agent_logout(self, agent_id: AgentId, now_ms: int) -> AgentStatus:
        """The agent becomes LOGGED_OUT; a call offered to him goes back to its place.

        Raises Conflict if the agent is on a call (he must finish it first).
        """
        raw = await self._run("agent_logout", _id("agent_id", agent_id), _ms("now_ms", now_ms))
        data = json.loads(text(raw))
        if data.get("error") == "on-call":
            raise Conflict(f"agent {agent_id} is on call {data.get('call_id')}: finish the call first")
        return _status(data)

    async def agent_status(self, agent_id: AgentId) -> AgentStatus:
        """The agent's state; an agent never seen is LOGGED_OUT since 0."""
        with translate_errors("agent_status"):
            raw = await reply(self._client.hget(self._keys.agents, agent_id))
        return _logged_out(agent_id) if raw is None else _status(json.loads(text(raw)))

    async def agents(self) -> list[AgentStatus]:
        """Every agent the queue has seen, ordered by agent id."""
        with translate_errors("agents"):
            raw = await reply(self._client.hgetall(self._keys.agents))
        statuses = [_status(json.loads(text(value))) for value in raw.values()]
        return sorted(statuses, key=lambda status: status.agent_id)

    # --- offers --------------------------------------------------------------------------

    async def dispatch_once(self, now_ms: int, lease_ms: int) -> Offer | None:
        """Atomically reserve the longest-idle available agent for the head of the queue.

        The offer's lease ends at now_ms + lease_ms; expire_offers() takes it back after that.
        """
        if isinstance(lease_ms, bool) or not isinstance(lease_ms, int) or lease_ms <= 0:
            raise InvalidRequest(f"lease_ms must be a positive integer, got {lease_ms!r}")
        _ms("lease expiry", _ms("now_ms", now_ms) + lease_ms)
        raw = await self._run("dispatch", now_ms, lease_ms)
        return None if raw is None else _offer(json.loads(text(raw)))

    async def offer_answered(self, offer_id: OfferId, now_ms: int) -> bool:
        """The agent answered: ON_CALL with the call, which leaves the queue.

        False (and no change) for an unknown, expired or already answered offer: the caller
        must then drop the agent's leg, the call was given back to the queue.
        """
        return bool(await self._run("offer_answered", _id("offer_id", offer_id), _ms("now_ms", now_ms)))

    async def offer_failed(self, offer_id: OfferId, now_ms: int, reason: str) -> bool:
        """The call goes back to its original place; the agent becomes available again."""
        return bool(await self._run("offer_failed", _id("offer_id", offer_id), _ms("now_ms", now_ms), reason))

    async def call_finished(self, call_id: CallId, now_ms: int) -> None:
        """The agent who had this call becomes available (idle since now)."""
        await self._run("call_finished", _id("call_id", call_id), _ms("now_ms", now_ms))

    async def expire_offers(self, now_ms: int) -> list[Offer]:
        """Offers whose lease ran out (expiry <= now_ms) go back as if failed; returns them."""
        expired: list[Offer] = []
        while True:
            batch = await self._run("expire_offers", _ms("now_ms", now_ms), EXPIRE_BATCH)
            expired.extend(_offer(json.loads(text(raw))) for raw in batch)
            if len(batch) < EXPIRE_BATCH:
                return expired
