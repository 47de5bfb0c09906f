"""Recording gaps and FLAC entries in the catalogue (hotline/tickets/recordings_meta.py), on
SQLite and PostgreSQL; and the control plane's registration of what a call.ended event carries."""

from __future__ import annotations

import wave
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hotline.core.errors import InvalidRequest
from hotline.core.model import CallId
from hotline.recordings import catalog
from hotline.recordings.compress import to_flac
from hotline.recordings.gaps import Gap
from hotline.tickets.recordings_meta import GapRow
from hotline.tickets.store import SqlTicketStore

STARTED = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)


@pytest.fixture
def store(ticket_store_url: str) -> Iterator[SqlTicketStore]:
    opened = SqlTicketStore(ticket_store_url)
    yield opened
    opened.close()


def test_gaps_are_idempotent_by_start_and_come_with_the_recording(store: SqlTicketStore, tmp_path: Path) -> None:
    call = CallId("20260601T040000-00000001")
    open_gap = [Gap(2500, None, "agent1", "paused")]
    assert store.add_recording_gaps(call, open_gap, STARTED) == [GapRow(call, 2500, None, "paused", "agent1")]
    closed = [Gap(2500, 6100, "agent1", "paused"), Gap(9000, 9800, "sup", "paused")]
    store.add_recording_gaps(call, closed, STARTED)
    store.add_recording_gaps(call, closed, STARTED)  # the ticket writer may see the event twice
    rows = store.recording_gaps(call)
    assert rows == [GapRow(call, 2500, 6100, "paused", "agent1"), GapRow(call, 9000, 9800, "paused", "sup")]
    assert store.get_recording(call) is None  # gaps need no catalogue row
    recorded = store.register_recording(
        call, "/rec/x.flac", format="flac", bytes=10, seconds=12.0, sha256="ab" * 32, created_at=STARTED
    )
    assert recorded.gaps == tuple(rows)
    got = store.get_recording(call)
    assert got is not None and got.format == "flac" and got.gaps == tuple(rows)
    assert got.to_dict()["gaps"][0] == {"start_ms": 2500, "end_ms": 6100, "reason": "paused", "by": "agent1"}
    assert store.recording_gaps(CallId("nobody")) == []


def test_bad_gaps_are_refused(store: SqlTicketStore) -> None:
    call = CallId("c-bad")
    with pytest.raises(InvalidRequest):
        store.add_recording_gaps(call, [Gap(10, 5, "a", "paused")], STARTED)
    with pytest.raises(InvalidRequest):
        store.add_recording_gaps(call, [Gap(0, 5, "a", "lunch")], STARTED)
    with pytest.raises(InvalidRequest):
        store.add_recording_gaps(call, [Gap(0, 5, "  ", "paused")], STARTED)
    assert store.recording_gaps(call) == []


async def test_a_flac_and_its_gaps_are_registered_from_the_event(store: SqlTicketStore, tmp_path: Path) -> None:
    wav = tmp_path / "c.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(range(256)) * 125)  # 32,000 bytes: 8,000 stereo frames, 1 s
    flac = to_flac(wav).path
    call = CallId("c-flac")
    info = await catalog.register(store, call, flac, STARTED)
    data = {"recording_gaps": [{"start_ms": 100, "end_ms": 400, "by": "agent1", "reason": "paused"}]}
    assert await catalog.register_gaps(store, call, data, STARTED) == [Gap(100, 400, "agent1", "paused")]
    got = store.get_recording(call)
    assert got is not None
    assert (got.format, got.seconds, got.bytes, got.sha256) == ("flac", 1.0, flac.stat().st_size, info.sha256)
    assert [g.to_dict() for g in got.gaps] == [{"start_ms": 100, "end_ms": 400, "reason": "paused", "by": "agent1"}]


async def test_a_missing_recording_leaves_a_gap_saying_why(store: SqlTicketStore) -> None:
    call = CallId("c-full")
    await catalog.register_gaps(store, call, {"recording_gaps": [], "recording_missing": "disk-low"}, STARTED)
    assert store.recording_gaps(call) == [GapRow(call, 0, None, "disk-low", "system")]
    assert await catalog.register_gaps(store, CallId("c-none"), {}, STARTED) == []
