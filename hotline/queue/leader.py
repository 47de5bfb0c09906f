"""RedisLease: one holder at a time for a role (the dispatcher), by a lease that expires.

A control process calls `acquire(me, ttl_ms)` about every ttl/3: it gets or keeps the role while
it renews in time; when it dies (or stalls longer than the lease) another process's next
`acquire` takes over. The lease only avoids two dispatchers doing the same work: correctness
never depends on it (every ACD change is one atomic script, idempotent by id), so a paused
holder whose lease expired unnoticed does no harm.
"""

from __future__ import annotations

import redis.asyncio

from hotline.core.errors import InvalidRequest
from hotline.queue import keys
from hotline.queue.client import reply, text, translate_errors

# KEYS[1] the lease; ARGV: holder, ttl_ms. 1 if the holder has the lease now (renewed or taken).
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if current then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS[1] the lease; ARGV: holder. Deletes it only if this holder has it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLease:
    def __init__(self, client: redis.asyncio.Redis, role: str, prefix: str = keys.DEFAULT_PREFIX) -> None:
        self._client = client
        self._key = keys.leader(role, prefix)
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)

    async def acquire(self, holder: str, ttl_ms: int) -> bool:
        """True if `holder` has the role for the next ttl_ms (taken now or renewed)."""
        if not holder or ttl_ms <= 0:
            raise InvalidRequest(f"a lease needs a holder and a positive ttl, got {holder!r}, {ttl_ms!r}")
        with translate_errors("lease acquire"):
            return bool(await self._acquire(keys=[self._key], args=[holder, ttl_ms]))

    async def release(self, holder: str) -> bool:
        """Gives the role up at once (a clean shutdown), if `holder` has it."""
        with translate_errors("lease release"):
            return bool(await self._release(keys=[self._key], args=[holder]))

    async def holder(self) -> str | None:
        with translate_errors("lease holder"):
            raw = await reply(self._client.get(self._key))
        return None if raw is None else text(raw)
