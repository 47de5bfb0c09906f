"""接听 on the agent desktop page in headless Chromium: the button works only while the agent's
phone rings, by click and by Alt+A, and pressing it sends the `answer` command to the worker
that runs the call (which rings his phone again asking it to pick up by itself:
tests/integration/test_call_controls.py, tests/e2e/test_desk_answer_e2e.py); the page says so,
and shows him on the call once the queue has him there.

Real API app with the event bus as its live calls (as `hotline control` has), real queue and
dispatch, real Chromium. The worker's side is its real queue calls.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from playwright.async_api import Page, expect

from hotline.core import events
from hotline.core.model import CallId
from hotline.tickets.store import SqlTicketStore
from tests.browser.desk import Desk, Shots, now_ms, sign_in
from tests.browser.test_desk_page import LIVE, W1, offer_a_call
from tests.browser.test_desk_reject import LiveCallsDesk


@pytest.fixture
async def live_desk(client: redis.asyncio.Redis, store: SqlTicketStore) -> AsyncIterator[Desk]:
    server = LiveCallsDesk(client, store)
    await server.start()
    yield server
    await server.stop()


async def test_the_agent_answers_the_ringing_call_from_the_page(page: Page, live_desk: Desk, shots: Shots) -> None:
    desk = live_desk
    await sign_in(page, desk, "agent1")
    await page.get_by_role("button", name="签入").click()
    state, status = page.locator("#state-label"), page.locator("#record-status")
    await expect(state).to_have_text("空闲")
    answer = page.get_by_role("button", name="接听")
    await expect(answer).to_be_disabled()
    await page.keyboard.press("Alt+KeyA")  # nothing rings: refused on the page, nothing sent
    await expect(status).to_have_text("当前状态下不能接听")

    # The shortcut: the command reaches the worker's stream; his phone is asked to pick up.
    offer = await offer_a_call(desk, "c-answer-1", "13800138000")
    await desk.bus.track_call(W1, CallId("c-answer-1"), {"call_id": "c-answer-1", "caller": "13800138000"})
    await expect(state).to_have_text("振铃中", timeout=LIVE)
    await expect(answer).to_be_enabled()
    await page.keyboard.press("Alt+KeyA")
    await expect(status).to_have_text(re.compile("^已请求话机自动接听"), timeout=LIVE)
    sent = [(kind, data) for _, kind, data in await desk.bus.read_commands(W1, "0")]
    assert sent == [(events.CMD_ANSWER, {"call_id": "c-answer-1", "agent_id": "a1", "by": "agent1"})]
    await expect(answer).to_be_disabled()  # asked once: the phone is being rung again

    # His phone did not pick up (no auto-answer): the offer failed, he is offered it again.
    assert await desk.queue.offer_failed(offer.offer_id, now_ms(), "no-answer")
    await expect(state).to_have_text("空闲", timeout=LIVE)
    await expect(answer).to_be_disabled()
    again = await desk.queue.dispatch_once(now_ms(), 20_000)
    assert again is not None and again.call_id == "c-answer-1"
    await expect(state).to_have_text("振铃中", timeout=LIVE)
    await shots.take(page, "ringing")

    # The click: sent again; the worker's new leg is answered and the page shows him on the call.
    await answer.click()
    await expect(status).to_have_text(re.compile("^已请求话机自动接听"), timeout=LIVE)
    sent = [(kind, data) for _, kind, data in await desk.bus.read_commands(W1, "0")]
    assert [kind for kind, _ in sent] == [events.CMD_ANSWER, events.CMD_ANSWER], sent
    assert await desk.queue.offer_answered(again.offer_id, now_ms())
    await expect(state).to_have_text("通话中", timeout=LIVE)
    await expect(answer).to_be_disabled()
    await shots.take(page, "answered")
