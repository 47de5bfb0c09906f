"""Free space on the recordings volume: is there room to record another call?

Rules of this module:
- A call is never refused or dropped for a full disk: below the threshold the worker answers and
  serves it without recording, raises an alert and marks the recording missing with the reason.
- The probe is injectable (statvfs by default), so the rule is tested without filling a disk;
  an integration test also runs it on a real small filesystem.
- A volume that cannot be asked (statvfs fails) counts as full: recording onto it would fail.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

MB = 1024 * 1024
DISK_LOW = "disk-low"  # the reason a recording is missing or cut short


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged process may still write on the filesystem holding `path` (the nearest
    existing parent if it does not exist yet)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    st = os.statvfs(probe)
    return st.f_bavail * st.f_frsize


@dataclasses.dataclass(frozen=True, slots=True)
class SpaceCheck:
    ok: bool
    free_mb: float
    min_free_mb: int
    error: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class SpaceGuard:
    """min_free_mb 0 turns the check off (always room)."""

    min_free_mb: int
    probe: Callable[[Path], int] = free_bytes

    def check(self, path: Path) -> SpaceCheck:
        if self.min_free_mb <= 0:
            return SpaceCheck(True, -1.0, 0)
        try:
            free = self.probe(path)
        except OSError as exc:
            return SpaceCheck(False, 0.0, self.min_free_mb, str(exc))
        free_mb = free / MB
        return SpaceCheck(free_mb >= self.min_free_mb, round(free_mb, 1), self.min_free_mb)
