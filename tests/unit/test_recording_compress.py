"""FLAC storage of call recordings: real sox, real files. The FLAC decodes to exactly the WAV's
samples before the WAV is removed; a failed conversion keeps the WAV."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from hotline.recordings import compress
from hotline.recordings.catalog import describe
from hotline.recordings.compress import CompressError, decode_flac, flac_seconds, store_as, to_flac


def stereo_wav(path: Path, seconds: float = 3.0, rate: int = 8000) -> bytes:
    n = int(seconds * rate)
    t = np.arange(n) / rate
    rng = np.random.default_rng(7)
    frames = np.empty(2 * n, dtype="<i2")
    frames[0::2] = (4000 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 200, n)).astype("<i2")
    frames[1::2] = (3000 * np.sin(2 * np.pi * 210 * t)).astype("<i2")
    frames[1::2][: rate // 2] = 0  # silence compresses too
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())
    return frames.tobytes()


def test_flac_decodes_to_the_same_samples_and_replaces_the_wav(tmp_path: Path) -> None:
    wav = tmp_path / "20261122T001234-8f3a9c1d.wav"
    pcm = stereo_wav(wav)
    done = to_flac(wav)
    assert done.path == tmp_path / "20261122T001234-8f3a9c1d.flac"
    assert not wav.exists() and not list(tmp_path.glob("*.tmp"))
    assert done.frames == 24000
    assert done.flac_bytes < done.wav_bytes
    assert decode_flac(done.path, 8000, 2) == pcm
    assert flac_seconds(done.path) == 3.0
    info = describe(done.path)
    assert (info.format, info.seconds, info.bytes) == ("flac", 3.0, done.flac_bytes)


def test_a_failed_conversion_keeps_the_wav(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wav = tmp_path / "c.wav"
    stereo_wav(wav, 1.0)
    before = wav.read_bytes()
    monkeypatch.setattr(compress, "SOX", "sox-that-is-not-installed")
    with pytest.raises(CompressError, match="not installed"):
        to_flac(wav)
    assert store_as(wav, "flac") == wav
    assert wav.read_bytes() == before and not list(tmp_path.glob("*.flac*"))


def test_a_flac_that_does_not_match_is_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wav = tmp_path / "c.wav"
    stereo_wav(wav, 1.0)
    monkeypatch.setattr(compress, "decode_flac", lambda path, rate, channels: b"\x00\x00" * 10)
    with pytest.raises(CompressError, match="differ"):
        to_flac(wav)
    assert wav.exists() and not list(tmp_path.glob("*.flac*"))


def test_wav_format_leaves_the_file_alone(tmp_path: Path) -> None:
    wav = tmp_path / "c.wav"
    stereo_wav(wav, 0.5)
    assert store_as(wav, "wav") == wav and wav.exists()


def test_flac_seconds_refuses_other_files(tmp_path: Path) -> None:
    wav = tmp_path / "c.wav"
    stereo_wav(wav, 0.2)
    with pytest.raises(ValueError, match="not a FLAC"):
        flac_seconds(wav)
