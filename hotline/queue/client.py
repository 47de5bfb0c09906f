"""Helpers for talking to redis.asyncio, shared by the queue and the bus."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Iterator
from typing import TypeVar, cast

import redis.exceptions

from hotline.core.errors import DomainError, Unavailable

_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,  # includes BusyLoadingError
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica after failover: retry against the new primary
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    OSError,
)


@contextlib.contextmanager
def translate_errors(operation: str) -> Iterator[None]:
    """Turns redis exceptions into hotline.core.errors (no library type crosses the port)."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise Unavailable(f"redis unavailable during {operation}: {exc}") from exc
    except redis.exceptions.RedisError as exc:
        raise DomainError(f"redis error during {operation}: {exc}") from exc


_T = TypeVar("_T")


async def reply(value: Awaitable[_T] | _T) -> _T:
    """Awaits a redis.asyncio command (its stubs type the sync and async clients as one)."""
    return await cast(Awaitable[_T], value)


def text(value: bytes | str) -> str:
    """A reply as str, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else value
