"""Webhook delivery of the units' notices (the outbox of units.py): signing, the retry schedule,
and the delivery loop.

Rules of this module:
- A notice is POSTed as JSON (UTF-8) to the unit's webhook_url with the headers
  `X-Hotline-Event-Id` (the same on every attempt: receivers dedupe on it),
  `X-Hotline-Timestamp` (Unix seconds of this attempt) and
  `X-Hotline-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. The body is the
  same bytes on every attempt. Receivers check it with verify_signature (docs/units.md).
- A 2xx answer is delivered. Anything else (another status, a timeout, a refused connection) is
  retried after retry_delay: exponential from base_s, capped at cap_s, with jitter (a uniform
  draw in [half, all] of the delay), so that many failing notices do not come back in lockstep.
  After max_attempts the notice is failed and an alert is raised (error log + on_alert).
- Each unit's notices go out in order: the store hands out only a unit's oldest pending notice
  (units.py), and this loop sends at most one notice per unit at a time.
- The pure parts (sign, verify_signature, retry_delay, next_state) know nothing of HTTP or the
  store; WebhookDelivery is the only part that does I/O (aiohttp, the store in a thread).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import aiohttp

from hotline.core.model import utcnow

logger = logging.getLogger(__name__)

EVENT_ID_HEADER = "X-Hotline-Event-Id"
TIMESTAMP_HEADER = "X-Hotline-Timestamp"
SIGNATURE_HEADER = "X-Hotline-Signature"
SCHEME = "sha256="


# ------------------------------------------------------------------ pure: signatures
def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The X-Hotline-Signature value: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def verify_signature(
    secret: str, timestamp: str | int, body: bytes, header: str, tolerance_s: float = 300.0, now: float | None = None
) -> bool:
    """For receivers: True if `header` (X-Hotline-Signature) signs `body` at `timestamp`
    (X-Hotline-Timestamp) with `secret`, and the timestamp is within tolerance_s of now (Unix
    seconds; default the wall clock), so that a captured request cannot be replayed later.
    Compares in constant time."""
    try:
        stamp = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), header.strip())


# ------------------------------------------------------------------ pure: the retry schedule
@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8  # then failed (and an alert)
    base_s: float = 10.0  # the delay after the first failure (before jitter)
    cap_s: float = 3600.0
    timeout_s: float = 10.0  # one attempt: connect + answer
    lease_s: float = 60.0  # a claim lasts this long (more than an attempt takes)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_s <= 0 or self.cap_s < self.base_s or self.timeout_s <= 0:
            raise ValueError(f"bad webhook retry policy: {self}")
        if self.lease_s <= self.timeout_s:
            raise ValueError("the claim lease must outlast one attempt's timeout")


def retry_delay(policy: RetryPolicy, failures: int, draw: float) -> float:
    """Seconds to wait after the `failures`-th failed attempt (1, 2, ...); draw in [0, 1)."""
    full = min(policy.cap_s, policy.base_s * 2.0 ** (failures - 1))
    return full / 2 + full / 2 * draw


def next_state(policy: RetryPolicy, attempt: int, ok: bool, draw: float) -> tuple[str, float | None]:
    """After attempt number `attempt` (1, 2, ...): ("delivered", None), ("retry", delay) or
    ("failed", None)."""
    if ok:
        return "delivered", None
    if attempt >= policy.max_attempts:
        return "failed", None
    return "retry", retry_delay(policy, attempt, draw)


# ------------------------------------------------------------------ I/O: the delivery loop
class Claimed(Protocol):
    """A claimed outbox row (units.OutboxItem)."""

    @property
    def id(self) -> int: ...
    @property
    def event_id(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def payload(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def webhook_url(self) -> str: ...
    @property
    def secret(self) -> str: ...


class Outbox(Protocol):
    """What delivery needs of the store (units.UnitDesk). Synchronous: called in a thread."""

    def claim_outbox(self, process: str, now: datetime, lease_s: float, limit: int = 20) -> Sequence[Claimed]: ...

    def finish_delivery(
        self,
        item_id: int,
        process: str,
        *,
        ok: bool,
        status_code: int | None,
        error: str,
        seconds: float,
        at: datetime,
        retry_at: datetime | None,
    ) -> str: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    status_code: int | None
    error: str
    seconds: float


class WebhookDelivery:
    """Claims due notices and POSTs them; `step()` is one round, `run()` rounds forever.

    `process`: this process's name in claims and attempt rows; `on_alert`: called with an alert
    dict when a notice is given up; `draw`: the jitter's random source (tests pin it)."""

    def __init__(
        self,
        outbox: Outbox,
        process: str,
        policy: RetryPolicy | None = None,
        *,
        on_alert: Callable[[dict[str, Any]], Awaitable[object]] | None = None,
        draw: Callable[[], float] = random.random,
        batch: int = 20,
    ) -> None:
        self.outbox = outbox
        self.process = process
        self.policy = policy or RetryPolicy()
        self.on_alert = on_alert
        self._draw = draw
        self._batch = batch
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.failed = 0

    async def step(self) -> int:
        """Sends every notice due now (one per unit, concurrently); returns how many it tried."""
        items = await asyncio.to_thread(
            self.outbox.claim_outbox, self.process, utcnow(), self.policy.lease_s, self._batch
        )
        if items:
            await asyncio.gather(*(self._deliver(item) for item in items))
        return len(items)

    async def run(self, interval_s: float = 1.0) -> None:
        """Rounds until cancelled: at once again after a round that sent something."""
        try:
            while True:
                try:
                    busy = await self.step()
                except Exception:
                    logger.exception("webhook delivery round failed")
                    busy = 0
                if not busy:
                    await asyncio.sleep(interval_s)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, item: Claimed) -> Attempt:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers={"User-Agent": "hotline-webhook/1"})
        body = item.payload.encode()
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            EVENT_ID_HEADER: item.event_id,
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(item.secret, stamp, body),
        }
        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout_s)
        try:
            async with self._session.post(
                item.webhook_url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                await response.read()
                ok = 200 <= response.status < 300
                error = "" if ok else f"HTTP {response.status}"
                return Attempt(ok, response.status, error, time.monotonic() - started)
        except TimeoutError:
            return Attempt(False, None, f"timeout after {self.policy.timeout_s:g} s", time.monotonic() - started)
        except aiohttp.ClientError as exc:
            return Attempt(False, None, f"{type(exc).__name__}: {exc}", time.monotonic() - started)

    async def _deliver(self, item: Claimed) -> None:
        attempt = await self._post(item)
        number = item.attempts + 1
        state, delay = next_state(self.policy, number, attempt.ok, self._draw())
        at = utcnow()
        retry_at = None if delay is None else at + timedelta(seconds=delay)
        await asyncio.to_thread(
            self.outbox.finish_delivery,
            item.id,
            self.process,
            ok=attempt.ok,
            status_code=attempt.status_code,
            error=attempt.error,
            seconds=attempt.seconds,
            at=at,
            retry_at=retry_at,
        )
        if state == "delivered":
            self.delivered += 1
            logger.info("notice %s to %s delivered (attempt %d)", item.event_id, item.unit, number)
        elif state == "retry":
            logger.warning(
                "notice %s to %s: attempt %d failed (%s); again in %.0f s",
                item.event_id, item.unit, number, attempt.error, delay,
            )  # fmt: skip
        else:
            self.failed += 1
            logger.error(
                "ALERT notice %s to %s given up after %d attempts: %s", item.event_id, item.unit, number, attempt.error
            )
            if self.on_alert is not None:
                alert = {
                    "alert": "webhook-failed",
                    "unit": item.unit,
                    "event_id": item.event_id,
                    "attempts": number,
                    "error": attempt.error,
                    "by": self.process,
                }
                try:
                    await self.on_alert(alert)
                except Exception:
                    logger.exception("raising the webhook alert failed")
