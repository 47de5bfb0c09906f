"""The recordings half of SqlTicketStore: the catalogue of call recordings, legal holds, and the
audit of every access.

Rules of this module:
- One catalogue row per call, written when the call ends (register_recording, idempotent by call
  id: a second registration updates the file's facts but never its hold or purge state). The row
  outlives the file: purging sets `purged_at`, it does not delete the row or its checksum.
- A recording is expired when it is older than its retention: the longest of the retentions of
  its own kind and of the kinds of the tickets its call is linked to (the default for a kind
  without one of its own). It is never expired while it, or any ticket its call is linked to, is
  on legal hold.
- recording_access and recording_holds are append-only (triggers in migration 0005): every
  access and every hold is an insert, with who and why; an empty reason is refused.
- A recording's gaps (recording_gaps, migration 0009) are the spans paused for sensitive data
  (silence in the file) or lost to a full disk; one row per (call, start), written when the call
  ends (idempotent: a gap registered again updates its end). A call with no recording at all has a
  gap from 0 saying why. Gaps come with the catalogue row (`Recording.gaps`) and on their own
  (`recording_gaps`), so a missing recording is explained too.
- Formats: wav as recorded, flac when recordings.format converts it at call end (the checksum is
  of the FLAC as kept), opus for an archive job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, RowMapping, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hotline.core.errors import InvalidRequest, NotFound
from hotline.core.model import CallId, utcnow
from hotline.tickets import schema
from hotline.tickets.mixin import StorePart

ACCESS_ACTIONS = ("play", "download")
FORMATS = ("wav", "flac", "opus")
WHY_MAX = 500  # characters of a reason; a reason is a sentence, not a document

_R = schema.recordings
_A = schema.recording_access
_H = schema.recording_holds
_T = schema.tickets
_C = schema.ticket_calls
_G = schema.recording_gaps
GAP_REASONS = ("paused", "disk-low", "not-recorded")


class NoSuchRecording(NotFound):
    error_id = "no-such-recording"


class GapLike(Protocol):
    """A gap as the worker reports it (hotline.recordings.gaps.Gap)."""

    @property
    def start_ms(self) -> int: ...
    @property
    def end_ms(self) -> int | None: ...
    @property
    def by(self) -> str: ...
    @property
    def reason(self) -> str: ...


@dataclasses.dataclass(frozen=True, slots=True)
class GapRow:
    """A span of the recording that holds no audio: paused (silence), or lost (disk-low, not-recorded)."""

    call_id: CallId
    start_ms: int
    end_ms: int | None  # None: to the end of the call
    reason: str
    by: str

    def to_dict(self) -> dict[str, Any]:
        return {"start_ms": self.start_ms, "end_ms": self.end_ms, "reason": self.reason, "by": self.by}


@dataclasses.dataclass(frozen=True, slots=True)
class Recording:
    """A catalogue row (with its gaps, oldest first)."""

    call_id: CallId
    path: str
    format: str
    bytes: int
    seconds: float
    sha256: str
    created_at: datetime
    kind: str | None = None
    legal_hold: bool = False
    purged_at: datetime | None = None
    gaps: tuple[GapRow, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "path": self.path,
            "format": self.format,
            "bytes": self.bytes,
            "seconds": self.seconds,
            "sha256": self.sha256,
            "created_at": self.created_at.isoformat(),
            "kind": self.kind,
            "legal_hold": self.legal_hold,
            "purged_at": None if self.purged_at is None else self.purged_at.isoformat(),
            "gaps": [gap.to_dict() for gap in self.gaps],
        }


@dataclasses.dataclass(frozen=True, slots=True)
class ExpiredRecording:
    """A recording past its retention and not on hold: what the purge job deletes."""

    call_id: CallId
    path: str
    bytes: int
    created_at: datetime
    kind: str | None  # the kind whose retention applied (None: the default)
    retention_days: int


@dataclasses.dataclass(frozen=True, slots=True)
class AccessRow:
    """One row of the access audit."""

    id: int
    call_id: CallId
    who: str
    role: str
    at: datetime
    action: str
    why: str
    client: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "who": self.who,
            "role": self.role,
            "at": self.at.isoformat(),
            "action": self.action,
            "why": self.why,
            "client": self.client,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class HoldRow:
    """One row of the legal-hold log."""

    target: str
    scope: str  # call, ticket
    hold: bool
    who: str
    why: str
    at: datetime


class RecordingCatalogue(StorePart):
    """Mixed into SqlTicketStore, which provides the connections (`_read`, `_write`) and the
    dialect's INSERT (`_insert`)."""

    def register_recording(
        self,
        call_id: CallId,
        path: str,
        *,
        format: str,
        bytes: int,
        seconds: float,
        sha256: str,
        created_at: datetime,
        kind: str | None = None,
    ) -> Recording:
        """Catalogues the call's recording; registering it again updates the file's facts (a
        kind given fills in one not known before) but keeps its hold and purge state."""
        if format not in FORMATS:
            raise InvalidRequest(f"recording format must be one of {', '.join(FORMATS)}, got {format!r}")
        if bytes < 0 or seconds < 0:
            raise InvalidRequest(f"recording of {call_id}: negative size or length")
        if len(sha256) != 64 or any(ch not in "0123456789abcdef" for ch in sha256):
            raise InvalidRequest(f"recording of {call_id}: sha256 must be 64 lower-case hex digits")
        _check_aware(created_at, "created_at")
        facts = {"path": path, "format": format, "bytes": bytes, "seconds": seconds, "sha256": sha256}
        stmt = self._insert(_R).values(
            call_id=call_id, created_at=created_at, kind=kind, legal_hold=False, purged_at=None, **facts
        )
        assert isinstance(stmt, postgresql.Insert | sqlite.Insert)
        changes: dict[str, Any] = {**facts, "kind": func.coalesce(stmt.excluded.kind, _R.c.kind)}
        stmt = stmt.on_conflict_do_update(index_elements=["call_id"], set_=changes)
        with self._write(f"registering the recording of {call_id}") as conn:
            conn.execute(stmt)
            row = conn.execute(select(_R).where(_R.c.call_id == call_id)).one()
            gaps = _gaps(conn, call_id)
        return _recording(row._mapping, gaps)

    def get_recording(self, call_id: CallId) -> Recording | None:
        with self._read(f"reading the recording of {call_id}") as conn:
            row = conn.execute(select(_R).where(_R.c.call_id == call_id)).first()
            gaps = _gaps(conn, call_id) if row is not None else ()
        return None if row is None else _recording(row._mapping, gaps)

    def add_recording_gaps(self, call_id: CallId, gaps: Sequence[GapLike], created_at: datetime) -> list[GapRow]:
        """Records the gaps of the call's recording (see the module's rules); idempotent by (call,
        start): a gap given again updates its end, reason and who. Returns all the call's gaps."""
        _check_aware(created_at, "created_at")
        for gap in gaps:
            if gap.reason not in GAP_REASONS:
                raise InvalidRequest(f"gap reason must be one of {', '.join(GAP_REASONS)}, got {gap.reason!r}")
            if gap.start_ms < 0 or (gap.end_ms is not None and gap.end_ms < gap.start_ms):
                raise InvalidRequest(f"gap {gap.start_ms}..{gap.end_ms} of {call_id}: negative or reversed")
        with self._write(f"registering the recording gaps of {call_id}") as conn:
            for gap in gaps:
                stmt = self._insert(_G).values(
                    call_id=call_id, start_ms=gap.start_ms, end_ms=gap.end_ms, reason=gap.reason,
                    by=_required(gap.by, "by", schema.PARTY_LENGTH), created_at=created_at,
                )  # fmt: skip
                assert isinstance(stmt, postgresql.Insert | sqlite.Insert)
                changes = {"end_ms": stmt.excluded.end_ms, "reason": stmt.excluded.reason, "by": stmt.excluded.by}
                conn.execute(stmt.on_conflict_do_update(index_elements=["call_id", "start_ms"], set_=changes))
            return list(_gaps(conn, call_id))

    def recording_gaps(self, call_id: CallId) -> list[GapRow]:
        """The gaps of the call's recording, by start (empty: none, or an unknown call)."""
        with self._read(f"reading the recording gaps of {call_id}") as conn:
            return list(_gaps(conn, call_id))

    def set_legal_hold(self, target: str, who: str, why: str, hold: bool = True) -> list[CallId]:
        """Puts a legal hold on (hold=False: releases it from) a ticket, whose linked calls'
        recordings then are never purged, or on one call's recording. `target` is a ticket number
        or a call id (a ticket number is looked for first). Logged with who and why; returns the
        call ids of the recordings the hold covers. NoSuchRecording if `target` is neither."""
        who, why = _required(who, "who", schema.PARTY_LENGTH), _required(why, "why")
        now = utcnow()
        with self._write(f"legal hold on {target}") as conn:
            if conn.execute(select(_T.c.number).where(_T.c.number == target)).first() is not None:
                scope = "ticket"
                conn.execute(update(_T).where(_T.c.number == target).values(legal_hold=hold, updated_at=now))
                linked = select(_C.c.call_id).where(_C.c.ticket_number == target)
                covered = conn.execute(
                    select(_R.c.call_id).where(_R.c.call_id.in_(linked)).order_by(_R.c.call_id)
                ).scalars()
                calls = [CallId(c) for c in covered]
            else:
                scope = "call"
                done = conn.execute(update(_R).where(_R.c.call_id == target).values(legal_hold=hold))
                if done.rowcount == 0:
                    raise NoSuchRecording(f"no ticket and no recorded call {target}")
                calls = [CallId(target)]
            conn.execute(self._insert(_H).values(target=target, scope=scope, hold=hold, who=who, why=why, at=now))
        return calls

    def hold_log(self, target: str) -> list[HoldRow]:
        """The holds set on and released from `target` (a ticket number or call id), oldest first."""
        with self._read(f"holds of {target}") as conn:
            rows = conn.execute(select(_H).where(_H.c.target == target).order_by(_H.c.id)).all()
        return [HoldRow(r.target, r.scope, bool(r.hold), r.who, r.why, r.at) for r in rows]

    def recordings_expired(
        self, now: datetime, default_days: int, days_by_kind: Mapping[str, int] | None = None
    ) -> list[ExpiredRecording]:
        """Recordings not yet purged that are past their retention and on no hold (see the
        module's rules), oldest first."""
        _check_aware(now, "now")
        by_kind = dict(days_by_kind or {})
        for days in (default_days, *by_kind.values()):
            if days < 1:
                raise InvalidRequest(f"a retention is at least 1 day, got {days}")
        # Nothing younger than the shortest retention can be expired: the rest is not read.
        oldest = now - timedelta(days=min([default_days, *by_kind.values()]))
        # One row per (recording, linked ticket): a call may be linked to several tickets.
        linked = _R.outerjoin(_C, _C.c.call_id == _R.c.call_id).outerjoin(_T, _T.c.number == _C.c.ticket_number)
        stmt = (
            select(_R.c.call_id, _R.c.path, _R.c.bytes, _R.c.created_at, _R.c.kind,
                   _T.c.kind.label("ticket_kind"), _T.c.legal_hold.label("ticket_hold"))
            .select_from(linked)
            .where(_R.c.purged_at.is_(None), _R.c.legal_hold.is_(False), _R.c.created_at <= oldest)
            .order_by(_R.c.created_at, _R.c.call_id)
        )  # fmt: skip
        with self._read("expired recordings") as conn:
            rows = conn.execute(stmt).all()
        grouped: dict[str, list[Any]] = {}
        for row in rows:
            grouped.setdefault(row.call_id, []).append(row)
        expired = []
        for call_id, group in grouped.items():
            if any(r.ticket_hold for r in group):
                continue
            first = group[0]
            kinds = {k for k in (first.kind, *(r.ticket_kind for r in group)) if k is not None}
            days = max((by_kind.get(k, default_days) for k in kinds), default=default_days)
            kind = next((k for k in sorted(kinds) if by_kind.get(k) == days), None)
            if first.created_at + timedelta(days=days) <= now:
                expired.append(ExpiredRecording(CallId(call_id), first.path, first.bytes, first.created_at, kind, days))
        return expired

    def mark_purged(self, call_id: CallId, at: datetime | None = None) -> None:
        """Records that the file of the call's recording was deleted (idempotent: the first time
        is kept). NoSuchRecording for a call without one."""
        when = at or utcnow()
        _check_aware(when, "at")
        with self._write(f"marking the recording of {call_id} purged") as conn:
            if conn.execute(select(_R.c.call_id).where(_R.c.call_id == call_id)).first() is None:
                raise NoSuchRecording(f"no recording of call {call_id}")
            conn.execute(update(_R).where(_R.c.call_id == call_id, _R.c.purged_at.is_(None)).values(purged_at=when))

    def audit_access(
        self, call_id: CallId, who: str, role: str, action: str, why: str, client: str = "", at: datetime | None = None
    ) -> AccessRow:
        """Appends an access to the audit (before the recording is sent); InvalidRequest without a
        reason, NoSuchRecording for a call without a (kept) recording."""
        if action not in ACCESS_ACTIONS:
            raise InvalidRequest(f"action must be one of {', '.join(ACCESS_ACTIONS)}, got {action!r}")
        who, why = _required(who, "who", schema.PARTY_LENGTH), _required(why, "why")
        when = at or utcnow()
        _check_aware(when, "at")
        values = dict(call_id=call_id, who=who, role=role, at=when, action=action, why=why, client=client[:255])
        with self._write(f"auditing access to the recording of {call_id}") as conn:
            found = conn.execute(select(_R.c.purged_at).where(_R.c.call_id == call_id)).first()
            if found is None or found.purged_at is not None:
                raise NoSuchRecording(f"no recording of call {call_id}")
            new_id = conn.execute(self._insert(_A).values(values).returning(_A.c.id)).scalar_one()
        return AccessRow(int(new_id), call_id, who, role, when, action, why, client[:255])

    def access_log(self, call_id: CallId) -> list[AccessRow]:
        """Every access to the call's recording, oldest first."""
        with self._read(f"access log of {call_id}") as conn:
            rows = conn.execute(select(_A).where(_A.c.call_id == call_id).order_by(_A.c.id)).all()
        return [AccessRow(int(r.id), CallId(r.call_id), r.who, r.role, r.at, r.action, r.why, r.client) for r in rows]


def _required(text: str, name: str, limit: int = WHY_MAX) -> str:
    value = text.strip()
    if not value:
        raise InvalidRequest(f"{name} is required")
    if len(value) > limit:
        raise InvalidRequest(f"{name} has at most {limit} characters")
    return value


def _check_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRequest(f"{name} is a naive datetime; use aware UTC")


def _gaps(conn: Connection, call_id: str) -> tuple[GapRow, ...]:
    rows = conn.execute(select(_G).where(_G.c.call_id == call_id).order_by(_G.c.start_ms)).all()
    return tuple(
        GapRow(CallId(r.call_id), int(r.start_ms), None if r.end_ms is None else int(r.end_ms), r.reason, r.by)
        for r in rows
    )


def _recording(row: RowMapping, gaps: tuple[GapRow, ...] = ()) -> Recording:
    return Recording(
        call_id=CallId(row["call_id"]),
        path=row["path"],
        format=row["format"],
        bytes=int(row["bytes"]),
        seconds=float(row["seconds"]),
        sha256=row["sha256"],
        created_at=row["created_at"],
        kind=row["kind"],
        legal_hold=bool(row["legal_hold"]),
        purged_at=row["purged_at"],
        gaps=gaps,
    )
