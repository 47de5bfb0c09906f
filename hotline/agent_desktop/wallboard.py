"""The supervisor's wallboard (GET /api/v1/wallboard) and the Prometheus metrics (GET /metrics).

Rules of this module:
- Both are made from one snapshot: the queue's waiting calls and agents (Redis, now), the call
  records of today (TicketStore.call_stats; what each count means is documented on
  hotline.core.ports.CallStats) and, for the metrics, the workers' heartbeats.
- "Today" is the Asia/Shanghai calendar day of the app's clock: the day's numbers start again
  at 00:00 Beijing time.
- Waiting callers are the queue's entries whose caller is on the line (an entry being offered
  to an agent included); callback entries (the caller hung up and keeps his place) are counted
  apart and never make the longest wait.
- With several queues, `queue` holds the totals over all of them (the deployment's), and
  `queues` each queue's callers now; the day's counts are the deployment's only (call records
  do not name their queue). The metrics' queue gauges have one series per queue.
- An alert is raised while the waiting callers reach `alert_depth` or the longest wait reaches
  `alert_wait_s` (0 turns either off). Alerts are computed when asked, not pushed.
- /metrics is public (scrapers carry no token) like health: it shows counts, never a caller's
  number. It is served on the API's address (http.host, 127.0.0.1 unless configured), so it is
  reachable from outside the host only if the API is. Text exposition format 0.0.4, by hand.
- ASR latency (hotline_asr_latency_seconds, a histogram since the speech service first wrote
  it): seconds from when the caller said words to when their text reached the agent's screen.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from hotline.agent_desktop.auth import principal
from hotline.agent_desktop.responses import in_thread, json_reply
from hotline.core.errors import InvalidRequest
from hotline.core.model import AgentId, AgentState, Outcome, WorkerId, to_iso
from hotline.core.ports import (
    AgentStatus,
    AsrLatency,
    AsrLatencySource,
    CallQueue,
    CallStats,
    TicketStore,
    WaitingCall,
    WorkerRegistry,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclasses.dataclass(frozen=True, slots=True)
class WallboardSettings:
    """The queue's name (a label), its service-level threshold (queue.service_level_s) and the
    alert thresholds (wallboard.alert_depth, wallboard.alert_wait_s; 0: no such alert)."""

    queue_name: str = "default"
    service_level_s: float = 15.0
    # Every queue (name, its service-level threshold), the first first; () = queue_name alone.
    queues: tuple[tuple[str, float], ...] = ()
    alert_depth: int = 10
    alert_wait_s: float = 60.0
    day_zone: tzinfo = SHANGHAI

    def __post_init__(self) -> None:
        if not self.service_level_s > 0:
            raise InvalidRequest(f"service_level_s must be positive, got {self.service_level_s!r}")
        if self.alert_depth < 0 or not self.alert_wait_s >= 0:
            raise InvalidRequest("alert_depth and alert_wait_s must not be negative (0: no alert)")

    @property
    def queue_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.queues) or (self.queue_name,)

    @property
    def queue_levels(self) -> tuple[tuple[str, float], ...]:
        return self.queues or ((self.queue_name, self.service_level_s),)


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    now_ms: int
    day_start: datetime
    waiting: list[WaitingCall]
    agents: list[AgentStatus]
    stats: CallStats
    names: dict[AgentId, str] = dataclasses.field(default_factory=dict)
    workers: dict[WorkerId, dict[str, Any]] | None = None  # None: no registry given
    asr: AsrLatency | None = None  # None: no speech metrics given

    @property
    def callers(self) -> list[WaitingCall]:
        """Waiting callers on the line (callback entries left out)."""
        return [call for call in self.waiting if not call.callback]

    @property
    def callbacks_waiting(self) -> int:
        return sum(1 for call in self.waiting if call.callback)

    @property
    def longest_wait_s(self) -> float:
        return max((max(0, self.now_ms - call.arrival_ms) / 1000 for call in self.callers), default=0.0)

    def of_queue(self, name: str, first: str) -> Snapshot:
        """The same snapshot with only this queue's calls (a call naming no queue is the first's)."""
        return dataclasses.replace(self, waiting=[c for c in self.waiting if (c.queue or first) == name])


class Wallboard:
    """What the two routes read, through the ports."""

    def __init__(
        self,
        queue: CallQueue,
        store: TicketStore,
        settings: WallboardSettings,
        clock_ms: Callable[[], int],
        workers: WorkerRegistry | None = None,
        asr: AsrLatencySource | None = None,
    ) -> None:
        self.queue = queue
        self.store = store
        self.settings = settings
        self._clock_ms = clock_ms
        self._workers = workers
        self._asr = asr

    def day_start(self, now_ms: int) -> datetime:
        """00:00 of the day (in settings.day_zone) that now_ms falls in."""
        local = datetime.fromtimestamp(now_ms / 1000, self.settings.day_zone)
        return local.replace(hour=0, minute=0, second=0, microsecond=0)

    async def snapshot(self, *, names: bool = False, workers: bool = False) -> Snapshot:
        now = self._clock_ms()
        since = self.day_start(now)
        waiting, agents, stats, registry, alive, asr = await asyncio.gather(
            self.queue.waiting(),
            self.queue.agents(),
            in_thread(self.store.call_stats, since, self.settings.service_level_s),
            in_thread(self.store.list_agents) if names else _nothing(),
            self._workers.alive_workers() if workers and self._workers is not None else _nothing(),
            self._asr.histogram() if workers and self._asr is not None else _nothing(),
        )
        return Snapshot(
            now_ms=now,
            day_start=since,
            waiting=waiting,
            agents=agents,
            stats=stats,
            names={agent.agent_id: agent.name for agent in registry or ()},
            workers=alive if self._workers is not None else None,
            asr=asr,
        )

    def alerts(self, snap: Snapshot) -> list[dict[str, Any]]:
        s = self.settings
        out: list[dict[str, Any]] = []
        depth, longest = len(snap.callers), snap.longest_wait_s
        if s.alert_depth and depth >= s.alert_depth:
            out.append({
                "kind": "queue_depth", "queue": s.queue_name, "value": depth, "threshold": s.alert_depth,
                "message": f"排队 {depth} 人，已达告警阈值 {s.alert_depth} 人",
            })  # fmt: skip
        if s.alert_wait_s and longest >= s.alert_wait_s:
            out.append({
                "kind": "longest_wait", "queue": s.queue_name, "value": round(longest, 1),
                "threshold": s.alert_wait_s,
                "message": f"最长等待 {longest:.0f} 秒，已达告警阈值 {s.alert_wait_s:g} 秒",
            })  # fmt: skip
        return out

    def view(self, snap: Snapshot) -> dict[str, Any]:
        """The wallboard's JSON (openapi.py: Wallboard)."""
        stats = snap.stats
        agents = [
            {
                "agent_id": status.agent_id,
                "name": snap.names.get(status.agent_id, ""),
                "state": status.state.value,
                "reason": status.reason,
                "in_state_s": round(max(0, snap.now_ms - status.since_ms) / 1000, 1),
                "call_id": status.call_id,
                "calls_answered": status.calls_answered,
                "talk_s": round(status.talk_ms / 1000, 1),
                "device": status.device or "unknown",
            }
            for status in snap.agents
            if status.state is not AgentState.LOGGED_OUT
        ]
        return {
            "generated_at": to_iso(datetime.fromtimestamp(snap.now_ms / 1000, UTC)),
            "day": snap.day_start.date().isoformat(),
            "queue": {
                "name": self.settings.queue_name,
                "waiting": len(snap.callers),
                "longest_wait_s": round(snap.longest_wait_s, 1),
                "callbacks_waiting": snap.callbacks_waiting,
                "offered_today": stats.offered,
                "answered_today": stats.answered,
                "abandoned_today": stats.abandoned,
                "callbacks_requested_today": stats.callbacks_requested,
                "callbacks_answered_today": stats.callbacks_answered,
                "service_level": {
                    "fraction": _round(stats.service_level, 4),
                    "threshold_s": self.settings.service_level_s,
                    "answered_within": stats.answered_within_sl,
                },
                "answer_rate": _round(stats.answer_rate, 4),
                "average_handle_s": _round(stats.average_handle_s, 1),
                "average_answer_s": _round(stats.average_answer_s, 1),
            },
            "queues": [
                {
                    "name": name,
                    "waiting": len(own.callers),
                    "longest_wait_s": round(own.longest_wait_s, 1),
                    "callbacks_waiting": own.callbacks_waiting,
                    "service_level_s": level,
                }
                for name, level in self.settings.queue_levels
                for own in (snap.of_queue(name, self.settings.queue_names[0]),)
            ],
            "agents": agents,
            "alerts": self.alerts(snap),
        }

    def exposition(self, snap: Snapshot) -> str:
        """The Prometheus text exposition of the snapshot."""
        queue = {"queue": self.settings.queue_name}
        stats = snap.stats
        states = {state.value: 0 for state in AgentState}
        for status in snap.agents:
            states[status.state.value] += 1
        outcomes = {outcome.value: 0 for outcome in Outcome} | stats.by_outcome
        out = _Exposition()
        first = self.settings.queue_names[0]
        each = [({"queue": name}, snap.of_queue(name, first)) for name in self.settings.queue_names]
        out.metric("hotline_queue_waiting", "gauge", "Callers waiting in the queue (being offered included, "
                   "callbacks not).", [(q, len(own.callers)) for q, own in each])  # fmt: skip
        out.metric("hotline_queue_longest_wait_seconds", "gauge", "Longest wait of a caller in the queue now.",
                   [(q, own.longest_wait_s) for q, own in each])  # fmt: skip
        out.metric("hotline_queue_callbacks_waiting", "gauge", "Callback entries keeping their place in the queue.",
                   [(q, own.callbacks_waiting) for q, own in each])  # fmt: skip
        out.metric("hotline_agents", "gauge", "Agents known to the queue, by state.",
                   [({**queue, "state": state}, n) for state, n in states.items()])  # fmt: skip
        out.metric("hotline_calls_total", "counter", "Call records of today (Asia/Shanghai) by outcome; "
                   "starts again at 00:00 Beijing time.",
                   [({"outcome": outcome}, n) for outcome, n in sorted(outcomes.items())])  # fmt: skip
        out.metric("hotline_calls_offered_today", "gauge", "Calls offered to the queue today: answered, "
                   "abandoned while queued, callback requested.", [({}, stats.offered)])  # fmt: skip
        out.metric("hotline_service_level_threshold_seconds", "gauge", "An answer within this is in service level.",
                   [({}, self.settings.service_level_s)])  # fmt: skip
        out.metric("hotline_service_level_ratio", "gauge", "Today: answered within the threshold / (answered + "
                   "abandoned); NaN before any call.", [({}, stats.service_level)])  # fmt: skip
        out.metric("hotline_answer_rate_ratio", "gauge", "Today's answer rate (接通率): answered / (answered + "
                   "abandoned); NaN before any call.", [({}, stats.answer_rate)])  # fmt: skip
        out.metric("hotline_average_handle_seconds", "gauge", "Today: average talk time of the calls agents took "
                   "(callbacks too); NaN before any.", [({}, stats.average_handle_s)])  # fmt: skip
        out.metric("hotline_average_answer_seconds", "gauge", "Today: average wait of answered callers for an "
                   "agent; NaN before any.", [({}, stats.average_answer_s)])  # fmt: skip
        if snap.workers is not None:
            workers = sorted(snap.workers.items())
            out.metric("hotline_workers_alive", "gauge", "Media workers whose heartbeat has not expired.",
                       [({}, len(workers))])  # fmt: skip
            out.metric("hotline_worker_calls", "gauge", "Live calls of each media worker (its last heartbeat).",
                       [({"worker": w}, _number(info.get("calls"))) for w, info in workers])  # fmt: skip
            out.metric("hotline_worker_rejected_total", "counter", "Calls each media worker refused at "
                       "admission since it started.",
                       [({"worker": w}, _number(info.get("rejected"))) for w, info in workers])  # fmt: skip
        if snap.asr is not None:
            help_text = "ASR latency: seconds from when the caller said words to when their text reached the agent."
            out.histogram("hotline_asr_latency_seconds", help_text, snap.asr)
        return out.text()


class _Exposition:
    def __init__(self) -> None:
        self._lines: list[str] = []

    def metric(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float | None]]
    ) -> None:
        self._lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            rendered = ",".join(f'{key}="{_escape_label(val)}"' for key, val in labels.items())
            self._lines.append(f"{name}{{{rendered}}} {_format(value)}" if rendered else f"{name} {_format(value)}")

    def histogram(self, name: str, help_text: str, data: AsrLatency) -> None:
        self._lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {name} histogram")
        for bound, count in data.buckets:
            self._lines.append(f'{name}_bucket{{le="{_format(bound)}"}} {count}')
        self._lines.append(f'{name}_bucket{{le="+Inf"}} {data.count}')
        self._lines.append(f"{name}_sum {_format(data.sum_s)}")
        self._lines.append(f"{name}_count {data.count}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


async def _nothing() -> Any:
    return None


# --- handlers ---------------------------------------------------------------------------

WALLBOARD = web.AppKey[Wallboard]("wallboard")


async def get_wallboard(request: web.Request) -> web.Response:
    """Supervisors and admins only."""
    principal(request).require_supervisor("the wallboard")
    board = request.app[WALLBOARD]
    return json_reply(board.view(await board.snapshot(names=True)))


async def get_metrics(request: web.Request) -> web.Response:
    """Public (see the module's rules)."""
    board = request.app[WALLBOARD]
    text = board.exposition(await board.snapshot(workers=True))
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})
