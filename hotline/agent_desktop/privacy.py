"""The audit of personal-data reads through the API (callers' unmasked numbers and names).

Rules of this module (RULES.md "People and data"):
- A handler about to send a caller's unmasked number or name calls `audit_read` first: one row per
  ticket or call in the answer (who, role, when, route, which fields, client address), written
  before the first byte is sent. No row, no data: a store that keeps no audit, or one that fails
  to write it, means 503 and nothing personal leaves.
- Masked answers (an agent looking at other agents' callers) are not audited.
- Only admins read the audit (GET /tickets/{number}/access in api_tickets.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from hotline.agent_desktop.auth import principal
from hotline.agent_desktop.responses import in_thread
from hotline.core.errors import Unavailable

logger = logging.getLogger(__name__)

ANONYMOUS = "anonymous (api.auth off)"


class PersonalDataReadView(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class PersonalDataAudit(Protocol):
    """What the API needs of the audit (SqlTicketStore, hotline/tickets/privacy.py). Synchronous."""

    def audit_personal_read(
        self,
        who: str,
        role: str,
        subject_type: str,
        subjects: Iterable[str],
        fields: Sequence[str],
        route: str,
        client: str = "",
        at: datetime | None = None,
    ) -> int: ...

    def personal_reads(self, subject_type: str, subject: str) -> Sequence[PersonalDataReadView]: ...


AUDIT = web.AppKey["PersonalDataAudit | None"]("personal_data_audit")


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return f"{request.method} {resource.canonical if resource is not None else request.path}"


async def audit_read(
    request: web.Request, subject_type: str, subjects: Iterable[str], fields: Sequence[str] = ("caller",)
) -> None:
    """Writes the audit rows of an unmasked read (see the module's rules); nothing for no subjects."""
    wanted = list(dict.fromkeys(subjects))
    if not wanted:
        return
    audit = request.app[AUDIT]
    if audit is None:
        raise Unavailable("这里不能显示来电人信息：本服务没有个人信息访问审计（the store keeps no audit）")
    who = principal(request)
    await in_thread(
        audit.audit_personal_read,
        who.username or ANONYMOUS,
        who.role,
        subject_type,
        wanted,
        tuple(fields),
        _route(request),
        request.remote or "",
    )
