"""Fixtures shared by every layer of tests."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio

from tests.support import RedisServer, redis_server


@pytest.fixture(scope="session")
def redis_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the whole session (tests flush the database they use)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_session: RedisServer) -> Iterator[str]:
    """A clean database on the session's redis-server."""
    import redis

    client = redis.Redis.from_url(redis_session.url)
    client.flushdb()
    client.close()
    yield redis_session.url


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio client of that clean database."""
    c = redis.asyncio.Redis.from_url(redis_url)
    yield c
    await c.aclose()


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own (for tests that stop or restart it)."""
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture(autouse=True)
def _collect_garbage_per_test() -> Iterator[None]:
    """Collects garbage at each test's teardown, so that a ResourceWarning (an unclosed loop,
    socket or file) fails the test that leaked it, not whichever test the GC happens to run in."""
    yield
    gc.collect()
