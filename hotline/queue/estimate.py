"""Estimated waits and the handle-time average, as plain functions (no I/O, no clock).

The queue adapter reads one consistent snapshot of Redis and passes it here; the handle-time
average itself is kept by the Lua script call_finished, whose arithmetic next_handle_average
repeats exactly (tests predict the stored value with it).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable

from hotline.core.model import AgentState
from hotline.core.ports import AgentStatus


def next_handle_average(average_ms: int | None, samples: int, sample_ms: int, window: int) -> tuple[int, int]:
    """(average, samples) after one more handle time: the plain mean of the first `window`
    samples, then an exponentially weighted average with alpha = 2 / (window + 1), the usual
    stand-in for the mean of the last `window`. The average is kept in whole ms."""
    if average_ms is None or samples <= 0:
        value, samples = float(sample_ms), 0
    elif samples < window:
        value = average_ms + (sample_ms - average_ms) / (samples + 1)
    else:
        value = average_ms + (sample_ms - average_ms) * 2 / (window + 1)
    return math.floor(value + 0.5), min(samples + 1, window)


def free_at_ms(agent: AgentStatus, now_ms: int, handle_ms: int, wrap_up_ms: int) -> int | None:
    """When the agent is likely free for the next waiting call; None if he takes no calls
    (logged out or paused: nobody knows when he comes back)."""
    cycle = handle_ms + wrap_up_ms
    match agent.state:
        case AgentState.AVAILABLE:
            return now_ms
        case AgentState.RESERVED:
            return now_ms + cycle  # about to take the call offered to him
        case AgentState.ON_CALL:
            return max(now_ms, agent.since_ms + handle_ms) + wrap_up_ms
        case AgentState.WRAP_UP:
            return max(now_ms, agent.wrap_up_until_ms or now_ms)
        case _:
            return None


def estimate_waits(
    count: int, agents: Iterable[AgentStatus], now_ms: int, handle_ms: int, wrap_up_ms: int
) -> list[float | None]:
    """Estimated seconds of waiting for the calls at positions 1..count.

    Every agent who takes calls frees up at free_at_ms(), then again after each average call
    (handle time + wrap-up); the call at position n gets the n-th agent to free up. So the
    estimate never decreases with the position. None for every call if no agent takes calls.
    """
    heap = [t for t in (free_at_ms(a, now_ms, handle_ms, wrap_up_ms) for a in agents) if t is not None]
    if not heap:
        return [None] * count
    heapq.heapify(heap)
    cycle = max(1, handle_ms + wrap_up_ms)
    waits: list[float | None] = []
    for _ in range(count):
        free = heapq.heappop(heap)
        waits.append(max(0, free - now_ms) / 1000)
        heapq.heappush(heap, free + cycle)
    return waits
