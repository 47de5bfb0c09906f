"""The agent desktop page on the whole product, as its users see it: `hotline serve` (Kamailio,
a media worker, Redis, the API with sign-in on, the speech service), a citizen calling 12345
(sipp through Kamailio, saying a real Mandarin clip), two agents on baresip softphones and a
supervisor, each in a browser context of his own (headless Chromium), signed in through the
page's form.

The story: both agents sign in and take a break; the citizen calls and waits (the supervisor's
wallboard counts him); agent 1 becomes available, the call rings on his softphone and the page
pops it with the live transcript; he answers on the phone, then transfers the call to agent 2
with the page's 转接 control; agent 2's phone rings (he is held for it: 小休（转接通话）) and he
answers. The queue then gives him the call as if he had answered an offer of it: his page pops
it (transcript, draft), his state buttons are disabled while he talks, and agent 1's page lets
go of it (通话已转接给坐席 …, no form for it: agent 1 wraps up without a ticket). Agent 2 hangs
up, wraps up on his page (the form pre-filled from the draft) and files the 工单, which the call
record, naming him as the call's agent, allows. The supervisor's wallboard follows every step
(agent 2 通话中, then 话后处理, his answered count and talk time). Screenshots of the three
pages at each step go to var/test-artifacts/browser/.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Dialog, Page, expect

from tests.browser.desk import Shots
from tests.e2e.conftest import AGENT_CLIP, CALLER_CLIP
from tests.e2e.peers import BaresipAgent, sipp_ulaw_file, start_sipp, write_caller_scenario
from tests.e2e.service import REPO, Service
from tests.e2e.test_survey_e2e import Desk as ApiSession
from tests.support import free_port, mandarin_clip, until

pytestmark = pytest.mark.e2e

PASSWORD = "e2e-口令-1234"  # what tests.e2e.test_survey_e2e.Desk signs in with
CITIZEN = "13700000077"
A1, A2 = "1001", "1002"
LIVE = 15_000  # ms: how long a live update (event, then a REST read) may take to show
CALL = 60_000  # ms: a SIP step through Kamailio and the worker on a loaded machine
# Words of the caller's clip (欢迎大家来体验达摩院推出的语音识别模型), simplified or traditional as
# Whisper may write them: the live transcript must hold at least one.
HEARD = re.compile("欢迎|歡迎|大家|体验|體驗|达摩|達摩|推出|语音|語音|识别|識別|模型")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """`hotline serve` with sign-in and speech recognition on, one media worker. The ring lasts
    long enough for the transcript to show before the agent answers; wrap-up lasts until the
    agent ends it, so that the call stays his while he files the ticket."""
    svc = Service(
        tmp_path / "svc",
        workers=1,
        api={"auth": True},
        asr={"enabled": True},
        queue={"ring_timeout_s": 90, "wrap_up_s": 600},
    )
    try:
        svc.start()
        yield svc
    finally:
        svc.stop()


def cli(svc: Service, *args: str) -> str:
    env = svc.env() | {"E2E_PASSWORD": PASSWORD}
    result = subprocess.run(
        [sys.executable, "-m", "hotline", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class Pages:
    """Browser contexts of their own (one person each), every page failing the test on a script
    error or a Content-Security-Policy violation, as tests/browser/conftest.py's `page`."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.problems: list[str] = []
        self._contexts: list[Any] = []

    async def open(self, who: str) -> Page:
        context = await self.browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
        self._contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: self.problems.append(f"{who}: script error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.problems.append(f"{who}: console: {msg.text}") if "Content Security Policy" in msg.text else None
            ),
        )
        return page

    async def close(self) -> None:
        for context in self._contexts:
            await context.close()


@pytest.fixture
async def pages(browser: Browser) -> AsyncIterator[Pages]:
    opened = Pages(browser)
    yield opened
    await opened.close()
    assert opened.problems == []


async def sign_in(page: Page, svc: Service, username: str) -> None:
    """Signs in through the page's form at /desk/, as a person would."""
    await page.goto(f"http://127.0.0.1:{svc.http_port}/desk/")
    await page.get_by_label("用户名").fill(username)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await expect(page.locator("#conn")).to_have_text(re.compile("已连接"), timeout=LIVE)


async def snap(shots: Shots, step: str, **pages: Page) -> None:
    for who, page in pages.items():
        await shots.take(page, f"{step}-{who}")


def board_state(board: Page, agent_id: str) -> Any:
    return board.locator(f"#agents tr[data-agent='{agent_id}'] td.state")


@pytest.mark.timeout(600)
async def test_a_real_call_from_screen_pop_through_transfer_to_the_ticket(
    service: Service, pages: Pages, shots: Shots, tmp_path: Path
) -> None:
    svc = service
    phones = {
        agent_id: BaresipAgent(
            tmp_path / f"phone-{agent_id}",
            user=agent_id,
            registrar=("127.0.0.1", svc.sip_port),
            play_wav=mandarin_clip(clip),
            answermode="manual",  # the agent answers himself (ctrl_tcp accept)
        )
        for agent_id, clip in ((A1, AGENT_CLIP), (A2, "paddlespeech_zh"))
    }
    caller_dir = tmp_path / "caller"
    caller_dir.mkdir()
    speech = sipp_ulaw_file(mandarin_clip(CALLER_CLIP), caller_dir / "caller.ulaw")
    scenario = write_caller_scenario(
        caller_dir / "caller.xml",
        caller_number=CITIZEN,
        speech=speech.name,
        speech_loops=-1,  # he goes on talking: the speech service hears him all along
        digits="5",  # skips the greeting: he then waits in the queue, talking
        pre_dtmf_ms=500,
        who_hangs_up="callee",
        bye_timeout_ms=300_000,
    )
    with contextlib.ExitStack() as stack:
        for phone in phones.values():
            phone.start()  # registered with Kamailio before its agent signs in
            stack.callback(phone.stop)
        cli(svc, "agents", "add", A1, "--name", "张伟", "--extension", A1)
        cli(svc, "agents", "add", A2, "--name", "李娜", "--extension", A2)
        for username, role, extra in (
            ("zhangwei", "agent", ["--agent", A1]),
            ("lina", "agent", ["--agent", A2]),
            ("banzhang", "supervisor", []),
        ):
            cli(svc, "accounts", "add", username, "--role", role, *extra, "--password-env", "E2E_PASSWORD")
        await run_story(svc, pages, shots, phones, stack, scenario, caller_dir)


async def run_story(
    svc: Service,
    pages: Pages,
    shots: Shots,
    phones: dict[str, BaresipAgent],
    stack: contextlib.ExitStack,
    scenario: Path,
    caller_dir: Path,
) -> None:
    one, two, board = await pages.open("agent1"), await pages.open("agent2"), await pages.open("supervisor")
    await sign_in(board, svc, "banzhang")
    await expect(board.get_by_role("heading", name="班长监控", exact=True)).to_be_visible()
    waiting = board.locator("#m-waiting")
    await expect(waiting).to_have_text("0")

    # 1. Both agents sign in and take a break: the caller will have to wait.
    for page, username, agent_id in ((one, "zhangwei", A1), (two, "lina", A2)):
        await sign_in(page, svc, username)
        state = page.locator("#state-label")
        await expect(state).to_have_text("已签出")
        await page.get_by_role("button", name="签入").click()
        await expect(state).to_have_text("空闲", timeout=LIVE)
        await expect(board_state(board, agent_id)).to_have_text("空闲", timeout=LIVE)
        await page.get_by_role("button", name="小休").click()
        await expect(state).to_have_text("小休", timeout=LIVE)
        await expect(board_state(board, agent_id)).to_have_text("小休（休息）", timeout=LIVE)
    await snap(shots, "1-signed-in", agent1=one, agent2=two, supervisor=board)

    # 2. The citizen calls 12345 and waits in the queue: the wallboard counts him.
    sipp = stack.enter_context(
        start_sipp(scenario, ("127.0.0.1", svc.sip_port), free_port(2), free_port(2), caller_dir, timeout_s=400)
    )
    await expect(waiting).to_have_text("1", timeout=CALL)
    await expect(board.locator("#chart-summary")).to_contain_text("当前排队 1 人", timeout=LIVE)
    await snap(shots, "2-caller-waiting", supervisor=board)

    # 3. Agent 1 becomes available: the call rings on his phone and pops on his page, with what
    # the caller says as the speech service hears it.
    state1, state2 = one.locator("#state-label"), two.locator("#state-label")
    await one.get_by_role("button", name="空闲").click()
    await expect(state1).to_have_text("振铃中", timeout=CALL)
    await asyncio.to_thread(phones[A1].wait_event, "CALL_INCOMING", 30.0)
    await expect(one.locator("#call-announce")).to_have_text("来电：137****0077，请在话机上接听", timeout=LIVE)
    await expect(one.locator("#call-caller")).to_have_text("137****0077")
    call_id = (await one.locator("#call-id").inner_text()).strip()
    assert call_id and call_id != "—", call_id
    await expect(board_state(board, A1)).to_have_text("振铃中", timeout=LIVE)
    await expect(waiting).to_have_text("0", timeout=LIVE)
    transcript = one.locator("#transcript")
    await expect(transcript).to_have_text(HEARD, timeout=CALL)
    heard = await transcript.inner_text()
    print(f"\nlive transcript on agent 1's page: {heard}")
    assert CITIZEN not in await one.locator("#call-panel").inner_text()
    await expect(one.locator("#btn-transfer")).to_be_disabled()  # nothing to transfer before he answers
    await snap(shots, "3-screen-pop", agent1=one, supervisor=board)

    # 4. He answers on his softphone.
    accepted = await asyncio.to_thread(phones[A1].command, "accept")
    assert accepted.get("ok"), accepted
    await asyncio.to_thread(phones[A1].wait_event, "CALL_ESTABLISHED", 20.0)
    await expect(state1).to_have_text("通话中", timeout=LIVE)
    await expect(one.locator("#call-announce")).to_have_text("通话中")
    await expect(board_state(board, A1)).to_have_text("通话中", timeout=LIVE)
    await expect(one.locator("#btn-transfer")).to_be_enabled()
    await snap(shots, "4-talking", agent1=one, supervisor=board)

    # 5. Agent 2 comes back from his break; agent 1 transfers the call to him with the page's
    # 转接 control (blind, to an agent by his number); agent 2's phone rings and he answers.
    await two.get_by_role("button", name="空闲").click()
    await expect(state2).to_have_text("空闲", timeout=LIVE)
    await expect(board_state(board, A2)).to_have_text("空闲", timeout=LIVE)
    asked: list[str] = []

    async def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept(A2)

    one.once("dialog", answer)
    async with one.expect_request(f"{svc.api}/calls/{call_id}/transfer") as sent:
        await one.get_by_role("button", name="转接").click()
    assert (await sent.value).post_data_json == {"target": f"agent:{A2}", "mode": "blind"}
    assert asked == ["转接给坐席（盲转），请输入对方工号："]
    await expect(one.locator("#record-status")).to_have_text(f"已转接给坐席 {A2}，等待对方接听", timeout=LIVE)
    await expect(state2).to_have_text("小休", timeout=LIVE)  # held for the transfer: no other call
    await expect(two.locator("#state-reason")).to_have_text("（转接通话）")
    await expect(board_state(board, A2)).to_have_text("小休（转接通话）", timeout=LIVE)
    await asyncio.to_thread(phones[A2].wait_event, "CALL_INCOMING", 30.0)
    await snap(shots, "5-transfer-ringing", agent1=one, agent2=two, supervisor=board)
    accepted = await asyncio.to_thread(phones[A2].command, "accept")
    assert accepted.get("ok"), accepted
    await asyncio.to_thread(phones[A2].wait_event, "CALL_ESTABLISHED", 20.0)
    await asyncio.to_thread(phones[A1].wait_event, "CALL_CLOSED", 30.0)  # agent 1's leg released
    # Agent 2 has the call: on his page as an answered offer, on the wallboard as 通话中.
    await expect(state2).to_have_text("通话中", timeout=LIVE)
    await expect(two.locator("#state-reason")).to_have_text("")
    await expect(two.locator("#call-announce")).to_have_text("通话中")
    await expect(two.locator("#call-id")).to_have_text(call_id)
    await expect(two.locator("#transcript")).to_have_text(HEARD, timeout=CALL)
    for name in ("空闲 Alt+1", "小休 Alt+2"):  # he cannot make himself available mid-call
        await expect(two.get_by_role("button", name=name, exact=True)).to_be_disabled()
    await expect(board_state(board, A2)).to_have_text("通话中", timeout=LIVE)
    # Agent 1 wraps up without the call: his page says where it went and offers no form for it.
    handed = f"已转接给坐席 {A2}"
    await expect(state1).to_have_text("话后处理", timeout=LIVE)
    await expect(one.locator("#state-reason")).to_have_text(f"（{handed}）")
    await expect(one.locator("#call-announce")).to_have_text(f"通话已转接给坐席 {A2}，工单由该坐席提交")
    await expect(one.locator("#call-facts")).to_be_hidden()
    await expect(one.get_by_label("诉求内容")).to_have_value("")
    await expect(one.locator("#form-status")).to_have_text(f"该通话已转接给坐席 {A2}，本页不再为其提交工单")
    await expect(board_state(board, A1)).to_have_text(f"话后处理（{handed}）", timeout=LIVE)
    await snap(shots, "6-transferred", agent1=one, agent2=two, supervisor=board)
    await expect(one.locator("#btn-transfer")).to_be_disabled()  # the call is no longer his
    await one.get_by_role("button", name="话后处理结束").click()
    await expect(state1).to_have_text("空闲", timeout=LIVE)
    await expect(board_state(board, A1)).to_have_text("空闲", timeout=LIVE)
    await expect(one.locator("#call-announce")).to_have_text("暂无来电")  # ready for his next call

    # 6. Agent 2 ends the call on his phone: the caller is gone, he wraps up on his page.
    hung_up = await asyncio.to_thread(phones[A2].command, "hangup")
    assert hung_up.get("ok"), hung_up
    await asyncio.to_thread(sipp.wait)
    await expect(state2).to_have_text("话后处理", timeout=LIVE)
    await expect(two.locator("#call-announce")).to_contain_text("请核对并提交工单", timeout=LIVE)
    await expect(board_state(board, A2)).to_have_text("话后处理", timeout=LIVE)
    await expect(board.locator("#m-answered")).to_have_text("1 / 0", timeout=LIVE)
    row = board.locator(f"#agents tr[data-agent='{A2}'] td")
    await expect(row.nth(4)).to_have_text("1", timeout=LIVE)  # answered: the transferred call counts
    await expect(row.nth(5)).not_to_have_text("00:00", timeout=LIVE)  # and his talk time
    await snap(shots, "7-wrap-up", agent1=one, agent2=two, supervisor=board)

    # 7. The wrap-up: the form is pre-filled from the draft; agent 2 completes it and submits.
    content = two.get_by_label("诉求内容")
    await expect(content).to_have_value(HEARD, timeout=LIVE)
    said = (await content.input_value()).strip().rstrip("。")
    text = f"来电人反映：{said}。请相关单位核实处理。"
    await content.fill(text)  # the agent's own words: drafts no longer overwrite the field
    await two.get_by_label("诉求类型").select_option(label="咨询")
    await two.get_by_label("地点").fill("张店区人民西路3号楼")
    await two.get_by_label("同意回访").check()
    async with two.expect_request(f"{svc.api}/calls/{call_id}/ticket") as submitted:
        await two.keyboard.press("Alt+S")
    form = (await submitted.value).post_data_json
    assert isinstance(form, dict)
    assert (form["kind"], form["content"], form["place"]) == ("consultation", text, "张店区人民西路3号楼"), form
    status = two.locator("#form-status")
    await expect(status).to_have_text(re.compile(r"^工单已提交，编号 \S+$"), timeout=LIVE)
    number = (await status.inner_text()).removeprefix("工单已提交，编号 ").strip()
    await snap(shots, "8-ticket-filed", agent2=two)
    await two.get_by_role("button", name="话后处理结束").click()
    await expect(state2).to_have_text("空闲", timeout=LIVE)
    await expect(board_state(board, A2)).to_have_text("空闲", timeout=LIVE)
    await snap(shots, "9-done", agent1=one, agent2=two, supervisor=board)

    # The ticket holds the agent's words and the call, whose record names the agent who ended it.
    supervisor = ApiSession(svc, "banzhang")
    ticket = supervisor.ok("GET", f"/tickets/{number}")
    assert ticket["content"] == text and ticket["kind"] == "consultation", ticket
    assert call_id in [c["call_id"] for c in ticket["calls"]], ticket["calls"]
    record = until(lambda: _recorded(supervisor, call_id), timeout=20)
    assert isinstance(record, dict)
    assert record["agent_id"] == A2 and record["outcome"] == "answered", record
    assert f"transferred {A1} -> agent:{A2} (blind)" in record["reason"], record
    print(f"ticket {number} for call {call_id}: {ticket['content']}")


def _recorded(session: ApiSession, call_id: str) -> dict[str, Any] | None:
    status, record = session.call("GET", f"/calls/{call_id}")
    return record if status == 200 and isinstance(record, dict) else None
