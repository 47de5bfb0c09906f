"""The end-to-end tests' audio helpers, against real Mandarin clips and real sox."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.audio import (
    alaw_decode,
    best_correlation,
    pad_wav,
    read_wav_mono,
    resample,
    to_telephone_wav,
    ulaw_decode,
)

CLIPS = Path("/work/shared/audio/mandarin")
CALLER = CLIPS / "paddlespeech_zh.wav"
AGENT = CLIPS / "funasr_asr_example_b.wav"
RATE = 8000


@pytest.fixture(scope="module")
def caller_8k() -> np.ndarray:
    samples, rate = read_wav_mono(CALLER, rate=RATE)
    assert rate == RATE
    return samples


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_clip_embedded_in_noise_is_found_at_its_offset(caller_8k: np.ndarray) -> None:
    rng = np.random.default_rng(12345)
    offset = 7 * RATE + 123
    signal = rng.normal(0.0, 0.1 * _rms(caller_8k), 20 * RATE).astype(np.float32)  # 20 dB SNR
    signal[offset : offset + caller_8k.size] += caller_8k
    score, lag = best_correlation(caller_8k, signal, RATE)
    assert score > 0.9
    assert abs(lag - offset / RATE) <= 0.010


def test_level_does_not_matter_and_silence_scores_zero(caller_8k: np.ndarray) -> None:
    signal = np.concatenate([np.zeros(3 * RATE, dtype=np.float32), 0.05 * caller_8k])
    quiet, lag = best_correlation(caller_8k, signal, RATE)
    assert quiet > 0.99
    assert abs(lag - 3.0) <= 0.010
    assert best_correlation(caller_8k, 20.0 * caller_8k, RATE).score > 0.99
    assert best_correlation(caller_8k, np.zeros(10 * RATE), RATE) == (0.0, 0.0)


def test_a_different_mandarin_clip_scores_low(caller_8k: np.ndarray) -> None:
    for other in ("funasr_asr_example_b", "masr_test", "aishell1dev_BAC009S0724W0121"):
        samples, _ = read_wav_mono(CLIPS / f"{other}.wav", rate=RATE)
        signal = np.concatenate([np.zeros(RATE, dtype=np.float32), samples])
        score, _ = best_correlation(caller_8k, signal, RATE)
        assert score < 0.3, other


def test_a_partly_present_clip_still_matches(caller_8k: np.ndarray) -> None:
    # Only the last 2.5 s of the clip made it into the recording, at its very start.
    tail = caller_8k[-int(2.5 * RATE) :]
    signal = np.concatenate([tail, np.zeros(4 * RATE, dtype=np.float32)])
    score, lag = best_correlation(caller_8k, signal, RATE)
    assert score > 0.9
    assert abs(lag - (-(caller_8k.size - tail.size) / RATE)) <= 0.010
    # Correlating the whole clip at once needs all of it.
    assert best_correlation(caller_8k, signal, RATE, window_s=None).score < 0.9


def test_g711_round_trip_through_sox_still_matches(tmp_path: Path, caller_8k: np.ndarray) -> None:
    for encoding in ("u-law", "a-law"):
        coded = to_telephone_wav(CALLER, tmp_path / f"caller-{encoding}.wav", encoding=encoding)
        samples, rate = read_wav_mono(coded)
        assert rate == RATE
        score, lag = best_correlation(caller_8k, samples, RATE)
        assert score > 0.9, encoding
        assert abs(lag) <= 0.002


def test_ulaw_decode_of_sipp_style_payload_matches_sox(tmp_path: Path) -> None:
    coded = to_telephone_wav(AGENT, tmp_path / "agent-ulaw.wav")
    blob = coded.read_bytes()
    data = blob[blob.index(b"data") + 8 :]  # the bytes sipp's rtp_stream sends, 160 per packet
    packets = [data[i : i + 160] for i in range(0, len(data) - 159, 160)]
    mine = np.concatenate([ulaw_decode(p) for p in packets])

    linear = to_telephone_wav(coded, tmp_path / "agent-s16.wav", encoding="signed")
    by_sox, _ = read_wav_mono(linear)
    assert mine.size > 5 * RATE
    assert np.array_equal(np.round(mine * 32768).astype(np.int32), np.round(by_sox[: mine.size] * 32768))


def test_alaw_decode_matches_sox(tmp_path: Path) -> None:
    coded = to_telephone_wav(AGENT, tmp_path / "agent-alaw.wav", encoding="a-law")
    blob = coded.read_bytes()
    mine = alaw_decode(blob[blob.index(b"data") + 8 :])
    by_sox, _ = read_wav_mono(to_telephone_wav(coded, tmp_path / "a-s16.wav", encoding="signed"))
    assert np.array_equal(np.round(mine * 32768), np.round(by_sox * 32768))


def test_g711_tables_cover_the_standard_extremes() -> None:
    assert ulaw_decode(bytes([0x00, 0x80, 0xFF, 0x7F])).tolist() == [
        -32124 / 32768,
        32124 / 32768,
        0.0,
        0.0,
    ]
    assert alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A])).tolist() == [
        8 / 32768,
        -8 / 32768,
        32256 / 32768,
        -32256 / 32768,
    ]


def test_pad_wav_adds_silence_and_keeps_the_format(tmp_path: Path) -> None:
    coded = to_telephone_wav(CALLER, tmp_path / "c.wav")
    padded = pad_wav(coded, tmp_path / "padded.wav", 1.5, 2.0)
    before, _ = read_wav_mono(coded)
    after, rate = read_wav_mono(padded)
    assert rate == RATE
    assert after.size == before.size + int(3.5 * RATE)
    assert not after[: int(1.5 * RATE)].any()
    assert not after[-2 * RATE :].any()
    assert padded.read_bytes()[20:22] == struct.pack("<H", 7)  # still μ-law
    assert best_correlation(before, after, RATE).lag_s == pytest.approx(1.5, abs=0.001)


def test_stereo_channels_are_selected_and_mixed(tmp_path: Path, caller_8k: np.ndarray) -> None:
    agent, _ = read_wav_mono(AGENT, rate=RATE)
    n = min(caller_8k.size, agent.size)
    frames = np.stack([caller_8k[:n], agent[:n]], axis=1)
    pcm = np.round(np.clip(frames, -1, 1) * 32767).astype("<i2").tobytes()
    path = tmp_path / "stereo.wav"
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(pcm),
        b"WAVE",
        b"fmt ",
        16,
        1,
        2,
        RATE,
        RATE * 4,
        4,
        16,
        b"data",
        len(pcm),
    )
    path.write_bytes(header + pcm)

    left, _ = read_wav_mono(path, channel=0)
    right, _ = read_wav_mono(path, channel=1)
    assert best_correlation(caller_8k, left, RATE).score > 0.99
    assert best_correlation(caller_8k, right, RATE).score < 0.3
    assert best_correlation(agent, right, RATE).score > 0.99
    mixed, _ = read_wav_mono(path)
    assert np.allclose(mixed, (left + right) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="no channel 2"):
        read_wav_mono(path, channel=2)


def test_an_unfinalised_header_is_read_to_the_last_whole_frame(tmp_path: Path) -> None:
    coded = to_telephone_wav(CALLER, tmp_path / "c.wav", encoding="signed")
    blob = bytearray(coded.read_bytes())
    data_at = blob.index(b"data")
    blob[data_at + 4 : data_at + 8] = struct.pack("<I", 0xFFFFFFFF)  # still being written
    truncated = tmp_path / "t.wav"
    truncated.write_bytes(bytes(blob[:-1]))  # and cut mid-sample
    whole, _ = read_wav_mono(coded)
    partial, _ = read_wav_mono(truncated)
    assert partial.size == whole.size - 1
    assert np.array_equal(partial, whole[:-1])


def test_resample_keeps_speech_correlated(caller_8k: np.ndarray) -> None:
    native, rate = read_wav_mono(CALLER)
    assert rate == 16000
    assert resample(native, 16000, RATE).size == caller_8k.size
    back_up = resample(caller_8k, RATE, 16000)
    assert best_correlation(native, back_up, 16000).score > 0.95
