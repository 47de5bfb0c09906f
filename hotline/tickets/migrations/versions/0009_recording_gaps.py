"""recording_gaps: the marked gaps of call recordings (paused for sensitive data, or lost to a
full recordings volume).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22

One row per (call, start offset): offsets in ms from the recording's first sample, end NULL for a
gap that runs to the end of the call, the reason (paused, disk-low, not-recorded) and who (the
account or agent who paused, or "system"). No foreign key to recordings: a call whose recording
is missing altogether (no catalogue row) keeps its gap, which says why. Columns are spelled out
here rather than imported from hotline.tickets.schema (see 0001).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recording_gaps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recording_gaps"),
        sa.UniqueConstraint("call_id", "start_ms", name="uq_recording_gaps_call_id"),
    )


def downgrade() -> None:
    op.drop_table("recording_gaps")
