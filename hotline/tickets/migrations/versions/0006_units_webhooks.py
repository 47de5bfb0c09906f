"""units (承办单位) with their webhook and its HMAC secret; accounts.unit, the unit an account of
role `unit` acts for; the webhook outbox (unit_outbox) and the log of every delivery attempt
(unit_deliveries).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

The outbox rows are written in the same transaction as the ticket change that caused them
(hotline/tickets/units.py), so a notice is never lost nor sent for a change that rolled back.
Columns are spelled out here rather than imported from hotline.tickets.schema (see 0001).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("unit", sa.String(255), nullable=True))
    op.create_table(
        "units",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("secret", sa.String(255), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_units"),
    )
    op.create_table(
        "unit_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("unit", sa.String(255), nullable=False),
        sa.Column("ticket_number", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["ticket_number"], ["tickets.number"], name="fk_unit_outbox_ticket_number_tickets"),
        sa.PrimaryKeyConstraint("id", name="pk_unit_outbox"),
        sa.UniqueConstraint("event_id", name="uq_unit_outbox_event_id"),
    )
    op.create_index("ix_unit_outbox_unit", "unit_outbox", ["unit"])
    op.create_index("ix_unit_outbox_status", "unit_outbox", ["status"])
    op.create_table(
        "unit_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("process", sa.String(128), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["outbox_id"], ["unit_outbox.id"], name="fk_unit_deliveries_outbox_id_unit_outbox"),
        sa.PrimaryKeyConstraint("id", name="pk_unit_deliveries"),
    )
    op.create_index("ix_unit_deliveries_outbox_id", "unit_deliveries", ["outbox_id"])


def downgrade() -> None:
    op.drop_index("ix_unit_deliveries_outbox_id", table_name="unit_deliveries")
    op.drop_table("unit_deliveries")
    op.drop_index("ix_unit_outbox_status", table_name="unit_outbox")
    op.drop_index("ix_unit_outbox_unit", table_name="unit_outbox")
    op.drop_table("unit_outbox")
    op.drop_table("units")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("unit")
