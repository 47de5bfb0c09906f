"""RedisSessions: the agent desktop's sessions in Redis, shared by every control process.

The SessionStore of hotline.agent_desktop.auth, kept where all control processes behind one
address see it: a token made by one works on the others, and a sign-out on one ends it on all.

Rules of this module:
- Only the SHA-256 of a token is stored (as auth.token_digest), as in MemorySessions: reading the
  database hands out no session.
- One key per session, `{p}:session:<sha256 hex>` STRING principal JSON, written with
  `SET ... PX ttl`: Redis expires it, so there is nothing to sweep. A get of an expired or
  unknown token is None; a delete is a plain DEL (idempotent).
- The JSON carries every field of the Principal (username, role, agent_id, unit, open), so a
  principal read back is equal to the one stored. An entry that is not such JSON (written by
  something else, or a future format) is treated as no session, and logged.
- Redis errors become hotline.core.errors (Unavailable while Redis is down: the API answers 503).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import Generic, TypeVar

import redis.asyncio

from hotline.core.errors import InvalidRequest
from hotline.queue import keys
from hotline.queue.client import reply, text, translate_errors

logger = logging.getLogger(__name__)

P = TypeVar("P")
TOKEN_BYTES = 32  # as the agent desktop's own sessions (auth.TOKEN_BYTES)


def session_key(digest: str, prefix: str = keys.DEFAULT_PREFIX) -> str:
    """The key of one session (by the token's digest, never the token)."""
    # keys.py spells every other key; this one lives with its only user, the same way checked.
    if not prefix or any(ch in prefix for ch in "{}") or any(ch.isspace() for ch in prefix):
        raise InvalidRequest(f"invalid prefix for a Redis key: {prefix!r}")
    return f"{prefix}:session:{digest}"


class RedisSessions(Generic[P]):
    """Sessions under `prefix` (implements hotline.agent_desktop.auth.SessionStore). What a
    session holds is written and read by `encode` and `decode` (the agent desktop's
    auth.principal_json and auth.principal_from_json: this adapter knows no principal);
    `decode` raises ValueError for an entry that is not one."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        encode: Callable[[P], str],
        decode: Callable[[str], P],
        prefix: str = keys.DEFAULT_PREFIX,
    ) -> None:
        session_key("", prefix)  # checks the prefix now, not at the first sign-in
        self._client = client
        self._prefix = prefix
        self._encode = encode
        self._decode = decode

    def _key(self, token: str) -> str:
        return session_key(hashlib.sha256(token.encode()).hexdigest(), self._prefix)

    async def create(self, principal: P, ttl_s: float) -> str:
        """A new token for the principal, valid ttl_s (at least a millisecond)."""
        if ttl_s <= 0:
            raise InvalidRequest(f"a session needs a positive ttl, got {ttl_s!r}")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with translate_errors("session create"):
            await reply(self._client.set(self._key(token), self._encode(principal), px=max(1, round(ttl_s * 1000))))
        return token

    async def get(self, token: str) -> P | None:
        """The principal of a live token, None if unknown or expired."""
        with translate_errors("session get"):
            raw = await reply(self._client.get(self._key(token)))
        if raw is None:
            return None
        try:
            return self._decode(text(raw))
        except (ValueError, UnicodeDecodeError) as exc:
            logger.error("ignoring a malformed session entry %s: %s", self._key(token), exc)
            return None

    async def delete(self, token: str) -> None:
        """Ends the session (idempotent)."""
        with translate_errors("session delete"):
            await reply(self._client.delete(self._key(token)))
