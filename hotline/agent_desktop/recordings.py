"""Call recordings through the API: playback and download, each access audited.

Rules of this module:
- A recording leaves the server only through GET /recordings/{call_id}: never a static file
  route, never a public URL. Supervisors and admins may fetch any, an agent only the calls he
  took; anyone else gets 403 and leaves no trace in the audit but the log line.
- Every fetch needs a reason (`?why=`, 400 reason-required without one) and writes the audit row
  (who, role, when, why, action, client address) *before* the first byte is sent: no row, no
  audio. A recording that is unknown, purged or whose file is gone is 404 no-such-recording.
- Responses are never cached (Cache-Control: no-store) and carry no validators (ETag,
  Last-Modified) that a cache could keep them by.
- Only admins read the audit (GET /recordings/{call_id}/access).
- The recording's gaps (paused for sensitive data, or lost to a full disk) are in the
  X-Recording-Gaps header, so whoever plays it knows which silences were not the call's.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any, BinaryIO, Protocol, runtime_checkable

from aiohttp import web

from hotline.agent_desktop import auth as authmod
from hotline.agent_desktop.auth import ADMIN, principal
from hotline.agent_desktop.responses import in_thread, json_reply
from hotline.core.errors import DomainError, InvalidRequest, NotFound
from hotline.core.model import CallId, CallRecord

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
WHY_MAX = 500
ACTIONS = ("play", "download")
CONTENT_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "opus": "audio/ogg"}
NO_CACHE = {"Cache-Control": "no-store, private", "Pragma": "no-cache", "X-Content-Type-Options": "nosniff"}


class ReasonRequired(DomainError):
    error_id = "reason-required"
    status = 400


class NoSuchRecording(NotFound):
    error_id = "no-such-recording"


class RecordingView(Protocol):
    """A catalogue row as the ticket store returns it (hotline.tickets.recordings_meta.Recording)."""

    @property
    def call_id(self) -> CallId: ...
    @property
    def path(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def purged_at(self) -> datetime | None: ...


class AccessView(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class RecordingArchive(Protocol):
    """What the API needs of the recordings catalogue (SqlTicketStore). Synchronous: run it in a thread."""

    def get_call(self, call_id: CallId) -> CallRecord | None: ...

    def get_recording(self, call_id: CallId) -> RecordingView | None: ...

    def audit_access(
        self, call_id: CallId, who: str, role: str, action: str, why: str, client: str = "", at: datetime | None = None
    ) -> object: ...

    def access_log(self, call_id: CallId) -> Sequence[AccessView]: ...


RECORDINGS = web.AppKey["RecordingArchive | None"]("recordings")


def _archive(request: web.Request) -> RecordingArchive:
    archive = request.app[RECORDINGS]
    if archive is None:
        raise NotFound("this process serves no recordings")
    return archive


def _open(path: str) -> tuple[BinaryIO, int] | None:
    """The open file and its size; None if it is not there."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - the handler closes it
    except (FileNotFoundError, IsADirectoryError):
        return None
    try:
        return f, os.fstat(f.fileno()).st_size
    except BaseException:
        f.close()
        raise


async def _open_off_loop(path: str) -> tuple[BinaryIO, int] | None:
    """_open in a thread; a file opened for a request cancelled meanwhile is closed, not leaked."""
    opening = asyncio.ensure_future(asyncio.to_thread(_open, path))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_opened)
        raise


def _close_opened(done: asyncio.Future[tuple[BinaryIO, int] | None]) -> None:
    if not done.cancelled() and done.exception() is None and (opened := done.result()) is not None:
        opened[0].close()


async def get_recording(request: web.Request) -> web.StreamResponse:
    """Streams the recording, after checking the role and the reason and writing the audit row."""
    archive = _archive(request)
    call_id = CallId(request.match_info["call_id"])
    who = principal(request)
    recording = await in_thread(archive.get_recording, call_id)
    if recording is None or recording.purged_at is not None:
        raise NoSuchRecording(f"no recording of call {call_id}")
    if not who.supervises:
        record = await in_thread(archive.get_call, call_id)
        if record is None or not who.owns(record.agent_id):
            logger.warning("recording %s refused to %s (%s): not his call", call_id, who.username, who.role)
            raise authmod.Forbidden(f"the recording of call {call_id} is not {who.username}'s to hear")
    why = request.query.get("why", "").strip()
    if not why:
        raise ReasonRequired("say why you need this recording: ?why=... (it is logged with your name)")
    if len(why) > WHY_MAX:
        raise InvalidRequest(f"why has at most {WHY_MAX} characters")
    action = request.query.get("action", "play")
    if action not in ACTIONS:
        raise InvalidRequest(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    opened = await _open_off_loop(recording.path)
    if opened is None:
        logger.error("recording %s: catalogued at %s, but the file is gone", call_id, recording.path)
        raise NoSuchRecording(f"the recording of call {call_id} is no longer on disk")
    f, size = opened
    try:
        username = who.username or "anonymous (api.auth off)"
        await in_thread(archive.audit_access, call_id, username, who.role, action, why, request.remote or "")
        logger.info("recording %s: %s by %s (%s): %s", call_id, action, username, who.role, why)
        disposition = "attachment" if action == "download" else "inline"
        response = web.StreamResponse(
            headers={
                **NO_CACHE,
                "Content-Type": CONTENT_TYPES.get(recording.format, "application/octet-stream"),
                "Content-Disposition": f'{disposition}; filename="{call_id}.{recording.format}"',
                **gaps_header(recording),
            }
        )
        response.content_length = size
        await response.prepare(request)
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        f.close()  # at once, not in a thread: a cancelled request must not leave it open


def gaps_header(recording: RecordingView) -> dict[str, str]:
    """X-Recording-Gaps: the spans with no audio, "<start ms>-<end ms> <reason>, ..." (offsets
    from the first sample; no end: to the end), e.g. "5361-8375 paused"; none: no header."""
    gaps = [gap.to_dict() for gap in getattr(recording, "gaps", ())]
    spans = [f"{g['start_ms']}-{'' if g['end_ms'] is None else g['end_ms']} {g['reason']}" for g in gaps]
    return {"X-Recording-Gaps": ", ".join(spans)} if spans else {}


async def recording_access(request: web.Request) -> web.Response:
    """The audit of one recording (admins only), oldest first."""
    who = principal(request)
    if who.role != ADMIN:
        raise authmod.Forbidden(f"the access log is for admins; {who.username} is a {who.role}")
    archive = _archive(request)
    call_id = CallId(request.match_info["call_id"])
    if await in_thread(archive.get_recording, call_id) is None:
        raise NoSuchRecording(f"no recording of call {call_id}")
    rows = await in_thread(archive.access_log, call_id)
    return json_reply({"call_id": call_id, "access": [row.to_dict() for row in rows]})
