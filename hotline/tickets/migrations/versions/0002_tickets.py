"""工单 (tickets): tickets, their numbering, calls, links and append-only timeline; call drafts;
calls.related_call_id.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Columns are spelled out here rather than imported from hotline.tickets.schema (see 0001).
ticket_events is append-only: a trigger refuses UPDATE and DELETE on it (and TRUNCATE on
PostgreSQL), so not even a hand-typed SQL statement rewrites a ticket's history. Dropping the
trigger takes a deliberate migration.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFUSED = "ticket_events is append-only"

_PG_FUNCTION = f"""
CREATE FUNCTION ticket_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{_REFUSED}: % refused', TG_OP USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""
_PG_TRIGGERS = (
    "CREATE TRIGGER ticket_events_no_change BEFORE UPDATE OR DELETE ON ticket_events "
    "FOR EACH ROW EXECUTE FUNCTION ticket_events_append_only()",
    "CREATE TRIGGER ticket_events_no_truncate BEFORE TRUNCATE ON ticket_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION ticket_events_append_only()",
)
_SQLITE_TRIGGERS = tuple(
    f"CREATE TRIGGER ticket_events_no_{what.lower()} BEFORE {what} ON ticket_events "
    f"BEGIN SELECT RAISE(ABORT, '{_REFUSED}: {what} refused'); END"
    for what in ("UPDATE", "DELETE")
)


def upgrade() -> None:
    # Callback records point at the call whose caller asked for the callback. (A column added
    # last: SQLite appends it, PostgreSQL too, so both backends agree on the column order.)
    op.add_column("calls", sa.Column("related_call_id", sa.String(128), nullable=True))
    op.create_table(
        "tickets",
        sa.Column("number", sa.String(16), nullable=False),
        sa.Column("caller", sa.String(255), nullable=False),
        sa.Column("caller_name", sa.String(255), nullable=True),
        sa.Column("consent_recording", sa.Boolean(), nullable=False),
        sa.Column("consent_callback", sa.Boolean(), nullable=False),
        sa.Column("consent_disclose", sa.Boolean(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("transcript", sa.Text(), nullable=False),
        sa.Column("place", sa.Text(), nullable=False),
        sa.Column("lead_unit", sa.String(255), nullable=True),
        sa.Column("assisting_units", sa.Text(), nullable=False),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("provincial", sa.Boolean(), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("light", sa.String(32), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("yellow_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("red_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_alarm_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("lifecycle", sa.Text(), nullable=False),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_tickets"),
    )
    op.create_index("ix_tickets_caller", "tickets", ["caller"])
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])
    op.create_index("ix_tickets_next_alarm_at", "tickets", ["next_alarm_at"])
    op.create_table(
        "ticket_counters",
        sa.Column("day", sa.String(6), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_ticket_counters"),
    )
    op.create_table(
        "ticket_calls",
        sa.Column("ticket_number", sa.String(16), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_number"], ["tickets.number"], name="fk_ticket_calls_ticket_number_tickets"),
        sa.PrimaryKeyConstraint("ticket_number", "call_id", name="pk_ticket_calls"),
    )
    op.create_index("ix_ticket_calls_call_id", "ticket_calls", ["call_id"])
    op.create_table(
        "ticket_links",
        sa.Column("ticket_number", sa.String(16), nullable=False),
        sa.Column("other_number", sa.String(16), nullable=False),
        sa.Column("relation", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_number"], ["tickets.number"], name="fk_ticket_links_ticket_number_tickets"),
        sa.ForeignKeyConstraint(["other_number"], ["tickets.number"], name="fk_ticket_links_other_number_tickets"),
        sa.PrimaryKeyConstraint("ticket_number", "other_number", "relation", name="pk_ticket_links"),
    )
    op.create_index("ix_ticket_links_other_number", "ticket_links", ["other_number"])
    op.create_table(
        "ticket_events",
        sa.Column("ticket_number", sa.String(16), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("actor_role", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("from_state", sa.String(32), nullable=True),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(["ticket_number"], ["tickets.number"], name="fk_ticket_events_ticket_number_tickets"),
        sa.PrimaryKeyConstraint("ticket_number", "seq", name="pk_ticket_events"),
    )
    op.create_table(
        "call_drafts",
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("transcript", sa.Text(), nullable=False),
        sa.Column("draft", sa.Text(), nullable=False),
        sa.Column("engine", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("call_id", name="pk_call_drafts"),
    )
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        for statement in _PG_TRIGGERS:
            op.execute(statement)
    elif dialect == "sqlite":
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ticket_events_no_truncate ON ticket_events")
        op.execute("DROP TRIGGER IF EXISTS ticket_events_no_change ON ticket_events")
        op.execute("DROP FUNCTION IF EXISTS ticket_events_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ticket_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS ticket_events_no_delete")
    op.drop_table("call_drafts")
    op.drop_table("ticket_events")
    op.drop_index("ix_ticket_links_other_number", table_name="ticket_links")
    op.drop_table("ticket_links")
    op.drop_index("ix_ticket_calls_call_id", table_name="ticket_calls")
    op.drop_table("ticket_calls")
    op.drop_table("ticket_counters")
    op.drop_index("ix_tickets_next_alarm_at", table_name="tickets")
    op.drop_index("ix_tickets_created_at", table_name="tickets")
    op.drop_index("ix_tickets_caller", table_name="tickets")
    op.drop_table("tickets")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("related_call_id")
