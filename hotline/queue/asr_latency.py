"""The ASR latency histogram in Redis: written by the speech service, read by /metrics.

Latency is the seconds from when the caller said words to when their text was published to the
agent (the speech service's definition, hotline/runtime/speech.py). One hash of fixed fields
(keys.asr_latency): `count`, `sum` and one counter per bucket, each text counted in the one
bucket it falls in (cumulative counts are made when read). One MULTI per text; the hash never
grows and never expires, as Prometheus counters only grow.
"""

from __future__ import annotations

import bisect
import math

import redis.asyncio

from hotline.core.errors import InvalidRequest
from hotline.core.ports import AsrLatency
from hotline.queue import keys
from hotline.queue.client import text, translate_errors

BUCKETS_S: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)
_INF = "+Inf"


def _field(bound: float | None) -> str:
    return f"b:{_INF if bound is None else format(bound, 'g')}"


class RedisAsrLatency:
    """The histogram under `prefix` (implements hotline.core.ports.AsrLatencySource)."""

    def __init__(
        self, client: redis.asyncio.Redis, prefix: str = keys.DEFAULT_PREFIX, buckets: tuple[float, ...] = BUCKETS_S
    ) -> None:
        if not buckets or list(buckets) != sorted(set(buckets)) or buckets[0] <= 0:
            raise InvalidRequest(f"buckets must be positive and ascending, got {buckets!r}")
        self._client = client
        self._key = keys.asr_latency(prefix)
        self.buckets = buckets

    async def record(self, latency_s: float) -> None:
        """Counts one published text's latency (negative or NaN: not counted)."""
        if not latency_s >= 0 or math.isinf(latency_s):
            return
        at = bisect.bisect_left(self.buckets, latency_s)
        bound = self.buckets[at] if at < len(self.buckets) else None
        with translate_errors("record asr latency"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hincrby(self._key, _field(bound), 1)
                pipe.hincrby(self._key, "count", 1)
                pipe.hincrbyfloat(self._key, "sum", latency_s)
                await pipe.execute()

    async def histogram(self) -> AsrLatency:
        with translate_errors("read asr latency"):
            raw = await self._client.hgetall(self._key)  # type: ignore[misc]
        fields = {text(k): text(v) for k, v in raw.items()}
        running, buckets = 0, []
        for bound in self.buckets:
            running += int(fields.get(_field(bound), 0))
            buckets.append((bound, running))
        return AsrLatency(tuple(buckets), int(fields.get("count", 0)), float(fields.get("sum", 0.0)))
