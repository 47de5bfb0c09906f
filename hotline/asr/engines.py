"""Speech recognition: one port (`Recognizer`, `Stream`) and two engines.

Rules of this module:
- every engine takes mono 16 kHz audio (int16 samples or float32 in [-1, 1)); telephone audio is
  resampled once, before it gets here (hotline.asr.audio);
- `WhisperEngine` (faster-whisper, Whisper base) cuts the audio into utterances with the Silero
  VAD shipped in faster-whisper and decodes each utterance whole, with the prompt that makes it
  write simplified characters (Whisper drops the prompt after its first 30-s window, so one long
  decode drifts into traditional characters). Silence gives no utterance, hence empty text. Its
  stream commits an utterance once the VAD has heard it end; partials are whole utterances;
- `VoskEngine` (Kaldi via Vosk) is a true streaming recogniser with partial hypotheses, and in
  grammar mode recognises only the phrases it is given;
- no faster-whisper or Vosk object crosses this module's API (they live in hotline.asr.backends).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from hotline.asr import backends
from hotline.asr.audio import MODEL_RATE, as_float, float_to_pcm16
from hotline.asr.backends import VadSettings

logger = logging.getLogger(__name__)

Samples = npt.NDArray[np.int16] | npt.NDArray[np.float32]
"""Mono 16 kHz audio: int16 samples, or float32 in [-1, 1)."""

__all__ = [
    "Partial",
    "Recognizer",
    "Samples",
    "Segment",
    "Stream",
    "Transcript",
    "VadSettings",
    "VoskEngine",
    "WhisperEngine",
    "WhisperSettings",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of recognised speech; times in seconds from the start of the audio."""

    start_s: float
    end_s: float
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Transcript:
    """What was said, as far as the engine could tell."""

    text: str
    segments: tuple[Segment, ...]
    engine: str
    language: str
    duration_s: float
    """Seconds of audio recognised."""
    seconds_spent: float
    """CPU-bound seconds the engine spent on it (not waiting for audio)."""

    @property
    def real_time_factor(self) -> float:
        return self.seconds_spent / self.duration_s if self.duration_s > 0 else 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Partial:
    """A stream's transcript so far. `text` includes the current hypothesis, which may still
    change; `stable_text` holds only the utterances that ended."""

    text: str
    stable_text: str
    audio_s: float
    engine: str


class Stream(Protocol):
    """One caller's audio, fed as it arrives."""

    def accept(self, pcm16k: Samples) -> Partial | None:
        """Feeds audio; returns a Partial when the transcript so far changed."""
        ...

    def finish(self) -> Transcript:
        """The end of the audio: decodes what is left and returns the whole transcript."""
        ...


class Recognizer(Protocol):
    """A loaded speech model."""

    @property
    def name(self) -> str: ...

    @property
    def language(self) -> str: ...

    def transcribe(self, pcm16k: Samples) -> Transcript:
        """The transcript of a whole recording."""
        ...

    def stream(self) -> Stream:
        """A new stream (each caller has their own; the model is shared)."""
        ...


# --- Whisper -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class WhisperSettings:
    language: str = "zh"
    initial_prompt: str | None = "以下是普通话的句子。"
    beam_size: int = 1
    cpu_threads: int = 1
    compute_type: str = "int8"
    vad: VadSettings = dataclasses.field(default_factory=VadSettings)
    stream_check_s: float = 1.0
    """How much new audio a stream waits for before it looks for utterances that ended."""
    keep_silence_s: float = 1.0
    """Silence a stream keeps before speech it has not heard yet (the VAD pads utterances)."""


class WhisperEngine:
    """faster-whisper on the CPU: VAD-segmented utterances, each decoded whole."""

    name = "whisper"

    def __init__(self, model_dir: Path, settings: WhisperSettings = WhisperSettings()) -> None:
        self.settings = settings
        self._model = backends.WhisperModel(
            model_dir, cpu_threads=settings.cpu_threads, compute_type=settings.compute_type
        )

    @property
    def language(self) -> str:
        return self.settings.language

    def transcribe(self, pcm16k: Samples) -> Transcript:
        started = time.perf_counter()
        audio = as_float(pcm16k)
        segments: list[Segment] = []
        for start, end in backends.speech_spans(audio, self.settings.vad):
            segments.extend(self.decode_utterance(audio[start:end], start / MODEL_RATE))
        return self.transcript_of(segments, audio.size / MODEL_RATE, time.perf_counter() - started)

    def stream(self) -> WhisperStream:
        return WhisperStream(self)

    def decode_utterance(self, audio: backends.Audio, offset_s: float) -> list[Segment]:
        """One utterance decoded whole; segment times shifted by offset_s."""
        decoded = self._model.decode(
            audio,
            language=self.settings.language,
            initial_prompt=self.settings.initial_prompt,
            beam_size=self.settings.beam_size,
        )
        length_s = audio.size / MODEL_RATE
        return [
            Segment(offset_s + min(d.start_s, length_s), offset_s + min(d.end_s, length_s), d.text.strip())
            for d in decoded
            if d.text.strip()
        ]

    def transcript_of(self, segments: Sequence[Segment], duration_s: float, spent_s: float) -> Transcript:
        """A Transcript of this engine's segments."""
        return Transcript(
            text=join_chinese(s.text for s in segments),
            segments=tuple(segments),
            engine=self.name,
            language=self.settings.language,
            duration_s=duration_s,
            seconds_spent=spent_s,
        )


class WhisperStream:
    """Buffers a caller's audio; every `stream_check_s` runs the VAD over what is not decoded
    yet and decodes each utterance the VAD has heard end. The buffer holds at most one
    utterance (the VAD splits speech longer than vad.max_speech_s) plus `keep_silence_s`."""

    def __init__(self, engine: WhisperEngine) -> None:
        self._engine = engine
        self._settings = engine.settings
        self._pending = np.zeros(0, dtype=np.float32)
        self._pending_start = 0  # sample index of _pending[0] since the stream began
        self._unchecked = 0
        self._segments: list[Segment] = []
        self._spent = 0.0
        self._finished = False

    @property
    def audio_s(self) -> float:
        """Seconds of audio accepted so far."""
        return (self._pending_start + self._pending.size) / MODEL_RATE

    @property
    def buffered_s(self) -> float:
        """Seconds of audio held, not decoded yet."""
        return self._pending.size / MODEL_RATE

    def accept(self, pcm16k: Samples) -> Partial | None:
        if self._finished:
            raise RuntimeError("accept() after finish()")
        audio = as_float(pcm16k)
        if audio.size == 0:
            return None
        self._pending = np.concatenate([self._pending, audio])
        self._unchecked += audio.size
        if self._unchecked < self._settings.stream_check_s * MODEL_RATE:
            return None
        self._unchecked = 0
        started = time.perf_counter()
        committed = self._decode_ended(final=False)
        self._spent += time.perf_counter() - started
        if not committed:
            return None
        text = join_chinese(s.text for s in self._segments)
        return Partial(text=text, stable_text=text, audio_s=self.audio_s, engine=self._engine.name)

    def finish(self) -> Transcript:
        if not self._finished:
            self._finished = True
            started = time.perf_counter()
            self._decode_ended(final=True)
            self._spent += time.perf_counter() - started
        return self._engine.transcript_of(self._segments, self.audio_s, self._spent)

    def _decode_ended(self, final: bool) -> bool:
        """Decodes the utterances that ended (all of them when final); drops decoded audio and
        old silence from the buffer. True if anything was decoded."""
        pending = self._pending
        spans = backends.speech_spans(pending, self._settings.vad)
        if final:
            ended, cut = spans, pending.size
        else:
            # An utterance has ended when the VAD's minimum silence follows it within the buffer;
            # the last span reaching the end of the buffer may still be going on.
            margin = self._settings.vad.min_silence_ms * MODEL_RATE // 1000
            ended = [(s, e) for s, e in spans if e + margin <= pending.size]
            if ended:
                cut = ended[-1][1]
            elif not spans:
                cut = max(0, pending.size - int(self._settings.keep_silence_s * MODEL_RATE))
            else:
                cut = 0
        decoded_any = False
        for start, end in ended:
            offset_s = (self._pending_start + start) / MODEL_RATE
            segments = self._engine.decode_utterance(pending[start:end], offset_s)
            self._segments.extend(segments)
            decoded_any = decoded_any or bool(segments)
        self._pending = pending[cut:].copy()
        self._pending_start += cut
        return decoded_any


def join_chinese(parts: Iterable[str]) -> str:
    """Joins utterances of Chinese text (no spaces between them)."""
    return "".join(parts)


# --- Vosk ----------------------------------------------------------------------------------------

_VOSK_FEED = MODEL_RATE // 5  # Vosk endpoints and partials are as fine-grained as the chunks fed


class VoskEngine:
    """Vosk (Kaldi) streaming recognition; with `grammar`, only those phrases (and [unk], where
    the model has it) can be recognised."""

    name = "vosk"

    def __init__(
        self, model_dir: Path, *, language: str, grammar: Sequence[str] | None = None, log_level: int = -1
    ) -> None:
        backends.set_vosk_log_level(log_level)
        self._language = language
        self._model = backends.VoskModel(model_dir)
        self.grammar = self._checked_grammar(grammar) if grammar is not None else None

    @property
    def language(self) -> str:
        return self._language

    def transcribe(self, pcm16k: Samples) -> Transcript:
        stream = self.stream()
        for i in range(0, pcm16k.size, _VOSK_FEED):
            stream.accept(pcm16k[i : i + _VOSK_FEED])
        return stream.finish()

    def stream(self, grammar: Sequence[str] | None = None) -> VoskStream:
        """A stream; `grammar` (checked against the vocabulary) overrides the engine's own."""
        phrases = self._checked_grammar(grammar) if grammar is not None else self.grammar
        return VoskStream(self, self._model.recognizer(MODEL_RATE, list(phrases) if phrases is not None else None))

    def _checked_grammar(self, phrases: Sequence[str]) -> tuple[str, ...]:
        """The phrases, minus [unk] if the model lacks it; ValueError naming unknown words."""
        unknown = sorted({w for p in phrases for w in p.split() if w != "[unk]" and not self._model.has_word(w)})
        if unknown:
            raise ValueError(f"words not in the Vosk model's vocabulary: {', '.join(unknown)}")
        if not phrases:
            raise ValueError("a grammar needs at least one phrase")
        return tuple(p for p in phrases if p != "[unk]" or self._model.has_word("[unk]"))


class VoskStream:
    def __init__(self, engine: VoskEngine, recognizer: backends.VoskRecognizer) -> None:
        self._engine = engine
        self._rec = recognizer
        self._utterances: list[str] = []
        self._segments: list[Segment] = []
        self._partial = ""
        self._samples = 0
        self._spent = 0.0
        self._final: Transcript | None = None

    def accept(self, pcm16k: Samples) -> Partial | None:
        if self._final is not None:
            raise RuntimeError("accept() after finish()")
        if pcm16k.size == 0:
            return None
        pcm = pcm16k if pcm16k.dtype == np.int16 else float_to_pcm16(as_float(pcm16k))
        started = time.perf_counter()
        changed = False
        for i in range(0, pcm.size, _VOSK_FEED):
            piece = pcm[i : i + _VOSK_FEED]
            self._samples += piece.size
            if self._rec.accept(piece.astype("<i2", copy=False).tobytes()):
                changed = self._commit(self._rec.result()) or changed
                changed = changed or bool(self._partial)
                self._partial = ""
            else:
                partial = self._rec.partial()
                if partial != self._partial:
                    self._partial, changed = partial, True
        self._spent += time.perf_counter() - started
        if not changed:
            return None
        stable = " ".join(self._utterances)
        text = " ".join([*self._utterances, self._partial]) if self._partial else stable
        return Partial(text=text, stable_text=stable, audio_s=self._samples / MODEL_RATE, engine=self._engine.name)

    def finish(self) -> Transcript:
        if self._final is None:
            started = time.perf_counter()
            self._commit(self._rec.final())
            self._spent += time.perf_counter() - started
            self._final = Transcript(
                text=" ".join(self._utterances),
                segments=tuple(self._segments),
                engine=self._engine.name,
                language=self._engine.language,
                duration_s=self._samples / MODEL_RATE,
                seconds_spent=self._spent,
            )
        return self._final

    def _commit(self, result: dict[str, Any]) -> bool:
        text = str(result.get("text", "")).strip()
        if not text:
            return False
        words = result.get("result") or []
        start = float(words[0]["start"]) if words else self._samples / MODEL_RATE
        end = float(words[-1]["end"]) if words else self._samples / MODEL_RATE
        self._utterances.append(text)
        self._segments.append(Segment(start, end, text))
        return True
