"""One call's recording as the media worker runs it: start (if there is room), the agent's leg,
pause and resume, a cut when the disk runs low, and what the call record carries at the end.

Rules of this module:
- Recording never costs a call: no room on the volume (recordings.min_free_mb) means the call
  goes on unrecorded, with the reason kept (`missing`) for the call record and an alert raised
  by the worker. Every failure of a recorder is logged and leaves the call alone.
- A pause mutes every leg's recorder (the recorders write silence, the file stays aligned with
  the call); a leg that joins while paused is muted from its first frame.
- The recorder adapter is the worker's SIP endpoint, seen through `Recorders`: no pjsua2 here.
- What the call record's event carries (`event_fields`): the gaps and, if nothing was kept,
  why. The control plane's ticket writer catalogues them (catalog.register_gaps).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from hotline.recordings.gaps import Gap, GapLog
from hotline.recordings.space import DISK_LOW, SpaceCheck, SpaceGuard

logger = logging.getLogger(__name__)

# Keys of the call.ended event data (beside CallRecord.to_dict()).
GAPS_FIELD = "recording_gaps"
MISSING_FIELD = "recording_missing"
DISK_ALERT = "recordings-disk-low"  # the alert event's "alert"

Clock = Callable[[], float]  # monotonic seconds (the worker's clock)


class Recorders(Protocol):
    """What this needs of hotline.sip.endpoint.SipEndpoint."""

    async def record(self, leg_id: str, wav_path: str) -> None: ...
    async def stop_record(self, wav_path: str) -> None: ...
    async def mute_record(self, wav_path: str, muted: bool) -> None: ...


@dataclasses.dataclass
class CallRecording:
    call_id: str
    gaps: GapLog = dataclasses.field(default_factory=GapLog)
    files: list[Path] = dataclasses.field(default_factory=list)  # the legs' files being written
    missing: str = ""  # why there is no recording at all ("" if there is one)

    async def start(self, sip: Recorders, leg_id: str, file: Path, guard: SpaceGuard, clock: Clock) -> SpaceCheck:
        """Starts the caller leg's recorder if the volume has room; returns the check (not ok:
        not recorded, `missing` says why). Offsets count from the moment the recorder runs."""
        check = guard.check(file.parent)
        if not check.ok:
            self.missing = DISK_LOW
            logger.error(
                "call %s not recorded: %.0f MB free on the recordings volume, %d MB required %s",
                self.call_id, check.free_mb, check.min_free_mb, check.error,
            )  # fmt: skip
            return check
        file.parent.mkdir(parents=True, exist_ok=True)
        await sip.record(leg_id, str(file))
        self.files.append(file)
        self.gaps.started(clock())
        return check

    async def add_leg(self, sip: Recorders, leg_id: str, file: Path) -> None:
        """Records another leg (the agent's) into its own file, muted if the call is paused."""
        if not self.gaps.recording:
            return
        await sip.record(leg_id, str(file))
        if file not in self.files:
            self.files.append(file)
        if self.gaps.paused:
            await sip.mute_record(str(file), True)

    async def set_paused(self, sip: Recorders, paused: bool, by: str, clock: Clock) -> bool:
        """Pauses or resumes every leg's recorder; True if the state changed (idempotent). The
        gap's offset is read once the recorders are muted (or unmuted)."""
        if not self.gaps.recording or paused == self.gaps.paused:
            return False
        for file in self.files:
            try:
                await sip.mute_record(str(file), paused)
            except Exception:
                logger.exception("call %s: %s recorder %s", self.call_id, "pausing" if paused else "resuming", file)
        now = clock()
        if paused:
            self.gaps.pause(now, by)
        else:
            self.gaps.resume(now, by)
        logger.info(
            "call %s: recording %s by %s at %d ms",
            self.call_id, "paused" if paused else "resumed", by, self.gaps.offset_ms(now),
        )  # fmt: skip
        return True

    async def cut(self, sip: Recorders, clock: Clock, reason: str = DISK_LOW) -> bool:
        """Stops the recorders for good (the disk ran low); what was written stays."""
        now = clock()
        if not self.gaps.cut(now, reason):
            return False
        for file in self.files:
            try:
                await sip.stop_record(str(file))
            except Exception:
                logger.exception("call %s: stopping recorder %s", self.call_id, file)
        logger.error("call %s: recording stopped at %d ms: %s", self.call_id, self.gaps.offset_ms(now), reason)
        return True

    def finish(self, now: float) -> list[Gap]:
        """The call ended: closes an open gap; returns every gap."""
        return self.gaps.close(now)

    def event_fields(self, kept: bool) -> dict[str, Any]:
        """What the call.ended event carries besides the call record; `kept`: a file exists."""
        missing = "" if kept else (self.missing or self.gaps.cut_reason or "")
        return {GAPS_FIELD: [gap.to_dict() for gap in self.gaps.gaps], MISSING_FIELD: missing}


class SpaceWatch:
    """The recordings volume of one worker, checked while calls are recorded.

    `note` says when a low-space episode starts (one alert per episode, not one per call or per
    check); `sweep` cuts every recording in progress while the volume is low."""

    def __init__(self, guard: SpaceGuard, volume: Path) -> None:
        self.guard = guard
        self.volume = volume
        self.low = False

    def note(self, check: SpaceCheck) -> bool:
        """True if this check starts a low-space episode (raise the alert)."""
        if check.ok:
            if self.low:
                logger.warning("recordings volume %s has room again (%.0f MB free)", self.volume, check.free_mb)
            self.low = False
            return False
        first, self.low = not self.low, True
        return first

    async def sweep(self, recordings: Iterable[CallRecording], sip: Recorders, clock: Clock) -> SpaceCheck | None:
        """Checks the volume; below the threshold every recording in progress is cut. Returns the
        check if it starts a low-space episode (the caller raises the alert), else None."""
        check = self.guard.check(self.volume)
        if not check.ok:
            for recording in recordings:
                await recording.cut(sip, clock)
        return check if self.note(check) else None


def disk_alert(worker_id: str, check: SpaceCheck, call_id: str | None) -> dict[str, Any]:
    """The alert event's data for a low recordings volume (the message is for supervisors)."""
    return {
        "alert": DISK_ALERT,
        "worker_id": worker_id,
        "call_id": call_id,
        "free_mb": check.free_mb,
        "min_free_mb": check.min_free_mb,
        "error": check.error,
        "message": f"录音存储空间不足：剩余 {check.free_mb:.0f} MB，低于 {check.min_free_mb} MB。"
        "通话照常接听，但暂停录音，请尽快清理或扩容。",
    }
