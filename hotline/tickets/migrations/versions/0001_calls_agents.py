"""Call records and the agent registry.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Columns are spelled out here rather than imported from hotline.tickets.schema: a migration is a
fixed step, while the schema module keeps changing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("caller", sa.String(255), nullable=False),
        sa.Column("callee", sa.String(255), nullable=False),
        sa.Column("worker_id", sa.String(128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agent_id", sa.String(128), nullable=True),
        sa.Column("dtmf", sa.Text(), nullable=False),
        sa.Column("recording_path", sa.Text(), nullable=True),
        sa.Column("hangup_by", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("call_id", name="pk_calls"),
    )
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_index("ix_calls_caller", "calls", ["caller"])
    op.create_table(
        "agents",
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("extension", sa.String(64), nullable=False),
        sa.Column("sip_uri", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", name="pk_agents"),
        sa.UniqueConstraint("extension", name="uq_agents_extension"),
    )


def downgrade() -> None:
    op.drop_table("agents")
    op.drop_index("ix_calls_caller", table_name="calls")
    op.drop_index("ix_calls_started_at", table_name="calls")
    op.drop_table("calls")
