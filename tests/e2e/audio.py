"""Audio for end-to-end tests: telephone WAVs made with sox, WAV reading, and proof by correlation.

An end-to-end test proves that speech went where it should by correlating the clip that was
played against what was recorded or captured, never by file sizes. ``best_correlation`` gives a
score in [0, 1] that does not depend on level (a louder or quieter copy scores ~1), is 0 for
digital silence, and stays high after G.711 coding and a partial copy of the clip.

``read_wav_mono`` parses WAV files itself (16-bit PCM, 8/24/32-bit PCM, float, μ-law, A-law,
WAVE_FORMAT_EXTENSIBLE), because the standard library's ``wave`` reads PCM only and recordings of
calls are often G.711. A file whose header was never finalised (the writer was killed) is read up
to its last whole frame.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from tests.support import require_tool

Samples = npt.NDArray[np.float32]
Encoding = Literal["u-law", "a-law", "signed"]

SOX_INSTALL = "apt-get install sox libsox-fmt-all"

# WAVE format tags (RFC 2361).
_PCM = 0x0001
_FLOAT = 0x0003
_ALAW = 0x0006
_MULAW = 0x0007
_EXTENSIBLE = 0xFFFE

# Windows of the signal quieter than this RMS (-80 dBFS) count as silence and score 0: without a
# floor, rounding noise in an all-zero stretch would divide by ~0 and score anything.
_SILENCE_RMS = 1e-4


class Match(NamedTuple):
    """Where a reference clip best matches a signal (unpacks as ``score, lag_s``)."""

    score: float
    """Peak normalised cross-correlation, in [0, 1]."""
    lag_s: float
    """Seconds into the signal where the reference's first sample lines up (negative when the
    clip's start is missing from the signal)."""


def sox_binary() -> str:
    """The sox executable; a missing one fails loudly with the command that installs it."""
    return require_tool("sox", SOX_INSTALL)


def _run_sox(args: list[str]) -> None:
    result = subprocess.run([sox_binary(), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"sox {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")


def to_telephone_wav(src: str | Path, dst: str | Path, encoding: Encoding = "u-law", rate: int = 8000) -> Path:
    """Converts ``src`` to a mono telephone WAV: 8 kHz μ-law (what sipp's ``rtp_stream`` plays
    with payload type 0), A-law (payload type 8) or 16-bit signed PCM (what baresip's aufile
    reads). sox resamples with its band-limiting filter."""
    sample_format = {
        "u-law": ["-e", "u-law", "-b", "8"],
        "a-law": ["-e", "a-law", "-b", "8"],
        "signed": ["-e", "signed-integer", "-b", "16"],
    }[encoding]
    dst = Path(dst)
    _run_sox([str(src), "-r", str(rate), "-c", "1", *sample_format, str(dst)])
    return dst


def pad_wav(src: str | Path, dst: str | Path, seconds_before: float, seconds_after: float) -> Path:
    """Copies ``src`` to ``dst`` with silence before and after, keeping its format."""
    dst = Path(dst)
    _run_sox([str(src), str(dst), "pad", f"{seconds_before:.3f}", f"{seconds_after:.3f}"])
    return dst


def _ulaw_table() -> Samples:
    codes = np.arange(256, dtype=np.int32)
    u = ~codes & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = (((u & 0x0F) << 3) + 0x84) << exponent
    linear = np.where(u & 0x80, 0x84 - magnitude, magnitude - 0x84)
    return (linear / 32768.0).astype(np.float32)


def _alaw_table() -> Samples:
    codes = np.arange(256, dtype=np.int32)
    a = codes ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    linear = np.where(a & 0x80, magnitude, -magnitude)
    return (linear / 32768.0).astype(np.float32)


ULAW_TABLE = _ulaw_table()
"""μ-law code → linear sample in [-1, 1) (ITU-T G.711, as sox and pjmedia decode it)."""
ALAW_TABLE = _alaw_table()
"""A-law code → linear sample in [-1, 1)."""


def ulaw_decode(data: bytes) -> Samples:
    """Decodes G.711 μ-law bytes (an RTP payload of type 0, say) to float32 samples."""
    return ULAW_TABLE[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> Samples:
    """Decodes G.711 A-law bytes (payload type 8) to float32 samples."""
    return ALAW_TABLE[np.frombuffer(data, dtype=np.uint8)]


def _chunks(blob: bytes) -> dict[bytes, bytes]:
    if len(blob) < 12 or blob[:4] not in (b"RIFF", b"RIFX") or blob[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    if blob[:4] == b"RIFX":
        raise ValueError("big-endian RIFX WAV files are not supported")
    chunks: dict[bytes, bytes] = {}
    offset = 12
    while offset + 8 <= len(blob):
        chunk_id = blob[offset : offset + 4]
        (size,) = struct.unpack_from("<I", blob, offset + 4)
        body = blob[offset + 8 : offset + 8 + size]  # a truncated last chunk keeps what is there
        chunks.setdefault(chunk_id, body)
        if chunk_id == b"data":
            break  # a writer that never finalised its header may claim a size past the end
        offset += 8 + size + (size & 1)
    if b"fmt " not in chunks or b"data" not in chunks:
        raise ValueError("WAV file without a fmt or data chunk")
    return chunks


def _decode_frames(tag: int, bits: int, data: bytes) -> Samples:
    if tag == _MULAW and bits == 8:
        return ulaw_decode(data)
    if tag == _ALAW and bits == 8:
        return alaw_decode(data)
    if tag == _PCM and bits == 8:
        return ((np.frombuffer(data, dtype=np.uint8).astype(np.float32)) - 128.0) / 128.0
    if tag == _PCM and bits == 16:
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    if tag == _PCM and bits == 24:
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        value = np.where(value & 0x800000, value - (1 << 24), value)
        return (value / float(1 << 23)).astype(np.float32)
    if tag == _PCM and bits == 32:
        return (np.frombuffer(data, dtype="<i4") / float(1 << 31)).astype(np.float32)
    if tag == _FLOAT and bits == 32:
        return np.frombuffer(data, dtype="<f4").astype(np.float32)
    if tag == _FLOAT and bits == 64:
        return np.frombuffer(data, dtype="<f8").astype(np.float32)
    raise ValueError(f"unsupported WAV sample format: tag {tag:#06x}, {bits} bits")


def read_wav_mono(path: str | Path, channel: int | None = None, rate: int | None = None) -> tuple[Samples, int]:
    """Reads a WAV file as float32 samples in [-1, 1] and its sample rate.

    ``channel`` picks one channel of a multi-channel file (0 = left, 1 = right); None mixes all
    channels down to their mean. With ``rate``, the samples are resampled to it (band-limited,
    see ``resample``) and that rate is returned.
    """
    chunks = _chunks(Path(path).read_bytes())
    fmt = chunks[b"fmt "]
    if len(fmt) < 16:
        raise ValueError(f"{path}: fmt chunk too short")
    tag, channels, file_rate, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE:
        if len(fmt) < 26:
            raise ValueError(f"{path}: WAVE_FORMAT_EXTENSIBLE without a sub-format")
        (tag,) = struct.unpack_from("<H", fmt, 24)
    if channels < 1 or block_align != channels * ((bits + 7) // 8):
        raise ValueError(f"{path}: inconsistent fmt chunk ({channels} ch, {bits} bits, align {block_align})")
    data = chunks[b"data"]
    data = data[: len(data) - len(data) % block_align]
    frames = _decode_frames(tag, bits, data).reshape(-1, channels)
    if channel is None:
        mono = frames.mean(axis=1, dtype=np.float32) if channels > 1 else frames[:, 0]
    elif 0 <= channel < channels:
        mono = frames[:, channel]
    else:
        raise ValueError(f"{path}: has {channels} channel(s), no channel {channel}")
    samples = np.ascontiguousarray(mono, dtype=np.float32)
    if rate is not None and rate != file_rate:
        return resample(samples, file_rate, rate), rate
    return samples, file_rate


def resample(samples: npt.ArrayLike, src_rate: int, dst_rate: int) -> Samples:
    """Band-limited resampling by the FFT (an ideal low-pass when going down): exact enough for
    correlating speech recorded at 8 kHz against a 16 kHz reference."""
    x = np.asarray(samples, dtype=np.float64)
    if src_rate == dst_rate or x.size == 0:
        return x.astype(np.float32)
    n_out = round(x.size * dst_rate / src_rate)
    spectrum = np.fft.rfft(x)
    bins = n_out // 2 + 1
    if bins <= spectrum.size:
        spectrum = spectrum[:bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(bins - spectrum.size, dtype=spectrum.dtype)])
    return (np.fft.irfft(spectrum, n=n_out) * (n_out / x.size)).astype(np.float32)


def _windows(reference: npt.NDArray[np.float64], length: int, hop: int) -> list[int]:
    """Start offsets of the reference windows worth correlating: every ``hop`` samples, keeping
    those with at least a quarter of the loudest window's energy (the ones with speech in)."""
    last = reference.size - length
    starts = sorted({*range(0, last + 1, max(hop, 1)), last})
    energy = np.array([float(np.dot(w, w)) for w in (reference[s : s + length] for s in starts)])
    if energy.max(initial=0.0) <= 0.0:
        return []
    return [s for s, e in zip(starts, energy, strict=True) if e >= 0.25 * energy.max()]


def best_correlation(
    reference: npt.ArrayLike,
    signal: npt.ArrayLike,
    rate: int,
    window_s: float | None = 2.0,
    hop_s: float = 0.5,
) -> Match:
    """How well, and where, ``reference`` appears in ``signal`` (both at ``rate``).

    The reference is cut into ``window_s``-second windows every ``hop_s`` seconds (the loud ones:
    windows with speech); each window slides over every offset of the signal where it fits
    entirely, and at each offset the Pearson correlation between the window and that stretch of
    signal is computed (FFT cross-correlation, normalised by the energy of both after removing
    their means). The best absolute value over all windows and offsets is the score. So a copy at
    another level or polarity scores ~1, digital silence (below -80 dBFS) scores 0, unrelated
    speech scores low, and a clip of which only ``window_s`` seconds reached the signal still
    scores high. ``window_s=None`` correlates the whole clip at once.
    """
    ref = np.asarray(reference, dtype=np.float64).ravel()
    sig = np.asarray(signal, dtype=np.float64).ravel()
    if ref.size == 0 or sig.size == 0:
        return Match(0.0, 0.0)
    length = ref.size if window_s is None else min(ref.size, max(1, round(window_s * rate)))
    if sig.size < length:
        sig = np.concatenate([sig, np.zeros(length - sig.size)])
    starts = _windows(ref, length, round(hop_s * rate))
    if not starts:
        return Match(0.0, 0.0)

    lags = sig.size - length + 1
    csum = np.concatenate([[0.0], np.cumsum(sig)])
    csum2 = np.concatenate([[0.0], np.cumsum(sig * sig)])
    window_sum = csum[length:] - csum[:lags]
    window_var = (csum2[length:] - csum2[:lags]) - window_sum * window_sum / length
    silent = window_var < length * _SILENCE_RMS**2
    sig_norm = np.sqrt(np.where(silent, 1.0, window_var))

    nfft = 1 << int(np.ceil(np.log2(sig.size + length)))
    sig_spectrum = np.fft.rfft(sig, nfft)
    best = Match(0.0, 0.0)
    for start in starts:
        window = ref[start : start + length]
        window = window - window.mean()
        ref_norm = float(np.sqrt(np.dot(window, window)))
        if ref_norm == 0.0:
            continue
        # Cross-correlation at lag k: sum_n window[n] * sig[k + n]. The window has zero mean, so
        # this equals the covariance numerator without subtracting the signal window's mean.
        cross = np.fft.irfft(sig_spectrum * np.conj(np.fft.rfft(window, nfft)), nfft)[:lags]
        pearson = np.abs(cross) / (ref_norm * sig_norm)
        pearson[silent] = 0.0
        k = int(np.argmax(pearson))
        score = min(1.0, float(pearson[k]))
        if score > best.score:
            best = Match(score, (k - start) / rate)
    return best
