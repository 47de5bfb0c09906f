"""The agent's call panel in headless Chromium: how long the ringing caller has waited (queued,
then ringing), ticking live and frozen once answered; and the knowledge base's answers the speech
service matched to what the caller said, listed with their scores, the answer opened from the
keyboard.

The offer comes from a real dispatch, the matches from the real knowledge base (config/knowledge)
and the draft from the real intake, published on the real event bus as the speech service does.
Waits are Playwright's polling assertions, never sleeps.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Page, expect

from hotline.asr.intake import Intake, load_lexicon
from hotline.asr.knowledge import KnowledgeBase
from hotline.core import events
from hotline.core.model import CallId
from tests.browser.desk import Desk, Shots, now_ms, sign_in
from tests.browser.test_desk_page import A1, LEXICON, LIVE, W1, offer_a_call

KNOWLEDGE = Path(__file__).resolve().parents[2] / "config" / "knowledge"
SAID = "我想问一下社保卡丢了怎么补办"


def seconds(shown: str) -> int:
    """00:01:35 or 01:35 (app.js duration) in seconds."""
    found = re.match(r"^(?:(\d+):)?(\d\d):(\d\d)", shown)
    assert found is not None, shown
    hours, minutes, secs = found.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(secs)


async def signed_in_available(page: Page, desk: Desk) -> None:
    await sign_in(page, desk, "agent1")
    await page.get_by_role("button", name="签入").click()
    await expect(page.locator("#state-label")).to_have_text("空闲")


async def test_the_ringing_panel_shows_how_long_the_caller_has_waited(page: Page, desk: Desk, shots: Shots) -> None:
    await signed_in_available(page, desk)
    # The caller has queued for 95 s when the agent's phone starts to ring.
    await desk.queue.enqueue(CallId("c-wait-1"), W1, "13800138000", now_ms() - 95_000)
    await desk.bus.publish(events.CALL_QUEUED, {"call_id": "c-wait-1", "caller": "13800138000", "worker_id": W1})
    offer = await desk.queue.dispatch_once(now_ms(), 60_000)
    assert offer is not None and offer.agent_id == A1
    await expect(page.locator("#state-label")).to_have_text("振铃中", timeout=LIVE)
    waited = page.locator("#call-waited")
    await expect(waited).to_have_text(re.compile(r"^01:3\d（含排队和振铃）$"), timeout=LIVE)
    await expect(page.locator("#call-wait")).to_have_text(re.compile(r"^振铃 00:\d\d$"))  # the ring alone
    # The masked number comes with the offer (GET /queue's offered calls).
    await expect(page.locator("#call-caller")).to_have_text("138****8000")
    assert "13800138000" not in await page.locator("#call-panel").inner_text()
    first = await waited.inner_text()
    await expect(waited).not_to_have_text(first, timeout=LIVE)  # it ticks
    assert seconds(await waited.inner_text()) > seconds(first)
    await shots.take(page, "ringing-wait")

    # Answered: the wait is over and stays what it was.
    assert await desk.queue.offer_answered(offer.offer_id, now_ms())
    await expect(page.locator("#state-label")).to_have_text("通话中", timeout=LIVE)
    await expect(waited).to_have_text(re.compile(r"^01:\d\d（已结束等待）$"))
    frozen = await waited.inner_text()
    await expect(page.locator("#state-timer")).not_to_have_text(
        await page.locator("#state-timer").inner_text(), timeout=LIVE
    )  # a second has gone by on the page
    assert await waited.inner_text() == frozen


async def test_a_just_queued_callers_wait_grows_from_zero(page: Page, desk: Desk) -> None:
    await signed_in_available(page, desk)
    await offer_a_call(desk, "c-wait-2", "13900139000")
    waited = page.locator("#call-waited")
    await expect(waited).to_have_text(re.compile(r"^00:0\d（含排队和振铃）$"), timeout=LIVE)
    first = seconds(await waited.inner_text())
    await expect(waited).not_to_have_text(re.compile(rf"^00:0{first}（"), timeout=LIVE)
    assert seconds(await waited.inner_text()) > first


async def test_knowledge_base_matches_are_listed_and_open_from_the_keyboard(
    page: Page, desk: Desk, shots: Shots
) -> None:
    matches = [m.to_dict() for m in KnowledgeBase.load(KNOWLEDGE).match(SAID, top_k=3)]
    assert len(matches) >= 2 and matches[0]["entry_id"] == "si-card-lost"  # what the speech service finds
    await signed_in_available(page, desk)
    kb = page.locator("#kb-list")
    await expect(kb).to_have_text("（暂无匹配）")
    await offer_a_call(desk, "c-kb-1", "13800138001")
    await expect(page.locator("#state-label")).to_have_text("振铃中", timeout=LIVE)
    draft = {**Intake(load_lexicon(LEXICON)).draft(SAID).to_dict(), "kb": matches}
    await desk.bus.publish(events.CALL_DRAFT, {"call_id": "c-kb-1", "text": SAID, "final": False, "draft": draft})
    items = kb.locator("li")
    await expect(items).to_have_count(len(matches), timeout=LIVE)
    for n, match in enumerate(matches):
        score = round(match["score"] * 100)
        await expect(items.nth(n).locator("summary")).to_have_text(f"{match['topic']}（匹配度 {score}%）")
    answer = items.first.get_by_text(matches[0]["answer"])
    await expect(answer).to_be_hidden()
    # From the keyboard: the first match's summary takes the focus, Enter opens its answer.
    await items.first.locator("summary").focus()
    await page.keyboard.press("Enter")
    await expect(answer).to_be_visible()
    await shots.take(page, "kb-matches")

    # A newer text that matches nothing clears the list; one that matches again fills it.
    other = {**Intake(load_lexicon(LEXICON)).draft("你好").to_dict(), "kb": []}
    await desk.bus.publish(events.CALL_DRAFT, {"call_id": "c-kb-1", "text": "你好", "final": False, "draft": other})
    await expect(kb).to_have_text("（暂无匹配）", timeout=LIVE)
    await desk.bus.publish(events.CALL_DRAFT, {"call_id": "c-kb-1", "text": SAID, "final": True, "draft": draft})
    await expect(items).to_have_count(len(matches), timeout=LIVE)
