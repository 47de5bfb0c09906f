"""Every Redis key name hotline uses, spelled once.

Key layout (prefix defaults to "hotline"):

ACD state of one queue; the queue name is a hash tag, so all keys of a queue share one Redis
Cluster slot and a Lua script may touch them together:

    {p}:acd:{<queue>}:waiting            ZSET  call_id -> arrival ms: waiting calls of priority
                                               NORMAL (FIFO; ties ordered by call id)
    {p}:acd:{<queue>}:waiting:flagged    ZSET  the same for priority FLAGGED
    {p}:acd:{<queue>}:waiting:emergency  ZSET  the same for priority EMERGENCY
    {p}:acd:{<queue>}:calls       HASH  call_id -> JSON entry (waiting or offered; its priority)
    {p}:acd:{<queue>}:offers      HASH  offer_id -> JSON offer
    {p}:acd:{<queue>}:leases      ZSET  offer_id -> lease expiry ms
    {p}:acd:{<queue>}:agents      HASH  agent_id -> JSON agent state
    {p}:acd:{<queue>}:available   ZSET  agent_id -> idle-since ms (longest idle first)
    {p}:acd:{<queue>}:oncall      HASH  call_id -> agent_id (answered calls)
    {p}:acd:{<queue>}:offer-seq   STRING counter making offer ids unique
    {p}:acd:{<queue>}:wrap-ups    ZSET  agent_id -> end of his wrap-up, ms
    {p}:acd:{<queue>}:stats       HASH  handle_ms (moving average of handle times), handle_n
    {p}:acd:{<queue>}:last-offered STRING id of the agent offered the last call (the memory of
                                         the round_robin strategy, kept across restarts)
    {p}:acd:{<queue>}:q:<name>:waiting[:flagged|:emergency]
                                  ZSETs the waiting lines of another queue <name> served by the
                                        same agents (see "Several queues" below)

Several queues: the queues of a deployment share their agents, so they live in ONE ACD, named by
its first queue (<queue> above): agents, offers, leases, entries (each naming its queue) and
statistics are the ACD's, and each queue has its own three waiting lines. The first queue's
lines are the keys a single queue always had ({p}:acd:{<queue>}:waiting...), so a deployment
that adds queues keeps its data; the others' are under q:<name>. All share one hash tag, so one
script sees every agent and every line (one Cluster slot per deployment).

Skills live inside the JSON values, not in keys of their own: an agent's in his state
({"skills": {"language:en": 2}, "calls_answered", "talk_ms"}, the inputs of the strategies), a
call's own in its entry ({"skills": ["complaint"]}); the queue's required skills and widening
steps are policy, compiled into the scripts (acd.lua_prelude). Dispatch scans the available
agents once and the waiting entries in order (hotline/queue/routing.py), so no per-skill index
has to be kept in step with every state change.

Priorities are separate ZSETs rather than one composite score, so every score is a plain
arrival time in ms (< 1e14: exact as a double and as Lua prints it), raising a call moves it
between ZSETs with the same score (it keeps its arrival order), and the NORMAL line keeps the
key it had before priorities existed. The queue's scripts also append agent.state events to
the shared events stream ({p}:events, outside the queue's hash tag): atomic on one Redis; on
Redis Cluster that stream would move to a per-queue key.

Bus between workers and the control plane:

    {p}:events                    STREAM worker -> control plane
    {p}:workers                   SET    worker ids ever seen (until forgotten)
    {p}:worker:<id>:commands      STREAM control plane -> that worker
    {p}:worker:<id>:alive         STRING heartbeat (JSON info), expires with PX
    {p}:worker:<id>:calls         HASH   call_id -> JSON info of the worker's live calls

Control plane:

    {p}:leader:<role>             STRING the holder of the role's lease (e.g. "dispatcher"),
                                         expires with PX unless renewed

Speech service -> metrics:

    {p}:asr:latency               HASH   the ASR latency histogram: count, sum, b:<bound> (texts
                                         whose latency fell in that bucket, not cumulative);
                                         fixed fields, never expires (Prometheus counters)
"""

from __future__ import annotations

import dataclasses

from hotline.core.errors import InvalidRequest
from hotline.core.model import Priority

DEFAULT_PREFIX = "hotline"
DEFAULT_QUEUE = "default"


def _check_part(kind: str, value: str) -> str:
    # A brace would break the Cluster hash tag; whitespace is always a mistake in an id.
    if not value or any(ch in value for ch in "{}") or any(ch.isspace() for ch in value):
        raise InvalidRequest(f"invalid {kind} for a Redis key: {value!r}")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class AcdKeys:
    """The keys of one ACD queue, in the order the Lua scripts expect them (see KEYS)."""

    waiting: str
    calls: str
    offers: str
    leases: str
    agents: str
    available: str
    oncall: str
    offer_seq: str
    waiting_flagged: str
    waiting_emergency: str
    wrap_ups: str
    stats: str
    events: str
    last_offered: str

    def all(self) -> list[str]:
        """Every key, in the fixed order every script in hotline/queue/lua/ indexes KEYS by."""
        return [
            self.waiting,
            self.calls,
            self.offers,
            self.leases,
            self.agents,
            self.available,
            self.oncall,
            self.offer_seq,
            self.waiting_flagged,
            self.waiting_emergency,
            self.wrap_ups,
            self.stats,
            self.events,
            self.last_offered,
        ]

    def band(self, priority: Priority) -> str:
        """The ZSET of the calls waiting with this priority."""
        return {
            Priority.NORMAL: self.waiting,
            Priority.FLAGGED: self.waiting_flagged,
            Priority.EMERGENCY: self.waiting_emergency,
        }[priority]

    def bands(self) -> list[str]:
        """The waiting ZSETs, the one served first first."""
        return [self.band(priority) for priority in sorted(Priority, reverse=True)]


def acd(prefix: str = DEFAULT_PREFIX, queue: str = DEFAULT_QUEUE) -> AcdKeys:
    """The keys of the ACD queue `queue`."""
    base = f"{_check_part('prefix', prefix)}:acd:{{{_check_part('queue', queue)}}}"
    return AcdKeys(
        waiting=f"{base}:waiting",
        calls=f"{base}:calls",
        offers=f"{base}:offers",
        leases=f"{base}:leases",
        agents=f"{base}:agents",
        available=f"{base}:available",
        oncall=f"{base}:oncall",
        offer_seq=f"{base}:offer-seq",
        waiting_flagged=f"{base}:waiting:flagged",
        waiting_emergency=f"{base}:waiting:emergency",
        wrap_ups=f"{base}:wrap-ups",
        stats=f"{base}:stats",
        events=events(prefix),
        last_offered=f"{base}:last-offered",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class QueueLines:
    """The waiting lines (one ZSET per priority) of one queue of an ACD."""

    normal: str
    flagged: str
    emergency: str

    def all(self) -> list[str]:
        return [self.normal, self.flagged, self.emergency]

    def band(self, priority: Priority) -> str:
        return {Priority.NORMAL: self.normal, Priority.FLAGGED: self.flagged, Priority.EMERGENCY: self.emergency}[
            priority
        ]


def queue_lines(prefix: str = DEFAULT_PREFIX, acd_name: str = DEFAULT_QUEUE, queue: str = DEFAULT_QUEUE) -> QueueLines:
    """The waiting lines of queue `queue` in the ACD named `acd_name` (its first queue): the ACD's
    own lines for the first queue, q:<queue>:... for the others."""
    if _check_part("queue", queue) == acd_name:
        own = acd(prefix, acd_name)
        return QueueLines(own.waiting, own.waiting_flagged, own.waiting_emergency)
    base = f"{_check_part('prefix', prefix)}:acd:{{{_check_part('queue', acd_name)}}}:q:{queue}"
    return QueueLines(f"{base}:waiting", f"{base}:waiting:flagged", f"{base}:waiting:emergency")


def events(prefix: str = DEFAULT_PREFIX) -> str:
    """The stream of events from workers to the control plane."""
    return f"{_check_part('prefix', prefix)}:events"


def workers(prefix: str = DEFAULT_PREFIX) -> str:
    """The set of known worker ids."""
    return f"{_check_part('prefix', prefix)}:workers"


def worker_commands(worker_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The stream of commands to one worker."""
    return f"{_check_part('prefix', prefix)}:worker:{_check_part('worker id', worker_id)}:commands"


def worker_alive(worker_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The heartbeat key of one worker (expires when the worker stops beating)."""
    return f"{_check_part('prefix', prefix)}:worker:{_check_part('worker id', worker_id)}:alive"


def worker_calls(worker_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The hash of one worker's live calls."""
    return f"{_check_part('prefix', prefix)}:worker:{_check_part('worker id', worker_id)}:calls"


def leader(role: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The lease of a role only one control process plays at a time (the dispatcher)."""
    return f"{_check_part('prefix', prefix)}:leader:{_check_part('role', role)}"


def asr_latency(prefix: str = DEFAULT_PREFIX) -> str:
    """The speech service's ASR latency histogram, read by /metrics."""
    return f"{_check_part('prefix', prefix)}:asr:latency"
