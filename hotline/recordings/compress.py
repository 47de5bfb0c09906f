"""Lossless compression of a finished call recording: stereo WAV to FLAC, checked before the WAV goes.

Rules of this module:
- The FLAC is written by `sox` (Debian's sox with libsox-fmt-all, already a dependency for the
  prompts) into a temporary name beside the WAV, then decoded again and compared with the WAV's
  samples: same sample rate, channels, and every sample equal (so the decoded length equals the
  WAV's). Only then is it renamed into place and the WAV removed. A conversion that fails or does
  not compare equal leaves the WAV as it was and raises CompressError: the call keeps a WAV
  recording, never none.
- Blocking (a child process and file I/O): call it in a worker thread, never on the event loop
  nor on the pjsua2 thread. Measured cost: docs/benchmarks.md (`bench/recordings_flac.py`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import subprocess
import wave
from pathlib import Path

logger = logging.getLogger(__name__)

SOX = "sox"
TIMEOUT_S = 300.0  # a 2-hour stereo call converts in a few seconds; this only stops a hung sox


class CompressError(Exception):
    """The FLAC could not be made or did not decode to the WAV's samples; the WAV is kept."""


@dataclasses.dataclass(frozen=True, slots=True)
class Compressed:
    path: Path  # the FLAC
    frames: int  # samples per channel, equal in both files
    wav_bytes: int
    flac_bytes: int


def flac_path(wav: Path) -> Path:
    return wav.with_suffix(".flac")


def _pcm_digest(data: bytes) -> tuple[int, str]:
    return len(data), hashlib.sha256(data).hexdigest()


def _wav_facts(wav: Path) -> tuple[int, int, int, bytes]:
    with wave.open(str(wav), "rb") as w:
        if w.getsampwidth() != 2:
            raise CompressError(f"{wav}: only 16-bit PCM is compressed, found {8 * w.getsampwidth()}-bit")
        return w.getframerate(), w.getnchannels(), w.getnframes(), w.readframes(w.getnframes())


def _run(args: list[str]) -> bytes:
    sox = shutil.which(SOX)
    if sox is None:
        raise CompressError("sox is not installed (apt-get install sox libsox-fmt-all)")
    try:
        done = subprocess.run([sox, *args], capture_output=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CompressError(f"sox {' '.join(args)}: {exc}") from exc
    if done.returncode != 0:
        raise CompressError(f"sox {' '.join(args)}: exit {done.returncode}: {done.stderr.decode(errors='replace')}")
    return done.stdout


def decode_flac(path: Path, rate: int, channels: int) -> bytes:
    """The FLAC's samples as 16-bit little-endian interleaved PCM (what a WAV's data chunk holds)."""
    return _run(
        ["-V1", "-t", "flac", str(path), "-t", "raw", "-r", str(rate), "-c", str(channels), "-e", "signed",
         "-b", "16", "-L", "-"]
    )  # fmt: skip


def to_flac(wav: Path) -> Compressed:
    """Converts `wav` to `<same name>.flac`, checks it, removes the WAV; see the module's rules."""
    try:
        rate, channels, frames, pcm = _wav_facts(wav)
    except (OSError, EOFError, wave.Error) as exc:
        raise CompressError(f"{wav}: cannot read: {exc}") from exc
    out = flac_path(wav)
    tmp = out.with_name(out.name + ".tmp")
    try:
        _run(["-V1", str(wav), "-t", "flac", "-C", "5", str(tmp)])
        decoded = decode_flac(tmp, rate, channels)
        if _pcm_digest(decoded) != _pcm_digest(pcm):
            raise CompressError(
                f"{tmp}: decodes to {len(decoded) // (2 * channels)} frames that differ from the WAV's "
                f"{frames}: not kept"
            )
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    wav_bytes = wav.stat().st_size
    wav.unlink()
    return Compressed(out, frames, wav_bytes, out.stat().st_size)


def flac_seconds(path: Path) -> float:
    """The length of a FLAC file from its STREAMINFO block (total samples / sample rate); 0.0 if
    the stream does not say. ValueError for a file that is not FLAC."""
    with path.open("rb") as f:
        head = f.read(4 + 4 + 34)
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        raise ValueError(f"{path}: not a FLAC stream (no STREAMINFO)")
    info = head[8:42]
    bits = int.from_bytes(info[10:18], "big")  # rate 20 bits, channels 3, bps 5, total samples 36
    rate = bits >> 44
    total = bits & ((1 << 36) - 1)
    return total / rate if rate and total else 0.0


def store_as(wav: Path, fmt: str) -> Path:
    """The call's recording in the configured format: the FLAC if `fmt` is "flac" and the
    conversion checked out, else the WAV (a failed conversion is logged; the WAV is kept)."""
    if fmt != "flac":
        return wav
    try:
        done = to_flac(wav)
    except CompressError as exc:
        logger.error("recording %s kept as WAV: %s", wav, exc)
        return wav
    logger.info(
        "recording %s: FLAC %d bytes (WAV %d, %.0f %%)",
        done.path, done.flac_bytes, done.wav_bytes, 100 * done.flac_bytes / max(1, done.wav_bytes),
    )  # fmt: skip
    return done.path
