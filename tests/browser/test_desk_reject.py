"""拒接 on the agent desktop page in headless Chromium: the button works only while the agent's
phone rings, the keyboard reaches it, and pressing it sends the `reject` command to the worker
that runs the call; when the worker reports the offer declined (as it does once the agent's leg
has ended, tests/integration/test_call_controls.py), the page shows him paused with 拒接.

Real API app with the event bus as its live calls (as `hotline control` has), real queue and
dispatch, real Chromium. The worker's side is its real queue call.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from aiohttp import web
from playwright.async_api import Page, expect

from hotline.agent_desktop.api_calls import LIVE_CALLS
from hotline.agent_desktop.app import make_app
from hotline.agent_desktop.live import LiveHub
from hotline.core import events
from hotline.core.model import CallId
from hotline.tickets.store import SqlTicketStore
from tests.browser.desk import Desk, Shots, now_ms, sign_in
from tests.browser.test_desk_page import LIVE, W1, offer_a_call


class LiveCallsDesk(Desk):
    """The Desk with the media workers' live calls reachable, as in `hotline control`."""

    async def start(self) -> None:
        self.hub = LiveHub(self.bus, block_ms=100)
        app = make_app(self.queue, self.store, auth=self.auth, live=self.hub)
        app[LIVE_CALLS] = self.bus
        self._runner = web.AppRunner(app, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        await self.hub.started.wait()


@pytest.fixture
async def live_desk(client: redis.asyncio.Redis, store: SqlTicketStore) -> AsyncIterator[Desk]:
    server = LiveCallsDesk(client, store)
    await server.start()
    yield server
    await server.stop()


async def test_the_agent_rejects_the_ringing_call_from_the_keyboard(page: Page, live_desk: Desk, shots: Shots) -> None:
    desk = live_desk
    await sign_in(page, desk, "agent1")
    await page.get_by_role("button", name="签入").click()
    state = page.locator("#state-label")
    await expect(state).to_have_text("空闲")
    reject = page.get_by_role("button", name="拒接")
    await expect(reject).to_be_disabled()
    await page.keyboard.press("Alt+KeyJ")  # nothing rings: refused on the page, nothing sent
    await expect(page.locator("#record-status")).to_have_text("当前状态下不能拒接")

    offer = await offer_a_call(desk, "c-reject-1", "13800138000")
    await desk.bus.track_call(W1, CallId("c-reject-1"), {"call_id": "c-reject-1", "caller": "13800138000"})
    await expect(state).to_have_text("振铃中", timeout=LIVE)
    await expect(reject).to_be_enabled()
    await shots.take(page, "ringing")
    await page.keyboard.press("Alt+KeyJ")
    await expect(page.locator("#record-status")).to_have_text(re.compile("^已拒接"), timeout=LIVE)
    sent = [(kind, data) for _, kind, data in await desk.bus.read_commands(W1, "0")]
    assert sent == [(events.CMD_REJECT, {"call_id": "c-reject-1", "agent_id": "a1", "by": "agent1"})]

    # The worker hung up his ringing leg and reports the offer declined.
    assert await desk.queue.offer_failed(offer.offer_id, now_ms(), events.REJECT_PAUSE, declined=True)
    await expect(state).to_have_text("小休", timeout=LIVE)
    await expect(page.locator("#state-reason")).to_have_text("（拒接）")
    await expect(reject).to_be_disabled()
    # The caller waits on for another agent: his wait no longer ticks on this page.
    await expect(page.locator("#call-waited")).to_have_text(re.compile(r"^00:\d\d（来电已不在本坐席）$"))
    await shots.take(page, "rejected")
