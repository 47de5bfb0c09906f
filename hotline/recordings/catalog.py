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
from typing import Any, Protocol, runtime_checkable

from hotline.recordings.call import GAPS_FIELD, MISSING_FIELD
from hotline.recordings.compress import flac_seconds
from hotline.recordings.gaps import REASONS, Gap
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

    The length is read from the WAV header or the FLAC's STREAMINFO; for Opus it is 0 (unknown).
    OSError if the file cannot be read, ValueError for an unknown suffix or a broken header."""
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
    elif fmt == "flac":
        seconds = flac_seconds(path)
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


@runtime_checkable
class GapRegistry(Protocol):
    """What gap registration needs of the ticket store (SqlTicketStore.add_recording_gaps)."""

    def add_recording_gaps(self, call_id: Any, gaps: list[Gap], created_at: datetime) -> object: ...


def gaps_of(data: dict[str, Any]) -> list[Gap]:
    """The gaps a call.ended event carries (recordings.call.GAPS_FIELD, plus a gap over the whole
    call if nothing was kept, MISSING_FIELD saying why); malformed ones raise ValueError."""
    raw = data.get(GAPS_FIELD) or []
    if not isinstance(raw, list):
        raise ValueError(f"{GAPS_FIELD} is not a list")
    gaps = [Gap.from_dict(item) for item in raw]
    missing = str(data.get(MISSING_FIELD) or "")
    if missing and not any(gap.start_ms == 0 for gap in gaps):
        gaps.insert(0, Gap(0, None, "system", missing if missing in REASONS else "not-recorded"))
    return gaps


async def register_gaps(registry: GapRegistry, call_id: str, data: dict[str, Any], created_at: datetime) -> list[Gap]:
    """Catalogues the gaps (pauses, a recording missing or cut short) a call.ended event carries;
    idempotent by (call, start). ValueError for malformed gaps; the store's errors as they are."""
    gaps = gaps_of(data)
    if gaps:
        await asyncio.to_thread(registry.add_recording_gaps, call_id, gaps, created_at)
    return gaps


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
