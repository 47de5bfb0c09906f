"""personal_data_access: the append-only audit of reads of callers' personal data (who read a
caller's unmasked number or name, of which ticket or call, which fields, through which route,
from which address; hotline/tickets/privacy.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22

Columns are spelled out here rather than imported from hotline.tickets.schema (see 0001). Like
recording_access (0005), the table refuses UPDATE and DELETE by trigger (and TRUNCATE on
PostgreSQL): an access audit that can be edited is no audit.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "personal_data_access"

_PG_FUNCTION = """
CREATE FUNCTION personal_data_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""

_PG_TRIGGERS = (
    f"CREATE TRIGGER {_TABLE}_no_change BEFORE UPDATE OR DELETE ON {_TABLE} "
    "FOR EACH ROW EXECUTE FUNCTION personal_data_append_only()",
    f"CREATE TRIGGER {_TABLE}_no_truncate BEFORE TRUNCATE ON {_TABLE} "
    "FOR EACH STATEMENT EXECUTE FUNCTION personal_data_append_only()",
)

_SQLITE_TRIGGERS = tuple(
    f"CREATE TRIGGER {_TABLE}_no_{what.lower()} BEFORE {what} ON {_TABLE} "
    f"BEGIN SELECT RAISE(ABORT, '{_TABLE} is append-only: {what} refused'); END"
    for what in ("UPDATE", "DELETE")
)


def upgrade() -> None:
    op.create_table(
        _TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("who", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("subject_type", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("fields", sa.String(255), nullable=False),
        sa.Column("route", sa.String(255), nullable=False),
        sa.Column("client", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{_TABLE}"),
    )
    op.create_index(f"ix_{_TABLE}_subject", _TABLE, ["subject"])
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
        op.execute(f"DROP TRIGGER IF EXISTS {_TABLE}_no_truncate ON {_TABLE}")
        op.execute(f"DROP TRIGGER IF EXISTS {_TABLE}_no_change ON {_TABLE}")
        op.execute("DROP FUNCTION IF EXISTS personal_data_append_only()")
    elif dialect == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {_TABLE}_no_update")
        op.execute(f"DROP TRIGGER IF EXISTS {_TABLE}_no_delete")
    op.drop_index(f"ix_{_TABLE}_subject", table_name=_TABLE)
    op.drop_table(_TABLE)
