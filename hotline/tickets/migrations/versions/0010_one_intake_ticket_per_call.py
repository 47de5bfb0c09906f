"""One intake ticket per call, kept by the database: a unique partial index on
ticket_calls(call_id) where role = 'intake'.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22

The agent desktop's wrap-up is idempotent per call (a second submit returns the first ticket).
A lock in the process kept that for one control process; with several control processes (each
serving the API) two submits of the same call could each create a ticket. With this index the
second creation fails as a whole (its ticket, timeline and notices roll back with it) and the
desk returns the first ticket.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INTAKE = sa.text("role = 'intake'")


def upgrade() -> None:
    op.create_index(
        "uq_ticket_calls_intake",
        "ticket_calls",
        ["call_id"],
        unique=True,
        sqlite_where=_INTAKE,
        postgresql_where=_INTAKE,
    )


def downgrade() -> None:
    op.drop_index("uq_ticket_calls_intake", table_name="ticket_calls")
