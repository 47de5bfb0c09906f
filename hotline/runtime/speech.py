"""The speech service (`hotline speech`): what callers say becomes the draft of their ticket.

Rules of this module:
- it reads the event stream with its own consumer group (`speech`). A `call.queued` entry
  (or `survey.listening`: a 回访 call, whose answers may be spoken) starts following the
  caller's tap (the worker's growing recording of the caller's leg) in the recognition pool;
  `call.ended` tells the follow the call ended. Both entries are acknowledged
  only once the call's draft is saved, so a crash re-delivers them (pending entries are re-read
  at start-up and after Redis comes back) and the call is recognised again, from its tap if the
  call still goes on, else from its recording. Saving is idempotent by call id;
- every transcript, partial or final, runs through intake and the knowledge base: the draft is
  published as `call.draft`, and the call's worker gets `speech` (text, emergency, knowledge
  base hits) on its command stream;
- an emergency heard (intake's urgency level "emergency") raises the call to emergency priority
  in the queue, once per call, if the settings allow it;
- every queued call gets a draft row, whatever happens: no speech gives an empty transcript;
  a tap deleted before its follow opened it (the pool was busy) is replaced by the caller's
  channel of the stereo recording; a pool process that dies or a model that fails is logged,
  the pool is rebuilt, and the draft row says what went wrong in `draft["error"]`;
- ASR latency, for /metrics: how long after the caller said the words their text was published,
  i.e. (now - the tap's last write) + (audio in the tap - audio the text covers). The recorder
  writes in real time, so this is now minus the moment those words were spoken, whatever the
  pool's backlog; the final text's is the time since the caller hung up. Measured on an open
  descriptor of the tap (it survives the worker deleting the file) for texts from the tap only,
  and counted with one Redis transaction per published text.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import struct
import tempfile
import time
import wave
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hotline.asr.engines import Partial, Transcript
from hotline.asr.intake import Intake, Urgency
from hotline.asr.knowledge import KnowledgeBase
from hotline.asr.pool import Following
from hotline.core import events as ev
from hotline.core.errors import DomainError, Unavailable
from hotline.core.model import CallId, Priority, WorkerId

logger = logging.getLogger(__name__)

SPEECH_GROUP = "speech"
_PENDING_MAX = 10_000  # un-acknowledged entries re-read at once: about two per call in progress


class SpeechBus(Protocol):
    """What the speech service needs of hotline.queue.bus.RedisEventBus."""

    async def publish(self, kind: str, data: dict[str, Any]) -> str: ...
    async def send_command(self, worker_id: WorkerId, kind: str, data: dict[str, Any]) -> str: ...
    async def ensure_group(self, group: str) -> None: ...
    async def read_events(
        self, group: str, consumer: str, count: int, block_ms: int, pending: bool = False
    ) -> list[tuple[str, str, dict[str, Any]]]: ...
    async def ack(self, group: str, entry_id: str) -> None: ...


class PriorityQueue(Protocol):
    """What the speech service needs of hotline.queue.acd.RedisCallQueue."""

    async def set_priority(self, call_id: CallId, level: Priority) -> Priority | None: ...


class DraftStore(Protocol):
    """What the speech service needs of hotline.tickets.store.SqlTicketStore."""

    def save_call_draft(self, call_id: CallId, transcript: str, draft: dict[str, Any], engine: str) -> None: ...
    def get_call_draft(self, call_id: CallId) -> dict[str, Any] | None: ...


class LatencySink(Protocol):
    """What the speech service needs of hotline.queue.asr_latency.RedisAsrLatency."""

    async def record(self, latency_s: float) -> None: ...


class Recognition(Protocol):
    """What the speech service needs of hotline.asr.pool.RecognitionPool."""

    def follow(
        self,
        tap_path: str | Path,
        engine: str,
        *,
        on_partial: Callable[[Partial], None] | None = None,
        poll_s: float = 0.2,
        idle_timeout_s: float = 30.0,
    ) -> Following: ...
    def submit_file(self, path: str | Path, engine: str) -> Future[Transcript]: ...
    def start(self, timeout: float | None = None) -> set[int]: ...
    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class SpeechSettings:
    consumer: str = "speech-1"
    engine: str = "whisper"
    emergency_priority: bool = True
    kb_top_k: int = 3
    poll_s: float = 0.2  # how often a follow looks for new audio in the tap
    idle_timeout_s: float = 30.0  # a tap that has not grown this long: the call is over (its worker died)
    final_timeout_s: float = 600.0  # after the call ended, wait this long at most for the final transcript
    ended_timeout_s: float = 60.0  # a call.queued without a tap waits this long for its call.ended
    follow_attempts: int = 2  # a follow that failed mid-call starts again (from the tap's start) once
    scratch_dir: Path | None = None  # where the caller's channel of a recording is written (default: tmp)


@dataclasses.dataclass(eq=False)
class SpeechStats:
    drafts_saved: int = 0
    partials: int = 0
    errors: int = 0
    recognition_s: float = 0.0  # CPU-bound seconds the engines reported (Transcript.seconds_spent)
    audio_s: float = 0.0


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_FINAL = _Marker("final")  # the follow's result is ready
_ENDED = _Marker("ended")  # call.ended arrived


@dataclasses.dataclass(eq=False)
class _Call:
    call_id: CallId
    worker_id: WorkerId | None
    tap: str | None
    entries: list[str]
    updates: asyncio.Queue[Partial | _Marker] = dataclasses.field(default_factory=asyncio.Queue)
    ended: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    record: dict[str, Any] | None = None
    following: Following | None = None
    emergency_raised: bool = False
    last_text: str | None = None
    every_partial: bool = False  # a 回访 call: each utterance answers a question, none is skipped
    task: asyncio.Task[None] | None = None
    tap_clock: TapClock | None = None  # the tap, open for the latency measure


@dataclasses.dataclass(frozen=True, slots=True)
class _Outcome:
    text: str
    source: str  # "tap", "recording" or "none"
    audio_s: float
    error: str | None


class SpeechService:
    """Live recognition of queued calls, feeding their ticket drafts."""

    def __init__(
        self,
        settings: SpeechSettings,
        new_pool: Callable[[], Recognition],
        intake: Intake,
        knowledge: KnowledgeBase,
        bus: SpeechBus,
        queue: PriorityQueue,
        store: DraftStore,
        latency: LatencySink | None = None,
    ) -> None:
        self.settings = settings
        self.latency = latency
        self._new_pool = new_pool
        self.pool = new_pool()
        self.intake = intake
        self.knowledge = knowledge
        self.bus = bus
        self.queue = queue
        self.store = store
        self.stats = SpeechStats()
        self._calls: dict[CallId, _Call] = {}
        self._workers: dict[CallId, WorkerId] = {}  # from call.started, until the call ends

    # ------------------------------------------------------------ the stream
    async def run(self) -> None:
        """Reads the event stream until cancelled; survives Redis going away."""
        try:
            while True:
                try:
                    await self.bus.ensure_group(SPEECH_GROUP)
                    await self.step(block_ms=0, pending=True)
                    while True:
                        await self.step(block_ms=1000)
                except Unavailable as exc:
                    logger.warning("speech service: %s", exc)
                    await asyncio.sleep(1)
        finally:
            await self.close()

    async def step(self, block_ms: int = 1000, pending: bool = False) -> int:
        """Handles the next entries; returns how many. pending=True re-reads the entries given to
        this consumer before but not acknowledged (their calls' drafts are not saved yet)."""
        count = _PENDING_MAX if pending else 50
        entries = await self.bus.read_events(SPEECH_GROUP, self.settings.consumer, count, block_ms, pending)
        for entry_id, kind, data in entries:
            try:
                await self.handle(entry_id, kind, data)
            except Unavailable:
                raise
            except Exception:
                logger.exception("speech service: entry %s (%s) dropped", entry_id, kind)
                await self.bus.ack(SPEECH_GROUP, entry_id)
        return len(entries)

    async def handle(self, entry_id: str, kind: str, data: dict[str, Any]) -> None:
        call_id = CallId(str(data.get("call_id", "")))
        if kind == ev.CALL_STARTED and call_id:
            if data.get("worker_id"):
                self._workers[call_id] = WorkerId(str(data["worker_id"]))
                if len(self._workers) > 100_000:  # calls whose end this service never saw
                    self._workers.pop(next(iter(self._workers)))
        elif kind in (ev.CALL_QUEUED, ev.SURVEY_LISTENING) and call_id:
            await self._queued(entry_id, call_id, data, kind)
            return
        elif kind == ev.CALL_ENDED and call_id:
            await self._ended(entry_id, call_id, data)
            return
        await self.bus.ack(SPEECH_GROUP, entry_id)

    async def _queued(self, entry_id: str, call_id: CallId, data: dict[str, Any], kind: str) -> None:
        call = self._calls.get(call_id)
        if call is not None:  # delivered again (pending entries re-read after Redis came back)
            if entry_id not in call.entries:
                call.entries.append(entry_id)
            return
        if await self._has_draft(call_id):
            await self.bus.ack(SPEECH_GROUP, entry_id)
            return
        worker = data.get("worker_id") or self._workers.get(call_id)
        tap = str(data["tap"]) if data.get("tap") else None
        call = _Call(call_id, WorkerId(str(worker)) if worker else None, tap, [entry_id])
        call.every_partial = kind == ev.SURVEY_LISTENING
        self._calls[call_id] = call
        call.task = asyncio.create_task(self._run_call(call), name=f"speech-{call_id}")

    async def _ended(self, entry_id: str, call_id: CallId, data: dict[str, Any]) -> None:
        self._workers.pop(call_id, None)
        call = self._calls.get(call_id)
        if call is None:
            if data.get("queued_at") and data.get("recording_path") and not await self._has_draft(call_id):
                # Queued, but its call.queued was never seen (trimmed from the stream): the
                # recording is all there is.
                call = _Call(call_id, None, None, [entry_id], record=data)
                call.ended.set()
                self._calls[call_id] = call
                call.task = asyncio.create_task(self._run_call(call), name=f"speech-{call_id}")
                return
            await self.bus.ack(SPEECH_GROUP, entry_id)
            return
        if entry_id not in call.entries:
            call.entries.append(entry_id)
        if call.ended.is_set():
            return
        call.record = data
        call.ended.set()
        if call.following is not None:
            call.following.done()
        call.updates.put_nowait(_ENDED)

    async def _has_draft(self, call_id: CallId) -> bool:
        try:
            return await asyncio.to_thread(self.store.get_call_draft, call_id) is not None
        except Unavailable as exc:
            logger.warning("call %s: ticket store: %s", call_id, exc)
            return False

    async def close(self) -> None:
        """Stops following (entries not acknowledged come back at the next start) and the pool."""
        tasks = [c.task for c in self._calls.values() if c.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._calls.clear()
        await asyncio.to_thread(self.pool.close)

    # ------------------------------------------------------------ one call
    async def _run_call(self, call: _Call) -> None:
        try:
            outcome = await self._recognise(call)
        except asyncio.CancelledError:
            if call.tap_clock is not None:
                call.tap_clock.close()
            raise
        except Exception as exc:  # never lose the call: whatever failed, it gets a draft row
            logger.exception("call %s: recognition failed", call.call_id)
            outcome = _Outcome(call.last_text or "", "none", 0.0, f"recognition failed: {exc!r}")
        if outcome.error is not None:
            self.stats.errors += 1
            logger.error("call %s: %s", call.call_id, outcome.error)
        extra = {
            "engine": self.settings.engine,
            "source": outcome.source,
            "audio_s": round(outcome.audio_s, 2),
            "error": outcome.error,
        }
        heard = outcome.audio_s if outcome.source == "tap" else None
        try:
            draft = await self._on_text(call, outcome.text, final=True, extra=extra, audio_s=heard)
        finally:
            if call.tap_clock is not None:
                call.tap_clock.close()
        await self._save(call, outcome.text, draft)
        self._calls.pop(call.call_id, None)
        for entry_id in call.entries:
            try:
                await self.bus.ack(SPEECH_GROUP, entry_id)
            except Unavailable as exc:  # delivered again once Redis is back; the draft is saved
                logger.warning("call %s: ack: %s", call.call_id, exc)
                break

    async def _recognise(self, call: _Call) -> _Outcome:
        errors: list[str] = []
        attempts = 0
        while call.tap is not None and attempts < self.settings.follow_attempts:
            if (call.ended.is_set() or attempts) and not await asyncio.to_thread(os.path.exists, call.tap):
                break  # the worker merged and deleted the tap before a follow opened it
            attempts += 1
            pool = self.pool
            try:
                transcript = await self._follow(call, pool)
            except TimeoutError:
                waited = self.settings.final_timeout_s
                return _Outcome(call.last_text or "", "tap", 0.0, f"no final transcript {waited:.0f} s after the end")
            except Exception as exc:
                errors.append(f"following the tap failed: {exc!r}")
                await self._after_failure(exc, pool)
                continue
            self._count(transcript)
            if transcript.duration_s > 0:
                return _Outcome(transcript.text, "tap", transcript.duration_s, "; ".join(errors) or None)
            break  # the tap held nothing: it was gone when the follow started
        return await self._from_recording(call, errors)

    async def _follow(self, call: _Call, pool: Recognition) -> Transcript:
        assert call.tap is not None
        loop = asyncio.get_running_loop()

        def on_partial(partial: Partial) -> None:  # on the pool's dispatcher thread
            loop.call_soon_threadsafe(call.updates.put_nowait, partial)

        if call.tap_clock is None:
            call.tap_clock = await asyncio.to_thread(TapClock.open, call.tap)
        following = pool.follow(
            call.tap,
            self.settings.engine,
            on_partial=on_partial,
            poll_s=self.settings.poll_s,
            idle_timeout_s=self.settings.idle_timeout_s,
        )
        call.following = following
        if call.ended.is_set():
            following.done()
        result = asyncio.wrap_future(following.future)
        # Queued after every partial: the pool delivers them all before it resolves the future.
        # (Never cancelled: the pool resolves it, whatever happens here.)
        result.add_done_callback(lambda _: call.updates.put_nowait(_FINAL))
        deadline: float | None = None
        try:
            while True:
                if deadline is None and call.ended.is_set():
                    deadline = time.monotonic() + self.settings.final_timeout_s
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                items = [await asyncio.wait_for(call.updates.get(), timeout)]
                while not call.updates.empty():
                    items.append(call.updates.get_nowait())
                partials = [i for i in items if isinstance(i, Partial)]
                if partials:
                    self.stats.partials += len(partials)
                    # A queued call's draft only needs the newest text; a survey's answers are
                    # read utterance by utterance, so each one goes to the worker in turn.
                    for partial in partials if call.every_partial else partials[-1:]:
                        await self._on_text(call, partial.text, final=False, audio_s=partial.audio_s)
                if _FINAL in items:
                    return result.result()
        finally:
            call.following = None

    async def _from_recording(self, call: _Call, errors: list[str]) -> _Outcome:
        """The caller's channel of the call's recording, once the call has ended."""
        if not call.ended.is_set():
            try:
                await asyncio.wait_for(call.ended.wait(), self.settings.ended_timeout_s)
            except TimeoutError:
                errors.append("no call.ended for the call")
        recording = (call.record or {}).get("recording_path")
        if not recording or not await asyncio.to_thread(os.path.isfile, recording):
            errors.append("no recording to recognise")
            return _Outcome(call.last_text or "", "none", 0.0, "; ".join(errors))
        scratch = self.settings.scratch_dir
        if scratch is not None:
            scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="speech-", dir=scratch) as folder:
            pool = self.pool
            try:
                mono = await asyncio.to_thread(caller_channel, Path(recording), Path(folder) / "caller.wav")
                future = pool.submit_file(mono, self.settings.engine)
                transcript = await asyncio.wait_for(asyncio.wrap_future(future), self.settings.final_timeout_s)
            except Exception as exc:
                await self._after_failure(exc, pool)
                errors.append(f"recognising the recording failed: {exc!r}")
                return _Outcome(call.last_text or "", "none", 0.0, "; ".join(errors))
        self._count(transcript)
        return _Outcome(transcript.text, "recording", transcript.duration_s, "; ".join(errors) or None)

    async def _after_failure(self, exc: BaseException, pool: Recognition) -> None:
        """A pool process died (killed, out of memory, a crash in native code): the executor is
        broken for good, so a new pool takes its place (once, however many calls noticed)."""
        if not isinstance(exc, BrokenProcessPool) or pool is not self.pool:
            return
        broken = self.pool
        try:
            self.pool = self._new_pool()
        except Exception:
            logger.exception("speech service: a new recognition pool could not be made")
            return
        logger.error("speech service: a recognition process died; the pool was replaced")
        await asyncio.to_thread(broken.close)

    def _count(self, transcript: Transcript) -> None:
        self.stats.recognition_s += transcript.seconds_spent
        self.stats.audio_s += transcript.duration_s

    # ------------------------------------------------------------ drafts
    async def _on_text(
        self,
        call: _Call,
        text: str,
        *,
        final: bool,
        extra: dict[str, Any] | None = None,
        audio_s: float | None = None,
    ) -> dict[str, Any]:
        """Runs intake and the knowledge base on the transcript so far; tells everyone.
        `audio_s`: the seconds of the tap the text covers (None: not from the tap, no latency)."""
        if not final and text == call.last_text:
            return {}
        call.last_text = text
        clock = call.tap_clock if audio_s is not None else None
        draft, matches, ended_at = await asyncio.to_thread(self._draft_heard, text, clock, audio_s or 0.0)
        emergency = draft["urgency"]["level"] == Urgency.EMERGENCY.value
        full: dict[str, Any] = {**draft, **(extra or {})}
        data = {"call_id": call.call_id, "text": text, "final": final, "draft": full}
        speech = {
            "call_id": call.call_id,
            "text": text,
            "final": final,
            "emergency": emergency,
            "kb": [{"topic": m["topic"], "id": m["entry_id"], "score": m["score"]} for m in matches],
        }
        try:
            await self.bus.publish(ev.CALL_DRAFT, data)
            if call.worker_id is not None:
                await self.bus.send_command(call.worker_id, ev.CMD_SPEECH, speech)
        except Unavailable as exc:  # the next transcript, or the saved draft, makes up for it
            logger.warning("call %s: draft not published: %s", call.call_id, exc)
        else:
            if ended_at is not None and self.latency is not None:
                try:
                    await self.latency.record(max(0.0, time.time() - ended_at))
                except DomainError as exc:  # a metric lost costs nothing else
                    logger.warning("call %s: ASR latency not recorded: %s", call.call_id, exc)
        if emergency and self.settings.emergency_priority and not call.emergency_raised and not call.ended.is_set():
            try:
                level = await self.queue.set_priority(call.call_id, Priority.EMERGENCY)
            except Unavailable as exc:
                logger.warning("call %s: emergency priority not raised: %s", call.call_id, exc)
            else:
                call.emergency_raised = True
                flag = draft["emergencies"][0] if draft["emergencies"] else {}
                logger.warning(
                    "call %s: emergency heard (%s: %s), priority now %s",
                    call.call_id,
                    flag.get("label"),
                    flag.get("heard"),
                    level.name if level is not None else "unchanged (not waiting)",
                )
        return full

    def _draft_heard(
        self, text: str, clock: TapClock | None, audio_s: float
    ) -> tuple[dict[str, Any], list[dict[str, Any]], float | None]:
        """The draft, its knowledge-base matches and when (epoch s) the words ending at audio_s
        of the tap were spoken (None: unknown). On a worker thread."""
        draft, matches = self._draft(text)
        return draft, matches, clock.spoken_at(audio_s) if clock is not None else None

    def _draft(self, text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        draft = self.intake.draft(text)
        matches = [m.to_dict() for m in self.knowledge.match(draft.text, top_k=self.settings.kb_top_k)]
        return {**draft.to_dict(), "kb": matches}, matches

    async def _save(self, call: _Call, text: str, draft: dict[str, Any]) -> None:
        delay = 1.0
        while True:
            try:
                await asyncio.to_thread(self.store.save_call_draft, call.call_id, text, draft, self.settings.engine)
            except Unavailable as exc:  # the database is away: keep the draft until it is back
                logger.warning("call %s: draft not saved yet: %s", call.call_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            except DomainError as exc:
                logger.error("call %s: draft refused by the store: %s", call.call_id, exc)
                return
            self.stats.drafts_saved += 1
            logger.info("call %s: draft saved (%d characters, %s)", call.call_id, len(text), draft.get("source"))
            return


def caller_channel(recording: Path, into: Path) -> Path:
    """The caller's side of a call recording as a mono WAV: the left channel of the stereo
    recording (or the recording itself if it is mono: the caller's file kept when a merge failed)."""
    with wave.open(str(recording), "rb") as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        if channels == 1:
            return recording
        if width != 2:
            raise ValueError(f"{recording}: {8 * width}-bit audio, 16-bit expected")
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, channels)
    with wave.open(str(into), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.ascontiguousarray(frames[:, 0]).tobytes())
    return into


class TapClock:
    """When a moment of a caller's tap was spoken: the recorder writes in real time, so the audio
    at `audio_s` was spoken (audio in the tap - audio_s) seconds before the tap's last write.
    Holds the tap open, so this still works after the worker merged and deleted the file."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd
        self._data_offset: int | None = None
        self._byte_rate = 0

    @classmethod
    def open(cls, path: str) -> TapClock | None:
        try:
            return cls(os.open(path, os.O_RDONLY))
        except OSError:
            return None

    def spoken_at(self, audio_s: float) -> float | None:
        """Epoch seconds at which the tap's audio at `audio_s` was recorded (None: unknown)."""
        if self._fd is None:
            return None
        try:
            if self._data_offset is None and not self._read_header():
                return None
            st = os.fstat(self._fd)
        except OSError:
            return None
        assert self._data_offset is not None
        recorded_s = max(0, st.st_size - self._data_offset) / self._byte_rate
        return st.st_mtime - max(0.0, recorded_s - audio_s)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _read_header(self) -> bool:
        """The data chunk's offset and the byte rate of the WAV's fmt chunk."""
        assert self._fd is not None
        head = os.pread(self._fd, 4096, 0)
        pos, byte_rate = 12, 0
        while pos + 8 <= len(head) and head[:4] == b"RIFF":
            chunk_id, (length,) = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)
            if chunk_id == b"fmt " and pos + 20 <= len(head):
                (byte_rate,) = struct.unpack_from("<I", head, pos + 16)
            if chunk_id == b"data":
                if byte_rate <= 0:
                    return False
                self._data_offset, self._byte_rate = pos + 8, byte_rate
                return True
            pos += 8 + length + (length & 1)
        return False
