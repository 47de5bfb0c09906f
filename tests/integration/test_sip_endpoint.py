"""The pjsua2 endpoint against real sipp callers: one regression test per PJSUA2.md pitfall."""

from __future__ import annotations

import asyncio
import resource
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hotline.core.errors import ConfigError
from hotline.sip.endpoint import SipEndpoint, compiled_call_limit
from hotline.sip.events import (
    CallRejected,
    DtmfReceived,
    IncomingCall,
    LegState,
    LegStateChanged,
    MediaReady,
    SipEvent,
    SipSettings,
)
from tests.e2e.audio import best_correlation, read_wav_mono, to_telephone_wav
from tests.support import free_port, free_udp_tcp_port, mandarin_clip, until_async

SIPP_DIR = Path(__file__).parent.parent / "sipp"
CLIP = mandarin_clip("funasr_asr_example_b")


class Driver:
    """Answers every call and records the caller's leg: what a worker does, minus the queue."""

    def __init__(self, tmp: Path, answer: bool = True) -> None:
        self.tmp = tmp
        self.answer = answer
        self.events: list[SipEvent] = []
        self.ep: SipEndpoint | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def on_event(self, event: SipEvent) -> None:
        self.events.append(event)
        if isinstance(event, IncomingCall) and self.answer:
            task = asyncio.ensure_future(self._answer(event))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _answer(self, event: IncomingCall) -> None:
        assert self.ep is not None
        await self.ep.answer(event.leg_id)
        await self.ep.record(event.leg_id, str(self.tmp / f"{event.leg_id}.wav"))

    def of(self, kind: type) -> list[SipEvent]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[Callable[..., SipEndpoint]]:
    started: list[SipEndpoint] = []

    def start(driver: Driver, **kw: object) -> SipEndpoint:
        settings = SipSettings(port=free_udp_tcp_port(), log_file=str(tmp_path / "pj.log"), **kw)  # type: ignore[arg-type]
        ep = SipEndpoint(settings, asyncio.get_running_loop(), driver.on_event)
        driver.ep = ep
        ep.start()
        started.append(ep)
        return ep

    yield start
    for ep in started:
        await asyncio.to_thread(ep.stop)


async def sipp(
    scenario: str, port: int, cwd: Path, *, calls: int = 1, rate: int = 10, limit: int = 10, talk_ms: int = 1000
) -> subprocess.CompletedProcess[bytes]:
    binary = shutil.which("sipp")
    assert binary, "sipp missing: apt-get install sip-tester (make test installs it)"
    args = [
        binary, "-sf", str(SIPP_DIR / scenario), "-s", "12345", f"127.0.0.1:{port}",
        "-i", "127.0.0.1", "-p", str(free_port(2)), "-mp", str(free_port(2)),
        "-m", str(calls), "-r", str(rate), "-l", str(limit), "-d", str(talk_ms),
        "-timeout", "60s", "-timeout_error", "-nostdin", "-trace_err", "-trace_stat",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return subprocess.CompletedProcess(args, proc.returncode, out, b"")


def sipp_errors(cwd: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-2000:] for p in cwd.glob("*_errors.log"))


async def test_dtmf_both_methods_recording_and_reinvite(endpoint: Callable[..., SipEndpoint], tmp_path: Path) -> None:
    to_telephone_wav(CLIP, tmp_path / "speech.wav", encoding="u-law")
    driver = Driver(tmp_path)
    ep = endpoint(driver)
    result = await sipp("ep_caller.xml", ep.settings.port, tmp_path, talk_ms=6500)
    assert result.returncode == 0, sipp_errors(tmp_path)
    await until_async(lambda: _async(bool(driver.of(LegStateChanged)) and ep.active_legs == 0), timeout=10)
    digits = [(e.digit, e.method) for e in driver.of(DtmfReceived)]  # type: ignore[attr-defined]
    assert ("5", "rfc4733") in digits
    assert ("7", "sip-info") in digits
    # onCallMediaState fires again on each re-INVITE: reported once, rewired each time.
    assert len(driver.of(MediaReady)) == 1
    (incoming,) = driver.of(IncomingCall)
    assert isinstance(incoming, IncomingCall)
    assert incoming.caller == "13800138000" and incoming.callee == "12345"
    # The recording holds the caller's speech before the hold and again after it.
    recording, rate = read_wav_mono(tmp_path / f"{incoming.leg_id}.wav")
    clip, clip_rate = read_wav_mono(tmp_path / "speech.wav")
    assert rate == clip_rate == 8000
    half = len(recording) // 2
    first, _ = best_correlation(clip, recording[:half], rate)
    second, _ = best_correlation(clip, recording[half:], rate)
    print(f"caller speech in recording: before hold {first:.3f}, after re-INVITEs {second:.3f}")
    assert first > 0.8
    assert second > 0.8


async def test_admission_limit_answers_503(endpoint: Callable[..., SipEndpoint], tmp_path: Path) -> None:
    driver = Driver(tmp_path)
    ep = endpoint(driver, max_calls=3)
    result = await sipp("ep_short_call.xml", ep.settings.port, tmp_path, calls=5, rate=50, limit=5, talk_ms=3000)
    assert result.returncode != 0  # the calls over the limit failed, as they must
    await until_async(lambda: _async(ep.active_legs == 0), timeout=10)
    assert len(driver.of(IncomingCall)) == 3
    assert len(driver.of(CallRejected)) == 2
    assert "503" in sipp_errors(tmp_path)


async def test_many_short_calls_reuse_ids_without_stray_hangups(
    endpoint: Callable[..., SipEndpoint], tmp_path: Path
) -> None:
    """A late-destroyed Call would hang up the new call that reused its pjsua id (PJSUA2.md)."""
    driver = Driver(tmp_path)
    ep = endpoint(driver, max_calls=50)
    result = await sipp("ep_short_call.xml", ep.settings.port, tmp_path, calls=120, rate=40, limit=30, talk_ms=300)
    assert result.returncode == 0, sipp_errors(tmp_path)
    await until_async(lambda: _async(ep.active_legs == 0), timeout=10)
    ends = [e for e in driver.of(LegStateChanged) if e.state == LegState.DISCONNECTED]  # type: ignore[attr-defined]
    assert len(driver.of(IncomingCall)) == 120
    assert len(ends) == 120
    assert all(e.by_remote for e in ends), [e for e in ends if not e.by_remote]  # type: ignore[attr-defined]


async def test_shutdown_with_live_calls_sends_bye(endpoint: Callable[..., SipEndpoint], tmp_path: Path) -> None:
    driver = Driver(tmp_path)
    ep = endpoint(driver)
    run = asyncio.create_task(sipp("ep_short_call.xml", ep.settings.port, tmp_path, calls=3, talk_ms=30000))
    await until_async(lambda: _async(len(driver.of(MediaReady)) == 3), timeout=15)
    await asyncio.to_thread(ep.stop)
    result = await asyncio.wait_for(run, 30)
    # sipp expected to send BYE itself; receiving ours instead ends its calls as unexpected.
    assert "BYE" in sipp_errors(tmp_path)
    assert result.returncode != 0
    assert ep.active_legs == 0


def test_refuses_a_build_with_fewer_call_slots_than_the_admission_limit() -> None:
    slots = compiled_call_limit()
    assert slots >= 1024, "make pjsua2 builds 1,024 call slots; the PyPI wheels have 4"
    loop = asyncio.new_event_loop()
    try:
        ep = SipEndpoint(SipSettings(port=free_udp_tcp_port(), max_calls=slots + 1), loop, lambda e: None)
        with pytest.raises(ConfigError, match="calls per process"):
            ep.start()
    finally:
        loop.close()


async def test_raises_the_open_file_limit(endpoint: Callable[..., SipEndpoint], tmp_path: Path) -> None:
    endpoint(Driver(tmp_path), max_calls=300)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= 4 * 300 + 256


def test_build_disables_local_host_resolution() -> None:
    """Without it every call resolves the host name; a host missing from /etc/hosts stalls 5 s."""
    import pjsua2

    config_site = Path(pjsua2.__file__).parent / "config_site.h"
    assert "#define PJ_GETHOSTIP_DISABLE_LOCAL_RESOLUTION 1" in config_site.read_text()


async def _async(value: object) -> object:
    return value


async def test_a_second_endpoint_in_the_same_process_takes_calls(
    endpoint: Callable[..., SipEndpoint], tmp_path: Path
) -> None:
    """pjsua is a process singleton and pjsua2 2.12's Account destructor deletes whatever account
    has its id: an old Account destroyed late (cyclic GC) used to kill the new one (480s)."""
    import gc

    first = Driver(tmp_path)
    ep1 = endpoint(first)
    assert (await sipp("ep_short_call.xml", ep1.settings.port, tmp_path, talk_ms=200)).returncode == 0
    await asyncio.to_thread(ep1.stop)
    second = Driver(tmp_path)
    ep2 = endpoint(second)
    gc.collect()  # what would destroy late-collected pj objects of the first endpoint
    result = await sipp("ep_short_call.xml", ep2.settings.port, tmp_path, calls=3, talk_ms=200)
    assert result.returncode == 0, sipp_errors(tmp_path)
    assert len(second.of(IncomingCall)) == 3
