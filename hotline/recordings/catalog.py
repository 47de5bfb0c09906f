"""What the catalogue records of a recording file (format, size, length, SHA-256), and its
registration when the call ends.

The ticket store keeps the catalogue; this module only reads files. `register` is what the
control plane's ticket writer calls after saving a call record: the file is read (checksum) in
a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import wave
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from hotline.recordings.stereo import sha256_of

# Container formats by file suffix: WAV as the media worker writes it; FLAC or Opus if an
# archive job compresses it later.
FORMATS = {".wav": "wav", ".flac": "flac", ".opus": "opus", ".ogg": "opus"}
CONTENT_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "opus": "audio/ogg"}


@dataclasses.dataclass(frozen=True, slots=True)
class RecordingFile:
    """What the catalogue records of one file."""

    path: Path
    format: str
    bytes: int
    seconds: float
    sha256: str


def describe(path: Path) -> RecordingFile:
    """Size, length and SHA-256 of a recording file; reads the whole file (run it off the loop).

    The length is read from the WAV header; for other formats it is 0 (unknown). OSError if the
    file cannot be read, ValueError for an unknown suffix or a broken WAV header."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: not a recording (suffix {path.suffix!r}; known: {', '.join(FORMATS)})")
    seconds = 0.0
    if fmt == "wav":
        try:
            with wave.open(str(path), "rb") as w:
                rate = w.getframerate()
                seconds = w.getnframes() / float(rate) if rate else 0.0
        except (wave.Error, EOFError) as exc:
            raise ValueError(f"{path}: broken WAV header: {exc}") from exc
    return RecordingFile(path, fmt, path.stat().st_size, round(seconds, 3), sha256_of(path))


def verify(path: Path, sha256: str) -> bool:
    """True if the file's SHA-256 is the one recorded."""
    return sha256_of(path) == sha256


class RecordingRegistry(Protocol):
    """What registration needs of the ticket store (SqlTicketStore.register_recording)."""

    def register_recording(
        self,
        call_id: Any,
        path: str,
        *,
        format: str,
        bytes: int,
        seconds: float,
        sha256: str,
        created_at: datetime,
        kind: str | None = None,
    ) -> object: ...


async def register(
    registry: RecordingRegistry, call_id: str, path: Path, created_at: datetime, kind: str | None = None
) -> RecordingFile:
    """Describes the file and catalogues it (both in worker threads); returns what was recorded.
    OSError/ValueError for a file that cannot be read; the store's errors as they are."""
    info = await asyncio.to_thread(describe, path)
    await asyncio.to_thread(
        lambda: registry.register_recording(
            call_id,
            str(path),
            format=info.format,
            bytes=info.bytes,
            seconds=info.seconds,
            sha256=info.sha256,
            created_at=created_at,
            kind=kind,
        )
    )
    return info
