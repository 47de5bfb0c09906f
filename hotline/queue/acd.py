"""RedisCallQueue: the CallQueue port on Redis (ACD: priorities, agent states, skills, strategies).

Every change that touches several keys is one Lua script from hotline/queue/lua/: a generated
prelude (the agent state table of agent_state.py, the policy, the priority lines) and common.lua
(the shared rules) are prepended to each. Reads that need a consistent view of several keys use
MULTI. Every write is idempotent by id: enqueue by call id, offer outcomes by offer id, agent
changes by agent id, so a retried or duplicated message changes nothing the second time. Each
change of an agent's state is appended to the events stream by the same script (agent.state).

Routing (routing.py is the spec, lua/dispatch.lua carries it out in one script): one
RedisCallQueue per queue name, all its keys under one hash tag. Its AcdPolicy names the strategy
(longest_idle, round_robin, fewest_calls, least_talk_time, skills_weighted, ring_all: one offer
group per call, an offer to every eligible agent at once, the first answer takes the call and
releases the others in the same script), the skills every
call needs and how the level a call accepts widens with its wait. Agents bring skills with
levels (Agent.skills, stored at login), calls may add skills of their own (enqueue(skills=)).
dispatch_once takes the first waiting call, in priority and arrival order, that has an eligible
available agent, and gives it to the agent the strategy picks. Each dispatch reads at most
AGENT_LIMIT available agents once, then scans at most SCAN_LIMIT waiting entries; the
eligibility of a (needed skills, level) pair that found nobody is remembered for the rest of
the scan, so the work is O(A + C + K*A*S) for A agents, C entries, K distinct (skills, level)
pairs among them and S skills per call, and O(1 + A) when the head call can be served.
Per-agent inputs (calls_answered, talk_ms, since login) are kept in the agent's JSON by
offer_answered, transfer_taken (a call transferred to an agent counts as answered by him) and
call_finished; round_robin's memory is the last-offered key. A full queue
(max_length) overflows inside enqueue (to its overflow queue, else marked overflow_now, else
QUEUE_FULL); max_wait_s and the overflow target are reported by overflow_due() for the control
plane to act on (move_to_queue for queue:<name>).

Several queues (queues=): one ACD whose agents serve them all, keys under the first queue's
hash tag (keys.py); each queue has its own lines and its own policy in the prelude's QUEUES
table; dispatch takes the calls of all queues in routing.dispatch_order.

Times are passed in (epoch ms), never read from a clock here. No redis type or exception leaves
this module: connection trouble is Unavailable, anything else from Redis is a DomainError.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import logging
from collections.abc import Mapping
from typing import Any

import redis.asyncio

from hotline.core import events
from hotline.core.errors import Conflict, IllegalTransition, InvalidRequest
from hotline.core.model import Actor, Agent, AgentId, AgentState, CallId, OfferId, Priority, WorkerId
from hotline.core.ports import AgentStatus, Offer, WaitingCall
from hotline.queue import agent_state, keys, routing
from hotline.queue.bus import EVENTS_MAXLEN
from hotline.queue.client import reply, text, translate_errors
from hotline.queue.estimate import estimate_waits

logger = logging.getLogger(__name__)

# Lua numbers are doubles printed with 14 significant digits (cjson, redis.call): epoch ms fit.
MAX_MS = 10**14 - 1
EXPIRE_BATCH = 1000
MAX_REASON = 64  # characters of a pause or logout reason


@dataclasses.dataclass(frozen=True, slots=True)
class AcdPolicy:
    """How one queue routes calls, treats agents and estimates waits; every process of a queue
    uses the same (the routing part is compiled into the Lua scripts). Rules: routing.py."""

    agent: agent_state.AgentPolicy = dataclasses.field(default_factory=agent_state.AgentPolicy)
    handle_samples: int = 20  # the handle-time average follows about the last this many calls
    default_handle_ms: int = 180_000  # assumed before the first call has finished
    strategy: routing.Strategy = routing.Strategy.LONGEST_IDLE  # which eligible agent gets the call
    required_skills: tuple[str, ...] = ()  # every call of the queue needs these (and its own)
    # (after_s, min_level) steps: the level a call accepts widens as it waits (0: any agent).
    skill_steps: tuple[tuple[float, int], ...] = routing.DEFAULT_STEPS
    max_length: int | None = None  # calls held (waiting or offered); enqueue refuses more: QUEUE_FULL
    # Carried for the control plane, which acts on overflow_due(): after max_wait_s a waiting
    # caller goes to overflow_target: "queue:<name>", "callback" or "voicemail" (to a ticket).
    max_wait_s: float | None = None
    overflow_target: str = ""
    service_level_s: float = 15.0  # answered within this counts as in service level (GB/T 33358)
    announce_interval_s: float | None = None  # how often a waiting caller hears his position

    def __post_init__(self) -> None:
        if not 0 <= self.agent.wrap_up_ms <= 24 * 3600 * 1000:
            raise InvalidRequest(f"wrap-up must be between 0 and 24 h in ms, got {self.agent.wrap_up_ms!r}")
        if self.handle_samples < 1 or self.default_handle_ms < 0:
            raise InvalidRequest("handle_samples must be >= 1 and default_handle_ms >= 0")
        # Normalised in place (lists from YAML become tuples), so the policy stays hashable.
        object.__setattr__(self, "strategy", routing.check_strategy(self.strategy))
        object.__setattr__(self, "required_skills", routing.check_skills(self.required_skills))
        object.__setattr__(self, "skill_steps", routing.check_steps(self.skill_steps))
        if self.max_length is not None and (
            isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 1
        ):
            raise InvalidRequest(f"max_length must be a positive integer or None, got {self.max_length!r}")
        for name in ("max_wait_s", "announce_interval_s"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise InvalidRequest(f"{name} must be a positive number of seconds or None, got {value!r}")
        level = self.service_level_s
        if isinstance(level, bool) or not isinstance(level, int | float) or level <= 0:
            raise InvalidRequest(f"service_level_s must be a positive number of seconds, got {level!r}")
        target = self.overflow_target
        if not isinstance(target, str) or not (
            target in ("", "callback", "voicemail")
            or (target.startswith("queue:") and _plain_name(target.removeprefix("queue:")))
        ):
            raise InvalidRequest(
                f'overflow_target must be "", "callback", "voicemail" or "queue:<name>", got {target!r}'
            )

    @property
    def max_wait_ms(self) -> int | None:
        return None if self.max_wait_s is None else round(self.max_wait_s * 1000)


def _plain_name(value: str) -> bool:
    return bool(value) and not any(ch in "{}" or ch.isspace() for ch in value)


def _lua_string(value: str) -> str:
    if not all(ch.isalnum() or ch in "_.-" for ch in value):
        raise ValueError(f"not a plain Lua string literal: {value!r}")
    return f"'{value}'"


def _lua_quoted(value: str) -> str:
    """Any string as a Lua literal: bytes other than ASCII letters and digits as 3-digit escapes."""
    return (
        "'" + "".join(chr(b) if chr(b).isascii() and chr(b).isalnum() else f"\\{b:03d}" for b in value.encode()) + "'"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Queue:
    name: str
    policy: AcdPolicy
    lines: keys.QueueLines


def _lua_queue(queue: _Queue, index: dict[str, int]) -> str:
    p = queue.policy
    bands = ", ".join(f"[{int(pr)}] = KEYS[{index[queue.lines.band(pr)]}]" for pr in Priority)
    target = p.overflow_target
    overflow = (
        f"overflow_queue = {_lua_quoted(target.removeprefix('queue:'))}, "
        if target.startswith("queue:")
        else (f"overflow = {_lua_quoted(target)}, " if target else "")
    )
    steps = ", ".join(f"{{ {after}, {level} }}" for after, level in routing.steps_ms(p.skill_steps))
    return (
        f"  [{_lua_quoted(queue.name)}] = {{ name = {_lua_quoted(queue.name)}, bands = {{ {bands} }}, "
        f"strategy = {_lua_string(p.strategy.value)}, "
        f"required = {{ {', '.join(_lua_quoted(s) for s in p.required_skills)} }}, steps = {{ {steps} }}, "
        f"max_length = {int(p.max_length or 0)}, wrap_up_ms = {int(p.agent.wrap_up_ms)}, {overflow}}},"
    )


def lua_prelude(
    policy: AcdPolicy,
    acd_keys: keys.AcdKeys,
    events_maxlen: int = EVENTS_MAXLEN,
    queues: list[_Queue] | None = None,
) -> str:
    """The generated head of every script: the agent state table, the policy, the lines; with
    several queues (the first is the ACD's own, whose policy is `policy`), each one's rules."""
    lines = [
        "-- generated by hotline/queue/acd.py from agent_state.TRANSITIONS and the policy",
        "local TRANSITIONS = {",
    ]
    for state in AgentState:
        row = {event: to for (source, event), to in agent_state.TRANSITIONS.items() if source is state}
        cells = ", ".join(
            f"[{_lua_string(event)}] = {{ {', '.join(f'[{_lua_string(t.value)}] = true' for t in sorted(to))} }}"
            for event, to in sorted(row.items())
        )
        lines.append(f"  [{_lua_string(state.value)}] = {{ {cells} }},")
    lines.append("}")
    own = _Queue(keys.DEFAULT_QUEUE, policy, keys.QueueLines(*(acd_keys.band(p) for p in sorted(Priority))))
    queues = queues or [own]
    index = {key: n + 1 for n, key in enumerate(acd_keys.all() + [k for q in queues[1:] for k in q.lines.all()])}
    lines += [
        "local QUEUES = {",
        *(_lua_queue(q, index) for q in queues),
        "}",
        f"local QUEUE_ORDER = {{ {', '.join(_lua_quoted(q.name) for q in queues)} }}",
        f"local FIRST_QUEUE = {_lua_quoted(queues[0].name)}",
        f"local PRIORITIES = {{ {', '.join(str(int(p)) for p in sorted(Priority, reverse=True))} }}",
        f"local WRAP_UP_MS = {int(policy.agent.wrap_up_ms)}",
        f"local PAUSE_ON_AGENT_FAILURE = {'true' if policy.agent.pause_on_agent_failure else 'false'}",
        f"local HANDLE_SAMPLES = {int(policy.handle_samples)}",
        f"local EVENTS_MAXLEN = {int(events_maxlen)}",
        f"local AGENT_STATE_EVENT = {_lua_string(events.AGENT_STATE)}",
        f"local WRAP_UP_EXPIRED = {_lua_string(agent_state.WRAP_UP_EXPIRED)}",
        f"local CALL_LOST = {_lua_string(agent_state.CALL_LOST)}",
        f"local AGENT_LOGGED_OUT = {_lua_string(agent_state.AGENT_LOGGED_OUT)}",
        f"local ABANDONED = {_lua_string(agent_state.ABANDONED)}",
        f"local CALLBACK_REQUESTED = {_lua_string(agent_state.CALLBACK_REQUESTED)}",
        f"local ANSWERED_ELSEWHERE = {_lua_string(agent_state.ANSWERED_ELSEWHERE)}",
        f"local TRANSFER_PAUSE = {_lua_quoted(agent_state.TRANSFER_PAUSE)}",
        f"local TRANSFERRED = {_lua_quoted(agent_state.TRANSFERRED)}",
    ]
    return "\n".join(lines) + "\n"


def load_lua(name: str, prelude: str = "") -> str:
    """The source of lua/<name>.lua with the prelude and the shared common.lua in front of it."""
    folder = importlib.resources.files("hotline.queue").joinpath("lua")
    common = folder.joinpath("common.lua").read_text(encoding="utf-8")
    return prelude + common + "\n" + folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")


_SCRIPTS = (
    "enqueue",
    "abandon",
    "request_callback",
    "callback_failed",
    "set_priority",
    "position",
    "dispatch",
    "offer_answered",
    "offer_failed",
    "expire_offers",
    "call_finished",
    "transfer_taken",
    "agent_login",
    "agent_logout",
    "agent_state",
    "move_queue",
    "agent_device",
)
DEVICE_STATES = ("registered", "unreachable", "")


def _ms(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MS:
        raise InvalidRequest(f"{name} must be an integer of epoch ms in 0..{MAX_MS}, got {value!r}")
    return value


def _id(name: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{name} must be a non-empty string, got {value!r}")
    return value


def _reason(value: str, required: bool) -> str:
    if not isinstance(value, str) or len(value) > MAX_REASON or any(not ch.isprintable() for ch in value):
        raise InvalidRequest(f"reason must be a printable string of at most {MAX_REASON} characters, got {value!r}")
    if required and not value.strip():
        raise InvalidRequest("a reason is required")
    return value


def _priority(value: Priority) -> int:
    if isinstance(value, bool) or value not in set(Priority):
        raise InvalidRequest(f"priority must be one of {[p.value for p in Priority]}, got {value!r}")
    return int(value)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _status(data: dict[str, Any]) -> AgentStatus:
    call_id = data.get("call_id")
    state = AgentState(data["state"])
    return AgentStatus(
        agent_id=AgentId(str(data["agent_id"])),
        state=state,
        since_ms=int(data.get("since_ms", 0)),
        call_id=CallId(str(call_id)) if call_id else None,
        reason=str(data.get("reason") or ""),
        idle_since_ms=_int_or_none(data.get("idle_since_ms")) if state is AgentState.AVAILABLE else None,
        wrap_up_until_ms=_int_or_none(data.get("wrap_up_until_ms")) if state is AgentState.WRAP_UP else None,
        skills={str(name): int(level) for name, level in (data.get("skills") or {}).items()},
        calls_answered=int(data.get("calls_answered") or 0),
        talk_ms=int(data.get("talk_ms") or 0),
        device=str(data.get("device") or ""),
        extension=str(data.get("extension") or ""),
    )


def _offer(data: dict[str, Any]) -> Offer:
    return Offer(
        offer_id=OfferId(str(data["offer_id"])),
        call_id=CallId(str(data["call_id"])),
        worker_id=WorkerId(str(data["worker_id"])),
        agent_id=AgentId(str(data["agent_id"])),
        agent_extension=str(data["agent_extension"]),
        agent_uri=str(data["agent_uri"]) if data.get("agent_uri") else None,
        callback=bool(data.get("callback")),
        caller=str(data.get("caller") or ""),
        attempt=int(data.get("attempt") or 0),
        skills=_skills_of(data),
        queue=str(data.get("queue") or ""),
        ring=tuple(_offer(each) for each in data.get("ring") or ()),
    )


def _waiting_call(entry: dict[str, Any], position: int, first_queue: str = "") -> WaitingCall:
    agent = entry.get("agent_id")
    return WaitingCall(
        call_id=CallId(str(entry["call_id"])),
        worker_id=WorkerId(str(entry["worker_id"])),
        caller=str(entry["caller"]),
        arrival_ms=int(entry["arrival_ms"]),
        position=position,
        offered_to=AgentId(str(agent)) if agent and entry.get("state") == "offered" else None,
        priority=Priority(int(entry.get("priority") or 0)),
        callback=bool(entry.get("callback")),
        retry_at_ms=_int_or_none(entry.get("not_before_ms")),
        skills=_skills_of(entry),
        queue=str(entry.get("queue") or first_queue),
        entered_ms=_int_or_none(entry.get("entered_ms")),
        overflow_now=bool(entry.get("overflow_now")),
    )


def _skills_of(data: dict[str, Any]) -> tuple[str, ...]:
    # An empty Lua table is encoded as {} by cjson: "or ()" reads it as no skills.
    return tuple(str(skill) for skill in data.get("skills") or ())


def _logged_out(agent_id: AgentId) -> AgentStatus:
    return AgentStatus(agent_id=agent_id, state=AgentState.LOGGED_OUT, since_ms=0)


@dataclasses.dataclass(frozen=True, slots=True)
class _Snapshot:
    orders: dict[str, list[str]]  # queue -> its waiting call ids, in the order they will be offered
    entries: dict[str, dict[str, Any]]
    agents: list[AgentStatus]
    handle_ms: int | None


class RedisCallQueue:
    """The ACD queue `queue` in Redis under `prefix` (implements hotline.core.ports.CallQueue),
    and the other queues `queues` (name -> policy) served by the same agents.

    Calls are offered by priority, then arrival ms, then call id, to the agent the policy's
    strategy picks among those with the skills (routing.py); with the defaults, the one idle the
    longest. With several queues, the calls of all of them are taken in that order (an agent
    who serves several queues gets the call that has waited longest), each by its own queue's
    rules (routing.choose_across). `position` counts every call ahead in the call's queue,
    whether or not it needs the same skills; `position`, `enqueue` and friends report 0 for a
    call being offered. Agents follow agent_state.TRANSITIONS with the policy's autopause and
    the wrap-up of the queue the call came from. `queue`'s policy also holds what the queues
    share: pause_on_agent_failure and the handle-time average.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        prefix: str = keys.DEFAULT_PREFIX,
        queue: str = keys.DEFAULT_QUEUE,
        *,
        policy: AcdPolicy | None = None,
        queues: Mapping[str, AcdPolicy] | None = None,
        events_maxlen: int = EVENTS_MAXLEN,
    ) -> None:
        self._client = client
        self.policy = policy or AcdPolicy()
        self.name = queue
        self._keys = keys.acd(prefix, queue)
        others = dict(queues or {})
        if queue in others:
            raise InvalidRequest(f"queue {queue!r} is given twice")
        self.policies: dict[str, AcdPolicy] = {queue: self.policy, **others}
        self._queues = [_Queue(name, p, keys.queue_lines(prefix, queue, name)) for name, p in self.policies.items()]
        for q in self._queues:
            target = q.policy.overflow_target.removeprefix("queue:")
            if q.policy.overflow_target.startswith("queue:") and (target == q.name or target not in self.policies):
                raise InvalidRequest(f"queue {q.name!r}: overflow_target queue:{target} is not another queue")
        self._all_keys = self._keys.all() + [key for q in self._queues[1:] for key in q.lines.all()]
        prelude = lua_prelude(self.policy, self._keys, events_maxlen, self._queues)
        self._scripts = {name: client.register_script(load_lua(name, prelude)) for name in _SCRIPTS}

    async def _run(self, name: str, *args: str | int) -> Any:
        with translate_errors(name):
            return await self._scripts[name](keys=self._all_keys, args=list(args))

    # --- queue entries -------------------------------------------------------------------

    async def enqueue(
        self,
        call_id: CallId,
        worker_id: WorkerId,
        caller: str,
        arrival_ms: int,
        priority: Priority = Priority.NORMAL,
        skills: tuple[str, ...] = (),
        queue: str = "",
    ) -> int:
        """Adds the call (no-op if present) to `queue` ("": the first), needing `skills` on top
        of the queue's required skills ("language:en", "complaint"); returns its 1-based
        position in the queue that took it.

        A full queue (max_length) overflows: to its overflow queue (queue:<name>, followed while
        full, the call keeping its arrival time); to callback or voicemail: queued all the same,
        marked overflow_now, so that overflow_due() reports it at once.

        0 means the call is not waiting because it is already offered or answered: a retried
        enqueue never queues a call twice (nor changes its priority or skills). QUEUE_FULL (-1):
        the queue is full and has no overflow target (or all its overflow queues are full):
        this call was not queued.
        """
        position = await self._run(
            "enqueue",
            _id("call_id", call_id),
            _id("worker_id", worker_id),
            caller,
            _ms("arrival_ms", arrival_ms),
            _priority(priority),
            json.dumps(list(routing.check_skills(skills))),
            self._queue_name(queue) if queue else "",
        )
        return int(position)

    def _queue_name(self, queue: str) -> str:
        if queue not in self.policies:
            raise InvalidRequest(f"no queue {queue!r}; known: {sorted(self.policies)}")
        return queue

    async def move_to_queue(self, call_id: CallId, queue: str, now_ms: int) -> int | None:
        """Overflow to another queue: a waiting call (not a callback, not offered) moves to
        `queue` with its arrival time and priority (so it keeps its order among that queue's
        calls); its max wait there counts from now. Returns its position there (the same
        queue: no change), 0 if it is offered or a callback (no change), None if it is not
        queued, QUEUE_FULL if `queue` is full (no change)."""
        got = int(
            await self._run("move_queue", _id("call_id", call_id), self._queue_name(queue), _ms("now_ms", now_ms))
        )
        return None if got == -1 else (-1 if got == -2 else got)

    async def abandon(self, call_id: CallId) -> bool:
        """Removes a waiting or offered entry (caller hung up); True if it was there.

        A reserved agent gets back exactly the state he had before the offer (same since and
        idle-since), so he keeps his turn among idle agents.
        """
        return bool(await self._run("abandon", _id("call_id", call_id)))

    async def set_priority(self, call_id: CallId, level: Priority) -> Priority | None:
        """Raises a waiting or offered call to `level` (never lowers it: a caller pressing 0
        does not undo an emergency). It keeps its arrival time, so it stays behind the calls of
        that priority that arrived before it. Returns its priority now; None if not queued."""
        got = int(await self._run("set_priority", _id("call_id", call_id), _priority(level)))
        return None if got < 0 else Priority(got)

    async def request_callback(self, call_id: CallId, number: str, now_ms: int) -> bool:
        """The caller asked to be called back and hangs up: the entry keeps its arrival time
        (its place in line) and is offered, when its turn comes, as a callback that any live
        worker dials (agent first). An offer in flight is withdrawn (the agent gets his earlier
        state back). A callback entry survives abandon(): only its own outcome removes it.
        False if the call is not queued."""
        if not isinstance(number, str) or not number.strip() or any(ch.isspace() for ch in number):
            raise InvalidRequest(f"a callback needs the caller's number, got {number!r}")
        return bool(await self._run("request_callback", _id("call_id", call_id), number, _ms("now_ms", now_ms)))

    async def callback_failed(
        self, offer_id: OfferId, now_ms: int, reason: str, retry_at_ms: int, max_attempts: int
    ) -> int:
        """The callback's caller did not answer (busy, no answer, unreachable), with the agent
        already on the line: the agent is available again (idle since now, never paused: not
        his fault) and the entry goes back to its place, passed over until retry_at_ms. After
        max_attempts failures it leaves the queue. Returns the failed attempts so far, 0 when
        that was the last one, -1 for an offer no longer live (no change)."""
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise InvalidRequest(f"max_attempts must be a positive integer, got {max_attempts!r}")
        got = await self._run(
            "callback_failed",
            _id("offer_id", offer_id),
            _ms("now_ms", now_ms),
            _reason(reason, required=False),
            _ms("retry_at_ms", retry_at_ms),
            max_attempts,
        )
        return int(got)

    async def position(self, call_id: CallId) -> int | None:
        """1-based position of a waiting call; 0 while it is offered; None if not queued."""
        got = int(await self._run("position", _id("call_id", call_id)))
        return None if got < 0 else got

    async def _snapshot(self, with_agents: bool) -> _Snapshot:
        bands = [(q.name, q.lines.band(p)) for q in self._queues for p in sorted(Priority, reverse=True)]
        with translate_errors("waiting"):
            async with self._client.pipeline(transaction=True) as pipe:
                for _, band in bands:
                    pipe.zrange(band, 0, -1)
                pipe.hgetall(self._keys.calls)
                if with_agents:
                    pipe.hgetall(self._keys.agents)
                    pipe.hget(self._keys.stats, "handle_ms")
                results = await pipe.execute()
        n = len(bands)
        orders: dict[str, list[str]] = {q.name: [] for q in self._queues}
        for (name, _), members in zip(bands, results[:n], strict=True):
            orders[name] += [text(member) for member in members]
        entries = {text(k): json.loads(text(v)) for k, v in results[n].items()}
        agents: list[AgentStatus] = []
        handle_ms = None
        if with_agents:
            agents = [_status(json.loads(text(v))) for v in results[n + 1].values()]
            handle_ms = None if results[n + 2] is None else int(text(results[n + 2]))
        return _Snapshot(orders, entries, agents, handle_ms)

    def _waiting_calls(self, snapshot: _Snapshot, queue: str | None = None) -> list[WaitingCall]:
        """The waiting calls of `queue` in its order, or (None) of every queue in dispatch order
        (routing.dispatch_order), each with its position in its own queue."""
        result: list[WaitingCall] = []
        for name, order in snapshot.orders.items():
            if queue is not None and name != queue:
                continue
            own: list[WaitingCall] = []
            for call_id in order:
                entry = snapshot.entries.get(call_id)
                if entry is None or entry.get("state") != "waiting":
                    continue  # dispatch repairs this; never written by the scripts
                own.append(_waiting_call(entry, len(own) + 1, self.name))
            result += own
        if queue is None and len(snapshot.orders) > 1:
            result.sort(key=lambda c: (-int(c.priority), c.arrival_ms, c.call_id.encode()))
        return result

    def _estimates(self, snapshot: _Snapshot, count: int, now_ms: int) -> list[float | None]:
        handle_ms = self.policy.default_handle_ms if snapshot.handle_ms is None else snapshot.handle_ms
        return estimate_waits(count, snapshot.agents, now_ms, handle_ms, self.policy.agent.wrap_up_ms)

    async def waiting(self, now_ms: int | None = None, queue: str | None = None) -> list[WaitingCall]:
        """The calls waiting for an agent, in the order they will be offered (offered excluded):
        of `queue`, or of every queue (dispatch order; each call's position is in its queue).

        With now_ms, each carries estimated_wait_s (see estimate.estimate_waits): from its
        position in its queue, as if the queue's agents served it alone."""
        snapshot = await self._snapshot(with_agents=now_ms is not None)
        calls = self._waiting_calls(snapshot, None if queue is None else self._queue_name(queue))
        if now_ms is None:
            return calls
        _ms("now_ms", now_ms)
        waits = self._estimates(snapshot, max((c.position for c in calls), default=0), now_ms)
        return [dataclasses.replace(call, estimated_wait_s=waits[call.position - 1]) for call in calls]

    async def estimated_wait_s(self, call_id: CallId, now_ms: int) -> float | None:
        """Seconds until an agent is likely free for this call, from the live queue and agents
        and the handle-time average; 0 while offered; None if not queued or nobody takes calls."""
        _ms("now_ms", now_ms)
        snapshot = await self._snapshot(with_agents=True)
        entry = snapshot.entries.get(_id("call_id", call_id))
        if entry is None:
            return None
        if entry.get("state") == "offered":
            return 0.0
        calls = self._waiting_calls(snapshot, str(entry.get("queue") or self.name))
        position = next((c.position for c in calls if c.call_id == call_id), None)
        if position is None:
            return None
        return self._estimates(snapshot, position, now_ms)[-1]

    async def overflow_due(self, now_ms: int) -> list[WaitingCall]:
        """Waiting calls that have waited their queue's max_wait_s or longer in that queue
        (now_ms - entered_ms: a call moved here by an overflow counts from its move), or that
        were queued over a full queue (overflow_now), in dispatch order: the control plane
        sends each to its queue's overflow_target. Offered calls (an agent's phone rings) and
        callbacks (the caller has hung up already) are never due, nor calls of a queue without
        an overflow target."""
        now_ms = _ms("now_ms", now_ms)
        if not any(p.overflow_target for p in self.policies.values()):
            return []
        due: list[WaitingCall] = []
        for call in self._waiting_calls(await self._snapshot(with_agents=False)):
            policy = self.policies.get(call.queue, self.policy)
            if call.callback or not policy.overflow_target:
                continue
            max_wait = policy.max_wait_ms
            entered = call.arrival_ms if call.entered_ms is None else call.entered_ms
            if call.overflow_now or (max_wait is not None and now_ms - entered >= max_wait):
                due.append(call)
        return due

    async def next_match(self, now_ms: int) -> tuple[CallId, AgentId] | None:
        """The (call, agent) the next dispatch would pair, read only (routing.choose on one
        consistent snapshot; round-robin memory aside). None: nothing is dispatchable now (no
        available agent has what any waiting call needs, or those calls wait for a retry)."""
        now_ms = _ms("now_ms", now_ms)
        snapshot = await self._snapshot(with_agents=True)
        calls = [
            routing.Waiting(c.call_id, c.arrival_ms, c.skills, c.retry_at_ms or 0, c.queue, int(c.priority))
            for c in self._waiting_calls(snapshot)
        ]
        agents = [
            routing.Candidate(a.agent_id, a.idle_since_ms or 0, a.skills, a.calls_answered, a.talk_ms)
            for a in snapshot.agents
            if a.state is AgentState.AVAILABLE and a.device != "unreachable"  # dispatch passes him over
        ]
        agents.sort(key=lambda a: (a.idle_since_ms, a.agent_id))
        rules = {
            # which agent matters not here, only whether one
            name: routing.QueueRules(routing.Strategy.LONGEST_IDLE, p.required_skills, routing.steps_ms(p.skill_steps))
            for name, p in self.policies.items()
        }
        picked = routing.choose_across(calls, agents, rules, now_ms)
        return None if picked is None else (CallId(picked[0].call_id), AgentId(picked[1].agent_id))

    async def average_handle_ms(self) -> int:
        """The moving average of handle times (policy.default_handle_ms before the first call)."""
        with translate_errors("average_handle_ms"):
            raw = await reply(self._client.hget(self._keys.stats, "handle_ms"))
        return self.policy.default_handle_ms if raw is None else int(text(raw))

    async def offered(self) -> list[WaitingCall]:
        """The calls offered to an agent right now (position 0, offered_to set), oldest first."""
        snapshot = await self._snapshot(with_agents=False)
        offered = [entry for entry in snapshot.entries.values() if entry.get("state") == "offered"]
        offered.sort(key=lambda entry: (int(entry["arrival_ms"]), str(entry["call_id"])))
        return [_waiting_call(entry, 0, self.name) for entry in offered]

    # --- agents --------------------------------------------------------------------------

    async def agent_login(self, agent: Agent, now_ms: int, by: Actor = Actor.AGENT) -> AgentStatus:
        """The agent becomes AVAILABLE, his calls and talk time counted from 0; an agent already
        logged in keeps his state and counts. Either way his contact details and skills are
        the ones given now (a supervisor changes skills by logging him in again)."""
        raw = await self._run(
            "agent_login",
            _id("agent_id", agent.agent_id),
            agent.name,
            _id("extension", agent.extension),
            agent.sip_uri or "",
            _ms("now_ms", now_ms),
            Actor(by).value,
            json.dumps(routing.check_levels(agent.skills)),
        )
        return _status(json.loads(text(raw)))

    async def agent_logout(
        self, agent_id: AgentId, now_ms: int, by: Actor = Actor.AGENT, reason: str = ""
    ) -> AgentStatus:
        """The agent becomes LOGGED_OUT; a call offered to him goes back to its place.

        Raises Conflict if the agent is on a call (he must finish it first).
        """
        raw = await self._run(
            "agent_logout",
            _id("agent_id", agent_id),
            _ms("now_ms", now_ms),
            Actor(by).value,
            _reason(reason, required=False),
        )
        data = json.loads(text(raw))
        if data.get("error"):
            raise Conflict(f"agent {agent_id} is on call {data.get('call_id')}: finish the call first")
        return _status(data)

    async def _request(self, agent_id: AgentId, request: str, reason: str, now_ms: int, by: Actor) -> AgentStatus:
        raw = await self._run(
            "agent_state", _id("agent_id", agent_id), request, reason, _ms("now_ms", now_ms), Actor(by).value
        )
        data = json.loads(text(raw))
        if data.get("error"):
            raise IllegalTransition(f"agent {agent_id}: no transition for {request} in state {data.get('state')}")
        return _status(data)

    async def agent_pause(self, agent_id: AgentId, reason: str, now_ms: int, by: Actor = Actor.AGENT) -> AgentStatus:
        """PAUSED with a reason code (小休, 用餐, 培训 ...), from available, wrap-up or paused.

        The same pause again changes nothing; another reason starts a new pause (since now).
        IllegalTransition in any other state (logged out, reserved, on a call).
        """
        return await self._request(agent_id, agent_state.Pause.name, _reason(reason, required=True), now_ms, by)

    async def agent_resume(self, agent_id: AgentId, now_ms: int, by: Actor = Actor.AGENT) -> AgentStatus:
        """A paused agent becomes AVAILABLE, idle since now; no change if available already.
        IllegalTransition in any other state."""
        return await self._request(agent_id, agent_state.Resume.name, "", now_ms, by)

    async def wrap_up_done(self, agent_id: AgentId, now_ms: int, by: Actor = Actor.AGENT) -> AgentStatus:
        """Ends the agent's wrap-up early (AVAILABLE, idle since now); no change if it had
        ended already. IllegalTransition when logged out or paused."""
        return await self._request(agent_id, agent_state.WrapUpDone.name, "", now_ms, by)

    async def agent_status(self, agent_id: AgentId) -> AgentStatus:
        """The agent's state; an agent never seen is LOGGED_OUT since 0."""
        with translate_errors("agent_status"):
            raw = await reply(self._client.hget(self._keys.agents, agent_id))
        return _logged_out(agent_id) if raw is None else _status(json.loads(text(raw)))

    async def set_device(self, agent_id: AgentId, device: str, now_ms: int) -> AgentStatus:
        """Records the agent's softphone as the control plane found it at Kamailio's registrar:
        "registered", "unreachable" or "" (unknown). An unreachable agent keeps his state (and
        his place in the idle line) but dispatch passes him over, and next_match does not count
        him, until his phone is registered again. An agent never seen is not stored."""
        if device not in DEVICE_STATES:
            raise InvalidRequest(f"device must be one of {DEVICE_STATES}, got {device!r}")
        raw = await self._run("agent_device", _id("agent_id", agent_id), device, _ms("now_ms", now_ms))
        return _status(json.loads(text(raw)))

    async def agents(self) -> list[AgentStatus]:
        """Every agent the queue has seen, ordered by agent id."""
        with translate_errors("agents"):
            raw = await reply(self._client.hgetall(self._keys.agents))
        statuses = [_status(json.loads(text(value))) for value in raw.values()]
        return sorted(statuses, key=lambda status: status.agent_id)

    # --- offers --------------------------------------------------------------------------

    async def dispatch_once(self, now_ms: int, lease_ms: int, callback_lease_ms: int | None = None) -> Offer | None:
        """Atomically reserve an agent for the first waiting call one can take: the calls in
        priority and arrival order, the agent the policy's strategy picks among those with the
        skills the call needs by now (routing.py); with the defaults, the head of the queue and
        the longest-idle agent. None when no (call, eligible agent) pair exists.

        The offer's lease ends at now_ms + lease_ms (+ callback_lease_ms for a callback entry,
        whose caller rings after the agent answered); expire_offers() takes it back after that.
        A callback waiting for its retry time is passed over, keeping its place.
        Wrap-ups due by now_ms end first (as in every script given the time).
        A ring_all queue's call: the offer returned is the first of its group, and its `ring`
        holds every offer of the group (one per eligible available agent, each RESERVED).
        """
        callback_lease_ms = lease_ms if callback_lease_ms is None else callback_lease_ms
        for name, value in (("lease_ms", lease_ms), ("callback_lease_ms", callback_lease_ms)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidRequest(f"{name} must be a positive integer, got {value!r}")
        _ms("lease expiry", _ms("now_ms", now_ms) + max(lease_ms, callback_lease_ms))
        raw = await self._run("dispatch", now_ms, lease_ms, callback_lease_ms)
        return None if raw is None else _offer(json.loads(text(raw)))

    async def offer_answered(self, offer_id: OfferId, now_ms: int) -> bool:
        """The agent answered: ON_CALL with the call, which leaves the queue.

        False (and no change) for an unknown, expired or already answered offer: the caller
        must then drop the agent's leg, the call was given back to the queue.
        """
        return bool(await self._run("offer_answered", _id("offer_id", offer_id), _ms("now_ms", now_ms)))

    async def offer_failed(
        self, offer_id: OfferId, now_ms: int, reason: str, agent_fault: bool = False, declined: bool = False
    ) -> bool:
        """The call goes back to its original place. The agent becomes available (idle since
        now), or PAUSED with `reason` when his side failed (agent_fault: no answer, busy, not
        registered ...) and policy.agent.pause_on_agent_failure is set, or when he declined
        the offer from his desk (declined: paused by him, whatever the policy; not a failure of
        his phone). False (no change) for an offer no longer live."""
        fault = "2" if declined else "1" if agent_fault else "0"
        return bool(await self._run("offer_failed", _id("offer_id", offer_id), _ms("now_ms", now_ms), reason, fault))

    async def call_finished(self, call_id: CallId, now_ms: int, lost: bool = False) -> None:
        """The agent who had this call goes to wrap-up for policy.agent.wrap_up_ms (none: he is
        available, idle since now), and the call's handle time joins the moving average.
        lost=True (the system lost the call, e.g. its worker died): available at once, and the
        truncated call is not averaged. A repeated or unknown call changes nothing."""
        _ms("end of wrap-up", _ms("now_ms", now_ms) + self.policy.agent.wrap_up_ms)
        await self._run("call_finished", _id("call_id", call_id), now_ms, "1" if lost else "0")

    async def transfer_taken(
        self, call_id: CallId, from_agent: AgentId | None, to_agent: AgentId, now_ms: int, released: bool = False
    ) -> bool | None:
        """The agent a call was transferred to answered: he goes from the transfer pause
        (events.TRANSFER_PAUSE) to ON_CALL with the call, as if he had answered an offer of it
        (agent.state event, calls_answered; call_finished later puts him in wrap-up), and
        from_agent, who still has the call, goes to wrap-up with the reason
        agent_state.TRANSFERRED + to_agent. released: from_agent was released already (his leg
        ended while the transfer rang) and nobody has the call.

        True: to_agent has the call (a repeat changes nothing). False: he is not in the transfer
        pause (no change). None: the call is over or someone else has it; he is resumed."""
        _ms("end of wrap-up", _ms("now_ms", now_ms) + self.policy.agent.wrap_up_ms)
        result = await self._run(
            "transfer_taken",
            _id("call_id", call_id),
            _id("from_agent", from_agent) if from_agent else "",
            _id("to_agent", to_agent),
            now_ms,
            "1" if released else "0",
        )
        return None if int(result) < 0 else bool(int(result))

    async def expire_offers(self, now_ms: int) -> list[Offer]:
        """Offers whose lease ran out (expiry <= now_ms) go back as if failed; returns them."""
        expired: list[Offer] = []
        while True:
            batch = await self._run("expire_offers", _ms("now_ms", now_ms), EXPIRE_BATCH)
            expired.extend(_offer(json.loads(text(raw))) for raw in batch)
            if len(batch) < EXPIRE_BATCH:
                return expired
