"""The purge job's file side (hotline/recordings/retention.py) and what the catalogue records of a
file (hotline/recordings/catalog.py): no store, files in a temp folder."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hotline.recordings.catalog import describe, verify
from hotline.recordings.retention import purge

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class Item:
    call_id: str
    path: str
    bytes: int
    created_at: datetime
    kind: str | None = None
    retention_days: int = 180


def write_wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00\x02\x00" * int(seconds * rate))
    return path


def item(path: Path, days: float, **changes: object) -> Item:
    size = path.stat().st_size if path.exists() else 123
    return dataclasses.replace(Item(path.stem, str(path), size, NOW - timedelta(days=days)), **changes)  # type: ignore[arg-type]


def test_describe_a_stereo_wav(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "c1.wav", 2.5)
    info = describe(path)
    assert (info.format, info.bytes, info.seconds) == ("wav", path.stat().st_size, 2.5)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert verify(path, info.sha256)
    path.write_bytes(path.read_bytes() + b"\x00")
    assert not verify(path, info.sha256)


def test_describe_refuses_what_is_not_a_recording(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a recording"):
        describe(tmp_path / "notes.txt")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not a wav")
    with pytest.raises(ValueError, match="broken WAV"):
        describe(broken)
    with pytest.raises(OSError):
        describe(tmp_path / "missing.wav")
    flac = tmp_path / "c2.flac"
    flac.write_bytes(b"fLaC" + bytes(100))
    assert (describe(flac).format, describe(flac).seconds, describe(flac).bytes) == ("flac", 0.0, 104)


def test_purge_deletes_exactly_the_listed_files_and_logs_each(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    day = tmp_path / "2025" / "11" / "01"
    old = [write_wav(day / f"old-{n}.wav", 0.1) for n in range(3)]
    others = [write_wav(day / "keep.wav", 0.1), write_wav(day / "old-0.caller.wav", 0.1), day / "notes.txt"]
    others[-1].write_text("keep me", encoding="utf-8")
    caplog.set_level(logging.INFO, logger="hotline.recordings.retention")
    report = purge([item(p, 200, kind="complaint", retention_days=180) for p in old], NOW)
    assert [p.call_id for p in report.purged] == ["old-0", "old-1", "old-2"]
    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in others)
    assert report.failed == [] and report.bytes_freed == sum(p.bytes for p in report.purged) > 0
    assert {(p.age_days, p.kind, p.retention_days, p.missing) for p in report.purged} == {
        (200.0, "complaint", 180, False)
    }
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    for path, line in zip(old, lines, strict=True):
        assert f"recording {path.stem}: deleted {path}" in line and "age 200.0 days" in line and "bytes" in line


def test_a_missing_file_counts_as_purged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    report = purge([item(tmp_path / "gone.wav", 300)], NOW)
    assert [(p.call_id, p.missing, p.bytes) for p in report.purged] == [("gone", True, 123)]
    assert report.bytes_freed == 0
    assert "already gone" in caplog.text


def test_dry_run_deletes_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_wav(tmp_path / "c1.wav", 0.1)
    caplog.set_level(logging.INFO, logger="hotline.recordings.retention")
    report = purge([item(path, 300)], NOW, dry_run=True)
    assert path.exists() and report.dry_run and [p.call_id for p in report.purged] == ["c1"]
    assert "would delete" in caplog.text


def test_a_file_that_cannot_be_deleted_is_reported_and_the_rest_go_on(tmp_path: Path) -> None:
    stuck, fine = write_wav(tmp_path / "stuck.wav", 0.1), write_wav(tmp_path / "fine.wav", 0.1)
    directory = tmp_path / "dir.wav"
    directory.mkdir()

    def remove(path: Path) -> None:
        if path == stuck:
            raise PermissionError(13, "Permission denied", str(path))
        path.unlink()

    report = purge([item(stuck, 300), item(directory, 300), item(fine, 300)], NOW, remove=remove)
    assert [p.call_id for p in report.purged] == ["fine"]
    assert [call_id for call_id, _ in report.failed] == ["stuck", "dir"]
    assert stuck.exists() and directory.exists() and not fine.exists()
