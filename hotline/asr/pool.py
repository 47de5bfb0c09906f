"""Speech recognition in separate processes, fed from the callers' tap files.

Recognition is CPU-bound and runs native code; in the media worker it would take the GIL from
pjsua2's clock thread and every call's audio would stutter (shared/PJSUA2.md). So it runs in a
`ProcessPoolExecutor` (forkserver by default: no copy of the parent's threads or sockets), each
process loading its models once, in the initializer. The pool is driven by whoever sees
`call.queued` (the control plane): it passes only paths and names, never audio.

- `transcribe_file(path, engine)`: a whole WAV, read and resampled once in the pool process.
- `follow(tap_path, engine)`: a caller's growing tap. One pool process reads the file as the
  recorder writes it, feeds the engine's stream and sends partial transcripts back (through a
  queue the pool made at start-up); `Following.done()` says the call ended, and the result is
  the final transcript. A followed call holds its process until then (mostly asleep, polling),
  so the pool size bounds the calls followed at once; more wait in the executor's queue and
  catch up from the start of their tap when their turn comes (the tap must still be on disk
  then; once a process has opened it, it may be moved or deleted).

The processes end with the pool (`close()`), and by themselves when its owner dies, even by
SIGKILL (a lifeline pipe). As with any forkserver/spawn pool, the owner's `__main__` must be
safe to import (the `hotline` console script and `python -m` are).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from hotline.asr.audio import MODEL_RATE, TapReader, Upsampler, read_wav, to_16k
from hotline.asr.engines import Partial, Recognizer, Transcript, VoskEngine, WhisperEngine, WhisperSettings
from hotline.asr.models import ModelMissing
from hotline.core.errors import Unavailable

logger = logging.getLogger(__name__)

__all__ = [
    "EngineSpec",
    "Following",
    "RecognitionPool",
    "TapReader",
    "VoskSpec",
    "WhisperSpec",
]


@dataclasses.dataclass(frozen=True, slots=True)
class WhisperSpec:
    """How a pool process builds a Whisper engine."""

    model_dir: Path
    settings: WhisperSettings = dataclasses.field(default_factory=WhisperSettings)
    name: str = "whisper"

    def __post_init__(self) -> None:
        # Checked here, in the parent: a model that fails to load in a pool process's
        # initializer only breaks the pool ("a child process terminated abruptly").
        if not (self.model_dir / "model.bin").is_file():
            raise ModelMissing(f"no Whisper model in {self.model_dir} (see hotline.asr.models.whisper_model_dir)")

    def build(self) -> Recognizer:
        return WhisperEngine(self.model_dir, self.settings)


@dataclasses.dataclass(frozen=True, slots=True)
class VoskSpec:
    """How a pool process builds a Vosk engine."""

    model_dir: Path
    language: str
    grammar: tuple[str, ...] | None = None
    name: str = "vosk"

    def __post_init__(self) -> None:
        if not (self.model_dir / "am" / "final.mdl").is_file():
            raise ModelMissing(f"no Vosk model in {self.model_dir} (no am/final.mdl)")

    def build(self) -> Recognizer:
        return VoskEngine(self.model_dir, language=self.language, grammar=self.grammar)


EngineSpec = WhisperSpec | VoskSpec

# --- inside a pool process ------------------------------------------------------------------

_engines: dict[str, Recognizer] = {}
_partials: Any = None  # the pool's SimpleQueue, inherited at process start
_done_flags: Any = None  # the pool's shared byte array: flag[slot] = 1 when the call ended

_FEED_S = 0.5  # audio fed to a stream at a time when a tap is read in big pieces (catching up)


def _init_process(specs: tuple[EngineSpec, ...], partials: Any, done_flags: Any, lifeline: Any) -> None:
    global _partials, _done_flags
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    threading.Thread(target=_exit_with_owner, args=(lifeline,), name="asr-lifeline", daemon=True).start()
    _partials, _done_flags = partials, done_flags
    for spec in specs:
        started = time.perf_counter()
        _engines[spec.name] = spec.build()
        logger.info("pool process %d loaded %s in %.1f s", os.getpid(), spec.name, time.perf_counter() - started)


def _exit_with_owner(lifeline: Any) -> None:
    """Ends this process when the pool's owner is gone. The owner holds the only write end of
    the lifeline pipe and never writes: end of file means it died (even by SIGKILL), and the
    executor's own queues would otherwise keep this process, and its models, alive for ever."""
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv()
    os._exit(1)


def _engine(name: str) -> Recognizer:
    try:
        return _engines[name]
    except KeyError:
        raise ValueError(f"no engine {name!r} in this pool (has {', '.join(sorted(_engines))})") from None


def _process_id() -> int:
    return os.getpid()


def _transcribe_file(path: str, engine: str) -> Transcript:
    pcm, rate = read_wav(path)
    return _engine(engine).transcribe(to_16k(pcm, rate))


def _follow(follow_id: int, slot: int, path: str, engine: str, poll_s: float, idle_timeout_s: float) -> Transcript:
    stream = _engine(engine).stream()
    upsampler: Upsampler | None = None
    feed = int(_FEED_S * MODEL_RATE)

    def call_ended() -> bool:
        return bool(_done_flags[slot])

    try:
        with TapReader(path) as reader:
            for chunk in reader.follow(poll_s=poll_s, idle_timeout_s=idle_timeout_s, stop=call_ended):
                if upsampler is None:
                    assert reader.rate is not None
                    upsampler = Upsampler(reader.rate)
                audio = upsampler.push(chunk)
                for i in range(0, audio.size, feed):
                    partial = stream.accept(audio[i : i + feed])
                    if partial is not None:
                        _partials.put((follow_id, partial))
            if upsampler is not None:
                stream.accept(upsampler.flush())
        return stream.finish()
    finally:
        _partials.put((follow_id, None))  # after the last partial: the parent may now resolve


# --- the parent's side -----------------------------------------------------------------------


class Following:
    """A call whose tap a pool process is following."""

    def __init__(
        self,
        follow_id: int,
        tap_path: Path,
        engine: str,
        slot: int,
        flags: Any,
        on_partial: Callable[[Partial], None] | None,
    ) -> None:
        self.follow_id = follow_id
        self.tap_path = tap_path
        self.engine = engine
        self.future: Future[Transcript] = Future()
        self.partials: list[Partial] = []
        """Partial transcripts received so far, oldest first."""
        self._slot = slot
        self._flags = flags
        self._on_partial = on_partial
        self._drained = False  # the process sent its end marker: no partial will follow
        self._outcome: Future[Transcript] | None = None  # the process's task, once done

    @property
    def latest(self) -> Partial | None:
        return self.partials[-1] if self.partials else None

    def done(self) -> None:
        """The call ended: the process reads what is left of the tap and finishes."""
        if not self.future.done():
            self._flags[self._slot] = 1

    def result(self, timeout: float | None = None) -> Transcript:
        """The final transcript (waits for it)."""
        return self.future.result(timeout)

    def _deliver(self, partial: Partial) -> None:
        self.partials.append(partial)
        if self._on_partial is not None:
            try:
                self._on_partial(partial)
            except Exception:
                logger.exception("on_partial callback failed for %s", self.tap_path)


class RecognitionPool:
    """A pool of recognition processes, each with every engine in `engines` loaded once."""

    def __init__(
        self,
        engines: Sequence[EngineSpec],
        *,
        processes: int = 1,
        start_method: str = "forkserver",
        max_follows: int = 1024,
    ) -> None:
        if not engines:
            raise ValueError("a recognition pool needs at least one engine")
        names = [spec.name for spec in engines]
        if len(set(names)) != len(names):
            raise ValueError(f"engine names must differ: {names}")
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.engine_names = tuple(names)
        self.processes = processes
        ctx = multiprocessing.get_context(start_method)
        self._partials = ctx.SimpleQueue()
        self._flags = ctx.RawArray("b", max_follows)
        lifeline, self._lifeline = ctx.Pipe(duplex=False)
        self._executor = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=ctx,
            initializer=_init_process,
            initargs=(tuple(engines), self._partials, self._flags, lifeline),
        )
        self._lock = threading.Lock()
        self._following: dict[int, Following] = {}
        self._free_slots = list(range(max_follows - 1, -1, -1))
        self._next_id = 1
        self._closed = False
        self._dispatcher = threading.Thread(target=self._dispatch, name="asr-partials", daemon=True)
        self._dispatcher.start()

    def __enter__(self) -> RecognitionPool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self, timeout: float | None = None) -> set[int]:
        """Starts the pool's processes and waits until each has loaded its models (otherwise
        they start on demand and the first calls wait for the models); returns their PIDs.
        A process busy loading is not idle, so `processes` submissions at once start them all."""
        futures = [self._executor.submit(_process_id) for _ in range(self.processes)]
        for future in futures:
            future.result(timeout)
        # The executor's own table: a process that finished loading first may have answered
        # several of the submissions above.
        return set(self._executor._processes or {})

    def process_id(self, timeout: float | None = None) -> int:
        """The PID of a pool process (starting one and loading its models if none runs yet)."""
        return self._executor.submit(_process_id).result(timeout)

    def submit_file(self, path: str | Path, engine: str) -> Future[Transcript]:
        """Transcribes a whole WAV (16-bit PCM mono, any rate) in a pool process."""
        self._check_engine(engine)
        return self._executor.submit(_transcribe_file, str(path), engine)

    def transcribe_file(self, path: str | Path, engine: str, timeout: float | None = None) -> Transcript:
        """`submit_file` and wait for the result."""
        return self.submit_file(path, engine).result(timeout)

    def follow(
        self,
        tap_path: str | Path,
        engine: str,
        *,
        on_partial: Callable[[Partial], None] | None = None,
        poll_s: float = 0.2,
        idle_timeout_s: float = 30.0,
    ) -> Following:
        """Follows a caller's growing tap until `Following.done()` or until the file has not
        grown for `idle_timeout_s`. `on_partial` runs on the pool's dispatcher thread (post to
        an event loop with call_soon_threadsafe); it must not block."""
        self._check_engine(engine)
        with self._lock:
            if self._closed:
                raise RuntimeError("the recognition pool is closed")
            if not self._free_slots:
                raise Unavailable(f"already following {len(self._following)} calls")
            slot = self._free_slots.pop()
            follow_id = self._next_id
            self._next_id += 1
            self._flags[slot] = 0
            following = Following(follow_id, Path(tap_path), engine, slot, self._flags, on_partial)
            self._following[follow_id] = following
        inner = self._executor.submit(_follow, follow_id, slot, str(tap_path), engine, poll_s, idle_timeout_s)
        inner.add_done_callback(lambda f: self._finished(following, f))
        return following

    def close(self) -> None:
        """Ends every follow (as if each call ended), waits for the work under way, stops the
        processes."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for following in self._following.values():
                following.done()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._lifeline.close()
        self._partials.put(None)
        self._dispatcher.join(timeout=10)
        self._partials.close()

    def _check_engine(self, engine: str) -> None:
        if engine not in self.engine_names:
            raise ValueError(f"no engine {engine!r} in this pool (has {', '.join(self.engine_names)})")

    def _finished(self, following: Following, inner: Future[Transcript]) -> None:
        """The process's task ended. A result is handed over once the process's end marker has
        come through the partials queue too, so every partial arrives before the result."""
        with self._lock:
            following._outcome = inner
            ready = following._drained or inner.cancelled() or inner.exception() is not None
        if ready:
            self._resolve(following)

    def _resolve(self, following: Following) -> None:
        with self._lock:
            if self._following.pop(following.follow_id, None) is None:
                return  # resolved already
            self._free_slots.append(following._slot)
        inner = following._outcome
        assert inner is not None
        if inner.cancelled():
            following.future.cancel()
        elif (error := inner.exception()) is not None:
            following.future.set_exception(error)
        else:
            following.future.set_result(inner.result())

    def _dispatch(self) -> None:
        while True:
            message = self._partials.get()
            if message is None:
                return
            follow_id, partial = message
            ready = False
            with self._lock:
                following = self._following.get(follow_id)
                if following is not None and partial is None:
                    following._drained = True
                    ready = following._outcome is not None
            if following is None:
                continue
            if partial is not None:
                following._deliver(partial)
            elif ready:
                self._resolve(following)
