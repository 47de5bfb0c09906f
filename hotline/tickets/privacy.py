"""The audit of reads of callers' personal data: the personal-data half of SqlTicketStore.

Rules of this module (RULES.md "People and data"; 001 第十七条):
- Every read that shows someone a caller's unmasked number or name (a ticket, a ticket list, a
  call record, a call's screen pop) is recorded *before* the data is sent: who (account), role,
  when, what (a ticket number or a call id), which fields, through which route, from which
  address. A read of many subjects (a list) is one row per subject, written in one transaction.
- personal_data_access is append-only: the store only inserts, and the triggers of migration
  0007 refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL).
- Masked reads are not recorded: they show nothing personal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from hotline.core.errors import InvalidRequest
from hotline.core.model import utcnow
from hotline.tickets import schema
from hotline.tickets.mixin import StorePart

SUBJECTS = ("ticket", "call")  # what a row names: a ticket number or a call id
PERSONAL_FIELDS = ("caller", "caller_name")

_P = schema.personal_data_access
_C = schema.ticket_calls


@dataclasses.dataclass(frozen=True, slots=True)
class PersonalDataRead:
    """One row of the audit."""

    id: int
    at: datetime
    who: str
    role: str
    subject_type: str  # ticket, call
    subject: str
    fields: tuple[str, ...]
    route: str  # e.g. "GET /api/v1/tickets/{number}"
    client: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "who": self.who,
            "role": self.role,
            "subject_type": self.subject_type,
            "subject": self.subject,
            "fields": list(self.fields),
            "route": self.route,
            "client": self.client,
        }


class PersonalDataLog(StorePart):
    """Mixed into SqlTicketStore (connections from StorePart)."""

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
    ) -> int:
        """Appends one row per subject (in one transaction); returns how many. Nothing for no subjects."""
        if subject_type not in SUBJECTS:
            raise InvalidRequest(f"subject_type must be one of {', '.join(SUBJECTS)}, got {subject_type!r}")
        unknown = sorted(set(fields) - set(PERSONAL_FIELDS))
        if unknown or not fields:
            raise InvalidRequest(f"fields must be some of {', '.join(PERSONAL_FIELDS)}, got {list(fields)!r}")
        if not who.strip() or not role.strip() or not route.strip():
            raise InvalidRequest("an audit row needs who, role and route")
        when = at or utcnow()
        if when.tzinfo is None or when.utcoffset() is None:
            raise InvalidRequest("at is a naive datetime; use aware UTC")
        names = ",".join(dict.fromkeys(fields))
        rows = [
            dict(
                at=when,
                who=who.strip()[: schema.PARTY_LENGTH],
                role=role,
                subject_type=subject_type,
                subject=subject,
                fields=names,
                route=route[:255],
                client=client[:255],
            )
            for subject in dict.fromkeys(subjects)
        ]
        if not rows:
            return 0
        with self._write(f"auditing a read of {len(rows)} {subject_type}(s) by {who}") as conn:
            conn.execute(_P.insert(), rows)
        return len(rows)

    def personal_reads(self, subject_type: str, subject: str) -> list[PersonalDataRead]:
        """The audit of one subject, oldest first. For a ticket, reads of its linked calls too."""
        if subject_type not in SUBJECTS:
            raise InvalidRequest(f"subject_type must be one of {', '.join(SUBJECTS)}, got {subject_type!r}")
        condition = and_(_P.c.subject_type == subject_type, _P.c.subject == subject)
        if subject_type == "ticket":
            calls = select(_C.c.call_id).where(_C.c.ticket_number == subject)
            condition = or_(condition, and_(_P.c.subject_type == "call", _P.c.subject.in_(calls)))
        with self._read(f"personal data reads of {subject_type} {subject}") as conn:
            rows = conn.execute(select(_P).where(condition).order_by(_P.c.id)).all()
        return [
            PersonalDataRead(
                int(r.id), r.at, r.who, r.role, r.subject_type, r.subject, tuple(r.fields.split(",")), r.route, r.client
            )
            for r in rows
        ]
