"""Speech-recognition audio: the one resampling step and the growing-WAV tap reader."""

from __future__ import annotations

import os
import struct
import threading
import time
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from hotline.asr.audio import TapFormatError, TapReader, Upsampler, read_wav, to_16k
from hotline.asr.backends import resample

F32 = npt.NDArray[np.float32]


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> F32:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def spectrum(x: F32, rate: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Power spectrum (Hann window) of the middle of x, away from the filter's edges."""
    middle = x[len(x) // 4 : 3 * len(x) // 4].astype(np.float64)
    power = np.abs(np.fft.rfft(middle * np.hanning(middle.size))) ** 2
    return np.fft.rfftfreq(middle.size, 1 / rate), power


def band_db(freqs: npt.NDArray[np.float64], power: npt.NDArray[np.float64], lo: float, hi: float) -> float:
    """Energy in [lo, hi) Hz relative to the whole signal, in dB."""
    in_band = power[(freqs >= lo) & (freqs < hi)].sum()
    return float(10 * np.log10(max(in_band, 1e-30) / power.sum()))


# --- resampling -----------------------------------------------------------------------------------


def test_upsampling_a_telephone_tone_keeps_its_frequency_and_adds_nothing_above_4_khz() -> None:
    pcm8k = np.round(tone(1000, 8000, 2.0) * 32767).astype(np.int16)
    out = to_16k(pcm8k, 8000)
    assert abs(out.size - 2 * pcm8k.size) <= 2
    freqs, power = spectrum(out, 16000)
    assert abs(freqs[np.argmax(power)] - 1000) <= 2
    # The telephone band ends at 4 kHz; an image of the tone (at 7 kHz) or any other energy up
    # there is an artefact of the resampler. soxr keeps it below -100 dB.
    assert band_db(freqs, power, 4000, 8001) < -90


def test_the_image_bound_catches_a_linear_interpolation() -> None:
    """The bound above is not vacuous: np.interp leaves the 7-kHz image at about -35 dB."""
    x = tone(1000, 8000, 2.0)
    naive = np.interp(np.arange(2 * x.size) / 2, np.arange(x.size), x).astype(np.float32)
    freqs, power = spectrum(naive, 16000)
    assert band_db(freqs, power, 4000, 8001) > -50


def test_downsampling_removes_what_8_khz_cannot_carry_instead_of_aliasing_it() -> None:
    # 6 kHz does not fit under the 4-kHz Nyquist frequency; decimating without a filter would
    # fold it to 2 kHz at full strength.
    out = resample(tone(6000, 16000, 2.0), 16000, 8000)
    assert float(np.sqrt(np.mean(out[1000:-1000] ** 2))) < 1e-4
    naive = tone(6000, 16000, 2.0)[::2]
    assert float(np.sqrt(np.mean(naive**2))) > 0.3


def test_chunked_upsampling_equals_one_pass() -> None:
    rng = np.random.default_rng(7)
    pcm = (rng.standard_normal(8000 * 3) * 3000).astype(np.int16)
    whole = to_16k(pcm, 8000)
    upsampler = Upsampler(8000)
    sizes = [1, 159, 160, 4000, 333, 2000]
    pieces, pos, i = [], 0, 0
    while pos < pcm.size:
        n = sizes[i % len(sizes)]
        pieces.append(upsampler.push(pcm[pos : pos + n]))
        pos, i = pos + n, i + 1
    pieces.append(upsampler.flush())
    chunked = np.concatenate(pieces)
    assert abs(chunked.size - whole.size) <= 2
    n = min(chunked.size, whole.size)
    assert float(np.max(np.abs(chunked[:n] - whole[:n]))) < 1e-3


def test_16_khz_audio_is_not_resampled() -> None:
    pcm = (np.arange(1600) % 200 * 100).astype(np.int16)
    assert np.array_equal(to_16k(pcm, 16000), pcm.astype(np.float32) / 32768)


# --- the tap ---------------------------------------------------------------------------------------


def wav_header(rate: int = 8000, channels: int = 1, bits: int = 16, fmt_tag: int = 1, data_len: int = 0) -> bytes:
    """A 44-byte header as pjmedia's recorder writes it while recording: sizes still zero."""
    block = channels * bits // 8
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_len if data_len else 0)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, fmt_tag, channels, rate, rate * block, block, bits)
        + b"data"
        + struct.pack("<I", data_len)
    )


class Recorder(threading.Thread):
    """Writes 8 kHz 16-bit samples to a WAV the way a recorder does during a call: header with
    zero sizes, then data in fixed-size writes that cut frames in half, then the real sizes."""

    def __init__(self, path: Path, samples: npt.NDArray[np.int16], write_bytes: int, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.path, self.samples, self.write_bytes, self.interval_s = path, samples, write_bytes, interval_s
        self.finished = threading.Event()

    def run(self) -> None:
        data = self.samples.astype("<i2").tobytes()
        with self.path.open("wb") as f:
            f.write(wav_header())
            f.flush()
            for pos in range(0, len(data), self.write_bytes):
                f.write(data[pos : pos + self.write_bytes])
                f.flush()
                time.sleep(self.interval_s)
            f.seek(0)
            f.write(wav_header(data_len=len(data)))
        self.finished.set()


@pytest.fixture
def speechlike() -> npt.NDArray[np.int16]:
    rng = np.random.default_rng(3)
    return (rng.standard_normal(8000 * 2) * 4000).clip(-32768, 32767).astype(np.int16)


def test_tap_reader_follows_a_wav_written_in_chunks_by_another_thread(
    tmp_path: Path, speechlike: npt.NDArray[np.int16]
) -> None:
    path = tmp_path / "call.caller.wav"
    reader = TapReader(path)  # before the file exists
    assert reader.read().size == 0
    recorder = Recorder(path, speechlike, write_bytes=1001, interval_s=0.005)  # odd: frames split
    recorder.start()
    chunks: list[npt.NDArray[np.int16]] = []
    with reader:
        for chunk in reader.follow(poll_s=0.002, idle_timeout_s=5.0, stop=recorder.finished.is_set):
            chunks.append(chunk)
    recorder.join()
    got = np.concatenate(chunks)
    assert reader.rate == 8000
    assert np.array_equal(got, speechlike)
    assert len(chunks) > 10  # it really followed the growth, not one read at the end
    assert reader.seconds_read == pytest.approx(2.0)


def test_tap_reader_holds_back_a_partial_last_frame(tmp_path: Path) -> None:
    path = tmp_path / "tap.wav"
    frames = np.array([1000, -2000, 3000], dtype=np.int16).astype("<i2").tobytes()
    with path.open("wb") as f:
        f.write(wav_header()[:30])  # header half written
        f.flush()
        with TapReader(path) as reader:
            assert reader.read().size == 0
            assert reader.rate is None
            f.write(wav_header()[30:] + frames[:3])  # one frame and a half
            f.flush()
            assert reader.read().tolist() == [1000]
            f.write(frames[3:])
            f.flush()
            assert reader.read().tolist() == [-2000, 3000]
            assert reader.read().size == 0


def test_follow_ends_when_the_file_stops_growing(tmp_path: Path) -> None:
    path = tmp_path / "tap.wav"
    path.write_bytes(wav_header() + np.ones(800, dtype="<i2").tobytes())
    started = time.monotonic()
    with TapReader(path) as reader:
        got = list(reader.follow(poll_s=0.01, idle_timeout_s=0.3))
    assert [c.size for c in got] == [800]
    assert 0.25 <= time.monotonic() - started < 3


def test_a_tap_that_never_appears_yields_nothing(tmp_path: Path) -> None:
    with TapReader(tmp_path / "never.wav") as reader:
        assert list(reader.follow(poll_s=0.01, idle_timeout_s=0.2)) == []
        assert reader.rate is None


def test_the_tap_is_read_to_its_end_after_it_was_deleted(tmp_path: Path) -> None:
    """At hang-up the caller's file is merged into the call recording and may be removed."""
    path = tmp_path / "tap.wav"
    path.write_bytes(wav_header() + np.arange(100, dtype="<i2").tobytes())
    with TapReader(path) as reader:
        assert reader.read().size == 100
        with path.open("ab") as f:
            f.write(np.arange(50, dtype="<i2").tobytes())
        path.unlink()
        assert reader.read().tolist() == list(range(50))


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (wav_header(channels=2), "2 channel"),
        (wav_header(bits=8), "8-bit"),
        (wav_header(fmt_tag=7), "0x0007"),  # μ-law
        (b"RIFX" + wav_header()[4:], "not a RIFF/WAVE"),
    ],
)
def test_taps_other_than_16_bit_pcm_mono_are_refused(tmp_path: Path, header: bytes, message: str) -> None:
    path = tmp_path / "tap.wav"
    path.write_bytes(header + bytes(100))
    with TapReader(path) as reader, pytest.raises(TapFormatError, match=message):
        reader.read()


def test_a_header_with_extra_chunks_is_parsed_to_the_data_chunk(tmp_path: Path) -> None:
    path = tmp_path / "list.wav"
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    info = b"LIST" + struct.pack("<I", 5) + b"INFO!" + b"\0"  # odd size, padded
    path.write_bytes(b"RIFF\0\0\0\0WAVEfmt " + fmt + info + b"data\0\0\0\0" + np.arange(10, dtype="<i2").tobytes())
    pcm, rate = read_wav(path)
    assert rate == 16000
    assert pcm.tolist() == list(range(10))


def test_read_wav_matches_the_standard_library_on_a_finished_file(tmp_path: Path) -> None:
    path = tmp_path / "done.wav"
    samples = np.arange(-500, 500, dtype=np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.tobytes())
    pcm, rate = read_wav(path)
    assert rate == 8000
    assert np.array_equal(pcm, samples)


def test_a_shrinking_tap_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "tap.wav"
    path.write_bytes(wav_header() + bytes(400))
    with TapReader(path) as reader:
        reader.read()
        os.truncate(path, 100)
        with pytest.raises(TapFormatError, match="shrank"):
            reader.read()
