"""Audio for recognition: the growing WAV tap, sample formats, and the one resampling step.

The media worker records each caller's leg into an 8 kHz 16-bit mono WAV while the call goes on
(pjmedia's recorder writes a 44-byte header with zero sizes and fixes them only when it closes the
file). `TapReader` follows such a file by its size, never by its header's sizes, and hands out
whole 16-bit frames. Recognisers take 16 kHz; `to_16k` and `Upsampler` convert once, with soxr's
band-limited filter (a linear interpolation would leave images of the telephone band above 4 kHz
that the models would hear as noise).
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from hotline.asr import backends

PCM16 = npt.NDArray[np.int16]
Audio = backends.Audio

MODEL_RATE = 16000
"""The rate every recogniser here takes."""

_EMPTY = np.zeros(0, dtype=np.int16)
_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_HEADER_LIMIT = 4096  # a tap's header is 44 bytes; give up looking for "data" past this


class TapFormatError(ValueError):
    """The file is not a 16-bit PCM mono WAV."""


def pcm16_to_float(pcm: PCM16) -> Audio:
    """16-bit samples as float32 in [-1, 1)."""
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32, copy=False)


def float_to_pcm16(audio: Audio) -> PCM16:
    """float32 in [-1, 1] as 16-bit samples (rounded, clipped)."""
    return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)


def as_float(audio: npt.NDArray[np.int16] | npt.NDArray[np.float32]) -> Audio:
    """Either sample format as float32 in [-1, 1)."""
    if audio.ndim != 1:
        raise ValueError(f"mono audio expected, got an array of shape {audio.shape}")
    if audio.dtype == np.int16:
        return pcm16_to_float(audio.astype(np.int16, copy=False))
    if audio.dtype == np.float32:
        return audio.astype(np.float32, copy=False)
    raise TypeError(f"audio must be int16 or float32 samples, not {audio.dtype}")


def to_16k(pcm: PCM16, rate: int) -> Audio:
    """A whole recording as 16 kHz float audio, resampled once if needed."""
    return backends.resample(pcm16_to_float(pcm), rate, MODEL_RATE)


class Upsampler:
    """Chunks of 16-bit audio at `rate` in, 16 kHz float audio out, as one continuous signal."""

    def __init__(self, rate: int) -> None:
        self._stream = backends.ResampleStream(rate, MODEL_RATE)

    def push(self, pcm: PCM16) -> Audio:
        return self._stream.push(pcm16_to_float(pcm))

    def flush(self) -> Audio:
        """The filter's last output; call once at the end."""
        return self._stream.push(np.zeros(0, dtype=np.float32), last=True)


class TapReader:
    """Reads a WAV that is still being written, by file size, in whole 16-bit mono frames.

    `read()` returns the frames added since the previous call (possibly none); a partial last
    frame stays for the next call. The file may not exist yet, or may be shorter than its header:
    `read()` then returns nothing. The file is kept open once found, so it can still be read to
    its end after the recorder's owner has moved or deleted it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rate: int | None = None
        """The sample rate, known once the header has been read."""
        self.frames_read = 0
        self._fd: int | None = None
        self._data_offset: int | None = None
        self._position = 0

    def __enter__(self) -> TapReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def seconds_read(self) -> float:
        return self.frames_read / self.rate if self.rate else 0.0

    def read(self) -> PCM16:
        """The whole frames written since the last call."""
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return _EMPTY
        size = os.fstat(self._fd).st_size
        if self._data_offset is None and not self._read_header(size):
            return _EMPTY
        assert self._data_offset is not None
        if size < self._position:
            raise TapFormatError(f"{self.path} shrank from {self._position} to {size} bytes while being read")
        available = (size - self._position) // 2 * 2
        if available == 0:
            return _EMPTY
        data = os.pread(self._fd, available, self._position)
        usable = len(data) // 2 * 2  # a concurrent truncate could return fewer bytes
        self._position += usable
        frames = np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)
        self.frames_read += frames.size
        return frames

    def follow(
        self,
        *,
        poll_s: float = 0.1,
        idle_timeout_s: float = 5.0,
        stop: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[PCM16]:
        """Yields new frames as the file grows. Ends when `stop()` is true (after draining what
        was written by then) or when the file has not grown for `idle_timeout_s`."""
        last_growth = clock()
        while True:
            stopping = stop is not None and stop()
            chunk = self.read()
            if chunk.size:
                last_growth = clock()
                yield chunk
                continue
            if stopping or clock() - last_growth >= idle_timeout_s:
                return
            sleep(poll_s)

    def _read_header(self, size: int) -> bool:
        """Parses RIFF/WAVE up to the data chunk; False while it is not all written yet."""
        assert self._fd is not None
        head = os.pread(self._fd, min(size, _HEADER_LIMIT), 0)
        if len(head) < 12:
            return False
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise TapFormatError(f"{self.path} is not a RIFF/WAVE file")
        pos = 12
        rate: int | None = None
        while pos + 8 <= len(head):
            chunk_id = head[pos : pos + 4]
            (chunk_len,) = struct.unpack_from("<I", head, pos + 4)
            body = pos + 8
            if chunk_id == b"data":
                if rate is None:
                    raise TapFormatError(f"{self.path}: data chunk before the fmt chunk")
                self.rate = rate
                self._data_offset = self._position = body
                return True
            if chunk_id == b"fmt ":
                if chunk_len < 16:
                    raise TapFormatError(f"{self.path}: fmt chunk of {chunk_len} bytes")
                if body + chunk_len > len(head):
                    return False  # not all written yet
                rate = self._parse_fmt(head[body : body + chunk_len])
            pos = body + chunk_len + (chunk_len & 1)
        if len(head) >= _HEADER_LIMIT:
            raise TapFormatError(f"{self.path}: no data chunk in the first {_HEADER_LIMIT} bytes")
        return False

    def _parse_fmt(self, fmt: bytes) -> int:
        tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", fmt, 0)
        if tag == _WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
            (tag,) = struct.unpack_from("<H", fmt, 24)  # first two bytes of the sub-format GUID
        if tag != _WAVE_FORMAT_PCM or bits != 16 or channels != 1:
            raise TapFormatError(
                f"{self.path}: format tag {tag:#06x}, {bits}-bit, {channels} channel(s); "
                "the tap must be 16-bit PCM mono"
            )
        if rate <= 0:
            raise TapFormatError(f"{self.path}: sample rate {rate}")
        return int(rate)


def read_wav(path: str | Path) -> tuple[PCM16, int]:
    """A whole 16-bit PCM mono WAV (finished or still growing): samples and rate."""
    with TapReader(path) as reader:
        pcm = reader.read()
        if reader.rate is None:
            if not reader.path.exists():
                raise FileNotFoundError(path)
            raise TapFormatError(f"{path}: incomplete WAV header")
        return pcm, reader.rate
