"""accounts: who may sign in to the agent desktop API, with an argon2 password hash and a role
(agent, supervisor, admin); an agent account is tied to its agent.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("username", name="pk_accounts"),
    )
    op.create_index("ix_accounts_agent_id", "accounts", ["agent_id"])


def downgrade() -> None:
    op.drop_index("ix_accounts_agent_id", table_name="accounts")
    op.drop_table("accounts")
