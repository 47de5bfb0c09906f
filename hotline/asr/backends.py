"""The one typed wrapper around the untyped speech libraries: faster-whisper, Vosk and soxr.

Nothing else in hotline imports those libraries; their objects never leave this module's classes.
faster-whisper and Vosk are imported on first use, not at import time, so code that only reads
taps or resamples (and the processes that never recognise anything) does not load them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

Audio = npt.NDArray[np.float32]
"""Mono audio as float32 in [-1, 1)."""

# soxr's "high quality" preset: a linear-phase filter with 20-bit (about 120 dB) stop-band
# rejection and a pass band up to 91 % of the lower Nyquist frequency.
_QUALITY = "HQ"


# --- soxr -------------------------------------------------------------------------------------


def resample(audio: Audio, in_rate: int, out_rate: int) -> Audio:
    """The whole signal at another rate (band-limited: no images, no aliases)."""
    if in_rate == out_rate:
        return audio.astype(np.float32, copy=False)
    out: Audio = soxr.resample(audio.astype(np.float32, copy=False), in_rate, out_rate, quality=_QUALITY)
    return out.astype(np.float32, copy=False)


class ResampleStream:
    """Resamples a signal that arrives in chunks, as if it were one signal (no edge effects at
    chunk boundaries). The filter delays its output a little; `push(..., last=True)` flushes it."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream: Any = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=_QUALITY)

    def push(self, audio: Audio, last: bool = False) -> Audio:
        """Output for this chunk (may be shorter or longer than in/out-rate-scaled)."""
        chunk = audio.astype(np.float32, copy=False)
        if self._stream is None:
            return chunk
        out: Audio = self._stream.resample_chunk(chunk, last=last)
        return out.astype(np.float32, copy=False)


# --- faster-whisper -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class DecodedSegment:
    """One segment as Whisper decoded it; times in seconds from the start of the decoded audio."""

    start_s: float
    end_s: float
    text: str
    avg_logprob: float
    no_speech_prob: float


@dataclasses.dataclass(frozen=True, slots=True)
class VadSettings:
    """Silero VAD (shipped inside faster-whisper) settings, see faster_whisper.vad.VadOptions.

    Tuned for telephone speech: a lower speech threshold than Silero's 0.5 (G.711 and the band
    limit make soft syllable onsets less certain), 300 ms of padding so initials are not clipped,
    a 0.5-s pause ends an utterance, and speech is cut into pieces of at most 20 s (Whisper
    decodes 30-s windows)."""

    threshold: float = 0.35
    min_speech_ms: int = 250
    min_silence_ms: int = 500
    max_speech_s: float = 20.0
    speech_pad_ms: int = 300


def speech_spans(audio: Audio, vad: VadSettings, rate: int = 16000) -> list[tuple[int, int]]:
    """(start, end) sample indices of the stretches of speech in 16 kHz audio, in order."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if audio.size == 0:
        return []
    options = VadOptions(
        threshold=vad.threshold,
        min_speech_duration_ms=vad.min_speech_ms,
        min_silence_duration_ms=vad.min_silence_ms,
        max_speech_duration_s=vad.max_speech_s,
        speech_pad_ms=vad.speech_pad_ms,
    )
    spans: list[dict[str, int]] = get_speech_timestamps(audio, options, sampling_rate=rate)
    return [(int(span["start"]), int(span["end"])) for span in spans]


class WhisperModel:
    """A CTranslate2 Whisper model on the CPU."""

    def __init__(self, model_dir: Path, *, cpu_threads: int, compute_type: str) -> None:
        from faster_whisper import WhisperModel as _WhisperModel

        self._model: Any = _WhisperModel(
            str(model_dir), device="cpu", compute_type=compute_type, cpu_threads=cpu_threads, num_workers=1
        )

    def decode(
        self, audio: Audio, *, language: str, initial_prompt: str | None, beam_size: int
    ) -> list[DecodedSegment]:
        """Decodes one utterance (up to 30 s) without Whisper's own VAD: the caller segments."""
        segments, _info = self._model.transcribe(
            audio,
            language=language,
            task="transcribe",
            beam_size=beam_size,
            vad_filter=False,
            condition_on_previous_text=False,
            initial_prompt=initial_prompt,
        )
        return [
            DecodedSegment(
                start_s=float(seg.start),
                end_s=float(seg.end),
                text=str(seg.text),
                avg_logprob=float(seg.avg_logprob),
                no_speech_prob=float(seg.no_speech_prob),
            )
            for seg in segments  # a generator: decoding happens while iterating
        ]


# --- Vosk ---------------------------------------------------------------------------------------


def set_vosk_log_level(level: int) -> None:
    """Kaldi's log level: 0 info, -1 warnings and errors, -2 errors only."""
    import vosk

    vosk.SetLogLevel(level)


class VoskModel:
    """A Kaldi model folder loaded by Vosk (shared by any number of recognisers)."""

    def __init__(self, model_dir: Path) -> None:
        import vosk

        self.model_dir = model_dir
        self._model: Any = vosk.Model(model_path=str(model_dir))

    def has_word(self, word: str) -> bool:
        """Whether the model's vocabulary has this word (grammar phrases may use only these)."""
        return int(self._model.vosk_model_find_word(word)) >= 0

    def recognizer(self, rate: int, grammar: list[str] | None) -> VoskRecognizer:
        """A new streaming recogniser; with a grammar, only those phrases can be recognised."""
        return VoskRecognizer(self, rate, grammar)

    @property
    def native(self) -> Any:
        return self._model


class VoskRecognizer:
    """A KaldiRecognizer: 16-bit PCM bytes in, JSON results out (decoded here to dicts)."""

    def __init__(self, model: VoskModel, rate: int, grammar: list[str] | None) -> None:
        import vosk

        if grammar is None:
            self._rec: Any = vosk.KaldiRecognizer(model.native, float(rate))
        else:
            self._rec = vosk.KaldiRecognizer(model.native, float(rate), json.dumps(grammar, ensure_ascii=False))
        self._rec.SetWords(True)

    def accept(self, pcm16: bytes) -> bool:
        """Feeds audio; True when an utterance ended (then `result()` has it)."""
        return bool(self._rec.AcceptWaveform(pcm16))

    def result(self) -> dict[str, Any]:
        return _json_object(self._rec.Result())

    def partial(self) -> str:
        return str(_json_object(self._rec.PartialResult()).get("partial", ""))

    def final(self) -> dict[str, Any]:
        return _json_object(self._rec.FinalResult())


def _json_object(raw: Any) -> dict[str, Any]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError(f"Vosk returned {raw!r}, not a JSON object")
    return value
