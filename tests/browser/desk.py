"""What the browser tests share: the API app on a port of its own that a test may restart, the
screenshots, signing in through the page."""

from __future__ import annotations

import re
import time
from pathlib import Path

import redis.asyncio
from aiohttp import web
from playwright.async_api import Page

from hotline.agent_desktop.app import make_app
from hotline.agent_desktop.auth import Auth
from hotline.agent_desktop.live import LiveHub
from hotline.queue.acd import AcdPolicy, RedisCallQueue
from hotline.queue.agent_state import AgentPolicy
from hotline.queue.bus import RedisEventBus
from hotline.tickets.store import SqlTicketStore
from tests.support import free_port

PASSWORD = "密码-long-enough"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts" / "browser"
SAVED: list[Path] = []


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Desk:
    """The API app (and so the page) on a fixed port, which a test may stop and start again.

    The sessions (`auth`) outlive a restart unless the test replaces them, as a real restart of
    a process with MemorySessions does (the page must then go back to sign-in)."""

    def __init__(self, client: redis.asyncio.Redis, store: SqlTicketStore, *, sign_in: bool = True) -> None:
        policy = AcdPolicy(agent=AgentPolicy(wrap_up_ms=120_000))
        self.queue = RedisCallQueue(client, policy=policy)
        self.bus = RedisEventBus(client)
        self.store = store
        self.auth: Auth | None = Auth(store) if sign_in else None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hub: LiveHub | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self.hub = LiveHub(self.bus, block_ms=100)
        app = make_app(self.queue, self.store, auth=self.auth, live=self.hub)
        self._runner = web.AppRunner(app, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        await self.hub.started.wait()  # events published from now on reach the page

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class Shots:
    """Screenshots of one test, numbered in order, listed at the end of the run."""

    def __init__(self, name: str) -> None:
        self.prefix = re.sub(r"[^\w-]+", "_", name)
        self.count = 0

    async def take(self, page: Page, what: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.count += 1
        path = ARTIFACTS / f"{self.prefix}-{self.count:02d}-{what}.png"
        await page.screenshot(path=str(path), full_page=True)
        SAVED.append(path)
        return path


async def sign_in(page: Page, desk: Desk, username: str) -> None:
    """Signs in through the page's form, as a person would."""
    await page.goto(f"{desk.url}/")
    await page.get_by_label("用户名").fill(username)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()
