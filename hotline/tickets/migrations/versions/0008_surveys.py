"""surveys: the 回访 (satisfaction callback) of each replied ticket: one row per round (each
reply of the unit opens one), its attempts, the ratings the caller gave and what became of it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22

Columns are spelled out here rather than imported from hotline.tickets.schema (see 0001).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "surveys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_number", sa.String(16), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_call_id", sa.String(128), nullable=True),
        sa.Column("last_outcome", sa.String(32), nullable=False),
        sa.Column("process", sa.Integer(), nullable=True),
        sa.Column("result", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_number"], ["tickets.number"], name="fk_surveys_ticket_number_tickets"),
        sa.PrimaryKeyConstraint("id", name="pk_surveys"),
        sa.UniqueConstraint("ticket_number", "round", name="uq_surveys_ticket_number"),
    )
    op.create_index("ix_surveys_status", "surveys", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_surveys_status", table_name="surveys")
    op.drop_table("surveys")
