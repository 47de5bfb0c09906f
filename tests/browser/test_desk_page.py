"""The agent desktop page in headless Chromium: an agent signs in, changes state and gets a call
with its live transcript; the page reconnects by itself when the server goes away; the
supervisor's wallboard follows the queue and the agents; everything works from the keyboard.

The events are real: agent states come from the queue's Lua scripts, the offer from a real
dispatch, the draft from the real intake over the real event bus (as the speech service publishes
it). Waits are Playwright's polling assertions (expect ... timeout), never sleeps.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis.asyncio
from playwright.async_api import Page, expect

from hotline.agent_desktop.auth import Auth
from hotline.asr.intake import Intake, load_lexicon
from hotline.core import events
from hotline.core.model import Actor, AgentId, CallId, CallRecord, Outcome, WorkerId
from hotline.core.ports import Offer
from hotline.tickets.store import SqlTicketStore
from tests.browser.desk import PASSWORD, Desk, Shots, now_ms, sign_in

W1 = WorkerId("w1")
A1, A2 = AgentId("a1"), AgentId("a2")
LEXICON = Path(__file__).resolve().parents[2] / "config" / "intake" / "zh-CN.yaml"
SAID = "我家在张店区人民西路3号楼，楼下的路灯坏了一个星期了，晚上很黑，希望尽快修好"
LIVE = 5_000  # ms: how long a live update may take to show


async def visible_focus(page: Page) -> str:
    """The id (or tag) of the focused element; fails unless its focus outline is visible (the
    page itself, BODY, when the focus has left the page's controls)."""
    found = await page.evaluate(
        """() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return {id: el.id || el.tagName, outline: style.outlineStyle, width: parseFloat(style.outlineWidth)};
        }"""
    )
    if found["id"] != "BODY":
        assert found["outline"] != "none" and found["width"] >= 2, found
    return str(found["id"])


# The agent view's controls in Tab order while signed out: the state bar and the wrap-up form;
# the call controls (暂停录音, 拒接, 接听, 保持, 静音, 转接, 三方通话, 发送按键, 挂断) are disabled
# without a call, so out of the order.
TAB_ORDER = [
    "btn-login", "pause-reason",
    "f-kind", "f-place", "f-content", "f-lead", "f-assist", "f-name", "f-emergency", "f-consent", "f-answer",
    "btn-submit", "btn-repeats",
]  # fmt: skip


async def offer_a_call(desk: Desk, call_id: str, caller: str) -> Offer:
    """A caller queued (as a worker does) and offered to a1 by a real dispatch."""
    await desk.queue.enqueue(CallId(call_id), W1, caller, now_ms())
    await desk.bus.publish(events.CALL_QUEUED, {"call_id": call_id, "caller": caller, "worker_id": W1})
    offer = await desk.queue.dispatch_once(now_ms(), 20_000)
    assert offer is not None and offer.agent_id == A1 and offer.call_id == call_id
    return offer


async def test_agent_signs_in_changes_state_and_sees_the_call_live(page: Page, desk: Desk, shots: Shots) -> None:
    await sign_in(page, desk, "agent1")
    assert page.url == f"{desk.url}/desk/"
    state = page.locator("#state-label")
    await expect(state).to_have_text("已签出")
    await expect(page.locator("#conn")).to_have_text(re.compile("已连接"), timeout=LIVE)
    await page.get_by_role("button", name="签入").click()
    await expect(state).to_have_text("空闲")
    await expect(page.locator("#state-timer")).to_have_text(re.compile(r"^00:0\d$"))
    await page.get_by_label("小休原因").select_option("培训")
    await page.get_by_role("button", name="小休").click()
    await expect(state).to_have_text("小休")
    await expect(page.locator("#state-reason")).to_have_text("（培训）")
    await page.get_by_role("button", name="空闲").click()
    await expect(state).to_have_text("空闲")
    await expect(page.get_by_role("button", name="话后处理结束")).to_be_disabled()
    await shots.take(page, "available")

    await offer_a_call(desk, "c-web-1", "13800138000")
    await expect(state).to_have_text("振铃中", timeout=LIVE)
    announce = page.locator("#call-announce")
    await expect(announce).to_have_text(re.compile(r"^来电：.*，请在话机上接听$"))
    await expect(announce).to_have_attribute("aria-live", "assertive")
    await expect(page.locator("#call-id")).to_have_text("c-web-1")
    await expect(page.locator("#call-wait")).to_have_text(re.compile(r"^振铃 00:\d\d$"))
    # The whole number is never on the page (the context route, where there is one, gives it).
    assert "13800138000" not in await page.locator("#call-panel").inner_text()

    draft = Intake(load_lexicon(LEXICON)).draft(SAID).to_dict()
    data = {"call_id": "c-web-1", "text": SAID[:20], "final": False, "draft": draft}
    await desk.bus.publish(events.CALL_DRAFT, data)
    await expect(page.locator("#transcript")).to_have_text(f"{SAID[:20]} …", timeout=LIVE)
    await desk.bus.publish(events.CALL_DRAFT, {**data, "text": SAID, "final": True})
    await expect(page.locator("#transcript")).to_have_text(SAID, timeout=LIVE)
    await expect(page.locator("#draft-kind")).to_contain_text("求助")
    await expect(page.locator("#draft-place")).to_have_text("张店区人民西路 3号楼")
    await expect(page.get_by_label("诉求类型")).to_have_value("help")
    await expect(page.get_by_label("地点")).to_have_value("张店区人民西路3号楼")
    await expect(page.get_by_label("诉求内容")).to_have_value(SAID)

    await shots.take(page, "incoming-call")


async def test_the_call_goes_on_to_wrap_up_and_the_ticket_form(page: Page, desk: Desk, shots: Shots) -> None:
    agent = next(a for a in desk.store.list_agents() if a.agent_id == A1)
    await desk.queue.agent_login(agent, now_ms())
    await sign_in(page, desk, "agent1")
    state = page.locator("#state-label")
    await expect(state).to_have_text("空闲")
    offer = await offer_a_call(desk, "c-web-2", "13900139000")
    await expect(state).to_have_text("振铃中", timeout=LIVE)
    # The worker reports the agent answered, later that the call ended: on_call, then wrap-up.
    assert await desk.queue.offer_answered(offer.offer_id, now_ms())
    await expect(state).to_have_text("通话中", timeout=LIVE)
    await expect(page.locator("#btn-record")).to_be_enabled()
    # The call ends: the ticket writer saves its record, the queue puts the agent in wrap-up.
    ended = datetime.now(UTC)
    desk.store.save_call(
        CallRecord(
            CallId("c-web-2"), "13900139000", "12345", W1, ended - timedelta(seconds=90), Outcome.ANSWERED,
            answered_at=ended - timedelta(seconds=89), queued_at=ended - timedelta(seconds=85),
            connected_at=ended - timedelta(seconds=60), ended_at=ended, agent_id=A1, hangup_by="caller",
        )
    )  # fmt: skip
    await desk.queue.call_finished(CallId("c-web-2"), now_ms())
    await expect(state).to_have_text("话后处理", timeout=LIVE)
    await expect(page.locator("#call-announce")).to_have_text("话后处理：请核对并提交工单")
    # The form, with the agent's own edits, goes to POST /calls/{id}/ticket. Whether this server
    # makes the ticket is the tickets API's business (tested there): the page sends the form and
    # says what came of it, 功能暂不可用 on a server without the route.
    await page.get_by_label("诉求类型").select_option(label="咨询")
    await page.get_by_label("诉求内容").fill("咨询社保卡补办需要哪些材料")
    await page.get_by_label("协办单位（用顿号或逗号分隔）").fill("市人社局、区社保中心")
    await page.get_by_label("同意回访").check()
    async with page.expect_request(f"{desk.url}/api/v1/calls/c-web-2/ticket") as sent:
        await page.keyboard.press("Alt+S")
    form = json.loads((await sent.value).post_data or "{}")
    assert form["kind"] == "consultation" and form["content"] == "咨询社保卡补办需要哪些材料"
    assert form["place"] == "" and form["assisting_units"] == ["市人社局", "区社保中心"]
    assert (form["consent_callback"], form["emergency"]) == (True, False)
    status = page.locator("#form-status")
    await expect(status).not_to_have_text(re.compile("^(正在提交…)?$"), timeout=LIVE)
    await expect(page.locator("#history-status")).not_to_have_text("查询中…")
    await shots.take(page, "wrap-up")
    await page.get_by_role("button", name="话后处理结束").click()
    await expect(state).to_have_text("空闲")


async def test_the_page_reconnects_by_itself_and_catches_up(page: Page, desk: Desk, shots: Shots) -> None:
    await sign_in(page, desk, "agent1")
    state, conn = page.locator("#state-label"), page.locator("#conn")
    await page.get_by_role("button", name="签入").click()
    await expect(state).to_have_text("空闲")
    await expect(conn).to_have_text(re.compile("已连接"), timeout=LIVE)

    await desk.stop()
    await expect(conn).to_have_text(re.compile("连接已断开，正在重连…"), timeout=LIVE)
    # The first try (after 1 s) finds no server: the next waits 2 s.
    await expect(conn).to_have_text(re.compile("2 秒后重试"), timeout=LIVE)
    await shots.take(page, "disconnected")
    # While the page is away a supervisor pauses the agent: no event will tell the page.
    await desk.queue.agent_pause(A1, "会议", now_ms(), by=Actor.SUPERVISOR)
    await desk.start()
    await expect(conn).to_have_text("已重新连接，实时更新中", timeout=10_000)
    await expect(state).to_have_text("小休", timeout=LIVE)  # read again from REST
    await expect(page.locator("#state-reason")).to_have_text("（会议）")

    # Live again: the next change arrives over the new socket, with no REST read.
    reads: list[str] = []
    page.on("request", lambda request: reads.append(request.url) if "/api/v1/agents/" in request.url else None)
    await desk.queue.agent_resume(A1, now_ms(), by=Actor.SUPERVISOR)
    await expect(state).to_have_text("空闲", timeout=LIVE)
    assert reads == []
    await shots.take(page, "reconnected")


async def test_an_ended_session_goes_back_to_sign_in(page: Page, desk: Desk) -> None:
    await sign_in(page, desk, "agent1")
    await expect(page.locator("#conn")).to_have_text(re.compile("已连接"), timeout=LIVE)
    # The server process restarts: its sessions (in memory) are gone, the page's token with them.
    await desk.stop()
    desk.auth = Auth(desk.store)
    await desk.start()
    await expect(page.locator("#login-error")).to_have_text("登录已失效，请重新登录", timeout=10_000)
    await expect(page.get_by_label("用户名")).to_be_focused()


async def test_the_supervisor_sees_the_queue_and_the_agents_change(page: Page, desk: Desk, shots: Shots) -> None:
    await sign_in(page, desk, "sup")
    await expect(page.get_by_role("heading", name="班长监控", exact=True)).to_be_visible()
    await expect(page.locator("#agent-view")).to_be_hidden()
    waiting = page.locator("#m-waiting")
    await expect(waiting).to_have_text("0")
    await expect(page.locator("#agents")).to_have_text("暂无签入坐席")
    await expect(page.locator("#conn")).to_have_text(re.compile("已连接"), timeout=LIVE)

    agent = next(a for a in desk.store.list_agents() if a.agent_id == A2)
    await desk.queue.agent_login(agent, now_ms())
    row = page.locator("#agents tr[data-agent='a2']")
    await expect(row.locator("td.state")).to_have_text("空闲", timeout=LIVE)
    await expect(row).to_contain_text("李娜", timeout=LIVE)

    for n, caller in enumerate(["13800000001", "13800000002"], 1):
        await desk.queue.enqueue(CallId(f"c-board-{n}"), W1, caller, now_ms())
        await desk.bus.publish(events.CALL_QUEUED, {"call_id": f"c-board-{n}", "caller": caller, "worker_id": W1})
        await expect(waiting).to_have_text(str(n), timeout=LIVE)
    await desk.queue.agent_pause(A2, "培训", now_ms())
    await expect(row.locator("td.state")).to_have_text("小休（培训）", timeout=LIVE)
    await expect(page.locator("#m-answer-rate")).to_have_text("—")
    await expect(page.locator("#chart svg polyline")).to_have_count(1)
    await expect(page.locator("#chart-summary")).to_contain_text("当前排队 2 人")
    await expect(page.locator("#topics-status")).not_to_have_text("加载中…")
    await desk.bus.publish(events.ALERT, {"alert": "dispatch-stalled", "details": "no dispatcher for 30 s"})
    await expect(page.locator("#alerts")).to_contain_text("派单停滞", timeout=LIVE)
    await shots.take(page, "wallboard")


async def test_with_sign_in_off_the_page_opens_as_an_admin(
    page: Page, client: redis.asyncio.Redis, store: SqlTicketStore
) -> None:
    """api.auth: false (tests and a closed lab): no sign-in form, the wallboard at once."""
    desk = Desk(client, store, sign_in=False)
    await desk.start()
    try:
        await page.goto(f"{desk.url}/")
        await expect(page.get_by_role("heading", name="班长监控", exact=True)).to_be_visible()
        await expect(page.locator("#login-view")).to_be_hidden()
        await expect(page.locator("#who")).to_have_text("未启用登录（管理员）")
        await expect(page.locator("#conn")).to_have_text(re.compile("已连接"), timeout=LIVE)
        await desk.queue.enqueue(CallId("c-open"), W1, "13800000009", now_ms())
        await desk.bus.publish(events.CALL_QUEUED, {"call_id": "c-open", "caller": "13800000009", "worker_id": W1})
        await expect(page.locator("#m-waiting")).to_have_text("1", timeout=LIVE)
    finally:
        await desk.stop()


async def test_keyboard_alone_signs_in_and_changes_state(page: Page, desk: Desk, shots: Shots) -> None:
    await page.goto(f"{desk.url}/desk/")
    await expect(page.get_by_label("用户名")).to_be_focused()
    assert await visible_focus(page) == "login-user"
    await page.keyboard.type("agent1")
    await page.keyboard.press("Tab")
    assert await visible_focus(page) == "login-password"
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    state = page.locator("#state-label")
    await expect(state).to_have_text("已签出")
    await expect(page.locator("#agent-title")).to_be_focused()
    # Every control in a sensible Tab order, each with a visible focus ring.
    walked = []
    for _ in range(len(TAB_ORDER)):
        await page.keyboard.press("Tab")
        walked.append(await visible_focus(page))
    assert walked == TAB_ORDER
    # On round the page (skip link, 退出登录, ...) and back to 签入.
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await visible_focus(page) == "btn-login":
            break
    assert await visible_focus(page) == "btn-login"
    await page.keyboard.press("Enter")
    await expect(state).to_have_text("空闲")
    assert await visible_focus(page) == "btn-logout"  # the focus moved on from the disabled 签入
    await page.keyboard.press("Alt+2")
    await expect(state).to_have_text("小休")
    await expect(page.locator("#state-reason")).to_have_text("（休息）")
    await page.keyboard.press("Alt+1")
    await expect(state).to_have_text("空闲")
    # A reason picked from the keyboard: Tab to the list, arrow down, Tab on to 小休.
    for expected in ("pause-reason",):
        while (await visible_focus(page)) != expected:
            await page.keyboard.press("Tab")
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("Tab")
    assert await visible_focus(page) == "btn-pause"
    await page.keyboard.press("Enter")
    await expect(page.locator("#state-reason")).to_have_text("（用餐）")
    await page.keyboard.press("Alt+3")  # not in wrap-up: refused, and said so
    await expect(page.locator("#state-error")).to_have_text("当前状态下不能话后处理结束")
    await page.keyboard.press("Alt+W")
    assert await visible_focus(page) == "f-kind"
    await shots.take(page, "keyboard")
    await page.keyboard.press("Alt+1")
    await expect(state).to_have_text("空闲")
