"""The purge job: deletes the files of expired recordings and says exactly what it deleted.

Rules of this module:
- It knows files, not the ticket store: which recordings are expired (past the retention of
  their kind, on no legal hold) is the store's answer, handed in by the composition root. The
  purge deletes exactly the files it is given and never any other: no directory is scanned, no
  pattern matched.
- A file already gone counts as purged (a previous run died after deleting, or someone removed
  it by hand): it is logged and reported with `missing=True`, so the catalogue can be marked.
- A file that cannot be deleted (permissions, I/O error) is logged and reported as failed; the
  catalogue must not be marked for it, so the next run tries again.
- Every deletion is logged with the call id, path, age and size, one line each.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)


class Expired(Protocol):
    """A recording the store found expired (hotline.tickets.recordings_meta.ExpiredRecording)."""

    @property
    def call_id(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def bytes(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def kind(self) -> str | None: ...
    @property
    def retention_days(self) -> int: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Purged:
    """One file the purge deleted (or found already gone)."""

    call_id: str
    path: str
    age_days: float
    bytes: int  # as catalogued; for a missing file, what it had
    kind: str | None
    retention_days: int
    missing: bool = False

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class PurgeReport:
    purged: list[Purged]
    failed: list[tuple[str, str]]  # (call id, why)
    dry_run: bool = False

    @property
    def bytes_freed(self) -> int:
        return sum(p.bytes for p in self.purged if not p.missing)


def purge(
    expired: Iterable[Expired],
    now: datetime,
    *,
    dry_run: bool = False,
    remove: Callable[[Path], None] = Path.unlink,
) -> PurgeReport:
    """Deletes the file of every expired recording (see the module's rules); with dry_run,
    deletes nothing and reports what it would delete. Blocking file I/O: run it off the loop."""
    purged: list[Purged] = []
    failed: list[tuple[str, str]] = []
    verb = "would delete" if dry_run else "deleted"
    for item in expired:
        path = Path(item.path)
        age = round((now - item.created_at).total_seconds() / 86400, 2)
        missing = not path.exists()
        if not missing and not path.is_file():
            logger.error("recording %s: %s is not a file; left alone", item.call_id, path)
            failed.append((item.call_id, f"{path} is not a file"))
            continue
        if not missing and not dry_run:
            try:
                remove(path)
            except FileNotFoundError:
                missing = True
            except OSError as exc:
                logger.error("recording %s: cannot delete %s: %s", item.call_id, path, exc)
                failed.append((item.call_id, str(exc)))
                continue
        done = Purged(item.call_id, str(path), age, item.bytes, item.kind, item.retention_days, missing)
        purged.append(done)
        if missing:
            logger.warning(
                "recording %s: %s was already gone (age %.1f days, kept %d days)",
                item.call_id, path, age, item.retention_days,
            )  # fmt: skip
        else:
            logger.info(
                "recording %s: %s %s (age %.1f days, kind %s kept %d days, %d bytes)",
                item.call_id, verb, path, age, item.kind or "default", item.retention_days, item.bytes,
            )  # fmt: skip
    return PurgeReport(purged, failed, dry_run)
