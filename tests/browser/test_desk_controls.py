"""The connected call's controls on the agent desktop page in headless Chromium: 保持/恢复通话,
静音/取消静音, 三方通话, 发送按键 and 挂断 work only while the agent is on a call, by click and by
their shortcuts, and each sends its call-control command to the worker that runs the call, with
what the agent chose; a refused number or digits never leave the page. What the worker then does
with each command is tested on real audio (tests/e2e/test_call_controls_e2e.py,
test_call_controls_more_e2e.py) and against its endpoint (tests/integration/test_call_controls.py).

Real API app with the event bus as its live calls (as `hotline control` has), real queue and
dispatch, real Chromium.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio
from playwright.async_api import Dialog, Page, expect

from hotline.core import events
from hotline.core.model import CallId
from hotline.tickets.store import SqlTicketStore
from tests.browser.desk import Desk, Shots, now_ms, sign_in
from tests.browser.test_desk_page import LIVE, W1, offer_a_call
from tests.browser.test_desk_reject import LiveCallsDesk

CALL = "c-controls-1"


@pytest.fixture
async def live_desk(client: redis.asyncio.Redis, store: SqlTicketStore) -> AsyncIterator[Desk]:
    server = LiveCallsDesk(client, store)
    await server.start()
    yield server
    await server.stop()


async def controls_sent(desk: Desk) -> list[dict[str, Any]]:
    """The call-control commands the call's worker got, oldest first, without who asked."""
    entries = await desk.bus.read_commands(W1, "0")
    return [
        {k: v for k, v in data.items() if k not in ("by", "call_id")}
        for _, kind, data in entries
        if kind == events.CMD_CALL_CONTROL and data.get("call_id") == CALL
    ]


async def test_the_controls_of_a_connected_call_reach_its_worker(page: Page, live_desk: Desk, shots: Shots) -> None:
    desk = live_desk
    await sign_in(page, desk, "agent1")
    await page.get_by_role("button", name="签入").click()
    state, status = page.locator("#state-label"), page.locator("#record-status")
    await expect(state).to_have_text("空闲")
    buttons = {name: page.locator(f"#btn-{name}") for name in ("hold", "mute", "conference", "dtmf", "hangup")}
    for button in buttons.values():
        await expect(button).to_be_disabled()
    await page.keyboard.press("Alt+KeyK")  # no call: refused on the page, nothing sent
    await expect(status).to_have_text("当前状态下不能保持")

    offer = await offer_a_call(desk, CALL, "13800138000")
    await desk.bus.track_call(W1, CallId(CALL), {"call_id": CALL, "caller": "13800138000"})
    await expect(state).to_have_text("振铃中", timeout=LIVE)
    for button in buttons.values():  # ringing is not talking yet
        await expect(button).to_be_disabled()
    assert await desk.queue.offer_answered(offer.offer_id, now_ms())
    await expect(state).to_have_text("通话中", timeout=LIVE)
    for button in buttons.values():
        await expect(button).to_be_enabled()

    # Hold by its shortcut, resume by a click; mute and unmute.
    await page.keyboard.press("Alt+KeyK")
    await expect(status).to_have_text("已保持：来电人正在听等待音乐", timeout=LIVE)
    await expect(buttons["hold"]).to_contain_text("恢复通话")
    await buttons["hold"].click()
    await expect(status).to_have_text("已恢复通话", timeout=LIVE)
    await expect(buttons["hold"]).to_contain_text("保持")
    await page.keyboard.press("Alt+KeyM")
    await expect(status).to_have_text("已静音：来电人听不到您（录音照常）", timeout=LIVE)
    await buttons["mute"].click()
    await expect(status).to_have_text("已取消静音", timeout=LIVE)

    # A three-way call and digits: asked for in a dialog; a bad answer never leaves the page.
    answers = iter(["12a", "12315", "#99", "12#"])

    async def reply(dialog: Dialog) -> None:
        await dialog.accept(next(answers))

    page.on("dialog", reply)
    await buttons["conference"].click()
    await expect(status).to_have_text("号码只能是 3 到 20 位数字")
    await buttons["conference"].click()
    await expect(status).to_have_text("正在呼叫 12315 加入三方通话", timeout=LIVE)
    await buttons["dtmf"].click()
    await expect(status).to_have_text("已发送按键 #99", timeout=LIVE)
    await buttons["dtmf"].click()
    await expect(status).to_have_text("已发送按键 12#", timeout=LIVE)
    await shots.take(page, "controls")

    await page.keyboard.press("Alt+KeyG")
    await expect(status).to_have_text("已挂断", timeout=LIVE)
    assert await controls_sent(desk) == [
        {"action": "hold", "held": True},
        {"action": "hold", "held": False},
        {"action": "mute", "muted": True},
        {"action": "mute", "muted": False},
        {"action": "conference", "number": "12315"},
        {"action": "dtmf", "digits": "#99"},
        {"action": "dtmf", "digits": "12#"},
        {"action": "hangup"},
    ]
