"""recordings: the catalogue of call recordings (path, format, size, length, sha256, kind, legal
hold, when purged), the append-only audit of every playback and download (recording_access) and
the append-only log of legal holds (recording_holds).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

Columns are spelled out here rather than imported from hotline.tickets.schema (see 0001). Like
ticket_events (0002), the two logs refuse UPDATE and DELETE by trigger (and TRUNCATE on
PostgreSQL): an access audit that can be edited is no audit.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LOGS = ("recording_access", "recording_holds")

_PG_FUNCTION = """
CREATE FUNCTION recordings_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""


def _pg_triggers(table: str) -> tuple[str, ...]:
    return (
        f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION recordings_append_only()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION recordings_append_only()",
    )


def _sqlite_triggers(table: str) -> tuple[str, ...]:
    return tuple(
        f"CREATE TRIGGER {table}_no_{what.lower()} BEFORE {what} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {what} refused'); END"
        for what in ("UPDATE", "DELETE")
    )


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=True),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("call_id", name="pk_recordings"),
    )
    op.create_index("ix_recordings_created_at", "recordings", ["created_at"])
    op.create_table(
        "recording_access",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("who", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("client", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["recordings.call_id"], name="fk_recording_access_call_id_recordings"),
        sa.PrimaryKeyConstraint("id", name="pk_recording_access"),
    )
    op.create_index("ix_recording_access_call_id", "recording_access", ["call_id"])
    op.create_table(
        "recording_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("hold", sa.Boolean(), nullable=False),
        sa.Column("who", sa.String(255), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recording_holds"),
    )
    op.create_index("ix_recording_holds_target", "recording_holds", ["target"])
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        for table in _LOGS:
            for statement in _pg_triggers(table):
                op.execute(statement)
    elif dialect == "sqlite":
        for table in _LOGS:
            for statement in _sqlite_triggers(table):
                op.execute(statement)


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    for table in _LOGS:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}")
        elif dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS recordings_append_only()")
    op.drop_index("ix_recording_holds_target", table_name="recording_holds")
    op.drop_table("recording_holds")
    op.drop_index("ix_recording_access_call_id", table_name="recording_access")
    op.drop_table("recording_access")
    op.drop_index("ix_recordings_created_at", table_name="recordings")
    op.drop_table("recordings")
