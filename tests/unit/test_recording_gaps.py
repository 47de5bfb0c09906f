"""Recording gaps (sans-IO), the per-call recording controller with a recorder fake, the space
guard with an injected probe, and what the call.ended event carries to the catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hotline.recordings.call import GAPS_FIELD, MISSING_FIELD, CallRecording, SpaceWatch, disk_alert
from hotline.recordings.catalog import gaps_of
from hotline.recordings.gaps import Gap, GapLog
from hotline.recordings.space import MB, SpaceGuard, free_bytes


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorders:
    """Records what the controller asked of the SIP endpoint."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, ...]] = []

    async def record(self, leg_id: str, wav_path: str) -> None:
        self.calls.append(("record", leg_id, Path(wav_path).name))

    async def stop_record(self, wav_path: str) -> None:
        self.calls.append(("stop", Path(wav_path).name))

    async def mute_record(self, wav_path: str, muted: bool) -> None:
        self.calls.append(("mute", Path(wav_path).name, muted))


def test_pause_twice_is_one_gap_and_resume_closes_it() -> None:
    log = GapLog()
    log.started(10.0)
    assert log.pause(12.5, "agent1")
    assert not log.pause(13.0, "agent1")  # idempotent
    assert log.paused
    assert log.resume(15.25, "agent1")
    assert not log.resume(16.0, "agent1")
    assert log.close(20.0) == [Gap(2500, 5250, "agent1", "paused")]


def test_a_call_ending_while_paused_closes_the_gap_at_the_end() -> None:
    log = GapLog()
    log.started(0.0)
    log.pause(1.0, "sup")
    assert log.gaps == [Gap(1000, None, "sup", "paused")]
    assert log.close(4.0) == [Gap(1000, 4000, "sup", "paused")]


def test_nothing_recorded_means_no_pause() -> None:
    log = GapLog()
    assert not log.pause(1.0, "agent1")
    assert log.close(2.0) == []


def test_a_cut_closes_the_pause_and_runs_to_the_end() -> None:
    log = GapLog()
    log.started(0.0)
    log.pause(1.0, "agent1")
    assert log.cut(2.0, "disk-low")
    assert not log.recording and not log.pause(2.5, "agent1")
    assert log.close(5.0) == [Gap(1000, 2000, "agent1", "paused"), Gap(2000, 5000, "system", "disk-low")]


def test_gap_from_dict_refuses_reversed_and_unknown() -> None:
    assert Gap.from_dict({"start_ms": 1, "end_ms": None, "by": "a", "reason": "paused"}).end_ms is None
    with pytest.raises(ValueError):
        Gap.from_dict({"start_ms": 5, "end_ms": 1, "by": "a", "reason": "paused"})
    with pytest.raises(ValueError):
        Gap.from_dict({"start_ms": 0, "end_ms": 1, "by": "a", "reason": "lunch"})


async def test_pause_mutes_every_leg_and_a_leg_joining_while_paused_starts_muted(tmp_path: Path) -> None:
    sip, clock = Recorders(), Clock()
    rec = CallRecording("c1")
    check = await rec.start(sip, "in-1", tmp_path / "c1.caller.wav", SpaceGuard(0), clock)
    assert check.ok
    clock.now += 2.0
    assert await rec.set_paused(sip, True, "agent1", clock)
    assert not await rec.set_paused(sip, True, "agent1", clock)  # pause twice: one gap, no new mute
    await rec.add_leg(sip, "out-1", tmp_path / "c1.agent.wav")
    clock.now += 3.0
    assert await rec.set_paused(sip, False, "agent1", clock)
    clock.now += 1.0
    assert rec.finish(clock()) == [Gap(2000, 5000, "agent1", "paused")]
    assert sip.calls == [
        ("record", "in-1", "c1.caller.wav"),
        ("mute", "c1.caller.wav", True),
        ("record", "out-1", "c1.agent.wav"),
        ("mute", "c1.agent.wav", True),
        ("mute", "c1.caller.wav", False),
        ("mute", "c1.agent.wav", False),
    ]
    assert rec.event_fields(kept=True) == {
        GAPS_FIELD: [{"start_ms": 2000, "end_ms": 5000, "by": "agent1", "reason": "paused"}],
        MISSING_FIELD: "",
    }


async def test_no_room_means_no_recorder_and_the_reason_is_kept(tmp_path: Path) -> None:
    sip = Recorders()
    rec = CallRecording("c2")
    guard = SpaceGuard(500, probe=lambda _path: 499 * MB)
    check = await rec.start(sip, "in-1", tmp_path / "c2.caller.wav", guard, Clock())
    assert not check.ok and check.free_mb == 499.0 and check.min_free_mb == 500
    await rec.add_leg(sip, "out-1", tmp_path / "c2.agent.wav")
    assert not await rec.set_paused(sip, True, "agent1", Clock())
    assert sip.calls == []  # no recorder at all
    rec.finish(200.0)
    fields = rec.event_fields(kept=False)
    assert fields == {GAPS_FIELD: [], MISSING_FIELD: "disk-low"}
    # The catalogue gets one gap over the whole call saying why.
    assert gaps_of(fields) == [Gap(0, None, "system", "disk-low")]


def test_a_probe_that_fails_counts_as_full_and_zero_turns_the_check_off(tmp_path: Path) -> None:
    def broken(_path: Path) -> int:
        raise OSError("EIO")

    assert not SpaceGuard(1, probe=broken).check(tmp_path).ok
    assert SpaceGuard(0, probe=broken).check(tmp_path).ok
    assert SpaceGuard(1).check(tmp_path / "not" / "yet").ok  # statvfs of the nearest existing parent
    assert free_bytes(tmp_path / "a" / "b") > 0


async def test_space_watch_cuts_recordings_and_alerts_once_per_episode(tmp_path: Path) -> None:
    free = {"bytes": 100 * MB}
    watch = SpaceWatch(SpaceGuard(50, probe=lambda _p: free["bytes"]), tmp_path)
    sip, clock = Recorders(), Clock()
    rec = CallRecording("c3")
    await rec.start(sip, "in-1", tmp_path / "c3.caller.wav", watch.guard, clock)
    assert await watch.sweep([rec], sip, clock) is None  # room: nothing happens
    free["bytes"] = 10 * MB
    clock.now += 4.0
    alert = await watch.sweep([rec], sip, clock)
    assert alert is not None and alert.free_mb == 10.0
    assert ("stop", "c3.caller.wav") in sip.calls
    assert await watch.sweep([rec], sip, clock) is None  # still low: no second alert
    free["bytes"] = 100 * MB
    assert await watch.sweep([], sip, clock) is None
    free["bytes"] = 1 * MB
    assert await watch.sweep([], sip, clock) is not None  # a new episode alerts again
    clock.now += 1.0
    assert rec.finish(clock()) == [Gap(4000, 5000, "system", "disk-low")]
    data = disk_alert("w0", alert, "c3")
    assert data["alert"] == "recordings-disk-low" and "录音" in data["message"]
