"""Gaps in a call recording: spans paused for sensitive data, or lost to a full disk (sans-IO).

Rules of this module:
- Offsets are milliseconds from the start of the recording (the first sample of the stereo
  file), measured on the caller's clock passed in (`now`, monotonic seconds): no wall clock here.
- A paused span is written as silence (the recorders keep running, muted), so the file stays as
  long as the call and every offset after a gap is still the call's time.
- Pausing while paused, or resuming while not paused, changes nothing (pause twice = one gap).
- A cut (the disk ran low) ends the recording for good: an open pause is closed there and a gap
  with the cut's reason runs from there to the end of the call.
- A call that ends while paused closes the gap at the end.
"""

from __future__ import annotations

import dataclasses
from typing import Any

PAUSED = "paused"
REASONS = (PAUSED, "disk-low", "not-recorded")


@dataclasses.dataclass(frozen=True, slots=True)
class Gap:
    start_ms: int
    end_ms: int | None  # None while the gap is open
    by: str  # who paused ("system" for a cut)
    reason: str = PAUSED

    def to_dict(self) -> dict[str, Any]:
        return {"start_ms": self.start_ms, "end_ms": self.end_ms, "by": self.by, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Gap:
        """ValueError (or KeyError) for a malformed gap."""
        end = data.get("end_ms")
        gap = cls(int(data["start_ms"]), None if end is None else int(end), str(data["by"]), str(data["reason"]))
        if gap.reason not in REASONS:
            raise ValueError(f"gap reason must be one of {', '.join(REASONS)}, got {gap.reason!r}")
        if gap.start_ms < 0 or (gap.end_ms is not None and gap.end_ms < gap.start_ms):
            raise ValueError(f"gap {gap.start_ms}..{gap.end_ms}: negative or reversed")
        return gap


class GapLog:
    """The gaps of one call's recording, as pause, resume, cut and the end of the call come in."""

    def __init__(self) -> None:
        self.origin: float | None = None  # `now` when the recording started; None: not recording
        self.cut_reason = ""
        self._gaps: list[Gap] = []
        self._open: Gap | None = None

    @property
    def recording(self) -> bool:
        return self.origin is not None and not self.cut_reason

    @property
    def paused(self) -> bool:
        return self._open is not None and self._open.reason == PAUSED

    @property
    def gaps(self) -> list[Gap]:
        """Closed gaps, then the open one (end_ms None)."""
        return [*self._gaps, *([self._open] if self._open is not None else [])]

    def offset_ms(self, now: float) -> int:
        assert self.origin is not None
        return max(0, round((now - self.origin) * 1000))

    def started(self, now: float) -> None:
        self.origin = now

    def pause(self, now: float, by: str) -> bool:
        """True if this paused the recording (False: already paused, or nothing is recorded)."""
        if not self.recording or self.paused:
            return False
        self._open = Gap(self.offset_ms(now), None, by, PAUSED)
        return True

    def resume(self, now: float, by: str) -> bool:
        """True if this resumed a paused recording."""
        if not self.paused:
            return False
        self._close(now)
        return True

    def cut(self, now: float, reason: str) -> bool:
        """The recording stops for good (the disk ran low); True if it was recording."""
        if not self.recording:
            return False
        self._close(now)
        self._open = Gap(self.offset_ms(now), None, "system", reason)
        self.cut_reason = reason
        return True

    def close(self, now: float) -> list[Gap]:
        """The call ended: every gap closed; returns them all."""
        if self.origin is not None:
            self._close(now)
        return self.gaps

    def _close(self, now: float) -> None:
        if self._open is not None:
            self._gaps.append(dataclasses.replace(self._open, end_ms=max(self._open.start_ms, self.offset_ms(now))))
            self._open = None
