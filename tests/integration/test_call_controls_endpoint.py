"""The pjsua2 endpoint's side of call controls, against real sipp callers: a recorder kept by a leg
(`keep_recorder`, the caller's leg keeping the agent channel) survives the legs that feed it
coming and going, so the next agent's leg joins the same file instead of re-creating (and
truncating) it; a recorder nobody keeps still closes with its last leg."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hotline.sip.endpoint import SipEndpoint
from hotline.sip.events import IncomingCall, LegState, LegStateChanged, SipEvent, SipSettings
from tests.e2e.audio import read_wav_mono
from tests.integration.test_sip_endpoint import sipp, sipp_errors
from tests.support import free_udp_tcp_port, until_async


class AgentsComeAndGo:
    """Answers three calls a second apart: the first ("agent 1") opens `agent.wav`, the second
    ("the caller") keeps it if `keep`, the third ("agent 2") joins it once the first has gone."""

    def __init__(self, tmp: Path, keep: bool) -> None:
        self.path = str(tmp / "agent.wav")
        self.keep = keep
        self.ep: SipEndpoint | None = None
        self.legs: list[str] = []
        self.gone: dict[str, float] = {}
        self.opened_at: float | None = None
        self.kept: bool | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def on_event(self, event: SipEvent) -> None:
        if isinstance(event, IncomingCall):
            self.legs.append(event.leg_id)
            task = asyncio.ensure_future(self._take(event.leg_id, len(self.legs)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif isinstance(event, LegStateChanged) and event.state == LegState.DISCONNECTED:
            self.gone[event.leg_id] = time.monotonic()

    async def _take(self, leg_id: str, nth: int) -> None:
        assert self.ep is not None
        await self.ep.answer(leg_id)
        if nth == 1:
            await self.ep.record(leg_id, self.path)
            self.opened_at = time.monotonic()
        elif nth == 2 and self.keep:
            await until_async(lambda: asyncio.sleep(0, self.opened_at is not None), timeout=10)
            self.kept = await self.ep.keep_recorder(leg_id, self.path)
        elif nth == 3:
            await until_async(lambda: asyncio.sleep(0, self.legs[0] in self.gone), timeout=10)
            await self.ep.record(leg_id, self.path)


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[Callable[[AgentsComeAndGo], SipEndpoint]]:
    started: list[SipEndpoint] = []

    def start(driver: AgentsComeAndGo) -> SipEndpoint:
        settings = SipSettings(port=free_udp_tcp_port(), log_file=str(tmp_path / "pj.log"), allow_dev_build=True)
        driver.ep = SipEndpoint(settings, asyncio.get_running_loop(), driver.on_event)
        driver.ep.start()
        started.append(driver.ep)
        return driver.ep

    yield start
    for ep in started:
        await asyncio.to_thread(ep.stop)


async def run_calls(driver: AgentsComeAndGo, ep: SipEndpoint, tmp_path: Path) -> tuple[float, float]:
    """(seconds the file was open: first record() to the last leg's end, seconds in the file)."""
    # Three calls a second apart, 3 s each: agent 1 is gone (3 s) before agent 2 joins.
    result = await sipp("ep_short_call.xml", ep.settings.port, tmp_path, calls=3, rate=1, limit=3, talk_ms=3000)
    assert result.returncode == 0, sipp_errors(tmp_path)
    await until_async(lambda: asyncio.sleep(0, len(driver.gone) == 3 and ep.active_legs == 0), timeout=10)
    assert driver.opened_at is not None
    open_s = max(driver.gone.values()) - driver.opened_at
    samples, rate = read_wav_mono(driver.path)
    return open_s, len(samples) / rate


async def test_a_kept_recorder_survives_its_first_leg_and_the_next_one_joins_the_file(
    endpoint: Callable[[AgentsComeAndGo], SipEndpoint], tmp_path: Path
) -> None:
    driver = AgentsComeAndGo(tmp_path, keep=True)
    ep = endpoint(driver)
    open_s, recorded_s = await run_calls(driver, ep, tmp_path)
    print(f"kept: open {open_s:.2f} s, file {recorded_s:.2f} s")
    assert driver.kept is True
    # One file from agent 1's record() to the end of the last leg keeping or feeding it.
    assert recorded_s > open_s - 0.5
    assert await ep.keep_recorder(driver.legs[0], driver.path) is False  # gone: nothing to keep


async def test_without_keeping_the_next_leg_re_creates_the_file(
    endpoint: Callable[[AgentsComeAndGo], SipEndpoint], tmp_path: Path
) -> None:
    driver = AgentsComeAndGo(tmp_path, keep=False)
    open_s, recorded_s = await run_calls(driver, endpoint(driver), tmp_path)
    print(f"not kept: open {open_s:.2f} s, file {recorded_s:.2f} s")
    # What the worker's agent channel suffered before call controls kept it: agent 1's part lost.
    assert recorded_s < open_s - 2.0
